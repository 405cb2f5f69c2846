"""The training script: ``images -> patches -> augment -> JointEmbedding -> loss -> LARS``.

One step, on the training device and batched throughout::

    images (B, 3, H, W) uint8  --random_boxes/crop_boxes-->  patches (B, n, 3, s, s)
      --augment (BYOL views)-->  model  -->  z (B, n, D)  --LOSSES[loss]-->  LARS step

Run it from the command line (``python -m cooc_minimal.train --help``) or from Python with
:func:`train` / :func:`ensure_trained`. A run folder holds ``config.toml`` (the resolved
config), ``metrics.csv`` (one row per step and per epoch) and ``last.pt`` (the
checkpoint, written every epoch, every ``checkpoint_every`` steps, on SIGTERM/SIGINT and
at the end).

Several processes (``torchrun --nproc_per_node=K -m cooc_minimal.train ...``) split each
global batch of ``batch_size`` images. Every rank draws the patch boxes and augmentation
parameters of the *whole* global batch from the same generator and keeps its own rows, so
a run gives the same result (up to float rounding) on 1, 2 or 8 processes. Each rank's
loss is its share (``losses.py``); DDP averages the gradients, which is then the gradient of
the whole batch. Only rank 0 writes files.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import functools
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from cooc_minimal import augment as aug
from cooc_minimal import data as datasets
from cooc_minimal.checkpoint import get_rng_states, load_checkpoint, save_checkpoint, set_rng_states
from cooc_minimal.config import (
    FIELDS,
    RUNTIME_KEYS,
    Config,
    ConfigError,
    config_from_dict,
    config_to_dict,
    describe_keys,
    known_configs,
    load_config,
    save_config,
    validate_config,
)
from cooc_minimal.distributed import (
    all_reduce_mean,
    any_rank,
    convert_sync_batchnorm,
    rank,
    world_size,
)
from cooc_minimal.losses import LOSSES
from cooc_minimal.models import JointEmbedding, build_model
from cooc_minimal.optim import LARS, param_groups, warmup_cosine
from cooc_minimal.patches import crop_boxes, random_boxes, random_patches

__all__ = ["RunFolderError", "TrainingDiverged", "ensure_trained", "main", "make_views",
           "train", "train_step", "update"]

CHECKPOINT, METRICS, CONFIG = "last.pt", "metrics.csv", "config.toml"
COLUMNS = ("kind", "epoch", "step", "loss", "lr", "images_per_s", "probe_loss", "probe_acc",
           "val_acc", "elapsed_s")


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint was left untouched."""


class RunFolderError(ValueError):
    """The run folder holds something that does not fit the request (another run, no run)."""


# ---------------------------------------------------------------------- processes, devices

@dataclass
class Context:
    """Where this process trains: its rank among ``world`` processes and its device."""

    rank: int
    world: int
    device: torch.device
    owns_group: bool = False  # True when train() initialised the process group itself

    @property
    def main(self) -> bool:
        return self.rank == 0


def _setup(cfg: Config) -> Context:
    """Join the process group that ``torchrun`` describes (if any) and pick the device."""
    wants_cuda = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device = 'cuda' is not allowed here: no CUDA GPU is visible; use "
                          "device = 'auto' or 'cpu'.")
    owns = False
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if wants_cuda else "gloo")
        owns = True
    device = torch.device("cpu")
    if wants_cuda:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    return Context(rank(), world_size(), device, owns)


# --------------------------------------------------------------------------------- data

