"""Checks for chapter 5: the sampled co-occurrence and the Gram similarity against the library
(``cooccurrence``, ``toyworld``), the rank against the eigenvalues of generated worlds, and the
witness against the definition of the centred weighted Gram matrix."""

import torch

from cooc_minimal.cooccurrence import cooccurrence_matrix, normalized_cooccurrence
from cooc_minimal.toyworld import ToyWorld, gram_similarity, weighted_gram
from exercises.checktools import (
    ARITHMETIC_ONLY,
    NO_LIBRARY,
    NO_LOOPS,
    close,
    close_number,
    exercise,
    expect_tensor,
    unchanged_call,
)

RULES = [NO_LIBRARY, NO_LOOPS]


def _pair_counts(parts: torch.Tensor, n_parts: int) -> torch.Tensor:
    """Every ordered pair (tile s, tile t) of every image counted, a tile with itself too."""
    one_hot = torch.nn.functional.one_hot(parts, n_parts).double()  # (B, T, V)
    return torch.einsum("bsu,btv->uv", one_hot, one_hot)


def _cases():
    world = ToyWorld(seed=0)
    generator = torch.Generator().manual_seed(3)
    _, drawn = world.sample_parts(300, generator)  # (300, 16), as chapter 5's images
    _, few = ToyWorld(n_classes=4, n_parts=6, seed=1).sample_parts(40, generator, n_tiles=5)
    two = torch.tensor([[0, 1], [1, 1], [2, 0], [0, 0]])  # T = 2, type 3 never occurs
    return [(drawn, world.n_parts), (few, 6), (two, 4)]


@exercise(points=2, forbid=RULES)
def check_sampled_cooccurrence(answers) -> None:
    for parts, n_parts in _cases():
        images, tiles = parts.shape
        what = f"sampled_cooccurrence({images} images of {tiles} tiles, {n_parts} types)"
        result = unchanged_call(answers.sampled_cooccurrence, parts, n_parts, what=what)
        assert isinstance(result, tuple) and len(result) == 2, f"{what} should return (P, M)"
        P, M = result
        expected_P, _ = cooccurrence_matrix(parts, n_parts)
        with_self = _pair_counts(parts, n_parts)
        self_pairs = torch.diag(torch.bincount(parts.flatten(), minlength=n_parts).double())
        distinct = with_self - self_pairs
        itself = "pair each tile with the other T - 1 tiles of its image, not with itself too"
        close(P, expected_P, f"{what}, P", atol=1e-12, rtol=1e-9, mistakes=[
            (itself, with_self / (images * tiles * tiles)),
            (itself, with_self / (images * tiles * (tiles - 1))),
            ("P must sum to 1: an image has T (T - 1) ordered pairs of distinct tiles",
             distinct / (images * tiles * tiles)),
            ("count both orders of each pair (u, v) and (v, u), so that P is symmetric",
             distinct.triu() / distinct.triu().sum()),
        ])
        expected_M, _ = normalized_cooccurrence(expected_P)
        p = expected_P.sum(dim=1)
        assert not (M.is_floating_point() and M.isnan().any()), (
            f"{what}: M has NaN: a type that never occurs has p = 0; give its row and column "
            "of M zeros instead of dividing by 0")
        ratio = expected_P / torch.outer(p, p)
        close(M, expected_M, f"{what}, M", atol=1e-12, rtol=1e-9, mistakes={
            "that is D^-1 P, the conditional p(v | u); M = D^-1/2 P D^-1/2 divides entry (u, v) "
            "by sqrt(p_u p_v)": (expected_P / p[:, None]).nan_to_num(0.0),
            "that is the ratio P_uv / (p_u p_v) of the closed form; M divides by sqrt(p_u p_v)":
                ratio.nan_to_num(0.0),
        })


def _rank_of_m(K: int, V: int, seed: int) -> int:
    P, _ = ToyWorld(n_classes=K, n_parts=V, seed=seed).cooccurrence()
    M, _ = normalized_cooccurrence(P)
    eigenvalues = torch.linalg.eigvalsh(M)
    return int((eigenvalues.abs() > 1e-9 * eigenvalues.abs().max()).sum())


@exercise(points=1, forbid=[ARITHMETIC_ONLY])
def check_cooccurrence_rank(answers) -> None:
    for K, V, seed in ((10, 8, 0), (3, 8, 1), (8, 8, 3), (12, 3, 0), (1, 5, 2), (2, 7, 5),
                       (5, 2, 4)):
        close_number(answers.cooccurrence_rank(K, V), _rank_of_m(K, V, seed),
                     f"cooccurrence_rank(K={K}, V={V}), the number of non-zero eigenvalues of M "
                     f"for ToyWorld(n_classes={K}, n_parts={V})", mistakes={
                         "P = W^T diag(pi) W has rank at most rank W, and W (K, V) has only "
                         "K rows": V if K < V else -1,
                         "M is V x V: its rank cannot exceed V, whatever the number of "
                         "classes": K if K > V else -1,
                     })


