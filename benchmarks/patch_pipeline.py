"""Patches per second: batched patches + augmentations against a per-image torchvision pipeline.

The per-image pipeline is shaped like the public EMP-SSL code's: for each image (a
PIL image, as torchvision's CIFAR dataset returns it) and each of its n patches, a
RandomResizedCrop to a fixed-scale 16x16 patch upsampled to 32x32, a horizontal
flip, colour jitter, grayscale, Gaussian blur and solarisation, then ToTensor.
The batched pipeline does the same with ``random_patches(images, 16, n, out_size=32)``
and ``augment`` on one float tensor of the B images (augmented in place). Both use
BYOL's parameters for the chosen view, and both are timed in this process,
alternately, keeping the best of ``--repeats`` runs of each, so that a busy machine
slows both alike. The batched pipeline is timed on one thread (a fair match for the
single-core per-image pipeline) and on all of torch's threads.

    python benchmarks/patch_pipeline.py                 # B = 256, n in {4, 16, 32}
    python benchmarks/patch_pipeline.py --view 1 --n 16   # the view that always blurs

The table is also saved, with the machine it was measured on, as JSON (default
``cooc_minimal/results/patch_pipeline.json``; ``--save ""`` skips it): chapter 4 shows
the recorded table from that file.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFilter
from torchvision import transforms as T

from cooc_minimal.augment import BYOL_VIEW_1, BYOL_VIEW_2, ViewConfig, augment
from cooc_minimal.cli import check_writable_file, run_command
from cooc_minimal.patches import random_patches
from cooc_minimal.paths import result_path
from cooc_minimal.runtime import positive_int


class PilBlur:
    """Gaussian blur with probability p and sigma uniform in [0.1, 2.0], with PIL as EMP-SSL."""

    def __init__(self, p: float) -> None:
        self.p = p

    def __call__(self, image: Image.Image) -> Image.Image:
        if random.random() < self.p:
            return image.filter(ImageFilter.GaussianBlur(random.uniform(0.1, 2.0)))
        return image


def per_image_pipeline(view: ViewConfig, patch: int, out: int, side: int) -> T.Compose:
    scale = (patch * patch) / (side * side)  # a fixed-scale square crop of patch x patch pixels
    return T.Compose([
        T.RandomResizedCrop(out, scale=(scale, scale), ratio=(1.0, 1.0)),
        T.RandomHorizontalFlip(view.flip_p),
        T.RandomApply([T.ColorJitter(view.brightness, view.contrast, view.saturation, view.hue)],
                      p=view.jitter_p),
        T.RandomGrayscale(view.grayscale_p),
        PilBlur(view.blur_p),
        T.RandomSolarize(threshold=128, p=view.solarize_p),
        T.ToTensor(),
    ])


def run_per_image(images: list[Image.Image], n: int, pipeline: T.Compose) -> torch.Tensor:
    return torch.stack([torch.stack([pipeline(image) for _ in range(n)]) for image in images])


def run_batched(images: torch.Tensor, n: int, view: ViewConfig, patch: int, out: int,
                generator: torch.Generator) -> torch.Tensor:
    patches, _ = random_patches(images, patch, n, out_size=out, generator=generator)
    return augment(patches, view, generator, inplace=True)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    """The options, checked before anything is timed (one sentence each)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--batch", type=int, default=256, help="images per batch (256)")
    parser.add_argument("--n", type=int, nargs="+", default=[4, 16, 32], help="patches per image")
    parser.add_argument("--view", type=int, choices=(1, 2), default=2,
                        help="BYOL view: 1 always blurs, 2 blurs 10%% and solarises 20%% (2)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each pipeline (5)")
    parser.add_argument("--save", default=str(result_path("patch_pipeline")),
                        help="where to write the results as JSON ('' to skip)")
    args = parser.parse_args(argv)
    for option, value in (("--batch", args.batch), *(("--n", n) for n in args.n),
                          ("--repeats", args.repeats)):
        positive_int(option, value)
    if args.save:
        check_writable_file(Path(args.save).expanduser(), "--save")
    return args


def benchmark(argv: list[str] | None) -> int:
    args = parse_arguments(argv)
    view = BYOL_VIEW_1 if args.view == 1 else BYOL_VIEW_2
    patch, out, side = 16, 32, 32
    generator = torch.Generator().manual_seed(0)
    random.seed(0)
    torch.manual_seed(0)
    pixels = torch.randint(0, 256, (args.batch, side, side, 3), generator=generator,
                           dtype=torch.uint8)
    pil_images = [Image.fromarray(np.asarray(p)) for p in pixels]
    images = pixels.permute(0, 3, 1, 2).float() / 255
    pipeline = per_image_pipeline(view, patch, out, side)
    threads = torch.get_num_threads()

    def batched(n: int, n_threads: int) -> float:
        torch.set_num_threads(n_threads)
        try:
            return timed(lambda: run_batched(images, n, view, patch=patch, out=out,
                                             generator=generator))
        finally:
            torch.set_num_threads(threads)

    print(f"B = {args.batch} images of {side}x{side}; {patch}x{patch} patches resized to "
          f"{out}x{out}; BYOL view {args.view}; best of {args.repeats}; torch "
          f"{torch.__version__}. The per-image pipeline runs on one core; the batched one on "
          f"1 thread, then on all {threads}.")
    print("| n | patches | per-image torchvision (patches/s) | batched, 1 thread | speed-up "
          f"| batched, {threads} threads | speed-up |")
    print("|---|---|---|---|---|---|---|")
    rows = []
    for n in args.n:
        batched(n, threads)  # warm up
        slow, one, all_ = [], [], []
        for _ in range(args.repeats):  # alternate, so that all three see the same machine load
            slow.append(timed(lambda n=n: run_per_image(pil_images, n, pipeline)))
            one.append(batched(n, 1))
            all_.append(batched(n, threads))
        count = args.batch * n
        rates = [count / min(t) for t in (slow, one, all_)]
        print(f"| {n} | {count} | {rates[0]:,.0f} | {rates[1]:,.0f} | {rates[1] / rates[0]:.1f}x "
              f"| {rates[2]:,.0f} | {rates[2] / rates[0]:.1f}x |", flush=True)
        rows.append({"n": n, "patches": count, "per_image_per_s": rates[0],
                     "batched_1_thread_per_s": rates[1], "speedup_1_thread": rates[1] / rates[0],
                     "batched_all_threads_per_s": rates[2],
                     "speedup_all_threads": rates[2] / rates[0]})
    if args.save:
        record = {"benchmark": "patch_pipeline", "date": datetime.date.today().isoformat(),
                  "torch": torch.__version__, "threads": threads, "cpus": os.cpu_count(),
                  "machine": platform.machine(), "batch": args.batch,
                  "load_average_1min": os.getloadavg()[0], "view": args.view,
                  "repeats": args.repeats, "patch": patch, "out": out, "rows": rows}
        path = Path(args.save).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=1) + "\n")
        print(f"saved to {args.save}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_command(Path(__file__).name, lambda: benchmark(argv))


if __name__ == "__main__":
    sys.exit(main())
