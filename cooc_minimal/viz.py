"""Figures the chapters share, drawn with matplotlib (no external diagram tool).

- ``pipeline_figure()``: the course's data flow, training row and evaluation row.
- Looking inside a model (chapter 9): ``similarity_heatmap`` (appendix D, Fig. 6),
  ``patch_neighbors`` (appendix E, Figs. 7-10), ``composition_figure`` (Figs. 11-12), with
  the numbers behind them: ``patch_similarity``, ``nearest_patches``, ``frame_colours``,
  ``neighbour_agreement``.
- ``training_curves``: a run's ``metrics.csv``, one panel per logged quantity.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Rectangle
from torch import nn

from cooc_minimal.bags import check_model, check_space, embed_patches, grid_embeddings
from cooc_minimal.patches import grid_boxes
from cooc_minimal.runtime import evaluation_mode, model_device

__all__ = ["pipeline_figure", "Neighbours", "grid_patch_embeddings", "patch_similarity",
           "similarity_heatmap", "nearest_patches", "frame_colours", "patch_neighbors",
           "neighbour_agreement", "PartSharing", "part_sharing",
           "composition_figure", "read_metrics", "training_curves"]

# (label, detail, module) for each stage of the two rows
_TRAIN_STAGES = (
    ("images", "(B, 3, H, W)", "data"),
    ("patches", "n per image\n(B, n, 3, p, p)", "patches"),
    ("augment", "BYOL, per patch", "augment"),
    ("backbone", "h: embedding\n(B, n, out_dim)", "models"),
    ("projector", "z: projection\n(B, n, D)", "models"),
    ("loss", "spectral, VICReg,\nTCR, SimCLR", "losses"),
)
_EVAL_STAGES = (
    ("images", "(B, 3, H, W)", "data"),
    ("patches", "n per image\n(or a grid)", "patches"),
    ("backbone", "h per patch\n(B, n, out_dim)", "models"),
    ("bag", "mean of h over\npatches (B, out_dim)", "bags"),
    ("probe / kNN", "linear probe,\nk nearest neighbours", "evaluate"),
)
_COLOURS = {
    "data": "#e8eef7",
    "patches": "#e3f1e0",
    "augment": "#fdf1d8",
    "models": "#f6e0e0",
    "losses": "#ece3f3",
    "bags": "#e6f4f1",
    "evaluate": "#dff2f2",
}


def _row(ax, stages, y: float, box_w: float, gap: float) -> list[tuple[float, float]]:
    """Draw one row of boxes joined by arrows; returns each box's (x_left, x_right)."""
    spans = []
    for i, (label, detail, module) in enumerate(stages):
        x = i * (box_w + gap)
        ax.add_patch(
            FancyBboxPatch(
                (x, y - 0.5), box_w, 1.0,
                boxstyle="round,pad=0.02,rounding_size=0.08",
                facecolor=_COLOURS[module], edgecolor="#444", linewidth=1.2,
            )
        )
        ax.text(x + box_w / 2, y + 0.22, label, ha="center", va="center",
                fontsize=12, fontweight="bold")
        ax.text(x + box_w / 2, y - 0.13, detail, ha="center", va="center", fontsize=8)
        ax.text(x + box_w / 2, y - 0.62, f"{module}.py", ha="center", va="top",
                fontsize=7.5, color="#555", family="monospace")
        if i:
            ax.add_patch(
                FancyArrowPatch((x - gap + 0.02, y), (x - 0.02, y),
                                arrowstyle="-|>", mutation_scale=14, linewidth=1.4, color="#333")
            )
        spans.append((x, x + box_w))
    return spans


