"""Evaluate a joint-embedding model the BagSSL way: an image is the mean of its patch embeddings.

``images -> patches -> backbone (h) [-> projector (z)] -> mean over patches -> probe / kNN``

The bags themselves come from ``bags.py`` (:func:`cooc_minimal.bags.bag_embeddings`,
:func:`cooc_minimal.bags.embed_dataset`); this module reads them out:

- :func:`linear_probe`: a linear classifier on standardised features, full-batch L-BFGS.
- :func:`knn_classify`: the weighted cosine k-nearest-neighbour vote of InstDisc (Wu et al.
  2018), weights exp(cos / T), with solo-learn's defaults k = 20, T = 0.07 (InstDisc's own
  code uses k = 200; lightly's benchmarks k = 200, T = 0.1).
- :func:`multiscale_convergence`: how close the mean of n patch embeddings comes to the
  embedding of the whole image, as n grows, by a centred cosine, against the same score
  with another image's embedding (:func:`centred_cosine`, :func:`derangement`).
- :func:`evaluate_checkpoint`: probe and kNN accuracy of a checkpoint's bags, one row per
  (space, n), and optionally their convergence; the command line ``python -m
  cooc_minimal.evaluate`` (``cooc-eval``) prints them.

Models are read through ``checkpoint.py``; this module never imports the training loop,
and draws nothing (figures are ``viz.py``'s).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from cooc_minimal import bags
from cooc_minimal.runtime import (
    autocast,
    check_memory,
    model_device,
    pick_device,
    positive_int,
)

__all__ = [
    "Convergence",
    "ProbeResult",
    "Standardize",
    "accuracy",
    "centred_cosine",
    "derangement",
    "evaluate_checkpoint",
    "knn_classify",
    "initial_model",
    "linear_probe",
    "multiscale_convergence",
    "tile_bag_accuracy",
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

    with L-BFGS (strong Wolfe line search) for at most ``max_iter`` iterations, from W = 0,
    b = 0. The objective is convex but not strictly: b is not penalised, and adding one
    constant to every logit (to all K entries of b) leaves the cross-entropy unchanged. The
    result is still a function of the features alone (on one machine and torch version): no
    seed (zero start, no minibatches, no dropout), the same full-batch steps every time; and
    since the gradient in b sums to zero over the classes, b stays in the plane sum(b) = 0
    where it starts, and there the objective is strictly convex for weight_decay > 0. The budget
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
    """Weighted cosine k-nearest-neighbour vote (InstDisc, Wu et al. 2018).

    train_x: (N, D), train_y: (N,) int, test_x: (M, D). For each test row, the k training
    rows of largest cosine similarity s_j vote for their labels with weight exp(s_j / T);
    the class with the largest total weight wins. Returns predictions (M,) int64 on
    ``test_x``'s device. The defaults k = 20, T = 0.07 are solo-learn's; InstDisc's code
    votes with k = 200 (T = 0.07 on ImageNet), lightly's benchmarks with k = 200, T = 0.1.

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

class Convergence(NamedTuple):
    """What :func:`multiscale_convergence` measured, one value per n of ``counts`` (their
    order): ``same`` (len(counts),) the mean centred cosine of each image's bag with its own
    embedding, ``different`` (len(counts),) with another image's; float32."""

    counts: list[int]
    same: torch.Tensor
    different: torch.Tensor

    @property
    def gap(self) -> torch.Tensor:
        """same - different: what a bag shares with its own image and not with any image."""
        return self.same - self.different

    def rows(self) -> list[dict]:
        """One dict per n: ``{"n_patches", "same", "different", "gap"}``, numbers as floats."""
        return [{"n_patches": n, "same": s, "different": d, "gap": s - d} for n, s, d in
                zip(self.counts, self.same.tolist(), self.different.tolist(), strict=True)]