def epoch_order(seed: int, epoch: int, n: int) -> torch.Tensor:
    """The order of the n training images in ``epoch``: the same on every rank and resume."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g)


@functools.lru_cache(maxsize=2)
def _tensors(name: str, root: str, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    # Cached: chapters and tests train several runs on the same data in one process.
    # Nothing writes into these tensors (batches are copies made by indexing).
    return datasets.load_tensors(name, root or None, train=train)


class TensorData:
    """A small dataset held on the device as one uint8 tensor, batched by indexing."""

    def __init__(self, cfg: Config, device: torch.device) -> None:
        images, labels = _tensors(cfg.dataset, cfg.data_root, True)
        if cfg.train_images:
            images, labels = images[:cfg.train_images], labels[:cfg.train_images]
        self.images, self.labels = images.to(device), labels.to(device)
        self.n_classes = int(labels.max()) + 1
        self.size = len(labels)
        self.device = device

    def batches(self, epoch: int, start: int, cfg: Config,
                ctx: Context) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """This rank's slice of each global batch of ``epoch``, from step ``start`` on."""
        order, local = epoch_order(cfg.seed, epoch, self.size), cfg.batch_size // ctx.world
        for step in range(start, self.size // cfg.batch_size):
            first = step * cfg.batch_size + ctx.rank * local
            index = order[first:first + local].to(self.device)
            yield self.images[index], self.labels[index]

    def validation(self, cfg: Config) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        images, labels = _tensors(cfg.dataset, cfg.data_root, False)
        size = _eval_batch(cfg)
        for i in range(0, len(labels), size):
            yield images[i:i + size].to(self.device), labels[i:i + size].to(self.device)


def _eval_batch(cfg: Config) -> int:
    """Images per evaluation batch: no gradients are kept, so at least 512 (fewer calls)."""
    return max(cfg.batch_size, 512)


class _RankBatches(torch.utils.data.Sampler):
    """Index lists of this rank's slice of every global batch, from step ``start`` on."""

    def __init__(self, order: torch.Tensor, batch: int, start: int, ctx: Context) -> None:
        self.order, self.batch, self.start, self.ctx = order, batch, start, ctx

    def __len__(self) -> int:
        return len(self.order) // self.batch - self.start

    def __iter__(self):
        local = self.batch // self.ctx.world
        for step in range(self.start, len(self.order) // self.batch):
            first = step * self.batch + self.ctx.rank * local
            yield self.order[first:first + local].tolist()


class LoaderData:
    """A large dataset read by DataLoader workers that decode and resize to ``image_size``."""

    def __init__(self, cfg: Config, device: torch.device) -> None:
        import torchvision.transforms as T

        self.transform = T.Compose([T.Resize(cfg.image_size), T.CenterCrop(cfg.image_size),
                                    T.PILToTensor()])  # uint8 (3, S, S): 4x less to move
        self.dataset = datasets.get_dataset(cfg.dataset, cfg.data_root or None, train=True,
                                            transform=self.transform)
        self.size = min(len(self.dataset), cfg.train_images or len(self.dataset))
        self.n_classes = len(self.dataset.classes)
        self.device = device

    def _load(self, dataset, sampler, cfg: Config):
        loader = torch.utils.data.DataLoader(
            dataset, batch_sampler=sampler, num_workers=cfg.num_workers,
            pin_memory=self.device.type == "cuda", persistent_workers=False)
        for images, labels in loader:
            yield (images.to(self.device, non_blocking=True),
                   labels.to(self.device, non_blocking=True))

    def batches(self, epoch: int, start: int, cfg: Config, ctx: Context):
        sampler = _RankBatches(epoch_order(cfg.seed, epoch, self.size), cfg.batch_size,
                               start, ctx)
        return self._load(self.dataset, sampler, cfg)

    def validation(self, cfg: Config):
        val = datasets.get_dataset(cfg.dataset, cfg.data_root or None, train=False,
                                   transform=self.transform)
        size = _eval_batch(cfg)
        batches = [list(range(i, min(i + size, len(val)))) for i in range(0, len(val), size)]
        return self._load(val, batches, cfg)


def make_data(cfg: Config, device: torch.device) -> TensorData | LoaderData:
    """Small datasets on the device (:class:`TensorData`), large ones through workers."""
    return (TensorData if cfg.dataset in datasets.SMALL else LoaderData)(cfg, device)


# ------------------------------------------------------------------------ patches, views

def view_plan(cfg: Config) -> list[tuple[int, aug.ViewConfig | None]]:
    """How many patches of each image get which view: ``[(count, ViewConfig or None)]``.

    ``byol``: the first ceil(n/2) patches get BYOL's view 1, the others view 2 (our choice:
    BYOL defines two views, EMP-SSL applies one policy to all its patches).
    ``byol_crop``: the same views with a random resized crop (scale 0.08-1) to the output
    side, which makes training multi-scale. ``none``: no augmentation.
    """
    if cfg.augment == "none":
        return [(cfg.n_patches, None)]
    first, second = aug.BYOL_VIEW_1, aug.BYOL_VIEW_2
    if cfg.augment == "byol_crop":
        first, second = aug.byol_crop_views(cfg.patch_out or cfg.patch_size)
    half = (cfg.n_patches + 1) // 2
    return [(half, first), (cfg.n_patches - half, second)]


def _rows(params: aug.AugmentParams, rows: slice) -> aug.AugmentParams:
    return aug.AugmentParams(**{f.name: None if getattr(params, f.name) is None
                                else getattr(params, f.name)[rows]
                                for f in dataclasses.fields(params)})


def make_views(images: torch.Tensor, cfg: Config, generator: torch.Generator, rank: int = 0,
               world: int = 1) -> torch.Tensor:
    """Patches and their augmented views for this rank's slice of a global batch.

    images: (b, 3, H, W) uint8 (or float in [0, 1]), rows ``rank*b : (rank+1)*b`` of a
    global batch of ``world * b`` images. The random boxes and view parameters are drawn
    for the whole global batch (the same draws on every rank) and this rank keeps its rows.
    Returns (b, n, 3, S, S) float in [0, 1], S = ``patch_out or patch_size``.
    """
    b, (height, width) = images.shape[0], images.shape[-2:]
    lo, size, n = rank * b, cfg.patch_size, cfg.n_patches
    boxes = random_boxes(world * b, height, width, size, n, generator)[lo:lo + b]
    x = crop_boxes(images, boxes.to(images.device), size)          # (b, n, 3, s, s)
    x = x.float().div_(255) if not x.is_floating_point() else x
    side = cfg.patch_out or size
    if side != size and cfg.augment != "byol_crop":
        x = F.interpolate(x.flatten(0, 1), size=(side, side), mode="bilinear",
                          align_corners=False, antialias=True).view(b, n, 3, side, side)
    views, start = [], 0
    for count, view in view_plan(cfg):
        part = x[:, start:start + count]
        start += count
        if view is None or count == 0:
            views.append(part)
            continue
        params = aug.sample_params(world * b * count, view, *part.shape[-2:], generator)
        mine = _rows(params, slice(lo * count, (lo + b) * count))
        out = aug.apply_params(part.reshape(-1, *part.shape[2:]), mine, view)
        views.append(out.view(b, count, *out.shape[1:]))
    return torch.cat(views, dim=1) if len(views) > 1 else views[0]


# ------------------------------------------------------------------------- model, optimizer

class Trainee(nn.Module):
    """The model and its optional online probe, in one module so that DDP syncs both."""

    def __init__(self, model: JointEmbedding, probe: nn.Linear | None) -> None:
        super().__init__()
        self.model, self.probe = model, probe

    def forward(self, x: torch.Tensor, b: int, n: int):
        """x: (b n, 3, S, S) -> z: (b, n, D), and probe logits (b, K) of the detached bag."""
        h, z = self.model(x)
        logits = None
        if self.probe is not None:
            logits = self.probe(h.detach().float().view(b, n, -1).mean(dim=1))
        return z.view(b, n, -1), logits


def build_trainee(cfg: Config, n_classes: int, ctx: Context) -> Trainee:
    """The model (seeded by ``cfg.seed``, identical on every rank) and its probe."""
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.arch, cfg.projector, cifar_stem=cfg.cifar_stem, width=cfg.width)
    probe = nn.Linear(model.embedding_dim, n_classes) if cfg.probe else None
    trainee = Trainee(model, probe)
    if cfg.sync_bn and ctx.world > 1:  # one process: plain BatchNorm is the same thing
        if ctx.device.type == "cuda":
            trainee = nn.SyncBatchNorm.convert_sync_batchnorm(trainee)
        else:  # torch's SyncBatchNorm runs on GPUs only
            trainee = convert_sync_batchnorm(trainee)
    trainee = trainee.to(ctx.device)
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
    for group in optimizer.param_groups:
        if group.get("scheduled", True):
            group["lr"] = lr


# ------------------------------------------------------------------------------- one step

def train_step(net: nn.Module, optimizer: torch.optim.Optimizer, images: torch.Tensor,
               labels: torch.Tensor, cfg: Config, generator: torch.Generator, ctx: Context,
               autocast: Any) -> dict[str, float]:
    """One optimisation step on this rank's slice of a global batch of images (uint8).

    Cuts and augments the patches (:func:`make_views`), then :func:`update`.
    """
    patches = make_views(images, cfg, generator, ctx.rank, ctx.world)   # (b, n, 3, S, S)
    return update(net, optimizer, patches, labels, cfg, ctx, autocast)


def update(net: nn.Module, optimizer: torch.optim.Optimizer, patches: torch.Tensor,
           labels: torch.Tensor, cfg: Config, ctx: Context, autocast: Any) -> dict[str, float]:
    """Forward, loss, backward and optimizer step on patches (b, n, 3, S, S) in [0, 1].

    Returns the loss (mean of the ranks' shares, i.e. the loss of the global batch), the
    probe's loss and its number of correct answers on this step (global). Raises
    :class:`TrainingDiverged` before the update when the loss is not finite.
    """
    b, n = patches.shape[:2]
    x = patches.flatten(0, 1)
    if cfg.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with autocast:
        z, logits = net(x, b, n)
    try:
        loss = LOSSES[cfg.loss](z, **cfg.loss_coeffs)                   # this rank's share
    except ValueError as error:
        if "NaN or inf" not in str(error):
            raise
        loss = torch.tensor(math.nan, device=z.device)
    total, probe_loss, correct = loss, torch.zeros((), device=z.device), torch.zeros(())
    if logits is not None:
        probe_loss = F.cross_entropy(logits.float(), labels)
        total = loss + probe_loss
        correct = (logits.argmax(dim=1) == labels).float().sum()
    shown = all_reduce_mean(torch.stack([loss.detach().float(), probe_loss.detach().float(),
                                         correct.to(loss.device) * ctx.world]))
    values = shown.tolist()
    if not math.isfinite(values[0]):
        raise TrainingDiverged(str(values[0]))
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    optimizer.step()
    return {"loss": values[0], "probe_loss": values[1], "probe_correct": values[2]}


@torch.no_grad()
def probe_accuracy(trainee: Trainee, batches, cfg: Config, autocast: Any) -> float:
    """Accuracy of the online probe on held-out images: bags of ``n_patches`` random
    patches (no augmentation, a fixed seed), embedding space."""
    generator = torch.Generator().manual_seed(cfg.seed + 1)
    model, correct, count = trainee.model, 0, 0
    model.eval()
    try:
        for images, labels in batches:
            x = images.float().div_(255) if not images.is_floating_point() else images
            patches, _ = random_patches(x, cfg.patch_size, cfg.n_patches,
                                        out_size=cfg.patch_out or None, generator=generator)
            b, n = patches.shape[:2]
            with autocast:
                h = model.embed(patches.flatten(0, 1))
            logits = trainee.probe(h.float().view(b, n, -1).mean(dim=1))
            correct += int((logits.argmax(dim=1) == labels).sum())
            count += len(labels)
    finally:
        model.train()
    return correct / max(count, 1)


# ------------------------------------------------------------------------ run folder, logs

def run_differences(saved: Config, wanted: Config) -> list[str]:
    """The keys (outside :data:`RUNTIME_KEYS`) where two configs differ, as 'key: a vs b'."""
    a, b = config_to_dict(saved), config_to_dict(wanted)
    return [f"{k} = {a[k]!r} there, {b[k]!r} here" for k in FIELDS
            if k not in RUNTIME_KEYS and a[k] != b[k]]


class MetricsLog:
    """metrics.csv, appended row by row (rank 0 only); on resume, rows after the checkpoint
    are dropped so that the file reads as if the run had never stopped."""

    def __init__(self, path: Path, fresh: bool, step: int = 0, epoch: int = 0) -> None:
        self.path = path
        rows = []
        if not fresh and path.exists():
            with open(path, newline="") as f:
                rows = [r for r in csv.DictReader(f)
                        if (r["kind"] == "step" and int(r["step"]) <= step)
                        or (r["kind"] == "epoch" and int(r["epoch"]) <= epoch)]
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, COLUMNS)
            writer.writeheader()
            writer.writerows(rows)

    def write(self, row: dict[str, Any]) -> None:
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, COLUMNS).writerow({k: row.get(k, "") for k in COLUMNS})


