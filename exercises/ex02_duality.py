"""Chapter 2: the duality identity, by trace algebra, with numbers, and a prediction.

Edit the functions below, then run ``make check-exercises CHAPTER=02``. The tasks, with
hints, are on the book page "Exercises 2". Do not import ``cooc_minimal``.
"""

import sympy as sp
import torch


def contrastive_penalty_from_features(z: torch.Tensor) -> torch.Tensor:
    """``||Z Z^T - I_N||_F^2`` for z: (N, d), computed from the (d, d) matrix ``Z^T Z`` only.

    A batch of 100,000 embeddings must never build a 100,000 x 100,000 matrix. Any ``z``,
    not only unit-norm rows; ``z`` stays as it was. Returns a scalar tensor.
    """
    raise NotImplementedError


def trace_constant(N: sp.Symbol, d: sp.Symbol, t: sp.Symbol) -> sp.Expr:
    """``||G - I_d||_F^2 - ||G - (N/d) I_d||_F^2`` for a symmetric d x d ``G`` with trace ``t``.

    Return a sympy expression in N, d and t (keep t general: do not set t = N).
    """
    raise NotImplementedError


def min_feature_penalty(N: int, d: int) -> float:
    """The smallest ``||Z^T Z - I_d||_F^2`` over Z of shape (N, d) with unit-norm rows.

    Both cases, N <= d and N >= d. Return a number.
    """
    raise NotImplementedError


def expected_contrastive_penalty(N: int, d: int) -> float:
    """Your prediction: E ||Z Z^T - I_N||_F^2 for N independent unit-norm rows, uniform on
    the sphere of R^d, as a formula in N and d with arithmetic only."""
    raise NotImplementedError
