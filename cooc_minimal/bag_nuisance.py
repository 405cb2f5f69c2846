"""What a bag of tiles says of its parts, and what the paint adds to it (chapter 7).

On a toy world the part of every tile is known, so each tile embedding h_t (D,) splits
into the mean embedding of its part and a remainder, the *nuisance*::

    h_t = m_{v(t)} + r_t          m_v (D,): the mean of part v's training tiles
    b   = a + e                   b = mean_t h_t (the bag), a = mean_t m_{v(t)}, e = mean_t r_t

``a`` is the *part bag*: what the bag would be if the network saw nothing but each tile's
part. Comparing a kNN on ``a`` with a kNN on ``b`` separates two reasons a bag may fall
short of Bayes: the geometry of the part means, and the nuisance left in the embedding.

Does the bag still *hold* the part counts? A linear map R fitted by least squares from each
training tile's embedding to its part's one-hot vector (:func:`part_readout`) reads a tile's
part; and since a bag is a mean, R applied to the bag is the mean of its tiles' readings::

    R(b) = mean_t R(h_t) ~ mean_t onehot(v(t)) = the part histogram

A kNN on these *read histograms* is what a vote could reach if its metric ignored the
nuisance, with the network's own embedding and one linear map fitted without class labels.

Averaging n tiles shrinks the nuisance only where the tiles disagree. If the remainders of
an image's n tiles were independent, Var(e) would be Var(r) / n; the *shared ratio*
``n Var(e) / Var(r)`` is 1 then, and n when every tile of an image carries the same
remainder, as a per-image exposure does: no number of tiles averages that away.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cooc_minimal.bags import grid_embeddings
from cooc_minimal.evaluate import accuracy, knn_classify
from cooc_minimal.parts import part_means
from cooc_minimal.toyworld import ToySample, ToyWorld

__all__ = ["histogram_bags", "histogram_knn", "knn_ceiling", "nuisance_share", "part_readout",
           "read_histograms", "shared_ratio", "split_bags"]


def split_bags(tiles: torch.Tensor, parts: torch.Tensor,
               means: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The part bag a and the nuisance e of each image's bag b = a + e.

    tiles: (N, n, D) the embeddings of all n tiles of N images; parts: (N, n) int64 their
    parts; means: (V, D) the mean embedding of each part (from *training* tiles, also for
    test images). Returns a, e: (N, D) float32 each.
    """
    if tiles.dim() != 3 or parts.shape != tiles.shape[:2]:
        raise ValueError(f"tiles must be (N, n, D) and parts (N, n), got {tuple(tiles.shape)} "
                         f"and {tuple(parts.shape)}.")
    if parts.numel() and not 0 <= int(parts.min()) <= int(parts.max()) < means.shape[0]:
        raise ValueError(f"parts must lie in [0, {means.shape[0]}), one row of means per part, "
                         f"got parts from {int(parts.min())} to {int(parts.max())}.")
    part_bag = means.float()[parts].mean(dim=1)  # (N, D)
    return part_bag, tiles.float().mean(dim=1) - part_bag


def nuisance_share(tiles: torch.Tensor, parts: torch.Tensor, means: torch.Tensor) -> float:
    """Var(e) / Var(b): the share of the bags' variance (summed over features) that is not
    the parts'. 0 when every tile embeds as its part's mean."""
    part_bag, nuisance = split_bags(tiles, parts, means)
    return (nuisance.var(dim=0).sum() / (part_bag + nuisance).var(dim=0).sum()).item()


def shared_ratio(tiles: torch.Tensor, parts: torch.Tensor, means: torch.Tensor) -> float:
    """n Var(e) / Var(r): 1 if an image's n tiles carry independent nuisance, n if the same."""
    remainder = tiles.float() - means.float()[parts]  # (N, n, D): r_t
    # Population variances (divide by the count) on both sides: an exactly shared
    # remainder then gives exactly n.
    per_tile = remainder.flatten(0, 1).var(dim=0, unbiased=False).sum()
    per_bag = remainder.mean(dim=1).var(dim=0, unbiased=False).sum()
    return (tiles.shape[1] * per_bag / per_tile).item()


def histogram_bags(parts: torch.Tensor, n_parts: int) -> torch.Tensor:
    """The bag of one-hot parts: (N, n) int64 -> (N, V) float32, the share of each part.

    What a network that saw each tile's part exactly, and nothing else, could at best give.
    """
    return F.one_hot(parts, n_parts).float().mean(dim=1)


def histogram_knn(train_parts: torch.Tensor, train_labels: torch.Tensor,
                  test_parts: torch.Tensor, test_labels: torch.Tensor, *, n_parts: int) -> float:
    """Accuracy of the kNN (k = 20, T = 0.07) on :func:`histogram_bags`: no network at all,
    what a vote can read from exact part counts. parts: (N, n) int64, labels: (N,)."""
    votes = knn_classify(histogram_bags(train_parts, n_parts), train_labels,
                         histogram_bags(test_parts, n_parts))
    return accuracy(votes, test_labels)


