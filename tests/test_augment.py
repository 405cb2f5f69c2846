"""Batched BYOL augmentations against torchvision's per-image transforms.

Two kinds of evidence: with the same sampled parameters, the pixels agree with
torchvision's functional ops applied image by image; and the parameters we draw
follow the same distributions as those torchvision's transforms draw.
"""

import itertools
from dataclasses import replace

import pytest
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as TF

from cooc_minimal import augment as A

TORCHVISION_JITTER = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation,
                      TF.adjust_hue)


def _batch(n=48, side=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, side, side, generator=g)
    x[:4] = x[:4].round()  # saturated pixels: ties in max/min, clamping
    x[4:6, 1] = x[4:6, 0]  # red == green: the hue's case split
    x[6, :, :3] = 0.5  # grey pixels: no hue at all
    return x


def _torchvision_one(image, p, i, config):
    """One image through torchvision's functional ops, with our i-th parameters."""
    if p.crop is not None:
        x0, y0, x1, y1 = p.crop[i].tolist()
        image = TF.resized_crop(image, y0, x0, y1 - y0, x1 - x0, [config.crop_size] * 2,
                                antialias=True)
    if p.flip[i]:
        image = TF.hflip(image)
    if p.jitter[i]:
        for op in p.order[i].tolist():
            image = TORCHVISION_JITTER[op](image, p.factors[i, op].item())
    if p.grayscale[i]:
        image = TF.rgb_to_grayscale(image, num_output_channels=3)
    if p.blur[i]:
        kernel = config.blur_kernel or A.default_blur_kernel(image.shape[-1])
        image = TF.gaussian_blur(image, [kernel, kernel], [p.sigma[i].item()] * 2)
    if p.solarize[i]:
        image = TF.solarize(image, config.solarize_threshold)
    return image


CONFIGS = {
    "byol view 1": A.BYOL_VIEW_1,
    "byol view 2": A.BYOL_VIEW_2,
    "view 1 with crop": A.byol_crop_views(16)[0],
    "everything on, kernel 5": A.ViewConfig(crop_size=16, flip_p=0.5, jitter_p=1.0, hue=0.5,
                                            grayscale_p=0.5, blur_p=1.0, blur_kernel=5,
                                            solarize_p=0.5, solarize_threshold=0.3),
}


@pytest.mark.parametrize("name", CONFIGS)
def test_pixels_match_torchvision_given_the_same_parameters(name):
    config = CONFIGS[name]
    x = _batch()
    params = A.sample_params(len(x), config, 16, 16, torch.Generator().manual_seed(1))
    out = A.apply_params(x, params, config, chunk=7)  # small chunks: several per jitter group
    assert out.shape == (48, 3, 16, 16)
    expected = torch.stack([_torchvision_one(x[i], params, i, config) for i in range(len(x))])
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


def test_each_colour_op_matches_torchvision():
    x = _batch()
    f = torch.linspace(0.5, 1.5, len(x))
    shift = torch.linspace(-0.5, 0.5, len(x))
    for ours, theirs, factors in ((A.adjust_brightness, TF.adjust_brightness, f),
                                  (A.adjust_contrast, TF.adjust_contrast, f),
                                  (A.adjust_saturation, TF.adjust_saturation, f),
                                  (A.adjust_hue, TF.adjust_hue, shift)):
        expected = torch.stack([theirs(x[i], factors[i].item()) for i in range(len(x))])
        torch.testing.assert_close(ours(x, factors), expected, atol=1e-5, rtol=0)
    sigma = torch.linspace(0.1, 2.0, len(x))
    expected = torch.stack([TF.gaussian_blur(x[i], [7, 7], [sigma[i].item()] * 2)
                            for i in range(len(x))])
    torch.testing.assert_close(A.gaussian_blur(x, sigma, 7), expected, atol=1e-5, rtol=0)


