"""Images per second: ``bag_embeddings`` against a per-image loop over the same model.

Both embed the same toy-world images, 16 random 8x8 patches each, with the smoke-scale
model (tiny CNN, width 32, projector 512-128), untrained (speed does not depend on the
weights), in eval mode without gradients, and average each image's patch embeddings.

- per-image loop: for each image, cut its patches, run them through the model, average;
  the way an evaluation written around a ``Dataset.__getitem__`` does it;
- ``bag_embeddings``: every patch of ``batch_size // n`` images in one forward pass.

Both run in this process with the same random draws (the bags are checked equal), on one
thread and on all of torch's threads, alternately, best of ``--repeats``, so a busy machine
slows both alike; the result is the ratio. ``--json PATH`` writes the rows as JSON.

    python benchmarks/bag_embeddings.py                  # 10,000 images x 16 patches
    python benchmarks/bag_embeddings.py --images 2000 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

from cooc_minimal.bags import bag_embeddings, default_batch_size
from cooc_minimal.cli import check_writable_file, run_command
from cooc_minimal.models import build_model
from cooc_minimal.patches import random_patches
from cooc_minimal.runtime import positive_int
from cooc_minimal.toyworld import ToyWorld


def per_image_loop(model, images: torch.Tensor, patch: int, n: int,
                   generator: torch.Generator) -> torch.Tensor:
    bags = []
    with torch.no_grad():
        for image in images:
            patches, _ = random_patches(image[None], patch, n, generator=generator)
            bags.append(model.embed(patches[0]).mean(dim=0))
    return torch.stack(bags)


def timed(fn, threads: int) -> tuple[float, torch.Tensor]:
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        start = time.perf_counter()
        out = fn()
        return time.perf_counter() - start, out
    finally:
        torch.set_num_threads(before)


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    """The options, checked before anything is timed (one sentence each)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--images", type=int, default=10_000, help="toy images (10,000)")
    parser.add_argument("--n", type=int, default=16, help="patches per image (16)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="patches per forward pass of bag_embeddings (its default)")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs of each (1)")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    for option in ("images", "n", "batch_size", "repeats"):
        value = getattr(args, option)
        if value is not None:
            positive_int("--" + option.replace("_", "-"), value)
    if args.json:
        args.json = Path(args.json).expanduser()
        check_writable_file(args.json, "--json")
    return args


def benchmark(argv: list[str] | None) -> int:
    args = parse_arguments(argv)
    torch.manual_seed(0)
    model = build_model("tiny", "512-128").eval()
    batch = args.batch_size or default_batch_size(model)
    images = ToyWorld(seed=0).sample(args.images, 0).images
    patch, threads = 8, torch.get_num_threads()
    print(f"{args.images} toy images (32x32), {args.n} random {patch}x{patch} patches each, "
          f"tiny CNN (width 32), {batch} patches per batch, best of {args.repeats}, "
          f"torch {torch.__version__}, {platform.processor() or platform.machine()}.")
    bag_embeddings(model, images[:256], patch, args.n)  # warm up
    rows = []
    for n_threads in sorted({1, threads}):
        loop_times, batch_times = [], []
        for repeat in range(args.repeats):
            t, slow = timed(lambda r=repeat: per_image_loop(
                model, images, patch, args.n, torch.Generator().manual_seed(r)), n_threads)
            loop_times.append(t)
            t, fast = timed(lambda r=repeat: bag_embeddings(
                model, images, patch, args.n, batch_size=batch,
                generator=torch.Generator().manual_seed(r)), n_threads)
            batch_times.append(t)
            torch.testing.assert_close(fast, slow, atol=1e-4, rtol=1e-4)  # same bags
        loop_rate = args.images / min(loop_times)
        batch_rate = args.images / min(batch_times)
        rows.append({"threads": n_threads, "per_image_loop": loop_rate,
                     "bag_embeddings": batch_rate, "speedup": batch_rate / loop_rate})
    print("| threads | per-image loop (images/s) | bag_embeddings (images/s) | speed-up |")
    print("|---|---|---|---|")
    for row in rows:
        print(f"| {row['threads']} | {row['per_image_loop']:,.0f} | "
              f"{row['bag_embeddings']:,.0f} | {row['speedup']:.1f}x |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        meta = {"images": args.images, "n_patches": args.n, "patch_size": patch,
                "batch_size": batch, "torch": torch.__version__, "repeats": args.repeats,
                "command": "python benchmarks/bag_embeddings.py"
                           + (" " + " ".join(argv) if argv else ""),
                "note": f"{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f} "
                        f"at the end"}
        args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_command(Path(__file__).name, lambda: benchmark(argv))


if __name__ == "__main__":
    sys.exit(main())
