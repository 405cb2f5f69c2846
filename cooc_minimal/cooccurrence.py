"""Patch co-occurrence over a finite vocabulary, the Proposition 3.1 objective and its optimum.

Conventions (shared by every chapter):

- ``P``: (V, V) float tensor, the joint distribution of the types of two *distinct* patches of
  the same image, both orders counted, so ``P`` is symmetric, non-negative and sums to 1;
- ``p = P.sum(1)``: (V,) its marginal, the frequency of each type;
- ``Z``: (V, d) one embedding per patch type, ``z_i = Z[i]``.

The objective of Proposition 3.1 over a finite vocabulary is

    L(Z) = sum_ij p_i p_j (w z_i^T z_j - P_ij / (p_i p_j))^2 = ||w U U^T - M||_F^2,

with ``U = D^{1/2} Z``, ``D = diag(p)`` and ``M = D^{-1/2} P D^{-1/2}``. ``w U U^T`` is
positive semi-definite of rank at most ``d``, so (Eckart-Young, restricted to such matrices) the
minimum keeps the ``d`` largest *positive* eigenvalues of ``M`` and is the sum of the squares
of all the other eigenvalues.
"""

from __future__ import annotations

import torch


def cooccurrence_matrix(patch_ids: torch.Tensor, vocab_size: int) -> tuple[torch.Tensor,
                                                                           torch.Tensor]:
    """The joint ``P`` of the types of two distinct patches of one image, and its marginal ``p``.

    patch_ids: (B, n) integer tensor, ``patch_ids[b, u]`` the type of patch ``u`` of image ``b``,
    in ``[0, vocab_size)``, with ``n >= 2``. Every image weighs the same, and within an image
    every ordered pair ``(u, v)`` with ``u != v`` counts once.
    Returns ``P``: (V, V) float64, symmetric, sums to 1; ``p = P.sum(1)``: (V,) float64.
    Both on ``patch_ids``'s device.
    """
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 1:
        raise ValueError(f"vocab_size must be a positive integer, got {vocab_size!r}.")
    if not isinstance(patch_ids, torch.Tensor) or patch_ids.dtype.is_floating_point \
            or patch_ids.dtype.is_complex or patch_ids.dtype == torch.bool:
        raise ValueError("patch_ids must be an integer tensor of patch types (a LongTensor), got "
                         f"{getattr(patch_ids, 'dtype', type(patch_ids).__name__)}.")
    if patch_ids.dim() != 2 or patch_ids.shape[0] < 1 or patch_ids.shape[1] < 2:
        raise ValueError("patch_ids must have shape (images, patches per image) with at least "
                         f"one image and two patches per image, got {tuple(patch_ids.shape)}.")
    if patch_ids.min() < 0 or patch_ids.max() >= vocab_size:
        raise ValueError(f"patch_ids must lie in [0, vocab_size={vocab_size}), got values from "
                         f"{patch_ids.min().item()} to {patch_ids.max().item()}.")
    images, n = patch_ids.shape
    counts = torch.zeros(images, vocab_size, dtype=torch.float64, device=patch_ids.device)
    counts.scatter_add_(1, patch_ids.long(), torch.ones_like(patch_ids, dtype=torch.float64))
    # Ordered pairs of distinct patches of image b: c_b c_b^T counts all (u, v), the diagonal
    # c_b,i also counts u == v; summed over images both are one matrix product and one sum.
    pairs = counts.T @ counts - torch.diag(counts.sum(0))
    P = pairs / (images * n * (n - 1))
    return P, P.sum(1)


def _check_joint(P: torch.Tensor) -> None:
    if not isinstance(P, torch.Tensor) or P.dim() != 2 or P.shape[0] != P.shape[1] \
            or P.shape[0] < 1:
        raise ValueError("P must be a square (V, V) tensor of co-occurrence probabilities, got "
                         f"{tuple(P.shape) if isinstance(P, torch.Tensor) else type(P).__name__}.")
    if not P.dtype.is_floating_point:
        raise ValueError(f"P must be a floating-point tensor, got {P.dtype}; convert it with "
                         "P.double().")
    if not torch.isfinite(P).all():
        raise ValueError("P has NaN or infinite entries; build it from counts that are finite.")
    if (P < 0).any():
        raise ValueError(f"P has negative entries (the smallest is {P.min().item():.3g}); "
                         "a co-occurrence matrix holds probabilities, so all must be >= 0.")
    scale = P.abs().max().clamp_min(torch.finfo(P.dtype).tiny)
    if ((P - P.T).abs().max() > 1e-6 * scale).item():
        raise ValueError("P is not symmetric; count both orders of each pair of patches, "
                         "or use (P + P.T) / 2.")
    if abs(P.sum().item() - 1.0) > 1e-6:
        raise ValueError(f"P must sum to 1 (a joint distribution), but it sums to "
                         f"{P.sum().item():.6g}; divide it by its sum.")


def _check_weight(w: float) -> None:
    if isinstance(w, bool) or not isinstance(w, int | float) or not w > 0:
        raise ValueError(f"w must be a positive number (the paper uses w = 2), got {w!r}.")


