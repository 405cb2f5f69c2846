"""Checks for chapter 8: map sides against real layers run on a blank image, the local
features and the invisible map against ``local_aggregation.local_aggregation_features``, and
the prediction against the rank of the windows' indicator matrix."""

import torch
import torch.nn.functional as F
from torch import nn

from cooc_minimal.local_aggregation import feature_map_size, local_aggregation_features
from cooc_minimal.models import build_model
from exercises.checktools import (
    ARITHMETIC_ONLY,
    NO_LIBRARY,
    NO_LOOPS,
    close,
    close_number,
    exercise,
    expect_tensor,
    forbid_names,
    unchanged_call,
)

NO_POOLING = forbid_names(
    "avg_pool2d", "AvgPool2d", "adaptive_avg_pool2d", "AdaptiveAvgPool2d", "avg_pool1d",
    "avg_pool3d", why="build the windows yourself with Tensor.unfold (the library calls "
    "F.avg_pool2d, which you may compare with afterwards)")


def _layers(backbone: nn.Module) -> list[tuple[int, int, int]]:
    """(kernel, stride, padding) of every convolution and max-pool on the main path."""
    found = []
    for name, module in backbone.named_modules():
        if isinstance(module, nn.Conv2d | nn.MaxPool2d) and "downsample" not in name:
            kernel, stride, padding = (module.kernel_size, module.stride, module.padding)
            found.append(tuple(v[0] if isinstance(v, tuple) else v
                               for v in (kernel, stride, padding)))
    return found


def _run(side: int, layers) -> int:
    """The side measured by running each layer, as a convolution, on a blank image."""
    x = torch.zeros(1, 1, side, side)
    for kernel, stride, padding in layers:
        x = F.conv2d(x, torch.zeros(1, 1, kernel, kernel), stride=stride, padding=padding)
    return x.shape[-1]


def _walk(side: int, layers, step) -> int:
    for kernel, stride, padding in layers:
        side = step(side, kernel, stride, padding)
    return side


SIDE_SLIPS = {
    "a window fits at floor((n + 2p - k) / s) + 1 positions: round down, not up":
        lambda n, k, s, p: -(-(n + 2 * p - k) // s) + 1,
    "padding p adds p pixels on each side, 2p in all": lambda n, k, s, p: (n + p - k) // s + 1,
    "count the first position too: floor((n + 2p - k) / s) + 1":
        lambda n, k, s, p: (n + 2 * p - k) // s,
    "the kernel matters too, not only the stride: n' = floor((n + 2p - k) / s) + 1":
        lambda n, k, s, p: n // s,
}


def _model_cases() -> list[tuple[str, int, list, int]]:
    """Layers read off real backbones, and the side of the map they produce."""
    cases = []
    tiny = build_model("tiny", "").backbone
    cifar = build_model("resnet18", "", cifar_stem=True).backbone
    imagenet = build_model("resnet18", "", cifar_stem=False).backbone
    for name, net, sides in (("the tiny CNN", tiny, (32, 40)),
                             ("ResNet-18, CIFAR stem", cifar, (32, 40)),
                             ("ResNet-18, ImageNet stem", imagenet, (224, 97))):
        for side in sides:
            cases.append((f"{name}'s layers", side, _layers(net),
                          feature_map_size(net, side)[-1]))
    solo = _layers(cifar)
    solo[0] = (3, 1, 2)  # solo-learn's CIFAR stem
    cases.append(("solo-learn's ResNet-18 layers", 32, solo, _run(32, solo)))
    pooled = _layers(cifar) + [(3, 2, 0)]
    cases.append(("ResNet-18 (CIFAR stem), then 3x3 windows at stride 2", 40, pooled,
                  _run(40, pooled)))
    return cases


def _side_of(answers, side: int, layers: list, what: str) -> int:
    got = answers.map_side(side, list(layers))
    assert isinstance(got, int) and not isinstance(got, bool), (
        f"map_side({side}, {what}) should return an int, got {type(got).__name__}: "
        "floor with //")
    return got


@exercise(points=1, forbid=[ARITHMETIC_ONLY])
def check_map_side(answers) -> None:
    cases = [(f"layers {layers}", side, layers, _run(side, layers))
             for layers, side in (([(2, 2, 0)], 7), ([(7, 2, 3), (3, 2, 1)], 33),
                                  ([(3, 2, 1)] * 3, 33), ([(5, 3, 0)], 8),
                                  ([(1, 1, 0), (4, 3, 2)], 10))]
    answered = [_side_of(answers, side, layers, what) for what, side, layers, _ in cases]
    models = _model_cases()  # built after the first answers: a stub fails at once
    answered += [_side_of(answers, side, layers, what) for what, side, layers, _ in models]
    cases += models
    # A slip is named when it gives every answer the student gave (several agree on some).
    slips = {hint: step for hint, step in SIDE_SLIPS.items()
             if all(_walk(side, layers, step) == got
                    for (_, side, layers, _), got in zip(cases, answered, strict=True))}
    for (what, side, layers, expected), got in zip(cases, answered, strict=True):
        close_number(got, expected, f"map_side({side}, {what})", mistakes={
            hint: _walk(side, layers, step) for hint, step in slips.items()})


class _MapIsInput(nn.Module):
    """A 'backbone' whose feature map is its input, so that the library pools a given map."""

    def __init__(self) -> None:
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(1))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _library_features(fmap: torch.Tensor, pool: int, stride: int) -> torch.Tensor:
    return local_aggregation_features(_MapIsInput(), fmap, pool=pool, stride=stride,
                                      pad_to=None).double()