def test_color_jitter_applies_each_images_own_order():
    x = _batch()
    params = A.sample_params(len(x), A.ViewConfig(jitter_p=0.7, hue=0.3), 16, 16,
                             torch.Generator().manual_seed(12))
    out = A.color_jitter(x, params.jitter, params.factors, params.order)
    expected = x.clone()
    for i in range(len(x)):
        if params.jitter[i]:
            for op in params.order[i].tolist():
                expected[i] = TORCHVISION_JITTER[op](expected[i], params.factors[i, op].item())
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)
    # a fixed order would be a different transform: brightness last vs first differs
    assert len({tuple(o) for o in params.order.tolist()}) > 12


def _histogram_distance(a, b, bins, low, high):
    """Largest difference between two normalised histograms (total-variation style)."""
    ha = torch.histc(a.double(), bins, low, high) / len(a)
    hb = torch.histc(b.double(), bins, low, high) / len(b)
    return (ha - hb).abs().max().item()


def test_jitter_and_blur_parameters_follow_torchvision():
    n = 20_000
    config = A.BYOL_VIEW_1
    ours = A.sample_params(n, config, 32, 32, torch.Generator().manual_seed(2))
    torch.manual_seed(3)
    jitter = T.ColorJitter(0.4, 0.4, 0.2, 0.1)
    draws = [jitter.get_params(jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue)
             for _ in range(n)]
    theirs = torch.tensor([[b, c, s, h] for _, b, c, s, h in draws])
    for column, (low, high) in enumerate(((0.6, 1.4), (0.6, 1.4), (0.8, 1.2), (-0.1, 0.1))):
        assert ours.factors[:, column].min() >= low and ours.factors[:, column].max() <= high
        distance = _histogram_distance(ours.factors[:, column], theirs[:, column], 10, low, high)
        assert distance < 0.01, f"factor {A.JITTER_OPS[column]}: histograms differ by {distance}"
    # the order: all 24 permutations, each about 1/24 of the time, in both
    perms = {p: i for i, p in enumerate(itertools.permutations(range(4)))}
    ours_order = torch.tensor([perms[tuple(o)] for o in ours.order.tolist()])
    theirs_order = torch.tensor([perms[tuple(fn.tolist())] for fn, *_ in draws])
    assert _histogram_distance(ours_order, theirs_order, 24, 0, 24) < 0.008
    sigma = torch.tensor([T.GaussianBlur.get_params(0.1, 2.0) for _ in range(n)])
    assert _histogram_distance(ours.sigma, sigma, 10, 0.1, 2.0) < 0.01


def test_crop_boxes_follow_torchvision():
    n = 10_000
    for height, width, scale, ratio in ((32, 32, (0.08, 1.0), (3 / 4, 4 / 3)),
                                        (20, 60, (0.5, 1.0), (0.2, 0.5))):  # falls back often
        ours = A.sample_crop_boxes(n, height, width, scale, ratio,
                                   torch.Generator().manual_seed(4))
        torch.manual_seed(5)
        image = torch.zeros(1, height, width)
        theirs = torch.tensor([T.RandomResizedCrop.get_params(image, list(scale), list(ratio))
                               for _ in range(n)])  # (top, left, h, w)
        theirs = torch.stack([theirs[:, 1], theirs[:, 0], theirs[:, 1] + theirs[:, 3],
                              theirs[:, 0] + theirs[:, 2]], dim=1)
        assert (ours[:, :2] >= 0).all() and (ours[:, 2] <= width).all()
        assert (ours[:, 3] <= height).all()
        for column in range(4):
            top = max(height, width) + 1
            distance = _histogram_distance(ours[:, column], theirs[:, column], top, 0, top)
            assert distance < 0.015, f"crop column {column}: histograms differ by {distance}"


