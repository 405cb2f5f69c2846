"""bag_nuisance on synthetic tile embeddings whose split into parts and nuisance is known."""

import re

import numpy as np
import pytest
import torch
from torch import nn

from cooc_minimal.bag_nuisance import (
    histogram_bags,
    histogram_knn,
    knn_ceiling,
    nuisance_share,
    part_readout,
    read_histograms,
    shared_ratio,
    split_bags,
)
from cooc_minimal.paths import read_result
from cooc_minimal.textureworld import TextureWorld
from cooc_minimal.toyworld import ToyWorld

N, T, V, D = 400, 16, 5, 6


def synthetic(shared: float, independent: float, seed: int = 0):
    """Tiles = part vector + a nuisance common to an image + a nuisance of each tile."""
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(V, D, generator=g)
    parts = torch.randint(0, V, (N, T), generator=g)
    tiles = (means[parts] + shared * torch.randn(N, 1, D, generator=g)
             + independent * torch.randn(N, T, D, generator=g))
    return tiles, parts, means


def test_split_bags_adds_up_and_matches_the_loop():
    tiles, parts, means = synthetic(0.5, 0.5)
    part_bag, nuisance = split_bags(tiles, parts, means)
    torch.testing.assert_close(part_bag + nuisance, tiles.mean(dim=1))
    expected = torch.stack([sum(means[parts[i, t]] for t in range(T)) / T for i in range(3)])
    torch.testing.assert_close(part_bag[:3], expected)


def test_no_nuisance_means_share_zero():
    tiles, parts, means = synthetic(0.0, 0.0)
    assert nuisance_share(tiles, parts, means) == pytest.approx(0.0, abs=1e-10)


def test_shared_ratio_tells_independent_from_shared_nuisance():
    # Independent per-tile noise: T Var(mean of T) / Var(one) = 1 up to sampling error.
    assert shared_ratio(*synthetic(0.0, 1.0)) == pytest.approx(1.0, abs=0.15)
    # The same remainder on every tile of an image: the ratio is T.
    assert shared_ratio(*synthetic(1.0, 0.0)) == pytest.approx(T, rel=1e-5)
    # Half and half in variance: T * (1 + 1/T) / 2 = (T + 1) / 2.
    assert shared_ratio(*synthetic(1.0, 1.0)) == pytest.approx((T + 1) / 2, rel=0.15)


def test_nuisance_share_follows_the_variances():
    # Bag variance: parts (mean of 16 draws of a part vector) plus the shared nuisance.
    tiles, parts, means = synthetic(1.0, 0.0)
    part_bag, _ = split_bags(tiles, parts, means)
    expected = D / (part_bag.var(dim=0).sum().item() + D)
    assert nuisance_share(tiles, parts, means) == pytest.approx(expected, rel=0.15)


def test_histogram_bags_count_parts():
    parts = torch.tensor([[0, 0, 2, 1], [3, 3, 3, 3]])
    expected = torch.tensor([[0.5, 0.25, 0.25, 0.0], [0.0, 0.0, 0.0, 1.0]])
    torch.testing.assert_close(histogram_bags(parts, 4), expected)


def test_split_bags_refuses_mismatched_shapes_and_unknown_parts():
    tiles, parts, means = synthetic(0.0, 0.0)
    with pytest.raises(ValueError, match=r"tiles must be \(N, n, D\) and parts \(N, n\)"):
        split_bags(tiles, parts[:, :4], means)
    with pytest.raises(ValueError, match=r"parts must lie in \[0, 3\), one row of means"):
        split_bags(tiles, parts, means[:3])


def test_part_readout_is_the_least_squares_map_of_an_independent_solver():
    tiles, parts, _ = synthetic(0.3, 0.5)
    flat_tiles, flat_parts = tiles.flatten(0, 1), parts.flatten()
    readout = part_readout(flat_tiles, flat_parts, V)
    design = np.hstack([flat_tiles.double().numpy(), np.ones((len(flat_tiles), 1))])
    targets = np.eye(V)[flat_parts.numpy()]
    expected = np.linalg.solve(design.T @ design, design.T @ targets)  # normal equations
    np.testing.assert_allclose(readout.numpy(), expected, rtol=1e-6, atol=1e-9)


def test_read_histograms_of_a_bag_is_the_mean_reading_of_its_tiles():
    tiles, parts, _ = synthetic(0.3, 0.5)
    readout = part_readout(tiles.flatten(0, 1), parts.flatten(), V)
    per_tile = read_histograms(tiles.flatten(0, 1), readout).view(N, T, V)
    torch.testing.assert_close(read_histograms(tiles.mean(dim=1), readout),
                               per_tile.mean(dim=1), rtol=1e-5, atol=1e-5)


