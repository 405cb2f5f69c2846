"""The views of one training step: patches cut from each image, then augmented.

``images (b, 3, H, W) uint8 --random boxes--> patches (b, n, 3, s, s)``
(anywhere in the image, on the grid of step s with ``patch_grid``, or a share
``grid_share`` of them at distinct grid positions and the rest anywhere)
``--resize, BYOL views--> (b, n, 3, S, S) float in [0, 1]``

A process under ``torchrun`` holds ``b`` rows of a global batch of ``world * b`` images.
It draws the boxes and the augmentation parameters of the *whole* global batch from the
generator every rank shares, and keeps its own rows: patch ``i`` of image ``j`` gets the
same box and the same view on 1 or 8 processes, so the run does not depend on how many
share it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cooc_minimal import augment as aug
from cooc_minimal.config import Config
from cooc_minimal.patches import crop_boxes, mixed_boxes, random_boxes, random_grid_boxes
from cooc_minimal.runtime import to_unit_float

__all__ = ["make_views", "view_plan"]


def view_plan(cfg: Config) -> list[tuple[int, aug.ViewConfig | None]]:
    """How many patches of each image get which view: ``[(count, ViewConfig or None)]``.

    ``byol``: the first ceil(n/2) patches get BYOL's view 1, the others view 2 (our choice:
    BYOL defines two views, EMP-SSL applies one policy to all its patches).
    ``byol_crop``: the same views with a random resized crop (scale 0.08-1) to the output
    side, which makes training multi-scale. ``none``: no augmentation.
    """
    if cfg.augment == "none":
        return [(cfg.n_patches, None)]
    first, second = aug.BYOL_VIEW_1, aug.BYOL_VIEW_2
    if cfg.augment == "byol_crop":
        first, second = aug.byol_crop_views(cfg.patch_out or cfg.patch_size)
    half = (cfg.n_patches + 1) // 2
    return [(half, first), (cfg.n_patches - half, second)]


def make_views(images: torch.Tensor, cfg: Config, generator: torch.Generator, rank: int = 0,
               world: int = 1) -> torch.Tensor:
    """Patches and their augmented views for this rank's slice of a global batch.

    images: (b, 3, H, W) uint8 (or float in [0, 1]), rows ``rank*b : (rank+1)*b`` of a
    global batch of ``world * b`` images. The random boxes and view parameters are drawn
    for the whole global batch (the same draws on every rank) and this rank keeps its rows.
    Returns (b, n, 3, S, S) float in [0, 1], S = ``patch_out or patch_size``.
    """
    b, (height, width) = images.shape[0], images.shape[-2:]
    mine, size, n = slice(rank * b, (rank + 1) * b), cfg.patch_size, cfg.n_patches
    if cfg.grid_share:
        boxes = mixed_boxes(world * b, height, width, size, n, grid_share=cfg.grid_share,
                            generator=generator)[mine]
    else:
        draw = random_grid_boxes if cfg.patch_grid else random_boxes
        boxes = draw(world * b, height, width, size=size, n=n, generator=generator)[mine]
    x = to_unit_float(crop_boxes(images, boxes.to(images.device), size))  # (b, n, 3, s, s)
    side = cfg.patch_out or size
    if side != size and cfg.augment != "byol_crop":  # byol_crop's crop resizes by itself
        x = F.interpolate(x.flatten(0, 1), size=(side, side), mode="bilinear",
                          align_corners=False, antialias=True).view(b, n, 3, side, side)
    views, start = [], 0
    for count, view in view_plan(cfg):
        part = x[:, start:start + count]                                  # (b, count, ...)
        start += count
        if view is None or count == 0:
            views.append(part)
            continue
        # Rows of the global draw are image-major: image j's patches are rows j*count...
        params = aug.sample_params(world * b * count, view, *part.shape[-2:], generator)
        own = params.rows(slice(mine.start * count, mine.stop * count))
        out = aug.apply_params(part.reshape(-1, *part.shape[2:]), own, view)
        views.append(out.view(b, count, *out.shape[1:]))
    return torch.cat(views, dim=1) if len(views) > 1 else views[0]
