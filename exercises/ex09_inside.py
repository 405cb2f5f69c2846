"""Chapter 9: a similarity map from patch embeddings, painting it, and neighbour agreement.

Edit the functions below, then run ``make check-exercises CHAPTER=09``. The tasks, with
hints, are on the book page "Exercises 9". Leave the inputs unchanged and do not import
``cooc_minimal``.
"""

import torch


def patch_similarity_map(embed, images: torch.Tensor, query_box: tuple[int, int, int, int],
                         size: int, stride: int) -> torch.Tensor:
    """Cosine similarity of one query patch with every grid patch of every image.

    embed: a function from patches (M, 3, size, size) to vectors (M, D).
    images: (B, 3, H, W); the query is the patch ``images[0, :, y0:y1, x0:x1]`` of
    ``query_box = (x0, y0, x1, y1)``, with x1 - x0 = y1 - y0 = size.
    The grid: every ``size`` x ``size`` patch whose top-left corner is (x, y) with x and y
    multiples of ``stride`` (and the patch inside the image).
    Returns S: (B, rows, cols), S[b, i, j] the cosine similarity between the query's vector
    and the vector of the grid patch with top-left corner (x, y) = (j * stride, i * stride)
    of image b. Embed all grid patches with one call of ``embed`` (no loop over patches).
    """
    raise NotImplementedError


def paint(similarity: torch.Tensor, size: int, stride: int, height: int,
          width: int) -> torch.Tensor:
    """Spread grid scores over the pixels: each pixel gets the mean of the patches covering it.

    similarity: (B, rows, cols), as returned by ``patch_similarity_map`` for images of
    ``height`` x ``width``, with every pixel covered by at least one grid patch.
    Returns (B, height, width).
    """
    raise NotImplementedError


def neighbour_agreement(vectors: torch.Tensor, keys: torch.Tensor, k: int) -> float:
    """The fraction of the k nearest neighbours (cosine similarity) that share their row's key.

    vectors: (M, D); keys: (M,) integers (e.g. the part type of each patch). For every row,
    take the k other rows most cosine-similar to it (never the row itself), count those with
    the same key; return the count over all rows divided by M * k, as a Python float.
    No Python loop.
    """
    raise NotImplementedError
