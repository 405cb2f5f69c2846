"""Checks that the three-seed records of chapters 7 and 9 rest on.

- Chapter 9's part-gap check (``chapters/results/ch09_parts.py``, which records it over
  three seeds) holds for the shared trained texture run and fails for its untrained twin.
- The convergence claim of ``claims`` keeps its verdict for every caller and, asked for
  its baseline, gives the same bags against another image (``ch07_claims.py`` records it).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from cooc_minimal.checkpoint import load_model
from cooc_minimal.claims import (
    Verdict,
    bags_converge_to_their_image,
    convergence_figures,
    untrained_twin,
)
from cooc_minimal.config import load_config
from cooc_minimal.models import build_model
from cooc_minimal.parts import part_gap, tiles_nearer_their_part
from cooc_minimal.paths import SHARED_RUNS, runs_folder
from cooc_minimal.textureworld import TextureWorld
from cooc_minimal.train import ensure_trained

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "chapters" / "results"
RUNS = runs_folder()  # $COOC_RUNS, else the clone's runs/, as the chapters


def shared_run(folder: str):
    """(model, config) of a run the chapters share (paths.SHARED_RUNS), trained if missing."""
    config, overrides = SHARED_RUNS[folder]
    return load_model(ensure_trained(load_config(config, list(overrides)), RUNS / folder,
                                     progress=False))


def results_script(name: str, monkeypatch):
    """A script of ``chapters/results`` as a module (it imports ``recording`` beside it)."""
    monkeypatch.syspath_prepend(str(RESULTS))
    spec = importlib.util.spec_from_file_location(name, RESULTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_the_part_gap_check_holds_trained_and_fails_untrained(monkeypatch):
    """Seed 0, on the images ``ch09_parts.py`` and chapter 9 read: the trained run's tiles
    are nearer their part's tiles than the others' by more than the threshold, and its
    untrained twin's miss it by chapter 9's margin of 0.05 as well; the script records
    the claim's own figure."""
    ch09 = results_script("ch09_parts", monkeypatch)
    trained, cfg = shared_run("texture_vicreg")
    world = TextureWorld()
    sample = world.sample(ch09.N_IMAGES, ch09.SAMPLE_SEED)
    verdicts = {name: tiles_nearer_their_part(network, sample, world)
                for name, network in (("trained", trained),
                                      ("untrained", untrained_twin(trained, cfg)))}
    assert verdicts["trained"].holds, verdicts
    assert not verdicts["untrained"].holds, verdicts
    assert verdicts["untrained"].figure + 0.05 < ch09.PART_GAP, verdicts
    recorded_way = part_gap(trained, sample, world, n_queries=ch09.PART_GAP_QUERIES)
    assert recorded_way["gap"] == verdicts["trained"].figure


def test_the_convergence_verdict_reads_same_and_its_baseline_is_the_other_image():
    torch.manual_seed(0)
    model = build_model("tiny", "512-128").eval()
    images = TextureWorld().sample(40, 3).images
    verdict = bags_converge_to_their_image(model, images, 8)
    figures = convergence_figures(model, images, 8)
    assert isinstance(verdict, Verdict) and set(figures) == {"same", "different", "gap"}
    assert figures["same"] == verdict.figure
    assert figures["gap"] == pytest.approx(figures["same"] - figures["different"])
    assert abs(figures["different"]) < 0.2  # centred: another image shares about nothing


def test_the_scripts_name_a_seeds_run_folder_as_the_chapters_do(monkeypatch):
    """Seed 0's folder is the run the chapters share (paths.SHARED_RUNS), so a script reuses
    what the book trained; other seeds get ``_seed{s}``."""
    recording = results_script("recording", monkeypatch)
    assert recording.seed_folder("toy_vicreg", 0) == "toy_vicreg"
    assert recording.seed_folder("toy_vicreg", 2) == "toy_vicreg_seed2"
    runs = Path("runs")
    claims, parts = (results_script(name, monkeypatch) for name in ("ch07_claims", "ch09_parts"))
    for script in (claims, parts):
        assert script.run_folder(runs, False, 0).name in SHARED_RUNS
        assert script.run_folder(runs, True, 0).name in SHARED_RUNS
        assert script.run_folder(runs, True, 1) == runs / "texture_independent_vicreg_seed1"
    texture = results_script("texture_world", monkeypatch)
    assert texture.run_folder(runs, "byol", 0) == runs / "texture_vicreg"
    assert texture.run_folder(runs, "none", 2) == runs / "texture_vicreg_noaug_seed2"
