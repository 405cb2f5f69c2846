"""Chapter 3 exercises: the losses in a few lines of PyTorch.

Edit the functions below, then run ``make check-exercises CHAPTER=03``. Each check compares
your value and your gradient with ``cooc_minimal.losses`` on random inputs. Work on whole
tensors (no Python loop over rows) and keep everything differentiable (no ``.item()``,
no NumPy). Each loss is a similarity term plus a regulariser: write them as two lines.
"""

import torch


def spectral_loss(z1: torch.Tensor, z2: torch.Tensor, lam: float = 1.0) -> torch.Tensor:
    """Spectral contrastive loss (Proposition 3.1's minibatch estimate).

    z1, z2: (N, D), row i of each from the same image. Return the 0-dim tensor

        -mean_i <z1_i, z2_i>  +  lam * mean_{i != j} <z1_i, z2_j>^2

    where the second mean runs over the N (N - 1) pairs with i != j.
    """
    raise NotImplementedError("positives: (z1 * z2).sum(1); negatives: (z1 @ z2.T) ** 2 "
                              "without its diagonal, divided by N (N - 1)")


def vicreg_loss(z1: torch.Tensor, z2: torch.Tensor, inv_coeff: float = 25.0,
                var_coeff: float = 25.0, cov_coeff: float = 1.0, gamma: float = 1.0,
                eps: float = 1e-4) -> torch.Tensor:
    """VICReg, as defined in its paper.

    z1, z2: (N, D). With the unbiased variance and C = (Z - mean)^T (Z - mean) / (N - 1):

        inv  = mean over N and D of (z1 - z2)^2
        v(Z) = mean_j relu(gamma - sqrt(Var(Z[:, j]) + eps))
        c(Z) = (1/D) * sum_{i != j} C_ij^2
        loss = inv_coeff * inv + var_coeff * (v(Z1) + v(Z2)) + cov_coeff * (c(Z1) + c(Z2))
    """
    raise NotImplementedError("write v(Z) and c(Z) as small inner functions; "
                              "z.var(dim=0) is already unbiased")


def tcr_loss(z: torch.Tensor, eps: float = 0.2) -> torch.Tensor:
    """Negative total coding rate, through the smaller Gram matrix.

    z: (N, D). Return -R(Z) with R(Z) = 1/2 logdet(I_D + D / (N eps^2) Z^T Z).
    Since det(I_D + c Z^T Z) = det(I_N + c Z Z^T), build the N x N matrix when N < D
    and the D x D one otherwise. Mind the square on eps.
    """
    raise NotImplementedError("c = D / (N * eps**2); torch.logdet(torch.eye(K) + c * gram)")


def simclr_loss(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """SimCLR's NT-Xent over the 2N views, with cosine similarity.

    z1, z2: (N, D), row i of each from image i. Stack the 2N views, normalise each row,
    take s = u @ u.T / temperature, and for each view a with positive p(a) (its pair):

        loss = mean_a [ -s[a, p(a)] + log sum_{b != a} exp s[a, b] ]
    """
    raise NotImplementedError("mask the diagonal with -inf, then F.cross_entropy(s, targets) "
                              "with targets = the index of each view's pair")


def multipatch_tcr(z: torch.Tensor, lam: float = 30.0, eps: float = 0.2) -> torch.Tensor:
    """The multi-patch TCR objective (EMP-SSL's), with appendix C's lam = 30 and eps = 0.2.

    z: (B, n, D), n patches of each of B images. First divide every z_bi by its norm. Then
    with zbar_b = mean_i z_bi (not detached) and Z_i = z[:, i] the (B, D) batch of patch i:

        loss = mean_i tcr_loss(Z_i, eps)  -  lam * mean_{b,i} cos(z_bi, zbar_b)
    """
    raise NotImplementedError("F.normalize(z, dim=-1); z.mean(1, keepdim=True); "
                              "F.cosine_similarity; reuse your tcr_loss on z[:, i]")
