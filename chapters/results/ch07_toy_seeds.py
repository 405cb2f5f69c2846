"""Chapter 7's toy-world figures over three seeds (``cooc_minimal/results/ch07_toy_seeds.json``).

For each seed s, the toy runs of ``configs/smoke.toml`` (``toy_vicreg[_seed{s}]``, with the
spectral loss ``toy_spectral[_seed{s}]``, with a 4-wide projector for 2 epochs
``toy_vicreg_proj4[_seed{s}]``) and the untrained twin of each architecture at seed s. On
``ToyWorld(seed=0)``'s splits (the first 2,000 training and 1,000 test images, as chapter 7):

- ``tiles``: linear probe and kNN (k = 20, T = 0.07) of bags of 1 and of all 16 tiles, in the
  embedding space (chapter 7, section 4);
- ``random``: the same read-outs of bags of 1, 16 and 64 random 8x8 patches (section 4);
- ``sizes``: bags of 16 random patches of side 4, 8 and 16, and the whole image (section 6),
  and ``sizes, 8 minus 4``: each network's read-outs with side 8 minus those with side 4,
  seed by seed;
- ``spaces``: the probe of bags of 16 tiles in the embedding and in the projection space, for
  the wide and the 4-wide projector (section 7);
- ``rank 4``: the 4-wide projection's probe minus the probe of Proposition 3.1's rank-4
  optimum, the part histograms times the closed form Z*_4 (seed-free: the world's parts);
- ``convergence``: the centred same-minus-different gap of bags of 1 and 64 random 8x8
  patches against the whole image, 500 test images (section 8).

    python chapters/results/ch07_toy_seeds.py    # about a minute on 2 cores, runs existing
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch
from recording import run_script, seed_folder, seed_summary, stamp

from cooc_minimal.bags import bag_embeddings
from cooc_minimal.checkpoint import load_model
from cooc_minimal.claims import untrained_twin
from cooc_minimal.config import Config, load_config
from cooc_minimal.cooccurrence import closed_form_embedding
from cooc_minimal.data import get_dataset
from cooc_minimal.evaluate import accuracy, knn_classify, linear_probe, multiscale_convergence
from cooc_minimal.paths import result_path
from cooc_minimal.runtime import scale
from cooc_minimal.train import ensure_trained

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
FIGURE = "ch07_toy_seeds"
SEEDS = (0, 1, 2)
NARROW = "VICReg, projector 512-4"
FIGURES = ("probe", "kNN", "gap_1", "gap_64", "probe_minus_optimum")
RUNS = {"VICReg": ("toy_vicreg", []), "spectral": ("toy_spectral", ["loss=spectral"]),
        "VICReg, projector 512-4": ("toy_vicreg_proj4", ["projector=512-4", "epochs=2"])}


def networks(runs: Path, seed: int) -> dict:
    found = {}
    for name, (folder, overrides) in RUNS.items():
        cfg = load_config("smoke", overrides + [f"seed={seed}"])
        path = ensure_trained(cfg, runs / seed_folder(folder, seed),
                              progress=False)
        found[name], cfg = load_model(path)
        found["untrained" if name == "VICReg" else f"untrained, {name}"] = untrained_twin(
            found[name], cfg)
    return found


def read_out(model, data, space: str, counts: list[int], *, grid: bool = True,
             size: int = 8) -> dict:
    """{n: (probe, kNN)} of bags of n patches of side ``size``, as chapter 7's ``scores``."""
    (train_x, train_y), (test_x, test_y) = data
    tr = bag_embeddings(model, train_x, size, counts, space=space, grid=grid,
                        generator=torch.Generator().manual_seed(0))
    te = bag_embeddings(model, test_x, size, counts, space=space, grid=grid,
                        generator=torch.Generator().manual_seed(1))
    return {n: (linear_probe(tr[n], train_y, te[n], test_y, 10).accuracy,
                accuracy(knn_classify(tr[n], train_y, te[n], n_classes=10), test_y))
            for n in counts}


def rank_4_optimum(world, data) -> float:
    """The probe of the bags Proposition 3.1's rank-4 optimum gives: each image's part
    histogram (V,) times the closed form Z*_4 (V, 4), as chapter 7, section 7."""
    P, _ = world.cooccurrence()
    closed_form = closed_form_embedding(P, 4)
    (_, train_y, train_parts), (_, test_y, test_parts) = data
    train_h, test_h = (torch.nn.functional.one_hot(parts, world.n_parts).double().mean(dim=1)
                       for parts in (train_parts, test_parts))
    return linear_probe(train_h @ closed_form, train_y, test_h @ closed_form, test_y,
                        10).accuracy


