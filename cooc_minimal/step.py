"""One training step, and what it needs: the model with its probe, the optimizer, the lr.

    images (b, 3, H, W) uint8 --make_views--> (b, n, 3, S, S) --model--> z (b, n, D) --loss-->
                                                                     h --bag mean--> probe

Under ``torchrun`` each rank holds b = B / world images of a global batch of B. Its loss is
its share of the global batch's loss (the losses gather every rank's z), DDP averages the
gradients, and every rank decides together whether the step diverged, so that all of them
stop at the same step.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Iterator

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from cooc_minimal.bags import embed_patches
from cooc_minimal.config import Config
from cooc_minimal.data import rank_rows
from cooc_minimal.distributed import all_reduce_mean, any_rank, convert_sync_batchnorm
from cooc_minimal.losses import LOSSES
from cooc_minimal.models import JointEmbedding, build_model
from cooc_minimal.optim import LARS, param_groups
from cooc_minimal.patches import crop_boxes, random_boxes
from cooc_minimal.runs import TrainingDiverged
from cooc_minimal.runtime import (
    autocast,
    available_memory,
    evaluation_mode,
    model_device,
    to_unit_float,
)
from cooc_minimal.views import make_views

__all__ = ["Trainee", "activation_bytes_per_image", "build_optimizer", "build_trainee",
           "choose_chunks", "chunked_backward", "chunks_needed", "kept_batchnorm_stats",
           "loss_bytes", "probe_accuracy", "probe_counts", "saved_tensor_bytes", "set_lr",
           "train_step"]


class Trainee(nn.Module):
    """The model and its optional online probe, in one module so that DDP syncs both."""

    def __init__(self, model: JointEmbedding, probe: nn.Linear | None) -> None:
        super().__init__()
        self.model, self.probe = model, probe

    def forward(self, x: torch.Tensor, b: int, n: int):
        """x: (b n, 3, S, S) -> z: (b, n, D), and probe logits (b, K) of the detached bag
        mean of h (None without a probe): the probe learns without steering the model."""
        h, z = self.model(x)
        logits = None
        if self.probe is not None:
            logits = self.probe(h.detach().float().view(b, n, -1).mean(dim=1))
        return z.view(b, n, -1), logits


def build_trainee(cfg: Config, n_classes: int, device: torch.device, world: int = 1) -> Trainee:
    """The model (seeded by ``cfg.seed``, identical on every rank) and its probe on ``device``;
    with ``sync_bn`` and several processes, BatchNorm sees the global batch."""
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.arch, cfg.projector, cifar_stem=cfg.cifar_stem, width=cfg.width)
    probe = nn.Linear(model.embedding_dim, n_classes) if cfg.probe else None
    trainee = Trainee(model, probe)
    if cfg.sync_bn and world > 1:  # in one process plain BatchNorm is the same thing
        if device.type == "cuda":
            trainee = nn.SyncBatchNorm.convert_sync_batchnorm(trainee)
        else:  # torch's SyncBatchNorm runs on GPUs only
            trainee = convert_sync_batchnorm(trainee)
    trainee = trainee.to(device)
    if cfg.channels_last:
        trainee = trainee.to(memory_format=torch.channels_last)
    return trainee


def build_optimizer(cfg: Config, trainee: Trainee) -> torch.optim.Optimizer:
    """LARS (or SGD / AdamW) on the model; the probe in its own group at a constant lr."""
    groups = param_groups(trainee.model, cfg.weight_decay)
    for group in groups:
        group["scheduled"] = True
        group["lars"] = group["lars"] and cfg.optimizer == "lars"
    if trainee.probe is not None:
        groups.append({"params": list(trainee.probe.parameters()), "weight_decay": 0.0,
                       "lars": False, "scheduled": False, "lr": cfg.probe_lr})
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr)
    return LARS(groups, lr=cfg.lr, momentum=cfg.momentum, eta=cfg.lars_eta)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set the learning rate of the scheduled groups (the model's, not the probe's)."""
    for group in optimizer.param_groups:
        if group.get("scheduled", True):
            group["lr"] = lr