def test_read_histograms_are_the_part_histograms_without_nuisance():
    # Five part vectors in six dimensions are linearly independent: an affine map sends each
    # to its one-hot vector exactly, so a bag reads as its exact part histogram.
    tiles, parts, _ = synthetic(0.0, 0.0)
    readout = part_readout(tiles.flatten(0, 1), parts.flatten(), V)
    torch.testing.assert_close(read_histograms(tiles.mean(dim=1), readout),
                               histogram_bags(parts, V), rtol=0, atol=1e-5)


def test_part_readout_refuses_tiles_not_flattened():
    tiles, parts, _ = synthetic(0.0, 0.0)
    with pytest.raises(ValueError, match=r"tiles must be \(M, D\) and parts \(M,\), got "
                                         r"\(400, 16, 6\) and \(400, 16\): flatten"):
        part_readout(tiles, parts, V)
    with pytest.raises(ValueError, match=r"parts must be integers in \[0, 4\), one per tile"):
        part_readout(tiles.flatten(0, 1), parts.flatten(), 4)


def test_knn_ceiling_refuses_a_training_sample_that_misses_a_part():
    world = ToyWorld(seed=0)
    train = world.sample(3, 1)
    absent = sorted(set(range(world.n_parts)) - set(train.parts.flatten().tolist()))
    assert absent, "three images of 16 tiles should miss a part of this world"
    expected = re.escape(f"part(s) {absent} never show in the 3 training images")
    with pytest.raises(ValueError, match=expected):
        knn_ceiling(MeanColour(), train, world.sample(5, 2), world)


class MeanColour(nn.Module):
    """Embeds a patch by its mean RGB value: on ToyWorld, where each part has its own
    colour, that is the part up to a small per-tile brightness offset and noise."""

    def __init__(self):
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(()))  # gives the model a device

    def embed(self, x, space="embedding"):
        return x.mean(dim=(-2, -1))


def test_knn_ceiling_on_a_network_that_reads_parts():
    world = ToyWorld(seed=0)
    train, test = world.sample(600, 1), world.sample(300, 2)
    figures = knn_ceiling(MeanColour(), train, test, world)
    # Each tile's colour is its part's, with an offset of its own: little nuisance, and
    # none shared by an image's tiles, so the part bags and the bags vote alike.
    assert figures["nuisance share"] < 0.05
    assert figures["shared ratio"] < 2
    assert abs(figures["kNN, part bags"] - figures["kNN, bags"]) < 0.03
    assert figures["kNN, part histograms"] > 0.5  # far above chance (0.1)


class ColourMoments(MeanColour):
    """The mean colour m and its products m_i m_j: 9 numbers, in which the 8 part colours
    are affinely independent, so an affine map can read each one as its own one-hot vector
    (from m's 3 numbers it cannot: 4 coefficients per part for 8 parts)."""

    def embed(self, x, space="embedding"):
        m = x.mean(dim=(-2, -1))  # (B, 3)
        i, j = torch.triu_indices(3, 3)
        return torch.cat([m, m[:, i] * m[:, j]], dim=1)


@pytest.mark.parametrize("model, reads_parts", [(ColourMoments(), True),
                                                (MeanColour(), False)])
def test_the_read_histograms_need_parts_a_linear_map_can_read(model, reads_parts):
    world = ToyWorld(seed=0)
    train, test = world.sample(600, 1), world.sample(300, 2)
    figures = knn_ceiling(model, train, test, world)
    if reads_parts:  # the vote on the read histograms is the vote on the true ones
        assert figures["tiles read right"] > 0.95, figures
        assert abs(figures["kNN, read histograms"] - figures["kNN, part histograms"]) < 0.03
    else:  # the same colours, too few numbers: many tiles misread, the vote falls
        assert figures["tiles read right"] < 0.9, figures
        assert figures["kNN, read histograms"] < figures["kNN, part histograms"] - 0.05


def test_the_recorded_class_draws_are_what_the_library_computes():
    """texture_knn_ceiling.json's class_draws (chapter 7's table of draws): for two draws,
    Bayes and the vote on exact part counts recomputed here from the library, and the
    shortfall their difference. A record from other code, or edited by hand, fails."""
    recorded = {row["seed"]: row for row in read_result("texture_knn_ceiling")["class_draws"]}
    assert sorted(recorded) == list(range(10))
    for draw in (0, 4):
        world = TextureWorld(seed=draw)
        (y_train, train), (y_test, test) = (
            world.sample_parts(2000, torch.Generator().manual_seed(images)) for images in (1, 2))
        vote = histogram_knn(train, y_train, test, y_test, n_parts=world.n_parts)
        row = recorded[draw]
        assert row["bayes"] == pytest.approx(world.bayes_accuracy(world.n_tiles), abs=1e-12)
        assert row["kNN, part histograms"] == pytest.approx(vote, abs=1e-6), draw
        assert row["kNN short of Bayes"] == pytest.approx(row["bayes"] - vote, abs=1e-6)
