"""Part-level numbers of a toy world: does a network's tile embedding know the parts, and
does it arrange them as Proposition 3.1 says? Each claim returns a
:class:`~cooc_minimal.verdict.Verdict`.

A toy sample (``world.sample(n, seed)``) gives N images of T = grid^2 tiles and the part of
every tile. Every tile is embedded on its own (``bags.grid_embeddings``), which gives M = N T
rows, in the row-major order of ``sample.parts.flatten()``:

- ``vectors`` (M, D), ``parts`` (M,), ``image`` (M,) the image each tile comes from, and
  ``colour`` (M, 3) the tile's mean RGB value, the nuisance the texture world paints anew
  at every occurrence (:class:`TileVectors`, :func:`tile_vectors`).

The numbers, each a plain function of tensors (tested on synthetic embeddings whose answer
is known) and a claim around it:

- :func:`agreement_across_nuisance`: of a query tile's k nearest tiles, taken from other
  images and among tiles painted far from the query's colour, the share that shows the
  query's part (claim :func:`parts_agree_across_nuisance`);
- :func:`r_precision`: the same share among the R nearest tiles of other images, R the
  number of tiles of the query's part there (claim :func:`parts_rank_first`);
- :func:`cosine_gap`: a tile's mean cosine to the tiles of its part minus that to the
  other parts' tiles (claim :func:`tiles_nearer_their_part`);
- :func:`part_means` and ``toyworld.gram_similarity`` against the closed form of
  ``cooccurrence.closed_form_embedding``: all inner products, part with itself included
  (claim :func:`parts_fit_prop31`);
- :func:`ratio_fit`: the inner products of *distinct* parts against the ratio
  P_uv / (p_u p_v) alone (claim :func:`pairs_follow_the_ratio`).

Proposition 3.1's optimum has ``w z_u^T z_v = P_uv / (p_u p_v)`` (w = 2 in the code's
convention): the ratio itself, not its logarithm, and inner products, not cosines. An
independent-parts world (P = p p^T) is compared with the *linked* world of the same weights,
:func:`linked_cooccurrence`: what the network would have fitted had there been co-occurrence.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from cooc_minimal.bags import grid_embeddings
from cooc_minimal.cooccurrence import closed_form_embedding
from cooc_minimal.runtime import evaluation_mode
from cooc_minimal.toyworld import ToySample, ToyWorld, gram_similarity
from cooc_minimal.verdict import Verdict, at_least

__all__ = ["TileVectors", "agreement_across_nuisance", "colour_far", "cosine_gap",
           "linked_cooccurrence", "measure_parts", "one_hot_gram", "pairs_follow_the_ratio",
           "part_gap", "part_means", "parts_agree_across_nuisance", "parts_fit_prop31",
           "parts_rank_first", "query_rows", "r_precision", "ratio_fit", "tile_vectors",
           "tiles_nearer_their_part"]


class TileVectors(NamedTuple):
    """Every tile of a toy sample: vectors (M, D) float32, parts (M,) int64, image (M,)
    int64 the index of its image, colour (M, 3) its mean RGB value; M = N * T, row-major."""

    vectors: torch.Tensor
    parts: torch.Tensor
    image: torch.Tensor
    colour: torch.Tensor


def tile_vectors(model: nn.Module, sample: ToySample, world: ToyWorld, *,
                 space: str = "embedding") -> TileVectors:
    """Embed each tile of ``sample`` on its own (eval mode, no autograd) and list its part,
    image and mean colour. images (N, 3, S, S) -> :class:`TileVectors` of M = N T rows."""
    images, tile = sample.images, world.tile
    with evaluation_mode(model):
        vectors = grid_embeddings(model, images, tile, space=space).flatten(0, 1).cpu()
    count = sample.parts.shape[1]
    image = torch.arange(images.shape[0]).repeat_interleave(count)
    # (N, 3, g, g, t, t) -> mean over the tile's pixels -> (N, g, g, 3) -> (M, 3)
    colour = images.unfold(2, tile, tile).unfold(3, tile, tile).mean(dim=(4, 5))
    colour = colour.permute(0, 2, 3, 1).reshape(-1, 3).cpu()
    return TileVectors(vectors, sample.parts.flatten().cpu(), image, colour)


def query_rows(count: int, n_queries: int, seed: int = 0) -> torch.Tensor:
    """``n_queries`` distinct rows of ``count``, drawn with ``seed``: (Q,) int64."""
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    return order[:min(n_queries, count)]


def _cosines(vectors: torch.Tensor, queries: torch.Tensor,
             groups: torch.Tensor) -> torch.Tensor:
    """(Q, M) cosine of each query row with every row; -inf on the query's own group."""
    unit = F.normalize(vectors.float(), dim=1)
    similarity = unit[queries] @ unit.T
    return similarity.masked_fill_(groups[queries][:, None] == groups[None, :], -torch.inf)


