"""Checks for chapter 9, each against a slow, obvious loop written out here."""

import torch

from exercises.checktools import NO_LIBRARY, NO_LOOPS, close, close_number, exercise, unchanged_call


def _embedder(dim: int = 5, seed: int = 0):
    """A fixed non-linear patch embedding (M, 3, s, s) -> (M, dim), with rows of different
    norms, so that a dot product and a cosine differ."""
    weights = {}

    def embed(patches):
        flat = patches.reshape(patches.shape[0], -1)
        if flat.shape[1] not in weights:
            g = torch.Generator().manual_seed(seed + flat.shape[1])
            weights[flat.shape[1]] = torch.randn(flat.shape[1], dim, generator=g,
                                                 dtype=flat.dtype)
        return torch.tanh(flat @ weights[flat.shape[1]]) * (1 + flat.mean(dim=1, keepdim=True))

    return embed


def _similarity_by_loop(embed, images, box, size, stride, dot=False, swap=False):
    x0, y0, x1, y1 = box
    query = embed(images[0:1, :, x0:x1, y0:y1] if swap else images[0:1, :, y0:y1, x0:x1])[0]
    height, width = images.shape[-2:]
    out = torch.zeros(images.shape[0], (height - size) // stride + 1,
                      (width - size) // stride + 1, dtype=images.dtype)
    for b in range(images.shape[0]):
        for i, y in enumerate(range(0, height - size + 1, stride)):
            for j, x in enumerate(range(0, width - size + 1, stride)):
                v = embed(images[b:b + 1, :, y:y + size, x:x + size])[0]
                out[b, i, j] = v @ query if dot else v @ query / (v.norm() * query.norm())
    return out


@exercise(points=2, forbid=[NO_LIBRARY, NO_LOOPS])
def check_patch_similarity_map(answers) -> None:
    g = torch.Generator().manual_seed(1)
    images = torch.rand(3, 3, 14, 11, generator=g, dtype=torch.float64)  # H != W
    images[2, :, 6:10, 3:7] = images[0, :, 1:5, 5:9]  # a copy of the query, on the grid
    for box, size, stride in (((5, 1, 9, 5), 4, 3), ((2, 2, 7, 7), 5, 2), ((0, 0, 4, 4), 4, 4)):
        embed = _embedder()
        what = f"patch_similarity_map(query_box={box}, size={size}, stride={stride})"
        got = unchanged_call(answers.patch_similarity_map, embed, images, box, size, stride,
                             what=what)
        expected = _similarity_by_loop(embed, images, box, size, stride)
        close(got, expected, what, atol=1e-9, rtol=1e-9, mistakes=[
            ("divide by both vectors' norms: the cosine, not the dot product",
             _similarity_by_loop(embed, images, box, size, stride, dot=True)),
            ("the box is (x0, y0, x1, y1): x is the column, so the query is "
             "images[0, :, y0:y1, x0:x1]",
             _similarity_by_loop(embed, images, box, size, stride, swap=True)),
        ])
    got = answers.patch_similarity_map(_embedder(), images, (5, 1, 9, 5), 4, 3)
    assert abs(float(got[2, 2, 1]) - 1) < 1e-9 and float(got.max()) <= 1 + 1e-9, (
        "a grid patch with the query's pixels should score exactly 1, the maximum")


def _paint_by_loop(similarity, size, stride, height, width, mean=True):
    total = torch.zeros(similarity.shape[0], height, width, dtype=similarity.dtype)
    count = torch.zeros(height, width, dtype=similarity.dtype)
    for i in range(similarity.shape[1]):
        for j in range(similarity.shape[2]):
            for y in range(i * stride, i * stride + size):
                for x in range(j * stride, j * stride + size):
                    total[:, y, x] += similarity[:, i, j]
                    count[y, x] += 1
    return total / count if mean else total


@exercise(points=1, forbid=[NO_LIBRARY])
def check_paint(answers) -> None:
    g = torch.Generator().manual_seed(2)
    for size, stride, height, width in ((4, 2, 10, 8), (3, 3, 9, 6), (5, 1, 7, 9)):
        rows, cols = (height - size) // stride + 1, (width - size) // stride + 1
        similarity = torch.rand(2, rows, cols, generator=g, dtype=torch.float64) * 2 - 1
        what = f"paint(size={size}, stride={stride}, height={height}, width={width})"
        got = unchanged_call(answers.paint, similarity, size, stride, height, width, what=what)
        close(got, _paint_by_loop(similarity, size, stride, height, width), what, atol=1e-12,
              mistakes=[("average the patches covering each pixel: divide the sum by how many "
                         "cover it", _paint_by_loop(similarity, size, stride, height, width,
                                                    mean=False))])


def _agreement_by_loop(vectors, keys, k, skip_self=True, cosine=True):
    hits = 0
    for i in range(len(vectors)):
        scores = []
        for j in range(len(vectors)):
            if skip_self and j == i:
                continue
            a, b = vectors[i], vectors[j]
            scores.append((float(a @ b / (a.norm() * b.norm())) if cosine else float(a @ b), j))
        scores.sort(reverse=True)
        hits += sum(int(keys[j] == keys[i]) for _, j in scores[:k])
    return hits / (len(vectors) * k)


@exercise(points=1, forbid=[NO_LIBRARY, NO_LOOPS])
def check_neighbour_agreement(answers) -> None:
    g = torch.Generator().manual_seed(3)
    centres = torch.randn(4, 6, generator=g, dtype=torch.float64)
    keys = torch.arange(4).repeat_interleave(6)
    vectors = centres[keys] + 0.8 * torch.randn(24, 6, generator=g, dtype=torch.float64)
    vectors = vectors * torch.linspace(0.2, 5.0, 24, dtype=torch.float64)[:, None]  # norms vary
    for k in (1, 3, 7):
        what = f"neighbour_agreement(k={k})"
        got = unchanged_call(answers.neighbour_agreement, vectors, keys, k, what=what)
        close_number(got, _agreement_by_loop(vectors, keys, k), what, rel=1e-12, mistakes={
            "a row is not its own neighbour: leave it out before taking the k nearest":
                _agreement_by_loop(vectors, keys, k, skip_self=False),
            "rank by cosine similarity (divide by both norms), not by the dot product":
                _agreement_by_loop(vectors, keys, k, cosine=False),
        })
