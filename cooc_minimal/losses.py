"""The joint-embedding losses of the paper, each a similarity term plus a regulariser.

Proposition 3.1 of Chen et al. (2023) reads every loss here as

    loss = (similarity: pull the views of one image together)
         + (regulariser: keep the batch from collapsing onto a few directions).

Two-view losses take ``z1, z2: (N, D)``, row i of each projected from a view of image i.
Multi-patch losses take ``z: (B, n, D)``, the projections of n patches of each of B images.
Every function returns a 0-dim tensor and is differentiable.

Conventions shared by every function:

- **Precision.** Each loss computes in float32 or wider: half-precision inputs are upcast and
  autocast is switched off inside, because batch statistics (a log-determinant, a
  covariance) lose most of their digits in bfloat16. Chapter 3 shows it on TCR.
- **Checks.** Bad input (a wrong shape, an empty batch or N < 2, NaN or inf, two views of
  different dtypes or devices, a NaN, infinite or negative coefficient) raises a
  ``ValueError`` naming the argument before any work. The finiteness check costs one
  ``torch.isfinite(...).all()`` per call, the only host-device synchronisation a loss makes.
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
import numbers
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from cooc_minimal.distributed import gather_with_grad, rank

__all__ = [
    "LOSSES",
    "TCR_EPS",
    "UnknownLossError",
    "VICRegTerms",
    "multipatch_loss",
    "simclr_loss",
    "spectral_loss",
    "tcr_loss",
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


def _check_coefficient(name: str, value, strict: bool = False) -> None:
    """A loss coefficient: a finite real number, > 0 if ``strict`` else >= 0."""
    bound = "> 0" if strict else ">= 0"
    if (isinstance(value, bool) or not isinstance(value, numbers.Real)
            or not math.isfinite(value) or value < 0 or (strict and value == 0)):
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}.")


def _check_positive(name: str, value: float) -> None:
    _check_coefficient(name, value, strict=True)


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
    _check_coefficient("lam", lam)
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


def _variance(z: torch.Tensor, gamma: float, eps: float) -> torch.Tensor:
    """v(Z) per batch: z (..., N, D) -> (...,) = mean_j relu(gamma - sqrt(Var(Z[:, j]) + eps))."""
    std = torch.sqrt(z.var(dim=-2, unbiased=True) + eps)
    return F.relu(gamma - std).mean(dim=-1)


def _covariance(z: torch.Tensor) -> torch.Tensor:
    """c(Z) per batch: z (..., N, D) -> (...,) = (1/D) sum_{i != j} C_ij^2.

    C = Zc^T Zc / (N - 1) is D x D. When N < D the N x N Gram matrix is cheaper, and
    ||Zc^T Zc||_F = ||Zc Zc^T||_F (the duality of chapter 2), so
    sum_{i != j} C_ij^2 = ||Zc Zc^T||_F^2 / (N-1)^2 - sum_j C_jj^2.
    """
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
    _check_coefficient("gamma", gamma)
    _check_positive("eps", eps)
    z1, z2 = _upcast(z1), _upcast(z2)
    invariance = (z1 - z2).square().mean()
    both = gather_with_grad(torch.stack([z1, z2]).transpose(0, 1)).transpose(0, 1)  # (2, N, D)
    return VICRegTerms(invariance, _variance(both, gamma, eps).sum(), _covariance(both).sum())


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
    for name, value in (("inv_coeff", inv_coeff), ("var_coeff", var_coeff),
                        ("cov_coeff", cov_coeff)):
        _check_coefficient(name, value)
    inv, var, cov = vicreg_terms(z1, z2, gamma=gamma, eps=eps)
    return inv_coeff * inv + var_coeff * var + cov_coeff * cov


class _LogDetSPD(torch.autograd.Function):
    """logdet of symmetric positive-definite matrices a: (..., K, K) -> (...,).

    I + c Z Z^T has eigenvalues >= 1, so Cholesky cannot fail and costs half of LU:
    logdet = 2 sum log diag(L). ``cholesky_ex`` skips the error check, which on a GPU would
    wait for the device. Autograd through ``cholesky`` would run triangular solves for a full
    gradient of L; the gradient of logdet is simply a^{-1}, read off L with
    ``cholesky_inverse``: about 3x faster backward at K = 1024-2048 on a CPU.
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


