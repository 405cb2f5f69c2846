"""Check a GPU machine in one command (``make gpu-check``), in under 5 minutes on one GPU.

What it measures and writes to ``cooc_minimal/results/gpu_<card>.json`` (the card's name in
lower case, other characters as ``_``; ``cpu`` without a GPU), with the command, the commit
and the machine:

1. **The device**: its name, compute capability, whether it has native bf16, its memory, and
   what ``precision = 'auto'`` resolves to there.
2. **Each appendix C config** (``cifar10_*``, ``imagenet100_vicreg``,
   ``imagenet_vicreg_multiscale``) at the paper's batch of 1024 on a GPU (a small batch and
   the tiny CNN on a CPU), with the chunks ``batch_chunks = 'auto'`` picks: seconds per step
   on random images of the dataset's size, and the peak memory
   (``torch.cuda.max_memory_allocated``; on a CPU the activations autograd saves for one
   chunk, measured with saved-tensor hooks, since a CPU has no allocator peak to read).
3. **Speed-ups** (GPU only): ``channels_last``, ``torch.compile`` and both against the plain
   fp32-layout step, and fp32 against bf16 (where native) and fp16 with its GradScaler: on a
   T4 or V100, whose 'auto' is fp32, this says whether ``precision = 'fp16'`` is faster.
4. **Stop and resume**: a short toy-world run stopped after one epoch and resumed, against
   the same run straight (``deterministic = true``): the largest weight gap.
5. **Evaluation**: ``python -m cooc_minimal.evaluate --space both`` on that run's checkpoint
   (toy world, no download).
6. **Smaller cards** (GPU only): 16 GB and 24 GB emulated with
   ``torch.cuda.set_per_process_memory_fraction``: the chunks 'auto' picks for each config,
   and whether a step then fits.
7. **The CUDA tests**: every test marked ``pytest.mark.skipif(not torch.cuda.is_available())``
   (found by reading ``tests/*.py``), run with pytest; on a CPU they are skipped.

    python benchmarks/gpu_check.py            # the whole check (make gpu-check)
    python benchmarks/gpu_check.py --quick    # tiny batches, fewer steps, no pytest run
    python benchmarks/gpu_check.py --save ""  # print only
"""

from __future__ import annotations

import argparse
import ast
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from cooc_minimal.cli import check_writable_file, run_command
from cooc_minimal.config import Config, load_config
from cooc_minimal.paths import result_path, source_commit
from cooc_minimal.runtime import (
    grad_scaler,
    has_native_bf16,
    pick_device,
    positive_int,
    resolve_precision,
)
from cooc_minimal.step import (
    activation_bytes_per_image,
    build_optimizer,
    build_trainee,
    choose_chunks,
    train_step,
)
from cooc_minimal.train import train

REPO = Path(__file__).resolve().parent.parent
CONFIGS = ("cifar10_vicreg", "cifar10_spectral", "cifar10_tcr", "cifar10_simclr",
           "imagenet100_vicreg", "imagenet_vicreg_multiscale")
CLASSES = {"cifar10": 10, "cifar100": 100, "imagenet100": 100, "imagenet": 1000}
CARDS_GB = (16, 24)
GIB = 2**30


# ------------------------------------------------------------------ the machine

def device_info(device: torch.device) -> dict:
    """What the device is: name, compute capability, native bf16, memory, 'auto' there."""
    info = {"type": device.type, "name": "cpu", "compute_capability": None,
            "native_bf16": has_native_bf16(device), "total_memory_bytes": None,
            "auto_precision": resolve_precision(device, "auto")}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(name=props.name, total_memory_bytes=int(props.total_memory),
                    compute_capability=".".join(map(str, torch.cuda.get_device_capability(
                        device))))
    return info


def card_name(name: str) -> str:
    """A device name as a file name: 'NVIDIA H100 80GB HBM3' -> 'nvidia_h100_80gb_hbm3'."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "cpu"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ------------------------------------------------------------------ one config's step

def settings(name: str, device: torch.device, quick: bool, *changes: str) -> Config:
    """The config at the paper's batch on a GPU; on a CPU the tiny CNN on a small batch."""
    if device.type == "cuda":
        base = ["device=cuda", "batch_chunks=auto"]
    else:
        base = ["device=cpu", "batch_chunks=auto", "arch=tiny", "width=8",
                "projector=64-32", f"batch_size={4 if quick else 8}", "channels_last=false"]
    return load_config(name, [*base, *changes])


