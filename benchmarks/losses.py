"""Forward + backward time of each loss on the CPU, and TCR through the small Gram matrix.

    python benchmarks/losses.py            # N = 1024, D in {128, 2048, 8192}: a few minutes

Prints two markdown tables: the time of each two-view loss (and of the four
multi-patch losses, on B x n = 1024 patches), then tcr_loss through the N x N Gram
matrix against the D x D one, and saves both as JSON (default
``cooc_minimal/results/losses.json``; ``--save ""`` skips it), which chapter 3 shows.
det(I_D + c Z^T Z) = det(I_N + c Z Z^T), so when N << D
the N x N form saves a D^3 factorisation. Each time is the fastest of 10 runs at D = 128,
3 at D = 2048 and 2 at D = 8192, after one untimed run; the D x D form at D = 8192 (many
seconds) is timed once, without a warm-up run.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from cooc_minimal.cli import check_writable_file, run_command
from cooc_minimal.losses import (
    multipatch_loss,
    simclr_loss,
    spectral_loss,
    tcr_loss,
    vicreg_loss,
)
from cooc_minimal.paths import result_path
from cooc_minimal.runtime import positive_int

TWO_VIEW: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "spectral": spectral_loss,
    "vicreg": vicreg_loss,
    "tcr (one view)": lambda z1, z2: tcr_loss(z1),
    "simclr": simclr_loss,
}
PATCHES = 8  # the multi-patch rows use B = N / 8 images of 8 patches


def seconds(fn: Callable[[], torch.Tensor], repeats: int, warm_up: bool = True) -> float:
    """Fastest wall time of forward + backward over ``repeats`` runs, after one untimed run
    that pays for first calls into LAPACK and for fresh memory. The fastest run is the one
    least disturbed by other processes."""
    times = []
    for i in range(repeats + warm_up):
        start = time.perf_counter()
        fn().backward()
        if i or not warm_up:
            times.append(time.perf_counter() - start)
    return min(times)


def repeats_for(dim: int) -> int:
    return 10 if dim <= 128 else 3 if dim <= 2048 else 2


def loss_times(n: int, dims: list[int]) -> dict[str, list[float]]:
    """{loss name: [ms at each D]}."""
    g = torch.Generator().manual_seed(0)
    rows: dict[str, list[float]] = {}
    for d in dims:
        z1 = torch.randn(n, d, generator=g).requires_grad_(True)
        z2 = (z1.detach() + 0.1 * torch.randn(n, d, generator=g)).requires_grad_(True)
        z = torch.randn(n // PATCHES, PATCHES, d, generator=g).requires_grad_(True)
        for name, loss in TWO_VIEW.items():
            t = seconds(functools.partial(loss, z1, z2), repeats_for(d))
            rows.setdefault(name, []).append(1000 * t)
        for kind in ("spectral", "vicreg", "tcr", "simclr"):
            t = seconds(functools.partial(multipatch_loss, z, kind), repeats_for(d))
            rows.setdefault(f"multi-patch {kind}", []).append(1000 * t)
    return rows


def loss_table(times: dict[str, list[float]], dims: list[int]) -> str:
    lines = ["| loss | " + " | ".join(f"D = {d}" for d in dims) + " |",
             "|---|" + "---:|" * len(dims)]
    lines += [f"| {name} | " + " | ".join(f"{ms:.1f}" for ms in cells) + " |"
              for name, cells in times.items()]
    return "\n".join(lines)


def gram_times(n: int, dims: list[int]) -> list[dict[str, float]]:
    """[{D, samples_ms, features_ms}] for tcr_loss through each Gram matrix."""
    g = torch.Generator().manual_seed(1)
    rows = []
    for d in dims:
        z = (torch.randn(n, d, generator=g) / d**0.5).requires_grad_(True)
        small = seconds(lambda z=z: tcr_loss(z, gram="samples"), repeats_for(d))
        # The D x D factorisation at D = 8192 takes many seconds: time it once, cold.
        once = d > 4096
        large = seconds(lambda z=z: tcr_loss(z, gram="features"), 1 if once else 3,
                        warm_up=not once)
        rows.append({"D": d, "samples_ms": 1000 * small, "features_ms": 1000 * large})
    return rows


def gram_table(rows: list[dict[str, float]]) -> str:
    lines = ["| D | N x N form (ms) | D x D form (ms) | D x D / N x N |", "|---:|---:|---:|---:|"]
    lines += [f"| {r['D']} | {r['samples_ms']:.1f} | {r['features_ms']:.1f} | "
              f"{r['features_ms'] / r['samples_ms']:.2f} |" for r in rows]
    return "\n".join(lines)


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    """The options, checked before anything is timed (one sentence each)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--n", type=int, default=1024, help="batch size N (default 1024)")
    parser.add_argument("--dims", type=int, nargs="+", default=[128, 2048, 8192],
                        help="embedding dimensions D (default 128 2048 8192)")
    parser.add_argument("--save", default=str(result_path("losses")),
                        help="where to write the results as JSON ('' to skip)")
    args = parser.parse_args(argv)
    positive_int("--n", args.n)
    for dim in args.dims:
        positive_int("--dims", dim)
    if args.n < 2 * PATCHES:
        raise ValueError(f"--n must be at least {2 * PATCHES}, got {args.n}: the multi-patch "
                         f"losses need two images of {PATCHES} patches at least.")
    if args.save:
        check_writable_file(Path(args.save).expanduser(), "--save")
    return args


def benchmark(argv: list[str] | None) -> int:
    args = parse_arguments(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, "
          f"{platform.processor() or platform.machine()}; N = {args.n}, float32, "
          f"fastest of several forward + backward runs, in ms")
    print()
    times = loss_times(args.n, args.dims)
    print(loss_table(times, args.dims))
    print()
    print(f"tcr_loss at N = {args.n}: the two Gram forms")
    print()
    grams = gram_times(args.n, args.dims)
    print(gram_table(grams))
    if args.save:
        record = {"benchmark": "losses", "date": datetime.date.today().isoformat(),
                  "torch": torch.__version__, "threads": torch.get_num_threads(),
                  "cpus": os.cpu_count(), "machine": platform.machine(), "n": args.n,
                  "load_average_1min": os.getloadavg()[0],
                  "patches": PATCHES, "dims": args.dims, "losses_ms": times, "gram": grams}
        path = Path(args.save).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=1) + "\n")
        print(f"saved to {args.save}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_command(Path(__file__).name, lambda: benchmark(argv))


if __name__ == "__main__":
    sys.exit(main())
