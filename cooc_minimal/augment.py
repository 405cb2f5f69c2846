"""BYOL's augmentations on whole batches of image tensors, with random parameters per image.

torchvision applies its transforms to one image at a time, drawing one set of
random parameters per call. Here the parameters of N images are drawn at once
(:func:`sample_params`) and applied at once (:func:`apply_params`), on whatever
device the images are, so that many small patches per image cost little.

The distributions are torchvision's (checked against its ``get_params`` in
``tests/test_augment.py``) and, given the same parameters, so are the pixels,
including the random order of the four colour-jitter operations.
Inputs are float RGB in [0, 1]: x: (N, 3, H, W), or (..., 3, H, W) for :func:`augment`.

The two views of BYOL (Grill et al. 2020, table 6) differ only in blur and
solarisation: view 1 always blurs and never solarises; view 2 blurs with
probability 0.1 and solarises with probability 0.2.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields, replace

import torch
import torch.nn.functional as F

# The numbering of torchvision's ColorJitter: ``order`` holds a permutation of these.
JITTER_OPS = ("brightness", "contrast", "saturation", "hue")
GRAY_WEIGHTS = (0.2989, 0.587, 0.114)  # ITU-R 601-2 luma, as torchvision's rgb_to_grayscale


@dataclass(frozen=True)
class ViewConfig:
    """How to draw one view. Defaults are BYOL's first view without its random crop.

    crop_size: side of a random resized crop (scale ``crop_scale``, aspect ratio
    ``crop_ratio``), or None for no crop (patches are already cropped).
    blur_kernel: odd side of the blur kernel, or None for the odd number nearest to a
    tenth of the image side (at least 3): BYOL's 23 pixels at 224, 3 at 32.
    """

    crop_size: int | None = None
    crop_scale: tuple[float, float] = (0.08, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_p: float = 0.5
    jitter_p: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.2
    hue: float = 0.1
    grayscale_p: float = 0.2
    blur_p: float = 1.0
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    blur_kernel: int | None = None
    solarize_p: float = 0.0
    solarize_threshold: float = 0.5

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("_p") and not 0.0 <= value <= 1.0:
                raise ValueError(f"{f.name} is a probability and must lie in [0, 1], got {value}.")
        for name in ("brightness", "contrast", "saturation"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be non-negative, got {getattr(self, name)}.")
        if not 0.0 <= self.hue <= 0.5:
            raise ValueError(f"hue must lie in [0, 0.5] (a fraction of a turn), got {self.hue}.")
        if self.crop_size is not None and self.crop_size <= 0:
            raise ValueError(f"crop_size must be a positive integer or None, got {self.crop_size}.")
        lo, hi = self.blur_sigma
        if not 0 < lo <= hi:
            raise ValueError(f"blur_sigma must be (min, max) with 0 < min <= max, got "
                             f"{self.blur_sigma}.")
        if self.blur_kernel is not None and (self.blur_kernel < 1 or self.blur_kernel % 2 == 0):
            raise ValueError(f"blur_kernel must be an odd positive integer or None, got "
                             f"{self.blur_kernel}.")


BYOL_VIEW_1 = ViewConfig(blur_p=1.0, solarize_p=0.0)
BYOL_VIEW_2 = ViewConfig(blur_p=0.1, solarize_p=0.2)


def byol_crop_views(size: int) -> tuple[ViewConfig, ViewConfig]:
    """BYOL's two views with their random resized crop to ``size`` (whole-image training)."""
    return replace(BYOL_VIEW_1, crop_size=size), replace(BYOL_VIEW_2, crop_size=size)