def pipeline_figure() -> Figure:
    """The course's pipeline as a figure: the training row and the evaluation row.

    Training: images -> patches -> augment -> backbone (h, the embedding) -> projector (z)
    -> loss. Evaluation: images -> patches -> backbone -> bag (mean of h over the patches)
    -> linear probe / kNN. Each box names the `cooc_minimal` module that implements it.
    """
    fig = Figure(figsize=(9, 3.9), layout="constrained")  # small figure: large type at book width
    ax = fig.add_subplot()
    box_w, gap = 1.85, 0.4
    width = len(_TRAIN_STAGES) * (box_w + gap) - gap
    ax.text(-0.05, 2.95, "Training (self-supervised)", fontsize=11, style="italic",
            ha="left", va="center")
    _row(ax, _TRAIN_STAGES, 2.2, box_w, gap)
    ax.text(-0.05, 0.95, "Evaluation (frozen backbone)", fontsize=11, style="italic",
            ha="left", va="center")
    spans = _row(ax, _EVAL_STAGES, 0.2, box_w, gap)
    # the evaluation reuses the trained backbone: a dashed link between the two rows
    x_train = 3 * (box_w + gap) + box_w / 2
    x_eval = (spans[2][0] + spans[2][1]) / 2
    ax.add_patch(
        FancyArrowPatch((x_train, 1.38), (x_eval, 0.76), arrowstyle="-|>", mutation_scale=12,
                        linestyle="--", linewidth=1.1, color="#777")
    )
    ax.text((x_train + x_eval) / 2 + 0.3, 1.12, "same trained weights", fontsize=8,
            color="#555", ha="left", va="center")
    ax.set_xlim(-0.15, width + 0.15)
    ax.set_ylim(-0.75, 3.2)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title("The course's pipeline: what each stage turns into what", fontsize=12)
    return fig


# ------------------------------------------------------ looking inside the embedding (ch. 9)
#
# A patch is a box (x0, y0, x1, y1) of one image, as in ``patches.py``. Every function
# here embeds square patches on their own, through ``bags.py`` (h in the embedding space,
# z in the projection space), so a patch's vector depends on its pixels only, never on
# its neighbourhood.

FRAME_SAME_CLASS = "green"  # another image of the query's class
FRAME_OTHER_CLASS = "red"  # an image of another class
# no frame: a patch of the query's own image


class Neighbours(NamedTuple):
    """The k nearest patches of a query: image (k,) indices into the images, box (k, 4)
    ``(x0, y0, x1, y1)``, similarity (k,) cosine, in decreasing order."""

    image: torch.Tensor
    box: torch.Tensor
    similarity: torch.Tensor


def _as_batch(images: torch.Tensor) -> torch.Tensor:
    if isinstance(images, torch.Tensor) and images.dim() == 3:
        images = images.unsqueeze(0)
    if not isinstance(images, torch.Tensor) or images.dim() != 4 \
            or not images.is_floating_point():
        raise ValueError("images must be a float tensor (B, 3, H, W) or (3, H, W) in [0, 1].")
    return images


def _check_box(box, patch_size: int | None, height: int, width: int) -> tuple[int, ...]:
    """The box as four ints, square, inside the image, of side ``patch_size`` if given."""
    x0, y0, x1, y1 = (int(v) for v in (box.tolist() if torch.is_tensor(box) else box))
    side = x1 - x0
    if side <= 0 or y1 - y0 != side or x0 < 0 or y0 < 0 or x1 > width or y1 > height:
        raise ValueError(f"query box {(x0, y0, x1, y1)} must be a square (x0, y0, x1, y1) with "
                         f"x1 - x0 = y1 - y0 > 0 inside the {height}x{width} image.")
    if patch_size is not None and side != patch_size:
        raise ValueError(f"the query box is {side}x{side} but patch_size={patch_size}: compare "
                         f"patches of one size, e.g. box (x0, y0, x0 + {patch_size}, "
                         f"y0 + {patch_size}).")
    return x0, y0, x1, y1


def _check_model_space(model: nn.Module, space: str) -> None:
    check_model(model)
    check_space(space)


def _query_vector(model: nn.Module, images: torch.Tensor, query_image: int,
                  box: tuple[int, ...], *, space: str, input_size: int | None) -> torch.Tensor:
    """The unit vector (D,) of the patch ``box`` of ``images[query_image]``, on the images'
    device; ``input_size`` resizes it as the grid patches are (``bags.embed_patches``)."""
    x0, y0, x1, y1 = box
    patch = images[query_image, :, y0:y1, x0:x1].to(model_device(model))
    with evaluation_mode(model):
        h = embed_patches(model, patch[None, None], space, input_size)  # (1, 1, D)
    return F.normalize(h[0, 0], dim=0).to(images.device)


