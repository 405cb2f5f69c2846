"""Checks for chapter 2: compare with direct computation, sympy and the rank argument."""

import sympy as sp
import torch

from exercises.checktools import DEFAULT_IMPORTS, NO_LIBRARY, exercise

ALLOWED_IMPORTS = (*DEFAULT_IMPORTS, "sympy")


@exercise(points=1, forbid=[NO_LIBRARY])
def check_contrastive_penalty_from_features(answers) -> None:
    g = torch.Generator().manual_seed(0)
    for n_rows, dim in ((5, 12), (40, 6), (7, 7)):
        z = torch.randn(n_rows, dim, generator=g, dtype=torch.float64)
        expected = (z @ z.T - torch.eye(n_rows, dtype=z.dtype)).pow(2).sum()
        answer = answers.contrastive_penalty_from_features(z)
        assert isinstance(answer, torch.Tensor) and answer.numel() == 1, (
            f"contrastive_penalty_from_features should return a scalar tensor, got {answer!r}")
        assert abs(answer.item() - expected.item()) <= 1e-9 * expected.item(), (
            f"for a ({n_rows}, {dim}) batch you return {answer.item():.6g}, expected "
            f"{expected.item():.6g}; did you forget the + N from tr(I_N)?")


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