def normalized_cooccurrence(P: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``M = D^{-1/2} P D^{-1/2}`` and ``sqrt(p)``, with 0 for types that never occur.

    P: (V, V) joint as in :func:`cooccurrence_matrix`. Returns ``M``: (V, V), ``sqrt_p``: (V,).
    ``M`` has eigenvalue 1 with eigenvector ``sqrt(p)``, and its eigenvalues lie in [-1, 1].
    """
    _check_joint(P)
    sqrt_p = P.sum(1).clamp_min(0).sqrt()
    inv = torch.where(sqrt_p > 0, 1 / sqrt_p.clamp_min(torch.finfo(P.dtype).tiny),
                      torch.zeros_like(sqrt_p))
    return inv[:, None] * P * inv[None, :], sqrt_p


def self_included_cooccurrence(P: torch.Tensor, n: int) -> torch.Tensor:
    """P' = (n - 1)/n P + diag(p)/n: the joint a multi-patch loss fits when each of an
    image's n patches meets the mean of all n, itself included (``mean="all"``, chapter 3).

    Of the n patches in that mean, n - 1 are other patches of the image (pairs drawn from
    P) and one is the patch itself (its own type, with probability p). P: (V, V) joint;
    returns (V, V), with the same marginal p.
    """
    _check_joint(P)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a number of patches >= 1, got {n!r}.")
    return (n - 1) / n * P + torch.diag(P.sum(1)) / n


def prop31_objective(Z: torch.Tensor, P: torch.Tensor, w: float = 2.0) -> torch.Tensor:
    """``sum_ij p_i p_j (w z_i^T z_j - P_ij / (p_i p_j))^2``, differentiable in ``Z``.

    Z: (V, d) embeddings of the V patch types; P: (V, V) joint (symmetric, >= 0, sums to 1).
    Pairs with ``p_i p_j = 0`` contribute 0 (they never occur). Returns a scalar tensor.
    This is ``||w U U^T - M||_F^2`` with ``U = D^{1/2} Z``; it equals ``2 w`` times the
    expected spectral contrastive loss plus the constant ``sum_ij P_ij^2 / (p_i p_j)``.
    """
    _check_weight(w)
    if not isinstance(Z, torch.Tensor) or Z.dim() != 2 or not isinstance(P, torch.Tensor) \
            or Z.shape[0] != P.shape[0]:
        raise ValueError("Z must be a (V, d) tensor with one row per patch type of P, got "
                         f"{tuple(getattr(Z, 'shape', ()))} for P of shape "
                         f"{tuple(getattr(P, 'shape', ()))}.")
    M, sqrt_p = normalized_cooccurrence(P)
    U = sqrt_p.to(Z.dtype)[:, None] * Z
    return (w * U @ U.T - M.to(Z.dtype)).pow(2).sum()


def closed_form_embedding(P: torch.Tensor, d: int, w: float = 2.0) -> torch.Tensor:
    """The ``Z`` of shape (V, d) that minimises :func:`prop31_objective`.

    P: (V, V) joint; d: embedding dimension, ``1 <= d <= V``; w: the weight of eq. (3).
    With ``M = V_M diag(mu) V_M^T`` (eigenvalues in decreasing order), column ``a`` of
    ``U = D^{1/2} Z`` is ``sqrt(mu_a / w) v_a`` for the ``d`` largest eigenvalues that are
    positive (above round-off), and zero for the others: the optimum may have rank < d.
    ``Z = D^{-1/2} U``, with zero rows for types that never occur. The minimiser is unique
    only up to an orthogonal rotation ``Z Q`` (and within tied eigenvalues), so compare
    objectives or ``Z Z^T``, not ``Z``.
    Returns a float64 tensor on ``P``'s device.
    """
    _check_weight(w)
    if isinstance(d, bool) or not isinstance(d, int) or d < 1:
        raise ValueError(f"d must be a positive integer, got {d!r}.")
    if isinstance(P, torch.Tensor) and P.dim() == 2 and d > P.shape[0]:
        raise ValueError(f"d={d} is larger than the vocabulary ({P.shape[0]} patch types); "
                         f"an embedding of {P.shape[0]} types needs at most d={P.shape[0]}.")
    M, sqrt_p = normalized_cooccurrence(P)
    # eigh on the symmetrised matrix in float64: M's spectrum decides which columns survive.
    M = M.double()
    eigenvalues, eigenvectors = torch.linalg.eigh((M + M.T) / 2)
    top = eigenvalues.flip(0)[:d]
    vectors = eigenvectors.flip(1)[:, :d]
    # Eckart-Young over PSD matrices: negative eigenvalues stay unused. Eigenvalues within
    # round-off of 0 count as 0, so a rank-deficient M gives exactly-zero columns.
    tolerance = M.shape[0] * torch.finfo(torch.float64).eps * eigenvalues.abs().max()
    keep = torch.where(top > tolerance, top, torch.zeros_like(top))
    U = vectors * (keep / w).sqrt()[None, :]
    inv = torch.where(sqrt_p > 0, 1 / sqrt_p.double().clamp_min(1e-300),
                      torch.zeros_like(sqrt_p, dtype=torch.float64))
    return inv[:, None] * U
