"""Chapter 0 warm-up: two small tensor tools that every later chapter uses.

Edit the functions below, then run ``make check-exercises CHAPTER=00``.
Work on whole tensors: no Python loop over rows.
"""

import torch


def cosine_similarity_matrix(z: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Cosine similarity of every pair of rows of ``z``.

    z: (N, D) embeddings. Returns S: (N, N) with
    ``S[i, j] = <z_i, z_j> / (max(||z_i||, eps) * max(||z_j||, eps))``,
    so an all-zero row gives zeros instead of NaN.
    Hint: divide each row by its clamped norm first, then one matrix product.
    """
    raise NotImplementedError("divide each row by its clamped norm, then take z_hat @ z_hat.T")


def off_diagonal(m: torch.Tensor) -> torch.Tensor:
    """The off-diagonal entries of a square matrix, as a flat vector.

    m: (K, K). Returns a vector of length K * (K - 1), in row-major order
    (row 0 without m[0, 0], then row 1 without m[1, 1], ...). VICReg's
    covariance term and the spectral loss's negatives both sum over it.
    """
    raise NotImplementedError("select the entries where the row index differs from the column")
