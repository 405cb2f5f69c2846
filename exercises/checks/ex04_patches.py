"""Checks for chapter 4; each compares with a slow, obvious loop or with torchvision."""

import torch
import torchvision.transforms.functional as TF

from exercises.checktools import NO_LIBRARY, NO_LOOPS, exercise


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
        result = answers.grid_patches(images, size, stride)
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
    before = x.clone()
    result = answers.color_jitter(x, factors)
    assert torch.equal(x, before), "color_jitter changed its input x: work on a copy"
    expected = []
    for image, (b, c, s) in zip(x, factors.tolist(), strict=True):
        image = TF.adjust_brightness(image, b)
        image = TF.adjust_contrast(image, c)
        expected.append(TF.adjust_saturation(image, s))
    _close(result, torch.stack(expected), "color_jitter(x, factors)")
