"""Reference answers for chapter 5 (see exercises/ex05_toyworld.py for the tasks)."""

import torch


def sampled_cooccurrence(parts: torch.Tensor, n_parts: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Worked answer to the prediction. Every image adds its own, independent pairs to
    the estimate, which is an average over the n images: its error shrinks like
    1 / sqrt(n), by sqrt(10), about 3.2, for each tenfold increase in images.
    """
    images, tiles = parts.shape
    counts = torch.zeros(images, n_parts, dtype=torch.float64)
    counts.scatter_add_(1, parts, torch.ones(parts.shape, dtype=torch.float64))  # (B, V)
    # c_b c_b^T counts every ordered pair of tiles of image b, a tile with itself included;
    # the diagonal matrix of the counts removes those T self-pairs per image.
    pairs = counts.T @ counts - torch.diag(counts.sum(dim=0))
    P = pairs / (images * tiles * (tiles - 1))
    p = P.sum(dim=1)
    inv_sqrt = torch.where(p > 0, p.clamp_min(1e-300).rsqrt(), torch.zeros_like(p))
    return P, inv_sqrt[:, None] * P * inv_sqrt[None, :]


def cooccurrence_rank(K: int, V: int) -> int:
    """Worked answer. For any x in R^V, x^T P x = sum_c pi_c (W x)_c^2 >= 0, and it is 0
    exactly when W x = 0: P is positive semi-definite with the null space of W, so
    rank P = rank W, and P is positive definite if and only if rank W = V, which needs
    K >= V classes. A (K, V) matrix has rank at most min(K, V), and rows drawn from a
    Dirichlet reach it with probability 1. D^-1/2 is invertible (every p_v > 0), so M
    has the rank of P: min(K, V) eigenvalues that are not zero (all positive).
    """
    return min(K, V)


def _centred_gram(Z: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    root = p.double().sqrt()
    U = root[:, None] * Z.double()
    unit = root / root.norm()
    U = U - unit[:, None] * (unit @ U)[None, :]  # project every column off sqrt(p)
    return U @ U.T


def gram_similarity(Z1: torch.Tensor, Z2: torch.Tensor, p: torch.Tensor) -> float:
    G1, G2 = _centred_gram(Z1, p), _centred_gram(Z2, p)
    norms = G1.norm() * G2.norm()
    return float((G1 * G2).sum() / norms) if norms > 0 else 0.0


def centring_bug_witness() -> tuple[torch.Tensor, torch.Tensor]:
    """Worked answer. ``given_weighted_gram`` subtracts each column's plain mean, which
    projects U off the vector of ones; the definition projects it off sqrt(p). The two
    agree when p is uniform (sqrt(p) is then along the ones), which is all the page's test
    tried. With unequal frequencies a constant embedding z_v = c shows the bug best: its
    U = sqrt(p) c^T lies along sqrt(p), so the true centred Gram matrix is 0 (it carries
    no information about the parts), while the given one keeps (sqrt(p) - mean) c^T and
    lets the constant direction, which every untrained network has, back into the score.
    """
    p = torch.tensor([0.5, 0.3, 0.15, 0.05], dtype=torch.float64)
    return torch.ones(4, 3, dtype=torch.float64), p
