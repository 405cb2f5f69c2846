"""Evaluate a joint-embedding model the BagSSL way: an image is the mean of its patch embeddings.

``images -> patches -> backbone (h) [-> projector (z)] -> mean over patches -> probe / kNN``

- :func:`bag_embeddings`: the mean of n patch embeddings per image, in the embedding space
  (backbone output h) or the projection space (z), for a tensor of images or a whole dataset;
  every patch of a chunk of images goes through the network in one batch.
- :func:`linear_probe`: a linear classifier on standardised features, full-batch L-BFGS.
- :func:`knn_classify`: the weighted cosine k-nearest-neighbour vote of InstDisc (Wu et al.
  2018), as solo-learn evaluates: k = 20, weights exp(cos / 0.07).
- :func:`multiscale_convergence`: how close the mean of n patch embeddings comes to the
  embedding of the whole image, as n grows.
- :func:`part_embeddings`, :func:`weighted_gram` and :func:`gram_similarity`: on the toy
  world, the embedding of each part type, compared with the closed-form optimum of
  Proposition 3.1 (chapter 5).
- ``local_aggregation_features`` and ``global_pool_features`` (appendix C.4), defined in
  ``local_aggregation.py`` and re-exported here, so that every evaluation is in one module.
- The command line ``python -m cooc_minimal.evaluate`` (``cooc-eval``) runs the probe and
  the kNN on a checkpoint.

Models are read through ``checkpoint.py``; this module never imports the training loop.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from cooc_minimal.local_aggregation import global_pool_features, local_aggregation_features
from cooc_minimal.models import evaluation_mode
from cooc_minimal.patches import crop_boxes, grid_boxes, random_patches

SPACES = ("embedding", "projection")

__all__ = [
    "SPACES",
    "ProbeResult",
    "accuracy",
    "bag_embeddings",
    "default_batch_size",
    "embed_dataset",
    "global_pool_features",
    "gram_similarity",
    "weighted_gram",
    "knn_classify",
    "linear_probe",
    "local_aggregation_features",
    "multiscale_convergence",
    "part_embeddings",
]


# ------------------------------------------------------------------------------ checks

def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return value


def _check_space(space: str) -> None:
    if space not in SPACES:
        raise ValueError(f"space must be 'embedding' or 'projection', got {space!r}.")


def _check_model(model) -> None:
    if not (isinstance(model, nn.Module) and hasattr(model, "embed")):
        raise ValueError(f"model must be a JointEmbedding (from models.build_model or "
                         f"checkpoint.load_model), got {type(model).__name__}.")


def _model_device(model: nn.Module) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def _counts(n_patches) -> list[int]:
    if isinstance(n_patches, int) and not isinstance(n_patches, bool):
        return [_positive_int("n_patches", n_patches)]
    if isinstance(n_patches, Sequence) and len(n_patches) > 0:
        return sorted({_positive_int("each count in n_patches", n) for n in n_patches})
    raise ValueError(f"n_patches must be a positive integer or a non-empty list of them, got "
                     f"{n_patches!r}.")


def _check_patch_size(patch_size: int, height: int, width: int) -> None:
    _positive_int("patch_size", patch_size)
    if patch_size > min(height, width):
        raise ValueError(f"patch_size={patch_size} is larger than the images ({height}x{width}): "
                         f"choose a patch size of at most {min(height, width)}.")


# ----------------------------------------------------------------------- bag embeddings

def _patch_embeddings(model: nn.Module, images: torch.Tensor, patch_size: int, n: int | None,
                      space: str, grid: bool, stride: int | None, out_size: int | None,
                      generator: torch.Generator | None) -> torch.Tensor:
    """Embeddings of n patches per image: images (B, C, H, W) -> (B, n, D) float32.

    One forward pass over all B * n patches; the caller chooses B so that this fits.
    """
    batch = images.shape[0]
    if grid:
        boxes = grid_boxes(images.shape[-2], images.shape[-1], patch_size,
                           stride or patch_size, images.device)  # (L, 4)
        if n is None or n == boxes.shape[0]:
            chosen = boxes.expand(batch, -1, -1)
        else:  # n distinct grid positions per image, a random subset (prefixes are subsets too)
            draw_on = generator.device if generator is not None else torch.device("cpu")
            order = torch.rand(batch, boxes.shape[0], generator=generator, device=draw_on)
            chosen = boxes[order.argsort(dim=1)[:, :n].to(images.device)]  # (B, n, 4)
        patches = crop_boxes(images, chosen, patch_size)
        if out_size is not None and out_size != patch_size:
            flat = F.interpolate(patches.flatten(0, 1), size=(out_size, out_size),
                                 mode="bilinear", align_corners=False, antialias=True)
            patches = flat.view(batch, -1, *flat.shape[1:])
    else:
        patches, _ = random_patches(images, patch_size, n, out_size=out_size,
                                    generator=generator)
    count = patches.shape[1]
    embedded = model.embed(patches.flatten(0, 1), space)  # (B * n, D), bf16 under autocast
    return embedded.float().view(batch, count, -1)


def _bags(h: torch.Tensor, counts: list[int]) -> dict[int, torch.Tensor]:
    """Means of the first n patch embeddings for each n: h (B, n_max, D) -> {n: (B, D)}."""
    prefix = h.cumsum(dim=1)
    return {n: prefix[:, n - 1] / n for n in counts}


def _grid_length(height: int, width: int, patch_size: int, stride: int | None) -> int:
    stride = stride or patch_size
    return ((height - patch_size) // stride + 1) * ((width - patch_size) // stride + 1)


def default_batch_size(model: nn.Module) -> int:
    """Patches per forward pass when not told: 1024 on a CPU (larger batches fall out of the
    caches and run slower there), 8192 on a GPU."""
    return 8192 if _model_device(model).type == "cuda" else 1024


def _validate(model, patch_size, n_patches, space, grid, batch_size, stride, out_size,
              height: int, width: int) -> list[int] | None:
    _check_model(model)
    _check_space(space)
    _check_patch_size(patch_size, height, width)
    if batch_size is not None:
        _positive_int("batch_size", batch_size)
    if stride is not None:
        _positive_int("stride", stride)
    if out_size is not None:
        _positive_int("out_size", out_size)
    if grid and n_patches is None:
        return None
    counts = _counts(n_patches)
    if grid:
        length = _grid_length(height, width, patch_size, stride)
        if counts[-1] > length:
            raise ValueError(f"n_patches={counts[-1]} is more than the {length} grid patches of "
                             f"side {patch_size} in a {height}x{width} image: ask for at most "
                             f"{length}, or use random patches (grid=False).")
    return counts


def _as_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 pixels (0..255) -> float32 in [0, 1]; floating-point images are returned as is."""
    if images.dtype == torch.uint8:
        return images.float().div_(255)
    if not images.is_floating_point():
        raise ValueError(f"images must be floating point in [0, 1] or uint8, got {images.dtype}: "
                         f"convert them with images.float() / 255.")
    return images


