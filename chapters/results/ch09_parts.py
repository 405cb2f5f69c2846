"""Chapter 9's part-level claims on the texture world, over three seeds
(``cooc_minimal/results/ch09_parts.json``).

For each seed s of the network and of training (the world is always ``TextureWorld()``)
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

Beside them, on the same tiles, chapter 9's first texture check (section 1), ``part_gap``:
for 500 query tiles, the mean cosine to the other tiles of the query's part minus the mean
cosine to tiles of other parts; the check is ``gap >= PART_GAP`` (0.1).

    python chapters/results/ch09_parts.py                  # about 5 minutes on 2 cores
    python chapters/results/ch09_parts.py --runs /tmp/tw   # train in a fresh folder

Runs go to ``--runs``, else ``$COOC_RUNS``, else ``runs/`` (as the chapters'):
``texture_vicreg`` (seed 0), ``texture_vicreg_seed1``, ..., ``texture_independent_vicreg``,
``texture_independent_vicreg_seed1``, ...
"""

from __future__ import annotations

import inspect
import json
import sys
import time
from pathlib import Path

import torch
from recording import mean_std, run_script, seed_folder, seed_summary, stamp

from cooc_minimal import parts
from cooc_minimal.checkpoint import load_model
from cooc_minimal.claims import untrained_twin
from cooc_minimal.config import Config, load_config
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
#: the check's threshold (fixed in chapter 9 before any seed was measured) and its queries:
#: the defaults of the claim parts.tiles_nearer_their_part
_DEFAULTS = inspect.signature(parts.tiles_nearer_their_part).parameters
PART_GAP, PART_GAP_QUERIES = _DEFAULTS["threshold"].default, _DEFAULTS["n_queries"].default


def run_folder(runs: Path, independent: bool, seed: int) -> Path:
    """``texture_vicreg``, ``texture_independent_vicreg``, with ``_seed{s}`` for s > 0."""
    return runs / seed_folder("texture_independent_vicreg" if independent else "texture_vicreg",
                              seed)


def trained_model(runs: Path, independent: bool, seed: int):
    """Train (unless done) the seed's run on one world; returns (model, cfg, folder)."""
    overrides = [f"seed={seed}"] + (["dataset=textureworld_independent"] if independent else [])
    folder = run_folder(runs, independent, seed)
    model, cfg = load_model(ensure_trained(load_config(CONFIG, overrides), folder,
                                           progress=False))
    return model, cfg, folder


def measure(runs: Path, seed: int) -> tuple[list[dict], list[dict]]:
    """Every claim for the three models of one seed: one row per claim and model; and one
    part-gap row per model."""
    linked = TextureWorld()
    independent = TextureWorld(independent_parts=True)
    model, cfg, folder = trained_model(runs, False, seed)
    control, _, control_folder = trained_model(runs, True, seed)
    cases = (("trained", model, linked, folder), ("untrained", untrained_twin(model, cfg),
                                                  linked, folder),
             ("independent world", control, independent, control_folder))
    rows, gaps = [], []
    for name, network, world, where in cases:
        sample = world.sample(N_IMAGES, SAMPLE_SEED)
        for verdict in parts.measure_parts(network, sample, world):
            rows.append({**verdict.row(name), "seed": seed, "run": where.name})
        gaps.append({"model": name, "seed": seed, "run": where.name,
                     **parts.part_gap(network, sample, world, n_queries=PART_GAP_QUERIES)})
    print("  " + "; ".join(f"{r['model']}: {r['figure']:.3f}" for r in rows), flush=True)
    print("  part gap: " + "; ".join(f"{r['model']}: {r['gap']:.3f}" for r in gaps), flush=True)
    return rows, gaps


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


def part_gap_record(gaps: list[dict]) -> dict:
    """The part gap's rows and, per model, mean and standard deviation (n - 1) over seeds."""
    return {"threshold": PART_GAP, "queries": PART_GAP_QUERIES,
            "summary": [seed_summary(gaps, {"model": model}, ("same part", "other parts", "gap"),
                                     " ") for model in MODELS],
            "rows": gaps}


def one_hot_reference() -> float:
    """The Gram similarity of one-hot parts (Z = I) with the closed form: parts told
    apart, nothing known of their co-occurrence."""
    P, p = parts.linked_cooccurrence(TextureWorld())
    return gram_similarity(torch.eye(len(p)), closed_form_embedding(P, len(p)), p)


def run_folders(runs: Path) -> dict[Path, Config]:
    """Every run folder ``trained_model`` reads or trains, with its config (checked first)."""
    return {run_folder(runs, independent, seed): load_config(
                CONFIG, [f"seed={seed}"]
                + (["dataset=textureworld_independent"] if independent else []))
            for seed in SEEDS for independent in (False, True)}


def record_figure(runs: Path, argv: list[str] | None) -> int:
    torch.set_num_threads(min(2, torch.get_num_threads()))
    started = time.perf_counter()
    rows, gaps = [], []
    for seed in SEEDS:
        print(f"{CONFIG}, seed {seed} (runs in {runs}) ...", flush=True)
        claims, seed_gaps = measure(runs, seed)
        rows, gaps = rows + claims, gaps + seed_gaps
    record = {"figure": FIGURE, "seed": list(SEEDS), "scale": scale(),
              "world": "TextureWorld() and TextureWorld(independent_parts=True)",
              "config": f"cooc_minimal/configs/{CONFIG}.toml, seed (and dataset) overridden",
              "protocol": f"the 16 tiles of {N_IMAGES} images drawn with seed {SAMPLE_SEED} "
                          "from the run's own world, embedding space; cooc_minimal.parts."
                          "measure_parts (1,000 query tiles for the neighbour claims; part "
                          "means against the linked world's closed form); untrained = "
                          "claims.untrained_twin of the trained run; part_gap: "
                          f"{PART_GAP_QUERIES} query tiles (parts.query_rows), every other "
                          "tile of the sample as key; std over seeds (n - 1)",
              "one_hot_gram_similarity": one_hot_reference(),
              "summary": summary(rows), "rows": rows, "part_gap": part_gap_record(gaps),
              **stamp("ch09_parts.py", argv, started)}
    result_path(FIGURE).write_text(json.dumps(record, indent=1) + "\n")
    for entry in record["summary"]:
        print(f"{entry['claim']} | {entry['model']}: {entry['mean']:.3f} +- {entry['std']:.3f}"
              f" (threshold {entry['threshold']})")
    for entry in record["part_gap"]["summary"]:
        print(f"part gap | {entry['model']}: {entry['gap mean']:.3f} +- {entry['gap std']:.3f}"
              f" (threshold {PART_GAP})")
    print(f"wrote cooc_minimal/results/{FIGURE}.json")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_script(__file__, __doc__, argv, needed=run_folders,
                      record=lambda runs: record_figure(runs, argv))


if __name__ == "__main__":
    sys.exit(main())
