"""Images per second of a training step: model options, and the data path against a DataLoader.

Two tables, each measured in this process, alternating the variants and keeping the best of
``--repeats`` runs, so that a busy machine slows every variant alike:

1. **Model options.** A full ``cooc_minimal.step.train_step`` (patches and views cut on
   the device, forward, loss, backward, LARS) with fp32 and contiguous tensors as the
   baseline, against ``channels_last``, ``torch.compile`` and both (and bf16 autocast).
2. **Data path.** The device-resident path (the images held as one uint8 tensor, batches by
   indexing, patches and views batched by ``make_views``) against a ``DataLoader`` whose
   workers cut and augment each image's patches one image at a time with a torchvision v2
   pipeline (BYOL's views). For each: images/s of the data alone, of the full step, and the
   share of the step spent waiting for data (goal: the data path is never the bottleneck).

On a CPU the model is the smoke one (tiny CNN, 128 toy-world images x 8 patches of 8x8,
VICReg) with BYOL's views switched on, so that the data path has work to do. With CUDA the
same tables are measured for ResNet-18 at the CIFAR-10 settings (batch 1024, 4 patches of
16x16 resized to 32x32), on random uint8 images of CIFAR's size (no download needed).

    python benchmarks/train_step.py                  # the table for this machine
    python benchmarks/train_step.py --no-compile     # skip torch.compile (slow to compile)

Saved as JSON (default ``cooc_minimal/results/train_step_<cpu|cuda>.json``; ``--save ""``
skips it), with the machine and its load; chapter 6 shows the recorded CPU table.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from cooc_minimal.augment import ViewConfig, default_blur_kernel
from cooc_minimal.cli import check_writable_file, run_command
from cooc_minimal.config import Config, load_config
from cooc_minimal.data import TensorData, epoch_order
from cooc_minimal.paths import result_path
from cooc_minimal.runtime import pick_device, positive_int
from cooc_minimal.step import build_optimizer, build_trainee, train_step
from cooc_minimal.views import make_views, view_plan


def settings(device: torch.device) -> Config:
    if device.type == "cuda":
        return load_config("cifar10_vicreg", ["arch=resnet18", "probe=false"])
    return load_config("smoke", ["augment=byol", "probe=false"])


def device_data(cfg: Config, device: torch.device) -> TensorData:
    if device.type == "cuda":  # CIFAR-sized random images: the timing needs no real data
        g = torch.Generator().manual_seed(0)
        images = torch.randint(0, 256, (50_000, 3, 32, 32), generator=g, dtype=torch.uint8)
        return TensorData(images, torch.randint(0, 10, (50_000,), generator=g), device)
    return TensorData.from_config(cfg, device)


def batches(data: TensorData, cfg: Config, epoch: int):
    """The batches of one epoch in one process, as training draws them."""
    return data.batches(epoch_order(cfg.seed, epoch, data.size), cfg.batch_size)


def per_image_view(view: ViewConfig, patch: int, out: int) -> v2.Compose:
    """One patch of one image with torchvision v2, as a per-image loader would make it."""
    kernel = view.blur_kernel or default_blur_kernel(out)
    return v2.Compose([
        v2.RandomCrop(patch),
        v2.Resize(out, antialias=True) if out != patch else v2.Identity(),
        v2.ToDtype(torch.float32, scale=True),
        v2.RandomHorizontalFlip(view.flip_p),
        v2.RandomApply([v2.ColorJitter(view.brightness, view.contrast, view.saturation,
                                       view.hue)], p=view.jitter_p),
        v2.RandomGrayscale(view.grayscale_p),
        v2.RandomApply([v2.GaussianBlur(kernel, view.blur_sigma)], p=view.blur_p),
        v2.RandomSolarize(view.solarize_threshold, p=view.solarize_p),
    ])


class PerImagePatches(Dataset):
    """Each item: the n augmented patches of one image (n, 3, S, S) and its label."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, cfg: Config) -> None:
        self.images, self.labels = images.cpu(), labels.cpu()
        out = cfg.patch_out or cfg.patch_size
        self.plan = [(count, per_image_view(view, cfg.patch_size, out))
                     for count, view in view_plan(cfg)]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        image = self.images[i]
        patches = [pipeline(image) for count, pipeline in self.plan for _ in range(count)]
        return torch.stack(patches), self.labels[i]


