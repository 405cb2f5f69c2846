"""How close the kNN on the texture world's bags gets to Bayes, and what keeps it short: what
the parts allow, and what the nuisance left in the embedding costs (``texture_knn_ceiling.json``).

For seeds 0, 1 and 2 it measures ``bag_nuisance.knn_ceiling`` (the kNN on part histograms,
on the histograms a linear map reads from the network's bags, on its part bags, on its
bags; the share of tiles that map reads right; the nuisance share and shared ratio) for the
run ``texture_vicreg[_seed{s}]`` and its untrained twin, on the first 2,000 images of each
split of ``textureworld``, with the kNN on the bags and on their read histograms with all
10,000 training bags as neighbours, and the linear probe on the bags (chapter 7's probe
claim).

It also repaints the same world (same classes and parts, ``TextureWorld()``) with
less nuisance, 2,000 new images of each split, and measures the same networks, trained and
untrained, on it: what each kind of paint costs the kNN, the network held fixed.

Then the same numbers, over the same seeds, for variants of ``configs/texture.toml``: its
training patches drawn anywhere (``grid_share=0``; with 8 patches, as the config had before),
all of them at distinct tiles (``grid_share=1``), another loss, a narrow projector, no
augmentations. Each variant is a run ``texture_vicreg_<tag>[_seed{s}]``, trained through
``ensure_trained`` (existing runs, such as texture_world.py's ``noaug`` ones, are reused).

Last, ``class_draws``: for the first ten draws of the world's classes (``TextureWorld(seed=s)``,
no network), Bayes and the kNN on exact part histograms (2,000 bags each side): how far a
vote falls short of Bayes even on exact part counts depends on the draw, and is why
``textureworld.WORLD_SEED`` is 4.

    python chapters/results/texture_knn_ceiling.py   # 2 min with the runs trained; about
                                                      # 30 min on 2 cores training all 21
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch
from recording import run_script, seed_folder, seed_summary, stamp

from cooc_minimal.bag_nuisance import histogram_knn, knn_ceiling
from cooc_minimal.checkpoint import load_model
from cooc_minimal.claims import bag_probe_near_bayes, untrained_twin, world_sample
from cooc_minimal.config import Config, load_config
from cooc_minimal.data import get_dataset
from cooc_minimal.paths import result_path
from cooc_minimal.runtime import scale
from cooc_minimal.textureworld import WORLD_SEED, Nuisance, TextureWorld
from cooc_minimal.train import ensure_trained

FIGURE = "texture_knn_ceiling"
SEEDS = (0, 1, 2)
LIMIT = 2000  # images of each split, as chapter 7's claims
#: tag -> overrides of configs/texture.toml; "noaug" is texture_world.py's run
VARIANTS = {
    "anywhere": ["grid_share=0.0"],
    "anywhere8": ["grid_share=0.0", "n_patches=8"],
    "grid_all": ["grid_share=1.0"],
    "simclr": ["loss=simclr"],
    "projector16": ["projector=192-16"],
    "noaug": ["augment=none"],
}
CLASS_DRAWS = range(10)  # TextureWorld(seed=s) for the class_draws table
#: name -> the Nuisance of a repainted world (the rest of the paint as in Nuisance())
PAINTS = {
    "as trained": {},
    "no image exposure": {"exposure": (1.0, 1.0)},
    "no image exposure or contrast": {"exposure": (1.0, 1.0), "image_contrast": (1.0, 1.0)},
    "only hue and phase": {"exposure": (1.0, 1.0), "image_contrast": (1.0, 1.0), "noise": 0.0},
}


def repainted(net, model: str, seed: int) -> list[dict]:
    """The network on each world of PAINTS (new images: generator seeds 1 and 2)."""
    rows = []
    for paint, changes in PAINTS.items():
        world = TextureWorld(nuisance=Nuisance(**changes))
        figures = knn_ceiling(net, world.sample(LIMIT, 1), world.sample(LIMIT, 2), world)
        rows.append({"paint": paint, "model": model, "seed": seed, **figures})
    return rows


def class_draws() -> list[dict]:
    """Bayes and the kNN on exact part histograms (2,000 bags each side) per class draw."""
    rows = []
    for draw in CLASS_DRAWS:
        world = TextureWorld(seed=draw)
        (y_train, train), (y_test, test) = (
            world.sample_parts(LIMIT, torch.Generator().manual_seed(images))
            for images in (1, 2))
        knn = histogram_knn(train, y_train, test, y_test, n_parts=world.n_parts)
        bayes = world.bayes_accuracy(world.n_tiles)
        rows.append({"seed": draw, "bayes": bayes, "kNN, part histograms": knn,
                     "kNN short of Bayes": bayes - knn})
    return rows


def network(runs: Path, folder: str, overrides: list[str]):
    """The run's network and config, trained first if its folder has no finished run."""
    return load_model(ensure_trained(load_config("texture", overrides), runs / folder,
                                     progress=False))


