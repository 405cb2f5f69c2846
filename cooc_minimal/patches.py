"""Fixed-scale patches of a batch of images: random ones for training, a grid for evaluation.

BagSSL trains on many small crops of one fixed size per image and represents an
image by the mean embedding of such crops. Both samplers here work on a whole
batch at once, by indexing, with no Python loop over patches, so they run as fast
on a GPU as the images already there.

Boxes follow torchvision's ``(x0, y0, x1, y1)`` convention in pixels, with the end
excluded: the patch of box ``b`` of image ``i`` is ``images[i, :, y0:y1, x0:x1]``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cooc_minimal.runtime import positive_int


def _check_images(images: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor):
        hint = (" convert it with torch.from_numpy(array).permute(0, 3, 1, 2) for (B, H, W, C) "
                "data, or torch.from_numpy(array) if it is already (B, C, H, W)"
                if type(images).__module__ == "numpy" else "")
        raise ValueError(f"images must be a torch.Tensor (B, C, H, W), got a "
                         f"{type(images).__name__}:{hint or ' pass a tensor'}.")
    if images.dim() != 4:
        raise ValueError(f"images must be a 4-D tensor (B, C, H, W), got {tuple(images.shape)}: "
                         f"add a batch dimension with images.unsqueeze(0) for a single image.")
    if images.shape[1] not in (1, 3, 4) and images.shape[-1] in (1, 3, 4):
        raise ValueError(f"images of shape {tuple(images.shape)} look channels-last "
                         f"(B, H, W, C): pass images.permute(0, 3, 1, 2), which is (B, C, H, W).")
    if images.shape[0] == 0:
        raise ValueError(f"images is an empty batch (shape {tuple(images.shape)}): pass at "
                         f"least one image.")


def _check_fits(size: int, images: torch.Tensor) -> None:
    _check_fits_side(size, *images.shape[-2:])


def _check_fits_side(size: int, height: int, width: int) -> None:
    if size > min(height, width):
        raise ValueError(f"size={size} is larger than the images ({height}x{width}): choose a "
                         f"patch size of at most {min(height, width)}.")


def crop_boxes(images: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Cut the square ``size`` x ``size`` patches at ``boxes`` out of each image, by indexing.

    images: (B, C, H, W); boxes: (B, n, 4) integer ``(x0, y0, x1, y1)`` with
    ``x1 - x0 = y1 - y0 = size``. Returns patches: (B, n, C, size, size), contiguous.
    """
    batch = images.shape[0]
    # Every window as a view (B, C, H - s + 1, W - s + 1, s, s), no copy; then one
    # advanced-indexing read by top-left corner copies the B * n chosen windows.
    windows = images.unfold(2, size, 1).unfold(3, size, 1)
    image_index = torch.arange(batch, device=images.device).view(batch, 1)
    return windows[image_index, :, boxes[..., 1], boxes[..., 0]].contiguous()


