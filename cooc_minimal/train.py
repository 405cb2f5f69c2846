"""The training loop, top to bottom in the order a run happens: setup, resume, epochs.

One step (``step.train_step``), on the training device and batched throughout::

    images (B, 3, H, W) uint8  --make_views-->  views (B, n, 3, S, S)
      --model-->  z (B, n, D)  --LOSSES[loss]-->  LARS step

Run it from the command line (``python -m cooc_minimal.train --help``, see ``cli.py``) or
from Python with :func:`train` / :func:`ensure_trained`. A run folder holds ``config.toml``,
``metrics.csv`` and ``last.pt``, written every epoch, every ``checkpoint_every`` steps, on
SIGTERM/SIGINT and at the end (``runs.py``).

Several processes (``torchrun --nproc_per_node=K -m cooc_minimal.train ...``) split each
global batch of ``batch_size`` images: every rank visits the same image order, draws the
views of the whole global batch and keeps its rows (``views.py``), so a run gives the same
result (up to float rounding) on 1, 2 or 8 processes. Only rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from cooc_minimal.checkpoint import save_checkpoint
from cooc_minimal.config import Config, save_config, validate_config
from cooc_minimal.data import LoaderData, TensorData, epoch_order, held_out_batches, make_data
from cooc_minimal.distributed import any_rank, rank, world_size
from cooc_minimal.optim import warmup_cosine
from cooc_minimal.runs import (
    CHECKPOINT,
    CONFIG,
    METRICS,
    MetricsLog,
    RunFolderError,
    RunState,
    StopSignal,
    TrainingDiverged,
    check_not_stopped,
    check_step_memory,
    checkpoint_state,
    diverged,
    locked_run_folder,
    prepare_folder,
    restore_state,
    run_status,
    run_summary,
    train_arguments,
    unless_busy_elsewhere,
    wait_while_busy,
)
from cooc_minimal.runtime import (
    configure_cuda,
    deterministic_algorithms,
    grad_scaler,
    pick_device,
    resolve_precision,
)
from cooc_minimal.step import (
    Trainee,
    build_optimizer,
    build_trainee,
    choose_chunks,
    probe_accuracy,
    set_lr,
    train_step,
)

__all__ = ["Context", "Run", "RunFolderError", "TrainingDiverged", "ensure_trained", "train",
           "train_epochs"]


@dataclass
class Context:
    """Where this process trains: its rank among ``world`` processes and its device."""

    rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        """Rank 0, the one process that writes the run folder."""
        return self.rank == 0


def launched_world_size() -> int:
    """How many processes share the batch: the process group's size, else torchrun's word."""
    return world_size() if dist.is_initialized() else int(os.environ.get("WORLD_SIZE", "1"))


@contextlib.contextmanager
def joined_processes(device_name: str) -> Iterator[Context]:
    """Join the process group that ``torchrun`` describes, unless one exists, and leave it at
    the end if we joined it; yields this process's :class:`Context`."""
    device = pick_device(device_name)
    owns_group = launched_world_size() > 1 and not dist.is_initialized()
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if owns_group:  # device_id: NCCL binds this rank to its GPU at once
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                device_id=device if device.type == "cuda" else None)
    try:
        yield Context(rank(), world_size(), device)
    finally:
        if owns_group and dist.is_initialized():
            dist.destroy_process_group()


