"""Chapter 5's comparison with the closed form, over three seeds (``ch05_seeds.json``).

For each seed s, the toy runs of chapter 5 (``configs/smoke.toml`` with the spectral loss and
with VICReg, ``toy_spectral[_seed{s}]`` and ``toy_vicreg[_seed{s}]``), their untrained
twin (the same architecture at the initialisation seed s gives: both runs start from it),
and the control without co-occurrence: the VICReg config trained on ``toyworld_independent``
(the same parts, as often, drawn whatever the class, so P = p p^T),
``toy_independent_vicreg[_seed{s}]``. Every network is measured on the LINKED world, the
way the others are: for every network and space (projection z, embedding h), on the parts
of 1,000 toy images (``ToyWorld(seed=0).sample(1000, 5)``, as chapter 5):

- ``gram``: ``toyworld.gram_similarity`` of the part embeddings with Proposition 3.1's
  closed form Z* (centred, weighted by p; d = min(width, V));
- ``pairs``: ``parts.ratio_fit``, the correlation over the 28 pairs of distinct parts of the
  centred inner products with the centred ratio P_uv / (p_u p_v).

And two yardsticks that need no network: one-hot parts (an embedding that only tells parts
apart) against Z*. ``misfit`` holds chapter 5 cell 15's comparison per seed, for the spectral
run and the untrained twin (projection): the similarity with Z* and with Z', the closed form
for P' = (n-1)/n P + diag(p)/n (n = the spectral config's ``n_patches``), and the misfit
ratio (1 - sim with Z') / (1 - sim with Z*). Runs are trained through ``ensure_trained``
(existing ones are reused).

    python chapters/results/ch05_seeds.py    # about 9 minutes on 2 cores if no run exists
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch
from recording import run_script, seed_folder, seed_summary, stamp

from cooc_minimal.checkpoint import load_model
from cooc_minimal.claims import untrained_twin
from cooc_minimal.config import Config, load_config
from cooc_minimal.cooccurrence import closed_form_embedding, self_included_cooccurrence
from cooc_minimal.parts import ratio_fit
from cooc_minimal.paths import result_path
from cooc_minimal.runtime import scale
from cooc_minimal.toyworld import ToyWorld, gram_similarity, part_embeddings
from cooc_minimal.train import ensure_trained

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
FIGURE = "ch05_seeds"
SEEDS = (0, 1, 2)
CONTROL = "VICReg, no co-occurrence"
RUNS = {"spectral": ("toy_spectral", ["loss=spectral"]), "VICReg": ("toy_vicreg", []),
        CONTROL: ("toy_independent_vicreg", ["dataset=toyworld_independent"])}
MODELS = ("spectral", "VICReg", "untrained", CONTROL)  # the order of the summary
MISFIT_MODELS = ("spectral", "untrained")  # chapter 5 cell 15: the run fits P', not P


def networks(runs: Path, seed: int) -> tuple[dict, int]:
    """{"spectral": model, "VICReg": model, CONTROL: model, "untrained": model} for this
    seed, and the spectral config's patches per image (the n of P')."""
    found, configs = {}, {}
    for name, (folder, overrides) in RUNS.items():
        cfg = load_config("smoke", overrides + [f"seed={seed}"])
        path = ensure_trained(cfg, runs / seed_folder(folder, seed),
                              progress=False)
        found[name], configs[name] = load_model(path)
    found["untrained"] = untrained_twin(found["VICReg"], configs["VICReg"])
    return {name: found[name] for name in MODELS}, configs["spectral"].n_patches


def scores(Z: torch.Tensor, world: ToyWorld) -> dict:
    P, p = world.cooccurrence()
    reference = closed_form_embedding(P, min(Z.shape[1], world.n_parts))
    return {"gram": gram_similarity(Z, reference, p), "pairs": ratio_fit(Z, P)}


def misfit(Z: torch.Tensor, world: ToyWorld, n: int) -> dict:
    """Cell 15's figures: similarity with Z* (for P) and Z' (for P'), and the misfit ratio."""
    P, p = world.cooccurrence()
    P_all = self_included_cooccurrence(P, n)
    star = gram_similarity(Z, closed_form_embedding(P, world.n_parts), p)
    fitted = gram_similarity(Z, closed_form_embedding(P_all, world.n_parts), p)
    return {"against_star": star, "against_prime": fitted,
            "ratio": (1 - fitted) / (1 - star)}


def summary(rows: list[dict]) -> list[dict]:
    """Mean and standard deviation (n - 1) over seeds, per model, space and figure."""
    return [seed_summary(rows, {"model": model, "space": space}, ("gram", "pairs"))
            for model in MODELS for space in ("projection", "embedding")]


def measure(runs: Path, world: ToyWorld) -> tuple[list[dict], list[dict], int]:
    """Every seed's rows (gram and pairs) and misfit rows, and the n of P'."""
    sample = world.sample(1000, 5)
    rows, misfits = [], []
    for seed in SEEDS:
        found, n = networks(runs, seed)
        for model, network in found.items():
            for space in ("projection", "embedding"):
                Z = part_embeddings(network, sample.images, sample.parts, world.tile,
                                    world.n_parts, space=space)
                rows.append({"model": model, "seed": seed, "space": space,
                             **scores(Z, world)})
                print(f"  seed {seed}, {model}, {space}: gram {rows[-1]['gram']:.3f}, "
                      f"pairs {rows[-1]['pairs']:.3f}", flush=True)
                if model in MISFIT_MODELS and space == "projection":
                    misfits.append({"model": model, "seed": seed, **misfit(Z, world, n)})
    return rows, misfits, n


def run_folders(runs: Path) -> dict[Path, Config]:
    """Every run folder ``networks`` reads or trains, with its config (checked first)."""
    return {runs / seed_folder(folder, seed):
            load_config("smoke", overrides + [f"seed={seed}"])
            for seed in SEEDS for folder, overrides in RUNS.values()}


def record_figure(runs: Path, argv: list[str] | None) -> int:
    started = time.perf_counter()
    world = ToyWorld(seed=0)
    rows, misfits, n = measure(runs, world)
    one_hot = scores(torch.eye(world.n_parts, dtype=torch.float64), world)
    record = {"figure": FIGURE, "seed": list(SEEDS), "scale": scale(),
              "world": "ToyWorld(seed=0).sample(1000, 5)",
              "config": "cooc_minimal/configs/smoke.toml (loss=spectral for the spectral runs; "
                        f"dataset=toyworld_independent for {CONTROL!r}, measured on the "
                        "linked world as the others)",
              "protocol": "toyworld.part_embeddings; gram = gram_similarity with "
                          "closed_form_embedding(P, min(width, V)); pairs = parts.ratio_fit; "
                          "std over seeds (n - 1)",
              "one_hot": one_hot, "summary": summary(rows), "rows": rows,
              "misfit": {"n_patches": n, "space": "projection",
                         "protocol": "gram_similarity with closed_form_embedding(P, V) "
                                     "(against_star) and with closed_form_embedding(P', V), "
                                     "P' = (n-1)/n P + diag(p)/n (against_prime); ratio = "
                                     "(1 - against_prime) / (1 - against_star)",
                         "summary": [seed_summary(misfits, {"model": model},
                                                  ("against_star", "against_prime", "ratio"))
                                     for model in MISFIT_MODELS],
                         "rows": misfits},
              **stamp("ch05_seeds.py", argv, started)}
    result_path(FIGURE).write_text(json.dumps(record, indent=1) + "\n")
    for entry in record["summary"]:
        print(f"{entry['model']:>23}, {entry['space']:>10}: gram {entry['gram_mean']:.3f} +- "
              f"{entry['gram_std']:.3f}, pairs {entry['pairs_mean']:.3f} +- "
              f"{entry['pairs_std']:.3f}")
    for entry in record["misfit"]["summary"]:
        print(f"misfit ratio (n = {n}), {entry['model']}: {entry['ratio_mean']:.3f} +- "
              f"{entry['ratio_std']:.3f}")
    print(f"one-hot parts: gram {one_hot['gram']:.3f}, pairs {one_hot['pairs']:.3f}; wrote "
          f"cooc_minimal/results/{FIGURE}.json")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_script(__file__, __doc__, argv, needed=run_folders,
                      record=lambda runs: record_figure(runs, argv))


if __name__ == "__main__":
    sys.exit(main())
