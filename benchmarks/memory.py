"""Memory of a training step for each appendix C setting, measured on the CPU.

For each config's architecture and patch geometry (``cooc_minimal/configs``): the bytes a
training forward saves for backward per image (``step.activation_bytes_per_image``: saved-
tensor hooks count the distinct storages autograd keeps, parameters left out, on random
views of 1 and 2 images, the difference), in fp32 and in bf16 autocast; the bytes the loss
saves on the paper's whole batch (``step.loss_bytes``, float32 as the losses compute);
the parameters; the views of the batch. Autograd saves the same tensors on a GPU (cuDNN
may keep a little more, and CPU autocast's op lists are close to, not the same as, CUDA's):
chapter 6 turns the table into the batch chunks each card needs (``batch_chunks``).

    python benchmarks/memory.py                 # prints the table, writes the JSON
    python benchmarks/memory.py --save ""       # prints only

Saved as ``cooc_minimal/results/memory_cpu.json`` with the command, the commit and the machine.
Takes about a minute on 2 cores (the ImageNet losses on 1024 x 8192 dominate).
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

from cooc_minimal.cli import check_writable_file, run_command
from cooc_minimal.config import load_config
from cooc_minimal.paths import result_path, source_commit
from cooc_minimal.step import activation_bytes_per_image, build_trainee, loss_bytes

CONFIGS = ("cifar10_vicreg", "cifar10_spectral", "cifar10_tcr", "cifar10_simclr",
           "imagenet100_vicreg", "imagenet_vicreg_multiscale")
CLASSES = {"cifar10": 10, "cifar100": 100, "imagenet100": 100, "imagenet": 1000}
#: the training images held on the device as uint8 (data.py holds CIFAR there; ImageNet
#: comes through DataLoader workers, a batch at a time)
RESIDENT = {"cifar10": 50_000 * 3 * 32 * 32, "cifar100": 50_000 * 3 * 32 * 32}
DEFAULT_SAVE = result_path("memory_cpu")


def measure(name: str) -> dict:
    """One config's row: parameters, activations per image (fp32, bf16), loss, views."""
    cpu, row = torch.device("cpu"), {"config": name}
    for precision in ("fp32", "bf16"):
        cfg = load_config(name, ["device=cpu", f"precision={precision}"])
        trainee = build_trainee(cfg, CLASSES[cfg.dataset], cpu)
        tic = time.perf_counter()
        row[f"activation_bytes_per_image_{precision}"] = activation_bytes_per_image(
            trainee, cfg, cpu)
        row[f"seconds_{precision}"] = round(time.perf_counter() - tic, 2)
    side = cfg.patch_out or cfg.patch_size
    row.update({
        "arch": cfg.arch, "projector": cfg.projector, "loss": cfg.loss,
        "patches": f"{cfg.n_patches} x {cfg.patch_size}->{side}",
        "batch_size": cfg.batch_size,
        "params": sum(p.numel() for p in trainee.parameters()),
        "param_bytes": sum(p.numel() * p.element_size() for p in trainee.parameters()),
        "loss_bytes_at_batch": loss_bytes(cfg, cfg.batch_size, trainee.model.projection_dim,
                                          cpu),
        "views_bytes_at_batch": cfg.batch_size * cfg.n_patches * 3 * side * side * 4 * 2,
        "resident_data_bytes": RESIDENT.get(cfg.dataset, 0),
    })
    return row


def table(rows: list[dict]) -> str:
    mb = 1e6
    lines = [f"{'config':<28}{'arch':<10}{'patches':<12}{'params':>9}{'fp32/img':>10}"
             f"{'bf16/img':>10}{'loss@B':>9}{'views@B':>9}", " " * 50 + "(M)      (MB)      (MB)"
             "     (MB)     (MB)"]
    for r in rows:
        lines.append(f"{r['config']:<28}{r['arch']:<10}{r['patches']:<12}"
                     f"{r['params'] / 1e6:>9.1f}{r['activation_bytes_per_image_fp32'] / mb:>10.2f}"
                     f"{r['activation_bytes_per_image_bf16'] / mb:>10.2f}"
                     f"{r['loss_bytes_at_batch'] / mb:>9.0f}{r['views_bytes_at_batch'] / mb:>9.0f}")
    return "\n".join(lines)


def config_names(text: str) -> list[str]:
    """The names of ``--configs``, each loaded once now, so that a wrong one is told in a
    sentence before a minute of measuring."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise ValueError(f"--configs must name at least one config, such as "
                         f"{CONFIGS[0]}, got {text!r}.")
    for name in names:
        dataset = load_config(name).dataset
        if dataset not in CLASSES:
            raise ValueError(f"--configs {name} trains on {dataset}, whose number of classes "
                             f"this benchmark does not know: pass configs of "
                             f"{', '.join(CLASSES)}.")
    return names


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    """The options, checked before anything is measured (one sentence each)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--save", default=str(DEFAULT_SAVE), help="JSON path ('' = none)")
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated names")
    args = parser.parse_args(argv)
    args.configs = config_names(args.configs)
    if args.save:
        check_writable_file(Path(args.save).expanduser(), "--save")
    return args


def benchmark(argv: list[str] | None) -> int:
    args = parse_arguments(argv)
    started = time.perf_counter()
    rows = [measure(name) for name in args.configs]
    print(table(rows))
    record = {
        "command": "python benchmarks/memory.py" + (f" {' '.join(argv or sys.argv[1:])}"
                                                    if (argv or sys.argv[1:]) else ""),
        "commit": source_commit(),
        "date": datetime.date.today().isoformat(),
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpus": os.cpu_count(), "threads": torch.get_num_threads(),
                    "torch": torch.__version__},
        "method": "saved_tensors_hooks: bytes of the distinct storages saved for backward, "
                  "parameters left out, on random views of 2 images minus 1 image; the "
                  "loss on random float32 projections of the whole batch",
        "seconds": round(time.perf_counter() - started, 1),
        "rows": rows,
    }
    if args.save:
        Path(args.save).expanduser().write_text(json.dumps(record, indent=1) + "\n")
        print(f"saved {args.save}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_command(Path(__file__).name, lambda: benchmark(argv))


if __name__ == "__main__":
    sys.exit(main())
