"""Checks for the chapter 0 warm-up; each compares with a slow, obvious loop."""

import torch

from exercises.checktools import NO_LIBRARY, NO_LOOPS, exercise


def _close(actual, expected, what: str, atol: float = 1e-6) -> None:
    assert isinstance(actual, torch.Tensor), (
        f"{what} should return a tensor, got {type(actual).__name__}")
    assert actual.shape == expected.shape, (
        f"{what} returned shape {tuple(actual.shape)}, expected {tuple(expected.shape)}")
    assert not torch.isnan(actual).any(), f"{what} returned NaN values"
    worst = (actual - expected).abs().max().item() if actual.numel() else 0.0
    assert worst <= atol, f"{what} is off by up to {worst:.3g} from the expected values"


@exercise(points=1, forbid=[NO_LIBRARY, NO_LOOPS])
def check_cosine_similarity_matrix(answers) -> None:
    g = torch.Generator().manual_seed(0)
    z = torch.randn(7, 5, generator=g, dtype=torch.float64)
    expected = torch.empty(7, 7, dtype=torch.float64)
    for i in range(7):
        for j in range(7):
            expected[i, j] = z[i] @ z[j] / (z[i].norm() * z[j].norm())
    _close(answers.cosine_similarity_matrix(z), expected, "cosine_similarity_matrix(z)")
    z[3] = 0.0
    expected[3, :] = 0.0
    expected[:, 3] = 0.0
    _close(answers.cosine_similarity_matrix(z), expected,
           "cosine_similarity_matrix with an all-zero row (clamp the norm with eps)")


@exercise(points=1, forbid=[NO_LIBRARY, NO_LOOPS])
def check_off_diagonal(answers) -> None:
    for k in (1, 2, 5):
        m = torch.arange(k * k, dtype=torch.float32).view(k, k)
        expected = torch.tensor([m[i, j].item() for i in range(k) for j in range(k) if i != j])
        _close(answers.off_diagonal(m), expected, f"off_diagonal of a {k}x{k} matrix")
