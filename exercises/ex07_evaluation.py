"""Chapter 7: a bag embedding in one forward pass, the weighted kNN vote, a bag split
into what its parts say and what the paint adds, and the part counts one linear map reads
from a bag.

Edit the functions below, then run ``make check-exercises CHAPTER=07``. The tasks, with
hints, are on the book page "Exercises 7". Work on whole batches (no Python loop over
images, patches or test rows), leave the inputs unchanged, and do not import
``cooc_minimal``.
"""

from collections.abc import Callable

import torch


def bag_embeddings(embed: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor,
                   corners: torch.Tensor, size: int) -> torch.Tensor:
    """The mean embedding of n patches per image, with a single call to ``embed``.

    embed: a network, from patches (N, C, size, size) to embeddings (N, D).
    images: (B, C, H, W). corners: (B, n, 2) int64, the top-left corner ``(x0, y0)`` of
    each patch: patch k of image b is ``images[b, :, y0:y0 + size, x0:x0 + size]``.
    Return (B, D): for each image, the mean of the embeddings of its n patches. Call
    ``embed`` once, on all B * n patches together.
    """
    raise NotImplementedError


def knn_classify(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor,
                 k: int, temperature: float, n_classes: int) -> torch.Tensor:
    """The weighted cosine k-nearest-neighbour vote of InstDisc and solo-learn.

    train_x: (N, D), train_y: (N,) int64 labels in [0, n_classes), test_x: (M, D).
    For each test row q, with s_j the cosine similarity of q and training row j: the k
    training rows of largest s_j vote for their label with weight exp(s_j / temperature).
    Return (M,) int64, the label with the largest total weight for each test row.
    """
    raise NotImplementedError


def split_bags(tiles: torch.Tensor, parts: torch.Tensor,
               n_parts: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each image's bag b = a + e: its part bag a and its nuisance e.

    tiles: (N, T, D), the embeddings of the T tiles of N images; parts: (N, T) int64 in
    [0, n_parts), the part of each tile; every part shows on at least one tile.
    m_v (D,) is the mean of the embeddings of all the tiles of part v, over all N images.
    Return (a, e), each (N, D): a_n = mean over t of m_{parts[n, t]}, e_n = b_n - a_n with
    b_n = mean over t of tiles[n, t].
    """
    raise NotImplementedError


def read_histograms(train_tiles: torch.Tensor, train_parts: torch.Tensor, bags: torch.Tensor,
                    n_parts: int) -> torch.Tensor:
    """The part histogram that one affine map, fitted on tiles, reads from each bag.

    train_tiles: (M, D) tile embeddings; train_parts: (M,) int64 in [0, n_parts), their
    parts; bags: (N, D). Fit R (D + 1, V), V = n_parts, minimising the squared error
    sum over tiles of ||[h, 1] R - onehot(v)||^2, with [h, 1] the tile's embedding followed
    by a 1. Return (N, V): [b, 1] R for each bag b. The tiles' features are linearly
    independent (M > D + 1 and full rank).
    """
    raise NotImplementedError