def _embeddings(seed: int):
    g = torch.Generator().manual_seed(seed)
    V = 8
    p = torch.rand(V, generator=g, dtype=torch.float64) ** 3 + 0.01
    p = p / p.sum()  # every type occurs, at very different frequencies
    Z1 = torch.randn(V, 5, generator=g, dtype=torch.float64) + 2.0  # a large common mean
    Z2 = torch.randn(V, 3, generator=g, dtype=torch.float64) - 1.0
    return Z1, Z2, p


def _similarity(G1, G2):
    return float((G1 * G2).sum() / (G1.norm() * G2.norm()))


def _mean_centred_gram(Z, p, weight):
    U = weight[:, None] * Z
    U = U - U.mean(dim=0)
    return U @ U.T


@exercise(points=2, forbid=RULES)
def check_gram_similarity(answers) -> None:
    for seed in (0, 1, 2):
        Z1, Z2, p = _embeddings(seed)
        what = f"gram_similarity(Z1 of shape {tuple(Z1.shape)}, Z2 of shape {tuple(Z2.shape)}, p)"
        got = unchanged_call(answers.gram_similarity, Z1, Z2, p, what=what)
        expected = gram_similarity(Z1, Z2, p)
        root = p.sqrt()
        close_number(got, expected, what, rel=1e-9, abs_=1e-12, mistakes={
            "centre first: project the columns of U off the unit vector along sqrt(p), or "
            "the constant direction every embedding shares dominates":
                gram_similarity(Z1, Z2, p, centre=False),
            "centre U by projecting it off sqrt(p) / ||sqrt(p)||, not by subtracting the "
            "plain mean of each column (the two agree only for uniform p)":
                _similarity(_mean_centred_gram(Z1, p, root), _mean_centred_gram(Z2, p, root)),
            "U = diag(sqrt p) Z: weight the rows by sqrt(p), not by p":
                _similarity(weighted_gram(Z1 * root[:, None], p),
                            weighted_gram(Z2 * root[:, None], p)),
            "divide the inner product of G1 and G2 by both Frobenius norms":
                float((weighted_gram(Z1, p) * weighted_gram(Z2, p)).sum()),
        })
    Z1, Z2, p = _embeddings(0)
    g = torch.Generator().manual_seed(9)
    Q, _ = torch.linalg.qr(torch.randn(5, 5, generator=g, dtype=torch.float64))
    close_number(answers.gram_similarity(Z1, 3.0 * Z1 @ Q, p), 1.0,
                 "gram_similarity(Z, 3 Z Q, p) for a rotation Q (the same embedding, rotated "
                 "and scaled)", rel=1e-9)
    zero = torch.zeros_like(Z1)
    got = answers.gram_similarity(zero, Z2, p)
    assert not (isinstance(got, float) and got != got) and not (
        isinstance(got, torch.Tensor) and bool(got.isnan().any())), (
        "gram_similarity(0, Z2, p) is NaN: when a Gram matrix is zero, return 0 instead of "
        "dividing by its norm")
    close_number(got, 0.0, "gram_similarity of an all-zero embedding")


def given_weighted_gram(Z: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """The page's function, as found in a repository: centred by the column means."""
    U = p.sqrt()[:, None] * Z
    U = U - U.mean(dim=0)
    return U @ U.T


@exercise(points=1, forbid=[NO_LIBRARY])
def check_centring_bug_witness(answers) -> None:
    result = answers.centring_bug_witness()
    assert isinstance(result, tuple) and len(result) == 2, (
        "centring_bug_witness() should return a pair (Z, p)")
    Z, p = result
    expect_tensor(Z, "centring_bug_witness()'s Z")
    expect_tensor(p, "centring_bug_witness()'s p")
    assert Z.dim() == 2 and Z.shape[0] >= 2 and p.shape == (Z.shape[0],), (
        f"centring_bug_witness() should return Z (V, d) with V >= 2 and p (V,), got shapes "
        f"{tuple(Z.shape)} and {tuple(p.shape)}")
    Z, p = Z.detach().double(), p.detach().double()
    assert bool(Z.isfinite().all()), "centring_bug_witness()'s Z should be finite"
    assert bool((p >= 0).all()) and abs(float(p.sum()) - 1) < 1e-9, (
        f"centring_bug_witness()'s p should be frequencies: >= 0 and summing to 1 (it sums to "
        f"{float(p.sum()):.6g})")
    given, right = given_weighted_gram(Z, p), weighted_gram(Z, p)
    gap = float((given - right).norm())
    scale = max(float(given.norm()), float(right.norm()), 1e-300)
    assert gap > 0.01 * scale, (
        f"on your (Z, p) the given function is right (its matrix is within {gap / scale:.2g} "
        "of the definition's): find frequencies where subtracting the column means is not "
        "the projection off sqrt(p)")