def grid_patch_embeddings(model: nn.Module, images: torch.Tensor, patch_size: int, *,
                          stride: int | None = None, space: str = "embedding",
                          input_size: int | None = None, batch_size: int = 2048,
                          ) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
    """Unit-norm vectors of every grid patch: images (B, 3, H, W) -> (B, L, D).

    The grid is ``patches.grid_patches(images, patch_size, stride)``'s, row by row; also
    returns its boxes (L, 4) and (rows, cols) with L = rows * cols. ``input_size`` resizes
    each patch as in training (``patch_out``); ``batch_size`` patches per forward pass.
    """
    _check_model_space(model, space)
    images = _as_batch(images)
    stride = stride or patch_size
    height, width = images.shape[-2:]
    rows, cols = (height - patch_size) // stride + 1, (width - patch_size) // stride + 1
    vectors = grid_embeddings(model, images, patch_size, stride=stride, space=space,
                              out_size=input_size, batch_size=batch_size)
    boxes = grid_boxes(height, width, patch_size, stride, images.device)
    return F.normalize(vectors, dim=-1), boxes, (rows, cols)


def patch_similarity(model: nn.Module, images: torch.Tensor, query_box, patch_size: int, *,
                     stride: int | None = None, space: str = "embedding", query_image: int = 0,
                     input_size: int | None = None) -> torch.Tensor:
    """Cosine similarity of one query patch with every grid patch: (B, rows, cols).

    images: (B, 3, H, W) in [0, 1]; the query is the ``patch_size`` square ``query_box`` =
    (x0, y0, x1, y1) of ``images[query_image]``; the grid is that of ``grid_patches(images,
    patch_size, stride)``. A grid patch with the query's pixels scores exactly the maximum.
    """
    images = _as_batch(images)
    _check_model_space(model, space)
    if not 0 <= query_image < images.shape[0]:
        raise ValueError(f"query_image={query_image} is not an index of the "
                         f"{images.shape[0]} images.")
    x0, y0, x1, y1 = _check_box(query_box, patch_size, *images.shape[-2:])
    query = _query_vector(model, images, query_image, (x0, y0, x1, y1), space=space,
                          input_size=input_size)  # (D,)
    grid, _, (rows, cols) = grid_patch_embeddings(model, images, patch_size, stride=stride,
                                                  space=space, input_size=input_size)
    return (grid @ query).view(images.shape[0], rows, cols)


def _pixel_map(similarity: torch.Tensor, patch_size: int, stride: int,
               size: tuple[int, int]) -> torch.Tensor:
    """Grid scores (B, rows, cols) -> pixels (B, H, W): each pixel gets the mean score of
    the grid patches that cover it (NaN where none does)."""
    batch = similarity.shape[0]
    spread = similarity.flatten(1)[:, None, :].expand(batch, patch_size * patch_size, -1)
    total = F.fold(spread.float(), size, patch_size, stride=stride)
    count = F.fold(torch.ones_like(spread[:1]).float(), size, patch_size, stride=stride)
    return (total / count).where(count > 0, torch.nan)[:, 0]


def _query_rectangle(box: tuple[int, ...]) -> Rectangle:
    x0, y0, x1, y1 = box
    return Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, edgecolor="red",
                     linestyle="--", linewidth=2)


def _show_image(ax, image: torch.Tensor) -> None:
    ax.imshow(image.detach().float().cpu().permute(1, 2, 0).clamp(0, 1).numpy())
    ax.set_xticks([])
    ax.set_yticks([])


def similarity_heatmap(model: nn.Module, images: torch.Tensor, query_box, patch_size: int, *,
                       stride: int | None = None, space: str | Sequence[str] = "embedding",
                       query_image: int = 0, input_size: int | None = None,
                       titles: Sequence[str] | None = None, cmap: str = "inferno") -> Figure:
    """Heatmaps of the cosine similarity to a query patch (appendix D, Fig. 6).

    One column per image, one row per space (``space="embedding"``, ``"projection"`` or
    both, as a list). Each pixel shows the mean similarity of the grid patches covering
    it, over the image; the query ``query_box`` of ``images[query_image]`` is the dashed
    red box. Each row shares one colour scale, with a labelled colour bar.
    """
    images = _as_batch(images)
    spaces = [space] if isinstance(space, str) else list(space)
    stride = stride or patch_size
    box = _check_box(query_box, patch_size, *images.shape[-2:])
    maps = [_pixel_map(patch_similarity(model, images, box, patch_size, stride=stride, space=s,
                                        query_image=query_image, input_size=input_size),
                       patch_size, stride, tuple(images.shape[-2:])).cpu() for s in spaces]
    batch = images.shape[0]
    fig = Figure(figsize=(2.6 * batch + 0.8, 2.6 * len(spaces) + 0.4), layout="constrained")
    axes = fig.subplots(len(spaces), batch, squeeze=False)
    for row, (name, pixels) in enumerate(zip(spaces, maps, strict=True)):
        low = float(pixels[~pixels.isnan()].min())
        for col in range(batch):
            ax = axes[row, col]
            _show_image(ax, images[col])
            shown = ax.imshow(pixels[col].numpy(), cmap=cmap, alpha=0.6, vmin=low, vmax=1.0)
            if col == query_image:
                ax.add_patch(_query_rectangle(box))
            label = titles[col] if titles is not None else f"image {col}"
            ax.set_title(f"{label}, {name}", fontsize=9)
        fig.colorbar(shown, ax=axes[row].tolist(), shrink=0.85,
                     label=f"cosine similarity ({name})")
    fig.suptitle(f"similarity to the dashed red {patch_size}x{patch_size} query patch",
                 fontsize=10)
    return fig


