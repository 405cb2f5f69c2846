"""Checks for chapter 7: each answer against the slow, obvious loop written out here."""

import math

import torch

from exercises.checktools import NO_LIBRARY, NO_LOOPS, NO_NUMPY, close, exercise, unchanged_call

RULES = [NO_LIBRARY, NO_LOOPS, NO_NUMPY]


class _Network:
    """A fixed linear map of the flattened patch that counts its calls and their shapes."""

    def __init__(self, channels: int, size: int, dim: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.weight = torch.randn(channels * size * size, dim, generator=g, dtype=torch.float64)
        self.shapes: list[tuple[int, ...]] = []

    def __call__(self, patches: torch.Tensor) -> torch.Tensor:
        self.shapes.append(tuple(patches.shape))
        return patches.reshape(patches.shape[0], -1) @ self.weight


def _bags_by_loop(net, images, corners, size, swap=False, reduce="mean"):
    bags = []
    for image, points in zip(images, corners, strict=True):
        rows = []
        for x0, y0 in points.tolist():
            if swap:
                x0, y0 = y0, x0
            rows.append(net.weight.T @ image[:, y0:y0 + size, x0:x0 + size].reshape(-1))
        stacked = torch.stack(rows)
        bags.append(stacked.mean(0) if reduce == "mean" else stacked.sum(0))
    return torch.stack(bags)


@exercise(points=2, forbid=RULES)
def check_bag_embeddings(answers) -> None:
    g = torch.Generator().manual_seed(0)
    for batch, n, channels, height, width, size in ((4, 6, 1, 9, 9, 3), (3, 5, 2, 10, 12, 4),
                                                    (2, 1, 3, 7, 9, 3), (2, 3, 1, 8, 8, 8)):
        images = torch.rand(batch, channels, height, width, generator=g, dtype=torch.float64)
        xs = torch.randint(0, width - size + 1, (batch, n, 1), generator=g)
        ys = torch.randint(0, height - size + 1, (batch, n, 1), generator=g)
        corners = torch.cat([xs, ys], dim=-1)
        net = _Network(channels, size, 6, seed=1)
        what = f"bag_embeddings({batch} images of {height}x{width}, {n} patches of {size})"
        result = unchanged_call(answers.bag_embeddings, net, images, corners, size, what=what)
        assert len(net.shapes) == 1, (
            f"{what} called embed {len(net.shapes)} times: call it once, on all "
            f"{batch * n} patches together (shape ({batch * n}, {channels}, {size}, {size}))")
        assert net.shapes[0] == (batch * n, channels, size, size), (
            f"{what} gave embed a tensor of shape {net.shapes[0]}: flatten the patches to "
            f"(B * n, C, size, size) = {(batch * n, channels, size, size)}")
        mistakes = {"average the n patch embeddings of each image, do not sum them":
                    _bags_by_loop(net, images, corners, size, reduce="sum")}
        if height == width:
            mistakes["corners are (x0, y0): x0 indexes the width (the last axis), y0 the "
                     "height"] = _bags_by_loop(net, images, corners, size, swap=True)
        close(result, _bags_by_loop(net, images, corners, size), what, atol=1e-9,
              mistakes=mistakes)


def _vote_by_loop(train_x, train_y, test_x, k, temperature, n_classes, cosine=True,
                  weighted=True, scale=True):
    predictions = []
    for q in test_x:
        if cosine:
            s = [float(q @ x / (q.norm() * x.norm())) for x in train_x]
        else:
            s = [float(q @ x) for x in train_x]
        nearest = sorted(range(len(s)), key=lambda j: -s[j])[:k]
        votes = [0.0] * n_classes
        top = s[nearest[0]]  # exp((s - top) / T): the same vote, without overflow
        for j in nearest:
            w = 1.0 if not weighted else math.exp((s[j] - top) / (temperature if scale else 1.0))
            votes[int(train_y[j])] += w
        predictions.append(max(range(n_classes), key=lambda c: votes[c]))
    return torch.tensor(predictions)


@exercise(points=2, forbid=RULES)
def check_knn_classify(answers) -> None:
    # One close neighbour of class 0 against two farther ones of class 1: the weights decide.
    angles = torch.tensor([0.02, 0.6, -0.6], dtype=torch.float64)
    train_x = torch.stack([angles.cos(), angles.sin()], dim=1)  # unit rows
    train_y = torch.tensor([0, 1, 1])
    query = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    small = unchanged_call(answers.knn_classify, train_x, train_y, query, 3, 0.07, 2,
                           what="knn_classify")
    close(small, torch.tensor([0]), "knn_classify with one close neighbour of class 0 and two "
          "farther ones of class 1 (k = 3, T = 0.07)", atol=0,
          mistakes={"weight each neighbour's vote by exp(s_j / T) with T = 0.07: then the one "
                    "close neighbour outweighs the two farther ones": torch.tensor([1])})
    g = torch.Generator().manual_seed(2)
    for n_train, n_test, dim, classes, k, temperature in ((60, 40, 5, 4, 7, 0.07),
                                                          (30, 25, 3, 3, 1, 0.5),
                                                          (80, 30, 8, 5, 20, 0.07)):
        # rows of very different norms: the cosine, not the dot product, must rank them
        scales = torch.rand(n_train, 1, generator=g, dtype=torch.float64) * 10 + 0.1
        train_x = torch.randn(n_train, dim, generator=g, dtype=torch.float64) * scales
        train_y = torch.randint(0, classes, (n_train,), generator=g)
        test_x = torch.randn(n_test, dim, generator=g, dtype=torch.float64)
        args = (train_x, train_y, test_x, k, temperature, classes)
        what = f"knn_classify({n_train} training rows, {n_test} test rows, k={k}, T={temperature})"
        result = unchanged_call(answers.knn_classify, *args, what=what)
        assert isinstance(result, torch.Tensor) and not result.is_floating_point(), (
            f"{what} should return the labels as an integer tensor, got "
            f"{getattr(result, 'dtype', type(result).__name__)}")
        close(result, _vote_by_loop(*args), what, atol=0, mistakes={
            "rank and weigh the neighbours by cosine similarity: divide both sides by their "
            "norms": _vote_by_loop(*args, cosine=False),
            "divide the similarities by the temperature before exp": _vote_by_loop(*args,
                                                                                   scale=False),
            "weight each vote by exp(s_j / T), not 1": _vote_by_loop(*args, weighted=False)})


def _split_by_loop(tiles, parts, n_parts, per_image=False, distinct=False):
    """The part bags and nuisances, tile by tile; the flags make two common slips."""
    n_images, n_tiles, dim = tiles.shape
    part_bags, nuisances = [], []
    for n in range(n_images):
        means = {}
        for v in range(n_parts):
            rows = [tiles[i, t] for i in (range(n_images) if not per_image else [n])
                    for t in range(n_tiles) if int(parts[i, t]) == v]
            if rows:
                means[v] = torch.stack(rows).mean(0)
        seen = sorted({int(v) for v in parts[n]}) if distinct else [int(v) for v in parts[n]]
        part_bag = torch.stack([means[v] for v in seen]).mean(0)
        part_bags.append(part_bag)
        nuisances.append(tiles[n].mean(0) - part_bag)
    return torch.stack(part_bags), torch.stack(nuisances)


@exercise(points=2, forbid=RULES)
def check_split_bags(answers) -> None:
    g = torch.Generator().manual_seed(3)
    for n_images, n_tiles, dim, n_parts in ((6, 4, 3, 3), (10, 9, 5, 6), (4, 16, 2, 8)):
        parts = torch.randint(0, n_parts, (n_images, n_tiles), generator=g)
        parts[0, :n_parts] = torch.arange(n_parts)  # every part shows at least once
        tiles = torch.randn(n_images, n_tiles, dim, generator=g, dtype=torch.float64)
        what = f"split_bags({n_images} images of {n_tiles} tiles, {n_parts} parts)"
        result = unchanged_call(answers.split_bags, tiles, parts, n_parts, what=what)
        assert isinstance(result, tuple | list) and len(result) == 2, (
            f"{what} should return a pair (part bags, nuisances), got "
            f"{type(result).__name__}")
        part_bags, nuisances = _split_by_loop(tiles, parts, n_parts)
        per_image = _split_by_loop(tiles, parts, n_parts, per_image=True)
        distinct = _split_by_loop(tiles, parts, n_parts, distinct=True)
        close(result[0], part_bags, f"the part bags of {what}", atol=1e-9, mistakes={
            "m_v is the mean over the tiles of part v in *all* images, not in the image "
            "itself (then every nuisance would be 0)": per_image[0],
            "a part that shows on several tiles of an image counts once per tile: average "
            "m_{parts[n, t]} over all T tiles, not over the distinct parts": distinct[0]})
        close(result[1], nuisances, f"the nuisances of {what}", atol=1e-9, mistakes={
            "the nuisance is e = b - a, the bag minus the part bag, not a - b": -nuisances})


def _read_by_normal_equations(tiles, parts, bags, n_parts, bias=True, bias_on_bags=True):
    """[b, 1] R with R from the normal equations, the one-hot targets built row by row; the
    flags make two common slips."""
    rows = [list(tile) + ([1.0] if bias else []) for tile in tiles.tolist()]
    design = torch.tensor(rows, dtype=torch.float64)
    targets = torch.zeros(len(rows), n_parts, dtype=torch.float64)
    for row, part in enumerate(parts.tolist()):
        targets[row, part] = 1.0
    readout = torch.linalg.solve(design.T @ design, design.T @ targets)
    queries = [list(bag) + ([1.0] if bias else []) for bag in bags.tolist()]
    read = torch.tensor(queries, dtype=torch.float64)
    if bias and not bias_on_bags:
        return read[:, :-1] @ readout[:-1]
    return read @ readout


@exercise(points=2, forbid=RULES)
def check_read_histograms(answers) -> None:
    g = torch.Generator().manual_seed(4)
    for n_tiles, dim, n_parts, n_bags in ((40, 3, 4, 5), (200, 6, 8, 7), (90, 10, 3, 4)):
        means = torch.randn(n_parts, dim, generator=g, dtype=torch.float64) + 1.0
        parts = torch.randint(0, n_parts, (n_tiles,), generator=g)
        tiles = means[parts] + 0.5 * torch.randn(n_tiles, dim, generator=g, dtype=torch.float64)
        bags = torch.randn(n_bags, dim, generator=g, dtype=torch.float64) + 1.0
        args = (tiles, parts, bags, n_parts)
        what = f"read_histograms({n_tiles} tiles of {dim} features, {n_parts} parts, {n_bags} bags)"
        result = unchanged_call(answers.read_histograms, *args, what=what)
        close(result, _read_by_normal_equations(*args), what, atol=1e-8, mistakes={
            "append a 1 to every tile and every bag: the map is affine, [h, 1] R, and its "
            "last row is a bias": _read_by_normal_equations(*args, bias=False),
            "the bags need their 1 too: the bias row of R applies to [b, 1] as to [h, 1]":
                _read_by_normal_equations(*args, bias_on_bags=False)})
