"""Chapter 7's toy-world figures over three seeds (``cooc_minimal/results/ch07_toy_seeds.json``).

For each seed s, the toy runs of ``configs/smoke.toml`` (``toy_vicreg[_seed{s}]``, with the
spectral loss ``toy_spectral[_seed{s}]``, with a 4-wide projector for 2 epochs
``toy_vicreg_proj4[_seed{s}]``) and the untrained twin of each architecture at seed s. On
``ToyWorld(seed=0)``'s splits (the first 2,000 training and 1,000 test images, as chapter 7):

- ``tiles``: linear probe and kNN (k = 20, T = 0.07) of bags of 1 and of all 16 tiles, in the
  embedding space (chapter 7, section 4);
- ``spaces``: the probe of bags of 16 tiles in the embedding and in the projection space, for
  the wide and the 4-wide projector (section 7);
- ``convergence``: the centred same-minus-different gap of bags of 1 and 64 random 8x8
  patches against the whole image, 500 test images (section 8).

    python chapters/results/ch07_toy_seeds.py    # about 3 minutes on 2 cores, runs existing
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch
from recording import runs_from_arguments, seed_summary, stamp

from cooc_minimal.bags import bag_embeddings
from cooc_minimal.checkpoint import load_model
from cooc_minimal.claims import untrained_twin
from cooc_minimal.config import load_config
from cooc_minimal.data import get_dataset
from cooc_minimal.evaluate import accuracy, knn_classify, linear_probe, multiscale_convergence
from cooc_minimal.paths import result_path
from cooc_minimal.runtime import scale
from cooc_minimal.train import ensure_trained

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
FIGURE = "ch07_toy_seeds"
SEEDS = (0, 1, 2)
RUNS = {"VICReg": ("toy_vicreg", []), "spectral": ("toy_spectral", ["loss=spectral"]),
        "VICReg, projector 512-4": ("toy_vicreg_proj4", ["projector=512-4", "epochs=2"])}


def networks(runs: Path, seed: int) -> dict:
    found = {}
    for name, (folder, overrides) in RUNS.items():
        cfg = load_config("smoke", overrides + [f"seed={seed}"])
        path = ensure_trained(cfg, runs / (folder + (f"_seed{seed}" if seed else "")),
                              progress=False)
        found[name], cfg = load_model(path)
        found["untrained" if name == "VICReg" else f"untrained, {name}"] = untrained_twin(
            found[name], cfg)
    return found


def read_out(model, data, space: str, counts: list[int]) -> dict:
    (train_x, train_y), (test_x, test_y) = data
    tr = bag_embeddings(model, train_x, 8, counts, space=space, grid=True,
                        generator=torch.Generator().manual_seed(0))
    te = bag_embeddings(model, test_x, 8, counts, space=space, grid=True,
                        generator=torch.Generator().manual_seed(1))
    return {n: (linear_probe(tr[n], train_y, te[n], test_y, 10).accuracy,
                accuracy(knn_classify(tr[n], train_y, te[n], n_classes=10), test_y))
            for n in counts}


def measure(runs: Path, seed: int, data) -> list[dict]:
    rows = []
    found = networks(runs, seed)
    for name in ("VICReg", "spectral", "untrained"):
        tiles = read_out(found[name], data, "embedding", [1, 16])
        rows += [{"part": "tiles", "model": name, "seed": seed, "n": n, "probe": p, "kNN": k}
                 for n, (p, k) in tiles.items()]
    for name in ("VICReg", "VICReg, projector 512-4", "untrained, VICReg, projector 512-4"):
        for space in ("embedding", "projection"):
            probe = read_out(found[name], data, space, [16])[16][0]
            rows.append({"part": "spaces", "model": name, "seed": seed, "space": space,
                         "probe": probe})
    images = data[1][0][:500]
    for name in ("VICReg", "untrained"):
        result = multiscale_convergence(found[name], images, 8, [1, 64],
                                        generator=torch.Generator().manual_seed(0))
        rows.append({"part": "convergence", "model": name, "seed": seed,
                     "gap_1": result.gap[0].item(), "gap_64": result.gap[-1].item()})
    print(f"  seed {seed}: {len(rows)} rows", flush=True)
    return rows


def summary(rows: list[dict]) -> list[dict]:
    """Mean and standard deviation (n - 1) over seeds of every figure, per row key."""
    figures = ("probe", "kNN", "gap_1", "gap_64")
    keys = []
    for r in rows:
        key = {k: v for k, v in r.items() if k not in figures and k != "seed"}
        if key not in keys:
            keys.append(key)
    return [seed_summary(rows, key, figures) for key in keys]


def main(argv: list[str] | None = None) -> int:
    runs = runs_from_arguments(__doc__, argv)
    started = time.perf_counter()
    toy, toy_test = get_dataset("toyworld"), get_dataset("toyworld", train=False)
    data = ((toy.images[:2000], toy.labels[:2000]), (toy_test.images[:1000],
                                                     toy_test.labels[:1000]))
    rows = [row for seed in SEEDS for row in measure(runs, seed, data)]
    record = {"figure": FIGURE, "seed": list(SEEDS), "scale": scale(),
              "world": "ToyWorld(seed=0): get_dataset('toyworld'), first 2000 / 1000 images",
              "config": "cooc_minimal/configs/smoke.toml, seed (loss, projector) overridden",
              "protocol": "chapter 7's read-outs: bags of grid tiles, linear_probe, "
                          "knn_classify k=20 T=0.07; multiscale_convergence on 500 test "
                          "images, patches drawn with seed 0; std over seeds (n - 1)",
              "summary": summary(rows), "rows": rows,
              **stamp("ch07_toy_seeds.py", argv, started)}
    result_path(FIGURE).write_text(json.dumps(record, indent=1) + "\n")
    for entry in record["summary"]:
        print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in entry.items()})
    print(f"wrote cooc_minimal/results/{FIGURE}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
