"""Chapter 7: reference answers (see exercises/ex07_evaluation.py for the tasks)."""

from collections.abc import Callable

import torch


def bag_embeddings(embed: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor,
                   corners: torch.Tensor, size: int) -> torch.Tensor:
    batch, n = corners.shape[:2]
    # Every size x size window as a view (B, C, H - size + 1, W - size + 1, size, size);
    # one advanced-indexing read by (image, y0, x0) copies the B * n patches.
    windows = images.unfold(2, size, 1).unfold(3, size, 1)
    image = torch.arange(batch).view(batch, 1)
    patches = windows[image, :, corners[..., 1], corners[..., 0]]  # (B, n, C, size, size)
    h = embed(patches.reshape(batch * n, *patches.shape[2:]))  # one forward pass
    return h.view(batch, n, -1).mean(dim=1)


def knn_classify(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor,
                 k: int, temperature: float, n_classes: int) -> torch.Tensor:
    bank = train_x / train_x.norm(dim=1, keepdim=True)
    query = test_x / test_x.norm(dim=1, keepdim=True)
    similarity, index = (query @ bank.T).topk(k, dim=1)  # (M, k)
    weight = (similarity / temperature).exp()
    votes = torch.zeros(test_x.shape[0], n_classes, dtype=weight.dtype)
    votes.scatter_add_(1, train_y[index], weight)
    return votes.argmax(dim=1)


def split_bags(tiles: torch.Tensor, parts: torch.Tensor,
               n_parts: int) -> tuple[torch.Tensor, torch.Tensor]:
    flat, ids = tiles.reshape(-1, tiles.shape[-1]), parts.reshape(-1)  # (N T, D), (N T,)
    sums = torch.zeros(n_parts, flat.shape[1], dtype=flat.dtype).index_add_(0, ids, flat)
    means = sums / torch.bincount(ids, minlength=n_parts).to(flat.dtype)[:, None]  # (V, D)
    part_bags = means[parts].mean(dim=1)  # (N, T, D) -> (N, D): a part counts once per tile
    return part_bags, tiles.mean(dim=1) - part_bags


def read_histograms(train_tiles: torch.Tensor, train_parts: torch.Tensor, bags: torch.Tensor,
                    n_parts: int) -> torch.Tensor:
    def with_one(x: torch.Tensor) -> torch.Tensor:  # (K, D) -> (K, D + 1): the bias's column
        return torch.cat([x, torch.ones(x.shape[0], 1, dtype=x.dtype)], dim=1)

    targets = torch.nn.functional.one_hot(train_parts, n_parts).to(train_tiles.dtype)  # (M, V)
    readout = torch.linalg.lstsq(with_one(train_tiles), targets).solution  # (D + 1, V)
    # Worked answer (7.4): for a bag b = (1/n) sum_t h_t, [b, 1] = (1/n) sum_t [h_t, 1]
    # (the 1 averages to 1), and a matrix product is linear, so [b, 1] R = (1/n) sum_t
    # [h_t, 1] R: the reading of the bag is the mean of its tiles' readings, about the part
    # histogram when every tile reads as its one-hot part. Nuisance along directions that R
    # sends to 0 (u with u^T R[:-1] = 0) never reaches the readings, whatever its size; a
    # cosine between raw bags weighs it as much as the parts.
    return with_one(bags) @ readout
