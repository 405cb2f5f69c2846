"""The course's claims about learning, each a function that returns its figure and verdict.

A check is evidence that training taught something only if it *fails* for a control:

- the same architecture and seed, untrained (``untrained_twin``);
- for a claim about co-occurrence, the same network trained on a world whose parts are drawn
  whatever the image's class (``textureworld_independent``: P = p p^T), where there is no
  co-occurrence to learn.

Each claim below measures one figure and compares it with a threshold fixed in advance; it
returns a :class:`Verdict`. Chapters 7 to 9 print the verdicts of the trained network beside
those of its controls, and ``tests/test_claims.py`` requires every claim to hold for the
trained run and to fail for each control. Chapter 8's two claims read probes already made
(``local_aggregation.probe_poolings``): one is about pooling, whose control is a world where
position carries nothing; the other compares the trained network with its twin itself.
"""

from __future__ import annotations

import torch
from torch import nn

from cooc_minimal.bags import bag_embeddings
from cooc_minimal.evaluate import (
    accuracy,
    initial_model,
    knn_classify,
    linear_probe,
    multiscale_convergence,
)
from cooc_minimal.local_aggregation import GLOBAL_AVERAGE, REGIONS
from cooc_minimal.parts import parts_fit_prop31
from cooc_minimal.runtime import evaluation_mode
from cooc_minimal.toyworld import ToySample, ToyWorld
from cooc_minimal.verdict import Verdict, at_least

__all__ = [
    "TEXTURE_CLAIMS",
    "Verdict",
    "at_least",
    "bag_knn_near_bayes",
    "bag_probe_near_bayes",
    "bags_converge_to_their_image",
    "convergence_figures",
    "regions_beat_the_global_average",
    "texture_claims",
    "training_lifts_the_map",
    "untrained_twin",
    "world_sample",
]


def untrained_twin(model: nn.Module, cfg) -> nn.Module:
    """The control: ``cfg``'s architecture at the initialisation its seed gives, untrained.

    The network a run starts from (:func:`~cooc_minimal.evaluate.initial_model`), in
    evaluation mode on ``model``'s device; the global random state is left as it was.
    """
    return initial_model(cfg, next(model.parameters()).device)


# --------------------------------------------------------------- bags of tiles (chapter 7)

def _tile_bags(model: nn.Module, images: torch.Tensor, tile: int, space: str) -> torch.Tensor:
    """The mean embedding of every tile of each image: (N, D)."""
    return bag_embeddings(model, images, tile, None, grid=True, space=space)


def bag_probe_near_bayes(model: nn.Module, train: ToySample, test: ToySample,
                         world: ToyWorld, *, margin: float = 0.05,
                         space: str = "embedding") -> Verdict:
    """A linear probe on bags of all of an image's tiles comes within ``margin`` of Bayes.

    train, test: toy samples (images, labels, parts). The threshold is the world's Bayes
    accuracy with every tile minus ``margin``.
    """
    with evaluation_mode(model):
        x_train, x_test = (_tile_bags(model, s.images, world.tile, space) for s in (train, test))
    figure = linear_probe(x_train, train.labels, x_test, test.labels).accuracy
    bayes = world.bayes_accuracy(world.n_tiles)
    return at_least(f"bag-of-{world.n_tiles} probe within {margin:.2f} of Bayes", figure,
                    bayes - margin)


def bag_knn_near_bayes(model: nn.Module, train: ToySample, test: ToySample,
                       world: ToyWorld, *, margin: float = 0.05,
                       space: str = "embedding") -> Verdict:
    """A kNN (k = 20, T = 0.07) on bags of all tiles comes within ``margin`` of Bayes.

    The training bags are ``train``'s, the votes are cast for ``test``. A vote is not the
    Bayes classifier: even on each image's exact part counts it falls short of Bayes, by
    about 1 point on the texture world's class draw (3.4 on draw 0, hence
    :data:`~cooc_minimal.textureworld.WORLD_SEED`). The trained bags also keep a nuisance,
    partly shared by an image's tiles, that a cosine vote weighs as much as the parts
    (:func:`~cooc_minimal.bag_nuisance.knn_ceiling`, chapter 7, ``texture_knn_ceiling.json``).
    """
    with evaluation_mode(model):
        x_train, x_test = (_tile_bags(model, s.images, world.tile, space) for s in (train, test))
    figure = accuracy(knn_classify(x_train, train.labels, x_test), test.labels)
    bayes = world.bayes_accuracy(world.n_tiles)
    return at_least(f"bag-of-{world.n_tiles} kNN within {margin:.2f} of Bayes", figure,
                    bayes - margin)


# -------------------------------------------------------- convergence (chapter 7, section 8)

