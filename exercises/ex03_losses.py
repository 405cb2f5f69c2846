"""Chapter 3 exercises: the losses in a few lines of PyTorch, and a bug to find.

Edit the functions below, then run ``make check-exercises CHAPTER=03``. The tasks, with
hints, are on the book page "Exercises 3". Each check compares your value and gradient with
a formula written out in the check, on float64 inputs. Work on whole tensors (no Python
loop over rows), keep everything differentiable (no ``.item()``, no NumPy), leave the
inputs unchanged, and do not import ``cooc_minimal``.
"""

import torch


def spectral_loss(z1: torch.Tensor, z2: torch.Tensor, lam: float = 1.0) -> torch.Tensor:
    """Spectral contrastive loss (Proposition 3.1's minibatch estimate).

    z1, z2: (N, D), row i of each from the same image. Return the 0-dim tensor

        -mean_i <z1_i, z2_i>  +  lam * mean_{i != j} <z1_i, z2_j>^2

    where the second mean runs over the N (N - 1) pairs with i != j.
    """
    raise NotImplementedError


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
    raise NotImplementedError


def tcr_loss(z: torch.Tensor, eps: float = 0.2 ** 0.5) -> torch.Tensor:
    """Negative total coding rate, for one batch or a stack of batches.

    z: (..., N, D). Return, for each batch Z in the stack (shape ``z.shape[:-2]``),

        -R(Z),   R(Z) = 1/2 logdet(I_D + D / (N eps^2) Z^T Z).

    Build the N x N matrix I_N + c Z Z^T instead when N < D (same determinant). Take the
    log-determinant from a Cholesky factor, not from torch.logdet (see the book page).
    The default eps = sqrt(0.2) is EMP-SSL's setting: its code's 0.2 stands for eps^2.
    """
    raise NotImplementedError


def simclr_loss(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """SimCLR's NT-Xent over the 2N views, with cosine similarity.

    z1, z2: (N, D), row i of each from image i. With u the 2N views stacked and each row
    divided by its norm, s = u @ u.T / temperature, and p(a) the other view of view a's image:

        loss = mean_a [ -s[a, p(a)] + log sum_{b != a} exp s[a, b] ]
    """
    raise NotImplementedError


def multipatch_tcr(z: torch.Tensor, lam: float = 30.0, eps: float = 0.2 ** 0.5) -> torch.Tensor:
    """The multi-patch TCR objective (EMP-SSL's), with appendix C's lam = 30.

    z: (B, n, D), n patches of each of B images. First divide every z_bi by its norm. Then
    with zbar_b = mean_i z_bi (not detached) and Z_i = z[:, i] the (B, D) batch of patch i:

        loss = mean_i tcr_loss(Z_i, eps)  -  lam * mean_{b,i} cos(z_bi, zbar_b)

    No Python loop over the patches: one call of your tcr_loss on a stack of batches.
    """
    raise NotImplementedError


def covariance_bug_witness() -> torch.Tensor:
    """A batch Z: (N, D) on which the page's ``given_covariance_term`` is wrong.

    Return a float64 tensor with N >= 2 and D >= 2 for which ``given_covariance_term(Z)``
    and VICReg's c(Z) = (1/D) sum_{i != j} C_ij^2 differ by more than 1%.
    """
    raise NotImplementedError
