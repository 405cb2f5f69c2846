"""Chapter 1: Proposition 3.1 by hand (with sympy) and its closed-form optimum.

Edit the functions below, then run ``make check-exercises CHAPTER=01``.
"""

import sympy as sp
import torch


def integrand_without_constant(w: sp.Symbol, s: sp.Symbol, r: sp.Symbol) -> sp.Expr:
    """Eq. (3)'s integrand divided by ``p(x1) p(x2)``, expanded, without its constant term.

    The integrand is ``p1 p2 (w s - r)^2`` with ``s = z1^T z2`` and ``r`` the density ratio.
    Return the expansion of ``(w s - r)^2`` with the term that does not depend on ``s``
    removed: what appendix A keeps when it goes from eq. (3) to eq. (4).
    Hint: ``sp.expand``, then drop the term that is free of ``s`` (``expr.coeff(s, 0)``).
    """
    raise NotImplementedError("expand (w*s - r)**2 and subtract its s-free term")


def spectral_lambda(w: sp.Expr) -> sp.Expr:
    """The ``lambda`` of eq. (6), as a sympy expression in ``w``.

    Eq. (5) per pair of patches is ``p1 p2 w^2 s^2 - 2 w (r p1 p2) s``; eq. (6) is
    ``-(r p1 p2) s + lambda p1 p2 s^2``. Find ``c`` and ``lambda`` with
    eq. (5) = c * eq. (6) for every ``s``: match the coefficients of ``s`` and ``s^2``
    (``sp.Poly(expr, s).coeffs()`` and ``sp.solve``). Return ``lambda``.
    """
    raise NotImplementedError("match the coefficients of s and s**2, then sp.solve for lambda")


def closed_form_embedding(P: torch.Tensor, d: int, w: float = 2.0) -> torch.Tensor:
    """The (V, d) embedding that minimises sum_ij p_i p_j (w z_i^T z_j - P_ij / (p_i p_j))^2.

    P: (V, V) float64 joint, symmetric, sums to 1, every p_i = P.sum(1)[i] > 0.
    Steps: M = D^-1/2 P D^-1/2 with D = diag(p); eigendecompose M (torch.linalg.eigh gives
    increasing eigenvalues); keep the d largest; column a of U is sqrt(max(mu_a, 0) / w) v_a;
    return Z = D^-1/2 U. Eigenvalues <= 0 give zero columns.
    """
    raise NotImplementedError("eigh of D^-1/2 P D^-1/2; keep the top d, clamped at 0; scale")