@dataclass
class Run:
    """What one call of :func:`train` holds (nanoGPT keeps the same as a script's globals)."""

    cfg: Config
    out: Path
    ctx: Context
    data: TensorData | LoaderData
    trainee: Trainee
    optimizer: torch.optim.Optimizer
    generator: torch.Generator  # patch boxes and views: the same draws on every rank
    state: RunState
    chunks: int = 1  # batch_chunks as a number (choose_chunks resolves 'auto')
    scaler: torch.amp.GradScaler | None = None  # fp16's (runtime.grad_scaler)

    def save(self) -> None:
        """Write ``last.pt`` (rank 0 only): weights, optimizer, counters, random states."""
        if self.ctx.main:
            save_checkpoint(self.out / CHECKPOINT, checkpoint_state(
                self.state, cfg=self.cfg, trainee=self.trainee, optimizer=self.optimizer,
                generator=self.generator, world=self.ctx.world, scaler=self.scaler,
                precision=resolve_precision(self.ctx.device, self.cfg.precision)))


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
    The folder is locked for the whole call: a second run into it is refused. The
    precision it computes in (``precision = 'auto'`` resolved) is printed at the start
    (with ``progress``) and saved in ``last.pt`` (``precision``).
    """
    out = train_arguments(out_dir, resume, stop_after_epochs)
    cfg = validate_config(cfg, launched_world_size())
    with deterministic_algorithms(cfg.deterministic), joined_processes(cfg.device) as ctx, \
            locked_run_folder(out, resume=resume, main=ctx.main, device=ctx.device):
        configure_cuda(ctx.device, cfg.precision, deterministic=cfg.deterministic)
        cfg, saved = prepare_folder(cfg, out, resume)
        check_step_memory(cfg, ctx.world, ctx.device)
        data = make_data(cfg, ctx.device)
        state = RunState.schedule(cfg, data.size)
        trainee = build_trainee(cfg, data.n_classes, ctx.device, world=ctx.world)
        run = Run(cfg=cfg, out=out, ctx=ctx, data=data, trainee=trainee,
                  optimizer=build_optimizer(cfg, trainee),
                  generator=torch.Generator().manual_seed(cfg.seed), state=state,
                  chunks=choose_chunks(cfg, trainee, ctx.device, ctx.world),
                  scaler=grad_scaler(ctx.device, cfg.precision))
        if ctx.main and progress:
            _say_setup(run)
        if saved is not None:
            restore_state(saved, state, trainee=trainee, optimizer=run.optimizer,
                          generator=run.generator, path=out / CHECKPOINT, scaler=run.scaler)
        if state.finished:
            return run_summary(state, cfg=cfg, out=out, stopped="already finished", wall_s=0.0)
        if ctx.main:
            save_config(cfg, out / CONFIG)
        started = time.perf_counter()
        stopped = train_epochs(run, stop_after_epochs=stop_after_epochs, progress=progress,
                               on_step=on_step, fresh=saved is None)
        if ctx.world > 1:  # nobody leaves before rank 0 has written
            dist.barrier()
        return run_summary(state, cfg=cfg, out=out, stopped=stopped,
                           wall_s=time.perf_counter() - started)


def train_epochs(run: Run, *, stop_after_epochs: int | None = None, progress: bool = True,
                 on_step: Callable[[dict], None] | None = None, fresh: bool = True) -> str | None:
    """Train ``run`` from where it stands to its last epoch; returns why it stopped early
    (a signal, ``--stop-after-epochs``) or None. Checkpoints as :func:`train` says."""
    cfg, ctx, data, state, optimizer = run.cfg, run.ctx, run.data, run.state, run.optimizer
    net = _distributed(run.trainee, cfg, ctx)
    log = MetricsLog(run.out / METRICS, fresh, state.step, state.epoch) if ctx.main else None
    bar = tqdm(total=state.total_steps, initial=state.step, desc=cfg.name, unit="step",
               disable=not (progress and ctx.main), dynamic_ncols=True)
    first_epoch = state.epoch
    with StopSignal() as stop, bar:
        for epoch in range(first_epoch, cfg.epochs):
            order = epoch_order(cfg.seed, epoch, data.size)     # the same on every rank
            first = state.step - epoch * state.steps_per_epoch  # > 0 when resumed mid-epoch
            for images, labels in data.batches(order, cfg.batch_size, start=first,
                                               rank=ctx.rank, world=ctx.world):
                lr = warmup_cosine(state.step, state.total_steps, state.warmup_steps, cfg.lr,
                                   cfg.final_lr)
                set_lr(optimizer, lr)
                tic = time.perf_counter()
                try:
                    out = train_step(net, optimizer, images, labels, cfg=cfg,
                                     generator=run.generator, rank=ctx.rank, world=ctx.world,
                                     chunks=run.chunks, scaler=run.scaler)
                except TrainingDiverged as error:
                    raise diverged(error, cfg=cfg, state=state,
                                   checkpoint=run.out / CHECKPOINT) from None
                row = state.add_step(out, lr=lr, seconds=time.perf_counter() - tic, cfg=cfg)
                if log is not None and state.step % cfg.log_every == 0:
                    log.write(row)
                bar.update(1)
                bar.set_postfix(loss=f"{row['loss']:.4g}", lr=f"{lr:.3g}",
                                img_s=f"{row['images_per_s']:.0f}", refresh=False)
                if on_step is not None:
                    on_step(row)
                if any_rank(stop.received is not None, ctx.device):  # all ranks stop here
                    run.save()
                    return stop.received or "a signal on another rank"
                if cfg.checkpoint_every and state.step % cfg.checkpoint_every == 0 \
                        and state.step % state.steps_per_epoch:  # epoch ends save anyway
                    run.save()
            row = state.end_epoch(lr=optimizer.param_groups[0]["lr"], probe=cfg.probe)
            if cfg.probe:  # every rank its share of the held-out images: none waits
                row["val_acc"] = _validation_accuracy(run)
            if log is not None:
                log.write(row)
            run.save()
            if stop_after_epochs and epoch + 1 - first_epoch >= stop_after_epochs \
                    and not state.finished:
                return f"--stop-after-epochs {stop_after_epochs}"
    return None


def _say_setup(run: Run) -> None:
    """One line on stderr: the device, the precision it computes in, the chunks."""
    scaled = " with a GradScaler" if run.scaler is not None else ""
    print(f"{run.cfg.name}: {run.ctx.world} process(es) on {run.ctx.device.type}, precision "
          f"{resolve_precision(run.ctx.device, run.cfg.precision)}{scaled}, "
          f"{run.chunks} chunk(s) per process"
          f"{', deterministic' if run.cfg.deterministic else ''}", file=sys.stderr)


def _validation_accuracy(run: Run) -> float:
    """The online probe's accuracy on the held-out images, 512 a batch or more (no
    gradients kept): each rank embeds its rows of every batch, the counts are summed."""
    size, ctx = max(run.cfg.batch_size, 512), run.ctx
    return probe_accuracy(run.trainee, run.data.validation(size, rank=ctx.rank, world=ctx.world),
                          run.cfg, lengths=held_out_batches(run.data.held_out_size, size),
                          rank=ctx.rank, world=ctx.world)


def _distributed(trainee: Trainee, cfg: Config, ctx: Context) -> nn.Module:
    """``trainee`` as the step calls it: in DDP with several processes, maybe compiled."""
    net: nn.Module = trainee
    if ctx.world > 1:
        net = nn.parallel.DistributedDataParallel(
            net, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
    return torch.compile(net) if cfg.compile else net


def ensure_trained(cfg: Config, out_dir: str | Path, progress: bool = True) -> Path:
    """The checkpoint of ``cfg`` trained to the end in ``out_dir``, training only if needed.

    - ``out_dir/last.pt`` of the same config (outside :data:`RUNTIME_KEYS`), finished:
      returned at once; the same config, unfinished: resumed to the end;
    - no run (the folder is absent, empty, or holds only a config.toml/metrics.csv of the
      same config, left by a run stopped before its first checkpoint): trained from scratch;
    - anything else (another config's run, other files): refused with a sentence.
    A run another process is training in ``out`` now is waited for, then looked at again.
    A SIGTERM or SIGINT during training raises :class:`TrainingStopped` once the checkpoint
    is saved: the caller asked to stop, so the run is not resumed here.
    """
    out, cfg = Path(out_dir).expanduser(), validate_config(cfg)
    while (status := run_status(cfg, wait_while_busy(out))) != "finished":
        with unless_busy_elsewhere():  # taken by another process between our look and start
            check_not_stopped(train(cfg, out, resume=status == "unfinished", progress=progress))
    return out / CHECKPOINT


if __name__ == "__main__":
    from cooc_minimal.cli import train_main

    sys.exit(train_main())
