"""Chapter 2: the duality identity, by trace algebra and with numbers.

Edit the functions below, then run ``make check-exercises CHAPTER=02``.
"""

import sympy as sp
import torch


def contrastive_penalty_from_features(z: torch.Tensor) -> torch.Tensor:
    """``||Z Z^T - I_N||_F^2`` for z: (N, d), computed from the (d, d) matrix ``Z^T Z`` only.

    Expand the norm as a trace and use tr(A B) = tr(B A): the result needs ``||Z^T Z||_F^2``,
    ``tr(Z^T Z)`` and ``N``, so a batch of 100,000 embeddings never builds a
    100,000 x 100,000 matrix. Any ``z``, not only unit-norm rows. Returns a scalar tensor.
    """
    raise NotImplementedError("||ZZ^T - I||^2 = tr((Z^T Z)^2) - 2 tr(Z^T Z) + N")


def trace_constant(N: sp.Symbol, d: sp.Symbol, t: sp.Symbol) -> sp.Expr:
    """``||G - I_d||_F^2 - ||G - (N/d) I_d||_F^2`` for a symmetric d x d ``G`` with trace ``t``.

    Write each norm as tr((G - c I)^2) = tr(G^2) - 2 c tr(G) + c^2 d and subtract: tr(G^2)
    cancels. Return a sympy expression in N, d and t (keep t general: do not set t = N).
    """
    raise NotImplementedError("expand both norms with traces; tr(G^2) cancels")


def min_feature_penalty(N: int, d: int) -> float:
    """The smallest ``||Z^T Z - I_d||_F^2`` over Z of shape (N, d) with unit-norm rows.

    Z^T Z is positive semi-definite, has rank at most min(N, d), and its eigenvalues sum to
    tr(Z^T Z) = N. Minimise sum_a (g_a - 1)^2 over such eigenvalues g_1..g_d, in the two cases
    N <= d and N >= d (both are reachable). Return a number.
    """
    raise NotImplementedError("count the zero eigenvalues when N < d; spread N evenly when N > d")
