"""Checks for chapter 4; each compares with a slow, obvious loop or with torchvision."""

import torch
import torchvision.transforms.functional as TF

from exercises.checktools import (
    ARITHMETIC_ONLY,
    NO_LIBRARY,
    NO_LOOPS,
    close,
    close_number,
    exercise,
    unchanged_call,
)


def _close(actual, expected, what: str, atol: float = 1e-5) -> None:
    assert isinstance(actual, torch.Tensor), (
        f"{what} should return a tensor, got {type(actual).__name__}")
    assert actual.shape == expected.shape, (
        f"{what} returned shape {tuple(actual.shape)}, expected {tuple(expected.shape)}")
    worst = (actual.double() - expected.double()).abs().max().item()
    assert worst <= atol, f"{what} is off by up to {worst:.3g} from the expected values"


@exercise(points=1, forbid=[NO_LIBRARY, NO_LOOPS])
def check_grid_patches(answers) -> None:
    images = torch.rand(2, 3, 11, 9, generator=torch.Generator().manual_seed(0))
    for size, stride in ((3, 3), (4, 2), (5, 4), (9, 1)):
        result = unchanged_call(answers.grid_patches, images, size, stride,
                                what="grid_patches")
        assert isinstance(result, tuple) and len(result) == 2, (
            "grid_patches should return a pair (patches, boxes)")
        patches, boxes = result
        expected, expected_boxes = [], []
        for y in range(0, 11 - size + 1, stride):
            for x in range(0, 9 - size + 1, stride):
                expected.append(images[:, :, y:y + size, x:x + size])
                expected_boxes.append([x, y, x + size, y + size])
        what = f"grid_patches(images of 11x9, size={size}, stride={stride})"
        _close(patches, torch.stack(expected, dim=1), what + " patches", atol=0)
        _close(boxes, torch.tensor(expected_boxes).expand(2, -1, -1), what + " boxes", atol=0)
    try:
        answers.grid_patches(images, 12, 1)
    except ValueError:
        pass
    else:
        raise AssertionError("grid_patches with size=12 on 11x9 images should raise ValueError")


@exercise(points=1, forbid=[NO_LIBRARY, NO_LOOPS])
def check_color_jitter(answers) -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(6, 3, 5, 7, generator=g)
    x[0] = x[0].round()  # saturated pixels
    factors = torch.rand(6, 3, generator=g) * 0.8 + 0.6
    result = unchanged_call(answers.color_jitter, x, factors, what="color_jitter")
    expected = []
    for image, (b, c, s) in zip(x, factors.tolist(), strict=True):
        image = TF.adjust_brightness(image, b)
        image = TF.adjust_contrast(image, c)
        expected.append(TF.adjust_saturation(image, s))
    close(result, torch.stack(expected), "color_jitter(x, factors)", atol=1e-5, rtol=0,
          mistakes=[
              *[("clamp to [0, 1] after each of the three steps",
                 _jitter(x, factors, skip_clamp=steps)) for steps in ((0,), (1,), (0, 1))],
              ("contrast blends with the image's mean luma (one number per image), not with "
               "each pixel's luma", _jitter(x, factors, contrast_to_pixel=True)),
              ("apply brightness, then contrast, then saturation, in that order",
               _jitter(x, factors, order=(0, 2, 1))),
          ])


def _luma(x):
    return (0.2989 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)


def _jitter(x, factors, skip_clamp=(), contrast_to_pixel=False, order=(0, 1, 2)):
    """Written-out variants of the three blends, for the mistakes' hints."""
    for step in order:
        def clamp(t, step=step):
            return t if step in skip_clamp else t.clamp(0, 1)

        f = factors[:, step].view(-1, 1, 1, 1)
        if step == 0:
            x = clamp(f * x)
        elif step == 1:
            grey = _luma(x) if contrast_to_pixel else _luma(x).mean(dim=(1, 2, 3), keepdim=True)
            x = clamp(f * x + (1 - f) * grey)
        else:
            x = clamp(f * x + (1 - f) * _luma(x))
    return x.clamp(0, 1)


def _overlap_by_counting(height: int, width: int, size: int, reach: int | None = None) -> float:
    """Every pair of corner positions, counted with torch: overlap iff |dx|, |dy| < reach."""
    def along(side):
        x = torch.arange(side - size + 1)
        return ((x[:, None] - x[None, :]).abs() < (reach or size)).double().mean().item()
    return along(height) * along(width)


@exercise(points=2, forbid=[ARITHMETIC_ONLY])
def check_overlap_probability(answers) -> None:
    for height, width, size in ((32, 32, 16), (32, 32, 8), (224, 224, 32), (11, 9, 3),
                                (5, 5, 5), (64, 40, 16)):
        expected = _overlap_by_counting(height, width, size)
        close_number(answers.overlap_probability(height, width, size), expected,
                     f"overlap_probability({height}, {width}, {size})", rel=1e-9, mistakes={
                         "patches overlap only if they overlap along both axes: multiply the "
                         "two axes' probabilities": _overlap_by_counting(height, size, size),
                         "there are side - size + 1 positions per axis, not side - size":
                             _overlap_by_counting(height - 1, width - 1, size)
                             if min(height, width) > size else -1.0,
                         "corners exactly size apart give patches that touch but share no "
                         "pixel": _overlap_by_counting(height, width, size, reach=size + 1),
                     })
