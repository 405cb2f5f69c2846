"""Reference answers for chapter 8 (see exercises/ex08_aggregation.py for the tasks)."""

import torch


def map_side(side: int, layers: list[tuple[int, int, int]]) -> int:
    """Worked answer to the prediction. A ResNet-18 with the ImageNet stem on 224x224:
    224 -> 112 (7x7 convolution, stride 2, padding 3) -> 56 (3x3 max-pool, stride 2,
    padding 1) -> 28 -> 14 -> 7 (the three stride-2 3x3 convolutions, padding 1): a
    7x7 map, 224 / 32.
    """
    for kernel, stride, padding in layers:
        # Padding adds `padding` pixels on each side; the window fits at
        # (side + 2 padding - kernel) // stride + 1 positions.
        side = (side + 2 * padding - kernel) // stride + 1
    return side


def local_aggregation(fmap: torch.Tensor, pool: int, stride: int) -> torch.Tensor:
    windows = fmap.unfold(2, pool, stride).unfold(3, pool, stride)  # (B, C, a, a', k, k)
    return windows.mean(dim=(-2, -1)).flatten(1)


def invisible_map() -> torch.Tensor:
    """Worked answer. Each local feature is a window sum divided by 9. The centre (2, 2)
    lies in all four 3x3 windows at stride 2, each corner in exactly one: +1 on the four
    corners and -1 at the centre makes every window sum 1 - 1 = 0, while the map sums to
    4 - 1 = 3 (global average 3/25). So the four regional averages do not determine the
    global one, and a linear probe on them cannot reproduce a probe on the global average.
    """
    F = torch.zeros(5, 5, dtype=torch.float64)
    F[0, 0] = F[0, 4] = F[4, 0] = F[4, 4] = 1.0
    F[2, 2] = -1.0
    return F


def recovers_global_average(side: int, pool: int, stride: int) -> bool:
    """Worked answer. The windows are products of intervals and the global average is the
    same on both axes, so the question is one of one axis: is the vector of ones a
    combination sum_u x_u 1[window u] of the windows' indicators (starts 0, s, 2s, ...)?
    Let S(i) be the sum of the x_u of the windows containing position i; we need S(i) = 1
    everywhere. From i - 1 to i, S gains the window that starts at i and loses the one
    that ends at i - 1 (at most one of each), so their weights are equal, and a window
    that starts or ends without a partner has weight 0. S(0) = x_0 = 1, and window 0 ends
    at pool - 1: unless pool == side, a window of weight 1 must start at pool, so pool
    must be a multiple of stride. Repeating the argument, the windows of weight 1 tile the
    axis end to end, so side must be a multiple of pool; conversely such a tiling, with
    weight 0 on the other windows, gives S = 1 everywhere. For appendix C.4's (5, 3, 2)
    the answer is no (as invisible_map shows); (4, 2, 1) and (8, 4, 2) say yes although
    their windows overlap.
    """
    return pool == side or (pool % stride == 0 and side % pool == 0)