def readouts(found: dict, seed: int, data) -> list[dict]:
    """Sections 4 and 6: bags of tiles, of random patches, of random patches of each size."""
    rows = []
    for name in ("VICReg", "spectral", "untrained"):
        tiles = read_out(found[name], data, "embedding", [1, 16])
        rows += [{"part": "tiles", "model": name, "seed": seed, "n": n, "probe": p, "kNN": k}
                 for n, (p, k) in tiles.items()]
    for name in ("VICReg", "untrained"):
        bags = read_out(found[name], data, "embedding", [1, 16, 64], grid=False)
        rows += [{"part": "random", "model": name, "seed": seed, "n": n, "probe": p, "kNN": k}
                 for n, (p, k) in bags.items()]
        for size in (4, 8, 16, 32):
            n = 1 if size == 32 else 16  # every 32x32 crop is the whole image
            p, k = read_out(found[name], data, "embedding", [n], grid=False, size=size)[n]
            rows.append({"part": "sizes", "model": name, "seed": seed, "patch size": size,
                         "probe": p, "kNN": k})
    return rows


def measure(runs: Path, seed: int, data, optimum: float) -> list[dict]:
    """Every row of one seed; ``data`` the (images, labels, parts) of both splits."""
    found = networks(runs, seed)
    data = tuple(split[:2] for split in data)
    rows = readouts(found, seed, data)
    for name in ("VICReg", NARROW, f"untrained, {NARROW}"):
        for space in ("embedding", "projection"):
            probe = read_out(found[name], data, space, [16])[16][0]
            rows.append({"part": "spaces", "model": name, "seed": seed, "space": space,
                         "probe": probe})
    narrow = next(r["probe"] for r in rows if r["part"] == "spaces" and r["model"] == NARROW
                  and r["space"] == "projection")
    rows.append({"part": "rank 4", "model": NARROW, "seed": seed, "rank_4_optimum": optimum,
                 "probe_minus_optimum": narrow - optimum})
    images = data[1][0][:500]
    for name in ("VICReg", "untrained"):
        result = multiscale_convergence(found[name], images, 8, [1, 64],
                                        generator=torch.Generator().manual_seed(0))
        rows.append({"part": "convergence", "model": name, "seed": seed,
                     "gap_1": result.gap[0].item(), "gap_64": result.gap[-1].item()})
    print(f"  seed {seed}: {len(rows)} rows", flush=True)
    return rows


def size_gains(rows: list[dict]) -> list[dict]:
    """Per network and seed, the read-outs of 8x8 patches minus those of 4x4: the pairs share
    the network, so the spread of their difference is not the sum of two spreads."""
    sizes = {(r["model"], r["seed"], r["patch size"]): r for r in rows if r["part"] == "sizes"}
    return [{"part": "sizes, 8 minus 4", "model": model, "seed": seed,
             **{f: eight[f] - sizes[model, seed, 4][f] for f in ("probe", "kNN")}}
            for (model, seed, size), eight in sizes.items() if size == 8]


def summary(rows: list[dict]) -> list[dict]:
    """Mean and standard deviation (n - 1) over seeds of every figure, per row key."""
    keys = []
    for r in rows:
        key = {k: v for k, v in r.items() if k not in FIGURES and k != "seed"}
        if key not in keys:
            keys.append(key)
    return [seed_summary(rows, key, FIGURES) for key in keys]


def run_folders(runs: Path) -> dict[Path, Config]:
    """Every run folder ``networks`` reads or trains, with its config (checked first)."""
    return {runs / seed_folder(folder, seed):
            load_config("smoke", overrides + [f"seed={seed}"])
            for seed in SEEDS for folder, overrides in RUNS.values()}


def record_figure(runs: Path, argv: list[str] | None) -> int:
    started = time.perf_counter()
    toy, toy_test = get_dataset("toyworld"), get_dataset("toyworld", train=False)
    data = tuple((d.images[:n], d.labels[:n], d.parts[:n]) for d, n in ((toy, 2000),
                                                                        (toy_test, 1000)))
    optimum = rank_4_optimum(toy.world, data)
    rows = [row for seed in SEEDS for row in measure(runs, seed, data, optimum)]
    rows += size_gains(rows)
    record = {"figure": FIGURE, "seed": list(SEEDS), "scale": scale(),
              "world": "ToyWorld(seed=0): get_dataset('toyworld'), first 2000 / 1000 images",
              "config": "cooc_minimal/configs/smoke.toml, seed (loss, projector) overridden",
              "protocol": "chapter 7's read-outs: bags of grid tiles or random patches "
                          "(train patches drawn with seed 0, test with 1), linear_probe, "
                          "knn_classify k=20 T=0.07; the rank-4 optimum: part histograms "
                          "times closed_form_embedding(P, 4), linear_probe; "
                          "multiscale_convergence on 500 test "
                          "images, patches drawn with seed 0; std over seeds (n - 1)",
              "summary": summary(rows), "rows": rows,
              **stamp("ch07_toy_seeds.py", argv, started)}
    result_path(FIGURE).write_text(json.dumps(record, indent=1) + "\n")
    for entry in record["summary"]:
        print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in entry.items()})
    print(f"wrote cooc_minimal/results/{FIGURE}.json")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_script(__file__, __doc__, argv, needed=run_folders,
                      record=lambda runs: record_figure(runs, argv))


if __name__ == "__main__":
    sys.exit(main())
