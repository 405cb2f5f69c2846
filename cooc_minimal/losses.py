"""The joint-embedding losses of the paper, each a similarity term plus a regulariser.

Proposition 3.1 of Chen et al. (2023) reads every loss here as

    loss = (similarity: pull the views of one image together)
         + (regulariser: keep the batch from collapsing onto a few directions).

Two-view losses take ``z1, z2: (N, D)``, row i of each projected from a view of image i.
Multi-patch losses take ``z: (B, n, D)``, the projections of n patches of each of B images.
Every loss returns a 0-dim tensor and is differentiable. The terms the losses are built
from are public too, for the course to show and for readers to reuse: ``variance_term`` and
``covariance_term`` (VICReg's v and c), ``coding_rate`` (R of TCR, via ``LogDetSPD``) and
``nt_xent`` (SimCLR's multi-positive form); so are the four multi-patch losses,
``multipatch_spectral_loss`` and its siblings, which :func:`multipatch_loss` dispatches to.

Conventions shared by every function:

- **Shapes.** ``D`` in a shape is the width of the vectors passed in, here the projection
  z. The course's notation table (chapter 5, README) calls that width d and keeps D for
  the embedding h, the backbone's output; in code, shapes keep the one letter D.
- **Precision.** Each loss computes in float32 or wider: half-precision inputs are upcast and
  autocast is switched off inside, because batch statistics (a log-determinant, a
  covariance) lose most of their digits in bfloat16. Chapter 3 shows it on TCR.
- **Checks.** Bad input (a wrong shape, an empty batch or N < 2, NaN or inf, two views of
  different dtypes or devices, a NaN, infinite or negative coefficient) raises a
  ``ValueError`` naming the argument before any work. Coefficients are checked against the
  torch-free table of :mod:`cooc_minimal.coefficients` (:func:`check_coeffs`, also used by
  the run configuration), so each name and range is written once. The finiteness check
  costs one ``torch.isfinite(...).all()`` per call, the only host-device synchronisation a
  loss makes; the term functions skip it (their callers, the losses, make it once).
- **Several processes.** When ``torch.distributed`` is initialised, each rank passes its own
  slice of the batch (the same N on every rank). Batch statistics (VICReg's variance and
  covariance, the coding rate, the negatives of the spectral and SimCLR losses) use the
  embeddings of every rank, gathered with gradients. Each rank returns its *share*: the mean
  of the returned values over ranks equals the loss of the concatenated batch in one
  process. So the gradient reaching each rank's embeddings is ``world_size`` times the
  one-process gradient, and DDP's averaging over ranks gives exactly the one-process
  gradient of the parameters. Average the value over ranks before logging it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from cooc_minimal.coefficients import (
    COEFFICIENTS,
    TCR_EPS,
    UnknownLossError,
    check_coeffs,
    check_loss_name,
)
from cooc_minimal.distributed import gather_with_grad, rank

__all__ = [
    "LOSSES",
    "TCR_EPS",
    "LogDetSPD",
    "UnknownLossError",
    "VICRegTerms",
    "check_coeffs",
    "coding_rate",
    "covariance_term",
    "multipatch_loss",
    "multipatch_simclr_loss",
    "multipatch_spectral_loss",
    "multipatch_tcr_loss",
    "multipatch_vicreg_loss",
    "nt_xent",
    "simclr_loss",
    "spectral_loss",
    "tcr_loss",
    "variance_term",
    "vicreg_loss",
    "vicreg_terms",
]

_HALF = (torch.float16, torch.bfloat16)


# ---------------------------------------------------------------- input checks and helpers

def _check_tensor(name: str, z, ndim: int, layout: str) -> None:
    if not isinstance(z, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape {layout}, "
                         f"got a {type(z).__name__}.")
    if z.dim() != ndim:
        raise ValueError(f"{name} has shape {tuple(z.shape)}, expected {ndim} dimensions "
                         f"{layout}.")
    if not z.is_floating_point():
        raise ValueError(f"{name} has dtype {z.dtype}: pass floating-point embeddings "
                         f"of shape {layout}.")
    if z.shape[0] < 2:
        raise ValueError(f"{name} has shape {tuple(z.shape)}: a batch needs at least 2 rows "
                         f"(shape {layout} with {layout[1]} >= 2) for its statistics.")
    if z.shape[-1] < 1:
        raise ValueError(f"{name} has shape {tuple(z.shape)}: the embedding dimension D is 0.")


def _check_finite(**named: torch.Tensor) -> None:
    # One reduction and one synchronisation for all inputs; name the culprit only on failure.
    flags = [torch.isfinite(z).all() for z in named.values()]
    if bool(torch.stack(flags).all()):
        return
    for name, flag in zip(named, flags, strict=True):
        if not bool(flag):
            raise ValueError(f"{name} contains NaN or inf values: check the network's output "
                             f"(a diverged step, a bad learning rate) before the loss.")


def _check_pair(z1, z2) -> None:
    _check_tensor("z1", z1, 2, "(N, D)")
    _check_tensor("z2", z2, 2, "(N, D)")
    if z1.shape != z2.shape:
        raise ValueError(f"z2 has shape {tuple(z2.shape)}, expected {tuple(z1.shape)} (the "
                         f"shape of z1): row i of z1 and z2 must come from the same image.")
    if z1.dtype != z2.dtype:
        raise ValueError(f"z1 has dtype {z1.dtype} but z2 has {z2.dtype}: pass both views in "
                         f"one dtype, e.g. z2.to(z1.dtype).")
    if z1.device != z2.device:
        raise ValueError(f"z1 is on {z1.device} but z2 is on {z2.device}: put both views on "
                         f"one device, e.g. z2.to(z1.device).")
    _check_finite(z1=z1, z2=z2)


def _check_batches(z) -> None:
    """z: (..., N, D), one batch or a stack of them, for a term function (no sync)."""
    if not isinstance(z, torch.Tensor) or z.dim() < 2 or not z.is_floating_point():
        got = (f"shape {tuple(z.shape)} and dtype {z.dtype}" if isinstance(z, torch.Tensor)
               else f"a {type(z).__name__}")
        raise ValueError(f"z must be a floating-point torch.Tensor of shape (..., N, D), "
                         f"got {got}.")
    if z.shape[-2] < 2 or z.shape[-1] < 1:
        raise ValueError(f"z has shape {tuple(z.shape)}: each batch needs at least 2 rows "
                         f"and 1 column (shape (..., N, D) with N >= 2, D >= 1).")


def _check_patches(z) -> None:
    """z: (B, n, D) with B >= 2 images of n >= 2 patches (no finiteness check: no sync)."""
    _check_tensor("z", z, 3, "(B, n, D)")
    if z.shape[1] < 2:
        raise ValueError(f"z has shape {tuple(z.shape)}: the multi-patch objective needs at "
                         f"least 2 patches per image (shape (B, n, D) with n >= 2).")


def _float32_or_wider(fn: Callable) -> Callable:
    """Run ``fn`` with autocast off on the input's device (see the module's conventions)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        first = next((a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)), None)
        if first is not None and torch.is_autocast_enabled(first.device.type):
            with torch.autocast(device_type=first.device.type, enabled=False):
                return fn(*args, **kwargs)
        return fn(*args, **kwargs)

    return wrapper


