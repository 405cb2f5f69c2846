"""Chapter 7's claims on the texture world, for trained networks and their two controls, over
three seeds (``cooc_minimal/results/ch07_claims.json``).

For each seed s it measures every claim of ``claims.TEXTURE_CLAIMS`` (``claims.texture_claims``:
the bag-of-16 probe and kNN against Bayes, the parts' fit to Proposition 3.1's optimum, the
convergence of bags of 16 random patches to their image) for three networks of the same
architecture and seed s:

- trained: ``configs/texture.toml`` on ``textureworld`` (the run ``texture_vicreg[_seed{s}]``);
- untrained: the same network at its initialisation (``claims.untrained_twin``);
- no co-occurrence: the same config trained on ``textureworld_independent``, whose parts are
  drawn whatever the class (``texture_independent_vicreg[_seed{s}]``).

All are measured on the linked world: the first 2,000 training and 2,000 test images of
``textureworld``. Runs are trained through ``ensure_trained`` (existing ones are reused).

The convergence claim's figure is ``same``, the centred cosine of a bag of 16 random patches
with its own image; beside it the record keeps its baseline, ``different`` (the same bags
against another image), and ``gap`` = same - different, per seed and as mean and standard
deviation per model (``convergence``).

    python chapters/results/ch07_claims.py                 # about 5 minutes on 2 cores
    python chapters/results/ch07_claims.py --runs /tmp/tw  # train in a fresh folder
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from recording import mean_std, run_script, seed_folder, seed_summary, stamp

from cooc_minimal.checkpoint import load_model
from cooc_minimal.claims import (
    TEXTURE_CLAIMS,
    convergence_figures,
    texture_claims,
    untrained_twin,
    world_sample,
)
from cooc_minimal.config import Config, load_config
from cooc_minimal.data import get_dataset
from cooc_minimal.paths import result_path
from cooc_minimal.runtime import scale
from cooc_minimal.train import ensure_trained

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
FIGURE = "ch07_claims"
SEEDS = (0, 1, 2)
LIMIT = 2000  # images of each split
MODELS = ("trained", "untrained", "no co-occurrence")
CONVERGENCE_IMAGES = 500  # the first test images the convergence claim reads
BASELINE = ("same", "different", "gap")


def run_folder(runs: Path, independent: bool, seed: int) -> Path:
    """``texture_vicreg`` or ``texture_independent_vicreg``, ``_seed{s}`` for seeds 1 and 2."""
    return runs / seed_folder("texture_independent_vicreg" if independent else "texture_vicreg",
                              seed)


def trained_network(runs: Path, independent: bool, seed: int):
    """The run's network, trained first if its folder has no finished checkpoint."""
    overrides = [f"seed={seed}"] + (["dataset=textureworld_independent"] if independent else [])
    checkpoint = ensure_trained(load_config("texture", overrides),
                                run_folder(runs, independent, seed), progress=False)
    return load_model(checkpoint)


def measure(runs: Path, seed: int, train, test, world) -> list[dict]:
    """One row per (model, claim) for this seed."""
    trained, cfg = trained_network(runs, False, seed)
    networks = {"trained": trained, "untrained": untrained_twin(trained, cfg),
                "no co-occurrence": trained_network(runs, True, seed)[0]}
    rows = []
    for model, network in networks.items():
        verdicts = texture_claims(network, train, test, world,
                                  convergence_images=CONVERGENCE_IMAGES)
        baseline = convergence_figures(network, test.images[:CONVERGENCE_IMAGES], world.tile)
        # one measurement, read twice: the baseline must belong to the verdict's figure
        assert abs(baseline["same"] - verdicts["convergence"].figure) < 1e-6, (
            baseline, verdicts["convergence"])
        for claim, verdict in verdicts.items():
            rows.append({"model": model, "seed": seed, "claim": claim,
                         "figure": verdict.figure, "threshold": verdict.threshold,
                         "holds": verdict.holds,
                         **(baseline if claim == "convergence" else {})})
        print(f"  seed {seed}, {model}: " + ", ".join(
            f"{r['claim']} {r['figure']:.3f}" for r in rows if r["model"] == model), flush=True)
    return rows


def summary(rows: list[dict]) -> list[dict]:
    """Mean and standard deviation (n - 1) over the seeds, per model and claim."""
    table = []
    for claim in TEXTURE_CLAIMS:
        for model in MODELS:
            values = [r["figure"] for r in rows if r["model"] == model and r["claim"] == claim]
            threshold = next(r["threshold"] for r in rows if r["claim"] == claim)
            mean, std = mean_std(values)
            table.append({"claim": claim, "model": model, "seeds": len(values),
                          "mean": mean, "std": std,
                          "threshold": threshold,
                          "cooccurrence_claim": TEXTURE_CLAIMS[claim]})
    return table


def convergence(rows: list[dict]) -> list[dict]:
    """Per model, same, different and gap of the convergence claim over the seeds."""
    return [seed_summary(rows, {"claim": "convergence", "model": model}, BASELINE)
            for model in MODELS]


def run_folders(runs: Path) -> dict[Path, Config]:
    """Every run folder ``trained_network`` reads or trains, with its config (checked first)."""
    return {run_folder(runs, independent, seed): load_config(
                "texture", [f"seed={seed}"]
                + (["dataset=textureworld_independent"] if independent else []))
            for seed in SEEDS for independent in (False, True)}


def record_figure(runs: Path, argv: list[str] | None) -> int:
    started = time.perf_counter()
    train_set = get_dataset("textureworld", train=True)
    train, test = world_sample(train_set, LIMIT), world_sample(
        get_dataset("textureworld", train=False), LIMIT)
    rows = []
    for seed in SEEDS:
        rows += measure(runs, seed, train, test, train_set.world)
    record = {"figure": FIGURE, "seed": list(SEEDS), "scale": scale(),
              "world": "TextureWorld() (get_dataset('textureworld')); controls: the "
                       "untrained twin and a run on 'textureworld_independent'",
              "config": "cooc_minimal/configs/texture.toml, seed (and dataset) overridden",
              "protocol": f"claims.texture_claims on the first {LIMIT} images of each split "
                          "of the linked world; convergence: bags of 16 random patches of "
                          f"the first {CONVERGENCE_IMAGES} test images, same = centred cosine "
                          "with their own image, different = with another image "
                          "(evaluate.derangement), gap = same - different; std over seeds "
                          "(n - 1)",
              "summary": summary(rows), "convergence": convergence(rows), "rows": rows,
              **stamp("ch07_claims.py", argv, started)}
    result_path(FIGURE).write_text(json.dumps(record, indent=1) + "\n")
    for entry in record["summary"]:
        print(f"{entry['claim']:>14}, {entry['model']:>16}: {entry['mean']:.3f} +- "
              f"{entry['std']:.3f} (threshold {entry['threshold']:.3f})")
    for entry in record["convergence"]:
        print(f"convergence, {entry['model']:>16}: " + ", ".join(
            f"{name} {entry[name + '_mean']:.3f} +- {entry[name + '_std']:.3f}"
            for name in BASELINE))
    print(f"wrote cooc_minimal/results/{FIGURE}.json")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_script(__file__, __doc__, argv, needed=run_folders,
                      record=lambda runs: record_figure(runs, argv))


if __name__ == "__main__":
    sys.exit(main())