class _StopSignal:
    """Remembers a SIGTERM / SIGINT so the loop can checkpoint at the next step boundary.

    A second SIGINT restores the default behaviour (KeyboardInterrupt) for the impatient.
    """

    def __init__(self) -> None:
        self.received: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopSignal:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.received = signal.Signals(signum).name
        if signum == signal.SIGINT:
            signal.signal(signal.SIGINT, self._previous.get(signal.SIGINT, signal.SIG_DFL))

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _autocast(cfg: Config, device: torch.device):
    bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and device.type == "cuda")
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


# --------------------------------------------------------------------------------- the run

class _Run:
    """One call of :func:`train`: state, loop and checkpoints (kept small, method by method)."""

    def __init__(self, cfg: Config, out_dir: Path, ctx: Context, progress: bool,
                 on_step: Callable[[dict], None] | None) -> None:
        self.cfg, self.out, self.ctx = cfg, out_dir, ctx
        self.progress, self.on_step = progress, on_step
        self.data = make_data(cfg, ctx.device)
        self.steps_per_epoch = self.data.size // cfg.batch_size
        if self.steps_per_epoch == 0:
            raise ConfigError(f"batch_size = {cfg.batch_size} is not allowed: the dataset has "
                              f"only {self.data.size} training images; use a smaller batch.")
        self.total = cfg.epochs * self.steps_per_epoch
        self.warmup = round(cfg.warmup_epochs * self.steps_per_epoch)
        self.trainee = build_trainee(cfg, self.data.n_classes, ctx)
        self.optimizer = build_optimizer(cfg, self.trainee)
        self.generator = torch.Generator().manual_seed(cfg.seed)   # patches and views
        self.step, self.elapsed, self.sums = 0, 0.0, self._empty_sums()
        self.autocast = _autocast(cfg, ctx.device)

    @staticmethod
    def _empty_sums() -> dict[str, float]:
        return {"loss": 0.0, "probe_loss": 0.0, "probe_correct": 0.0, "steps": 0.0,
                "images": 0.0, "seconds": 0.0}

    # -- checkpoints
    def state(self, finished: bool) -> dict[str, Any]:
        return {"model": self.trainee.model.state_dict(),
                "probe": self.trainee.probe.state_dict() if self.trainee.probe else None,
                "optimizer": self.optimizer.state_dict(), "step": self.step,
                "epoch": self.step // self.steps_per_epoch, "total_steps": self.total,
                "steps_per_epoch": self.steps_per_epoch, "finished": finished,
                "config": config_to_dict(self.cfg), "elapsed_s": self.elapsed,
                "epoch_sums": dict(self.sums), "world_size": self.ctx.world,
                "rng": get_rng_states({"views": self.generator})}

    def save(self) -> None:
        if self.ctx.main:
            save_checkpoint(self.out / CHECKPOINT, self.state(self.step >= self.total))

    def restore(self, state: dict[str, Any]) -> None:
        self.trainee.model.load_state_dict(state["model"])
        if self.trainee.probe is not None and state.get("probe") is not None:
            self.trainee.probe.load_state_dict(state["probe"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step, self.elapsed = int(state["step"]), float(state["elapsed_s"])
        self.sums = dict(state["epoch_sums"])
        set_rng_states(state["rng"], {"views": self.generator})

    # -- the loop
    def run(self, stop_after_epochs: int | None, fresh: bool) -> dict[str, Any]:
        ctx, cfg = self.ctx, self.cfg
        net: nn.Module = self.trainee
        if ctx.world > 1:
            net = nn.parallel.DistributedDataParallel(
                net, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
        if cfg.compile:
            net = torch.compile(net)
        self.log = MetricsLog(self.out / METRICS, fresh, self.step,
                              self.step // self.steps_per_epoch) if ctx.main else None
        bar = tqdm(total=self.total, initial=self.step, desc=cfg.name, unit="step",
                   disable=not (self.progress and ctx.main), dynamic_ncols=True)
        epochs_done, stopped, started = 0, None, time.perf_counter()
        with _StopSignal() as stop, bar:
            while self.step < self.total and stopped is None:
                epoch, start = divmod(self.step, self.steps_per_epoch)
                for images, labels in self.data.batches(epoch, start, cfg, ctx):
                    self._one_step(net, images, labels, bar)
                    if any_rank(stop.received is not None, ctx.device):
                        stopped = stop.received or "a signal on another rank"
                        break
                    if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0 \
                            and self.step % self.steps_per_epoch:
                        self.save()
                if stopped is None:
                    self._end_epoch(epoch)
                    epochs_done += 1
                    if stop_after_epochs and epochs_done >= stop_after_epochs \
                            and self.step < self.total:
                        stopped = f"--stop-after-epochs {stop_after_epochs}"
                else:
                    self.save()
        if ctx.world > 1:
            dist.barrier()
        return self.summary(stopped, time.perf_counter() - started)

    def _one_step(self, net: nn.Module, images, labels, bar) -> None:
        cfg = self.cfg
        lr = warmup_cosine(self.step, self.total, self.warmup, cfg.lr, cfg.final_lr)
        set_lr(self.optimizer, lr)
        tic = time.perf_counter()
        try:
            out = train_step(net, self.optimizer, images, labels, cfg, self.generator,
                             self.ctx, self.autocast)
        except TrainingDiverged as error:
            raise self._diverged(str(error)) from None
        seconds = time.perf_counter() - tic
        self.step += 1
        self.elapsed += seconds
        speed = cfg.batch_size / max(seconds, 1e-9)
        for key, value in (("loss", out["loss"]), ("probe_loss", out["probe_loss"]),
                           ("probe_correct", out["probe_correct"]), ("steps", 1.0),
                           ("images", float(cfg.batch_size)), ("seconds", seconds)):
            self.sums[key] += value
        row = {"kind": "step", "epoch": (self.step - 1) // self.steps_per_epoch + 1,
               "step": self.step, "loss": out["loss"], "lr": lr, "images_per_s": speed,
               "elapsed_s": self.elapsed}
        if cfg.probe:
            row["probe_loss"] = out["probe_loss"]
            row["probe_acc"] = out["probe_correct"] / cfg.batch_size
        if self.log is not None and self.step % cfg.log_every == 0:
            self.log.write(row)
        bar.update(1)
        bar.set_postfix(loss=f"{out['loss']:.4g}", lr=f"{lr:.3g}", img_s=f"{speed:.0f}",
                        refresh=False)
        if self.on_step is not None:
            self.on_step(row)

    def _end_epoch(self, epoch: int) -> None:
        s, cfg = self.sums, self.cfg
        row = {"kind": "epoch", "epoch": epoch + 1, "step": self.step,
               "loss": s["loss"] / max(s["steps"], 1),
               "lr": self.optimizer.param_groups[0]["lr"],
               "images_per_s": s["images"] / max(s["seconds"], 1e-9),
               "elapsed_s": self.elapsed}
        if cfg.probe:
            row["probe_loss"] = s["probe_loss"] / max(s["steps"], 1)
            row["probe_acc"] = s["probe_correct"] / max(s["images"], 1)
            if self.ctx.main:
                row["val_acc"] = probe_accuracy(self.trainee, self.data.validation(cfg), cfg,
                                                self.autocast)
        self.last_epoch = row
        if self.log is not None:
            self.log.write(row)
        self.sums = self._empty_sums()
        self.save()

    def _diverged(self, value: str) -> TrainingDiverged:
        cfg, step = self.cfg, self.step + 1
        path = self.out / CHECKPOINT
        kept = (f"{path} (written at an earlier step) is untouched" if path.exists()
                else "no checkpoint had been written yet")
        return TrainingDiverged(
            f"The loss became {value} at step {step} (epoch "
            f"{self.step // self.steps_per_epoch + 1}), so the run stopped: lower lr (now "
            f"{cfg.lr:g}) or raise warmup_epochs (now {cfg.warmup_epochs:g}), or try "
            f"precision = 'fp32', and train again in a new folder; {kept}.")

    def summary(self, stopped: str | None, seconds: float) -> dict[str, Any]:
        last = getattr(self, "last_epoch", {})
        return {"name": self.cfg.name, "out_dir": str(self.out),
                "checkpoint": str(self.out / CHECKPOINT), "metrics": str(self.out / METRICS),
                "config": str(self.out / CONFIG), "steps": self.step, "total_steps": self.total,
                "epochs": self.step // self.steps_per_epoch, "finished": self.step >= self.total,
                "stopped": stopped, "loss": last.get("loss"), "probe_acc": last.get("probe_acc"),
                "val_acc": last.get("val_acc"), "elapsed_s": self.elapsed,
                "wall_s": seconds}


def _check_arguments(out_dir, resume, stop_after_epochs, progress) -> Path:
    if not isinstance(out_dir, str | os.PathLike) or not str(out_dir):
        raise ValueError(f"out_dir must be a folder path, got {out_dir!r}.")
    if not isinstance(resume, bool):
        raise ValueError(f"resume must be True or False, got {resume!r}.")
    if stop_after_epochs is not None and (isinstance(stop_after_epochs, bool) or not isinstance(
            stop_after_epochs, int) or stop_after_epochs < 1):
        raise ValueError(f"stop_after_epochs must be a positive integer or None, got "
                         f"{stop_after_epochs!r}.")
    return Path(out_dir).expanduser()


def _prepare_folder(cfg: Config, out: Path, resume: bool) -> tuple[Config, dict | None]:
    """Check the run folder against the request; return the config to run and the state."""
    checkpoint = out / CHECKPOINT
    if not resume:
        if checkpoint.exists():
            raise RunFolderError(f"{out} already holds a run ({CHECKPOINT}): pass --resume "
                                 f"(resume=True) to continue it, or choose another --out folder.")
        return cfg, None
    if not checkpoint.exists():
        raise RunFolderError(f"There is nothing to resume in {out}: it has no {CHECKPOINT}; "
                             f"start the run without --resume.")
    state = load_checkpoint(checkpoint)
    saved = config_from_dict(state["config"])
    differences = run_differences(saved, cfg)
    if differences:
        raise RunFolderError(f"Resuming {out} with another config is refused ("
                             f"{'; '.join(differences[:3])}): those keys define the run's "
                             f"schedule, model or data, so resume with the saved values or "
                             f"start a new run in another folder.")
    runtime = {k: getattr(cfg, k) for k in RUNTIME_KEYS}
    return dataclasses.replace(saved, **runtime), state


def train(cfg: Config, out_dir: str | Path, resume: bool = False,
          stop_after_epochs: int | None = None, progress: bool = True,
          on_step: Callable[[dict], None] | None = None) -> dict[str, Any]:
    """Train ``cfg`` and write ``out_dir/{config.toml, metrics.csv, last.pt}``.

    resume: continue the run saved in ``out_dir`` exactly (same weights, optimizer, data
    order, patches and views), with its saved config; only :data:`RUNTIME_KEYS` may differ.
    stop_after_epochs: end cleanly after that many epochs *of this call*, checkpoint written,
    as a preemption would (split a long run into jobs; ``--resume`` continues it).
    progress: show a tqdm bar (loss, lr, images/s). on_step: called with each step's
    metrics row. SIGTERM / SIGINT end the run at the next step boundary with a checkpoint.

    Returns a summary: ``steps``, ``epochs``, ``finished``, ``stopped`` (why it ended early,
    or None), the last epoch's ``loss``, ``probe_acc`` and ``val_acc``, ``elapsed_s`` and
    the paths. A non-finite loss raises :class:`TrainingDiverged` (checkpoint untouched).
    """
    out = _check_arguments(out_dir, resume, stop_after_epochs, progress)
    ctx = _setup(validate_config(cfg))
    try:
        validate_config(cfg, ctx.world)
        cfg, state = _prepare_folder(cfg, out, resume)
        if state is not None and state.get("finished"):
            run = _Run(cfg, out, ctx, progress, on_step)
            run.restore(state)
            return run.summary("already finished", 0.0)
        if ctx.main:
            out.mkdir(parents=True, exist_ok=True)
            save_config(cfg, out / CONFIG)
        run = _Run(cfg, out, ctx, progress, on_step)
        if state is not None:
            run.restore(state)
        return run.run(stop_after_epochs, fresh=state is None)
    finally:
        if ctx.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def ensure_trained(cfg: Config, out_dir: str | Path, progress: bool = True) -> Path:
    """The checkpoint of ``cfg`` trained to the end in ``out_dir``, training only if needed.

    - ``out_dir/last.pt`` of the same config (outside :data:`RUNTIME_KEYS`), finished:
      returned at once;
    - the same config, unfinished: resumed to the end;
    - no run (the folder is absent, empty, or holds only a config.toml/metrics.csv of the
      same config, left by a run stopped before its first checkpoint): trained from scratch;
    - anything else (another config's run, other files): refused with a sentence; nothing
      is deleted or overwritten.
    """
    out = Path(out_dir).expanduser()
    checkpoint = out / CHECKPOINT
    validate_config(cfg)
    if checkpoint.exists():
        state = load_checkpoint(checkpoint)
        differences = run_differences(config_from_dict(state["config"]), cfg)
        if differences:
            raise RunFolderError(f"{out} holds a run of another config "
                                 f"({'; '.join(differences[:3])}): pass another out_dir, or "
                                 f"delete that folder to train this config there.")
        if not state.get("finished"):
            train(cfg, out, resume=True, progress=progress)
        return checkpoint
    if out.exists():
        others = sorted(p.name for p in out.iterdir() if p.name not in (CONFIG, METRICS))
        if others:
            raise RunFolderError(f"{out} holds files that are not a run of this config "
                                 f"({', '.join(others[:3])}): pass an empty or new out_dir.")
        if (out / CONFIG).exists():
            differences = run_differences(load_config(out / CONFIG), cfg)
            if differences:
                raise RunFolderError(f"{out} holds the start of a run of another config "
                                     f"({'; '.join(differences[:3])}): pass another out_dir, "
                                     f"or delete that folder.")
    train(cfg, out, progress=progress)
    return checkpoint


# ---------------------------------------------------------------------------- command line

def build_parser() -> argparse.ArgumentParser:
    keys = "\n".join(f"  {k:<17} {h} (default {d})" for k, d, h in describe_keys())
    parser = argparse.ArgumentParser(
        prog="python -m cooc_minimal.train",
        description="Train a joint-embedding model on fixed-scale patches (BagSSL, appendix C "
                    "settings). Single GPU or CPU: python -m cooc_minimal.train --config "
                    "cifar10_vicreg --data-root ~/data --out runs/c10. Several GPUs: torchrun "
                    "--nproc_per_node=4 -m cooc_minimal.train (same options).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"configs shipped: {', '.join(known_configs())}\n\nconfig keys (--set KEY=VALUE):\n"
               f"{keys}")
    parser.add_argument("--config", metavar="NAME_OR_PATH",
                        help="a shipped config name (e.g. smoke, cifar10_vicreg) or a .toml "
                             "file; optional with --resume (the run's saved config is used)")
    parser.add_argument("--data-root", metavar="DIR",
                        help="folder holding the dataset (sets data_root; default $COOC_DATA "
                             "or ~/data; unused by the toy world)")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="run folder: config.toml, metrics.csv and last.pt are written here")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, repeatable: --set epochs=10 --set "
                             "loss_coeffs.lam=30 (keys listed below)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out exactly where it stopped; only "
                             "runtime keys (data_root, num_workers, device, precision, compile, "
                             "channels_last, checkpoint_every, log_every) may be changed")
    parser.add_argument("--stop-after-epochs", type=int, metavar="K",
                        help="end cleanly after K epochs of this invocation, with a checkpoint, "
                             "as a preemption would; continue later with --resume")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _cli_config(args: argparse.Namespace) -> Config:
    overrides = list(args.set)
    if args.data_root:
        overrides.append(f"data_root={args.data_root}")
    if args.config:
        return load_config(args.config, overrides)
    saved = Path(args.out).expanduser() / CONFIG
    if args.resume and saved.exists():
        return load_config(saved, overrides)
    if args.resume:
        raise RunFolderError(f"There is nothing to resume in {args.out}: it has no {CONFIG}; "
                             f"start the run with --config NAME.")
    raise ConfigError("--config is required to start a run: pass a shipped name such as "
                      "--config smoke, or a path to a .toml file.")


def main(argv: list[str] | None = None) -> int:
    """The ``cooc-train`` command. Bad input: one sentence on stderr and exit status 2."""
    args = build_parser().parse_args(argv)
    speaks = int(os.environ.get("RANK", "0")) == 0
    try:
        if args.stop_after_epochs is not None and args.stop_after_epochs < 1:
            raise ValueError(f"--stop-after-epochs must be a positive integer, got "
                             f"{args.stop_after_epochs}.")
        summary = train(_cli_config(args), args.out, resume=args.resume,
                        stop_after_epochs=args.stop_after_epochs,
                        progress=not args.no_progress)
    except TrainingDiverged as error:
        if speaks:
            print(f"cooc-train: {error}", file=sys.stderr)
        return 1
    except (ValueError, FileNotFoundError) as error:
        if speaks:
            print(f"cooc-train: {error}", file=sys.stderr)
        return 2
    if speaks:
        if summary["finished"]:
            done = "finished"
        else:
            done = (f"stopped ({summary['stopped']}) at step {summary['steps']} of "
                    f"{summary['total_steps']}, checkpoint written; continue with --resume")
        print(f"cooc-train: {summary['name']} {done}; {summary['checkpoint']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
