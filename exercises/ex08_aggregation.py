"""Chapter 8: feature-map sizes, local aggregation by hand, and what regional averages lose.

Edit the functions below, then run ``make check-exercises CHAPTER=08``. The tasks, with
hints, are on the book page "Exercises 8". Leave the inputs unchanged, and do not import
``cooc_minimal``.
"""

import torch


def map_side(side: int, layers: list[tuple[int, int, int]]) -> int:
    """The side of a square input after a stack of convolution or pooling layers.

    side: the input's height (= width) in pixels; layers: ``(kernel, stride, padding)``
    of each layer, in order, square and symmetric. Return the output's side, an int.
    Arithmetic only.
    """
    raise NotImplementedError


def local_aggregation(fmap: torch.Tensor, pool: int, stride: int) -> torch.Tensor:
    """Appendix C.4's features of a feature map: window averages, flattened channel-major.

    fmap: (B, C, h, w). Average every ``pool`` x ``pool`` window whose top-left corner is
    (u * stride, v * stride), no padding: (B, C, a, a') with a = (h - pool) // stride + 1
    and a' = (w - pool) // stride + 1. Return it flattened to (B, C * a * a'), channel by
    channel (the order of ``.flatten(1)``). Without a pooling function and without a
    Python loop.
    """
    raise NotImplementedError


def invisible_map() -> torch.Tensor:
    """A 5 x 5 feature map (one channel) that local aggregation does not see at all.

    Return a (5, 5) float64 tensor F whose local-aggregation features with window 3 and
    stride 2 are all zero, while its global average is not zero.
    """
    raise NotImplementedError


def recovers_global_average(side: int, pool: int, stride: int) -> bool:
    """Your prediction: can a linear function of the local features give the global average?

    For a side x side feature map, the local features of window ``pool`` and ``stride``
    (no padding, 1 <= pool <= side): is there a fixed linear map from them to the global
    average, the same for every map? Return True or False, with arithmetic only.
    """
    raise NotImplementedError