def _bag_chunks(model, images: torch.Tensor, patch_size: int, counts: list[int] | None,
                space: str, grid: bool, batch_size: int, generator, stride, out_size,
                ) -> Iterator[tuple[int, dict[int | None, torch.Tensor]]]:
    """Yield (images done, {n: bags (b, D)}) chunk by chunk, on the model's device."""
    device = _model_device(model)
    height, width = images.shape[-2:]
    n_max = counts[-1] if counts else _grid_length(height, width, patch_size, stride)
    per_chunk = max(1, batch_size // n_max)
    for start in range(0, images.shape[0], per_chunk):
        chunk = _as_float(images[start:start + per_chunk].to(device, non_blocking=True))
        h = _patch_embeddings(model, chunk, patch_size, n_max if counts else None, space,
                              grid, stride, out_size, generator)
        yield chunk.shape[0], (_bags(h, counts) if counts else {None: h.mean(dim=1)})


def bag_embeddings(model: nn.Module, images: torch.Tensor | Dataset, patch_size: int,
                   n_patches: int | Sequence[int] | None, space: str = "embedding",
                   grid: bool = False, batch_size: int | None = None,
                   generator: torch.Generator | None = None, *, stride: int | None = None,
                   out_size: int | None = None, progress: bool | None = None,
                   ) -> torch.Tensor | dict[int, torch.Tensor]:
    """The bag embedding of each image: the mean of the embeddings of ``n_patches`` patches.

    images: (B, C, H, W) floats in [0, 1] or uint8 pixels (converted a chunk at a time, on
    the model's device), on any device, or a map-style dataset of
    ``(image, label)`` pairs (then see :func:`embed_dataset`, which also returns the labels).
    Returns (B, D) float32: ``mean_k f(x_k)`` with ``f`` the backbone
    (``space="embedding"``, h) or backbone and projector (``space="projection"``, z).

    - Patches are square, of side ``patch_size``: random positions (``random_patches``,
      drawn with ``generator``), or with ``grid=True`` distinct positions of the grid of
      step ``stride`` (default ``patch_size``): all of them when ``n_patches`` is None, else
      a random subset of n per image. ``out_size`` resizes each patch (bilinear,
      antialiased) before the network, as EMP-SSL feeds 16x16 crops at 32x32.
    - ``n_patches`` a list such as ``[1, 4, 16]``: one draw of ``max(n)`` patches per image
      and a dict ``{n: (B, D)}`` of the means of the first n, so the bags are nested.
    - ``batch_size`` is in *patches*: each forward pass takes ``batch_size // n`` images
      with all their n patches, with no Python loop over patches (default:
      :func:`default_batch_size`).
    - The model runs in eval mode (BatchNorm running statistics) without gradients; its
      modes are restored after. Under ``torch.autocast`` (bf16) the network runs in bf16 and
      the mean is taken in float32.
    - The result is on ``images``' device (the model's for a dataset); a tqdm bar shows the
      progress when ``progress`` is True (default: for a dataset only).
    """
    if isinstance(images, Dataset):
        return embed_dataset(model, images, patch_size, n_patches, space, grid, batch_size,
                             generator, stride=stride, out_size=out_size,
                             progress=True if progress is None else progress)[0]
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a tensor (B, C, H, W) or a Dataset, got {shape}: add a "
                         f"batch dimension with images.unsqueeze(0) for a single image.")
    counts = _validate(model, patch_size, n_patches, space, grid, batch_size, stride, out_size,
                       images.shape[-2], images.shape[-1])
    batch_size = batch_size or default_batch_size(model)
    parts: dict[int | None, list[torch.Tensor]] = {}
    from tqdm import tqdm

    with evaluation_mode(model), tqdm(total=images.shape[0], unit="img", disable=not progress,
                                 desc="bag embeddings") as bar:
        for done, bags in _bag_chunks(model, images, patch_size, counts, space, grid,
                                      batch_size, generator, stride, out_size):
            for n, bag in bags.items():
                parts.setdefault(n, []).append(bag.to(images.device))
            bar.update(done)
    result = {n: torch.cat(chunks) for n, chunks in parts.items()}
    if counts is None:
        return result[None]
    return result if not isinstance(n_patches, int) else result[counts[0]]