def _with_one(x: torch.Tensor) -> torch.Tensor:
    """[x, 1]: (K, D) -> (K, D + 1) float64, the column the affine map's bias multiplies."""
    return torch.cat([x.double(), x.new_ones(x.shape[0], 1).double()], dim=1)


def part_readout(tiles: torch.Tensor, parts: torch.Tensor, n_parts: int) -> torch.Tensor:
    """The least-squares linear map from a tile embedding to its part's one-hot vector.

    tiles: (M, D) embeddings, parts: (M,) int64 in [0, n_parts). Returns R: (D + 1, V)
    float64, the last row a bias, minimising sum_t ||[h_t, 1] R - onehot(v_t)||^2 (the
    minimum-norm solution if the features are rank-deficient, as dead ReLU units make them).
    Fitted with part labels only, never class labels.
    """
    if tiles.dim() != 2 or parts.shape != tiles.shape[:1]:
        raise ValueError(f"tiles must be (M, D) and parts (M,), got {tuple(tiles.shape)} and "
                         f"{tuple(parts.shape)}: flatten the images' tiles first.")
    if parts.is_floating_point() or (parts.numel() and not 0 <= int(parts.min())
                                     <= int(parts.max()) < n_parts):
        raise ValueError(f"parts must be integers in [0, {n_parts}), one per tile, got "
                         f"{parts.dtype} from {parts.min().item()} to {parts.max().item()}.")
    targets = F.one_hot(parts, n_parts).double()  # (M, V)
    return torch.linalg.lstsq(_with_one(tiles), targets, driver="gelsd").solution


def read_histograms(bags: torch.Tensor, readout: torch.Tensor) -> torch.Tensor:
    """[b, 1] R for each bag: (N, D) -> (N, V) float32, the part histogram the map reads.

    R is affine, so this is also the mean of the readings of the bag's tiles."""
    return (_with_one(bags) @ readout).float()


def knn_ceiling(model: nn.Module, train: ToySample, test: ToySample,
                world: ToyWorld) -> dict[str, float]:
    """The kNN (k = 20, T = 0.07) on four kinds of bags of all tiles, and the nuisance.

    - ``"kNN, part histograms"``: :func:`histogram_bags`, no network;
    - ``"kNN, read histograms"``: :func:`read_histograms` of the network's bags, with R
      fitted on the training tiles (:func:`part_readout`); ``"tiles read right"``: the share
      of test tiles whose largest reading is their part;
    - ``"kNN, part bags"``: the network's part bags a (its part means, no nuisance);
    - ``"kNN, bags"``: the network's bags b, what chapter 7's kNN claim measures;
    - ``"nuisance share"`` and ``"shared ratio"`` of the test bags (part means from train).
    """
    missing = (torch.bincount(train.parts.flatten(), minlength=world.n_parts) == 0).nonzero()
    if missing.numel():
        raise ValueError(f"part(s) {missing.flatten().tolist()} never show in the "
                         f"{train.parts.shape[0]} training images, so their mean embedding is "
                         "undefined: pass more training images.")
    tiles = {name: grid_embeddings(model, sample.images, world.tile)
             for name, sample in (("train", train), ("test", test))}  # (N, n, D) each
    means = part_means(tiles["train"].flatten(0, 1), train.parts.flatten(),
                       world.n_parts)  # (V, D)
    (a_train, e_train), (a_test, e_test) = (split_bags(tiles[name], sample.parts, means)
                                            for name, sample in (("train", train),
                                                                 ("test", test)))
    b_train, b_test = a_train + e_train, a_test + e_test  # the bags themselves
    readout = part_readout(tiles["train"].flatten(0, 1), train.parts.flatten(), world.n_parts)
    read_right = (read_histograms(tiles["test"].flatten(0, 1), readout).argmax(dim=1)
                  == test.parts.flatten()).float().mean().item()

    def knn(x_train: torch.Tensor, x_test: torch.Tensor) -> float:
        return accuracy(knn_classify(x_train, train.labels, x_test), test.labels)

    return {
        "kNN, part histograms": histogram_knn(train.parts, train.labels, test.parts,
                                              test.labels, n_parts=world.n_parts),
        "kNN, read histograms": knn(read_histograms(b_train, readout),
                                    read_histograms(b_test, readout)),
        "tiles read right": read_right,
        "kNN, part bags": knn(a_train, a_test),
        "kNN, bags": knn(b_train, b_test),
        "nuisance share": nuisance_share(tiles["test"], test.parts, means),
        "shared ratio": shared_ratio(tiles["test"], test.parts, means),
    }