def test_coin_flips_happen_as_often_as_in_torchvision():
    n = 3_000
    ours = A.sample_params(n, A.BYOL_VIEW_2, 8, 8, torch.Generator().manual_seed(6))
    torch.manual_seed(7)
    image = torch.rand(3, 2, 2)
    steps = {"flip": T.RandomHorizontalFlip(0.5), "grayscale": T.RandomGrayscale(0.2),
             "blur": T.RandomApply([T.GaussianBlur(3)], p=0.1),
             "solarize": T.RandomSolarize(0.0, p=0.2)}
    for name, transform in steps.items():
        theirs = sum(not torch.equal(transform(image), image) for _ in range(n)) / n
        rate = getattr(ours, name).double().mean().item()
        assert abs(rate - theirs) < 0.035, f"{name}: we apply it {rate:.3f}, torchvision {theirs}"


def test_deterministic_given_a_generator_and_input_untouched():
    x = _batch(n=2 * 5).view(2, 5, 3, 16, 16)  # (B, n, C, s, s) patches
    before = x.clone()
    a = A.augment(x, A.BYOL_VIEW_2, torch.Generator().manual_seed(8))
    b = A.augment(x, A.BYOL_VIEW_2, torch.Generator().manual_seed(8))
    c = A.augment(x, A.BYOL_VIEW_2, torch.Generator().manual_seed(9))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(x, before)
    assert a.min() >= 0 and a.max() <= 1  # blur weights sum to 1 only up to rounding
    v1, v2 = A.byol_views(x, torch.Generator().manual_seed(8), crop_size=12)
    assert v1.shape == v2.shape == (2, 5, 3, 12, 12)


def test_patches_get_independent_parameters():
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0)).expand(64, -1, -1, -1)
    out = A.augment(x, A.BYOL_VIEW_1, torch.Generator().manual_seed(10))
    distinct = {tuple(v.flatten()[:20].tolist()) for v in out}
    assert len(distinct) == 64
    assert out.min() >= 0 and out.max() <= 1  # view 1 always blurs


def test_rows_keep_the_parameters_of_the_selected_images():
    cropping = replace(A.BYOL_VIEW_2, crop_size=8)
    for view in (A.BYOL_VIEW_1, cropping):
        params = A.sample_params(12, view, 16, 16, torch.Generator().manual_seed(3))
        for index in (slice(4, 8), torch.tensor([11, 0, 5])):
            part = params.rows(index)
            assert len(part) == len(params.flip[index])
            for name in ("flip", "jitter", "factors", "order", "grayscale", "blur", "sigma",
                         "solarize"):
                assert torch.equal(getattr(part, name), getattr(params, name)[index]), name
            assert (part.crop is None) == (view.crop_size is None)
            if part.crop is not None:
                assert torch.equal(part.crop, params.crop[index])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_same_views_on_a_gpu_from_a_cpu_generator():
    x = _batch()
    on_cpu = A.augment(x, A.BYOL_VIEW_2, torch.Generator().manual_seed(11))
    on_gpu = A.augment(x.cuda(), A.BYOL_VIEW_2, torch.Generator().manual_seed(11))
    assert on_gpu.device.type == "cuda"
    torch.testing.assert_close(on_gpu.cpu(), on_cpu, atol=1e-5, rtol=0)


@pytest.mark.parametrize("call,match", [
    (lambda x: A.augment((x * 255).byte()), r"x must be floating point in \[0, 1\]"),
    (lambda x: A.augment(x[:, :2]), r"x must be RGB images shaped \(\.\.\., 3, H, W\)"),
    (lambda x: A.ViewConfig(flip_p=1.5), r"flip_p is a probability and must lie in \[0, 1\]"),
    (lambda x: A.ViewConfig(blur_kernel=4), r"blur_kernel must be an odd positive integer"),
    (lambda x: A.apply_params(x, A.sample_params(3, A.BYOL_VIEW_1, 16, 16), A.BYOL_VIEW_1),
     r"x must be \(N, 3, H, W\) with N = 3 images"),
    (lambda x: A.apply_params(x, A.sample_params(48, A.BYOL_VIEW_1, 16, 16),
                              A.byol_crop_views(8)[0]), r"params has no crop boxes"),
])
def test_bad_input_is_one_clear_sentence(call, match):
    with pytest.raises(ValueError, match=match):
        call(_batch())
