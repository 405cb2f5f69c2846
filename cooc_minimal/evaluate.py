"""Evaluate a joint-embedding model the BagSSL way: an image is the mean of its patch embeddings.

``images -> patches -> backbone (h) [-> projector (z)] -> mean over patches -> probe / kNN``

The bags themselves come from ``bags.py`` (:func:`cooc_minimal.bags.bag_embeddings`,
:func:`cooc_minimal.bags.embed_dataset`); this module reads them out:

- :func:`linear_probe`: a linear classifier on standardised features, full-batch L-BFGS.
- :func:`knn_classify`: the weighted cosine k-nearest-neighbour vote of InstDisc (Wu et al.
  2018), as solo-learn evaluates: k = 20, weights exp(cos / 0.07).
- :func:`multiscale_convergence`: how close the mean of n patch embeddings comes to the
  embedding of the whole image, as n grows.
- :func:`evaluate_checkpoint`: probe and kNN accuracy of a checkpoint's bags, one row per
  (space, n); the command line ``python -m cooc_minimal.evaluate`` (``cooc-eval``) prints
  them.

Models are read through ``checkpoint.py``; this module never imports the training loop,
and draws nothing (figures are ``viz.py``'s).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from cooc_minimal import bags
from cooc_minimal.runtime import autocast, pick_device, positive_int

__all__ = [
    "ProbeResult",
    "Standardize",
    "accuracy",
    "evaluate_checkpoint",
    "knn_classify",
    "linear_probe",
    "multiscale_convergence",
]


# ------------------------------------------------------------------------ linear probe

class ProbeResult(NamedTuple):
    """accuracy: on the test set; head: standardisation + Linear, maps raw features (N, D) to
    logits (N, K); train_accuracy; loss: the final training objective."""

    accuracy: float
    head: nn.Sequential
    train_accuracy: float
    loss: float


class Standardize(nn.Module):
    """x -> (x - mean) / std with the training features' statistics, as fixed buffers."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.float() - self.mean) / self.std


def _check_features(name: str, x, labels_name: str | None = None, y=None) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[0] < 1:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a 2-D tensor of features (N, D), got {shape}.")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} has NaN or infinite values: check the model that made them.")
    if y is not None:
        if not isinstance(y, torch.Tensor) or y.dim() != 1 or y.shape[0] != x.shape[0] \
                or y.is_floating_point():
            raise ValueError(f"{labels_name} must be an integer tensor (N,) with one label per "
                             f"row of {name} ({x.shape[0]}), got "
                             f"{tuple(getattr(y, 'shape', ()))} {getattr(y, 'dtype', '')}.")
        if y.min() < 0:
            raise ValueError(f"{labels_name} must be class indices >= 0, got {y.min().item()}.")


def accuracy(predictions: torch.Tensor, labels: torch.Tensor) -> float:
    """The fraction of ``predictions`` (N,) equal to ``labels`` (N,)."""
    if predictions.shape != labels.shape:
        raise ValueError(f"predictions {tuple(predictions.shape)} and labels "
                         f"{tuple(labels.shape)} must have the same shape.")
    return (predictions == labels.to(predictions.device)).float().mean().item()


def linear_probe(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor,
                 test_y: torch.Tensor, n_classes: int | None = None, *,
                 weight_decay: float = 5e-3, max_iter: int = 500) -> ProbeResult:
    """Fit a linear classifier on ``train_x`` and return its accuracy on ``test_x``.

    train_x: (N, D), train_y: (N,) int; test_x: (M, D), test_y: (M,). Features are
    standardised with the training mean and standard deviation (constant features are left
    centred). The head minimises, over the whole training set at once (no minibatches, so no
    learning-rate schedule to tune),

        mean_i cross_entropy(W x_i + b, y_i) + weight_decay / 2 * ||W||_F^2

    with L-BFGS (strong Wolfe line search) for at most ``max_iter`` iterations, from W = 0.
    The objective is strictly convex, so the result does not depend on a seed; the budget
    reaches its optimum to about 1e-5 in gradient on the course's feature sizes (the tests
    check it). Runs on ``train_x``'s device, in float32 (also inside an autocast region).
    """
    _check_features("train_x", train_x, "train_y", train_y)
    _check_features("test_x", test_x, "test_y", test_y)
    if train_x.shape[1] != test_x.shape[1]:
        raise ValueError(f"train_x has {train_x.shape[1]} features but test_x has "
                         f"{test_x.shape[1]}: embed both with the same model and space.")
    if not weight_decay >= 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}.")
    positive_int("max_iter", max_iter)
    device = train_x.device
    n_classes = n_classes or int(max(train_y.max().item(), test_y.max().item())) + 1
    x = train_x.float()
    mean = x.mean(dim=0)
    std = x.std(dim=0) if x.shape[0] > 1 else torch.ones_like(mean)
    std = torch.where(std > 1e-8 * std.max().clamp_min(1e-30), std, torch.ones_like(std))
    scale = Standardize(mean, std)
    x = scale(x)
    y = train_y.to(device)
    linear = nn.Linear(x.shape[1], n_classes).to(device)
    nn.init.zeros_(linear.weight)
    nn.init.zeros_(linear.bias)
    optimizer = torch.optim.LBFGS(linear.parameters(), lr=1, max_iter=max_iter,
                                  history_size=20, tolerance_grad=1e-6, tolerance_change=1e-10,
                                  line_search_fn="strong_wolfe")

    def objective() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(linear(x), y) + weight_decay / 2 * linear.weight.square().sum()
        loss.backward()
        return loss

    # float32 even inside a caller's autocast region: L-BFGS needs accurate gradients.
    with torch.enable_grad(), torch.autocast(device.type, enabled=False):
        optimizer.step(objective)
        loss = objective().item()
    head = nn.Sequential(scale, linear).eval()
    with torch.no_grad(), torch.autocast(device.type, enabled=False):
        train_acc = accuracy(head(train_x).argmax(dim=1), y)
        test_acc = accuracy(head(test_x.to(device)).argmax(dim=1), test_y.to(device))
    for parameter in head.parameters():
        parameter.requires_grad_(False)
    return ProbeResult(test_acc, head, train_acc, loss)


