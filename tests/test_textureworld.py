"""The texture world: its known co-occurrence and Bayes accuracy, its nuisance, its textures,
and that training beats the untrained network on it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cooc_minimal import data
from cooc_minimal.augment import grayscale
from cooc_minimal.config import load_config
from cooc_minimal.evaluate import tile_bag_accuracy
from cooc_minimal.textureworld import (
    PLAIN,
    TEXTURE_NAMES,
    WORLD_SEED,
    Nuisance,
    TextureWorld,
    texture_patterns,
)
from cooc_minimal.toyworld import ToyWorld
from cooc_minimal.train import ensure_trained


def tiles_of(images: torch.Tensor, tile: int) -> torch.Tensor:
    """(N, 3, S, S) -> (N, T, 3, tile, tile), tiles row by row (as ``parts``)."""
    n, channels = images.shape[:2]
    grid = images.shape[-1] // tile
    cut = images.view(n, channels, grid, tile, grid, tile).permute(0, 2, 4, 1, 3, 5)
    return cut.reshape(n, grid * grid, channels, tile, tile)


@pytest.fixture(scope="module")
def world() -> TextureWorld:
    return TextureWorld()


@pytest.fixture(scope="module")
def sample(world):
    return world.sample(1500, 5)


# ---- classes and parts: ToyWorld's machinery --------------------------------------------

def test_classes_are_toyworlds_with_the_same_seed_and_concentration(world):
    assert world.seed == WORLD_SEED  # the default class draw
    twin = ToyWorld(seed=WORLD_SEED, concentration=0.3)
    assert torch.equal(world.weights, twin.weights)
    torch.testing.assert_close(world.cooccurrence()[0], twin.cooccurrence()[0], rtol=0, atol=0)
    assert world.texture_names == TEXTURE_NAMES and world.size == 32 and world.n_tiles == 16


def test_sampled_parts_cooccur_as_the_true_matrix_says(world):
    P, p = world.cooccurrence()
    # Classes and parts of 20,000 images, drawn as ``sample`` draws them (without pixels).
    _, parts = world.sample_parts(20_000, torch.Generator().manual_seed(5))
    hist = torch.nn.functional.one_hot(parts, world.n_parts).sum(dim=1).double()  # (N, V)
    # every ordered pair of distinct tiles of one image: h h^T minus the tile with itself
    counts = hist.T @ hist - torch.diag(hist.sum(dim=0))
    empirical = counts / counts.sum()
    assert (empirical - P).abs().max() < 0.004
    assert 0.5 * (empirical - P).abs().sum() < 0.015  # total variation
    torch.testing.assert_close(empirical.sum(dim=1), p, atol=0.005, rtol=0)


def test_bayes_accuracy_matches_an_independent_count(world):
    # One tile, exactly: the best guess for part v is the class maximising pi_c w_c[v].
    joint = world.class_prior.numpy()[:, None] * world.weights.numpy()
    assert world.bayes_accuracy(1) == pytest.approx(joint.max(axis=0).sum(), abs=1e-12)
    # Sixteen tiles: the posterior from the part counts, written here with numpy, on images
    # drawn by the renderer (not by bayes_accuracy's own draw).
    drawn = world.sample(4000, 9)
    counts = np.stack([np.bincount(t, minlength=world.n_parts) for t in drawn.parts.numpy()])
    scores = counts @ np.log(world.weights.numpy()).T + np.log(world.class_prior.numpy())
    mine = (scores.argmax(axis=1) == drawn.labels.numpy()).mean()
    stderr = math.sqrt(mine * (1 - mine) / 4000) + math.sqrt(mine * (1 - mine) / 20_000)
    assert abs(world.bayes_accuracy(16) - mine) < 4 * stderr
    assert world.bayes_accuracy(1) < 0.4 < 0.9 < world.bayes_accuracy(16)


# ---- the pixels: nuisance per occurrence, part in the texture --------------------------

def test_the_nuisance_varies_per_occurrence(world, sample):
    tiles = tiles_of(sample.images, world.tile)                    # (N, T, 3, t, t)
    colour = tiles.mean(dim=(-2, -1))                              # (N, T, 3)
    first = colour[sample.parts == 0]                              # every occurrence of part 0
    assert first.shape[0] > 100
    # Two occurrences of one part differ in colour: typical RGB distance between them.
    gaps = (first[1:] - first[:-1]).norm(dim=1)
    assert gaps.median() > 0.2
    for v in range(world.n_parts):  # every part takes every hue: no colour says "part v"
        assert colour[sample.parts == v].std(dim=0).min() > 0.1
    # The exposure is drawn per image: mean brightness varies between images ...
    assert sample.images.mean(dim=(1, 2, 3)).std() > 0.04
    # ... whereas ToyWorld's parts keep their colour.
    toy = ToyWorld().sample(300, 5)
    toy_colour = tiles_of(toy.images, 8).mean(dim=(-2, -1))[toy.parts == 0]
    assert toy_colour.std(dim=0).max() < 0.05


def spectra(tiles: torch.Tensor) -> torch.Tensor:
    """Grey-level, contrast-normalised tiles -> their 2-D amplitude spectra, a description
    that no shift of the pattern, colour, exposure or contrast changes: (N, t*t)."""
    grey = grayscale(tiles)[:, 0]                                  # (N, t, t)
    grey = grey - grey.mean(dim=(-2, -1), keepdim=True)
    grey = grey / grey.square().mean(dim=(-2, -1), keepdim=True).sqrt().clamp_min(1e-6)
    return torch.fft.fft2(grey).abs().flatten(1)


def test_the_part_is_in_the_texture_alone(world, sample):
    tiles = tiles_of(sample.images, world.tile).flatten(0, 1)      # (N T, 3, t, t)
    parts = sample.parts.flatten()
    features = spectra(tiles)
    half = tiles.shape[0] // 2
    centroids = torch.stack([features[:half][parts[:half] == v].mean(dim=0)
                             for v in range(world.n_parts)])
    guess = torch.cdist(features[half:], centroids).argmin(dim=1)
    assert (guess == parts[half:]).float().mean() > 0.95
    # The mean colour of a tile, by contrast, says next to nothing about its part.
    colour = tiles.mean(dim=(-2, -1))
    centres = torch.stack([colour[:half][parts[:half] == v].mean(dim=0)
                           for v in range(world.n_parts)])
    by_colour = torch.cdist(colour[half:], centres).argmin(dim=1)
    assert (by_colour == parts[half:]).float().mean() < 0.25


def test_textures_are_alike_in_mean_and_energy_and_survive_a_flip():
    kinds = torch.arange(len(TEXTURE_NAMES)).repeat(200, 1)        # (200, 8)
    patterns = texture_patterns(kinds, 8, torch.Generator().manual_seed(0))
    assert patterns.shape == (200, 8, 8, 8)
    torch.testing.assert_close(patterns.mean(dim=(-2, -1)), torch.zeros(200, 8), atol=1e-5,
                               rtol=0)
    torch.testing.assert_close(patterns.square().mean(dim=(-2, -1)), torch.ones(200, 8),
                               atol=1e-4, rtol=0)
    # A horizontal flip (BYOL's) leaves each texture nearest to its own kind.
    def described(x):
        return spectra(x.flatten(0, 1)[:, None].expand(-1, 3, -1, -1))
    centres = described(patterns).view(200, 8, -1).mean(dim=0)
    flipped = described(patterns.flip(-1))
    nearest = torch.cdist(flipped, centres).argmin(dim=1)
    assert (nearest == kinds.flatten()).float().mean() > 0.95


def test_plain_world_and_nuisance_checks():
    images = TextureWorld(nuisance=PLAIN).sample(4, 0).images
    assert torch.equal(images[:, 0], images[:, 1])  # grey: no colour, no noise
    for bad in (dict(exposure=(1.2, 0.8)), dict(shade=(0.2, 1.5)), dict(noise=-0.1),
                dict(contrast=(-0.1, 0.2))):
        with pytest.raises(ValueError, match="must"):
            Nuisance(**bad)
    with pytest.raises(ValueError, match="nuisance must be a Nuisance"):
        TextureWorld(nuisance={"noise": 0.1})
    with pytest.raises(ValueError, match="n_parts"):
        TextureWorld(n_parts=9)


def test_the_dataset_by_name():
    test_split = data.get_dataset("textureworld", train=False)
    assert isinstance(test_split.world, TextureWorld) and len(test_split) == 2000
    assert type(data.get_dataset("toyworld", train=False).world) is ToyWorld  # unchanged
    images, labels = data.load_tensors("textureworld", train=False)
    assert images.dtype == torch.uint8 and images.shape == (2000, 3, 32, 32)
    assert torch.equal(labels, test_split.labels)
    assert load_config("texture").dataset == "textureworld"


# ---- training beats the untrained network ------------------------------------------------

#: A reduced texture run: 3,000 images, 2 epochs (about 10 s of training on 2 cores).
QUICK = ["train_images=3000", "epochs=2"]
#: What training must add to the untrained control's bag-of-16 accuracy, on 1,000 images of
#: each split (measured with seed 0: probe 0.80 against 0.63, kNN 0.64 against 0.31).
PROBE_MARGIN, KNN_MARGIN = 0.10, 0.20


@pytest.mark.slow
def test_training_beats_the_untrained_network(tmp_path_factory):
    runs = tmp_path_factory.mktemp("texture_runs")
    checkpoint = ensure_trained(load_config("texture", QUICK), runs / "quick", progress=False)
    figures = tile_bag_accuracy(checkpoint, limit=1000)
    assert figures["probe_acc"] > figures["untrained_probe_acc"] + PROBE_MARGIN, figures
    assert figures["knn_acc"] > figures["untrained_knn_acc"] + KNN_MARGIN, figures
    assert figures["untrained_probe_acc"] < figures["bayes_acc"] - 0.2, figures


def test_independent_parts_remove_the_cooccurrence_and_keep_the_marginal():
    """The control world: each tile's part is drawn from p whatever the class, so the pair
    frequency of two tiles is p p^T and the class can't be read from the parts."""
    linked = TextureWorld()
    control = TextureWorld(independent_parts=True)
    P, p = control.cooccurrence()
    P_linked, p_linked = linked.cooccurrence()
    assert torch.allclose(p, p_linked) and torch.allclose(P, torch.outer(p, p))
    assert (P_linked - torch.outer(p, p)).abs().max() > 0.01  # the linked world differs
    labels, parts = control.sample_parts(20_000, torch.Generator().manual_seed(3))
    pairs = torch.zeros(8, 8, dtype=torch.float64)
    pairs.index_put_((parts[:, 0], parts[:, 1]), torch.ones(len(parts), dtype=torch.float64),
                     accumulate=True)
    assert (pairs / len(parts) - P).abs().max() < 0.01
    for c in range(control.n_classes):  # every class sees the same parts as often
        share = torch.bincount(parts[labels == c].flatten(), minlength=8).double()
        assert (share / share.sum() - p).abs().max() < 0.03
    assert abs(control.bayes_accuracy(16) - 0.1) < 0.02
    assert abs(control.bayes_accuracy(1) - 0.1) < 0.02
    assert linked.bayes_accuracy(16) > 0.9


def test_the_control_world_is_a_dataset_and_a_config():
    from cooc_minimal.config import load_config
    from cooc_minimal.data import get_dataset

    dataset = get_dataset("textureworld_independent", train=False)
    assert dataset.world.independent_parts and len(dataset) == 2000
    cfg = load_config("texture", ["dataset=textureworld_independent"])
    assert cfg.dataset == "textureworld_independent" and cfg.image_size == 32
