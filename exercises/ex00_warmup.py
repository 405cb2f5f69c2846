"""Chapter 0 warm-up: two small tensor tools that every later chapter uses, and a prediction.

Edit the functions below, then run ``make check-exercises CHAPTER=00``. The tasks, with
hints, are on the book page "Exercises 0". Work on whole tensors (no Python loop over rows),
leave the inputs unchanged, and do not import ``cooc_minimal``.
"""

import torch


def cosine_similarity_matrix(z: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Cosine similarity of every pair of rows of ``z``.

    z: (N, D) embeddings. Returns S: (N, N) with
    ``S[i, j] = <z_i, z_j> / (max(||z_i||, eps) * max(||z_j||, eps))``,
    so an all-zero row gives zeros instead of NaN. ``z`` itself stays as it was.
    """
    raise NotImplementedError


def off_diagonal(m: torch.Tensor) -> torch.Tensor:
    """The off-diagonal entries of a square matrix, as a flat vector.

    m: (K, K). Returns a vector of length K * (K - 1), in row-major order
    (row 0 without m[0, 0], then row 1 without m[1, 1], ...), whatever the values are
    (zeros included). ``m`` itself stays as it was.
    """
    raise NotImplementedError


def mean_squared_cosine(d: int) -> float:
    """Your prediction: the average of cos(x, y)^2 over independent x, y ~ N(0, I_d).

    A formula in ``d`` written with arithmetic only (no torch, no math functions): predict
    it first, then measure it on the book page.
    """
    raise NotImplementedError