def _coding_rate(z: torch.Tensor, eps: float, gram: str) -> torch.Tensor:
    """R(Z) per batch: z (..., N, D) -> (...,) = 1/2 logdet(I_D + D / (N eps^2) Z^T Z)."""
    n, d = z.shape[-2], z.shape[-1]
    if gram == "auto":
        gram = "samples" if n < d else "features"
    if gram == "samples":      # I_N + c Z Z^T: same determinant, N x N
        m = z @ z.transpose(-1, -2)
    elif gram == "features":   # I_D + c Z^T Z: the definition, D x D
        m = z.transpose(-1, -2) @ z
    else:
        raise ValueError(f"gram must be 'auto', 'samples' or 'features', got {gram!r}.")
    eye = torch.eye(m.shape[-1], dtype=m.dtype, device=m.device)
    return 0.5 * _LogDetSPD.apply(eye + d / (n * eps**2) * m)


#: TCR's default distortion: EMP-SSL's ``--eps 0.2`` is eps^2 (its code divides by 0.2 where
#: eps^2 stands), so the library's eps, which is squared, is sqrt(0.2) = 0.447...
TCR_EPS = math.sqrt(0.2)


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
    _check_positive("eps", eps)
    _check_finite(z=z)
    return -_coding_rate(gather_with_grad(_upcast(z)), eps, gram)


def _nt_xent(z: torch.Tensor, temperature: float) -> torch.Tensor:
    """Multi-positive NT-Xent of z: (B, n, D); see :func:`simclr_loss` and the multi-patch form."""
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
    _check_positive("temperature", temperature)
    return _nt_xent(torch.stack([_upcast(z1), _upcast(z2)], dim=1), temperature)


# --------------------------------------------------------------------- multi-patch losses

_DEFAULTS: dict[str, dict[str, float | bool | str]] = {
    "spectral": {"lam": 1.0, "mean": "all"},
    "vicreg": {"inv_coeff": 25.0, "var_coeff": 25.0, "cov_coeff": 1.0, "gamma": 1.0,
               "eps": 1e-4},
    "tcr": {"lam": 30.0, "eps": TCR_EPS, "normalize": True},
    "simclr": {"temperature": 0.1},
}
_STRICTLY_POSITIVE = {"eps", "temperature"}
_MEANS = ("all", "leave_one_out")


def _check_coefficients(kind: str, coeffs: dict) -> None:
    for name, value in coeffs.items():
        if name == "mean":
            if value not in _MEANS:
                raise ValueError(f"mean must be 'all' or 'leave_one_out', got {value!r}.")
        elif name == "normalize":
            if not isinstance(value, bool):
                raise ValueError(f"normalize must be True or False, got {value!r}.")
        else:
            _check_coefficient(name, value, strict=name in _STRICTLY_POSITIVE)


def _by_patch_index(z: torch.Tensor) -> torch.Tensor:
    """(B, n, D) -> (n, B, D): batch i holds patch i of every image."""
    return z.transpose(0, 1)


def _multipatch_spectral(z: torch.Tensor, lam: float, mean: str) -> torch.Tensor:
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
    return similarity + lam * negatives / (z.shape[1] * b * (everyone.shape[0] - 1))


def _multipatch_vicreg(z: torch.Tensor, inv_coeff: float, var_coeff: float, cov_coeff: float,
                       gamma: float, eps: float) -> torch.Tensor:
    invariance = (z - z.mean(dim=1, keepdim=True)).square().mean()
    per_index = _by_patch_index(gather_with_grad(z))                     # (n, B_all, D)
    variance = _variance(per_index, gamma, eps).mean()
    covariance = _covariance(per_index).mean()
    return inv_coeff * invariance + var_coeff * variance + cov_coeff * covariance


def _multipatch_tcr(z: torch.Tensor, lam: float, eps: float, normalize: bool) -> torch.Tensor:
    if normalize:
        z = F.normalize(z, dim=-1)
    mean = z.mean(dim=1, keepdim=True).expand_as(z)
    similarity = F.cosine_similarity(z, mean, dim=-1).mean()
    rates = _coding_rate(_by_patch_index(gather_with_grad(z)), eps, "auto")  # (n,)
    return -rates.mean() - lam * similarity


def _multipatch_simclr(z: torch.Tensor, temperature: float) -> torch.Tensor:
    return _nt_xent(z, temperature)


_MULTIPATCH = {"spectral": _multipatch_spectral, "vicreg": _multipatch_vicreg,
               "tcr": _multipatch_tcr, "simclr": _multipatch_simclr}


