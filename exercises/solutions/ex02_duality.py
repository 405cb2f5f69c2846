"""Reference answers for chapter 2."""

import sympy as sp
import torch


def contrastive_penalty_from_features(z: torch.Tensor) -> torch.Tensor:
    gram = z.T @ z
    return gram.pow(2).sum() - 2 * gram.trace() + z.shape[0]


def trace_constant(N: sp.Symbol, d: sp.Symbol, t: sp.Symbol) -> sp.Expr:
    trace_g2 = sp.Symbol("trace_g2")

    def frob2(c):  # ||G - c I_d||^2 = tr(G^2) - 2 c tr(G) + c^2 d
        return trace_g2 - 2 * c * t + c**2 * d

    return sp.simplify(frob2(1) - frob2(N / d))


def min_feature_penalty(N: int, d: int) -> float:
    # N <= d: N eigenvalues equal to 1, d - N stuck at 0.  N >= d: all d equal to N / d.
    return float(d - N) if N <= d else (N - d) ** 2 / d


def expected_contrastive_penalty(N: int, d: int) -> float:
    # The diagonal of Z Z^T - I_N is 0 (unit rows); each of the N (N - 1) ordered pairs
    # i != j adds E[(z_i^T z_j)^2] = 1/d (exercise 0.3).
    return N * (N - 1) / d
