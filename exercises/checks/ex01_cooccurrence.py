"""Checks for chapter 1: each compares with sympy or with the eigenvalue formula."""

import sympy as sp
import torch

from cooc_minimal.cooccurrence import normalized_cooccurrence, prop31_objective
from exercises.checktools import DEFAULT_IMPORTS, NO_LIBRARY, exercise

ALLOWED_IMPORTS = (*DEFAULT_IMPORTS, "sympy")


@exercise(points=1, forbid=[NO_LIBRARY])
def check_integrand_without_constant(answers) -> None:
    w, r = sp.symbols("w r", positive=True)
    s = sp.Symbol("s", real=True)
    answer = answers.integrand_without_constant(w, s, r)
    assert isinstance(answer, sp.Expr), (
        f"integrand_without_constant should return a sympy expression, got {type(answer)}")
    gap = sp.expand(answer - (w**2 * s**2 - 2 * w * r * s))
    assert gap != r**2, "you kept r**2: it does not depend on s, so eq. (4) drops it"
    assert gap == 0, (
        f"the expansion is off by {gap}; expand (w*s - r)**2 and remove only the s-free term")


@exercise(points=1, forbid=[NO_LIBRARY])
def check_spectral_lambda(answers) -> None:
    w = sp.Symbol("w", positive=True)
    answer = answers.spectral_lambda(w)
    assert isinstance(answer, sp.Expr), (
        f"spectral_lambda should return a sympy expression, got {type(answer)}")
    assert sp.simplify(answer - w) != 0, (
        "lambda = w is the s**2 coefficient before dividing by the factor c = 2w")
    assert sp.simplify(answer - w / 2) == 0, (
        f"got lambda = {answer}; match the s and s**2 coefficients of eq. (5) - c * eq. (6)")
    assert sp.simplify(answers.spectral_lambda(sp.Integer(2)) - 1) == 0, (
        "with w = 2 the paper's lambda is 1")


def _joint(vocab: int, seed: int, zero_diagonal: bool) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(vocab, vocab, generator=g, dtype=torch.float64) ** 2
    a = a + a.T
    if zero_diagonal:  # gives M negative eigenvalues
        a.fill_diagonal_(0)
    return a / a.sum()


@exercise(points=2, forbid=[NO_LIBRARY])
def check_closed_form_embedding(answers) -> None:
    for seed, zero_diagonal in ((0, False), (1, True)):
        P = _joint(6, seed, zero_diagonal)
        eigenvalues = torch.linalg.eigvalsh(normalized_cooccurrence(P)[0]).flip(0)
        for d in (1, 3, 6):
            for w in (2.0, 0.5):
                Z = answers.closed_form_embedding(P, d, w)
                where = f"(d={d}, w={w}, P {'with' if zero_diagonal else 'without'} zero diagonal)"
                assert isinstance(Z, torch.Tensor) and Z.shape == (6, d), (
                    f"closed_form_embedding should return a (6, {d}) tensor {where}, got "
                    f"{getattr(Z, 'shape', type(Z))}")
                assert not torch.isnan(Z).any(), (
                    f"NaN in Z {where}: clamp negative eigenvalues to 0 before the square root")
                best = (eigenvalues.pow(2).sum() - eigenvalues[:d].clamp_min(0).pow(2).sum())
                value = prop31_objective(Z, P, w=w)
                assert abs(value - best) <= 1e-8 * max(1.0, best.item()), (
                    f"objective {value.item():.6g} but the minimum is {best.item():.6g} {where}; "
                    "keep the d largest eigenpairs of M, scale by sqrt(mu / w), multiply by "
                    "D^-1/2")
        positive = int((eigenvalues > 1e-12).sum())
        Z = answers.closed_form_embedding(P, 6, 2.0)
        assert Z[:, positive:].abs().max() < 1e-10, (
            f"with {positive} positive eigenvalues, columns {positive}.. of Z should be zero")