def best_rate(fn, images_per_call: int, calls: int) -> float:
    """images/s of ``calls`` calls of fn (after one warm-up call)."""
    fn()
    tic = time.perf_counter()
    for _ in range(calls):
        fn()
    return images_per_call * calls / (time.perf_counter() - tic)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def model_options(cfg: Config, data: TensorData, steps: int, repeats: int,
                  compile_too: bool) -> list[dict]:
    variants = {"fp32 (baseline)": {}, "channels_last": {"channels_last": True},
                "bf16 autocast": {"precision": "bf16"}}
    if compile_too:
        variants["torch.compile"] = {"compile": True}
        variants["torch.compile + channels_last"] = {"compile": True, "channels_last": True}
    runners, notes = {}, {}
    for name, change in variants.items():
        c = Config(**{**cfg.__dict__, **change})
        trainee = build_trainee(c, data.n_classes, data.device)
        optimizer = build_optimizer(c, trainee)
        net = torch.compile(trainee) if c.compile else trainee
        generator, epoch = torch.Generator().manual_seed(0), batches(data, c, 0)

        def step(c=c, net=net, optimizer=optimizer, generator=generator, epoch=epoch):
            images, labels = next(epoch)
            train_step(net, optimizer, images, labels, cfg=c, generator=generator)
            sync(data.device)

        try:
            step()  # compiles, where it applies
            runners[name] = step
        except Exception as error:  # noqa: BLE001 - an unavailable compiler is a table entry
            notes[name] = f"unavailable: {str(error).strip().splitlines()[0][:80]}"
    rates = {name: 0.0 for name in runners}
    for _ in range(repeats):
        for name, step in runners.items():
            rates[name] = max(rates[name], best_rate(step, cfg.batch_size, steps))
    base = rates["fp32 (baseline)"]
    rows = [{"variant": name, "images_per_s": rate, "vs_baseline": rate / base}
            for name, rate in rates.items()]
    rows += [{"variant": name, "images_per_s": None, "vs_baseline": None, "note": note}
             for name, note in notes.items()]
    return rows