def train_step(net: nn.Module, optimizer: torch.optim.Optimizer, images: torch.Tensor | None,
               labels: torch.Tensor, *, cfg: Config, generator: torch.Generator, rank: int = 0,
               world: int = 1, views: torch.Tensor | None = None, chunks: int | None = None,
               scaler: torch.amp.GradScaler | None = None) -> dict[str, float]:
    """One optimisation step on this rank's slice of a global batch.

    images: (b, 3, H, W) uint8, labels: (b,); net: a :class:`Trainee`, maybe wrapped in DDP
    or compiled. ``views`` (b, n, 3, S, S) in [0, 1], made elsewhere, replace the views of
    ``images`` (which may then be None): the benchmark times the model alone that way.
    ``chunks`` (default ``cfg.batch_chunks``, resolved by :func:`choose_chunks` when it is
    'auto'): C > 1 back-propagates the batch in C chunks of b / C images
    (:func:`chunked_backward`); 1 is the plain step. ``scaler``: fp16's GradScaler
    (``runtime.grad_scaler``), or None: the loss is scaled before backward (each chunk's
    backward by the same scale), the gradients unscaled before the step, and a step whose
    gradients are not finite is skipped.
    Returns the global batch's ``loss``, the probe's ``probe_loss`` and its number of
    correct answers ``probe_correct``, the same on every rank, and ``skipped`` (1.0 when the
    scaler skipped the step). A non-finite loss raises :class:`TrainingDiverged` before any
    weight changes; non-finite gradients of a finite loss do not (the scaler's business).
    """
    if views is None:
        views = make_views(images, cfg, generator, rank, world)          # (b, n, 3, S, S)
    chunks = cfg.batch_chunks if chunks is None else chunks
    if chunks == "auto":
        raise ValueError("batch_chunks = 'auto' is resolved once per run: pass "
                         "chunks=choose_chunks(cfg, trainee, device, world) to train_step.")
    b, n = views.shape[:2]
    x = views.flatten(0, 1)
    if cfg.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    if chunks > 1:
        shown = chunked_backward(net, optimizer, x, labels, b=b, n=n, chunks=chunks, cfg=cfg,
                                 world=world, scaler=scaler)
    else:
        with autocast(x.device, cfg.precision):
            z, logits = net(x, b, n)                                     # z: (b, n, D)
        loss, probe_loss, correct = _objective(z, logits, labels, cfg)
        shown = _shown_or_raise(loss, probe_loss, correct, world)
        total = loss if logits is None else loss + probe_loss
        optimizer.zero_grad(set_to_none=True)
        _scaled(total, scaler).backward()
    skipped = _optimizer_step(optimizer, scaler)
    loss_value, probe_value, correct_value = shown.tolist()
    return {"loss": loss_value, "probe_loss": probe_value, "probe_correct": correct_value,
            "skipped": float(skipped)}


def _scaled(loss: torch.Tensor, scaler: torch.amp.GradScaler | None) -> torch.Tensor:
    """``loss`` times the scaler's scale (fp16), or ``loss`` itself without a scaler."""
    return loss if scaler is None else scaler.scale(loss)


def _optimizer_step(optimizer: torch.optim.Optimizer,
                    scaler: torch.amp.GradScaler | None) -> bool:
    """Take the step; with a scaler, unscale the gradients first, and skip the step when
    one of them is not finite (the scale then shrinks). Returns whether it was skipped."""
    if scaler is None:
        optimizer.step()
        return False
    before = scaler.get_scale()
    scaler.step(optimizer)
    scaler.update()
    return scaler.get_scale() < before


def _objective(z: torch.Tensor, logits: torch.Tensor | None, labels: torch.Tensor,
               cfg: Config) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """z: (b, n, D), logits: (b, K) or None -> this rank's share of the loss, the probe's
    cross-entropy (0 without a probe) and its number of correct answers."""
    # The loss gathers z from every rank, so the ranks agree before any of them calls it.
    if any_rank(not torch.isfinite(z).all(), z.device):
        loss = torch.tensor(math.nan, device=z.device)
    else:
        loss = LOSSES[cfg.loss](z, **cfg.loss_coeffs)                    # this rank's share
    probe_loss, correct = torch.zeros((), device=z.device), torch.zeros(())
    if logits is not None:
        probe_loss = F.cross_entropy(logits.float(), labels)
        correct = (logits.argmax(dim=1) == labels).float().sum()
    return loss, probe_loss, correct


