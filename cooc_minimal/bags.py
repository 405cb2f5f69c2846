"""Bags of patch embeddings: the one place where patches become embeddings.

``images (B, C, H, W) -> patches (B, n, C, s, s) -> model.embed -> (B, n, D) -> mean -> (B, D)``

- :func:`embed_patches`: the primitive, patches already cut -> their embeddings, one
  forward pass. Evaluation, the online probe of training, the figures and local aggregation
  all embed patches through it, so a resize, a dtype or a space is handled the same way
  everywhere.
- :func:`patch_embeddings`: cut n random patches, or grid patches, of one chunk of images
  and embed them.
- :func:`bag_means`: nested means of the first n patch embeddings, for several n at once.
- :func:`bag_embeddings` (a tensor of images) and :func:`embed_dataset` (a dataset, with
  its labels): the bag of every image, chunk by chunk, in eval mode.
- :func:`grid_embeddings` (every grid patch of every image) and :func:`image_embeddings`
  (every whole image), chunk by chunk, in eval mode.

All four whole-tensor functions run the same loop over chunks (``_embed_chunks``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from cooc_minimal.patches import crop_boxes, grid_boxes, random_patches
from cooc_minimal.runtime import evaluation_mode, model_device, positive_int, to_unit_float

SPACES = ("embedding", "projection")

__all__ = ["SPACES", "bag_embeddings", "bag_means", "check_model", "check_space",
           "default_batch_size", "embed_dataset", "embed_patches", "grid_embeddings",
           "grid_length", "image_embeddings", "patch_counts", "patch_embeddings"]


# ------------------------------------------------------------------------------ checks

def check_space(space: str) -> None:
    """Refuse, in one sentence, a space other than ``"embedding"`` or ``"projection"``."""
    if space not in SPACES:
        raise ValueError(f"space must be 'embedding' or 'projection', got {space!r}.")


def check_model(model: object) -> None:
    """Refuse, in one sentence, anything but a module with ``embed`` (a JointEmbedding)."""
    if not (isinstance(model, nn.Module) and hasattr(model, "embed")):
        raise ValueError(f"model must be a JointEmbedding (from models.build_model or "
                         f"checkpoint.load_model), got {type(model).__name__}.")


def patch_counts(n_patches: int | Sequence[int]) -> list[int]:
    """The bag sizes asked for, checked, sorted and without repeats: 4 -> [4];
    [16, 1, 4] -> [1, 4, 16]."""
    if isinstance(n_patches, int) and not isinstance(n_patches, bool):
        return [positive_int("n_patches", n_patches)]
    if isinstance(n_patches, Sequence) and len(n_patches) > 0:
        return sorted({positive_int("each count in n_patches", n) for n in n_patches})
    raise ValueError(f"n_patches must be a positive integer or a non-empty list of them, got "
                     f"{n_patches!r}.")


def grid_length(height: int, width: int, patch_size: int, stride: int | None = None) -> int:
    """How many grid positions a ``patch_size`` patch has, moved by ``stride`` (default: its
    side): ``((H - s) // stride + 1) * ((W - s) // stride + 1)``."""
    stride = stride or patch_size
    return ((height - patch_size) // stride + 1) * ((width - patch_size) // stride + 1)


def _check_patch_size(patch_size: int, height: int, width: int) -> None:
    positive_int("patch_size", patch_size)
    if patch_size > min(height, width):
        raise ValueError(f"patch_size={patch_size} is larger than the images ({height}x{width}): "
                         f"choose a patch size of at most {min(height, width)}.")


def _check_grid_count(name: str, n: int, patch_size: int, stride: int | None,
                      size: tuple[int, int]) -> None:
    length = grid_length(*size, patch_size, stride)
    if n > length:
        raise ValueError(f"{name}={n} is more than the {length} grid patches of side "
                         f"{patch_size} in a {size[0]}x{size[1]} image: ask for at most "
                         f"{length}, or use random patches (grid=False).")


def default_batch_size(model: nn.Module) -> int:
    """Patches per forward pass when not told: 1024 on a CPU (larger batches fall out of the
    caches and run slower there), 8192 on a GPU."""
    return 8192 if model_device(model).type == "cuda" else 1024


# -------------------------------------------------------------------------- primitives

def embed_patches(model: nn.Module, patches: torch.Tensor, space: str = "embedding",
                  out_size: int | None = None) -> torch.Tensor:
    """Embed every patch of a batch in one forward pass: (B, n, C, s, s) -> (B, n, D) float32.

    ``space``: ``"embedding"`` (backbone output h) or ``"projection"`` (z). ``out_size``
    resizes each patch to ``out_size`` x ``out_size`` first (bilinear, antialiased), as a
    model trained on 16-px patches shown at 32 px expects. The model's mode and autograd
    are the caller's: wrap the call in ``runtime.evaluation_mode(model)`` to evaluate.
    """
    check_space(space)
    if patches.dim() != 5:
        raise ValueError(f"patches must be (B, n, C, s, s), got shape {tuple(patches.shape)}.")
    batch, count = patches.shape[:2]
    flat = patches.flatten(0, 1)
    if out_size is not None and out_size != flat.shape[-1]:
        flat = F.interpolate(flat, size=(out_size, out_size), mode="bilinear",
                             align_corners=False, antialias=True)
    return model.embed(flat, space).float().view(batch, count, -1)


def bag_means(h: torch.Tensor, counts: list[int]) -> dict[int, torch.Tensor]:
    """Means of the first n patch embeddings, for each n: h (B, n_max, D) -> {n: (B, D)}.

    One cumulative sum serves every n, and the bags are nested: the bag of 4 holds the bag
    of 1's patch.
    """
    prefix = h.cumsum(dim=1)
    return {n: prefix[:, n - 1] / n for n in counts}


def _grid_patches(images: torch.Tensor, patch_size: int, n: int | None, stride: int | None,
                  generator: torch.Generator | None) -> torch.Tensor:
    """(B, n, C, s, s): every grid patch, row by row (``n`` None or the whole grid), or ``n``
    distinct grid positions per image, drawn with ``generator``."""
    batch = images.shape[0]
    boxes = grid_boxes(images.shape[-2], images.shape[-1], patch_size,
                       stride or patch_size, images.device)  # (L, 4)
    if n is None or n == boxes.shape[0]:
        chosen = boxes.expand(batch, -1, -1)
    else:
        # A random order of the grid per image: its first n are n distinct positions, and a
        # smaller bag's positions are the first ones of a larger bag's (nested bags).
        draw_on = generator.device if generator is not None else torch.device("cpu")
        order = torch.rand(batch, boxes.shape[0], generator=generator, device=draw_on)
        chosen = boxes[order.argsort(dim=1)[:, :n].to(images.device)]  # (B, n, 4)
    return crop_boxes(images, chosen, patch_size)


def patch_embeddings(model: nn.Module, images: torch.Tensor, patch_size: int, *,
                     n: int | None = None, space: str = "embedding", grid: bool = False,
                     stride: int | None = None, out_size: int | None = None,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Embeddings of ``n`` square patches of side ``patch_size`` per image, in one pass.

    images: (B, C, H, W) floats in [0, 1], on the model's device. Returns (B, n, D) float32.

    - ``grid=False``: ``n`` random positions (``patches.random_patches``, drawn with
      ``generator``; patches may overlap).
    - ``grid=True``: positions of the grid of step ``stride`` (default ``patch_size``),
      row by row: all L of them when ``n`` is None, else ``n`` distinct ones per image in a
      random order, so that the first k of them are a bag of k.
    - ``out_size`` resizes each patch before the network (:func:`embed_patches`).

    All B * n patches go through the network in one batch: the caller sizes B. The model's
    mode and autograd are the caller's, as in :func:`embed_patches`.
    """
    size = (images.shape[-2], images.shape[-1])
    if grid:
        _check_patch_size(patch_size, *size)
        if n is not None:
            _check_grid_count("n", positive_int("n", n), patch_size, stride, size)
        patches = _grid_patches(images, patch_size, n, stride, generator)
    elif n is None:
        raise ValueError("n must be given for random patches: pass n=..., or grid=True for the "
                         "grid's patches.")
    else:
        patches, _ = random_patches(images, patch_size, n, generator=generator)
    return embed_patches(model, patches, space, out_size)


# ------------------------------------------------------------ many images, chunk by chunk

def _embed_chunks(model: nn.Module, chunks: Iterable[torch.Tensor],
                  embed: Callable[[torch.Tensor], dict], *, total: int, progress: bool,
                  keep_on: torch.device | None) -> dict:
    """The loop every whole-dataset embedding runs: chunk by chunk, concatenated.

    Each chunk of images (b, C, H, W), uint8 or float, goes to the model's device as floats
    in [0, 1]; ``embed(chunk)`` returns ``{key: (b, ...)}``; each value is kept on
    ``keep_on`` (None: where it was made). Eval mode without autograd, modes restored
    after; a tqdm bar counts the images when ``progress``. Returns ``{key: (N, ...)}``.
    """
    device = model_device(model)
    parts: dict = {}
    with evaluation_mode(model), tqdm(total=total, unit="img", disable=not progress,
                                      desc="bag embeddings") as bar:
        for chunk in chunks:
            for key, value in embed(to_unit_float(chunk.to(device, non_blocking=True))).items():
                parts.setdefault(key, []).append(value if keep_on is None else value.to(keep_on))
            bar.update(chunk.shape[0])
    return {key: torch.cat(values) for key, values in parts.items()}


def _slices(images: torch.Tensor, per_chunk: int) -> Iterator[torch.Tensor]:
    return (images[start:start + per_chunk] for start in range(0, images.shape[0], per_chunk))


@dataclass(frozen=True)
class _BagPlan:
    """A checked request for bags: ``counts`` the sorted bag sizes (None: one bag of every
    grid patch), ``n_max`` the patches drawn per image, ``batch_size`` patches per pass; the
    rest are :func:`patch_embeddings`' options."""

    patch_size: int
    counts: list[int] | None
    n_max: int
    batch_size: int
    space: str
    grid: bool
    stride: int | None
    out_size: int | None
    generator: torch.Generator | None

    def bags(self, model: nn.Module, chunk: torch.Tensor) -> dict:
        """(b, C, H, W) -> {n: (b, D)} nested bags, or {None: (b, D)} for the whole grid."""
        h = patch_embeddings(model, chunk, self.patch_size,
                             n=self.n_max if self.counts else None, space=self.space,
                             grid=self.grid, stride=self.stride, out_size=self.out_size,
                             generator=self.generator)
        return bag_means(h, self.counts) if self.counts else {None: h.mean(dim=1)}

    def as_asked(self, bags: dict, n_patches) -> torch.Tensor | dict[int, torch.Tensor]:
        """One tensor for one count (or the whole grid), the dict for a list of counts."""
        if self.counts is None:
            return bags[None]
        return bags[self.counts[0]] if isinstance(n_patches, int) else bags


def _plan(model: nn.Module, patch_size: int, n_patches, size: tuple[int, int], *,
          space: str, grid: bool, batch_size: int | None, generator: torch.Generator | None,
          stride: int | None, out_size: int | None) -> _BagPlan:
    """Check the whole request before any image is embedded, and size its chunks."""
    check_model(model)
    check_space(space)
    _check_patch_size(patch_size, *size)
    for name, value in (("stride", stride), ("out_size", out_size)):
        if value is not None:
            positive_int(name, value)
    batch_size = default_batch_size(model) if batch_size is None else \
        positive_int("batch_size", batch_size)
    if grid and n_patches is None:
        counts, n_max = None, grid_length(*size, patch_size, stride)
    else:
        counts = patch_counts(n_patches)
        n_max = counts[-1]
        if grid:
            _check_grid_count("n_patches", n_max, patch_size, stride, size)
    return _BagPlan(patch_size, counts, n_max, batch_size, space=space, grid=grid,
                    stride=stride, out_size=out_size, generator=generator)


def bag_embeddings(model: nn.Module, images: torch.Tensor | Dataset, patch_size: int,
                   n_patches: int | Sequence[int] | None, *, space: str = "embedding",
                   grid: bool = False, batch_size: int | None = None,
                   generator: torch.Generator | None = None, stride: int | None = None,
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
    options = dict(space=space, grid=grid, batch_size=batch_size, generator=generator,
                   stride=stride, out_size=out_size)
    if isinstance(images, Dataset):
        return embed_dataset(model, images, patch_size, n_patches, **options,
                             progress=True if progress is None else progress)[0]
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a tensor (B, C, H, W) or a Dataset, got {shape}: add a "
                         f"batch dimension with images.unsqueeze(0) for a single image.")
    plan = _plan(model, patch_size, n_patches, tuple(images.shape[-2:]), **options)
    chunks = _slices(images, max(1, plan.batch_size // plan.n_max))
    bags = _embed_chunks(model, chunks, lambda chunk: plan.bags(model, chunk),
                         total=images.shape[0], progress=bool(progress), keep_on=images.device)
    return plan.as_asked(bags, n_patches)


def embed_dataset(model: nn.Module, dataset: Dataset, patch_size: int,
                  n_patches: int | Sequence[int] | None, *, space: str = "embedding",
                  grid: bool = False, batch_size: int | None = None,
                  generator: torch.Generator | None = None, stride: int | None = None,
                  out_size: int | None = None, progress: bool | None = True,
                  num_workers: int = 0, limit: int | None = None,
                  ) -> tuple[torch.Tensor | dict[int, torch.Tensor], torch.Tensor]:
    """:func:`bag_embeddings` of every image of a dataset, and the labels.

    dataset: map-style, items ``(image (C, H, W) in [0, 1], label)``; ``limit`` keeps the
    first ``limit`` items. Returns the bags ((N, D) or ``{n: (N, D)}``) and labels (N,)
    int64 on the CPU: a chunk's bags leave the model's device as soon as they are made, so
    the features of a whole dataset (ImageNet-100 in the projection space: 126,689 x 8,192
    floats, 4 GB per patch count) never sit on the GPU together; a read-out moves one matrix
    at a time back. One tqdm bar over the dataset; a DataLoader with ``num_workers``
    processes reads ``batch_size // n`` images at a time.
    """
    if limit is not None:
        positive_int("limit", limit)
        dataset = Subset(dataset, range(min(limit, len(dataset))))
    if len(dataset) == 0:
        raise ValueError("the dataset is empty: point it at a folder that holds images.")
    first = dataset[0][0]
    if not isinstance(first, torch.Tensor) or first.dim() != 3:
        raise ValueError(f"the dataset must give images as tensors (C, H, W), got "
                         f"{type(first).__name__}: give it transform=ToTensor().")
    plan = _plan(model, patch_size, n_patches, tuple(first.shape[-2:]), space=space, grid=grid,
                 batch_size=batch_size, generator=generator, stride=stride, out_size=out_size)
    device = model_device(model)
    loader = DataLoader(dataset, batch_size=max(1, plan.batch_size // plan.n_max),
                        shuffle=False, num_workers=num_workers, pin_memory=device.type == "cuda")
    labels: list[torch.Tensor] = []

    def images_keeping_labels() -> Iterator[torch.Tensor]:
        for images, targets in loader:
            labels.append(torch.as_tensor(targets, dtype=torch.long).cpu())
            yield images

    bags = _embed_chunks(model, images_keeping_labels(), lambda chunk: plan.bags(model, chunk),
                         total=len(dataset), progress=bool(progress),
                         keep_on=torch.device("cpu"))
    return plan.as_asked(bags, n_patches), torch.cat(labels)


def grid_embeddings(model: nn.Module, images: torch.Tensor, patch_size: int, *,
                    stride: int | None = None, space: str = "embedding",
                    out_size: int | None = None, batch_size: int | None = None,
                    ) -> torch.Tensor:
    """The embedding of every grid patch of every image: (B, C, H, W) -> (B, L, D) float32.

    The grid has step ``stride`` (default ``patch_size``), positions row by row, as
    ``patches.grid_patches``; L = :func:`grid_length`. ``batch_size`` patches per forward
    pass (default :func:`default_batch_size`); eval mode, no autograd; on ``images``' device.
    """
    check_model(model)
    check_space(space)
    _check_patch_size(patch_size, *images.shape[-2:])
    batch_size = default_batch_size(model) if batch_size is None else \
        positive_int("batch_size", batch_size)
    length = grid_length(*images.shape[-2:], patch_size, stride)

    def embed(chunk: torch.Tensor) -> dict:
        return {None: patch_embeddings(model, chunk, patch_size, space=space, grid=True,
                                       stride=stride, out_size=out_size)}

    chunks = _slices(images, max(1, batch_size // length))
    return _embed_chunks(model, chunks, embed, total=images.shape[0], progress=False,
                         keep_on=images.device)[None]


def image_embeddings(model: nn.Module, images: torch.Tensor, *, space: str = "embedding",
                     images_per_pass: int = 64) -> torch.Tensor:
    """The embedding of each whole image, f(x): (B, C, H, W) -> (B, D) float32.

    ``images_per_pass`` images per forward pass; eval mode, no autograd; the result is on
    ``images``' device. The reference a bag of patches is compared with.
    """
    check_model(model)
    check_space(space)
    chunks = _slices(images, positive_int("images_per_pass", images_per_pass))
    return _embed_chunks(model, chunks, lambda chunk: {None: model.embed(chunk, space).float()},
                         total=images.shape[0], progress=False, keep_on=images.device)[None]