def data_paths(cfg: Config, data: TensorData, steps: int, repeats: int,
               workers: list[int]) -> list[dict]:
    device = data.device
    trainee = build_trainee(cfg, data.n_classes, device)
    optimizer = build_optimizer(cfg, trainee)
    generator = torch.Generator().manual_seed(0)
    images0, labels0 = next(batches(data, cfg, 0))
    fixed = make_views(images0, cfg, generator)

    def model_only():
        train_step(trainee, optimizer, None, labels0, cfg=cfg, generator=generator, views=fixed)
        sync(device)

    def resident(full: bool):
        epoch = batches(data, cfg, 1)

        def call():
            images, labels = next(epoch)
            if full:
                train_step(trainee, optimizer, images, labels, cfg=cfg, generator=generator)
            else:
                make_views(images, cfg, generator)
            sync(device)
        return call

    dataset = PerImagePatches(data.images, data.labels, cfg)

    def loader(n_workers: int, full: bool):
        it = iter(DataLoader(dataset, batch_size=cfg.batch_size, shuffle=True,
                             num_workers=n_workers, drop_last=True,
                             pin_memory=device.type == "cuda",
                             persistent_workers=n_workers > 0))

        def call():
            patches, labels = next(it)
            patches, labels = patches.to(device), labels.to(device)
            if full:
                train_step(trainee, optimizer, None, labels, cfg=cfg, generator=generator,
                           views=patches)
            sync(device)
        return call

    paths = {"device-resident, batched (make_views)": resident}
    for w in workers:
        paths[f"DataLoader, per-image v2, {w} workers"] = (
            lambda full, w=w: loader(w, full))
    best = {"model only": 0.0}
    for name in paths:
        best[(name, False)] = best[(name, True)] = 0.0
    for _ in range(repeats):
        best["model only"] = max(best["model only"], best_rate(model_only, cfg.batch_size,
                                                               steps))
        for name, make in paths.items():
            calls = steps if name.startswith("device") else max(2, steps // 4)  # slow ones
            for full in (False, True):
                best[(name, full)] = max(best[(name, full)],
                                         best_rate(make(full), cfg.batch_size, calls))
    rows = [{"path": "model step alone (views made once)", "data_images_per_s": None,
             "step_images_per_s": best["model only"], "waiting_for_data": 0.0}]
    for name in paths:
        step_rate = best[(name, True)]
        rows.append({"path": name, "data_images_per_s": best[(name, False)],
                     "step_images_per_s": step_rate,
                     "waiting_for_data": max(0.0, 1 - step_rate / best["model only"])})
    return rows


def show(rows: list[dict], title: str) -> None:
    print(f"\n{title}")
    keys = list(rows[0])
    print(" | ".join(keys))
    for row in rows:
        cells = [f"{row.get(k):,.3g}" if isinstance(row.get(k), float) else str(row.get(k, ""))
                 for k in keys]
        print(" | ".join(cells))
    for row in rows:
        if row.get("note"):
            print(f"  {row['variant']}: {row['note']}")


def parse_arguments(argv: list[str] | None, device: torch.device) -> argparse.Namespace:
    """The options, checked before anything is timed (one sentence each); ``save`` the
    JSON path to write ('' for none)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--steps", type=int, default=8, help="timed steps per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="keep the best of this many")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    parser.add_argument("--workers", type=int, nargs="*", default=None,
                        help="DataLoader worker counts to try (default 2; 8 on a GPU)")
    parser.add_argument("--save", default=None, help="JSON file ('' to skip)")
    args = parser.parse_args(argv)
    positive_int("--steps", args.steps)
    positive_int("--repeats", args.repeats)
    if args.workers is None:
        args.workers = [8] if device.type == "cuda" else [2]
    if any(w < 0 for w in args.workers):
        raise ValueError(f"--workers must be worker counts of 0 or more, got "
                         f"{' '.join(map(str, args.workers))}.")
    if args.save is None:
        args.save = str(result_path(f"train_step_{device.type}"))
    if args.save:
        check_writable_file(Path(args.save).expanduser(), "--save")
    return args


def benchmark(argv: list[str] | None) -> int:
    device = pick_device("auto")
    args = parse_arguments(argv, device)
    cfg = settings(device)
    data = device_data(cfg, device)
    workers = args.workers
    load = os.getloadavg()[0]
    options = model_options(cfg, data, args.steps, args.repeats, not args.no_compile)
    paths = data_paths(cfg, data, args.steps, args.repeats, workers)
    what = (f"{cfg.arch}, batch {cfg.batch_size} x {cfg.n_patches} patches of "
            f"{cfg.patch_size}->{cfg.patch_out or cfg.patch_size}, {cfg.loss}, on {device.type}")
    show(options, f"Training step, images/s ({what}), best of {args.repeats}")
    show(paths, "Data path against a per-image DataLoader (images/s)")
    record = {"benchmark": "train_step", "date": datetime.date.today().isoformat(),
              "torch": torch.__version__, "device": device.type,
              "gpu": torch.cuda.get_device_name() if device.type == "cuda" else None,
              "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
              "machine": platform.machine(), "load_average_1min_at_start": load,
              "load_average_1min_at_end": os.getloadavg()[0], "setting": what,
              "steps": args.steps, "repeats": args.repeats, "model_options": options,
              "data_paths": paths}
    if args.save:
        Path(args.save).expanduser().write_text(json.dumps(record, indent=1) + "\n")
        print(f"\nsaved {args.save}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_command(Path(__file__).name, lambda: benchmark(argv))


if __name__ == "__main__":
    sys.exit(main())
