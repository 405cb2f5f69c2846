"""Images per second: ``bag_embeddings`` against a per-image loop over the same model.

Both embed the same toy-world images, 16 random 8x8 patches each, with the smoke-scale
model (tiny CNN, width 32, projector 512-128), untrained (speed does not depend on the
weights), in eval mode without gradients, and average each image's patch embeddings.

- per-image loop: for each image, cut its patches, run them through the model, average;
  the way an evaluation written around a ``Dataset.__getitem__`` does it;
- ``bag_embeddings``: every patch of ``batch_size // n`` images in one forward pass.

Both run in this process, alternately, best of ``--repeats``, so a busy machine slows both
alike; the result is the ratio. ``--json PATH`` writes the table as JSON rows.

    python benchmarks/bag_embeddings.py                  # 10,000 images x 16 patches
    python benchmarks/bag_embeddings.py --images 2000 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from cooc_minimal.evaluate import bag_embeddings
from cooc_minimal.models import build_model
from cooc_minimal.patches import random_patches
from cooc_minimal.toyworld import ToyWorld


def per_image_loop(model, images: torch.Tensor, patch: int, n: int,
                   generator: torch.Generator) -> torch.Tensor:
    bags = []
    with torch.no_grad():
        for image in images:
            patches, _ = random_patches(image[None], patch, n, generator=generator)
            bags.append(model.embed(patches[0]).mean(dim=0))
    return torch.stack(bags)


def timed(fn) -> tuple[float, torch.Tensor]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000, help="toy images (10,000)")
    parser.add_argument("--n", type=int, default=16, help="patches per image (16)")
    parser.add_argument("--batch-size", type=int, default=4096,
                        help="patches per forward pass of bag_embeddings (4096)")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs of each (1)")
    parser.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    model = build_model("tiny", "512-128").eval()
    images = ToyWorld(seed=0).sample(args.images, 0).images
    patch = 8
    print(f"{args.images} toy images (32x32), {args.n} random {patch}x{patch} patches each, "
          f"tiny CNN (width 32), best of {args.repeats}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}, {platform.processor() or platform.machine()}.")
    bag_embeddings(model, images[:256], patch, args.n)  # warm up
    loop_times, batch_times = [], []
    for repeat in range(args.repeats):
        t, slow = timed(lambda r=repeat: per_image_loop(
            model, images, patch, args.n, torch.Generator().manual_seed(r)))
        loop_times.append(t)
        t, fast = timed(lambda r=repeat: bag_embeddings(
            model, images, patch, args.n, batch_size=args.batch_size,
            generator=torch.Generator().manual_seed(r)))
        batch_times.append(t)
        # Same generator, same draws: the two give the same bags.
        torch.testing.assert_close(fast, slow, atol=1e-4, rtol=1e-4)
    loop_rate, batch_rate = args.images / min(loop_times), args.images / min(batch_times)
    rows = [{"method": "per-image loop", "images_per_s": loop_rate, "speedup": 1.0},
            {"method": f"bag_embeddings (batch {args.batch_size} patches)",
             "images_per_s": batch_rate, "speedup": batch_rate / loop_rate}]
    print("| method | images/s | speed-up |")
    print("|---|---|---|")
    for row in rows:
        print(f"| {row['method']} | {row['images_per_s']:,.0f} | {row['speedup']:.1f}x |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        meta = {"images": args.images, "n_patches": args.n, "patch_size": patch,
                "threads": torch.get_num_threads(), "torch": torch.__version__,
                "repeats": args.repeats}
        args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    return rows


if __name__ == "__main__":
    main()
