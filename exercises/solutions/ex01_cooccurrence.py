"""Reference answers for chapter 1."""

import sympy as sp
import torch


def integrand_without_constant(w: sp.Symbol, s: sp.Symbol, r: sp.Symbol) -> sp.Expr:
    # Worked answer. (w s - r)^2 = w^2 s^2 - 2 w r s + r^2. The paper drops p1 p2 r^2: it
    # does not depend on the embedding, so eq. (3) and eq. (4) differ by a constant and
    # have the same minimisers, which is what their "=" means.
    expanded = sp.expand((w * s - r) ** 2)
    return sp.expand(expanded - expanded.coeff(s, 0))


def spectral_lambda(w: sp.Expr) -> sp.Expr:
    # Worked answer. Matching the coefficient of s gives -2 w = -c, so c = 2 w; matching
    # s^2 gives w^2 = c lambda, so lambda = w / 2 (lambda = 1 for the spectral loss's w = 2).
    s, r, p1, p2, c, lam = sp.symbols("s r p1 p2 c lam", positive=True)
    eq5 = p1 * p2 * w**2 * s**2 - 2 * w * r * p1 * p2 * s
    eq6 = -r * p1 * p2 * s + lam * p1 * p2 * s**2
    (solution,) = sp.solve(sp.Poly(sp.expand(eq5 - c * eq6), s).coeffs(), [c, lam], dict=True)
    return solution[lam]


def closed_form_embedding(P: torch.Tensor, d: int, w: float = 2.0) -> torch.Tensor:
    inv_sqrt_p = P.sum(1).rsqrt()
    M = inv_sqrt_p[:, None] * P * inv_sqrt_p[None, :]
    eigenvalues, eigenvectors = torch.linalg.eigh(M)
    top, vectors = eigenvalues.flip(0)[:d], eigenvectors.flip(1)[:, :d]
    tolerance = 1e-12 * eigenvalues.abs().max()
    kept = torch.where(top > tolerance, top, torch.zeros_like(top))
    return inv_sqrt_p[:, None] * vectors * (kept / w).sqrt()[None, :]


def within_class_similarity(w: float, K: int, V: int) -> float:
    # Worked answer. P_ij = (1 / K) (K / V)^2 = K / V^2 within a class, p_i = 1 / V, so
    # P_ij / (p_i p_j) = K; the ratio matrix has rank K <= d, so the optimum fits it exactly:
    # w z_i^T z_j = K. V cancels. Across classes P_ij = 0, so z_i^T z_j = 0: each class gets
    # its own orthogonal direction, of squared length K / w for every type in it.
    return K / w
