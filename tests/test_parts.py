"""cooc_minimal.parts: each number against a case whose answer is known, and against a
plain loop that computes it another way; the claims end to end on a model that reads a
tile's part from its pixels."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cooc_minimal import parts
from cooc_minimal.cooccurrence import closed_form_embedding
from cooc_minimal.toyworld import ToySample, ToyWorld


def synthetic_tiles(vectors_of, n_images: int = 60, grid: int = 16, seed: int = 0):
    """TileVectors of ``n_images`` images of ``grid`` tiles with parts drawn from a toy
    world and random colours; ``vectors_of(parts, colour)`` makes the vectors."""
    world = ToyWorld(seed=0)
    generator = torch.Generator().manual_seed(seed)
    _, part = world.sample_parts(n_images, generator, grid)
    part = part.flatten()
    colour = torch.rand(len(part), 3, generator=generator)
    image = torch.arange(n_images).repeat_interleave(grid)
    return parts.TileVectors(vectors_of(part, colour), part, image, colour), world


def one_hot(part, colour):
    return torch.nn.functional.one_hot(part, 8).float() + 0.01 * colour.sum(1, keepdim=True)


def chance(part):
    share = torch.bincount(part, minlength=8).double() / len(part)
    return share.square().sum().item()


def loop_agreement(tiles, queries, k):
    """The same share, one query at a time with Python lists."""
    unit = torch.nn.functional.normalize(tiles.vectors, dim=1)
    total = 0
    for i in queries.tolist():
        distance = (tiles.colour - tiles.colour[i]).norm(dim=1)
        median = distance.median()
        candidates = [j for j in range(len(tiles.parts)) if tiles.image[j] != tiles.image[i]
                      and distance[j] >= median]
        ranked = sorted(candidates, key=lambda j: -float(unit[i] @ unit[j]))[:k]
        total += sum(int(tiles.parts[j] == tiles.parts[i]) for j in ranked)
    return total / (len(queries) * k)


def test_agreement_is_one_for_parts_and_chance_for_paint():
    tiles, _ = synthetic_tiles(one_hot)
    queries = parts.query_rows(len(tiles.parts), 200)
    assert parts.agreement_across_nuisance(tiles, queries) == 1.0
    paint, _ = synthetic_tiles(lambda part, colour: colour)  # vectors follow the paint only
    figure = parts.agreement_across_nuisance(paint, queries)
    assert abs(figure - chance(paint.parts)) < 0.06


def test_agreement_matches_a_loop():
    tiles, _ = synthetic_tiles(lambda part, colour: one_hot(part, colour)
                               + 0.8 * torch.randn(len(part), 8,
                                                   generator=torch.Generator().manual_seed(1)),
                               n_images=20)
    queries = parts.query_rows(len(tiles.parts), 30, seed=3)
    assert parts.agreement_across_nuisance(tiles, queries, k=5) == pytest.approx(
        loop_agreement(tiles, queries, 5), abs=1e-6)


def test_colour_far_keeps_the_farther_half_and_never_the_query():
    colour = torch.rand(101, 3, generator=torch.Generator().manual_seed(0))
    queries = torch.tensor([0, 5, 50])
    far = parts.colour_far(colour, queries)
    assert far.shape == (3, 101) and not far[torch.arange(3), queries].any()
    assert far.sum(dim=1).tolist() == [51, 51, 51]


def test_r_precision_is_one_for_parts_and_chance_for_noise():
    tiles, _ = synthetic_tiles(one_hot)
    queries = parts.query_rows(len(tiles.parts), 200)
    assert parts.r_precision(tiles.vectors, tiles.parts, queries, tiles.image) == 1.0
    noise = torch.randn(len(tiles.parts), 32, generator=torch.Generator().manual_seed(2))
    figure = parts.r_precision(noise, tiles.parts, queries, tiles.image)
    assert abs(figure - chance(tiles.parts)) < 0.05


def test_part_means_and_linked_cooccurrence():
    vectors = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0]])
    means = parts.part_means(vectors, torch.tensor([0, 0, 2]), 3)
    assert means[0].tolist() == [2.0, 0.0] and means[2].tolist() == [0.0, 2.0]
    assert means[1].isnan().all()
    linked = ToyWorld(seed=4)
    for world in (linked, ToyWorld(seed=4, independent_parts=True)):
        P, p = parts.linked_cooccurrence(world)
        assert torch.allclose(P, linked.cooccurrence()[0]) and torch.allclose(p, P.sum(1))


def test_ratio_fit_is_one_at_the_optimum_and_zero_for_parts_alone():
    P, _ = ToyWorld(seed=0).cooccurrence()
    optimum = closed_form_embedding(P, 8)
    assert parts.ratio_fit(optimum, P) == pytest.approx(1.0, abs=1e-9)
    rotation, _ = torch.linalg.qr(torch.randn(8, 8, dtype=torch.float64))
    moved = 3.0 * optimum @ rotation + torch.randn(8, dtype=torch.float64)  # scale, shift
    assert parts.ratio_fit(moved, P) == pytest.approx(1.0, abs=1e-9)
    assert parts.ratio_fit(torch.eye(8), P) == 0.0
    generator = torch.Generator().manual_seed(0)
    random = [parts.ratio_fit(torch.randn(8, 64, generator=generator), P) for _ in range(100)]
    assert abs(sum(random) / len(random)) < 0.1


class PartReader(nn.Module):
    """A stand-in network whose embedding of a tile is ``table[part]``, the part read from
    the tile's red channel (``part / 10``); green and blue are paint."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("table", table.float())

    def embed(self, x: torch.Tensor, space: str = "embedding") -> torch.Tensor:
        return self.table[(x[:, 0].mean(dim=(1, 2)) * 10).round().long()]


