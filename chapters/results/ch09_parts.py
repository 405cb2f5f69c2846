"""Chapter 9's part-level claims on the texture world, over three seeds
(``cooc_minimal/results/ch09_parts.json``).

For each seed s of the network and of training (the world is always ``TextureWorld(seed=0)``)
it trains, through ``ensure_trained`` (existing runs are reused), ``configs/texture.toml`` on
the linked world and on the independent-parts control world (``textureworld_independent``),
and measures every claim of ``cooc_minimal.parts`` (``parts.CLAIMS``, default thresholds) on
the tiles of 400 images drawn with seed 9 from the world the run was trained on:

- "trained": the run on the linked world;
- "untrained": its untrained twin (``claims.untrained_twin``: the same architecture and
  seed, never trained), on the same images;
- "independent world": the run on the independent world, on images of that world, compared
  with the linked world's co-occurrence (``parts.linked_cooccurrence``).

It writes each figure, their mean and standard deviation (n - 1) per claim and model, and
where and how they were measured. Chapter 9 shows this table beside its live seed-0 figures.

    python chapters/results/ch09_parts.py                  # about 5 minutes on 2 cores
    python chapters/results/ch09_parts.py --runs /tmp/tw   # train in a fresh folder

Runs go to ``--runs``, else ``$COOC_RUNS``, else ``runs/`` (as the chapters'):
``texture_vicreg`` (seed 0), ``texture_vicreg_seed1``, ..., ``texture_independent_vicreg``,
``texture_independent_vicreg_seed1``, ...
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch
from recording import mean_std, runs_from_arguments, stamp

from cooc_minimal import parts
from cooc_minimal.checkpoint import load_model
from cooc_minimal.claims import untrained_twin
from cooc_minimal.config import load_config
from cooc_minimal.cooccurrence import closed_form_embedding
from cooc_minimal.paths import result_path
from cooc_minimal.runtime import scale
from cooc_minimal.textureworld import TextureWorld
from cooc_minimal.toyworld import gram_similarity
from cooc_minimal.train import ensure_trained

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
FIGURE = "ch09_parts"
CONFIG = "texture"
SEEDS = (0, 1, 2)
N_IMAGES = 400  # images whose 16 tiles are measured (6,400 tiles, 1,000 of them queries)
SAMPLE_SEED = 9  # the seed those images are drawn with, in both worlds
MODELS = ("trained", "untrained", "independent world")


def run_folder(runs: Path, independent: bool, seed: int) -> Path:
    """``texture_vicreg``, ``texture_independent_vicreg``, with ``_seed{s}`` for s > 0."""
    return runs / ("texture_" + ("independent_" if independent else "") + "vicreg"
                   + (f"_seed{seed}" if seed else ""))


def trained_model(runs: Path, independent: bool, seed: int):
    """Train (unless done) the seed's run on one world; returns (model, cfg, folder)."""
    overrides = [f"seed={seed}"] + (["dataset=textureworld_independent"] if independent else [])
    folder = run_folder(runs, independent, seed)
    model, cfg = load_model(ensure_trained(load_config(CONFIG, overrides), folder,
                                           progress=False))
    return model, cfg, folder


def measure(runs: Path, seed: int) -> list[dict]:
    """Every claim for the three models of one seed: one row per claim and model."""
    linked = TextureWorld(seed=0)
    independent = TextureWorld(seed=0, independent_parts=True)
    model, cfg, folder = trained_model(runs, False, seed)
    control, _, control_folder = trained_model(runs, True, seed)
    cases = (("trained", model, linked, folder), ("untrained", untrained_twin(model, cfg),
                                                  linked, folder),
             ("independent world", control, independent, control_folder))
    rows = []
    for name, network, world, where in cases:
        sample = world.sample(N_IMAGES, SAMPLE_SEED)
        for verdict in parts.measure_parts(network, sample, world):
            rows.append({**verdict.row(name), "seed": seed, "run": where.name})
    print("  " + "; ".join(f"{r['model']}: {r['figure']:.3f}" for r in rows), flush=True)
    return rows


def summary(rows: list[dict]) -> list[dict]:
    """Mean and standard deviation (n - 1) over the seeds, per claim and model."""
    table = []
    for claim in dict.fromkeys(r["claim"] for r in rows):
        for model in MODELS:
            mine = [r for r in rows if r["claim"] == claim and r["model"] == model]
            mean, std = mean_std([r["figure"] for r in mine])
            table.append({"claim": claim, "model": model, "seeds": len(mine),
                          "mean": mean, "std": std,
                          "threshold": mine[0]["threshold"],
                          "holds_for_every_seed": all(r["holds"] == "yes" for r in mine)})
    return table


def one_hot_reference() -> float:
    """The Gram similarity of one-hot parts (Z = I) with the closed form: parts told
    apart, nothing known of their co-occurrence."""
    P, p = parts.linked_cooccurrence(TextureWorld(seed=0))
    return gram_similarity(torch.eye(len(p)), closed_form_embedding(P, len(p)), p)


def main(argv: list[str] | None = None) -> int:
    runs = runs_from_arguments(__doc__, argv)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    started = time.perf_counter()
    rows = []
    for seed in SEEDS:
        print(f"{CONFIG}, seed {seed} (runs in {runs}) ...", flush=True)
        rows += measure(runs, seed)
    record = {"figure": FIGURE, "seed": list(SEEDS), "scale": scale(),
              "world": "TextureWorld(seed=0) and TextureWorld(seed=0, independent_parts=True)",
              "config": f"cooc_minimal/configs/{CONFIG}.toml, seed (and dataset) overridden",
              "protocol": f"the 16 tiles of {N_IMAGES} images drawn with seed {SAMPLE_SEED} "
                          "from the run's own world, embedding space; cooc_minimal.parts."
                          "measure_parts (1,000 query tiles for the neighbour claims; part "
                          "means against the linked world's closed form); untrained = "
                          "claims.untrained_twin of the trained run; std over seeds (n - 1)",
              "one_hot_gram_similarity": one_hot_reference(),
              "summary": summary(rows), "rows": rows,
              **stamp("ch09_parts.py", argv, started)}
    result_path(FIGURE).write_text(json.dumps(record, indent=1) + "\n")
    for entry in record["summary"]:
        print(f"{entry['claim']} | {entry['model']}: {entry['mean']:.3f} +- {entry['std']:.3f}"
              f" (threshold {entry['threshold']})")
    print(f"wrote cooc_minimal/results/{FIGURE}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