def colour_far(colour: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
    """(Q, M) bool: the rows whose colour is at least the median distance from the query's.

    colour: (M, C). Distance is Euclidean; each query keeps about half of the rows, the
    half painted least like it (its own row is at distance 0, hence never kept).
    """
    distance = torch.cdist(colour[queries].float(), colour.float())  # (Q, M)
    return distance >= distance.median(dim=1, keepdim=True).values.clamp_min(1e-12)


def agreement_across_nuisance(tiles: TileVectors, queries: torch.Tensor, *,
                              k: int = 10) -> float:
    """Share of the k nearest tiles that show the query's part, across occurrences.

    For query row i, candidates are the rows j of *other* images (``image[j] != image[i]``)
    in :func:`colour_far` of i; the k of highest cosine ``<h_i, h_j> / (|h_i| |h_j|)``
    form N_k(i). The figure is ``mean_i (1/k) sum_{j in N_k(i)} [part_j = part_i]``, in
    [0, 1]: 1 when parts come first whatever their paint, about ``sum_v p_v^2`` (chance)
    when the vectors follow the paint only.
    """
    similarity = _cosines(tiles.vectors, queries, tiles.image)
    similarity.masked_fill_(~colour_far(tiles.colour, queries), -torch.inf)
    nearest = similarity.topk(k, dim=1).indices  # (Q, k)
    return (tiles.parts[nearest] == tiles.parts[queries][:, None]).float().mean().item()


def r_precision(vectors: torch.Tensor, keys: torch.Tensor, queries: torch.Tensor,
                groups: torch.Tensor) -> float:
    """Mean over queries of the share of the query's key among its R nearest rows.

    vectors (M, D), keys (M,), groups (M,) (rows of the query's group are skipped),
    queries (Q,). R_i = the number of rows of key ``keys[i]`` outside i's group; the figure
    is ``mean_i |{j in N_{R_i}(i): keys[j] = keys[i]}| / R_i`` (cosine neighbours): 1 only
    if every row of the key comes before every other row; chance is ``sum_v p_v^2``.
    """
    similarity = _cosines(vectors, queries, groups)
    order = similarity.argsort(dim=1, descending=True)  # (Q, M)
    hits = keys[order] == keys[queries][:, None]
    same = (keys[None, :] == keys[queries][:, None]) & (groups[None, :] != groups[queries][:, None])
    r = same.sum(dim=1)  # (Q,)
    within = torch.arange(order.shape[1])[None, :] < r[:, None]
    return ((hits & within).sum(dim=1) / r.clamp_min(1)).mean().item()


def cosine_gap(vectors: torch.Tensor, parts: torch.Tensor,
               queries: torch.Tensor) -> dict[str, float]:
    """How much nearer a tile is to tiles of its own part than to the others, in cosine.

    vectors: (M, D), parts: (M,), queries: (Q,) rows of them. For each query, the mean
    cosine to every other tile of its part, and to every tile of another part; returns the
    means over the queries, ``{"same part", "other parts", "gap"}`` (gap = their difference).
    Unlike the neighbour shares it reads every key, so it does not saturate.
    """
    unit = F.normalize(vectors.float(), dim=1)
    cos = unit[queries] @ unit.T  # (Q, M)
    same = parts[queries][:, None] == parts[None, :]
    same[torch.arange(len(queries)), queries] = False  # not the query itself
    other = parts[queries][:, None] != parts[None, :]
    mean_same = (cos * same).sum(1) / same.sum(1)
    mean_other = (cos * other).sum(1) / other.sum(1)
    return {"same part": mean_same.mean().item(), "other parts": mean_other.mean().item(),
            "gap": (mean_same - mean_other).mean().item()}


def part_means(vectors: torch.Tensor, parts: torch.Tensor, n_parts: int) -> torch.Tensor:
    """Z: (V, D) float64, row v the mean of the vectors of part v (NaN if v never occurs)."""
    sums = torch.zeros(n_parts, vectors.shape[1], dtype=torch.float64)
    sums.index_add_(0, parts, vectors.double())
    return sums / torch.bincount(parts, minlength=n_parts).double()[:, None]


def linked_cooccurrence(world: ToyWorld) -> tuple[torch.Tensor, torch.Tensor]:
    """(P, p) of the world's classes *with* co-occurrence, ``P = W^T diag(pi) W``, also
    for an independent-parts world (whose own P is p p^T): (V, V) and (V,) float64."""
    joint = world.weights.T @ (world.class_prior[:, None] * world.weights)
    joint = (joint + joint.T) / 2
    return joint, joint.sum(dim=1)


def one_hot_gram(world: ToyWorld) -> float:
    """The Gram similarity of one-hot parts (Z = I) with Prop. 3.1's optimum for the linked
    world: parts told apart, nothing known of which go together. The floor a part embedding
    must clear before its Gram similarity says anything of co-occurrence (chapter 5)."""
    P, p = linked_cooccurrence(world)
    return gram_similarity(torch.eye(world.n_parts, dtype=torch.float64),
                           closed_form_embedding(P, world.n_parts), p)


def ratio_fit(Z: torch.Tensor, P: torch.Tensor) -> float:
    """How well the inner products of distinct types follow the ratio P_uv / (p_u p_v).

    Z: (V, d) type embeddings, P: (V, V) joint. With J = I - 11^T / V (removing the mean
    embedding, and the same on the target), G = J Z Z^T J and T = J R J, R = P / (p p^T):
    the Pearson correlation of G_uv and T_uv over the V (V - 1) / 2 pairs u < v. Prop.
    3.1's optimum (Z Z^T = R / w) scores 1, for any rotation, scale or shift of Z; an
    embedding that only tells the types apart (Z Z^T = a I + b 11^T) scores 0 (its G is
    constant off the diagonal), and so do random vectors on average.
    """
    V = Z.shape[0]
    p = P.sum(dim=1).double()
    J = torch.eye(V, dtype=torch.float64) - 1.0 / V
    G = J @ Z.double() @ Z.double().T @ J
    T = J @ (P.double() / torch.outer(p, p)) @ J
    pairs = torch.triu_indices(V, V, offset=1)
    g, t = G[pairs[0], pairs[1]], T[pairs[0], pairs[1]]
    g, t = g - g.mean(), t - t.mean()
    norms = g.norm() * t.norm()
    return (g @ t / norms).item() if norms > 1e-12 * max(1.0, g.abs().max().item()) else 0.0


# ------------------------------------------------------------------------------- claims

def parts_agree_across_nuisance(model: nn.Module, sample: ToySample, world: ToyWorld, *,
                                threshold: float = 0.9, k: int = 10, n_queries: int = 1000,
                                space: str = "embedding") -> Verdict:
    """A tile's k nearest tiles of other images, painted unlike it, show its part
    (:func:`agreement_across_nuisance` over ``n_queries`` query tiles)."""
    tiles = tile_vectors(model, sample, world, space=space)
    figure = agreement_across_nuisance(tiles, query_rows(len(tiles.parts), n_queries), k=k)
    return at_least(f"part agreement@{k}, other images painted unlike the query", figure,
                    threshold)


def part_gap(model: nn.Module, sample: ToySample, world: ToyWorld, *,
             n_queries: int = 500, space: str = "embedding") -> dict[str, float]:
    """:func:`cosine_gap` of the sample's tiles, ``n_queries`` of them as queries and every
    tile as a key: ``{"same part", "other parts", "gap"}``."""
    tiles = tile_vectors(model, sample, world, space=space)
    return cosine_gap(tiles.vectors, tiles.parts, query_rows(len(tiles.parts), n_queries))


def tiles_nearer_their_part(model: nn.Module, sample: ToySample, world: ToyWorld, *,
                            threshold: float = 0.1, n_queries: int = 500,
                            space: str = "embedding") -> Verdict:
    """A tile is nearer the tiles of its part than the others' (the gap of :func:`part_gap`)."""
    figure = part_gap(model, sample, world, n_queries=n_queries, space=space)["gap"]
    return at_least("a tile nearer its part's tiles than other parts' (mean cosine gap)",
                    figure, threshold)


def parts_rank_first(model: nn.Module, sample: ToySample, world: ToyWorld, *,
                     threshold: float = 0.5, n_queries: int = 1000,
                     space: str = "embedding") -> Verdict:
    """Tiles of the query's part come before the others (:func:`r_precision`, other images)."""
    tiles = tile_vectors(model, sample, world, space=space)
    queries = query_rows(len(tiles.parts), n_queries)
    return at_least("part R-precision, other images",
                    r_precision(tiles.vectors, tiles.parts, queries, tiles.image), threshold)


def parts_fit_prop31(model: nn.Module, sample: ToySample, world: ToyWorld, *,
                     threshold: float = 0.88, space: str = "embedding") -> Verdict:
    """The parts' mean embeddings have the Gram matrix of Prop. 3.1's optimum.

    Z = :func:`part_means` (V, D); the figure is ``gram_similarity(Z, Z*, p)`` with Z* =
    ``closed_form_embedding(P, V)`` of :func:`linked_cooccurrence`: the cosine of the
    centred, p-weighted Gram matrices (V, V), diagonal included. The diagonal alone says
    that parts differ: in ``TextureWorld()`` one-hot parts (Z = I) already score 0.86,
    hence the threshold above it.
    """
    tiles = tile_vectors(model, sample, world, space=space)
    P, p = linked_cooccurrence(world)
    Z = part_means(tiles.vectors, tiles.parts, world.n_parts)
    return at_least("part Gram matrix fits Prop. 3.1's optimum (Gram similarity)",
                    gram_similarity(Z, closed_form_embedding(P, world.n_parts), p), threshold)


def pairs_follow_the_ratio(model: nn.Module, sample: ToySample, world: ToyWorld, *,
                           threshold: float = 0.5, space: str = "embedding") -> Verdict:
    """Inner products of distinct parts' mean embeddings follow P_uv / (p_u p_v)
    (:func:`ratio_fit` against :func:`linked_cooccurrence`)."""
    tiles = tile_vectors(model, sample, world, space=space)
    P, _ = linked_cooccurrence(world)
    Z = part_means(tiles.vectors, tiles.parts, world.n_parts)
    return at_least("inner products of distinct parts follow the ratio (correlation)",
                    ratio_fit(Z, P), threshold)


#: Every claim of this module, in the order chapter 9 lists them.
CLAIMS = (parts_agree_across_nuisance, parts_rank_first, parts_fit_prop31,
          pairs_follow_the_ratio)


def measure_parts(model: nn.Module, sample: ToySample, world: ToyWorld) -> list[Verdict]:
    """The verdict of every claim of :data:`CLAIMS`, with its default threshold."""
    return [claim(model, sample, world) for claim in CLAIMS]