def painted_sample(world: ToyWorld, n: int = 80) -> ToySample:
    generator = torch.Generator().manual_seed(0)
    labels, part = world.sample_parts(n, generator)
    tiles = torch.rand(n, world.n_tiles, 3, 1, 1, generator=generator)
    tiles = tiles.expand(-1, -1, -1, world.tile, world.tile).clone()
    tiles[:, :, 0] = part[:, :, None, None] / 10
    grid = tiles.view(n, world.grid, world.grid, 3, world.tile, world.tile)
    images = grid.permute(0, 3, 1, 4, 2, 5).reshape(n, 3, world.size, world.size)
    return ToySample(images, labels, part)


def test_claims_hold_for_a_network_that_embeds_the_optimum():
    world = ToyWorld(seed=0)
    P, _ = world.cooccurrence()
    model = PartReader(closed_form_embedding(P, 8))
    sample = painted_sample(world)
    tiles = parts.tile_vectors(model, sample, world)
    assert torch.equal(tiles.parts, sample.parts.flatten())
    assert torch.allclose(tiles.vectors, model.table[sample.parts.flatten()])
    verdicts = parts.measure_parts(model, sample, world)
    assert [v.holds for v in verdicts] == [True] * 4
    assert [round(v.figure, 6) for v in verdicts[2:]] == [1.0, 1.0]
    constant = PartReader(torch.ones(8, 4))  # every tile the same vector: nothing holds
    assert not any(v.holds for v in parts.measure_parts(constant, sample, world))


def test_cosine_gap_reads_every_key_against_an_independent_count():
    # 3 parts, 4 tiles each, along 3 orthogonal axes: the same part at cosine 1 (scaled),
    # the others at 0; then a shared offset that raises every cosine alike.
    labels = torch.arange(3).repeat_interleave(4)
    vectors = torch.eye(3)[labels] * torch.linspace(1, 2, 12)[:, None]
    queries = torch.tensor([0, 5, 11])
    assert parts.cosine_gap(vectors, labels, queries) == pytest.approx(
        {"same part": 1.0, "other parts": 0.0, "gap": 1.0})
    shifted = vectors + 2.0
    unit = torch.nn.functional.normalize(shifted, dim=1)
    expected = []
    for q in queries.tolist():  # by a loop over keys, the query itself left out
        same = [float(unit[q] @ unit[k]) for k in range(12) if labels[k] == labels[q] and k != q]
        other = [float(unit[q] @ unit[k]) for k in range(12) if labels[k] != labels[q]]
        expected.append(sum(same) / len(same) - sum(other) / len(other))
    figure = parts.cosine_gap(shifted, labels, queries)
    assert figure["gap"] == pytest.approx(sum(expected) / 3, abs=1e-6)
    assert 0 < figure["gap"] < 1 and figure["other parts"] > 0.5
