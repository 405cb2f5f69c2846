"""Checks for chapter 1: each compares with sympy or with the eigenvalue formula."""

import sympy as sp
import torch

from exercises.checktools import (
    ARITHMETIC_ONLY,
    DEFAULT_IMPORTS,
    NO_LIBRARY,
    close_number,
    exercise,
    unchanged_call,
)

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


def normalized_cooccurrence(P: torch.Tensor) -> torch.Tensor:
    """M = D^-1/2 P D^-1/2 with D = diag(P.sum(1))."""
    inv_sqrt = P.sum(1).rsqrt()
    return inv_sqrt[:, None] * P * inv_sqrt[None, :]


def prop31_objective(Z: torch.Tensor, P: torch.Tensor, w: float) -> torch.Tensor:
    """sum_ij p_i p_j (w z_i^T z_j - P_ij / (p_i p_j))^2, written out."""
    p = P.sum(1)
    weights = p[:, None] * p[None, :]
    return (weights * (w * Z @ Z.T - P / weights) ** 2).sum()


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
        eigenvalues = torch.linalg.eigvalsh(normalized_cooccurrence(P)).flip(0)
        for d in (1, 3, 6):
            for w in (2.0, 0.5):
                Z = unchanged_call(answers.closed_form_embedding, P, d, w,
                                   what="closed_form_embedding")
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


@exercise(points=2, forbid=[ARITHMETIC_ONLY])
def check_within_class_similarity(answers) -> None:
    for w, K, V in ((2.0, 2, 4), (2.0, 5, 10), (0.5, 3, 12), (1.0, 4, 400), (3.0, 1, 7)):
        close_number(answers.within_class_similarity(w, K, V), K / w,
                     f"within_class_similarity(w={w}, K={K}, V={V})", mistakes={
                         "the optimum fits w z_i^T z_j to P_ij / (p_i p_j), so divide by w":
                             float(K),
                         "within a class P_ij = K / V^2 and p_i = 1 / V: the ratio "
                         "P_ij / (p_i p_j) is K, not 1": 1 / w,
                         "p_i = 1 / V, so V cancels out of P_ij / (p_i p_j)": K / (w * V),
                         "P_ij = K / V^2 within a class (K blocks of (V/K)^2 entries sum to "
                         "1)": V / (w * K),
                     })