@_float32_or_wider
def multipatch_loss(z: torch.Tensor, kind: str, **coeffs: float) -> torch.Tensor:
    """The multi-patch objective: every patch against its image's mean, plus a regulariser.

    z: (B, n, D), z_bi the projection of patch i of image b; zbar_b = mean_i z_bi is the
    image's mean projection (a "bag", kept in the graph, not detached). Z_i = z[:, i, :] is
    the (B, D) batch of patch i of every image. ``kind`` and its coefficients (defaults in
    brackets):

    ``"spectral"`` (lam = 1, mean = "all")::

        -mean_{b,i} <z_bi, zbar_b>  +  lam * mean_i mean_{b != c} <z_bi, z_ci>^2

      zbar_b includes z_bi itself, so the similarity term holds a self-pair part:
      <z_bi, zbar_b> = ((n-1)/n) <z_bi, zbar_b^{-i}> + ||z_bi||^2 / n, with zbar_b^{-i} the
      mean of the image's n - 1 other patches. In Proposition 3.1's terms the co-occurrence
      target becomes ((n-1)/n) P + diag(p)/n (every patch also "co-occurs" with itself);
      chapter 3 works it out. EMP-SSL-style training keeps it (one mean per image, and a
      weight 1/n that shrinks with many patches). ``mean="leave_one_out"`` compares each
      patch with zbar_b^{-i} instead, the unbiased estimate of the target P.

    ``"vicreg"`` (inv_coeff = 25, var_coeff = 25, cov_coeff = 1, gamma = 1, eps = 1e-4),
    with v and c as in :func:`vicreg_loss`::

        inv_coeff * mean_{b,i,d} (z_bid - zbar_bd)^2
        + var_coeff * mean_i v(Z_i)  +  cov_coeff * mean_i c(Z_i)

    ``"tcr"`` (lam = 30, eps = sqrt(0.2), normalize = True; appendix C's CIFAR values and
    EMP-SSL's objective; EMP-SSL's ``--eps 0.2`` is eps^2, see :func:`tcr_loss`)::

        mean_i tcr_loss(Z_i, eps)  -  lam * mean_{b,i} cos(z_bi, zbar_b)

      With ``normalize`` each z_bi is first divided by its norm, as EMP-SSL does; without
      it the coding rate grows without bound as z is scaled up.

    ``"simclr"`` (temperature = 0.1): multi-positive NT-Xent over the B n patches. With
    u = z / ||z|| and s = <u, u'> / temperature, patch (b, i) has as positives the n - 1
    other patches of image b, and as negatives every patch of every other image::

        mean_{b,i} [ -1/(n-1) sum_{j != i} s(bi, bj) + log sum_{(c,k) != (b,i)} exp s(bi, ck) ]

      Its similarity term is an affine function of <u_bi, mean_j u_bj>, the cosine-like
      similarity to the image's mean; with n = 2 it is :func:`simclr_loss` exactly.

    With n = 2, the VICReg form has a quarter of the two-view invariance and half its
    variance and covariance terms (means over the n indices, not sums over two views).
    """
    if kind not in _MULTIPATCH:
        raise ValueError(f"kind={kind!r} is not a multi-patch loss: choose one of "
                         f"{', '.join(sorted(_MULTIPATCH))}.")
    unknown = sorted(set(coeffs) - set(_DEFAULTS[kind]))
    if unknown:
        raise ValueError(f"multipatch_loss(kind={kind!r}) does not take {', '.join(unknown)}: "
                         f"its coefficients are {', '.join(_DEFAULTS[kind])}.")
    coeffs = {**_DEFAULTS[kind], **coeffs}
    _check_coefficients(kind, coeffs)
    _check_tensor("z", z, 3, "(B, n, D)")
    if z.shape[1] < 2:
        raise ValueError(f"z has shape {tuple(z.shape)}: the multi-patch objective needs at "
                         f"least 2 patches per image (shape (B, n, D) with n >= 2).")
    _check_finite(z=z)
    return _MULTIPATCH[kind](_upcast(z), **coeffs)


# ------------------------------------------------------------------------------ registry

class UnknownLossError(KeyError, ValueError):
    """An unknown name was looked up in :data:`LOSSES` (both a KeyError and a ValueError)."""

    def __str__(self) -> str:
        return str(self.args[0])


class _Registry(dict):
    def __missing__(self, name: str):
        raise UnknownLossError(f"There is no loss called {name!r}: the known losses are "
                               f"{', '.join(sorted(self))}.")


#: name -> loss of z: (B, n, D), the projections of n patches (or views) of B images, with
#: keyword coefficients; ``LOSSES["vicreg"](z, var_coeff=12.5)`` is
#: ``multipatch_loss(z, "vicreg", var_coeff=12.5)``. The training script's entry point.
LOSSES: dict[str, Callable[..., torch.Tensor]] = _Registry(
    {name: functools.partial(multipatch_loss, kind=name) for name in sorted(_MULTIPATCH)})
