"""The few pieces of ``torch.distributed`` the losses need: who am I, how many are we, and a
gather that carries gradients.

Run under ``torchrun`` (or any launcher that calls ``init_process_group``), each rank holds a
slice of the batch. Batch statistics (a covariance, a coding rate, the negatives of a
contrastive loss) must see the whole batch, so the losses gather embeddings from every rank.
In a single process every function here is a no-op.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    """True when a default process group is initialised (whatever its size)."""
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    """How many ranks share the batch: 1 in a single process."""
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    """This process's rank: 0 in a single process."""
    return dist.get_rank() if is_distributed() else 0


def gather_with_grad(z: torch.Tensor) -> torch.Tensor:
    """Concatenate ``z`` from every rank along dim 0, keeping the autograd graph.

    z: (N, ...) on this rank, the same shape on every rank. Returns (world_size * N, ...),
    rank r's rows at ``[r * N, (r + 1) * N)``; with one process, ``z`` itself.

    Plain ``dist.all_gather`` cuts the graph: the other ranks' rows would be constants and
    the gradients wrong. The functional collective used here is differentiable; its backward
    sums, over ranks, the gradients that arrive at each rank's rows (a reduce-scatter).
    """
    if world_size() == 1:
        return z
    # Imported here: the module is private API, needed only on a multi-rank run.
    from torch.distributed import _functional_collectives as collectives

    gathered = collectives.all_gather_single(z.contiguous(), 0, dist.group.WORLD)
    # The result is an AsyncCollectiveTensor that waits on first use; waiting here (an
    # autograd-aware op) hands back a plain tensor.
    if isinstance(gathered, collectives.AsyncCollectiveTensor):
        gathered = collectives.wait_tensor(gathered)
    return gathered