def derangement(n: int, seed: int = 0) -> torch.Tensor:
    """A permutation ``pi`` of range(n) that moves every index (pi[i] != i): (n,) int64.

    The n indices in a random order (drawn with ``seed``), each sent to the next one and the
    last to the first: one cycle through all n. Random, so that a dataset stored in class
    order (an image folder) does not pair each image with one of its own class.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"a derangement needs at least 2 images, got {n!r}.")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    pairing = torch.empty_like(order)
    pairing[order] = order.roll(-1)
    return pairing


def centred_cosine(a: torch.Tensor, b: torch.Tensor, *, centre: bool = True) -> torch.Tensor:
    """Row by row cosine of two sets of vectors, each centred on its own mean first.

    a: (N, D), b: (N, D) -> (N,) float32, ``cos(a_i - mean_j a_j, b_i - mean_j b_j)``
    (``centre=False``: the plain ``cos(a_i, b_i)``). A zero row gives 0. The plain cosine of
    non-negative vectors (features after a ReLU) is large for any pair, unrelated ones
    included; centring removes what every image has in common.
    """
    if a.dim() != 2 or a.shape != b.shape:
        raise ValueError(f"a and b must be (N, D) of the same shape, got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}.")
    a, b = a.float(), b.float()
    if centre:
        a, b = a - a.mean(dim=0), b - b.mean(dim=0)
    return F.cosine_similarity(a, b, dim=1)


def multiscale_convergence(model: nn.Module, images: torch.Tensor, patch_size: int,
                           counts: int | Sequence[int], *, space: str = "embedding",
                           generator: torch.Generator | None = None,
                           batch_size: int | None = None, out_size: int | None = None,
                           grid: bool = False, centre: bool = True,
                           pairing: torch.Tensor | None = None) -> Convergence:
    """How close the mean of n patch embeddings comes to the embedding of the whole image.

    images: (B, C, H, W) in [0, 1] (or uint8), B >= 2, a sample of the dataset: its means
    centre both sides. With bag_n (B, D) the mean embedding of n patches of side
    ``patch_size`` of each image (``bags.bag_embeddings``) and f (B, D) the embedding of
    each whole image (``bags.image_embeddings``), for each n of ``counts``:

        same(n)      = mean_i cos(bag_n[i] - mean_j bag_n[j], f[i]     - mean_j f[j])
        different(n) = mean_i cos(bag_n[i] - mean_j bag_n[j], f[pi[i]] - mean_j f[j])

    with pi = ``pairing`` (B,), default :func:`derangement` (B): each bag against another
    image. ``different`` is what a bag has in common with any image of the sample; the gap
    ``same - different`` is what it knows of its own image. ``centre=False`` gives the
    plain cosines instead. Patches are random (``grid=True``: distinct grid positions), of
    side ``patch_size``, resized to ``out_size`` if given, nested: the n-patch bag is the
    first n of one draw of ``max(counts)``, drawn with ``generator``. Returns a
    :class:`Convergence`, on ``images``' device.
    """
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[0] < 2:
        raise ValueError("images must be a tensor (B, C, H, W) of at least 2 images in [0, 1]: "
                         "the centring and the different-image pairs need a sample.")
    asked = [counts] if isinstance(counts, int) else list(counts)
    ordered = bags.patch_counts(asked)
    pairing = derangement(images.shape[0]) if pairing is None else pairing.long()
    if pairing.shape != (images.shape[0],):
        raise ValueError(f"pairing must be (B,) = ({images.shape[0]},) image indices, got "
                         f"{tuple(pairing.shape)}.")
    bag = bags.bag_embeddings(model, images, patch_size, ordered, space=space, grid=grid,
                              batch_size=batch_size, generator=generator, out_size=out_size)
    # as many whole images per pass as the bags had images per pass
    per_pass = max(1, (batch_size or bags.default_batch_size(model)) // ordered[-1])
    whole = bags.image_embeddings(model, images, space=space, images_per_pass=per_pass)
    other = whole[pairing.to(whole.device)]
    same = torch.stack([centred_cosine(bag[n], whole, centre=centre).mean() for n in asked])
    different = torch.stack([centred_cosine(bag[n], other, centre=centre).mean() for n in asked])
    return Convergence(asked, same, different)


# ------------------------------------------------------------------------ a checkpoint

#: test images :func:`evaluate_checkpoint` measures the convergence on, when not ``limit``
CONVERGENCE_IMAGES = 1000


@dataclass(frozen=True)
class _Options:
    """The resolved options of one :func:`evaluate_checkpoint` call."""

    patch_size: int
    out_size: int | None
    grid: bool
    k: int
    temperature: float
    limit: int | None
    seed: int
    device: torch.device
    precision: str
    batch_size: int | None
    num_workers: int
    progress: bool


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


def _check_scales(image: torch.Tensor, patch_size: int, counts: list[int], grid: bool) -> None:
    """Refuse random patches as large as the image (C, H, W) in bags of more than one: every
    patch would be the same crop, and a bag of n the bag of one."""
    side = min(image.shape[-2:])
    if not grid and patch_size >= side and max(counts, default=1) > 1:
        raise ValueError(f"patch_size={patch_size} covers the whole {image.shape[-2]}x"
                         f"{image.shape[-1]} image, so all n patches of a bag are the same crop: "
                         f"pass a smaller --patch-size (e.g. {max(1, side * 5 // 16)}).")


def _check_options(*, patch_size, out_size, k, temperature, limit, seed, batch_size,
                   num_workers) -> None:
    """Refuse, in one sentence each, options that could only fail after the embedding: 0 is
    refused, not replaced by the checkpoint's value."""
    for name, value in (("patch_size (--patch-size)", patch_size),
                        ("out_size (--out-size)", out_size), ("limit (--limit)", limit),
                        ("batch_size (--batch-size)", batch_size)):
        if value is not None:
            positive_int(name, value)
    positive_int("k (--k)", k)
    if isinstance(temperature, bool) or not isinstance(temperature, int | float) \
            or not 0 < temperature < float("inf"):
        raise ValueError(f"temperature (--temperature) must be a positive number, got "
                         f"{temperature!r}.")
    for name, value in (("seed (--seed)", seed), ("num_workers (--num-workers)", num_workers)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be an integer >= 0, got {value!r}.")


def _check_classes(train, dataset: str, limit: int | None) -> None:
    """Refuse a training split whose (first ``limit``) images are all of one class: its
    probe and kNN would score 1.0 whatever the network."""
    labels = getattr(train, "targets", None)
    labels = getattr(train, "labels", None) if labels is None else labels
    if labels is None:
        return
    present = torch.as_tensor(labels)[:limit].unique()
    if len(present) < 2:
        classes = getattr(train, "classes", None)
        name = classes[int(present[0])] if classes and len(present) else "one"
        cut = limit is not None and limit < len(labels)
        where = f"the first {limit} training images" if cut else "the training split"
        raise ValueError(f"In {dataset}, {where} hold one class only ({name}), so the probe and "
                         f"the kNN would score 1.0 whatever the network: evaluate on images "
                         f"of at least two classes (one folder per class"
                         f"{', or a larger --limit' if cut else ''}).")


def _check_k(k: int, train, limit: int | None) -> None:
    """Refuse a kNN of more neighbours than there are training bags, before any embedding:
    a k quietly lowered to the bank's size would be another protocol than the one asked for."""
    bank = min(len(train), limit or len(train))
    if k > bank:
        cut = limit is not None and limit < len(train)
        fix = (f"a larger --limit (now {limit}, of {len(train)} training images)" if cut else
               "a larger training split")
        raise ValueError(f"k={k} (--k) is more than the {bank} training bags the kNN votes "
                         f"among: pass --k {bank} or less, or use {fix}.")


def _check_memory(model: nn.Module, splits: dict, counts: list[int], conv_counts: list[int],
                  *, spaces, o: _Options) -> None:
    """Refuse an evaluation whose tensors alone would not fit in the free memory of its
    device: the patches of one forward pass (at least one image's n_max patches, before and
    after resizing, and their features) and the bags kept for every image and n. A lower
    bound (the network's activations come on top), so what it refuses cannot run."""
    width = max(model.embedding_dim if s == "embedding" else model.projection_dim
                for s in spaces)
    size_in, size_out = o.patch_size, o.out_size or o.patch_size
    n_max = max(counts + conv_counts)
    batch = o.batch_size or bags.default_batch_size(model)
    one_pass = max(1, batch // n_max) * n_max * 4 * (3 * size_in**2 + 3 * size_out**2 + width)
    images = sum(min(len(d), o.limit or len(d)) for d in splits.values()) if counts else 0
    conv = min(len(splits["test"]), o.limit or CONVERGENCE_IMAGES) if conv_counts else 0
    side = splits["test"][0][0].shape[-1]
    kept = 4 * width * (images * len(counts) + conv * (len(conv_counts) + 1)) \
        + conv * 4 * 3 * side * side
    check_memory(one_pass + kept, o.device,
                 f"Bags of up to {n_max} patches of {size_in} px ({size_out} px into the "
                 f"network, {width} features), for {images + conv} images",
                 "ask for fewer patches per bag (--patches, --convergence), fewer images "
                 "(--limit) or a smaller --batch-size")


def initial_model(cfg, device: torch.device | str = "cpu") -> nn.Module:
    """The run's network as training started it: its architecture, seeded with ``cfg.seed``
    as training seeds it, in eval mode (BatchNorm at its initial statistics). The control
    that tells what training changed; the global random state is left as it was."""
    from cooc_minimal.models import build_model

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = build_model(cfg.arch, cfg.projector, cifar_stem=cfg.cifar_stem, width=cfg.width)
    return model.to(device).eval()


def _first_images(dataset, count: int, num_workers: int) -> torch.Tensor:
    """The first ``count`` images of a dataset of (image, label) pairs: (N, C, H, W)."""
    from torch.utils.data import DataLoader, Subset

    subset = Subset(dataset, range(min(count, len(dataset))))
    return torch.cat([x for x, _ in DataLoader(subset, batch_size=256, num_workers=num_workers)])


def _read_out(features: dict, counts: list[int], *, k: int, temperature: float,
              device: torch.device) -> dict:
    """{n: (probe accuracy, kNN accuracy)} of the train/test bags ``features[split]``, held
    on the CPU; one count's two matrices at a time go to ``device`` for the read-out."""
    (train_bags, train_y), (test_bags, test_y) = features["train"], features["test"]
    n_classes = int(max(train_y.max().item(), test_y.max().item())) + 1
    train_y, test_y = train_y.to(device), test_y.to(device)
    scores = {}
    for n in counts:
        x_train, x_test = train_bags[n].to(device).float(), test_bags[n].to(device).float()
        probe = linear_probe(x_train, train_y, x_test, test_y, n_classes)
        knn = knn_classify(x_train, train_y, x_test, k=k,  # no clamp: _check_k refused a k > bank
                           temperature=temperature, n_classes=n_classes)
        scores[n] = probe.accuracy, accuracy(knn, test_y)
        del x_train, x_test  # free the device before the next count
    return scores


def _accuracy_rows(model: nn.Module, splits: dict, counts: list[int], space: str,
                   o: _Options) -> list[dict]:
    """Probe and kNN rows of one space: train bags drawn with seed, test bags with seed + 1."""
    features = {}
    for offset, (split, data) in enumerate(splits.items()):
        with autocast(o.device, o.precision):  # the network only: probe and kNN in float32
            features[split] = bags.embed_dataset(
                model, data, o.patch_size, counts, space=space, grid=o.grid,
                batch_size=o.batch_size, generator=torch.Generator().manual_seed(o.seed + offset),
                out_size=o.out_size, progress=o.progress, num_workers=o.num_workers,
                limit=o.limit)
    scores = _read_out(features, counts, k=o.k, temperature=o.temperature,
                       device=model_device(model))
    return [{"metric": "accuracy", "space": space, "n_patches": n, "patch_size": o.patch_size,
             "probe_acc": probe, "knn_acc": knn} for n, (probe, knn) in scores.items()]


def _convergence_rows(model: nn.Module, images: torch.Tensor, counts: list[int], space: str,
                      o: _Options) -> list[dict]:
    """:func:`multiscale_convergence` rows of one space, patches drawn with seed + 1."""
    with autocast(o.device, o.precision):
        result = multiscale_convergence(
            model, images, o.patch_size, counts, space=space, grid=o.grid,
            generator=torch.Generator().manual_seed(o.seed + 1), batch_size=o.batch_size,
            out_size=o.out_size)
    return [{"metric": "convergence", "space": space, "n_patches": row["n_patches"],
             "patch_size": o.patch_size, "images": images.shape[0], "same": row["same"],
             "different": row["different"], "gap": row["gap"]} for row in result.rows()]


def evaluate_checkpoint(checkpoint, *, dataset: str | None = None, data_root: str | None = None,
                        patches: Sequence[int] = (1, 4, 16, 64), patch_size: int | None = None,
                        out_size: int | None = None, spaces: Sequence[str] = ("embedding",),
                        grid: bool = False, k: int = 20, temperature: float = 0.07,
                        limit: int | None = None, seed: int = 0, device: str = "auto",
                        precision: str = "auto", batch_size: int | None = None,
                        num_workers: int = 0, progress: bool = True,
                        convergence: Sequence[int] = (), untrained: bool = False) -> list[dict]:
    """Probe and kNN accuracy of a checkpoint's bag embeddings, and their convergence.

    Defaults come from the checkpoint's config: its dataset, data_root, and its
    eval_patch_size and eval_out_size, or where those are 0 its patch_size and patch_out (the
    resolution it was trained at). Returns, for each space, one row
    ``{"metric": "accuracy", "space", "n_patches", "patch_size", "probe_acc", "knn_acc"}``
    per n of ``patches`` (the bags of the train split drawn with seed ``seed``, those of the
    test split with ``seed + 1``), then one row ``{"metric": "convergence", "space",
    "n_patches", "patch_size", "images", "same", "different", "gap"}`` per n of
    ``convergence``: :func:`multiscale_convergence` on the first ``limit`` test images
    (default :data:`CONVERGENCE_IMAGES`), patches drawn with ``seed + 1``. Either list may
    be empty, not both. ``untrained``: evaluate the checkpoint's architecture at its
    initialisation (the run's seed) instead of its weights, the control. Bad input raises
    one sentence (FileNotFoundError or ValueError) before the images are embedded, such as
    random patches that cover the whole image, a 0 for a size (refused, not replaced by the
    checkpoint's), a training split of one class (its probe and kNN would score 1.0), a k
    larger than the number of training bags, or bags whose tensors alone need more memory
    than the device has free.
    """
    from cooc_minimal.checkpoint import load_model

    counts = bags.patch_counts(list(patches)) if len(patches) else []
    conv_counts = bags.patch_counts(list(convergence)) if len(convergence) else []
    if not counts and not conv_counts:
        raise ValueError("nothing to evaluate: ask for bag sizes (--patches) or for the "
                         "convergence (--convergence).")
    for space in spaces:
        bags.check_space(space)
    _check_options(patch_size=patch_size, out_size=out_size, k=k, temperature=temperature,
                   limit=limit, seed=seed, batch_size=batch_size, num_workers=num_workers)
    where = pick_device(device)
    autocast(where, precision)  # refuses an unknown precision now, before any work
    model, cfg = load_model(checkpoint, where)  # one sentence for a missing or foreign file
    model = initial_model(cfg, where) if untrained else model
    o = _Options(patch_size=patch_size or cfg.eval_patch_size or cfg.patch_size,
                 out_size=out_size or cfg.eval_out_size or cfg.patch_out or None,
                 grid=grid, k=k, temperature=temperature, limit=limit, seed=seed, device=where,
                 precision=precision, batch_size=batch_size, num_workers=num_workers,
                 progress=progress)
    splits = _splits(dataset or cfg.dataset, data_root or cfg.data_root or None, cfg.image_size)
    if counts:  # the probe and the kNN need two classes; the convergence does not
        _check_classes(splits["train"], dataset or cfg.dataset, limit)
        _check_k(k, splits["train"], limit)
    _check_scales(splits["test"][0][0], o.patch_size, counts + conv_counts, grid)
    _check_memory(model, splits, counts, conv_counts, spaces=spaces, o=o)
    images = _first_images(splits["test"], limit or CONVERGENCE_IMAGES, num_workers) \
        if conv_counts else None
    rows = []
    for space in spaces:
        rows += _accuracy_rows(model, splits, counts, space, o) if counts else []
    for space in spaces:
        rows += _convergence_rows(model, images, conv_counts, space, o) if conv_counts else []
    return rows


def tile_bag_accuracy(checkpoint, *, n_tiles: int = 16, limit: int = 2000, seed: int = 0,
                      k: int = 20, temperature: float = 0.07, device: str = "auto",
                      progress: bool = False) -> dict[str, float | None]:
    """A toy-world checkpoint's bags of ``n_tiles`` distinct tiles: trained, untrained, Bayes.

    The bags are means of embeddings of tiles (grid patches of the run's ``patch_size``), on
    the first ``limit`` images of each split, read out by :func:`linear_probe` and
    :func:`knn_classify` (``k``, ``temperature``), as :func:`evaluate_checkpoint` does. The
    same for the untrained control (the run's architecture at its seeded initialisation).
    Returns ``{"probe_acc", "knn_acc", "untrained_probe_acc", "untrained_knn_acc",
    "bayes_acc"}``: the last is the world's Bayes accuracy with ``n_tiles`` tiles
    (``bayes_accuracy``), None for a dataset without a known world.
    """
    from cooc_minimal.checkpoint import load_model
    from cooc_minimal.data import get_dataset

    _, cfg = load_model(checkpoint)  # one sentence for a missing or foreign file
    options = dict(patches=(positive_int("n_tiles", n_tiles),), grid=True, limit=limit,
                   seed=seed, k=k, temperature=temperature, device=device, progress=progress)
    figures: dict[str, float | None] = {}
    for prefix, untrained in (("", False), ("untrained_", True)):
        row = evaluate_checkpoint(checkpoint, untrained=untrained, **options)[0]
        figures[prefix + "probe_acc"], figures[prefix + "knn_acc"] = row["probe_acc"], \
            row["knn_acc"]
    world = getattr(get_dataset(cfg.dataset, cfg.data_root or None, train=False), "world", None)
    figures["bayes_acc"] = world.bayes_accuracy(n_tiles) if world is not None else None
    return figures


# ------------------------------------------------------------------------ command line

if __name__ == "__main__":
    from cooc_minimal.cli import eval_main

    raise SystemExit(eval_main())