def embed_dataset(model: nn.Module, dataset: Dataset, patch_size: int,
                  n_patches: int | Sequence[int] | None, space: str = "embedding",
                  grid: bool = False, batch_size: int | None = None,
                  generator: torch.Generator | None = None, *, stride: int | None = None,
                  out_size: int | None = None, progress: bool | None = True,
                  num_workers: int = 0, limit: int | None = None,
                  ) -> tuple[torch.Tensor | dict[int, torch.Tensor], torch.Tensor]:
    """:func:`bag_embeddings` of every image of a dataset, and the labels.

    dataset: map-style, items ``(image (C, H, W) in [0, 1], label)``; ``limit`` keeps the
    first ``limit`` items. Returns the bags ((N, D) or ``{n: (N, D)}``) on the model's
    device and labels: (N,) int64 on the same device. One tqdm bar over the dataset.
    """
    if limit is not None:
        _positive_int("limit", limit)
        dataset = torch.utils.data.Subset(dataset, range(min(limit, len(dataset))))
    if len(dataset) == 0:
        raise ValueError("the dataset is empty: point it at a folder that holds images.")
    first = dataset[0][0]
    if not isinstance(first, torch.Tensor) or first.dim() != 3:
        raise ValueError(f"the dataset must give images as tensors (C, H, W), got "
                         f"{type(first).__name__}: give it transform=ToTensor().")
    counts = _validate(model, patch_size, n_patches, space, grid, batch_size, stride, out_size,
                       first.shape[-2], first.shape[-1])
    batch_size = batch_size or default_batch_size(model)
    n_max = counts[-1] if counts else _grid_length(*first.shape[-2:], patch_size, stride)
    loader = DataLoader(dataset, batch_size=max(1, batch_size // n_max), shuffle=False,
                        num_workers=num_workers,
                        pin_memory=_model_device(model).type == "cuda")
    device = _model_device(model)
    parts: dict[int | None, list[torch.Tensor]] = {}
    labels = []
    from tqdm import tqdm

    with evaluation_mode(model), tqdm(total=len(dataset), unit="img", disable=not progress,
                                 desc="bag embeddings") as bar:
        for images, targets in loader:
            for done, bags in _bag_chunks(model, images, patch_size, counts, space, grid,
                                          images.shape[0] * n_max, generator, stride, out_size):
                for n, bag in bags.items():
                    parts.setdefault(n, []).append(bag)
                bar.update(done)
            labels.append(torch.as_tensor(targets, dtype=torch.long).to(device))
    result = {n: torch.cat(chunks) for n, chunks in parts.items()}
    features = (result[None] if counts is None
                else result if not isinstance(n_patches, int) else result[counts[0]])
    return features, torch.cat(labels)


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
                 test_y: torch.Tensor, n_classes: int | None = None,
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
    _positive_int("max_iter", max_iter)
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

def knn_classify(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor,
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
    _positive_int("k", k)
    if k > train_x.shape[0]:
        raise ValueError(f"k={k} is more than the {train_x.shape[0]} training samples: choose "
                         f"k <= {train_x.shape[0]}.")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature!r}.")
    device = train_x.device
    n_classes = n_classes or int(train_y.max().item()) + 1
    if chunk_size is None:
        chunk_size = max(1, 2**24 // train_x.shape[0])
    _positive_int("chunk_size", chunk_size)
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
                           counts: Sequence[int], space: str = "embedding",
                           generator: torch.Generator | None = None, batch_size: int | None = None,
                           *, out_size: int | None = None) -> torch.Tensor:
    """For each n in ``counts``, the mean over images of cos(mean of n patch embeddings, f(x)).

    images: (B, C, H, W) in [0, 1]; f(x) is the embedding of the whole image. Patches are
    random, of side ``patch_size`` (resized to ``out_size`` if given), nested: the n-patch
    bag is the first n of one draw of ``max(counts)``. Returns (len(counts),) float32 in
    the order of ``counts``, on ``images``' device.
    """
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise ValueError("images must be a tensor (B, C, H, W) in [0, 1].")
    ordered = _counts(list(counts) if isinstance(counts, Sequence) else counts)
    bags = bag_embeddings(model, images, patch_size, ordered, space, batch_size=batch_size,
                          generator=generator, out_size=out_size)
    device = _model_device(model)
    batch_size = batch_size or default_batch_size(model)
    wholes = []
    with evaluation_mode(model):
        for start in range(0, images.shape[0], max(1, batch_size // ordered[-1])):
            chunk = _as_float(images[start:start + max(1, batch_size // ordered[-1])].to(device))
            wholes.append(model.embed(chunk, space).float().to(images.device))
    whole = torch.cat(wholes)
    cosine = {n: F.cosine_similarity(bags[n], whole, dim=1).mean() for n in ordered}
    return torch.stack([cosine[n] for n in counts])


# -------------------------------------------------- the toy world: part-type embeddings

def part_embeddings(model: nn.Module, images: torch.Tensor, parts: torch.Tensor, tile: int,
                    n_parts: int, space: str = "projection",
                    batch_size: int | None = None) -> torch.Tensor:
    """The mean embedding of the tiles of each part type, for a toy world.

    images: (B, C, S, S) toy images; parts: (B, T) the part of each tile, row-major (as
    ``ToySample.parts``), with T = (S / tile)^2. Each tile is embedded on its own; the
    tiles of part v are averaged. Returns (n_parts, D) float32 on ``images``' device; a part
    that never occurs gets a row of NaN.
    """
    _check_model(model)
    _check_space(space)
    height, width = images.shape[-2:]
    if parts.shape != (images.shape[0], (height // tile) * (width // tile)):
        raise ValueError(f"parts must be (B, T) = ({images.shape[0]}, "
                         f"{(height // tile) * (width // tile)}) for {height}x{width} images of "
                         f"{tile}-pixel tiles, got {tuple(parts.shape)}.")
    tiles = []
    batch_size = batch_size or default_batch_size(model)
    with evaluation_mode(model):
        device = _model_device(model)
        per_chunk = max(1, batch_size // parts.shape[1])
        for start in range(0, images.shape[0], per_chunk):
            chunk = _as_float(images[start:start + per_chunk].to(device))
            tiles.append(_patch_embeddings(model, chunk, tile, None, space, True, None, None,
                                           None).flatten(0, 1).to(images.device))
    flat = torch.cat(tiles)  # (B * T, D)
    ids = parts.flatten().to(images.device)
    sums = torch.zeros(n_parts, flat.shape[1], device=images.device).index_add_(0, ids, flat)
    counts = torch.bincount(ids, minlength=n_parts).float()[:, None]
    return sums / counts


def weighted_gram(Z: torch.Tensor, p: torch.Tensor, centre: bool = True) -> torch.Tensor:
    """The Gram matrix of V type embeddings in the metric of Proposition 3.1: (V, V) float64.

    Z: (V, d), p: (V,) type frequencies. Returns G = U U^T with U = diag(sqrt p) Z, the
    matrix that the objective ||w U U^T - M||_F^2 fits to M = D^-1/2 P D^-1/2 (chapter 1).
    ``centre`` first projects the columns of U off the unit vector along sqrt(p): the top
    eigenvector of M (eigenvalue 1), the direction of a constant embedding.
    """
    if Z.dim() != 2 or p.shape != (Z.shape[0],):
        raise ValueError(f"Z must be (V, d) and p (V,), got {tuple(Z.shape)} and "
                         f"{tuple(p.shape)}.")
    root = p.double().sqrt()
    U = root[:, None] * Z.double()
    if centre:
        unit = root / root.norm()
        U = U - unit[:, None] * (unit @ U)[None, :]
    return U @ U.T


def gram_similarity(Z: torch.Tensor, reference: torch.Tensor, p: torch.Tensor,
                    centre: bool = True) -> float:
    """How alike two embeddings of V types are, up to rotation and scale: in [-1, 1].

    Z: (V, d), reference: (V, d'), p: (V,) type frequencies. The cosine
    <G, G_ref>_F / (||G||_F ||G_ref||_F) of their :func:`weighted_gram` matrices, which
    ignores rotations of Z (Z Q has the same Gram matrix) and its scale. ``centre`` removes
    the direction of a constant embedding first: every embedding with a non-zero mean has
    it for free, so it would hide differences (chapter 5 measures how much). An embedding
    with nothing left after centring (a constant one) scores 0.
    """
    if Z.dim() != 2 or reference.dim() != 2 or Z.shape[0] != reference.shape[0] \
            or p.shape != (Z.shape[0],):
        raise ValueError(f"Z (V, d), reference (V, d') and p (V,) must agree on V, got "
                         f"{tuple(Z.shape)}, {tuple(reference.shape)}, {tuple(p.shape)}.")
    G, R = weighted_gram(Z, p, centre), weighted_gram(reference, p, centre)
    norms = G.norm() * R.norm()
    return ((G * R).sum() / norms).item() if norms > 0 else 0.0


# ------------------------------------------------------------------------ command line

def _parse_counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise ValueError(f"--patches must be positive integers separated by commas, such as "
                         f"1,4,16,64, got {text!r}.")
    return counts


def _eval_transform(dataset: str, side: int):
    """Small datasets as they are; image folders resized and centre-cropped to ``side``."""
    from cooc_minimal.data import SMALL

    if dataset in SMALL:
        return None
    from torchvision import transforms as T

    return T.Compose([T.Resize(side), T.CenterCrop(side), T.ToTensor()])


def _autocast(device: torch.device, precision: str):
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def evaluate_checkpoint(checkpoint, dataset: str | None = None, data_root: str | None = None,
                        patches: Sequence[int] = (1, 4, 16, 64), patch_size: int | None = None,
                        out_size: int | None = None, spaces: Sequence[str] = ("embedding",),
                        grid: bool = False, k: int = 20, temperature: float = 0.07,
                        limit: int | None = None, seed: int = 0, device: str = "auto",
                        precision: str = "auto", batch_size: int | None = None,
                        num_workers: int = 0, progress: bool = True) -> list[dict]:
    """Probe and kNN accuracy of a checkpoint's bag embeddings, one row per (space, n).

    Defaults come from the checkpoint's config: its dataset, data_root, patch_size and
    patch_out (the resolution it was trained at). Returns rows ``{"space", "n_patches",
    "patch_size", "probe_acc", "knn_acc"}``. Bad input raises one sentence
    (FileNotFoundError or ValueError) before the images are embedded.
    """
    from cooc_minimal.checkpoint import load_model
    from cooc_minimal.data import get_dataset

    for space in spaces:
        _check_space(space)
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got {device!r}.")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but no CUDA GPU is visible: use --device "
                         "cpu or auto.")
    where = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                         "cpu" if device == "auto" else device)
    model, cfg = load_model(checkpoint, where)  # one sentence for a missing or foreign file
    dataset = dataset or cfg.dataset
    root = data_root or cfg.data_root or None
    patch_size = patch_size or cfg.patch_size
    out_size = out_size or cfg.patch_out or None
    transform = _eval_transform(dataset, cfg.image_size)
    splits = {split: get_dataset(dataset, root, train=split == "train", transform=transform)
              for split in ("train", "test")}
    counts = sorted(set(patches))
    rows = []
    for space in spaces:
        features = {}
        for offset, (split, data) in enumerate(splits.items()):
            with _autocast(where, precision):  # the network only: probe and kNN in float32
                features[split] = embed_dataset(
                    model, data, patch_size, counts, space, grid, batch_size,
                    torch.Generator().manual_seed(seed + offset), out_size=out_size,
                    progress=progress, num_workers=num_workers, limit=limit)
        (train_bags, train_y), (test_bags, test_y) = features["train"], features["test"]
        n_classes = int(max(train_y.max().item(), test_y.max().item())) + 1
        for n in counts:
            probe = linear_probe(train_bags[n], train_y, test_bags[n], test_y, n_classes)
            knn = knn_classify(train_bags[n], train_y, test_bags[n], k=min(k, len(train_y)),
                               temperature=temperature, n_classes=n_classes)
            rows.append({"space": space, "n_patches": n, "patch_size": patch_size,
                         "probe_acc": probe.accuracy, "knn_acc": accuracy(knn, test_y)})
    return rows


def format_rows(rows: list[dict]) -> str:
    """The rows as an aligned text table."""
    header = ("space", "n_patches", "patch_size", "probe_acc", "knn_acc")
    cells = [header] + [(r["space"], str(r["n_patches"]), str(r["patch_size"]),
                         f"{r['probe_acc']:.4f}", f"{r['knn_acc']:.4f}") for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    return "\n".join("  ".join(c[i].ljust(widths[i]) for i in range(len(header)))
                     for c in cells)


def build_parser():
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m cooc_minimal.evaluate",
        description="Linear probe and weighted kNN (k=20, T=0.07) on bag embeddings: each "
                    "image is the mean embedding of n fixed-scale patches. Example: python -m "
                    "cooc_minimal.evaluate --checkpoint runs/c10/last.pt --dataset cifar10 "
                    "--data-root ~/data --patches 1,4,16,64 --json results.json")
    parser.add_argument("--checkpoint", required=True, metavar="PATH",
                        help="a last.pt written by cooc_minimal.train")
    parser.add_argument("--dataset", help="dataset to evaluate on (default: the checkpoint's)")
    parser.add_argument("--data-root", metavar="DIR",
                        help="folder holding the dataset (default: the checkpoint's data_root, "
                             "else $COOC_DATA or ~/data)")
    parser.add_argument("--patches", default="1,4,16,64", metavar="N,N,...",
                        help="numbers of patches averaged per image (default 1,4,16,64); one "
                             "draw of the largest, nested")
    parser.add_argument("--patch-size", type=int, metavar="S",
                        help="patch side in pixels (default: the checkpoint's patch_size)")
    parser.add_argument("--out-size", type=int, metavar="S",
                        help="resize patches to this side (default: the checkpoint's patch_out)")
    parser.add_argument("--space", default="embedding",
                        choices=("embedding", "projection", "both"),
                        help="embedding (backbone output, BagSSL's choice), projection, or both")
    parser.add_argument("--grid", action="store_true",
                        help="distinct patches of the grid of step --patch-size, not random ones")
    parser.add_argument("--k", type=int, default=20, help="neighbours of the kNN (20)")
    parser.add_argument("--temperature", type=float, default=0.07,
                        help="kNN weight exp(cos / T) (0.07)")
    parser.add_argument("--limit", type=int, metavar="N",
                        help="use only the first N images of each split (a quick check)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the patch positions (0)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"),
                        help="auto: bf16 autocast on CUDA, fp32 on CPU")
    parser.add_argument("--batch-size", type=int, metavar="P",
                        help="patches per forward pass (default 1024 on CPU, 8192 on GPU)")
    parser.add_argument("--num-workers", type=int, default=0,
                        help="DataLoader workers decoding images (0)")
    parser.add_argument("--json", metavar="PATH", help="also write the rows to this JSON file")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    """The ``cooc-eval`` command. Bad input: one sentence on stderr and exit status 2."""
    import json
    import sys
    from pathlib import Path

    args = build_parser().parse_args(argv)
    try:
        rows = evaluate_checkpoint(
            args.checkpoint, args.dataset, args.data_root, _parse_counts(args.patches),
            args.patch_size, args.out_size,
            SPACES if args.space == "both" else (args.space,), args.grid, args.k,
            args.temperature, args.limit, args.seed, args.device, args.precision,
            args.batch_size, args.num_workers, not args.no_progress)
    except (FileNotFoundError, ValueError) as error:
        print(f"cooc-eval: {error}", file=sys.stderr)
        return 2
    print(format_rows(rows))
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(rows, indent=1) + "\n")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
