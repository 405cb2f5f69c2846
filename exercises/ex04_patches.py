"""Chapter 4: grid patches, a batched colour jitter, and a prediction about patches.

Edit the functions below, then run ``make check-exercises CHAPTER=04``. The tasks, with
hints, are on the book page "Exercises 4". Work on whole batches (no Python loop over
images or patches), leave the inputs unchanged, and do not import ``cooc_minimal``.
"""

import torch


def grid_patches(images: torch.Tensor, size: int, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every ``size`` x ``size`` patch on a grid with step ``stride``, and its box.

    images: (B, C, H, W). Returns
    - patches: (B, L, C, size, size), row by row (left to right, then top to bottom),
      with L = ((H - size) // stride + 1) * ((W - size) // stride + 1);
    - boxes: (B, L, 4) int64 ``(x0, y0, x1, y1)``, so that patch l of image b is
      ``images[b, :, y0:y1, x0:x1]`` (the same boxes for every image).
    Raise a ValueError when ``size`` is larger than H or W.
    """
    raise NotImplementedError


def color_jitter(x: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Brightness, then contrast, then saturation, with one factor of each per image.

    x: (N, 3, H, W) floats in [0, 1]; factors: (N, 3), columns brightness b,
    contrast c, saturation s. Return a new tensor (leave ``x`` as it is), the same as
    torchvision's ``adjust_brightness``, ``adjust_contrast``, ``adjust_saturation``
    applied in that order to each image:
    - brightness: ``clamp(b * x, 0, 1)``;
    - contrast: ``clamp(c * x + (1 - c) * m, 0, 1)`` with m the image's mean luma;
    - saturation: ``clamp(s * x + (1 - s) * y, 0, 1)`` with y each pixel's luma;
    luma ``y = 0.2989 r + 0.587 g + 0.114 b``.
    """
    raise NotImplementedError


def overlap_probability(height: int, width: int, size: int) -> float:
    """Your prediction: the chance that two random patches of one image share a pixel.

    Each patch is ``size`` x ``size``, its top-left corner uniform over the
    (height - size + 1) x (width - size + 1) positions, the two drawn independently (as
    ``cooc_minimal.patches.random_patches`` does). A formula with arithmetic only.
    """
    raise NotImplementedError