@dataclass(frozen=True)
class AugmentParams:
    """The random draws for N images; every field has N rows, on one device.

    crop: (N, 4) int64 ``(x0, y0, x1, y1)`` boxes, or None; flip, jitter, grayscale,
    blur, solarize: (N,) bool, whether each step applies; factors: (N, 4) float32,
    the brightness, contrast and saturation factors and the hue shift; order: (N, 4)
    int64, the order of the jitter operations (indices into ``JITTER_OPS``);
    sigma: (N,) float32, the blur's standard deviation in pixels.
    """

    crop: torch.Tensor | None
    flip: torch.Tensor
    jitter: torch.Tensor
    factors: torch.Tensor
    order: torch.Tensor
    grayscale: torch.Tensor
    blur: torch.Tensor
    sigma: torch.Tensor
    solarize: torch.Tensor

    def to(self, device: torch.device | str) -> AugmentParams:
        return AugmentParams(**{f.name: None if getattr(self, f.name) is None
                                else getattr(self, f.name).to(device) for f in fields(self)})

    def rows(self, index: torch.Tensor | slice) -> AugmentParams:
        """The parameters of the images ``index`` selects: every field indexed along dim 0.

        A process that drew the parameters of a whole global batch keeps its own slice; the
        pipeline keeps images sorted by jitter order with an index tensor.
        """
        return AugmentParams(**{f.name: None if getattr(self, f.name) is None
                                else getattr(self, f.name)[index] for f in fields(self)})

    def __len__(self) -> int:
        return self.flip.shape[0]


def _uniform(n: int, low: float, high: float, generator, device) -> torch.Tensor:
    return torch.empty(n, device=device, dtype=torch.float64).uniform_(low, high,
                                                                       generator=generator)