# --------------------------------------------------------------------------------- kNN

def knn_classify(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, *,
                 k: int = 20, temperature: float = 0.07, n_classes: int | None = None,
                 chunk_size: int | None = None) -> torch.Tensor:
    """Weighted cosine k-nearest-neighbour vote (InstDisc, Wu et al. 2018; solo-learn).

    train_x: (N, D), train_y: (N,) int, test_x: (M, D). For each test row, the k training
    rows of largest cosine similarity s_j vote for their labels with weight exp(s_j / T);
    the class with the largest total weight wins. Returns predictions (M,) int64 on
    ``test_x``'s device.

    Test rows go ``chunk_size`` at a time (default: about 2**24 similarities per chunk,
    64 MB), so 50,000 x 10,000 needs a few hundred MB, never the 2 GB full matrix; the
    result is the same as unchunked. Computed in float32 on ``train_x``'s device.
    """
    _check_features("train_x", train_x, "train_y", train_y)
    _check_features("test_x", test_x)
    if train_x.shape[1] != test_x.shape[1]:
        raise ValueError(f"train_x has {train_x.shape[1]} features but test_x has "
                         f"{test_x.shape[1]}: embed both with the same model and space.")
    positive_int("k", k)
    if k > train_x.shape[0]:
        raise ValueError(f"k={k} is more than the {train_x.shape[0]} training samples: choose "
                         f"k <= {train_x.shape[0]}.")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature!r}.")
    device = train_x.device
    n_classes = n_classes or int(train_y.max().item()) + 1
    if chunk_size is None:
        chunk_size = max(1, 2**24 // train_x.shape[0])
    positive_int("chunk_size", chunk_size)
    bank = F.normalize(train_x.float(), dim=1)  # (N, D)
    labels = train_y.to(device)
    predictions = []
    for start in range(0, test_x.shape[0], chunk_size):
        query = F.normalize(test_x[start:start + chunk_size].to(device).float(), dim=1)
        with torch.autocast(device.type, enabled=False):  # float32 similarities
            similarity, index = (query @ bank.T).topk(k, dim=1)  # (m, k) each
        # exp(s / T), shifted by the row's largest s so that a small T cannot overflow;
        # a common factor per row leaves the vote unchanged.
        weight = ((similarity - similarity[:, :1]) / temperature).exp()
        votes = torch.zeros(query.shape[0], n_classes, device=device)
        votes.scatter_add_(1, labels[index], weight)
        predictions.append(votes.argmax(dim=1))
    return torch.cat(predictions).to(test_x.device)


# -------------------------------------------------------------- multi-scale convergence

def multiscale_convergence(model: nn.Module, images: torch.Tensor, patch_size: int,
                           counts: Sequence[int], *, space: str = "embedding",
                           generator: torch.Generator | None = None,
                           batch_size: int | None = None,
                           out_size: int | None = None) -> torch.Tensor:
    """For each n in ``counts``, the mean over images of cos(mean of n patch embeddings, f(x)).

    images: (B, C, H, W) in [0, 1]; f(x) is the embedding of the whole image. Patches are
    random, of side ``patch_size`` (resized to ``out_size`` if given), nested: the n-patch
    bag is the first n of one draw of ``max(counts)``. Returns (len(counts),) float32 in
    the order of ``counts``, on ``images``' device.
    """
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise ValueError("images must be a tensor (B, C, H, W) in [0, 1].")
    ordered = bags.patch_counts(list(counts) if isinstance(counts, Sequence) else counts)
    bag = bags.bag_embeddings(model, images, patch_size, ordered, space=space,
                              batch_size=batch_size, generator=generator, out_size=out_size)
    # as many whole images per pass as the bags had images per pass
    per_pass = max(1, (batch_size or bags.default_batch_size(model)) // ordered[-1])
    whole = bags.image_embeddings(model, images, space=space, images_per_pass=per_pass)
    cosine = {n: F.cosine_similarity(bag[n], whole, dim=1).mean() for n in ordered}
    return torch.stack([cosine[n] for n in counts])


# ------------------------------------------------------------------------ a checkpoint

def _splits(dataset: str, root: str | None, image_size: int) -> dict:
    """The train and test splits of ``dataset``: small datasets as they are, image folders
    resized and centre-cropped to the checkpoint's ``image_size``."""
    from cooc_minimal.data import SMALL, get_dataset

    transform = None
    if dataset not in SMALL:
        from torchvision import transforms as T

        transform = T.Compose([T.Resize(image_size), T.CenterCrop(image_size), T.ToTensor()])
    return {split: get_dataset(dataset, root, train=split == "train", transform=transform)
            for split in ("train", "test")}


def _read_out(features: dict, counts: list[int], *, k: int, temperature: float) -> dict:
    """{n: (probe accuracy, kNN accuracy)} of the train/test bags ``features[split]``."""
    (train_bags, train_y), (test_bags, test_y) = features["train"], features["test"]
    n_classes = int(max(train_y.max().item(), test_y.max().item())) + 1
    scores = {}
    for n in counts:
        probe = linear_probe(train_bags[n], train_y, test_bags[n], test_y, n_classes)
        knn = knn_classify(train_bags[n], train_y, test_bags[n], k=min(k, len(train_y)),
                           temperature=temperature, n_classes=n_classes)
        scores[n] = probe.accuracy, accuracy(knn, test_y)
    return scores


def evaluate_checkpoint(checkpoint, *, dataset: str | None = None, data_root: str | None = None,
                        patches: Sequence[int] = (1, 4, 16, 64), patch_size: int | None = None,
                        out_size: int | None = None, spaces: Sequence[str] = ("embedding",),
                        grid: bool = False, k: int = 20, temperature: float = 0.07,
                        limit: int | None = None, seed: int = 0, device: str = "auto",
                        precision: str = "auto", batch_size: int | None = None,
                        num_workers: int = 0, progress: bool = True) -> list[dict]:
    """Probe and kNN accuracy of a checkpoint's bag embeddings, one row per (space, n).

    Defaults come from the checkpoint's config: its dataset, data_root, patch_size and
    patch_out (the resolution it was trained at). The bags of the train split are drawn
    with seed ``seed``, those of the test split with ``seed + 1``. Returns rows ``{"space",
    "n_patches", "patch_size", "probe_acc", "knn_acc"}``. Bad input raises one sentence
    (FileNotFoundError or ValueError) before the images are embedded.
    """
    from cooc_minimal.checkpoint import load_model

    for space in spaces:
        bags.check_space(space)
    where = pick_device(device)
    autocast(where, precision)  # refuses an unknown precision now, before any work
    model, cfg = load_model(checkpoint, where)  # one sentence for a missing or foreign file
    patch_size = patch_size or cfg.patch_size
    out_size = out_size or cfg.patch_out or None
    splits = _splits(dataset or cfg.dataset, data_root or cfg.data_root or None, cfg.image_size)
    counts = sorted(set(patches))
    rows = []
    for space in spaces:
        features = {}
        for offset, (split, data) in enumerate(splits.items()):
            with autocast(where, precision):  # the network only: probe and kNN in float32
                features[split] = bags.embed_dataset(
                    model, data, patch_size, counts, space=space, grid=grid,
                    batch_size=batch_size, generator=torch.Generator().manual_seed(seed + offset),
                    out_size=out_size, progress=progress, num_workers=num_workers, limit=limit)
        scores = _read_out(features, counts, k=k, temperature=temperature)
        rows += [{"space": space, "n_patches": n, "patch_size": patch_size,
                  "probe_acc": probe, "knn_acc": knn} for n, (probe, knn) in scores.items()]
    return rows


# ------------------------------------------------------------------------ command line

if __name__ == "__main__":
    from cooc_minimal.cli import eval_main

    raise SystemExit(eval_main())
