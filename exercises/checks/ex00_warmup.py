"""Checks for the chapter 0 warm-up; each compares with a slow, obvious loop."""

import torch

from exercises.checktools import (
    ARITHMETIC_ONLY,
    NO_LIBRARY,
    NO_LOOPS,
    close,
    close_number,
    exercise,
    unchanged_call,
)


def _rows_of_different_norms() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    z = torch.randn(7, 5, generator=g, dtype=torch.float64)
    return z * torch.tensor([0.1, 1.0, 3.0, 10.0, 0.5, 2.0, 7.0], dtype=torch.float64)[:, None]


def _cosines(z: torch.Tensor, normalise) -> torch.Tensor:
    n = z.shape[0]
    out = torch.zeros(n, n, dtype=z.dtype)
    for i in range(n):
        for j in range(n):
            out[i, j] = z[i] @ z[j] / (normalise(z, i) * normalise(z, j))
    return out


@exercise(points=1, forbid=[NO_LIBRARY, NO_LOOPS])
def check_cosine_similarity_matrix(answers) -> None:
    z = _rows_of_different_norms()
    what = "cosine_similarity_matrix(z)"
    got = unchanged_call(answers.cosine_similarity_matrix, z, what=what)
    expected = _cosines(z, lambda z, i: z[i].norm())
    close(got, expected, what, mistakes={
        "divide each row by its norm first (you returned the plain inner products z @ z.T)":
            z @ z.T,
        "normalise the rows (dim=1): you divided each column by its norm":
            (z / z.norm(dim=0)) @ (z / z.norm(dim=0)).T,
        "divide by the norm ||z_i||, not by the standard deviation of the row":
            _cosines(z, lambda z, i: z[i].std()),
        "divide by the norm ||z_i||, not by its square": _cosines(z, lambda z, i: z[i] @ z[i]),
    })
    z[3] = 0.0
    expected[3, :] = 0.0
    expected[:, 3] = 0.0
    got = unchanged_call(answers.cosine_similarity_matrix, z, what=what)
    close(got, expected, "cosine_similarity_matrix with an all-zero row (clamp each norm below "
          "by eps, before dividing)")


@exercise(points=1, forbid=[NO_LIBRARY, NO_LOOPS])
def check_off_diagonal(answers) -> None:
    g = torch.Generator().manual_seed(1)
    for k in (1, 2, 5):
        m = torch.randn(k, k, generator=g).round()  # zeros off the diagonal, some negative
        m[torch.arange(k), torch.arange(k)] = torch.arange(k, dtype=m.dtype) - 1.0  # one 0 too
        if k == 5:
            m[0, 1] = m[3, 2] = 0.0
        expected = torch.tensor([m[i, j].item() for i in range(k) for j in range(k) if i != j])
        what = f"off_diagonal of a {k}x{k} matrix"
        got = unchanged_call(answers.off_diagonal, m, what=what)
        close(got, expected, what, atol=0, rtol=0, mistakes={
            "keep the zeros that sit off the diagonal: select by position (row != column), "
            "not by value": expected[expected != 0],
            "go row by row (row-major), not column by column": torch.tensor(
                [m[i, j].item() for j in range(k) for i in range(k) if i != j]),
        })
    t = torch.arange(9.0).view(3, 3).T  # not contiguous
    close(answers.off_diagonal(t), torch.tensor([3.0, 6.0, 1.0, 7.0, 2.0, 5.0]),
          "off_diagonal of a transposed (non-contiguous) 3x3 matrix", atol=0, rtol=0)


@exercise(points=1, forbid=[ARITHMETIC_ONLY])
def check_mean_squared_cosine(answers) -> None:
    for d in (2, 3, 10, 128, 1000, 1):
        close_number(answers.mean_squared_cosine(d), 1 / d, f"mean_squared_cosine({d})",
                     mistakes={
                         "that is the mean cosine; its square has a positive mean": 0.0,
                         "1/sqrt(d) is the typical size of |cos|; its square is what is asked":
                             d ** -0.5,
                         "the d squared coordinates of a unit vector sum to 1, so each has "
                         "mean 1/d, not 1/d^2": d ** -2.0,
                     } if d > 1 else None)
