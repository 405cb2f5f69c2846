"""Chapter 5's comparison with the closed form, over three seeds (``ch05_seeds.json``).

For each seed s, the toy runs of chapter 5 (``configs/smoke.toml`` with the spectral loss and
with VICReg, ``toy_spectral[_seed{s}]`` and ``toy_vicreg[_seed{s}]``) and their untrained
twin (the same architecture at the initialisation seed s gives: both runs start from it).
For every network and space (projection z, embedding h), on the parts of 1,000 toy images
(``ToyWorld(seed=0).sample(1000, 5)``, as chapter 5):

- ``gram``: ``toyworld.gram_similarity`` of the part embeddings with Proposition 3.1's
  closed form Z* (centred, weighted by p; d = min(width, V));
- ``pairs``: ``parts.ratio_fit``, the correlation over the 28 pairs of distinct parts of the
  centred inner products with the centred ratio P_uv / (p_u p_v).

And two yardsticks that need no network: one-hot parts (an embedding that only tells parts
apart) against Z*. Runs are trained through ``ensure_trained`` (existing ones are reused).

    python chapters/results/ch05_seeds.py    # about 6 minutes on 2 cores if no run exists
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch
from recording import runs_from_arguments, seed_summary, stamp

from cooc_minimal.checkpoint import load_model
from cooc_minimal.claims import untrained_twin
from cooc_minimal.config import load_config
from cooc_minimal.cooccurrence import closed_form_embedding
from cooc_minimal.parts import ratio_fit
from cooc_minimal.paths import result_path
from cooc_minimal.runtime import scale
from cooc_minimal.toyworld import ToyWorld, gram_similarity, part_embeddings
from cooc_minimal.train import ensure_trained

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
FIGURE = "ch05_seeds"
SEEDS = (0, 1, 2)
RUNS = {"spectral": ("toy_spectral", ["loss=spectral"]), "VICReg": ("toy_vicreg", [])}


def networks(runs: Path, seed: int) -> dict:
    """{"spectral": model, "VICReg": model, "untrained": model} for this seed."""
    found = {}
    for name, (folder, overrides) in RUNS.items():
        cfg = load_config("smoke", overrides + [f"seed={seed}"])
        path = ensure_trained(cfg, runs / (folder + (f"_seed{seed}" if seed else "")),
                              progress=False)
        found[name], cfg = load_model(path)
    found["untrained"] = untrained_twin(found["VICReg"], cfg)
    return found


def scores(Z: torch.Tensor, world: ToyWorld) -> dict:
    P, p = world.cooccurrence()
    reference = closed_form_embedding(P, min(Z.shape[1], world.n_parts))
    return {"gram": gram_similarity(Z, reference, p), "pairs": ratio_fit(Z, P)}


def summary(rows: list[dict]) -> list[dict]:
    """Mean and standard deviation (n - 1) over seeds, per model, space and figure."""
    return [seed_summary(rows, {"model": model, "space": space}, ("gram", "pairs"))
            for model in (*RUNS, "untrained") for space in ("projection", "embedding")]


def main(argv: list[str] | None = None) -> int:
    runs = runs_from_arguments(__doc__, argv)
    started = time.perf_counter()
    world = ToyWorld(seed=0)
    sample = world.sample(1000, 5)
    rows = []
    for seed in SEEDS:
        for model, network in networks(runs, seed).items():
            for space in ("projection", "embedding"):
                Z = part_embeddings(network, sample.images, sample.parts, world.tile,
                                    world.n_parts, space=space)
                rows.append({"model": model, "seed": seed, "space": space,
                             **scores(Z, world)})
                print(f"  seed {seed}, {model}, {space}: gram {rows[-1]['gram']:.3f}, "
                      f"pairs {rows[-1]['pairs']:.3f}", flush=True)
    one_hot = scores(torch.eye(world.n_parts, dtype=torch.float64), world)
    record = {"figure": FIGURE, "seed": list(SEEDS), "scale": scale(),
              "world": "ToyWorld(seed=0).sample(1000, 5)",
              "config": "cooc_minimal/configs/smoke.toml (loss=spectral for the spectral runs)",
              "protocol": "toyworld.part_embeddings; gram = gram_similarity with "
                          "closed_form_embedding(P, min(width, V)); pairs = parts.ratio_fit; "
                          "std over seeds (n - 1)",
              "one_hot": one_hot, "summary": summary(rows), "rows": rows,
              **stamp("ch05_seeds.py", argv, started)}
    result_path(FIGURE).write_text(json.dumps(record, indent=1) + "\n")
    for entry in record["summary"]:
        print(f"{entry['model']:>9}, {entry['space']:>10}: gram {entry['gram_mean']:.3f} +- "
              f"{entry['gram_std']:.3f}, pairs {entry['pairs_mean']:.3f} +- "
              f"{entry['pairs_std']:.3f}")
    print(f"one-hot parts: gram {one_hot['gram']:.3f}, pairs {one_hot['pairs']:.3f}; wrote "
          f"chapters/results/{FIGURE}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
