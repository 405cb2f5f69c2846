"""Reference answers for the chapter 3 exercises."""

import torch
import torch.nn.functional as F


def spectral_loss(z1: torch.Tensor, z2: torch.Tensor, lam: float = 1.0) -> torch.Tensor:
    n = z1.shape[0]
    similarity = -(z1 * z2).sum(dim=1).mean()
    squared = (z1 @ z2.T) ** 2
    negatives = (squared.sum() - squared.diagonal().sum()) / (n * (n - 1))
    return similarity + lam * negatives


def vicreg_loss(z1: torch.Tensor, z2: torch.Tensor, inv_coeff: float = 25.0,
                var_coeff: float = 25.0, cov_coeff: float = 1.0, gamma: float = 1.0,
                eps: float = 1e-4) -> torch.Tensor:
    def v(z):
        return F.relu(gamma - torch.sqrt(z.var(dim=0) + eps)).mean()

    def c(z):
        n, d = z.shape
        centred = z - z.mean(dim=0)
        cov = centred.T @ centred / (n - 1)
        return (cov.pow(2).sum() - cov.diagonal().pow(2).sum()) / d

    invariance = F.mse_loss(z1, z2)
    return inv_coeff * invariance + var_coeff * (v(z1) + v(z2)) + cov_coeff * (c(z1) + c(z2))


def tcr_loss(z: torch.Tensor, eps: float = 0.2 ** 0.5) -> torch.Tensor:
    n, d = z.shape[-2:]
    zt = z.transpose(-1, -2)
    gram = z @ zt if n < d else zt @ z
    eye = torch.eye(gram.shape[-1], dtype=z.dtype, device=z.device)
    # Symmetric positive definite: logdet = 2 sum log diag(L) for the Cholesky factor L.
    chol = torch.linalg.cholesky(eye + d / (n * eps**2) * gram)
    return -chol.diagonal(dim1=-2, dim2=-1).log().sum(dim=-1)


def simclr_loss(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    n = z1.shape[0]
    u = F.normalize(torch.cat([z1, z2]), dim=1)
    s = u @ u.T / temperature
    s = s.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z1.device), float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z1.device)
    return F.cross_entropy(s, targets)


def multipatch_tcr(z: torch.Tensor, lam: float = 30.0, eps: float = 0.2 ** 0.5) -> torch.Tensor:
    z = F.normalize(z, dim=-1)
    mean = z.mean(dim=1, keepdim=True)
    similarity = F.cosine_similarity(z, mean, dim=-1).mean()
    rate = tcr_loss(z.transpose(0, 1), eps).mean()  # (n, B, D): one batch per patch index
    return rate - lam * similarity


def covariance_bug_witness() -> torch.Tensor:
    # Worked answer. Two identical features: their covariance C_01 equals the variance C_11,
    # and the mask cov != cov.diagonal() (which compares C_ij with C_jj) drops it: exactly
    # the collapse the covariance term exists to penalise goes unseen. Random batches never
    # have C_ij = C_jj, so the page's test passes; in training it happens when two output
    # coordinates become copies of each other (redundant, collapsed dimensions), the moment
    # the term should push hardest, and then it pushes on that pair not at all.
    g = torch.Generator().manual_seed(0)
    first = torch.randn(16, 1, generator=g, dtype=torch.float64)
    return torch.cat([first, first, torch.randn(16, 2, generator=g, dtype=torch.float64)], 1)