def measure_step(cfg: Config, device: torch.device, steps: int) -> dict:
    """Seconds per step of ``cfg`` on one batch of random images held on ``device``, the
    chunks 'auto' chose and the memory (GPU: peak allocated; CPU: saved activations)."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    side = cfg.image_size
    images = torch.randint(0, 256, (cfg.batch_size, 3, side, side), generator=g,
                           dtype=torch.uint8).to(device)
    labels = torch.randint(0, CLASSES[cfg.dataset], (cfg.batch_size,), generator=g).to(device)
    trainee = build_trainee(cfg, CLASSES[cfg.dataset], device)
    optimizer = build_optimizer(cfg, trainee)
    scaler = grad_scaler(device, cfg.precision)
    chunks = choose_chunks(cfg, trainee, device)
    net = torch.compile(trainee) if cfg.compile else trainee
    generator = torch.Generator().manual_seed(0)

    def step() -> dict:
        return train_step(net, optimizer, images, labels, cfg=cfg, generator=generator,
                          chunks=chunks, scaler=scaler)

    step()  # warm-up (and compilation)
    sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    tic = time.perf_counter()
    for _ in range(steps):
        out = step()
    sync(device)
    seconds = (time.perf_counter() - tic) / steps
    row = {"batch_size": cfg.batch_size, "chunks": chunks, "arch": cfg.arch,
           "precision": resolve_precision(device, cfg.precision),
           "seconds_per_step": seconds, "images_per_s": cfg.batch_size / seconds,
           "loss": out["loss"]}
    if device.type == "cuda":
        row["peak_memory_bytes"] = int(torch.cuda.max_memory_allocated(device))
    else:
        per_image = activation_bytes_per_image(trainee, cfg, device)
        row["activation_bytes_estimate"] = per_image * (cfg.batch_size // chunks)
    return row


def configs_table(device: torch.device, quick: bool, steps: int) -> list[dict]:
    rows = []
    for name in CONFIGS:
        cfg = settings(name, device, quick)
        rows.append({"config": name, **measure_step(cfg, device, steps)})
        print(f"  {name}: {rows[-1]['seconds_per_step']:.3f} s/step, "
              f"{rows[-1]['chunks']} chunk(s)", flush=True)
    return rows


def speedups(device: torch.device, quick: bool, steps: int) -> list[dict]:
    """channels_last, compile and the precisions against the plain step (GPU only)."""
    variants = {"baseline (fp32 layout, eager)": ["channels_last=false", "compile=false"],
                "channels_last": ["channels_last=true", "compile=false"],
                "torch.compile": ["channels_last=false", "compile=true"],
                "torch.compile + channels_last": ["channels_last=true", "compile=true"],
                "precision fp32": ["precision=fp32"], "precision fp16 + GradScaler":
                ["precision=fp16"]}
    if has_native_bf16(device):
        variants["precision bf16"] = ["precision=bf16"]
    rows = []
    for name, changes in variants.items():
        cfg = settings("cifar10_vicreg", device, quick, *changes)
        try:
            rows.append({"variant": name, **measure_step(cfg, device, steps)})
        except Exception as error:  # noqa: BLE001 - an unavailable compiler is a table entry
            rows.append({"variant": name, "note": f"failed: {_first_line(error)}"})
        if cfg.compile:
            torch._dynamo.reset()
    base = rows[0].get("seconds_per_step")
    for row in rows:
        if base and row.get("seconds_per_step"):
            row["speedup"] = base / row["seconds_per_step"]
    return rows


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return (text.splitlines()[0] if text else type(error).__name__)[:160]


def smaller_cards(device: torch.device, total: int, steps: int) -> list[dict]:
    """Each config's chunks and whether a step fits on a 16 or 24 GB card (GPU only)."""
    rows = []
    for gb in CARDS_GB:
        if gb * GIB >= total:
            continue
        torch.cuda.empty_cache()
        torch.cuda.set_per_process_memory_fraction(gb * GIB / total, device)
        try:
            for name in CONFIGS:
                row = {"card_gb": gb, "config": name}
                try:
                    row.update(measure_step(settings(name, device, False), device, steps),
                               fits=True)
                except (torch.OutOfMemoryError, ValueError) as error:
                    row.update(fits=False, note=_first_line(error))
                rows.append(row)
                torch.cuda.empty_cache()
                print(f"  {gb} GB {name}: fits={row['fits']} chunks={row.get('chunks')}",
                      flush=True)
        finally:
            torch.cuda.set_per_process_memory_fraction(1.0, device)
    return rows