def convergence_figures(model: nn.Module, images: torch.Tensor, tile: int, *,
                        n_patches: int = 16, space: str = "embedding") -> dict[str, float]:
    """``{"same", "different", "gap"}`` of bags of ``n_patches`` random patches.

    images: (N, 3, S, S); patches of side ``tile`` drawn with seed 0
    (:func:`~cooc_minimal.evaluate.multiscale_convergence`). ``same``: the centred cosine
    between each bag and its own whole image's embedding, averaged over the images;
    ``different``: the same bags against another image's embedding (a derangement), the
    baseline ``same`` is read against; ``gap`` = same - different, what a bag knows of its
    own image.
    """
    with evaluation_mode(model):
        result = multiscale_convergence(model, images, tile, [n_patches], space=space,
                                        generator=torch.Generator().manual_seed(0))
    row = result.rows()[-1]
    return {name: float(row[name]) for name in ("same", "different", "gap")}


def bags_converge_to_their_image(model: nn.Module, images: torch.Tensor, tile: int, *,
                                 threshold: float = 0.75, n_patches: int = 16,
                                 space: str = "embedding") -> Verdict:
    """The mean of ``n_patches`` random patches is close to its own whole image's embedding:
    ``same`` of :func:`convergence_figures` (another image scores about 0 on it, for every
    network)."""
    figures = convergence_figures(model, images, tile, n_patches=n_patches, space=space)
    return at_least(f"bags of {n_patches} random patches within reach of their image "
                    "(centred cosine)", figures["same"], threshold)


# ---------------------------------------------------------------- pooling (chapter 8)

def regions_beat_the_global_average(probes: dict, *, margin: float = 0.05) -> Verdict:
    """A probe on four regional averages of the map beats one on its global average by
    ``margin`` of test accuracy: position carries the class, and the regions keep it.

    probes: :func:`~cooc_minimal.local_aggregation.probe_poolings` of one network on one
    world. A claim about pooling, not learning: on a layout world it holds for an untrained
    network too; its control is a world whose parts ignore their position (the toy world).
    """
    return at_least(f"regional averages beat the global average by {margin:.2f}",
                    probes[REGIONS].accuracy - probes[GLOBAL_AVERAGE].accuracy, margin)


def training_lifts_the_map(trained: dict, untrained: dict, *, margin: float = 0.25) -> Verdict:
    """Both poolings of the trained network's map (global and regional averages) read the
    class at least ``margin`` better than its untrained twin's: the figure is the smaller
    of the two gains. trained, untrained: ``probe_poolings`` of the two on one world."""
    gain = min(trained[name].accuracy - untrained[name].accuracy
               for name in (GLOBAL_AVERAGE, REGIONS))
    return at_least(f"training lifts both poolings of the map by {margin:.2f}", gain, margin)


# --------------------------------------------------------------------- all of them at once

#: The claims measured on a texture world, in the order chapter 7 shows them, and whether
#: each is about co-occurrence: then it must also fail for a network trained on
#: ``textureworld_independent``, where there is none. The probe is not: it is fitted on
#: the classes, so any embedding that tells the textures apart lets it read the part counts,
#: and the network trained without co-occurrence learns some of that from overlapping
#: patches under augmentation (chapter 7: below the threshold on every seed, by less than
#: twice the spread). The kNN has no labels: a vote finds the class only if the network's
#: own metric puts the bags of one class together.
TEXTURE_CLAIMS = {"probe": False, "kNN": True, "co-occurrence": True, "convergence": False}


def texture_claims(model: nn.Module, train: ToySample, test: ToySample,
                   world: ToyWorld, *, convergence_images: int = 500) -> dict[str, Verdict]:
    """Every claim of :data:`TEXTURE_CLAIMS` for one network, at its default threshold.

    train, test: samples of the *linked* world (with co-occurrence), whatever world the
    network was trained on; the co-occurrence claim (:func:`~cooc_minimal.parts.parts_fit_prop31`,
    chapter 9) reads the tiles of ``train``, the
    convergence claim the first ``convergence_images`` images of ``test``.
    """
    return {
        "probe": bag_probe_near_bayes(model, train, test, world),
        "kNN": bag_knn_near_bayes(model, train, test, world),
        "co-occurrence": parts_fit_prop31(model, train, world),
        "convergence": bags_converge_to_their_image(
            model, test.images[:convergence_images], world.tile),
    }


def world_sample(dataset, n: int | None = None) -> ToySample:
    """The first ``n`` images of a toy-world dataset (``data.get_dataset``) as a sample."""
    n = len(dataset) if n is None else n
    return ToySample(dataset.images[:n], dataset.labels[:n], dataset.parts[:n])