def _upcast(z: torch.Tensor) -> torch.Tensor:
    return z.float() if z.dtype in _HALF else z


def _off_diagonal(m: torch.Tensor) -> torch.Tensor:
    """The K(K-1) off-diagonal entries of m: (..., K, K), flattened over the last two dims."""
    k = m.shape[-1]
    flat = m.flatten(-2)[..., :-1]
    return flat.unflatten(-1, (k - 1, k + 1))[..., 1:].flatten(-2)


def _global_rows(z: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Every rank's rows of z (dim 0), and where this rank's rows start in them."""
    return gather_with_grad(z), rank() * z.shape[0]


# ---------------------------------------------------------------------- two-view losses

@_float32_or_wider
def spectral_loss(z1: torch.Tensor, z2: torch.Tensor, lam: float = 1.0) -> torch.Tensor:
    """Spectral contrastive loss, the minibatch estimate of Proposition 3.1 (eq. 6).

    z1, z2: (N, D), row i of each from the same image. Returns

        -mean_i <z1_i, z2_i>  +  lam * mean_{i != j} <z1_i, z2_j>^2,

    the second mean over the N(N-1) ordered pairs of different images. Pairs (i, i) estimate
    the expectation under p(x1, x2); pairs (i, j != i) are independent draws from
    p(x1) p(x2).

    Which lam, in each source:

    - Chen et al. (2023), eq. (6): lam = w / 2 for the weight w of eq. (3) (chapter 1);
      their w = 2 gives lam = 1, this function's default.
    - HaoChen et al. (2021), the paper: -2 E[<z, z+>] + E[<z, z->^2], which is 2 times this
      loss with lam = 1/2 (w = 1).
    - HaoChen et al.'s public code (models/spectral.py) first clips every row to norm at
      most sqrt(mu) (mu = 1 on CIFAR, 10 on ImageNet), then returns
      (-2 mean_i <z1_i, z2_i> + mean_{i != j} <z1_i, z2_j>^2) / mu, that is
      (2 / mu) * spectral_loss(clip(z1), clip(z2), lam=0.5). This function does not clip.

    The minimisers scale with lam: lam = 1 gives the lam = 1/2 embedding divided by sqrt(2).
    """
    _check_pair(z1, z2)
    check_coeffs("spectral", {"lam": lam})
    z1, z2 = _upcast(z1), _upcast(z2)
    n = z1.shape[0]
    positive = (z1 * z2).sum(dim=1)                             # (N,)
    z2_all, start = _global_rows(z2)                            # (N_all, D)
    squared = (z1 @ z2_all.T).square()                          # (N, N_all)
    columns = torch.arange(z2_all.shape[0], device=z1.device)
    same_image = columns == (torch.arange(n, device=z1.device) + start)[:, None]
    negatives = squared.masked_fill(same_image, 0.0).sum() / (n * (z2_all.shape[0] - 1))
    return -positive.mean() + lam * negatives


class VICRegTerms(NamedTuple):
    """VICReg's three terms, before weighting: invariance, variance, covariance."""

    invariance: torch.Tensor
    variance: torch.Tensor
    covariance: torch.Tensor


@_float32_or_wider
def variance_term(z: torch.Tensor, gamma: float = 1.0, eps: float = 1e-4) -> torch.Tensor:
    """VICReg's v(Z) of each batch: z (..., N, D) -> (...,).

    v(Z) = mean_j relu(gamma - sqrt(Var(Z[:, j]) + eps)), Var the unbiased variance over the
    N rows. A stack of batches (the multi-patch form's n batches Z_i) is one call.
    """
    check_coeffs("vicreg", {"gamma": gamma, "eps": eps})
    _check_batches(z)
    std = torch.sqrt(_upcast(z).var(dim=-2, unbiased=True) + eps)     # (..., D)
    return F.relu(gamma - std).mean(dim=-1)


@_float32_or_wider
def covariance_term(z: torch.Tensor) -> torch.Tensor:
    """VICReg's c(Z) of each batch: z (..., N, D) -> (...,) = (1/D) sum_{i != j} C_ij^2.

    C = Zc^T Zc / (N - 1) is D x D. When N < D the N x N Gram matrix is cheaper, and
    ||Zc^T Zc||_F = ||Zc Zc^T||_F (the duality of chapter 2), so
    sum_{i != j} C_ij^2 = ||Zc Zc^T||_F^2 / (N-1)^2 - sum_j C_jj^2.
    """
    _check_batches(z)
    z = _upcast(z)
    n, d = z.shape[-2], z.shape[-1]
    centred = z - z.mean(dim=-2, keepdim=True)
    if n < d:
        gram = centred @ centred.transpose(-1, -2)                       # (..., N, N)
        diagonal = centred.square().sum(dim=-2) / (n - 1)                # (..., D): C_jj
        total = gram.square().sum(dim=(-2, -1)) / (n - 1) ** 2
        return (total - diagonal.square().sum(dim=-1)) / d
    cov = centred.transpose(-1, -2) @ centred / (n - 1)                  # (..., D, D)
    return _off_diagonal(cov).square().sum(dim=-1) / d


@_float32_or_wider
def vicreg_terms(z1: torch.Tensor, z2: torch.Tensor, gamma: float = 1.0,
                 eps: float = 1e-4) -> VICRegTerms:
    """VICReg's unweighted terms, for logging; see :func:`vicreg_loss` for the definitions.

    z1, z2: (N, D). Returns ``VICRegTerms(invariance, variance, covariance)`` with
    variance = v(Z1) + v(Z2) and covariance = c(Z1) + c(Z2).
    """
    _check_pair(z1, z2)
    check_coeffs("vicreg", {"gamma": gamma, "eps": eps})
    z1, z2 = _upcast(z1), _upcast(z2)
    invariance = (z1 - z2).square().mean()
    both = gather_with_grad(torch.stack([z1, z2]).transpose(0, 1)).transpose(0, 1)  # (2, N, D)
    return VICRegTerms(invariance, variance_term(both, gamma, eps).sum(),
                       covariance_term(both).sum())


def vicreg_loss(z1: torch.Tensor, z2: torch.Tensor, inv_coeff: float = 25.0,
                var_coeff: float = 25.0, cov_coeff: float = 1.0, gamma: float = 1.0,
                eps: float = 1e-4) -> torch.Tensor:
    """VICReg (Bardes et al. 2022): invariance + variance + covariance.

    z1, z2: (N, D). With Var the unbiased variance over the N rows and
    C(Z) = (Z - mean(Z))^T (Z - mean(Z)) / (N - 1), a D x D matrix:

        inv  = mean_{i, d} (z1_id - z2_id)^2                        (over N and D)
        v(Z) = mean_j relu(gamma - sqrt(Var(Z[:, j]) + eps))
        c(Z) = (1/D) sum_{i != j} C(Z)_ij^2
        loss = inv_coeff * inv + var_coeff * (v(Z1) + v(Z2)) + cov_coeff * (c(Z1) + c(Z2))

    This is the paper's definition. The official code averages the two variance terms,
    (v(Z1) + v(Z2)) / 2, so its var_coeff = 25 is var_coeff = 12.5 here. Invariance is the
    similarity term; variance and covariance are the regulariser.
    """
    check_coeffs("vicreg", {"inv_coeff": inv_coeff, "var_coeff": var_coeff,
                            "cov_coeff": cov_coeff})
    inv, var, cov = vicreg_terms(z1, z2, gamma=gamma, eps=eps)
    return inv_coeff * inv + var_coeff * var + cov_coeff * cov


class LogDetSPD(torch.autograd.Function):
    """logdet of symmetric positive-definite matrices a: (..., K, K) -> (...,).

    Call it as ``LogDetSPD.apply(a)``. I + c Z Z^T has eigenvalues >= 1, so Cholesky cannot
    fail and costs half of LU: logdet = 2 sum log diag(L). ``cholesky_ex`` skips the error
    check, which on a GPU would wait for the device. Autograd through ``cholesky`` would run
    triangular solves for a full gradient of L; the gradient of logdet is simply a^{-1},
    read off L with ``cholesky_inverse``: about 3x faster backward at K = 1024-2048 on a CPU.
    """

    @staticmethod
    def forward(ctx, a: torch.Tensor) -> torch.Tensor:
        chol, _ = torch.linalg.cholesky_ex(a)
        ctx.save_for_backward(chol)
        return 2 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(dim=-1)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (chol,) = ctx.saved_tensors
        return grad[..., None, None] * torch.cholesky_inverse(chol)


_GRAMS = ("auto", "samples", "features")


def _check_gram(gram: str) -> None:
    if gram not in _GRAMS:
        raise ValueError(f"gram must be 'auto', 'samples' or 'features', got {gram!r}.")


@_float32_or_wider
def coding_rate(z: torch.Tensor, eps: float = TCR_EPS, gram: str = "auto") -> torch.Tensor:
    """R(Z) of each batch: z (..., N, D) -> (...,) = 1/2 logdet(I_D + D / (N eps^2) Z^T Z).

    The rows of this call only: :func:`tcr_loss` gathers every process's rows first.
    ``gram``: "auto" factors the smaller matrix (see :func:`tcr_loss`).
    """
    check_coeffs("tcr", {"eps": eps})
    _check_gram(gram)
    _check_batches(z)
    z = _upcast(z)
    n, d = z.shape[-2], z.shape[-1]
    if gram == "auto":
        gram = "samples" if n < d else "features"
    if gram == "samples":      # I_N + c Z Z^T: same determinant, N x N
        m = z @ z.transpose(-1, -2)
    else:                      # I_D + c Z^T Z: the definition, D x D
        m = z.transpose(-1, -2) @ z
    eye = torch.eye(m.shape[-1], dtype=m.dtype, device=m.device)
    return 0.5 * LogDetSPD.apply(eye + d / (n * eps**2) * m)


@_float32_or_wider
def tcr_loss(z: torch.Tensor, eps: float = TCR_EPS, *, gram: str = "auto") -> torch.Tensor:
    """Total coding rate, negated: the regulariser of TCR / EMP-SSL (from MCR2).

    z: (N, D). Returns -R(Z) with

        R(Z) = 1/2 logdet(I_D + D / (N eps^2) Z^T Z)      (Yu et al. 2020, with eps^2).

    This function squares ``eps``. EMP-SSL's ``--eps 0.2`` is eps^2: its code divides by 0.2
    where eps^2 stands, so the default eps = sqrt(0.2) gives the authors' coding rate (the
    paper's appendix C writes "eps = 0.2" for the same setting). Since
    det(I_D + c Z^T Z) = det(I_N + c Z Z^T) (Sylvester's determinant identity),
    ``gram="auto"`` factors the smaller of the two matrices (N x N when N < D);
    ``"samples"`` or ``"features"`` force one. The log-determinant comes from a Cholesky
    factor (the matrix is symmetric positive definite), not from LU. Always float32 or
    wider, even under autocast.
    """
    _check_tensor("z", z, 2, "(N, D)")
    check_coeffs("tcr", {"eps": eps})
    _check_gram(gram)
    _check_finite(z=z)
    return -coding_rate(gather_with_grad(_upcast(z)), eps, gram)


@_float32_or_wider
def nt_xent(z: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """Multi-positive NT-Xent of z: (B, n, D) -> 0-dim; each patch's positives are its image's.

    See :func:`simclr_loss` (n = 2) and :func:`multipatch_simclr_loss` for the formula.
    """
    check_coeffs("simclr", {"temperature": temperature})
    _check_patches(z)
    z = _upcast(z)
    b, n, _ = z.shape
    unit = F.normalize(z, dim=-1)                                  # (B, n, D)
    everyone, start = _global_rows(unit)                           # (B_all, n, D)
    anchors = unit.flatten(0, 1)                                   # (B n, D): row b n + i
    logits = anchors @ everyone.flatten(0, 1).T / temperature      # (B n, B_all n)
    own_column = torch.arange(b * n, device=z.device) + start * n
    # new_full fills on the device; torch.tensor(-inf, device=...) would copy from the host.
    logits = logits.index_put((torch.arange(b * n, device=z.device), own_column),
                              logits.new_full((), -math.inf))
    # sum_{j != i} <u_bi, u_bj> = <u_bi, sum_j u_bj - u_bi>: the image's other patches.
    others = (unit.sum(dim=1, keepdim=True) - unit).flatten(0, 1)
    positive = (anchors * others).sum(dim=1) / (temperature * (n - 1))
    return (torch.logsumexp(logits, dim=1) - positive).mean()


@_float32_or_wider
def simclr_loss(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """SimCLR's NT-Xent loss (Chen et al. 2020) over the 2N views.

    z1, z2: (N, D), row i of each from image i. With u = z / ||z|| (cosine similarity),
    s(a, b) = <u_a, u_b> / temperature, and V the 2N views, each view a has one positive p(a)
    (the other view of its image) and

        loss = mean_{a in V} [ -s(a, p(a)) + log sum_{b in V, b != a} exp s(a, b) ].

    The similarity term is -s(a, p(a)); the log-sum-exp over the 2N - 2 negatives (and the
    positive) is the regulariser. Invariant to rescaling each row of z by a positive number.
    """
    _check_pair(z1, z2)
    check_coeffs("simclr", {"temperature": temperature})
    return nt_xent(torch.stack([_upcast(z1), _upcast(z2)], dim=1), temperature)


# --------------------------------------------------------------------- multi-patch losses

def _checked_patches(z) -> torch.Tensor:
    """z: (B, n, D) checked (shape, dtype, finite) and in float32 or wider."""
    _check_patches(z)
    _check_finite(z=z)
    return _upcast(z)


def _by_patch_index(z: torch.Tensor) -> torch.Tensor:
    """(B, n, D) -> (n, B, D): batch i holds patch i of every image."""
    return z.transpose(0, 1)


@_float32_or_wider
def multipatch_spectral_loss(z: torch.Tensor, lam: float = 1.0, mean: str = "all"
                             ) -> torch.Tensor:
    """The multi-patch spectral loss of z: (B, n, D) -> 0-dim.

    With zbar_b = mean_i z_bi the image's mean projection::

        -mean_{b,i} <z_bi, zbar_b>  +  lam * mean_i mean_{b != c} <z_bi, z_ci>^2

    zbar_b includes z_bi itself, so the similarity term holds a self-pair part:
    <z_bi, zbar_b> = ((n-1)/n) <z_bi, zbar_b^{-i}> + ||z_bi||^2 / n, with zbar_b^{-i} the
    mean of the image's n - 1 other patches. In Proposition 3.1's terms the co-occurrence
    target becomes ((n-1)/n) P + diag(p)/n (every patch also "co-occurs" with itself);
    chapter 3 works it out. EMP-SSL-style training keeps it (one mean per image, and a
    weight 1/n that shrinks with many patches). ``mean="leave_one_out"`` compares each
    patch with zbar_b^{-i} instead, the unbiased estimate of the target P.
    """
    check_coeffs("spectral", {"lam": lam, "mean": mean})
    z = _checked_patches(z)
    b, n = z.shape[:2]
    total = z.sum(dim=1, keepdim=True)                                   # (B, 1, D)
    if mean == "all":
        target = total / n                                              # zbar_b, (B, 1, D)
    else:
        target = (total - z) / (n - 1)                                  # zbar_b^{-i}, (B, n, D)
    similarity = -(z * target).sum(dim=-1).mean()
    everyone, start = _global_rows(z)                                    # (B_all, n, D)
    squared = (_by_patch_index(z) @ everyone.permute(1, 2, 0)).square()  # (n, B, B_all)
    columns = torch.arange(everyone.shape[0], device=z.device)
    same_image = columns == (torch.arange(b, device=z.device) + start)[:, None]
    negatives = squared.masked_fill(same_image, 0.0).sum()
    return similarity + lam * negatives / (n * b * (everyone.shape[0] - 1))


@_float32_or_wider
def multipatch_vicreg_loss(z: torch.Tensor, inv_coeff: float = 25.0, var_coeff: float = 25.0,
                           cov_coeff: float = 1.0, gamma: float = 1.0,
                           eps: float = 1e-4) -> torch.Tensor:
    """The multi-patch VICReg loss of z: (B, n, D) -> 0-dim.

    With v and c as in :func:`vicreg_loss` (:func:`variance_term`, :func:`covariance_term`)
    and Z_i = z[:, i] the batch of patch i of every image::

        inv_coeff * mean_{b,i,d} (z_bid - zbar_bd)^2
        + var_coeff * mean_i v(Z_i)  +  cov_coeff * mean_i c(Z_i)

    With n = 2 it has a quarter of the two-view invariance and half its variance and
    covariance terms (means over the n indices, not sums over two views).
    """
    check_coeffs("vicreg", {"inv_coeff": inv_coeff, "var_coeff": var_coeff,
                            "cov_coeff": cov_coeff, "gamma": gamma, "eps": eps})
    z = _checked_patches(z)
    invariance = (z - z.mean(dim=1, keepdim=True)).square().mean()
    per_index = _by_patch_index(gather_with_grad(z))                     # (n, B_all, D)
    variance = variance_term(per_index, gamma, eps).mean()
    covariance = covariance_term(per_index).mean()
    return inv_coeff * invariance + var_coeff * variance + cov_coeff * covariance


@_float32_or_wider
def multipatch_tcr_loss(z: torch.Tensor, lam: float = 30.0, eps: float = TCR_EPS,
                        normalize: bool = True) -> torch.Tensor:
    """The multi-patch TCR loss of z: (B, n, D) -> 0-dim (EMP-SSL's objective).

    Defaults are appendix C's CIFAR values; EMP-SSL's ``--eps 0.2`` is eps^2, see
    :func:`tcr_loss`. With Z_i = z[:, i] the batch of patch i of every image::

        mean_i tcr_loss(Z_i, eps)  -  lam * mean_{b,i} cos(z_bi, zbar_b)

    With ``normalize`` each z_bi is first divided by its norm, as EMP-SSL does; without
    it the coding rate grows without bound as z is scaled up.
    """
    check_coeffs("tcr", {"lam": lam, "eps": eps, "normalize": normalize})
    z = _checked_patches(z)
    if normalize:
        z = F.normalize(z, dim=-1)
    mean = z.mean(dim=1, keepdim=True).expand_as(z)
    similarity = F.cosine_similarity(z, mean, dim=-1).mean()
    rates = coding_rate(_by_patch_index(gather_with_grad(z)), eps)       # (n,)
    return -rates.mean() - lam * similarity


@_float32_or_wider
def multipatch_simclr_loss(z: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """The multi-patch SimCLR loss of z: (B, n, D) -> 0-dim: NT-Xent over the B n patches.

    With u = z / ||z|| and s = <u, u'> / temperature, patch (b, i) has as positives the
    n - 1 other patches of image b, and as negatives every patch of every other image::

        mean_{b,i} [ -1/(n-1) sum_{j != i} s(bi, bj) + log sum_{(c,k) != (b,i)} exp s(bi, ck) ]

    Its similarity term is an affine function of <u_bi, mean_j u_bj>, the cosine-like
    similarity to the image's mean; with n = 2 it is :func:`simclr_loss` exactly.
    """
    check_coeffs("simclr", {"temperature": temperature})
    return nt_xent(_checked_patches(z), temperature)


_MULTIPATCH: dict[str, Callable[..., torch.Tensor]] = {
    "simclr": multipatch_simclr_loss, "spectral": multipatch_spectral_loss,
    "tcr": multipatch_tcr_loss, "vicreg": multipatch_vicreg_loss}
assert set(_MULTIPATCH) == set(COEFFICIENTS), "every loss needs its coefficients' table"


@_float32_or_wider
def multipatch_loss(z: torch.Tensor, kind: str, **coeffs: float) -> torch.Tensor:
    """The multi-patch objective: every patch against its image's mean, plus a regulariser.

    z: (B, n, D), z_bi the projection of patch i of image b; zbar_b = mean_i z_bi is the
    image's mean projection (a "bag", kept in the graph, not detached). Z_i = z[:, i, :] is
    the (B, D) batch of patch i of every image. ``kind`` names the loss, and ``coeffs`` are
    its keyword coefficients (defaults in :data:`cooc_minimal.coefficients.COEFFICIENTS`):

    - ``"spectral"``: :func:`multipatch_spectral_loss` (lam = 1, mean = "all");
    - ``"vicreg"``: :func:`multipatch_vicreg_loss` (inv_coeff = 25, var_coeff = 25,
      cov_coeff = 1, gamma = 1, eps = 1e-4);
    - ``"tcr"``: :func:`multipatch_tcr_loss` (lam = 30, eps = sqrt(0.2), normalize = True);
    - ``"simclr"``: :func:`multipatch_simclr_loss` (temperature = 0.1).

    An unknown kind or coefficient, or a coefficient out of range, is one sentence.
    """
    if kind not in _MULTIPATCH:
        raise ValueError(f"kind={kind!r} is not a multi-patch loss: choose one of "
                         f"{', '.join(sorted(_MULTIPATCH))}.")
    check_coeffs(kind, coeffs)
    return _MULTIPATCH[kind](z, **coeffs)


# ------------------------------------------------------------------------------ registry

class _Registry(dict):
    def __missing__(self, name: str):
        check_loss_name(name)  # an unknown name: UnknownLossError, with the known names
        raise KeyError(name)


#: name -> loss of z: (B, n, D), the projections of n patches (or views) of B images, with
#: keyword coefficients; ``LOSSES["vicreg"](z, var_coeff=12.5)`` is
#: ``multipatch_loss(z, "vicreg", var_coeff=12.5)``. The training script's entry point.
LOSSES: dict[str, Callable[..., torch.Tensor]] = _Registry(
    {name: functools.partial(multipatch_loss, kind=name) for name in sorted(_MULTIPATCH)})
