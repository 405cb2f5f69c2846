"""Bags of patch embeddings: the one place where patches become embeddings.

``patches (B, n, C, s, s) -> model.embed -> (B, n, D) -> mean over the first n -> (B, D)``

Evaluation, the online probe of training, the figures and local aggregation all embed
patches through :func:`embed_patches`, so a resize, a dtype or a space is handled the same
way everywhere.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SPACES = ("embedding", "projection")

__all__ = ["SPACES", "bag_means", "embed_patches"]


def embed_patches(model: nn.Module, patches: torch.Tensor, space: str = "embedding",
                  out_size: int | None = None) -> torch.Tensor:
    """Embed every patch of a batch in one forward pass: (B, n, C, s, s) -> (B, n, D) float32.

    ``space``: ``"embedding"`` (backbone output h) or ``"projection"`` (z). ``out_size``
    resizes each patch to ``out_size`` x ``out_size`` first (bilinear, antialiased), as a
    model trained on 16-px patches shown at 32 px expects. The model's mode and autograd
    are the caller's: wrap the call in ``models.evaluation_mode(model)`` to evaluate.
    """
    if space not in SPACES:
        raise ValueError(f"space must be 'embedding' or 'projection', got {space!r}.")
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
