"""Forward + backward time of each loss on the CPU, and TCR through the small Gram matrix.

    python benchmarks/losses.py            # N = 1024, D in {128, 2048, 8192}: a few minutes

Prints two markdown tables: the time of each two-view loss (and of the four
multi-patch losses, on B x n = 1024 patches), then tcr_loss through the N x N Gram
matrix against the D x D one. det(I_D + c Z^T Z) = det(I_N + c Z Z^T), so when N << D
the N x N form saves a D^3 factorisation. Each time is the fastest of 10 runs at D = 128,
3 at D = 2048 and 2 at D = 8192, after one untimed run; the D x D form at D = 8192 (many
seconds) is timed once, without a warm-up run.
"""

from __future__ import annotations

import argparse
import functools
import platform
import time
from collections.abc import Callable

import torch

from cooc_minimal.losses import (
    multipatch_loss,
    simclr_loss,
    spectral_loss,
    tcr_loss,
    vicreg_loss,
)

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


def loss_table(n: int, dims: list[int]) -> str:
    g = torch.Generator().manual_seed(0)
    lines = ["| loss | " + " | ".join(f"D = {d}" for d in dims) + " |",
             "|---|" + "---:|" * len(dims)]
    rows: dict[str, list[str]] = {}
    for d in dims:
        z1 = torch.randn(n, d, generator=g).requires_grad_(True)
        z2 = (z1.detach() + 0.1 * torch.randn(n, d, generator=g)).requires_grad_(True)
        z = torch.randn(n // PATCHES, PATCHES, d, generator=g).requires_grad_(True)
        for name, loss in TWO_VIEW.items():
            t = seconds(functools.partial(loss, z1, z2), repeats_for(d))
            rows.setdefault(name, []).append(f"{1000 * t:.1f}")
        for kind in ("spectral", "vicreg", "tcr", "simclr"):
            t = seconds(functools.partial(multipatch_loss, z, kind), repeats_for(d))
            rows.setdefault(f"multi-patch {kind}", []).append(f"{1000 * t:.1f}")
    lines += [f"| {name} | " + " | ".join(cells) + " |" for name, cells in rows.items()]
    return "\n".join(lines)


def gram_table(n: int, dims: list[int]) -> str:
    g = torch.Generator().manual_seed(1)
    lines = ["| D | N x N form (ms) | D x D form (ms) | D x D / N x N |", "|---:|---:|---:|---:|"]
    for d in dims:
        z = (torch.randn(n, d, generator=g) / d**0.5).requires_grad_(True)
        small = seconds(lambda z=z: tcr_loss(z, gram="samples"), repeats_for(d))
        # The D x D factorisation at D = 8192 takes many seconds: time it once, cold.
        once = d > 4096
        large = seconds(lambda z=z: tcr_loss(z, gram="features"), 1 if once else 3,
                        warm_up=not once)
        lines.append(f"| {d} | {1000 * small:.1f} | {1000 * large:.1f} | {large / small:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1024, help="batch size N (default 1024)")
    parser.add_argument("--dims", type=int, nargs="+", default=[128, 2048, 8192],
                        help="embedding dimensions D (default 128 2048 8192)")
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, "
          f"{platform.processor() or platform.machine()}; N = {args.n}, float32, "
          f"fastest of several forward + backward runs, in ms")
    print()
    print(loss_table(args.n, args.dims))
    print()
    print(f"tcr_loss at N = {args.n}: the two Gram forms")
    print()
    print(gram_table(args.n, args.dims))


if __name__ == "__main__":
    main()
