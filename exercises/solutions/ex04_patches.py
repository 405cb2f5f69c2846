"""Reference answers for chapter 4."""

import torch


def grid_patches(images: torch.Tensor, size: int, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    batch, channels, height, width = images.shape
    if size > min(height, width):
        raise ValueError(f"size={size} is larger than the images ({height}x{width}).")
    tiles = images.unfold(2, size, stride).unfold(3, size, stride)  # (B, C, rows, cols, s, s)
    patches = tiles.permute(0, 2, 3, 1, 4, 5).reshape(batch, -1, channels, size, size)
    ys = torch.arange(0, height - size + 1, stride)
    xs = torch.arange(0, width - size + 1, stride)
    y0, x0 = torch.meshgrid(ys, xs, indexing="ij")
    corners = torch.stack([x0.flatten(), y0.flatten()], dim=1)
    boxes = torch.cat([corners, corners + size], dim=1)
    return patches, boxes.expand(batch, -1, -1)


def _luma(x: torch.Tensor) -> torch.Tensor:
    return (0.2989 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)


def color_jitter(x: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    b, c, s = (factors[:, i].view(-1, 1, 1, 1) for i in range(3))
    x = (b * x).clamp(0, 1)
    mean = _luma(x).mean(dim=(1, 2, 3), keepdim=True)
    x = (c * x + (1 - c) * mean).clamp(0, 1)
    return (s * x + (1 - s) * _luma(x)).clamp(0, 1)


def overlap_probability(height: int, width: int, size: int) -> float:
    def along(side: int) -> float:
        # Corners x1, x2 uniform on 0..m-1; the patches overlap along this axis iff
        # |x1 - x2| < size. Pairs with |x1 - x2| = k >= size: 2 (m - k), summed over k.
        m = side - size + 1
        apart = (m - size) * (m - size + 1) if m > size else 0
        return 1 - apart / m**2

    # Worked answer. The product over the two independent axes. For 16x16 patches of a
    # 32x32 image m = 17 and only 2 of the 289 corner pairs per axis are 16 or more apart:
    # (287 / 289)^2 = 0.986. Nearly every pair of the paper's CIFAR patches overlaps, so
    # "co-occurring" patches there largely share pixels, not only an image.
    return along(height) * along(width)  # the two axes are independent
