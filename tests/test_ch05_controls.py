"""Chapter 5's co-occurrence claim against the control the course requires (README).

A claim about learning from co-occurrence is evidence only if its check fails for the same
config trained on a world without co-occurrence: ``toyworld_independent``, the toy world's
parts drawn whatever the class, so P = p p^T. Both networks are measured on the LINKED
world ``ToyWorld(seed=0)``, as chapter 5 measures its runs. The two runs are reduced smoke
runs, trained once in the runs folder the chapters share (``paths.runs_folder``), like the
shared runs of ``test_claims.py``, and reused afterwards.
"""

from __future__ import annotations

import pytest
import torch

from cooc_minimal.checkpoint import load_model
from cooc_minimal.config import load_config
from cooc_minimal.cooccurrence import closed_form_embedding
from cooc_minimal.data import get_dataset
from cooc_minimal.parts import (
    one_hot_gram,
    pairs_follow_the_ratio,
    parts_fit_prop31,
    ratio_fit,
)
from cooc_minimal.paths import runs_folder
from cooc_minimal.toyworld import ToyWorld, gram_similarity, part_embeddings
from cooc_minimal.train import ensure_trained

#: The smoke config for one epoch instead of 3, about 10 s a run on one core, since CI time is
#: tight. It still separates the worlds (seed 0, projection: Gram 0.944 linked, 0.747 without
#: co-occurrence, one-hot floor 0.815; pairs 0.79 and 0.34). 4,000 images for 1 epoch do not:
#: the linked run stays under the floor (0.781).
QUICK = ["epochs=1"]
#: folder in the runs folder -> the overrides of the smoke config on top of QUICK
RUNS = {"toy_vicreg_quick": [], "toy_independent_vicreg_quick": ["dataset=toyworld_independent"]}


def quick_run(folder: str):
    """(model, config) of a reduced smoke run, trained if missing, as test_claims.shared_run."""
    cfg = load_config("smoke", QUICK + RUNS[folder])
    return load_model(ensure_trained(cfg, runs_folder() / folder, progress=False))


def test_the_toy_control_world_has_no_cooccurrence():
    control = get_dataset("toyworld_independent", train=False).world
    P, p = control.cooccurrence()
    linked_P, linked_p = ToyWorld(seed=0).cooccurrence()
    assert control.independent_parts and torch.allclose(p, linked_p)
    assert torch.allclose(P, torch.outer(p, p))
    assert (linked_P - torch.outer(p, p)).abs().max() > 0.01  # the linked world differs
    assert load_config("smoke", ["dataset=toyworld_independent"]).image_size == 32


@pytest.mark.slow
def test_chapter_5_gram_claim_holds_trained_and_fails_without_cooccurrence():
    """Seed 0, projection space: the Gram similarity of the part embeddings with Prop. 3.1's
    optimum Z* clears the floor that one-hot parts set (chapter 5, cell 22) for the run on
    the linked world, and not for the same config trained where parts ignore the class; the
    same for the distinct pairs' fit to the ratio P_uv / (p_u p_v) and its bar of 0.5. The
    claims are chapter 9's functions (parts.py), whose figures are chapter 5's."""
    world = ToyWorld(seed=0)
    P, p = world.cooccurrence()
    sample = world.sample(1000, 5)
    Z_star = closed_form_embedding(P, world.n_parts)
    floor = one_hot_gram(world)
    assert floor == pytest.approx(
        gram_similarity(torch.eye(world.n_parts, dtype=torch.float64), Z_star, p))
    verdicts = {}
    for folder in RUNS:
        model, cfg = quick_run(folder)
        gram = parts_fit_prop31(model, sample, world, threshold=floor, space="projection")
        pairs = pairs_follow_the_ratio(model, sample, world, space="projection")
        Z = part_embeddings(model, sample.images, sample.parts, world.tile, world.n_parts,
                            space="projection")  # chapter 5's way to the same figures
        assert gram.figure == pytest.approx(gram_similarity(Z, Z_star, p), abs=1e-5)
        assert pairs.figure == pytest.approx(ratio_fit(Z, P), abs=1e-5)
        verdicts[cfg.dataset] = gram, pairs
    assert all(v.holds for v in verdicts["toyworld"]), verdicts
    assert not any(v.holds for v in verdicts["toyworld_independent"]), verdicts
