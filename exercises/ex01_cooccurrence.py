"""Chapter 1: Proposition 3.1 by hand (with sympy), its closed-form optimum, a prediction.

Edit the functions below, then run ``make check-exercises CHAPTER=01``. The tasks, with
hints, are on the book page "Exercises 1". Do not import ``cooc_minimal``.
"""

import sympy as sp
import torch


def integrand_without_constant(w: sp.Symbol, s: sp.Symbol, r: sp.Symbol) -> sp.Expr:
    """Eq. (3)'s integrand divided by ``p(x1) p(x2)``, expanded, without its constant term.

    The integrand is ``p1 p2 (w s - r)^2`` with ``s = z1^T z2`` and ``r`` the density ratio.
    Return the expansion of ``(w s - r)^2`` with the term that does not depend on ``s``
    removed: what appendix A keeps when it goes from eq. (3) to eq. (4).
    """
    raise NotImplementedError


def spectral_lambda(w: sp.Expr) -> sp.Expr:
    """The ``lambda`` of eq. (6), as a sympy expression in ``w``.

    Eq. (5) per pair of patches is ``p1 p2 w^2 s^2 - 2 w (r p1 p2) s``; eq. (6) is
    ``-(r p1 p2) s + lambda p1 p2 s^2``. Find ``c`` and ``lambda`` with
    eq. (5) = c * eq. (6) for every ``s``. Return ``lambda``.
    """
    raise NotImplementedError


def closed_form_embedding(P: torch.Tensor, d: int, w: float = 2.0) -> torch.Tensor:
    """The (V, d) embedding that minimises sum_ij p_i p_j (w z_i^T z_j - P_ij / (p_i p_j))^2.

    P: (V, V) float64 joint, symmetric, sums to 1, every p_i = P.sum(1)[i] > 0. Returns
    Z: (V, d), built from the d largest eigenpairs of M = D^-1/2 P D^-1/2 (D = diag(p));
    eigenvalues <= 0 give zero columns.
    """
    raise NotImplementedError


def within_class_similarity(w: float, K: int, V: int) -> float:
    """Your prediction: the optimal z_i^T z_j for two patch types i != j of the same class.

    P has V patch types in K classes of V / K types each; patches co-occur uniformly within
    their class and never across classes. With d >= K and weight w, give the inner product
    of the optimal embedding as a formula in w, K and V, with arithmetic only.
    """
    raise NotImplementedError