def figures_of(net, train, full_train, test, world) -> dict[str, float]:
    """knn_ceiling, the kNN on the bags and on their read histograms with every training bag
    as a neighbour, and the linear probe."""
    every_bag = knn_ceiling(net, full_train, test, world)
    return {**knn_ceiling(net, train, test, world),
            **{f"{name}, all training bags": every_bag[name]
               for name in ("kNN, bags", "kNN, read histograms")},
            "probe": bag_probe_near_bayes(net, train, test, world).figure}


def measure_seeds(runs: Path, train, full_train, test, world) -> tuple[list, list]:
    """figures_of every seed's trained run and its untrained twin, and the trained runs'
    knn_ceiling on the repainted worlds."""
    rows, paint_rows = [], []
    for seed in SEEDS:
        trained, cfg = network(runs, seed_folder("texture_vicreg", seed),
                               [f"seed={seed}"])
        for model, net in (("trained", trained), ("untrained", untrained_twin(trained, cfg))):
            rows.append({"model": model, "seed": seed,
                         **figures_of(net, train, full_train, test, world)})
            paint_rows += repainted(net, model, seed)
            print(f"  seed {seed}, {model}: " + ", ".join(
                f"{k} {v:.3f}" for k, v in rows[-1].items() if isinstance(v, float)),
                flush=True)
    return rows, paint_rows


def measure_variants(runs: Path, train, full_train, test, world) -> list[dict]:
    """figures_of every variant's run with each of SEEDS."""
    rows = []
    for tag, overrides in VARIANTS.items():
        for seed in SEEDS:
            net, _ = network(runs, seed_folder(f"texture_vicreg_{tag}", seed),
                             [*overrides, f"seed={seed}"])
            rows.append({"variant": tag, "seed": seed,
                         **figures_of(net, train, full_train, test, world)})
            print(f"  {tag}, seed {seed}: kNN {rows[-1]['kNN, bags']:.3f}, probe "
                  f"{rows[-1]['probe']:.3f}", flush=True)
    return rows


def run_folders(runs: Path) -> dict[Path, Config]:
    """Every run folder ``measure_seeds`` and ``measure_variants`` read or train, with its
    config (checked first)."""
    plain = {seed_folder("texture_vicreg", seed): [f"seed={seed}"]
             for seed in SEEDS}
    variants = {seed_folder(f"texture_vicreg_{tag}", seed):
                [*overrides, f"seed={seed}"]
                for tag, overrides in VARIANTS.items() for seed in SEEDS}
    return {runs / folder: load_config("texture", overrides)
            for folder, overrides in {**plain, **variants}.items()}


def record_figure(runs: Path, argv: list[str] | None) -> int:
    started = time.perf_counter()
    train_set = get_dataset("textureworld", train=True)
    world = train_set.world
    full_train, train = world_sample(train_set), world_sample(train_set, LIMIT)
    test = world_sample(get_dataset("textureworld", train=False), LIMIT)
    rows, paint_rows = measure_seeds(runs, train, full_train, test, world)
    figures = [k for k, v in rows[0].items() if isinstance(v, float)]  # a trained row: all
    paints = [dict(seed_summary(paint_rows, {"paint": paint, "model": model}, figures,
                                join=" "),
                   nuisance={k: list(v) if isinstance(v, tuple) else v
                             for k, v in changes.items()})
              for model in ("trained", "untrained") for paint, changes in PAINTS.items()]
    variant_rows = measure_variants(runs, train, full_train, test, world)
    base = seed_summary(rows, {"model": "trained"}, figures, join=" ")
    variants = [dict(variant="texture.toml", overrides=[],
                     **{k: v for k, v in base.items() if k != "model"})]
    variants += [dict(seed_summary(variant_rows, {"variant": tag}, figures, join=" "),
                      overrides=overrides) for tag, overrides in VARIANTS.items()]
    record = {"figure": FIGURE, "seed": list(SEEDS), "scale": scale(),
              "bayes": world.bayes_accuracy(world.n_tiles),
              "world": f"TextureWorld(seed={WORLD_SEED}) (get_dataset('textureworld'))",
              "config": "cooc_minimal/configs/texture.toml, seed overridden",
              "protocol": f"bag_nuisance.knn_ceiling (k = 20, T = 0.07) on the first {LIMIT} "
                          "images of each split; std over seeds (n - 1)",
              "summary": [seed_summary(rows, {"model": m}, figures, join=" ")
                          for m in ("trained", "untrained")],
              "rows": rows, "repainted": paints, "repainted_rows": paint_rows,
              "variants": variants, "variant_rows": variant_rows,
              "class_draws": class_draws(),
              **stamp("texture_knn_ceiling.py", argv, started)}
    result_path(FIGURE).write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote cooc_minimal/results/{FIGURE}.json")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_script(__file__, __doc__, argv, needed=run_folders,
                      record=lambda runs: record_figure(runs, argv))


if __name__ == "__main__":
    sys.exit(main())