# ------------------------------------------------------------------ resume, evaluation, tests

def resume_gap(device: torch.device, folder: Path) -> dict:
    """A toy run stopped after 1 epoch and resumed, against the same run straight."""
    changes = {"device": device.type, "deterministic": True, "epochs": 2, "name": "check"}
    if device.type == "cuda":
        changes.update(arch="resnet18", train_images=2048, batch_size=256)
    else:
        changes.update(train_images=64, batch_size=16, n_patches=4, width=8,
                       projector="32-16")
    overrides = [f"{k}={str(v).lower() if isinstance(v, bool) else v}"
                 for k, v in changes.items()]
    cfg = load_config("smoke", overrides)
    tic = time.perf_counter()
    straight = train(cfg, folder / "straight", progress=False)
    train(cfg, folder / "resumed", stop_after_epochs=1, progress=False)
    resumed = train(cfg, folder / "resumed", resume=True, progress=False)
    a = torch.load(folder / "straight" / "last.pt", weights_only=True)["model"]
    b = torch.load(folder / "resumed" / "last.pt", weights_only=True)["model"]
    gap = max(float((a[k].double() - b[k].double()).abs().max()) for k in a
              if a[k].is_floating_point())
    return {"config": "smoke " + " ".join(overrides), "steps": straight["steps"],
            "resumed_steps": resumed["steps"], "max_weight_gap": gap,
            "val_acc": straight["val_acc"], "seconds": time.perf_counter() - tic,
            "checkpoint": str(folder / "straight" / "last.pt")}


def evaluation(checkpoint: str, device: torch.device, folder: Path) -> dict:
    """The evaluation command in both spaces on the checkpoint (its own toy world)."""
    out = folder / "eval.json"
    command = [sys.executable, "-m", "cooc_minimal.evaluate", "--checkpoint", checkpoint,
               "--space", "both", "--patches", "1,4", "--limit", "300", "--no-progress",
               "--device", device.type, "--json", str(out)]
    tic = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "COOC_SCALE": "smoke"})
    rows = json.loads(out.read_text()) if done.returncode == 0 and out.exists() else []
    return {"command": "python -m cooc_minimal.evaluate --space both --patches 1,4 "
                       "--limit 300", "exit_status": done.returncode, "rows": rows,
            "spaces": sorted({r.get("space") for r in rows if r.get("space")}),
            "seconds": time.perf_counter() - tic,
            "stderr_tail": done.stderr.strip().splitlines()[-1:] if done.returncode else []}


def cuda_tests(tests: Path = REPO / "tests") -> list[str]:
    """The node ids of the tests marked skipif(not torch.cuda.is_available()), read from
    the source (a test marked through a module-level name, ``CUDA = pytest.mark.skipif(...)``,
    counts too)."""
    found = []
    for path in sorted(tests.glob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        marks = {node.targets[0].id for node in tree.body if isinstance(node, ast.Assign)
                 and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                 and _is_cuda_skip(node.value)}
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test") and any(
                    _is_cuda_skip(d) or (isinstance(d, ast.Name) and d.id in marks)
                    for d in node.decorator_list):
                found.append(f"{path.relative_to(REPO)}::{node.name}")
    return found


def _is_cuda_skip(node: ast.AST) -> bool:
    text = ast.unparse(node)
    return "skipif" in text and "cuda.is_available" in text


