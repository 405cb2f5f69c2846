"""Chapter 5: the toy world's co-occurrence from samples, its rank, the Gram similarity, a bug.

Edit the functions below, then run ``make check-exercises CHAPTER=05``. The tasks, with
hints, are on the book page "Exercises 5". Work on whole tensors (no Python loop over
images, tiles or part types), leave the inputs unchanged, and do not import
``cooc_minimal``.
"""

import torch


def sampled_cooccurrence(parts: torch.Tensor, n_parts: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The co-occurrence of part types in sampled images, and its normalised form.

    parts: (B, T) int64, the part type of each of the T tiles of B images, in
    ``[0, n_parts)``, T >= 2. Every ordered pair (u, v) of two *distinct* tiles of one image
    counts once, every image weighs the same. Return ``(P, M)``, both (n_parts, n_parts)
    float64: P the joint frequency of the pair's types (symmetric, sums to 1), and
    M = D^-1/2 P D^-1/2 with D = diag(p), p = P.sum(1); a type that never occurs (p = 0)
    gets zeros in its row and column of M.
    """
    raise NotImplementedError


def cooccurrence_rank(K: int, V: int) -> int:
    """Your prediction: the rank of M for a toy world of K classes and V part types.

    The world's joint is P = W^T diag(pi) W, with W (K, V) the classes' part distributions
    (rows drawn from a Dirichlet, so in general position) and pi > 0 the class prior. How
    many eigenvalues of M = D^-1/2 P D^-1/2 are not zero? A formula in K and V, with
    arithmetic only.
    """
    raise NotImplementedError


def gram_similarity(Z1: torch.Tensor, Z2: torch.Tensor, p: torch.Tensor) -> float:
    """How alike two embeddings of V types are, up to rotation and scale: in [-1, 1].

    Z1: (V, d1), Z2: (V, d2), p: (V,) type frequencies. For each Z: U = diag(sqrt p) Z,
    then centre, U <- U - e (e^T U) with e = sqrt(p) / ||sqrt(p)||, and G = U U^T (V, V).
    Return <G1, G2>_F / (||G1||_F ||G2||_F) as a number, and 0 when either G is zero.
    """
    raise NotImplementedError


def centring_bug_witness() -> tuple[torch.Tensor, torch.Tensor]:
    """An embedding and frequencies ``(Z, p)`` on which the page's ``given_weighted_gram`` is wrong.

    Z: (V, d) float64 with V >= 2, p: (V,) float64 frequencies (>= 0, summing to 1), for
    which ``given_weighted_gram(Z, p)`` and the centred weighted Gram matrix G of
    ``gram_similarity`` differ by more than 1% (in Frobenius norm).
    """
    raise NotImplementedError