def random_patches(images: torch.Tensor, size: int, n: int, out_size: int | None = None,
                   generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` square patches of side ``size`` per image, at uniformly random positions.

    images: (B, C, H, W). Returns patches: (B, n, C, s, s) with ``s = out_size or size``,
    and boxes: (B, n, 4) int64 ``(x0, y0, x1, y1)`` on the images' device. Each top-left
    corner is uniform over the ``(H - size + 1) x (W - size + 1)`` positions, drawn
    independently per patch (patches of one image may overlap, as in EMP-SSL).

    ``out_size`` resizes every patch bilinearly with antialiasing, as torchvision's
    ``Resize`` does (EMP-SSL turns 16x16 crops of CIFAR into 32x32); the antialiased
    kernel gives the same pixels when enlarging, and is the faster one on CPUs.
    The positions are drawn on the generator's device (the CPU without one) and moved,
    so a seeded CPU generator gives the same boxes on every device.
    """
    _check_images(images)
    positive_int("size", size)
    positive_int("n", n)
    _check_fits(size, images)
    if out_size is not None:
        positive_int("out_size", out_size)
        if not images.is_floating_point():
            raise ValueError(f"images must be floating point to be resized to out_size, got "
                             f"{images.dtype}: convert them with images.float() / 255.")
    boxes = random_boxes(images.shape[0], *images.shape[-2:], size, n,
                         generator=generator).to(images.device)
    patches = crop_boxes(images, boxes, size)
    if out_size is not None and out_size != size:
        flat = patches.flatten(0, 1)
        flat = F.interpolate(flat, size=(out_size, out_size), mode="bilinear",
                             align_corners=False, antialias=True)
        patches = flat.view(images.shape[0], n, *flat.shape[1:])
    return patches, boxes


def _random_corner_boxes(batch: int, height: int, width: int, size: int, n: int, *,
                         generator: torch.Generator | None, step: int) -> torch.Tensor:
    """(batch, n, 4) boxes of side ``size`` whose corners are uniform over the positions
    0, step, 2 step, ... that fit: every pixel with step 1, the tile grid with step size."""
    for name, value in (("batch", batch), ("height", height), ("width", width)):
        positive_int(name, value)
    positive_int("size", size)
    positive_int("n", n)
    _check_fits_side(size, height, width)
    draw_on = generator.device if generator is not None else torch.device("cpu")
    # Uniform integers without a per-row bound: floor(u * count) is uniform on 0..count-1.
    u = torch.rand(batch, n, 2, generator=generator, device=draw_on, dtype=torch.float64)
    counts = torch.tensor([(width - size) // step + 1, (height - size) // step + 1],
                          device=draw_on)
    corners = (u * counts).floor().long().clamp_max(counts - 1) * step
    return torch.cat([corners, corners + size], dim=-1)


def random_boxes(batch: int, height: int, width: int, size: int, n: int,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """The boxes :func:`random_patches` draws: (batch, n, 4) int64 ``(x0, y0, x1, y1)``.

    Drawn on the generator's device (the CPU without one). The same generator state gives
    the same boxes as ``random_patches`` on a batch of ``batch`` images, so a training
    process can draw the boxes of the whole global batch and crop only its own rows.
    """
    return _random_corner_boxes(batch, height, width, size, n, generator=generator, step=1)


def random_grid_boxes(batch: int, height: int, width: int, size: int, n: int,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """Like :func:`random_boxes`, with corners on the grid of step ``size``: (batch, n, 4).

    Each of the n positions is uniform over the (H // size) x (W // size) grid, drawn
    independently (two may coincide: the same tile under two augmentations). On a toy
    world every such patch is one tile, one part: the discrete patches of Proposition 3.1.
    """
    return _random_corner_boxes(batch, height, width, size, n, generator=generator, step=size)


def distinct_grid_boxes(batch: int, height: int, width: int, size: int, n: int,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """Like :func:`random_grid_boxes`, with the n positions of an image all different:
    (batch, n, 4), uniform without replacement over the (H // size) x (W // size) grid.

    On a toy world each patch is then a different tile, so two patches of one image are
    never one tile under two augmentations: a pair that teaches the augmentations'
    invariances even where nothing co-occurs, rather than the co-occurrence of parts.
    """
    for name, value in (("batch", batch), ("size", size), ("n", n)):
        positive_int(name, value)
    _check_fits_side(size, height, width)
    columns, rows = width // size, height // size
    if n > rows * columns:
        raise ValueError(f"n={n} distinct grid positions asked of a {rows}x{columns} grid: "
                         f"ask for at most {rows * columns}.")
    draw_on = generator.device if generator is not None else torch.device("cpu")
    order = torch.rand(batch, rows * columns, generator=generator, device=draw_on).argsort(1)
    cells = order[:, :n]                                   # (batch, n) distinct cell indices
    corners = torch.stack([cells % columns, cells // columns], dim=-1) * size
    return torch.cat([corners, corners + size], dim=-1)


def mixed_boxes(batch: int, height: int, width: int, size: int, n: int, *, grid_share: float,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """round(grid_share * n) boxes of each image at distinct grid positions
    (:func:`distinct_grid_boxes`), the others anywhere (:func:`random_boxes`), in an order
    drawn per image so that the BYOL views (by patch index) fall on both kinds: (batch, n, 4).
    """
    on_grid = round(grid_share * n)
    parts = [draw(batch, height, width, size, count, generator=generator)
             for draw, count in ((distinct_grid_boxes, on_grid), (random_boxes, n - on_grid))
             if count]
    boxes = torch.cat(parts, dim=1)
    order = torch.rand(batch, n, generator=generator, device=boxes.device).argsort(1)
    return boxes.gather(1, order.unsqueeze(-1).expand(-1, -1, 4))


def grid_boxes(height: int, width: int, size: int, stride: int,
               device: torch.device | str | None = None) -> torch.Tensor:
    """Every grid position of a ``size`` patch moved by ``stride``, row by row.

    Returns boxes: (L, 4) int64 ``(x0, y0, x1, y1)`` with
    ``L = ((H - size) // stride + 1) * ((W - size) // stride + 1)``.
    """
    ys = torch.arange(0, height - size + 1, stride, device=device)
    xs = torch.arange(0, width - size + 1, stride, device=device)
    y0, x0 = torch.meshgrid(ys, xs, indexing="ij")
    corners = torch.stack([x0.flatten(), y0.flatten()], dim=-1)
    return torch.cat([corners, corners + size], dim=-1)


def grid_patches(images: torch.Tensor, size: int,
                 stride: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Every patch of side ``size`` on a grid with step ``stride`` (``size`` by default).

    images: (B, C, H, W). Returns patches: (B, L, C, size, size), ordered row by row
    (left to right, then top to bottom), and boxes: (B, L, 4) int64 ``(x0, y0, x1, y1)``,
    the same for every image, with ``L = ((H - size) // stride + 1) * ((W - size) // stride + 1)``.
    Rows or columns that a last step would leave over are not covered.
    """
    _check_images(images)
    positive_int("size", size)
    stride = size if stride is None else stride
    positive_int("stride", stride)
    _check_fits(size, images)
    batch, channels = images.shape[:2]
    # unfold gives views (B, C, rows, cols, s, s) without copying; reshape copies once.
    tiles = images.unfold(2, size, stride).unfold(3, size, stride)
    patches = tiles.permute(0, 2, 3, 1, 4, 5).reshape(batch, -1, channels, size, size)
    boxes = grid_boxes(images.shape[-2], images.shape[-1], size, stride, images.device)
    return patches, boxes.expand(batch, -1, -1)