def sample_crop_boxes(n: int, height: int, width: int, scale: tuple[float, float],
                      ratio: tuple[float, float], generator: torch.Generator | None = None,
                      attempts: int = 10) -> torch.Tensor:
    """Random resized crop boxes drawn as torchvision's ``RandomResizedCrop.get_params``.

    Up to ``attempts`` tries per image of an area fraction uniform in ``scale`` and a
    log-uniform aspect ratio in ``ratio``; the first try that fits is kept, and an
    image with none falls back to the largest central crop with a clamped ratio.
    Returns boxes: (n, 4) int64 ``(x0, y0, x1, y1)`` on the generator's device.
    """
    device = generator.device if generator is not None else torch.device("cpu")
    area = height * width * torch.empty(n, attempts, dtype=torch.float64, device=device).uniform_(
        scale[0], scale[1], generator=generator)
    log_ratio = torch.empty(n, attempts, dtype=torch.float64, device=device).uniform_(
        math.log(ratio[0]), math.log(ratio[1]), generator=generator)
    aspect = log_ratio.exp()
    w = (area * aspect).sqrt().round().long()
    h = (area / aspect).sqrt().round().long()
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = fits.long().argmax(dim=1, keepdim=True)  # index of the first try that fits
    w, h = w.gather(1, first).squeeze(1), h.gather(1, first).squeeze(1)
    u = torch.rand(n, 2, dtype=torch.float64, device=device, generator=generator)
    y0 = (u[:, 0] * (height - h + 1)).floor().long()
    x0 = (u[:, 1] * (width - w + 1)).floor().long()
    # torchvision's fallback: the whole image, narrowed to the nearest allowed ratio.
    in_ratio = width / height
    fw, fh = width, height
    if in_ratio < min(ratio):
        fh = int(round(fw / min(ratio)))
    elif in_ratio > max(ratio):
        fw = int(round(fh * max(ratio)))
    none_fit = ~fits.any(dim=1)
    w = torch.where(none_fit, fw, w)
    h = torch.where(none_fit, fh, h)
    y0 = torch.where(none_fit, (height - fh) // 2, y0)
    x0 = torch.where(none_fit, (width - fw) // 2, x0)
    return torch.stack([x0, y0, x0 + w, y0 + h], dim=1)


def sample_params(n: int, config: ViewConfig, height: int, width: int,
                  generator: torch.Generator | None = None) -> AugmentParams:
    """Draw the parameters of ``config`` for ``n`` images of ``height`` x ``width`` pixels.

    Everything is drawn on the generator's device (the CPU without one), so a seeded
    CPU generator gives the same augmentations on every device.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}.")
    device = generator.device if generator is not None else torch.device("cpu")

    def coin(p: float) -> torch.Tensor:
        return torch.rand(n, generator=generator, device=device) < p

    crop = None
    if config.crop_size is not None:
        crop = sample_crop_boxes(n, height, width, scale=config.crop_scale,
                                 ratio=config.crop_ratio, generator=generator)
    flip = coin(config.flip_p)
    jitter = coin(config.jitter_p)
    factors = torch.stack([
        _uniform(n, max(0.0, 1 - config.brightness), 1 + config.brightness, generator, device),
        _uniform(n, max(0.0, 1 - config.contrast), 1 + config.contrast, generator, device),
        _uniform(n, max(0.0, 1 - config.saturation), 1 + config.saturation, generator, device),
        _uniform(n, -config.hue, config.hue, generator, device),
    ], dim=1).float()
    # argsort of i.i.d. uniforms is a uniformly random permutation, like torch.randperm(4).
    order = torch.rand(n, 4, generator=generator, device=device).argsort(dim=1)
    grayscale = coin(config.grayscale_p)
    blur = coin(config.blur_p)
    sigma = _uniform(n, *config.blur_sigma, generator, device).float()
    solarize = coin(config.solarize_p)
    return AugmentParams(crop=crop, flip=flip, jitter=jitter, factors=factors, order=order,
                         grayscale=grayscale, blur=blur, sigma=sigma, solarize=solarize)


# ---- the operations, batched: per-image factors have shape (N,) ---------------------------
# Each colour operation has an in-place form (trailing underscore) that the pipeline uses
# on tensors it owns: on a CPU, allocating a fresh tensor costs more than a pass over one.
# The float operations are torchvision's, in the same order, so pixels agree to ~1e-6.

def _per_image(values: torch.Tensor) -> torch.Tensor:
    return values.view(-1, 1, 1, 1)


def grayscale(x: torch.Tensor) -> torch.Tensor:
    """Luma of RGB images. x: (N, 3, H, W) -> (N, 1, H, W)."""
    r, g, b = x.unbind(dim=1)
    return (GRAY_WEIGHTS[0] * r + GRAY_WEIGHTS[1] * g + GRAY_WEIGHTS[2] * b).unsqueeze(1)


def _blend_(x: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    # factor * x + (1 - factor) * other, clamped, as torchvision's _blend.
    factor = _per_image(factor)
    return x.mul_(factor).add_(other * (1.0 - factor)).clamp_(0.0, 1.0)


def _brightness_(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return x.mul_(_per_image(factor)).clamp_(0.0, 1.0)


def _contrast_(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return _blend_(x, grayscale(x).mean(dim=(1, 2, 3), keepdim=True), factor)


def _saturation_(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return _blend_(x, grayscale(x), factor)


def _hue_(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    r, g, b = x.unbind(dim=1)
    top, bottom = x.amax(dim=1), x.amin(dim=1)
    spread = top - bottom
    # A grey pixel has zero differences below, so any finite inverse gives it hue 0; a
    # spread under 1e-12 moves the output by less than that.
    inverse = spread.clamp_min(1e-12).reciprocal_()
    # Which channel is largest, as exact 0/1 weights: sign(c - max) + 1 is 1 only where
    # c == max. Ties go to red, then green, as in torchvision. (Faster than ==.)
    red = (r - top).sign_().add_(1.0)
    green = (g - top).sign_().add_(1.0).mul_(1.0 - red)
    blue = 1.0 - red - green
    hue = ((g - b) * red).addcmul_(b - r, green).addcmul_(r - g, blue).mul_(inverse)
    hue += 2.0 * green + 4.0 * blue + 6.0 * (shift.view(-1, 1, 1) + 1.0)  # now positive
    for channel, c in zip((r, g, b), (5.0, 3.0, 1.0), strict=True):
        k = hue + c
        k -= 6.0 * torch.floor(k * (1.0 / 6.0))  # k mod 6, faster than torch.remainder
        k = torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0)
        torch.sub(top, k.mul_(spread), out=channel)  # r, g, b are views into x
    return x


def adjust_brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Scale towards black: ``clamp(f x, 0, 1)``. x: (N, 3, H, W), factor: (N,)."""
    return _brightness_(x.clone(), factor)


def adjust_contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with each image's mean luma m: ``clamp(f x + (1 - f) m, 0, 1)``. factor: (N,)."""
    return _contrast_(x.clone(), factor)


def adjust_saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with each pixel's luma y: ``clamp(f x + (1 - f) y, 0, 1)``. factor: (N,)."""
    return _saturation_(x.clone(), factor)


def adjust_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate the HSV hue by ``shift`` turns, keeping HSV saturation and value.

    x: (N, 3, H, W), shift: (N,) in [-0.5, 0.5]. The hue is measured in sixths of a
    turn from the largest channel (red: (g - b) / (max - min), green: 2 + (b - r) / ...,
    blue: 4 + (r - g) / ...). A channel of the result is
    ``max - (max - min) * clamp(min(k, 4 - k), 0, 1)`` with ``k = (c + hue) mod 6`` and
    c = 5, 3, 1 for red, green, blue: the HSV-to-RGB formula without a case split.
    The cases are weights in {0, 1} rather than ``torch.where``, which is slow on CPUs.
    """
    return _hue_(x.clone(), shift)


_JITTER = (_brightness_, _contrast_, _saturation_, _hue_)


def gaussian_kernels(sigma: torch.Tensor, size: int) -> torch.Tensor:
    """Normalised 1-D Gaussians on ``size`` integer offsets. sigma: (N,) -> (N, size)."""
    offsets = torch.linspace(-(size - 1) / 2, (size - 1) / 2, size, device=sigma.device)
    weights = torch.exp(-0.5 * (offsets / sigma[:, None]) ** 2)
    return weights / weights.sum(dim=1, keepdim=True)


def _symmetric_filter(padded: torch.Tensor, weights: torch.Tensor, dim: int,
                      length: int) -> torch.Tensor:
    # A symmetric kernel: the centre tap, plus each pair of taps at +-t sharing one weight.
    pad = weights.shape[1] // 2
    out = padded.narrow(dim, pad, length) * _per_image(weights[:, pad])
    for t in range(1, pad + 1):
        pair = padded.narrow(dim, pad - t, length) + padded.narrow(dim, pad + t, length)
        out.addcmul_(pair, _per_image(weights[:, pad + t]))
    return out


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, kernel: int) -> torch.Tensor:
    """Separable Gaussian blur with reflected borders, one sigma per image.

    x: (N, C, H, W), sigma: (N,). Sums of shifted copies, one axis at a time: for the
    small kernels of small patches this beats a grouped convolution. Same result as
    torchvision's ``gaussian_blur(img, [kernel, kernel], [sigma, sigma])``.
    """
    pad = kernel // 2
    weights = gaussian_kernels(sigma.to(x.dtype), kernel)
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    rows = _symmetric_filter(padded, weights, dim=3, length=x.shape[-1])
    return _symmetric_filter(rows, weights, dim=2, length=x.shape[-2])


def solarize(x: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Invert the pixel values at or above ``threshold``: x -> 1 - x. x: (N, C, H, W)."""
    # x + [x >= t] (1 - 2x), which a CPU computes several times faster than torch.where.
    return torch.addcmul(x, (x >= threshold).to(x.dtype), 1.0 - 2.0 * x)


def resized_crop(x: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Crop each image to its box and resize it to ``size`` x ``size`` bilinearly.

    x: (N, C, H, W), boxes: (N, 4) int64 ``(x0, y0, x1, y1)``. Same sampling points as
    ``F.interpolate(mode="bilinear", align_corners=False)`` of the crop, with no
    antialiasing: it equals torchvision's ``resized_crop`` whenever the crop is enlarged.
    """

    def taps(start: torch.Tensor, length: torch.Tensor):
        dst = torch.arange(size, device=x.device, dtype=torch.float32)
        src = ((dst + 0.5) * (length[:, None] / size) - 0.5).clamp_min(0.0)  # (N, size)
        low = src.floor().long()
        high = torch.minimum(low + 1, length[:, None] - 1)
        frac = (src - low).to(x.dtype)
        return start[:, None] + low, start[:, None] + high, frac

    n, channels, _, width = x.shape
    top, bottom, fy = taps(boxes[:, 1], boxes[:, 3] - boxes[:, 1])
    left, right, fx = taps(boxes[:, 0], boxes[:, 2] - boxes[:, 0])
    upper, lower = (x.gather(2, i[:, None, :, None].expand(n, channels, size, width))
                    for i in (top, bottom))
    y = torch.lerp(upper, lower, fy[:, None, :, None])  # (N, C, size, W)
    west, east = (y.gather(3, i[:, None, None, :].expand(n, channels, size, size))
                  for i in (left, right))
    return torch.lerp(west, east, fx[:, None, None, :])  # (N, C, size, size)


def _jitter_groups(on: torch.Tensor,
                   order: torch.Tensor) -> tuple[torch.Tensor, list[int], list[int]]:
    """Sort images by their jitter order: 24 orders, and the code -1 for no jitter.

    on: (N,) bool, order: (N, 4). Returns the sorting permutation (N,) and each
    group's code and size, as lists; the code of the order (a, b, c, d) is 64a + 16b + 4c + d.
    """
    weights = torch.tensor([64, 16, 4, 1], device=order.device)
    code = torch.where(on, (order * weights).sum(dim=1), -1)
    code, idx = code.sort(stable=True)
    groups, counts = torch.unique_consecutive(code, return_counts=True)
    return idx, groups.tolist(), counts.tolist()


def color_jitter(x: torch.Tensor, on: torch.Tensor, factors: torch.Tensor,
                 order: torch.Tensor) -> torch.Tensor:
    """torchvision's ColorJitter, in each image's own random order of the four operations.

    x: (N, 3, H, W); on: (N,) bool; factors: (N, 4); order: (N, 4), a permutation of
    0..3 per image (indices into ``JITTER_OPS``). Images sharing an order are done together.
    """
    idx, groups, counts = _jitter_groups(on, order)
    out = x.clone()
    for code, members in zip(groups, idx.split(counts), strict=True):
        if code >= 0:
            out[members] = _jitter_one_order(x[members], factors[members], code)
    return out


def _jitter_one_order(x: torch.Tensor, factors: torch.Tensor, code: int) -> torch.Tensor:
    # In place: x must be a tensor of the caller's own.
    for op in (code // 64, code // 16 % 4, code // 4 % 4, code % 4):
        x = _JITTER[op](x, factors[:, op])
    return x


def _check_batch(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() < 3 or x.shape[-3] != 3:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must be RGB images shaped (..., 3, H, W), got {shape}.")
    if not x.is_floating_point():
        raise ValueError(f"x must be floating point in [0, 1], got {x.dtype}: convert it with "
                         f"x.float() / 255.")


def default_blur_kernel(side: int) -> int:
    """The odd kernel side nearest to a tenth of ``side``, at least 3 (BYOL: 23 at 224)."""
    return max(3, 2 * (side // 20) + 1)


def default_chunk(device: torch.device) -> int:
    """Images per step: small on a CPU, so each step's tensors stay in its caches."""
    return 256 if device.type == "cpu" else 1 << 30


def _on_subset(x: torch.Tensor, mask: torch.Tensor,
               fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Replace ``x[i]`` by ``fn(x[i], i)`` where ``mask`` holds, in place.

    Indexing the few selected images beats ``torch.where`` over all of them on a CPU.
    """
    idx = mask.nonzero().squeeze(1)
    if idx.numel():
        x.index_copy_(0, idx, fn(x.index_select(0, idx), idx))
    return x


def augment_after_crop(v: torch.Tensor, p: AugmentParams, config: ViewConfig,
                       code: int) -> torch.Tensor:
    """Every step after the crop, for images that share the jitter order ``code``:
    flip, colour jitter, grayscale, blur, solarize.

    v: (N, 3, H, W), a tensor of its own (modified in place).
    """
    v = _on_subset(v, p.flip, lambda u, _: u.flip(-1))
    if code >= 0:
        v = _jitter_one_order(v, p.factors, code)
    v = _on_subset(v, p.grayscale, lambda u, _: grayscale(u).expand_as(u))
    kernel = config.blur_kernel or default_blur_kernel(min(v.shape[-2:]))
    if kernel > 1:  # the clamp only removes rounding: the weights sum to 1 within 1e-7
        v = _on_subset(v, p.blur,
                       lambda u, i: gaussian_blur(u, p.sigma[i], kernel).clamp_(0.0, 1.0))
    threshold = config.solarize_threshold
    return _on_subset(v, p.solarize, lambda u, _: solarize(u, threshold))


def apply_params(x: torch.Tensor, params: AugmentParams, config: ViewConfig,
                 chunk: int | None = None, out: torch.Tensor | None = None) -> torch.Tensor:
    """Apply drawn parameters: crop, flip, colour jitter, grayscale, blur, solarise, in order.

    x: (N, 3, H, W) float in [0, 1]. Returns ``out``: (N, 3, S, S) with
    ``S = config.crop_size`` when cropping, else (N, 3, H, W); a new tensor unless
    ``out`` is given, which may be ``x`` itself to augment in place (no crop).
    Images are processed ``chunk`` at a time (see :func:`default_chunk`), grouped by
    their colour-jitter order so that each group runs its operations in one order.
    """
    _check_batch(x)
    if x.dim() != 4 or x.shape[0] != len(params):
        raise ValueError(f"x must be (N, 3, H, W) with N = {len(params)} images, one per "
                         f"parameter row, got {tuple(x.shape)}.")
    if config.crop_size is not None and params.crop is None:
        raise ValueError("params has no crop boxes but config asks for a crop: draw them with "
                         "sample_params(..., config) from the same config.")
    side = config.crop_size
    shape = x.shape[:2] + ((side, side) if side else x.shape[2:])
    if out is None:
        out = torch.empty(shape, dtype=x.dtype, device=x.device)
    elif out.shape != shape or (side and out.data_ptr() == x.data_ptr()):
        raise ValueError(f"out must have shape {tuple(shape)} and, with a crop, be another "
                         f"tensor than x, got {tuple(out.shape)}.")
    chunk = chunk or default_chunk(x.device)
    idx, groups, counts = _jitter_groups(params.jitter, params.order)
    p = params.to(x.device).rows(idx.to(x.device))  # sorted by group: chunks are slices
    idx, start = idx.to(x.device), 0
    for code, count in zip(groups, counts, strict=True):
        for begin in range(start, start + count, chunk):
            end = min(begin + chunk, start + count)
            q, part = p.rows(slice(begin, end)), idx[begin:end]
            v = x.index_select(0, part)  # a copy: every image is read before it is written
            if side:
                v = resized_crop(v, q.crop, side)
            out.index_copy_(0, part, augment_after_crop(v, q, config, code))
        start += count
    return out


def augment(x: torch.Tensor, config: ViewConfig = BYOL_VIEW_1,
            generator: torch.Generator | None = None, inplace: bool = False) -> torch.Tensor:
    """One random view of every image, with independent parameters per image.

    x: (..., 3, H, W) float in [0, 1], e.g. patches (B, n, 3, s, s). Returns the same
    leading shape, with (3, S, S) images when ``config.crop_size = S``. Deterministic
    given a seeded ``generator``, on any device (the draws happen on the generator's).
    ``inplace=True`` overwrites a contiguous ``x`` (without a crop) instead of
    allocating the result: on a CPU, touching fresh memory is a good part of the cost.
    """
    _check_batch(x)
    if inplace and (config.crop_size is not None or not x.is_contiguous()):
        raise ValueError("inplace=True needs a contiguous x and a config without crop_size: "
                         "call x.contiguous() first, or leave inplace=False.")
    lead, (height, width) = x.shape[:-3], x.shape[-2:]
    flat = x.reshape(-1, 3, height, width)
    params = sample_params(flat.shape[0], config, height, width, generator)
    out = apply_params(flat, params, config, out=flat if inplace else None)
    return out.view(*lead, *out.shape[1:])


def byol_views(x: torch.Tensor, generator: torch.Generator | None = None,
               crop_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """BYOL's two asymmetric views of every image (random resized crop if ``crop_size``)."""
    first, second = (BYOL_VIEW_1, BYOL_VIEW_2) if crop_size is None else byol_crop_views(crop_size)
    return augment(x, first, generator), augment(x, second, generator)
