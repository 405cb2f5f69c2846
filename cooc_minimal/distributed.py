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


class _GatherRows(torch.autograd.Function):
    """all_gather forward; backward: the sum over ranks of the gradients at each rank's
    rows, this rank's slice of it (what a reduce-scatter gives, with an all-reduce, which
    every backend has)."""

    @staticmethod
    def forward(ctx, z: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(z) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, z)
        ctx.rows = z.shape[0]
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        start = dist.get_rank() * ctx.rows
        return grad[start:start + ctx.rows]


def gather_with_grad(z: torch.Tensor) -> torch.Tensor:
    """Concatenate ``z`` from every rank along dim 0, keeping the autograd graph.

    z: (N, ...) on this rank, the same shape on every rank. Returns (world_size * N, ...),
    rank r's rows at ``[r * N, (r + 1) * N)``; with one process, ``z`` itself.

    Plain ``dist.all_gather`` cuts the graph: the other ranks' rows would be constants and
    the gradients wrong. Each rank's loss uses every rank's rows, so the gradient of the
    sum of the ranks' losses at rank r's rows is the sum, over ranks, of the gradients each
    rank's loss sends there: the backward all-reduces the incoming gradient and keeps this
    rank's slice. Public API only (``all_gather``, ``all_reduce``), so any torch 2 and any
    backend (gloo on a CPU, NCCL on GPUs) runs it.
    """
    if world_size() == 1:
        return z
    return _GatherRows.apply(z.contiguous())


# ------------------------------------------------------- training helpers (added for train.py)

def all_reduce_mean(value: torch.Tensor) -> torch.Tensor:
    """The mean of ``value`` over ranks (a copy; no gradient): how a loss share is logged."""
    value = value.detach().clone()
    if world_size() > 1:
        dist.all_reduce(value)
        value /= world_size()
    return value


def any_rank(flag: bool, device: torch.device | str = "cpu") -> bool:
    """True on every rank when ``flag`` is True on at least one (e.g. a stop signal)."""
    if world_size() == 1:
        return bool(flag)
    t = torch.tensor([int(flag)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


class GlobalBatchNorm(torch.nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics are those of the batch of every rank together.

    ``torch.nn.SyncBatchNorm`` does this on GPUs only; this module does it on any device
    (the course's CPU tests use gloo) with the differentiable :func:`gather_with_grad`: each
    rank gathers every rank's per-channel (mean, variance, count) and combines them, so the
    mean and the biased variance used to normalise are the global batch's, and the running
    variance gets the unbiased one, as BatchNorm does. In one process the same formula runs
    without a gather; in eval mode it is BatchNorm. Inputs (N, C), (N, C, L), (N, C, H, W).
    """

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"GlobalBatchNorm expects (N, C, ...) input, got {tuple(x.shape)}.")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        if not self.training:
            return super().forward(x)
        dims = [0, *range(2, x.dim())]
        xf = x if x.dtype == torch.float64 else x.float()
        channels, count = x.shape[1], xf.numel() // x.shape[1]
        # Local two-pass statistics, then Chan et al.'s combination over ranks (stable):
        # mean = sum_r n_r m_r / n,  var = sum_r n_r (v_r + (m_r - mean)^2) / n.
        local_mean = xf.mean(dims)
        local_var = (xf - local_mean.view(1, -1, *[1] * (x.dim() - 2))).square().mean(dims)
        counts = torch.full((1,), float(count), device=x.device, dtype=xf.dtype)
        every = gather_with_grad(torch.cat([local_mean, local_var, counts])[None])  # (R, 2C+1)
        means, variances, ns = every[:, :channels], every[:, channels:-1], every[:, -1:]
        n = ns.sum()
        mean = (ns * means).sum(dim=0) / n
        var = (ns * (variances + (means - mean).square())).sum(dim=0) / n
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else \
                    1.0 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), m)
                unbiased = var.detach() * n / (n - 1).clamp_min(1.0)
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), m)
        shape = [1, channels] + [1] * (x.dim() - 2)
        y = (xf - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


def convert_sync_batchnorm(module: torch.nn.Module) -> torch.nn.Module:
    """Replace every BatchNorm of ``module`` by :class:`GlobalBatchNorm`, keeping its state.

    (``torch.nn.SyncBatchNorm.convert_sync_batchnorm`` does the same for CUDA only.)
    """
    if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and \
            not isinstance(module, GlobalBatchNorm):
        reference = module.weight if module.affine else module.running_mean
        new = GlobalBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                              module.track_running_stats)
        if reference is not None:
            new = new.to(device=reference.device, dtype=reference.dtype)
        new.load_state_dict(module.state_dict())
        new.train(module.training)
        return new
    for name, child in module.named_children():
        module.add_module(name, convert_sync_batchnorm(child))
    return module