def run_cuda_tests(ids: list[str]) -> dict:
    tic = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p",
                           "no:cacheprovider", *ids], cwd=REPO, capture_output=True,
                          text=True, timeout=600)
    counts = {word: int(n) for n, word in re.findall(
        r"(\d+) (passed|failed|skipped|error|errors)", done.stdout.splitlines()[-1]
        if done.stdout.strip() else "")}
    return {"tests": ids, "exit_status": done.returncode, "counts": counts,
            "seconds": time.perf_counter() - tic,
            "tail": done.stdout.strip().splitlines()[-3:]}


# ------------------------------------------------------------------ the whole check

def check(device: torch.device, quick: bool, steps: int, folder: Path) -> dict:
    info = device_info(device)
    print(f"device: {info['name']} ({info['type']}), compute capability "
          f"{info['compute_capability']}, native bf16 {info['native_bf16']}, precision "
          f"auto -> {info['auto_precision']}", flush=True)
    record, notes, timings = {"device": info}, [], {}

    def timed(key: str, fn):
        tic = time.perf_counter()
        try:
            record[key] = fn()
        except Exception as error:  # noqa: BLE001 - a failed part is a result; go on
            record[key] = {"error": f"{type(error).__name__}: {_first_line(error)}"}
            print(f"  {key} failed: {record[key]['error']}", flush=True)
        timings[key] = round(time.perf_counter() - tic, 1)

    timed("configs", lambda: configs_table(device, quick, steps))
    if device.type == "cuda":
        timed("speedups", lambda: speedups(device, quick, steps))
        timed("smaller_cards", lambda: smaller_cards(device, info["total_memory_bytes"], 1))
    else:
        record["speedups"] = record["smaller_cards"] = []
        notes += ["CPU: the configs run the tiny CNN on a small batch; memory is the "
                  "activations autograd saves for one chunk (saved-tensor hooks), not an "
                  "allocator peak", "CPU: compile/channels_last speed-ups and the 16/24 GB "
                  "card emulation are measured on a GPU only (skipped)"]
    timed("resume", lambda: resume_gap(device, folder))
    timed("evaluation", lambda: evaluation(record["resume"]["checkpoint"], device, folder))
    ids = cuda_tests()
    if quick:
        record["cuda_tests"] = {"tests": ids, "counts": {}, "exit_status": None}
        notes.append("--quick: the CUDA tests were listed, not run")
    else:
        timed("cuda_tests", lambda: run_cuda_tests(ids))
    record.update(notes=notes, seconds=timings)
    return record


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--quick", action="store_true",
                        help="tiny batches, one timed step, the CUDA tests listed not run")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 3)")
    parser.add_argument("--save", default=None,
                        help="JSON path (default cooc_minimal/results/gpu_<card>.json; '' none)")
    args = parser.parse_args(argv)
    device = pick_device("auto")
    steps = positive_int("--steps", args.steps if args.steps is not None else
                         1 if args.quick else 3)
    save = args.save if args.save is not None else str(
        result_path(f"gpu_{card_name(device_info(device)['name'])}"))
    if save:  # before the five minutes of checks, whose record would otherwise be lost
        check_writable_file(Path(save).expanduser(), "--save")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        record = check(device, args.quick, steps, Path(tmp))
    record["resume"].pop("checkpoint", None)
    info = record["device"]
    record = {"command": "python benchmarks/gpu_check.py" + (
                  " " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip(),
              "commit": source_commit(), "date": datetime.date.today().isoformat(),
              "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                          "torch": torch.__version__, "cuda": torch.version.cuda,
                          "threads": torch.get_num_threads()},
              "card": card_name(info["name"]), "quick": args.quick, "steps": steps,
              **record, "total_seconds": round(time.perf_counter() - started, 1)}
    if save:
        Path(save).expanduser().write_text(json.dumps(record, indent=1) + "\n")
        print(f"saved {save}")
    print(f"resume gap {record['resume']['max_weight_gap']:.3g}; evaluation exit "
          f"{record['evaluation']['exit_status']}; {record['total_seconds']:.0f} s")
    return record


def command() -> int:
    """``main`` as a command: bad input is one sentence and exit status 2."""
    main()
    return 0


if __name__ == "__main__":
    sys.exit(run_command(Path(__file__).name, command))