def _images_labels(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """(images (N, 3, H, W), labels (N,)) from a pair, a ToyWorldDataset-like object with
    ``images`` and ``labels``, or a map-style dataset of (image, label) (stacked)."""
    if isinstance(dataset, (tuple, list)) and len(dataset) == 2:
        images, labels = dataset
    elif hasattr(dataset, "images") and hasattr(dataset, "labels"):
        images, labels = dataset.images, dataset.labels
    else:
        items = [dataset[i] for i in range(len(dataset))]
        images = torch.stack([image for image, _ in items])
        labels = torch.tensor([int(label) for _, label in items])
    images = _as_batch(images)
    labels = torch.as_tensor(labels)
    if labels.shape != (images.shape[0],):
        raise ValueError(f"need one label per image: {images.shape[0]} images but labels of "
                         f"shape {tuple(labels.shape)}.")
    return images, labels


def nearest_patches(model: nn.Module, images: torch.Tensor, query: tuple[int, Any], k: int, *,
                    space: str = "embedding", stride: int | None = None,
                    input_size: int | None = None) -> Neighbours:
    """The k grid patches of ``images`` most cosine-similar to the query patch.

    query: ``(image_index, box)``; the box's side is the patch size and the grid has step
    ``stride`` (default: that side). The query's own position, if on the grid, is left out.
    """
    images = _as_batch(images)
    index, box = query
    if not 0 <= int(index) < images.shape[0]:
        raise ValueError(f"the query's image index {index} is not one of the "
                         f"{images.shape[0]} images.")
    box = _check_box(box, None, *images.shape[-2:])
    side = box[2] - box[0]
    similarity = patch_similarity(model, images, box, side, stride=stride, space=space,
                                  query_image=int(index), input_size=input_size).flatten(1)
    boxes = grid_boxes(images.shape[-2], images.shape[-1], side, stride or side)
    own = (boxes == torch.tensor(box)).all(dim=1).to(similarity.device)
    similarity[int(index)] = similarity[int(index)].masked_fill(own, -torch.inf)
    if not 0 < k < similarity.numel():
        raise ValueError(f"k={k} must be between 1 and {similarity.numel() - 1}, the number of "
                         f"other grid patches.")
    values, flat = similarity.flatten().topk(k)
    length = boxes.shape[0]
    return Neighbours(flat // length, boxes[(flat % length).cpu()], values)


def frame_colours(query_image: int, query_label: int, images: torch.Tensor,
                  labels: torch.Tensor) -> list[str | None]:
    """Frame of each neighbour (appendix E): None for a patch of the query's own image,
    green for another image of the query's class, red for an image of another class.

    images, labels: (k,) the neighbours' image indices and their images' labels.
    """
    return [None if int(i) == int(query_image)
            else FRAME_SAME_CLASS if int(y) == int(query_label) else FRAME_OTHER_CLASS
            for i, y in zip(images.tolist(), labels.tolist(), strict=True)]


def _frame(ax, colour: str | None, width: float = 3.0) -> None:
    for spine in ax.spines.values():
        spine.set_visible(colour is not None)
        if colour is not None:
            spine.set_edgecolor(colour)
            spine.set_linewidth(width)


def _crop(images: torch.Tensor, index: int, box) -> torch.Tensor:
    x0, y0, x1, y1 = (int(v) for v in box)
    return images[int(index), :, y0:y1, x0:x1]


def patch_neighbors(model: nn.Module, dataset, query: tuple[int, Any], k: int = 15, *,
                    space: str = "embedding", stride: int | None = None,
                    input_size: int | None = None, columns: int = 8) -> Figure:
    """The query patch and its k nearest grid patches of a dataset (appendix E, Figs. 7-10).

    dataset: ``(images, labels)``, an object with ``images`` and ``labels`` (the toy world)
    or a map-style dataset of (image, label). query: ``(image_index, box)``. Frames:
    green = another image of the same class, red = another class, none = the same image
    (``frame_colours``); each neighbour's title is its cosine similarity.
    """
    images, labels = _images_labels(dataset)
    found = nearest_patches(model, images, query, k, space=space, stride=stride,
                            input_size=input_size)
    colours = frame_colours(query[0], labels[int(query[0])], found.image.cpu(),
                            labels[found.image.cpu()])
    rows = -(-k // columns)
    fig = Figure(figsize=(1.3 * (columns + 2.2), 1.35 * max(rows, 2) + 0.6),
                 layout="constrained")
    grid = fig.add_gridspec(max(rows, 2), columns + 2)
    ax = fig.add_subplot(grid[:2, :2], label="query")
    _show_image(ax, images[int(query[0])])
    ax.add_patch(_query_rectangle(_check_box(query[1], None, *images.shape[-2:])))
    ax.set_title(f"query (image {int(query[0])},\nclass {int(labels[int(query[0])])})",
                 fontsize=9)
    for j in range(k):
        ax = fig.add_subplot(grid[j // columns, 2 + j % columns], label=f"neighbour {j}")
        _show_image(ax, _crop(images, found.image[j], found.box[j]))
        _frame(ax, colours[j])
        ax.set_title(f"{found.similarity[j]:.2f}", fontsize=8)
    fig.suptitle(f"{k} nearest patches in the {space} space (cosine similarity above each); "
                 f"frame: green = same class, red = other class, none = same image",
                 fontsize=9)
    return fig


def neighbour_agreement(vectors: torch.Tensor, keys: torch.Tensor, k: int,
                        queries: torch.Tensor | None = None,
                        groups: torch.Tensor | None = None) -> float:
    """The fraction of the k nearest neighbours (cosine) that share their query's key.

    vectors: (M, D); keys: (M,) e.g. each patch's part type or class; queries: indices of
    the rows to use as queries (default: all). A query is never its own neighbour; with
    ``groups`` (M,) (e.g. each patch's image), rows of the query's own group are skipped too.
    """
    if vectors.dim() != 2 or keys.shape != (vectors.shape[0],):
        raise ValueError(f"vectors must be (M, D) and keys (M,), got {tuple(vectors.shape)} "
                         f"and {tuple(keys.shape)}.")
    queries = torch.arange(vectors.shape[0]) if queries is None else queries
    unit = F.normalize(vectors.float(), dim=1)
    similarity = unit[queries] @ unit.T  # (Q, M)
    similarity[torch.arange(len(queries)), queries] = -torch.inf
    if groups is not None:
        similarity.masked_fill_(groups[queries][:, None] == groups[None, :], -torch.inf)
    nearest = similarity.topk(k, dim=1).indices  # (Q, k)
    return (keys[nearest] == keys[queries][:, None]).float().mean().item()


class PartSharing(NamedTuple):
    """share: (L, K) the classes of each grid patch's k nearest patches of other images, as
    fractions; nearest: (L, k) those patches, indexing the images' grid patches flattened
    image by image (``// L`` the image, ``% L`` the grid position); boxes: (L, 4) the grid."""

    share: torch.Tensor
    nearest: torch.Tensor
    boxes: torch.Tensor


def part_sharing(model: nn.Module, dataset, image_index: int, patch_size: int, *,
                 stride: int | None = None, k: int = 50, space: str = "embedding",
                 input_size: int | None = None) -> PartSharing:
    """For each grid patch of one image, which classes its k nearest patches come from.

    Neighbours are grid patches of the *other* images of ``dataset`` (cosine similarity in
    ``space``); ``share[l, c]`` is the fraction of patch l's neighbours whose image has
    class c. With K classes, ``share`` is (L, K), each row summing to 1.
    """
    images, labels = _images_labels(dataset)
    stride = stride or patch_size
    vectors, boxes, _ = grid_patch_embeddings(model, images, patch_size, stride=stride,
                                              space=space, input_size=input_size)
    n_images, length = vectors.shape[:2]
    if not 0 < k <= (n_images - 1) * length:
        raise ValueError(f"k={k} must be between 1 and {(n_images - 1) * length}, the number of "
                         f"grid patches in the other images.")
    flat = vectors.flatten(0, 1)  # (N * L, D), unit rows
    similarity = vectors[image_index] @ flat.T  # (L, N * L)
    owner = torch.arange(n_images, device=flat.device).repeat_interleave(length)
    similarity[:, owner == image_index] = -torch.inf
    nearest = similarity.topk(k, dim=1).indices  # (L, k)
    near_class = labels.to(nearest.device)[owner[nearest]]
    share = F.one_hot(near_class, int(labels.max()) + 1).float().mean(dim=1)
    return PartSharing(share.cpu(), nearest.cpu(), boxes.cpu())


def composition_figure(model: nn.Module, dataset, image_index: int, patch_size: int, *,
                       stride: int | None = None, k: int = 50, space: str = "embedding",
                       class_names: Sequence[str] | None = None, show: int = 2,
                       input_size: int | None = None) -> Figure:
    """How one image is made of parts shared with other images (appendix E, Figs. 11-12).

    Top left: the image with its grid patches numbered. Top right: for each patch, the
    classes of its k nearest patches in *other* images (``part_sharing``; stacked bars, the
    image's own class first, outlined). Below: the ``show`` most widely shared patches
    (fewest neighbours of the image's class) and the ``show`` most class-specific ones,
    each with its (up to) 8 nearest patches of other images, framed green (same class) or
    red (other class).
    """
    images, labels = _images_labels(dataset)
    share, nearest, boxes = part_sharing(model, (images, labels), image_index, patch_size,
                                         stride=stride, k=k, space=space,
                                         input_size=input_size)
    length, n_classes = share.shape
    near_class = labels.cpu()[nearest // length]
    names = list(class_names) if class_names is not None else [f"class {c}"
                                                              for c in range(n_classes)]
    own = int(labels[image_index])
    order = share[:, own].argsort()
    picks = [*order[:show].tolist(), *order.flip(0)[:show].tolist()]
    fig = Figure(figsize=(11, 4.2 + 1.25 * len(picks)), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[3.2, 1.25 * len(picks)])
    ax, bars = top.subplots(1, 2, width_ratios=[1, 2])
    _show_image(ax, images[image_index])
    for j, (x0, y0, x1, y1) in enumerate(boxes.tolist()):
        ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False,
                               edgecolor="white", linewidth=0.6))
        ax.text((x0 + x1) / 2 - 0.5, (y0 + y1) / 2 - 0.5, str(j), color="white", fontsize=7,
                ha="center", va="center", fontweight="bold",
                bbox={"boxstyle": "round,pad=0.1", "facecolor": "black", "alpha": 0.5,
                      "linewidth": 0})
    ax.set_title(f"image {image_index} ({names[own]}), patches numbered", fontsize=9)
    classes = [own, *[c for c in range(n_classes) if c != own]]
    left = torch.zeros(length)
    for c in classes:
        bars.barh(range(length), share[:, c], left=left, color=_class_colour(c),
                  edgecolor="black" if c == own else "none", hatch="//" if c == own else None,
                  label=f"{names[c]} (its class)" if c == own else names[c])
        left += share[:, c]
    bars.set_yticks(range(length))
    bars.invert_yaxis()
    bars.set_xlim(0, 1)
    bars.set_xlabel(f"classes of the {k} nearest patches of other images ({space} space)")
    bars.set_ylabel("patch")
    bars.legend(fontsize=7, ncols=2, loc="center left", bbox_to_anchor=(1.0, 0.5))
    bars.set_title("where each part's neighbours come from", fontsize=9)
    thumbs = min(8, k)
    cells = bottom.subplots(len(picks), thumbs + 1, squeeze=False)
    for row, patch in enumerate(picks):
        kind = "widely shared" if row < show else "class-specific"
        ax = cells[row, 0]
        _show_image(ax, _crop(images, image_index, boxes[patch]))
        ax.set_title(f"patch {patch}", fontsize=8)
        ax.set_ylabel(kind, fontsize=8)
        for j in range(thumbs):
            hit = int(nearest[patch, j])
            ax = cells[row, 1 + j]
            _show_image(ax, _crop(images, hit // length, boxes[hit % length]))
            cls = int(near_class[patch, j])
            _frame(ax, FRAME_SAME_CLASS if cls == own else FRAME_OTHER_CLASS)
            ax.set_title(names[cls], fontsize=7)
    fig.suptitle(f"The parts of image {image_index} and the images that share them", fontsize=10)
    return fig


def _class_colour(index: int) -> tuple[float, ...]:
    """The tab10/tab20 colour of a class index."""
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if index < 10 else "tab20"]
    return cmap(index % cmap.N)


# ------------------------------------------------------------------ training curves

_STEP_COLUMNS = ("step", "epoch", "iteration")
_COUNTERS = {*_STEP_COLUMNS, "kind", "time", "elapsed", "elapsed_s", "wall_time"}


def _number(text: str | None) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def read_metrics(path: str | Path) -> dict[str, list]:
    """A run's ``metrics.csv`` (or its folder) as ``{column: values}``.

    Numeric columns become lists of floats (an empty cell is NaN); a column with text in
    it, such as ``train.py``'s ``kind`` (``step`` or ``epoch`` rows), stays a list of strings.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "metrics.csv"
    if not path.is_file():
        raise FileNotFoundError(f"No metrics file at {path}: train a run first "
                                f"(train.ensure_trained) or point at its folder.")
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise ValueError(f"{path} has a header but no rows yet: let the run log a step first.")
    data: dict[str, list] = {}
    for column in rows[0]:
        cells = [row.get(column) or "" for row in rows]
        numbers = [_number(cell) for cell in cells]
        text = any(cell.strip() and math.isnan(n) for cell, n in zip(cells, numbers, strict=True))
        data[column] = cells if text else numbers
    return data


def _numeric(values: list) -> bool:
    return all(isinstance(v, float) for v in values) and not all(math.isnan(v) for v in values)


def training_curves(metrics: str | Path | Mapping[str, Sequence],
                    columns: Sequence[str] | None = None, x: str | None = None,
                    title: str | None = None) -> Figure:
    """One panel per logged quantity of a run, against the step (or epoch).

    metrics: a run folder, its ``metrics.csv``, or ``read_metrics``'s dict. ``columns``:
    which to plot (default: every numeric column but the counters: step, epoch, elapsed
    time). With a ``kind`` column (``train.py``'s), per-step rows are drawn as a line and
    per-epoch rows as dots, so a quantity logged only per epoch (``val_acc``) shows too.
    """
    data = {k: list(v) for k, v in (metrics.items() if isinstance(metrics, Mapping)
                                     else read_metrics(metrics).items())}
    n_rows = len(next(iter(data.values())))
    x = x or next((c for c in _STEP_COLUMNS if c in data), None)
    xs = data[x] if x is not None else [float(i) for i in range(n_rows)]
    if columns is None:
        columns = [c for c, v in data.items() if c not in _COUNTERS and _numeric(v)]
    missing = [c for c in columns if c not in data or not _numeric(data[c])]
    if missing or not columns:
        raise ValueError(f"no column to plot: asked for {list(columns)}, the metrics have "
                         f"these numeric columns: {[c for c, v in data.items() if _numeric(v)]}.")
    kinds = data.get("kind", ["step"] * n_rows)
    n_cols = min(len(columns), 3)
    fig = Figure(figsize=(3.6 * n_cols, 2.8 * -(-len(columns) // 3)), layout="constrained")
    axes = fig.subplots(-(-len(columns) // 3), n_cols, squeeze=False)
    for ax, column in zip(axes.flat, columns, strict=False):
        for kind, style in (("step", "-"), ("epoch", "o")):
            points = [(u, v) for u, v, k in zip(xs, data[column], kinds, strict=True)
                      if k == kind and not math.isnan(v)]
            if points:
                ax.plot(*zip(*points, strict=True), style, linewidth=1.2, markersize=4,
                        label=f"per {kind}")
        if len({k for k in kinds if k in ("step", "epoch")}) > 1:
            ax.legend(fontsize=7)
        ax.set_xlabel(x or "row")
        ax.set_ylabel(column)
        ax.set_title(column, fontsize=9)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(columns):]:
        ax.set_visible(False)
    fig.suptitle(title or "training curves", fontsize=10)
    return fig