@exercise(points=2, forbid=[NO_LIBRARY, NO_LOOPS, NO_POOLING])
def check_local_aggregation(answers) -> None:
    g = torch.Generator().manual_seed(0)
    for batch, channels, h, w, pool, stride in ((2, 6, 5, 5, 3, 2), (3, 4, 8, 8, 5, 3),
                                                (2, 3, 10, 10, 3, 2), (1, 2, 6, 9, 2, 2),
                                                (2, 5, 7, 7, 3, 3), (2, 4, 4, 4, 4, 1)):
        fmap = torch.randn(batch, channels, h, w, generator=g, dtype=torch.float64)
        what = f"local_aggregation(a map of shape {(batch, channels, h, w)}, {pool}, {stride})"
        got = unchanged_call(answers.local_aggregation, fmap, pool, stride, what=what)
        expected = _library_features(fmap, pool, stride)
        a, b = (h - pool) // stride + 1, (w - pool) // stride + 1
        expect_tensor(got, what)
        assert a * b == 1 or tuple(got.shape) != (batch, channels), (
            f"{what} returned (B, C): keep each window's average as a feature of its own, "
            f"(B, C * a * a') = {(batch, channels * a * b)}, instead of averaging them together")
        assert got.dim() == 2, (
            f"{what} returned shape {tuple(got.shape)}: flatten the windows to (B, C * a * a') "
            f"= {(batch, channels * a * b)}")
        windows = expected.view(batch, channels, a, b)
        close(got, expected, what, atol=1e-5, rtol=1e-5, mistakes=[
            ("flatten channel by channel (the order of .flatten(1) on (B, C, a, a')), not "
             "position by position", windows.permute(0, 2, 3, 1).flatten(1)),
            ("average each window (divide by pool * pool), do not sum it",
             expected * pool * pool),
            ("window (u, v) starts at row u * stride and column v * stride: rows first",
             windows.transpose(-1, -2).flatten(1)),
        ])


@exercise(points=1, forbid=[NO_LIBRARY])
def check_invisible_map(answers) -> None:
    fmap = answers.invisible_map()
    expect_tensor(fmap, "invisible_map()", shape=(5, 5))
    fmap = fmap.detach().double()
    assert bool(fmap.isfinite().all()), "invisible_map() should be finite"
    largest = float(fmap.abs().max())
    assert largest > 0, "invisible_map() is all zeros: its global average is zero too"
    local = _library_features(fmap[None, None], 3, 2).view(2, 2)
    worst = int(local.abs().argmax())
    assert float(local.abs().max()) <= 1e-6 * largest, (
        f"the window of invisible_map() at row {worst // 2 * 2}, column {worst % 2 * 2} "
        f"averages to {float(local.flatten()[worst]):.4g}, not 0: every one of the four "
        "3x3 windows must sum to zero")
    assert abs(float(fmap.mean())) >= 1e-3 * largest, (
        "the global average of invisible_map() is 0 as well: the four windows do not cover "
        "the map evenly, so look for a map whose windows cancel but whose total does not")


def _window_rows(side: int, pool: int, stride: int) -> torch.Tensor:
    """(a, side): row u is the indicator of window u along one axis."""
    starts = torch.arange(0, side - pool + 1, stride)
    positions = torch.arange(side)
    return ((positions >= starts[:, None]) & (positions < starts[:, None] + pool)).double()


def _recovers(side: int, pool: int, stride: int) -> bool:
    """Is the vector of ones in the span of the windows' indicators (the rank test)?"""
    rows = _window_rows(side, pool, stride)
    with_ones = torch.cat([rows, torch.ones(1, side, dtype=torch.float64)])
    return int(torch.linalg.matrix_rank(with_ones)) == int(torch.linalg.matrix_rank(rows))


def _why(side: int, pool: int, stride: int, expected: bool) -> str:
    rows = _window_rows(side, pool, stride)
    missed = (rows.sum(dim=0) == 0).nonzero().flatten().tolist()
    if missed:
        return (f"position {missed[0]} along each axis lies in no window, so no combination "
                "of the local features can see it")
    if expected and stride < pool:
        return ("the windows overlap, yet some of them tile the map end to end: their sum "
                "is the whole map")
    if expected:
        return "these windows tile the map exactly: their sum is the whole map"
    return ("every position is in some window, but that is not enough: the windows' "
            "weights must give every position the same total, and here they cannot")


@exercise(points=2, forbid=[ARITHMETIC_ONLY])
def check_recovers_global_average(answers) -> None:
    for side, pool, stride in ((5, 3, 2), (4, 2, 2), (4, 2, 1), (5, 3, 1), (6, 3, 2),
                               (6, 4, 2), (8, 4, 2), (8, 5, 3), (5, 5, 1), (5, 1, 2),
                               (7, 3, 3), (9, 3, 3), (9, 3, 2), (6, 2, 1), (7, 1, 1),
                               (12, 4, 2), (10, 4, 2), (4, 3, 1)):
        got = answers.recovers_global_average(side, pool, stride)
        call = f"recovers_global_average({side}, {pool}, {stride})"
        assert isinstance(got, bool), f"{call} should return True or False, got {got!r}"
        expected = _recovers(side, pool, stride)
        assert got == expected, (
            f"{call} is {expected}, you say {got}: {_why(side, pool, stride, expected)}")
