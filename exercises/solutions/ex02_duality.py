"""Reference answers for chapter 2."""

import sympy as sp
import torch


def contrastive_penalty_from_features(z: torch.Tensor) -> torch.Tensor:
    gram = z.T @ z
    return gram.pow(2).sum() - 2 * gram.trace() + z.shape[0]


def trace_constant(N: sp.Symbol, d: sp.Symbol, t: sp.Symbol) -> sp.Expr:
    # Worked answer. (tr G^2 - 2 t + d) - (tr G^2 - 2 (N/d) t + N^2 / d)
    # = d - 2 t + 2 N t / d - N^2 / d, which for t = N (unit rows) is (N - d)^2 / d.
    trace_g2 = sp.Symbol("trace_g2")

    def frob2(c):  # ||G - c I_d||^2 = tr(G^2) - 2 c tr(G) + c^2 d
        return trace_g2 - 2 * c * t + c**2 * d

    return sp.simplify(frob2(1) - frob2(N / d))


def min_feature_penalty(N: int, d: int) -> float:
    # Worked answer. With g_a the eigenvalues of Z^T Z (>= 0, at most min(N, d) non-zero,
    # summing to N), the penalty is sum_a (g_a - 1)^2. N <= d: N eigenvalues equal to 1
    # (orthonormal rows), d - N stuck at 0, giving d - N. N >= d: the sum is fixed, so the
    # squares are smallest when all d are equal, g_a = N / d, giving d (N/d - 1)^2 = (N-d)^2/d.
    return float(d - N) if N <= d else (N - d) ** 2 / d


def expected_contrastive_penalty(N: int, d: int) -> float:
    # Worked answer. The diagonal of Z Z^T - I_N is 0 (unit rows); each of the N (N - 1)
    # ordered pairs i != j adds E[(z_i^T z_j)^2] = 1/d (exercise 0.3). The sample-side
    # minimum is the feature-side one (2.3) plus N - d: N (N - d) / d for N >= d. A random
    # batch is within a factor (N - 1) / (N - d) of it, so for N >> d random embeddings are
    # already nearly optimal for this penalty (N = 256, d = 16: 255 / 240).
    return N * (N - 1) / d
