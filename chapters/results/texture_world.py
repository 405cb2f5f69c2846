"""The texture world's figures: bags of 16 tiles, untrained, trained, trained without
augmentations, over three seeds (``cooc_minimal/results/texture_world.json``).

For each seed of the network and of training (the world is always ``TextureWorld()``)
it trains ``configs/texture.toml`` with BYOL's augmentations and with ``augment = "none"``
through ``ensure_trained`` (so existing runs are reused), then measures with
``evaluate.tile_bag_accuracy`` the linear probe and the kNN (k = 20, T = 0.07) of bags of
the 16 tiles of each image, in the embedding space, on the first 2,000 images of each split:
for the trained run, for its untrained control (the same architecture and seed, no
training) and for the run without augmentations. It writes each run's figures, their mean
and standard deviation over the seeds, the Bayes accuracy with 16 tiles, and where and how
it was measured.

    python chapters/results/texture_world.py                 # about 5 minutes on 2 cores
    python chapters/results/texture_world.py --runs /tmp/tw  # train in a fresh folder

Runs go to ``--runs``, else ``$COOC_RUNS``, else ``runs/`` (as the chapters'):
``texture_vicreg`` (seed 0), ``texture_vicreg_seed1``, ..., and ``texture_vicreg_noaug...``.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from pathlib import Path

from recording import run_script, seed_folder, seed_summary, stamp

from cooc_minimal.config import Config, load_config
from cooc_minimal.evaluate import tile_bag_accuracy
from cooc_minimal.paths import result_path
from cooc_minimal.runtime import scale
from cooc_minimal.train import ensure_trained

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
FIGURE = "texture_world"
CONFIG = "texture"
SEEDS = (0, 1, 2)
N_TILES = 16
LIMIT = 2000  # images of each split the probe and the kNN read (chapter 7's smoke scale)
AUGMENTS = {"byol": "trained", "none": "trained without augmentations"}


def run_folder(runs: Path, augment: str, seed: int) -> Path:
    """``texture_vicreg``, ``texture_vicreg_noaug``, with ``_seed{s}`` for seeds other than 0."""
    return runs / seed_folder("texture_vicreg_noaug" if augment == "none" else "texture_vicreg",
                              seed)


def trained_seconds(folder: Path) -> float:
    """The training time the run recorded (the last ``elapsed_s`` of its metrics.csv)."""
    with open(folder / "metrics.csv", newline="") as handle:
        return float(list(csv.DictReader(handle))[-1]["elapsed_s"])


def measure(runs: Path, augment: str, seed: int) -> list[dict]:
    """Train (unless done) one run and measure it; for BYOL runs also the untrained control."""
    folder = run_folder(runs, augment, seed)
    cfg = load_config(CONFIG, [f"seed={seed}", f"augment={augment}"])
    checkpoint = ensure_trained(cfg, folder, progress=False)
    figures = tile_bag_accuracy(checkpoint, n_tiles=N_TILES, limit=LIMIT)
    rows = [{"model": AUGMENTS[augment], "seed": seed, "probe": figures["probe_acc"],
             "kNN": figures["knn_acc"], "train_s": round(trained_seconds(folder), 1),
             "run": folder.name, "bayes": figures["bayes_acc"]}]
    if augment == "byol":  # the control: same architecture and seed, never trained
        rows.append({"model": "untrained", "seed": seed, "probe": figures["untrained_probe_acc"],
                     "kNN": figures["untrained_knn_acc"], "train_s": 0.0, "run": folder.name,
                     "bayes": figures["bayes_acc"]})
    print(" ", ", ".join(f"{r['model']} seed {seed}: probe {r['probe']:.3f}, kNN "
                         f"{r['kNN']:.3f}" for r in rows), flush=True)
    return rows


def summary(rows: list[dict]) -> list[dict]:
    """Mean and standard deviation (n - 1) over the seeds, per model and read-out."""
    return [seed_summary(rows, {"model": model}, ("probe", "kNN", "train_s"))
            for model in ("untrained", *AUGMENTS.values())]


def run_folders(runs: Path) -> dict[Path, Config]:
    """Every run folder ``measure`` reads or trains, with its config (checked first)."""
    return {run_folder(runs, augment, seed): load_config(CONFIG, [f"seed={seed}",
                                                                  f"augment={augment}"])
            for augment in AUGMENTS for seed in SEEDS}


def record_figure(runs: Path, argv: list[str] | None) -> int:
    started = time.perf_counter()
    rows = []
    for augment in AUGMENTS:
        for seed in SEEDS:
            print(f"{CONFIG}, augment={augment}, seed {seed} (runs in {runs}) ...", flush=True)
            rows += measure(runs, augment, seed)
    bayes = rows[0].pop("bayes")
    for row in rows:
        row.pop("bayes", None)
    record = {"figure": FIGURE, "seed": list(SEEDS), "scale": scale(),
              "world": "TextureWorld(): cooc_minimal.data.get_dataset('textureworld')",
              "config": f"cooc_minimal/configs/{CONFIG}.toml, seed and augment overridden",
              "protocol": f"bags of the {N_TILES} tiles of each image, embedding space, first "
                          f"{LIMIT} images of each split; evaluate.tile_bag_accuracy "
                          "(linear_probe; knn_classify k=20, T=0.07); std over seeds (n - 1)",
              "bayes": bayes, "summary": summary(rows), "rows": rows,
              **stamp("texture_world.py", argv, started)}
    result_path(FIGURE).write_text(json.dumps(record, indent=1) + "\n")
    for entry in record["summary"]:
        print(f"{entry['model']}: probe {entry['probe_mean']:.3f} +- {entry['probe_std']:.3f}, "
              f"kNN {entry['kNN_mean']:.3f} +- {entry['kNN_std']:.3f}")
    print(f"Bayes with {N_TILES} tiles: {bayes:.3f}; wrote cooc_minimal/results/{FIGURE}.json")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_script(__file__, __doc__, argv, needed=run_folders,
                      record=lambda runs: record_figure(runs, argv))


if __name__ == "__main__":
    sys.exit(main())
