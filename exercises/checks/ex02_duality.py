"""Checks for chapter 2: compare with direct computation, sympy and the rank argument."""

import sympy as sp
import torch

from exercises.checktools import (
    ARITHMETIC_ONLY,
    DEFAULT_IMPORTS,
    NO_LIBRARY,
    close_number,
    exercise,
    forbid_names,
    unchanged_call,
)

NO_SAMPLE_GRAM = forbid_names(
    "cdist", "outer", why="the point is never to build an N x N matrix: work from Z^T Z")

ALLOWED_IMPORTS = (*DEFAULT_IMPORTS, "sympy")


@exercise(points=1, forbid=[NO_LIBRARY, NO_SAMPLE_GRAM])
def check_contrastive_penalty_from_features(answers) -> None:
    g = torch.Generator().manual_seed(0)
    for n_rows, dim in ((5, 12), (40, 6), (7, 7)):
        z = torch.randn(n_rows, dim, generator=g, dtype=torch.float64)
        expected = (z @ z.T - torch.eye(n_rows, dtype=z.dtype)).pow(2).sum()
        answer = unchanged_call(answers.contrastive_penalty_from_features, z,
                                what="contrastive_penalty_from_features")
        assert isinstance(answer, torch.Tensor) and answer.numel() == 1, (
            f"contrastive_penalty_from_features should return a scalar tensor, got {answer!r}")
        gram = z.T @ z
        close_number(answer, expected.item(), f"contrastive_penalty_from_features on a "
                     f"({n_rows}, {dim}) batch", rel=1e-9, mistakes={
                         "add N, the trace of I_N": (expected - n_rows).item(),
                         "the cross term is -2 tr(Z^T Z), not -tr(Z^T Z)":
                             (gram.pow(2).sum() - gram.trace() + n_rows).item(),
                         "that is ||Z^T Z - I_d||^2 (feature side); the sample side adds N - d":
                             (gram - torch.eye(dim, dtype=z.dtype)).pow(2).sum().item()})
    big = torch.randn(400_000, 2, generator=g, dtype=torch.float64)  # N x N: over 1 TB
    try:
        answer = answers.contrastive_penalty_from_features(big)
    except RuntimeError as error:
        if "allocate" in str(error) or "memory" in str(error):
            raise AssertionError("contrastive_penalty_from_features ran out of memory for "
                                 "N = 400,000 rows: it built an N x N matrix; use Z^T Z "
                                 "only") from None
        raise
    gram = big.T @ big
    close_number(answer, (gram.pow(2).sum() - 2 * gram.trace() + big.shape[0]).item(),
                 "contrastive_penalty_from_features for N = 400,000", rel=1e-9)


@exercise(points=1, forbid=[NO_LIBRARY])
def check_trace_constant(answers) -> None:
    N, d, t = sp.symbols("N d t", positive=True)
    answer = answers.trace_constant(N, d, t)
    assert isinstance(answer, sp.Expr), (
        f"trace_constant should return a sympy expression, got {type(answer)}")
    expected = d - N**2 / d + 2 * t * (N / d - 1)
    if sp.simplify(answer - expected) != 0 and sp.simplify(answer - expected.subs(t, N)) == 0:
        raise AssertionError("you set t = N; keep the trace t as a symbol")
    assert sp.simplify(answer - expected) == 0, (
        f"got {sp.simplify(answer)}; expand tr((G - cI)^2) = tr(G^2) - 2c t + c^2 d for c = 1 "
        "and c = N/d")
    assert sp.simplify(answer.subs(t, N) - (N - d) ** 2 / d) == 0


@exercise(points=1, forbid=[NO_LIBRARY])
def check_min_feature_penalty(answers) -> None:
    for n_rows, dim in ((3, 8), (8, 8), (1, 5), (12, 4), (10, 3)):
        answer = float(answers.min_feature_penalty(n_rows, dim))
        expected = dim - n_rows if n_rows <= dim else (n_rows - dim) ** 2 / dim
        hint = ("rank(Z^T Z) <= N, so d - N eigenvalues are 0" if n_rows < dim else
                "all d eigenvalues equal to N/d minimise the sum at fixed trace N")
        assert abs(answer - expected) < 1e-9, (
            f"for N={n_rows}, d={dim} you return {answer:.6g}, expected {expected:.6g}: {hint}")


@exercise(points=2, forbid=[ARITHMETIC_ONLY])
def check_expected_contrastive_penalty(answers) -> None:
    for n_rows, dim in ((2, 3), (10, 5), (64, 32), (100, 2048), (7, 1)):
        close_number(answers.expected_contrastive_penalty(n_rows, dim),
                     n_rows * (n_rows - 1) / dim,
                     f"expected_contrastive_penalty(N={n_rows}, d={dim})", mistakes={
                         "unit rows make the diagonal of Z Z^T exactly 1, so the N diagonal "
                         "terms of Z Z^T - I_N are 0": n_rows**2 / dim,
                         "the Frobenius norm counts both (i, j) and (j, i)":
                             n_rows * (n_rows - 1) / (2 * dim),
                         "E[(z_i^T z_j)^2] = 1/d, not 1/d^2": n_rows * (n_rows - 1) / dim**2,
                     } if dim > 1 else None)
