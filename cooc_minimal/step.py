"""One training step, and what it needs: the model with its probe, the optimizer, the lr.

    images (b, 3, H, W) uint8 --make_views--> (b, n, 3, S, S) --model--> z (b, n, D) --loss-->
                                                                     h --bag mean--> probe

Under ``torchrun`` each rank holds b = B / world images of a global batch of B. Its loss is
its share of the global batch's loss (the losses gather every rank's z), DDP averages the
gradients, and every rank decides together whether the step diverged, so that all of them
stop at the same step.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from cooc_minimal.bags import embed_patches
from cooc_minimal.config import Config
from cooc_minimal.distributed import all_reduce_mean, any_rank, convert_sync_batchnorm
from cooc_minimal.losses import LOSSES
from cooc_minimal.models import JointEmbedding, build_model
from cooc_minimal.optim import LARS, param_groups
from cooc_minimal.patches import random_patches
from cooc_minimal.runs import TrainingDiverged
from cooc_minimal.runtime import autocast, evaluation_mode, to_unit_float
from cooc_minimal.views import make_views

__all__ = ["Trainee", "build_optimizer", "build_trainee", "probe_accuracy", "set_lr",
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
               world: int = 1, views: torch.Tensor | None = None) -> dict[str, float]:
    """One optimisation step on this rank's slice of a global batch.

    images: (b, 3, H, W) uint8, labels: (b,); net: a :class:`Trainee`, maybe wrapped in DDP
    or compiled. ``views`` (b, n, 3, S, S) in [0, 1], made elsewhere, replace the views of
    ``images`` (which may then be None): the benchmark times the model alone that way.
    Returns the global batch's ``loss``, the probe's ``probe_loss`` and its number of
    correct answers ``probe_correct``, the same on every rank. A non-finite loss raises
    :class:`TrainingDiverged` before any weight changes.
    """
    if views is None:
        views = make_views(images, cfg, generator, rank, world)          # (b, n, 3, S, S)
    b, n = views.shape[:2]
    x = views.flatten(0, 1)
    if cfg.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with autocast(x.device, cfg.precision):
        z, logits = net(x, b, n)                                         # z: (b, n, D)
    # The loss gathers z from every rank, so the ranks agree before any of them calls it.
    if any_rank(not torch.isfinite(z).all(), z.device):
        loss = torch.tensor(math.nan, device=z.device)
    else:
        loss = LOSSES[cfg.loss](z, **cfg.loss_coeffs)                    # this rank's share
    total, probe_loss, correct = loss, torch.zeros((), device=z.device), torch.zeros(())
    if logits is not None:
        probe_loss = F.cross_entropy(logits.float(), labels)
        total = loss + probe_loss
        correct = (logits.argmax(dim=1) == labels).float().sum()
    # One all-reduce for the three numbers: the means of the shares are the global batch's.
    shown = all_reduce_mean(torch.stack([loss.detach().float(), probe_loss.detach().float(),
                                         correct.to(z.device) * world]))
    if not torch.isfinite(shown[0]):      # the same mean on every rank: all stop together
        raise TrainingDiverged(f"The loss became {shown[0].item()}.", shown[0].item())
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    optimizer.step()
    loss_value, probe_value, correct_value = shown.tolist()
    return {"loss": loss_value, "probe_loss": probe_value, "probe_correct": correct_value}


def probe_accuracy(trainee: Trainee, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
                   cfg: Config) -> float:
    """Accuracy of the online probe on held-out ``(images (B, 3, H, W), labels (B,))``:
    the bag mean of ``n_patches`` random patches per image (no augmentation, a fixed seed),
    in the embedding space, in eval mode."""
    generator = torch.Generator().manual_seed(cfg.seed + 1)
    correct, count = 0, 0
    with evaluation_mode(trainee):
        for images, labels in batches:
            patches, _ = random_patches(to_unit_float(images), cfg.patch_size, cfg.n_patches,
                                        generator=generator)             # (B, n, 3, s, s)
            with autocast(images.device, cfg.precision):
                h = embed_patches(trainee.model, patches, "embedding", cfg.patch_out or None)
            logits = trainee.probe(h.mean(dim=1))
            correct += int((logits.argmax(dim=1) == labels).sum())
            count += len(labels)
    return correct / max(count, 1)