def _shown_or_raise(loss: torch.Tensor, probe_loss: torch.Tensor, correct: torch.Tensor,
                    world: int) -> torch.Tensor:
    """(loss, probe_loss, probe_correct) of the global batch, one all-reduce for the three:
    the means of the shares; :class:`TrainingDiverged` on every rank if the loss is not
    finite (the same mean everywhere, so that all ranks stop together)."""
    shown = all_reduce_mean(torch.stack([loss.detach().float(), probe_loss.detach().float(),
                                         correct.to(loss.device) * world]))
    if not torch.isfinite(shown[0]):
        raise TrainingDiverged(f"The loss became {shown[0].item()}.", shown[0].item())
    return shown


def chunked_backward(net: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor,
                     labels: torch.Tensor, *, b: int, n: int, chunks: int, cfg: Config,
                     world: int = 1, scaler: torch.amp.GradScaler | None = None
                     ) -> torch.Tensor:
    """The gradient of the whole batch's loss, with the activations of one chunk in memory
    (GradCache, Gao et al. 2021). x: (b n, 3, S, S), labels: (b,); C = ``chunks`` divides b.

    1. embed the C chunks of b / C images without a graph: z (b, n, D), a leaf;
    2. the loss of the whole batch on z, and its gradient g = dL/dz (b, n, D);
    3. each chunk again with its graph, back-propagating its rows of g (and its share of
       the probe's loss): the parameters' gradients add up over the chunks.

    Every loss here takes statistics of the whole batch, which is why plain gradient
    accumulation (a loss per chunk) would train another objective. BatchNorm normalises
    each chunk with the chunk's statistics, as C processes without ``sync_bn`` do; its
    running statistics change once per step, by the first chunk's statistics (DDP keeps
    rank 0's). Under DDP, gradients are averaged once, after the last chunk. With fp16's
    ``scaler``, g is the gradient of the scaled loss and each chunk's probe loss is scaled
    alike, so every chunk's backward carries the same scale. Returns what
    :func:`_shown_or_raise` returns; leaves the gradients in the parameters.
    """
    rows = [slice(j * b // chunks, (j + 1) * b // chunks) for j in range(chunks)]
    with torch.no_grad(), kept_batchnorm_stats(net), _buffers_synced_later(net), \
            autocast(x.device, cfg.precision):
        outputs = [net(x[r.start * n:r.stop * n], r.stop - r.start, n) for r in rows]
    z = torch.cat([out[0] for out in outputs]).requires_grad_()          # (b, n, D), a leaf
    logits = None if outputs[0][1] is None else torch.cat([out[1] for out in outputs])
    loss, probe_loss, correct = _objective(z, logits, labels, cfg)
    shown = _shown_or_raise(loss, probe_loss, correct, world)
    (grad,) = torch.autograd.grad(_scaled(loss, scaler), z)              # (b, n, D)
    optimizer.zero_grad(set_to_none=True)
    for j, r in enumerate(rows):
        last = j == chunks - 1  # DDP all-reduces the summed gradients after the last chunk
        with contextlib.ExitStack() as stack:
            if not last:
                stack.enter_context(_no_sync(net))
            if j > 0:  # the first chunk alone updates the running statistics
                stack.enter_context(kept_batchnorm_stats(net))
            with autocast(x.device, cfg.precision):
                z_chunk, logits_chunk = net(x[r.start * n:r.stop * n], r.stop - r.start, n)
            outputs, grads = [z_chunk], [grad[r]]
            if logits_chunk is not None:   # the probe's mean cross-entropy, this chunk's part
                outputs.append(_scaled(F.cross_entropy(logits_chunk.float(), labels[r],
                                                       reduction="sum") / b, scaler))
                grads.append(None)
            torch.autograd.backward(outputs, grads)
    return shown


def _ddp(net: nn.Module) -> nn.parallel.DistributedDataParallel | None:
    """The DDP wrapper of ``net`` (itself, or inside torch.compile's module), else None."""
    inner = getattr(net, "_orig_mod", net)
    return inner if isinstance(inner, nn.parallel.DistributedDataParallel) else None


def _no_sync(net: nn.Module) -> contextlib.AbstractContextManager:
    """DDP's ``no_sync`` (gradients accumulate locally), or nothing for a plain module."""
    ddp = _ddp(net)
    return ddp.no_sync() if ddp is not None else contextlib.nullcontext()


@contextlib.contextmanager
def _buffers_synced_later(net: nn.Module) -> Iterator[None]:
    """DDP broadcasts rank 0's buffers (BatchNorm's running statistics) at the first forward
    of a step; passes without a graph must neither do it (:func:`kept_batchnorm_stats`
    would undo it) nor, as DDP does after any forward, put it off to the next step."""
    ddp = _ddp(net)
    if ddp is None:
        yield
        return
    pending = ddp.require_forward_param_sync
    ddp.require_forward_param_sync = False
    try:
        yield
    finally:
        ddp.require_forward_param_sync = pending


@contextlib.contextmanager
def kept_batchnorm_stats(module: nn.Module) -> Iterator[None]:
    """Run ``module`` in training mode (BatchNorm normalises with the batch's statistics)
    and give back every BatchNorm its running mean, variance and count afterwards, as if
    the forward passes in the ``with`` block had not happened to them."""
    saved = [(m, {k: v.clone() for k, v in m.named_buffers(recurse=False)})
             for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    try:
        yield
    finally:
        with torch.no_grad():
            for m, buffers in saved:
                for name, value in buffers.items():
                    getattr(m, name).copy_(value)


def saved_tensor_bytes(fn: Callable[[], object], skip: Iterable[torch.Tensor] = ()) -> int:
    """Bytes of the distinct storages that autograd saves for backward while ``fn()`` runs
    (what a forward keeps in memory until its backward), leaving out those of ``skip``
    (the parameters). Counted with ``torch.autograd.graph.saved_tensors_hooks``."""
    skipped = {t.untyped_storage().data_ptr() for t in skip}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in skipped:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        kept = fn()  # noqa: F841 - the graph, and so every saved tensor, lives until counted
        total = sum(seen.values())
    return total


def activation_bytes_per_image(trainee: Trainee, cfg: Config, device: torch.device) -> int:
    """The bytes a training forward of ``trainee`` saves for backward per image of ``cfg``
    (``n_patches`` views of S x S, at ``cfg.precision`` on ``device``): measured on random
    views of 1 and 2 images, the difference (what does not grow with the batch, such as
    bf16 copies of the weights, cancels). BatchNorm's running statistics are kept."""
    side, generator = cfg.patch_out or cfg.patch_size, torch.Generator().manual_seed(0)
    params = list(trainee.parameters())

    def forward(images: int) -> Callable[[], object]:
        x = torch.rand(images * cfg.n_patches, 3, side, side, generator=generator).to(device)
        if cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)

        def run() -> object:
            with autocast(device, cfg.precision):
                return trainee(x, images, cfg.n_patches)
        return run

    with kept_batchnorm_stats(trainee):
        one, two = (saved_tensor_bytes(forward(k), params) for k in (1, 2))
    return max(two - one, 1)


def loss_bytes(cfg: Config, b: int, dim: int, device: torch.device) -> int:
    """The bytes the loss of ``cfg`` saves for backward on a batch of b images x
    ``n_patches`` projections of width ``dim`` (float32, random, on ``device``); it gathers
    every rank's rows under torchrun, as in training."""
    generator = torch.Generator().manual_seed(0)
    z = torch.randn(b, cfg.n_patches, dim, generator=generator).to(device).requires_grad_()
    return saved_tensor_bytes(lambda: LOSSES[cfg.loss](z, **cfg.loss_coeffs))


def chunks_needed(b: int, per_image: float, free: float, fixed: float,
                  margin: float = 0.8) -> int | None:
    """The smallest C dividing b with (b / C) per_image <= margin (free - fixed), else None:
    the rule of :func:`choose_chunks`, which chapter 6's memory table applies as well."""
    budget = margin * (free - fixed)
    return next((k for k in range(1, b + 1) if b % k == 0 and b // k * per_image <= budget),
                None)


def choose_chunks(cfg: Config, trainee: Trainee, device: torch.device, world: int = 1) -> int:
    """``cfg.batch_chunks`` as a number: itself, or for 'auto' the smallest C dividing the
    process's batch b = batch_size / world whose chunk fits, by this rule:

        (b / C) a  <=  0.8 (free - 2 S_theta - S_x - S_L)

    a: :func:`activation_bytes_per_image`, measured now on ``device``; free: the device's
    available memory with the weights already on it; S_theta: the parameters' bytes (their
    gradients and the optimizer's momentum are yet to come); S_x: the batch's views, twice
    (as ``runs.check_step_memory`` counts them); S_L: :func:`loss_bytes` of the whole batch.
    The 0.8 leaves room for the allocator and the backward's temporaries. Where the memory
    cannot be read, 1. Under torchrun every rank takes the largest C any rank needs. When
    not even a chunk of one image fits, one sentence says so."""
    if cfg.batch_chunks != "auto":
        return cfg.batch_chunks
    b, free = cfg.batch_size // world, available_memory(device)
    if free is None:
        return 1
    a = activation_bytes_per_image(trainee, cfg, device)
    params = sum(p.numel() * p.element_size() for p in trainee.parameters())
    views = b * cfg.n_patches * 3 * (cfg.patch_out or cfg.patch_size) ** 2 * 4 * 2
    fixed = 2 * params + views + loss_bytes(cfg, b, trainee.model.projection_dim, device)
    chunks = chunks_needed(b, a, free, fixed)
    if chunks is None:
        raise ValueError(f"batch_chunks = 'auto' finds no chunk that fits: one image needs "
                         f"about {a / 1e6:.0f} MB of activations and "
                         f"{max(0.8 * (free - fixed), 0) / 1e6:.0f} MB are left; lower "
                         f"n_patches or patch_out, or use a larger card.")
    agreed = torch.tensor([chunks], device=device if device.type == "cuda" else "cpu")
    if world > 1:
        dist.all_reduce(agreed, op=dist.ReduceOp.MAX)
    return int(agreed.item())


def probe_accuracy(trainee: Trainee, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
                   cfg: Config, *, lengths: Iterable[int] | None = None, rank: int = 0,
                   world: int = 1) -> float:
    """Accuracy of the online probe on held-out ``(images (B, 3, H, W), labels (B,))``:
    the bag mean of ``n_patches`` random patches per image (no augmentation, a fixed seed),
    in the embedding space, in eval mode.

    Under torchrun every rank reads its rows of each global held-out batch
    (``data.validation(size, rank=, world=)``, rows ``data.rank_rows``) and ``lengths``
    gives the global batches' lengths (``data.held_out_batches``): each rank draws the
    patch positions of the whole global batch and keeps its rows, and the counts are
    all-reduced, so every rank returns the one-process accuracy and none waits in a
    collective while another validates. ``lengths`` None: each batch is a whole batch."""
    correct, count = probe_counts(trainee, batches, cfg, lengths=lengths, rank=rank,
                                  world=world)
    device = model_device(trainee)
    totals = torch.tensor([correct, count], dtype=torch.float64,
                          device=device if device.type == "cuda" else "cpu")
    if world > 1:
        dist.all_reduce(totals)
    return totals[0].item() / max(totals[1].item(), 1.0)


def probe_counts(trainee: Trainee, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
                 cfg: Config, *, lengths: Iterable[int] | None = None, rank: int = 0,
                 world: int = 1) -> tuple[int, int]:
    """(correct answers, images) of the online probe on this rank's rows of the held-out
    batches, as :func:`probe_accuracy` describes; no collective."""
    generator = torch.Generator().manual_seed(cfg.seed + 1)
    correct, count = 0, 0
    lengths = iter(lengths) if lengths is not None else None
    with evaluation_mode(trainee):
        for images, labels in batches:  # data.validation yields no empty share
            length = len(labels) if lengths is None else next(lengths)
            rows = rank_rows(length, rank, world)
            boxes = random_boxes(length, *images.shape[-2:], cfg.patch_size, cfg.n_patches,
                                 generator=generator)[rows].to(images.device)
            patches = crop_boxes(to_unit_float(images), boxes, cfg.patch_size)
            with autocast(images.device, cfg.precision):                 # (b, n, 3, s, s)
                h = embed_patches(trainee.model, patches, "embedding", cfg.patch_out or None)
            logits = trainee.probe(h.mean(dim=1))
            correct += int((logits.argmax(dim=1) == labels).sum())
            count += len(labels)
    return correct, count
