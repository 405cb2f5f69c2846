"""Chapter 8's probes of pooled features, trained and untrained, over three seeds
(``cooc_minimal/results/ch08_pooling.json``).

For each seed s: the toy run (``configs/smoke.toml``, ``toy_vicreg[_seed{s}]``) and the
texture run (``configs/texture.toml``, ``texture_vicreg[_seed{s}]``), each beside its
untrained twin (``claims.untrained_twin``). Each toy network reads the toy world and the
layout world built on it, each texture network the texture world and its layout world
(``toyworld.layout_sample``), 2,000 training and 1,000 test images drawn with seeds 11 and 12,
as chapter 8; ``local_aggregation.probe_poolings`` probes the bag of the 16 tiles, the global
average and the four regional averages (window 5, stride 3), 100 L-BFGS iterations.

    python chapters/results/ch08_pooling.py    # about 6 minutes on 2 cores, runs existing
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from recording import mean_std, run_script, seed_folder, stamp

from cooc_minimal.checkpoint import load_model
from cooc_minimal.claims import untrained_twin
from cooc_minimal.config import Config, load_config
from cooc_minimal.local_aggregation import probe_poolings
from cooc_minimal.paths import result_path
from cooc_minimal.runtime import scale
from cooc_minimal.textureworld import TextureWorld
from cooc_minimal.toyworld import ToyWorld, layout_sample
from cooc_minimal.train import ensure_trained

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
FIGURE = "ch08_pooling"
SEEDS = (0, 1, 2)
N_TRAIN, N_TEST = 2000, 1000
KINDS = {"toy": ("smoke", "toy_vicreg", ToyWorld), "texture": ("texture", "texture_vicreg",
                                                             TextureWorld)}


def samples(world) -> dict:
    """{world name: (train, test)} for a world and the layout world built on it, named as
    chapter 8 names them."""
    texture = isinstance(world, TextureWorld)
    return {"texture world" if texture else "toy world":
            (world.sample(N_TRAIN, 11), world.sample(N_TEST, 12)),
            "texture layout world" if texture else "layout world":
            (layout_sample(world, N_TRAIN, 11), layout_sample(world, N_TEST, 12))}


def measure(runs: Path, seed: int, worlds: dict) -> list[dict]:
    rows = []
    for kind, (config, folder, _) in KINDS.items():
        path = ensure_trained(load_config(config, [f"seed={seed}"]),
                              runs / seed_folder(folder, seed), progress=False)
        trained, cfg = load_model(path)
        for state, network in (("trained", trained.eval()),
                               ("untrained", untrained_twin(trained, cfg))):
            for world_name, (train, test) in worlds[kind].items():
                for features, probe in probe_poolings(network, train, test).items():
                    rows.append({"world": world_name, "network": state, "features": features,
                                 "seed": seed, "accuracy": probe.accuracy})
            print(f"  seed {seed}, {kind}, {state}: " + ", ".join(
                f"{r['accuracy']:.3f}" for r in rows[-6:]), flush=True)
    return rows


def summary(rows: list[dict]) -> list[dict]:
    keys = sorted({(r["world"], r["network"], r["features"]) for r in rows})
    table = []
    for world, network, features in keys:
        values = [r["accuracy"] for r in rows
                  if (r["world"], r["network"], r["features"]) == (world, network, features)]
        mean, std = mean_std(values)
        table.append({"world": world, "network": network, "features": features,
                      "seeds": len(values), "mean": mean, "std": std})
    return table


def run_folders(runs: Path) -> dict[Path, Config]:
    """Every run folder ``measure`` reads or trains, with its config (checked first)."""
    return {runs / seed_folder(folder, seed):
            load_config(config, [f"seed={seed}"])
            for seed in SEEDS for config, folder, _ in KINDS.values()}


def record_figure(runs: Path, argv: list[str] | None) -> int:
    started = time.perf_counter()
    worlds = {kind: samples(world_type()) for kind, (_, _, world_type) in KINDS.items()}
    rows = [row for seed in SEEDS for row in measure(runs, seed, worlds)]
    record = {"figure": FIGURE, "seed": list(SEEDS), "scale": scale(),
              "world": "ToyWorld() (seed 0) and TextureWorld() (seed 4), each with its layout "
                       "world (toyworld.layout_sample); samples drawn with seeds 11 and 12",
              "config": "cooc_minimal/configs/smoke.toml and texture.toml, seed overridden",
              "protocol": f"local_aggregation.probe_poolings, {N_TRAIN} training and {N_TEST} "
                          "test images, linear_probe max_iter=100; std over seeds (n - 1)",
              "summary": summary(rows), "rows": rows,
              **stamp("ch08_pooling.py", argv, started)}
    result_path(FIGURE).write_text(json.dumps(record, indent=1) + "\n")
    for entry in record["summary"]:
        print(f"{entry['world']:>22}, {entry['network']:>9}, {entry['features']:<30} "
              f"{entry['mean']:.3f} +- {entry['std']:.3f}")
    print(f"wrote cooc_minimal/results/{FIGURE}.json")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_script(__file__, __doc__, argv, needed=run_folders,
                      record=lambda runs: record_figure(runs, argv))


if __name__ == "__main__":
    sys.exit(main())
