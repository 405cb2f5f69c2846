"""Reference answers for the chapter 0 warm-up."""

import torch


def cosine_similarity_matrix(z: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    z_hat = z / z.norm(dim=1, keepdim=True).clamp_min(eps)
    return z_hat @ z_hat.T


def off_diagonal(m: torch.Tensor) -> torch.Tensor:
    k = m.shape[0]
    # Dropping the last entry and viewing as (K-1, K+1) puts every diagonal entry in column 0.
    return m.flatten()[:-1].view(k - 1, k + 1)[:, 1:].flatten()


def mean_squared_cosine(d: int) -> float:
    # Worked answer. By symmetry x / ||x|| is uniform on the sphere; fix y along e_1:
    # cos^2 = u_1^2, and the d coordinates u_k^2 are exchangeable and sum to 1, so each has
    # mean 1 / d. Random directions are nearly orthogonal in high dimension: the typical
    # |cos| is about 1 / sqrt(d), 0.09 for d = 128.
    return 1 / d
