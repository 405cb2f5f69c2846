"""The run folder: what a training run writes, reads back and refuses.

A run folder holds ``config.toml`` (the resolved config), ``metrics.csv`` (one row per step
and per epoch) and ``last.pt`` (the checkpoint). This module knows those files: which
folder may be started or resumed (:func:`prepare_folder`, :func:`run_status`), the
metrics log, the stop signals, and what a checkpoint holds besides the weights
(:class:`RunState`, :func:`checkpoint_state`, :func:`restore_state`). It never imports the
loop (``train.py``); the loop imports it.
"""

from __future__ import annotations

import csv
import dataclasses
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cooc_minimal.checkpoint import get_rng_states, load_checkpoint, set_rng_states
from cooc_minimal.config import (
    FIELDS,
    RUNTIME_KEYS,
    Config,
    ConfigError,
    config_from_dict,
    config_to_dict,
    load_config,
)

__all__ = ["CHECKPOINT", "COLUMNS", "CONFIG", "METRICS", "MetricsLog", "RunFolderError",
           "RunState", "StopSignal", "TrainingDiverged", "checkpoint_state", "diverged",
           "prepare_folder", "restore_state", "run_differences", "run_status", "run_summary"]

CHECKPOINT, METRICS, CONFIG = "last.pt", "metrics.csv", "config.toml"
COLUMNS = ("kind", "epoch", "step", "loss", "lr", "images_per_s", "probe_loss", "probe_acc",
           "val_acc", "elapsed_s")


class RunFolderError(ValueError):
    """The run folder holds something that does not fit the request (another run, no run)."""


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite (``loss``); the step was not taken and the last good
    checkpoint was left untouched."""

    def __init__(self, message: str, loss: float) -> None:
        super().__init__(message)
        self.loss = loss


# ------------------------------------------------------------------ which folder may run

def run_differences(saved: Config, wanted: Config) -> list[str]:
    """The keys (outside :data:`RUNTIME_KEYS`) where two configs differ, as 'key: a vs b'."""
    a, b = config_to_dict(saved), config_to_dict(wanted)
    return [f"{k} = {a[k]!r} there, {b[k]!r} here" for k in FIELDS
            if k not in RUNTIME_KEYS and a[k] != b[k]]


def prepare_folder(cfg: Config, out: Path, resume: bool) -> tuple[Config, dict | None]:
    """Check the run folder against the request; return the config to run and the saved
    checkpoint to resume from (None for a new run).

    Resuming uses the saved config with this request's :data:`RUNTIME_KEYS`; any other
    difference, a new run over an old one, or nothing to resume is a :class:`RunFolderError`.
    """
    checkpoint = out / CHECKPOINT
    if not resume:
        if checkpoint.exists():
            raise RunFolderError(f"{out} already holds a run ({CHECKPOINT}): pass --resume "
                                 f"(resume=True) to continue it, or choose another --out folder.")
        return cfg, None
    if not checkpoint.exists():
        raise RunFolderError(f"There is nothing to resume in {out}: it has no {CHECKPOINT}; "
                             f"start the run without --resume.")
    saved = load_checkpoint(checkpoint)
    saved_cfg = config_from_dict(saved["config"])
    differences = run_differences(saved_cfg, cfg)
    if differences:
        raise RunFolderError(f"Resuming {out} with another config is refused ("
                             f"{'; '.join(differences[:3])}): those keys define the run's "
                             f"schedule, model or data, so resume with the saved values or "
                             f"start a new run in another folder.")
    runtime = {k: getattr(cfg, k) for k in RUNTIME_KEYS}
    return dataclasses.replace(saved_cfg, **runtime), saved


def run_status(cfg: Config, out: Path) -> str:
    """What ``out`` holds for ``cfg``: ``"finished"``, ``"unfinished"`` or ``"none"``.

    ``"none"``: the folder is absent, empty, or holds only the config.toml / metrics.csv of
    the same config (a run stopped before its first checkpoint). Another config's run, or
    other files, are a :class:`RunFolderError`: nothing is deleted or overwritten.
    """
    if (out / CHECKPOINT).exists():
        saved = load_checkpoint(out / CHECKPOINT)
        differences = run_differences(config_from_dict(saved["config"]), cfg)
        if differences:
            raise RunFolderError(f"{out} holds a run of another config "
                                 f"({'; '.join(differences[:3])}): pass another out_dir, or "
                                 f"delete that folder to train this config there.")
        return "finished" if saved.get("finished") else "unfinished"
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
    return "none"


# ------------------------------------------------------------------ logs and signals

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


class StopSignal:
    """Remembers a SIGTERM / SIGINT so the loop can checkpoint at the next step boundary.

    A second SIGINT restores the default behaviour (KeyboardInterrupt) for the impatient.
    Only the main thread may install handlers; elsewhere nothing is caught.
    """

    def __init__(self) -> None:
        self.received: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignal:
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


# ------------------------------------------------------------------ where a run stands

def _empty_sums() -> dict[str, float]:
    return {"loss": 0.0, "probe_loss": 0.0, "probe_correct": 0.0, "steps": 0.0,
            "images": 0.0, "seconds": 0.0}


@dataclass
class RunState:
    """Where a run stands: its schedule, the steps done, the seconds spent training and the
    running sums of the current epoch (the metrics of its epoch row)."""

    steps_per_epoch: int
    total_steps: int
    warmup_steps: int
    step: int = 0
    elapsed_s: float = 0.0
    sums: dict[str, float] = field(default_factory=_empty_sums)
    last_epoch: dict[str, Any] = field(default_factory=dict)  # this call's; not saved

    @classmethod
    def schedule(cls, cfg: Config, n_images: int) -> RunState:
        """A new run's state: ``n_images // batch_size`` steps per epoch (the last
        incomplete batch is dropped), ``epochs`` of them, ``warmup_epochs`` of warmup."""
        steps_per_epoch = n_images // cfg.batch_size
        if steps_per_epoch == 0:
            raise ConfigError(f"batch_size = {cfg.batch_size} is not allowed: the dataset has "
                              f"only {n_images} training images; use a smaller batch.")
        return cls(steps_per_epoch, cfg.epochs * steps_per_epoch,
                   round(cfg.warmup_epochs * steps_per_epoch))

    @property
    def epoch(self) -> int:
        """Epochs done (the index of the epoch the next step belongs to)."""
        return self.step // self.steps_per_epoch

    @property
    def finished(self) -> bool:
        return self.step >= self.total_steps

    def add_step(self, out: dict[str, float], *, lr: float, seconds: float,
                 cfg: Config) -> dict[str, Any]:
        """Count one step of ``train_step``'s ``out``; returns its metrics row."""
        self.step += 1
        self.elapsed_s += seconds
        for key in ("loss", "probe_loss", "probe_correct"):
            self.sums[key] += out[key]
        self.sums["steps"] += 1.0
        self.sums["images"] += float(cfg.batch_size)
        self.sums["seconds"] += seconds
        row = {"kind": "step", "epoch": (self.step - 1) // self.steps_per_epoch + 1,
               "step": self.step, "loss": out["loss"], "lr": lr,
               "images_per_s": cfg.batch_size / max(seconds, 1e-9), "elapsed_s": self.elapsed_s}
        if cfg.probe:
            row["probe_loss"] = out["probe_loss"]
            row["probe_acc"] = out["probe_correct"] / cfg.batch_size
        return row

    def end_epoch(self, *, lr: float, probe: bool) -> dict[str, Any]:
        """The epoch's metrics row (means over its steps); the next epoch's sums start at 0."""
        s = self.sums
        row = {"kind": "epoch", "epoch": self.epoch, "step": self.step,
               "loss": s["loss"] / max(s["steps"], 1), "lr": lr,
               "images_per_s": s["images"] / max(s["seconds"], 1e-9), "elapsed_s": self.elapsed_s}
        if probe:
            row["probe_loss"] = s["probe_loss"] / max(s["steps"], 1)
            row["probe_acc"] = s["probe_correct"] / max(s["images"], 1)
        self.sums, self.last_epoch = _empty_sums(), row
        return row


def checkpoint_state(state: RunState, *, cfg: Config, trainee: nn.Module,
                     optimizer: torch.optim.Optimizer, generator: torch.Generator,
                     world: int) -> dict[str, Any]:
    """Everything ``last.pt`` holds: weights, optimizer, counters, config, random states.

    ``trainee`` has ``model`` and ``probe`` (None without one). These keys are the
    checkpoint format: old files resume because they are never renamed.
    """
    return {"model": trainee.model.state_dict(),
            "probe": trainee.probe.state_dict() if trainee.probe is not None else None,
            "optimizer": optimizer.state_dict(), "step": state.step, "epoch": state.epoch,
            "total_steps": state.total_steps, "steps_per_epoch": state.steps_per_epoch,
            "finished": state.finished, "config": config_to_dict(cfg),
            "elapsed_s": state.elapsed_s, "epoch_sums": dict(state.sums), "world_size": world,
            "rng": get_rng_states({"views": generator})}


def restore_state(saved: dict[str, Any], state: RunState, *, trainee: nn.Module,
                  optimizer: torch.optim.Optimizer, generator: torch.Generator) -> None:
    """Load what :func:`checkpoint_state` saved into a freshly built run, in place."""
    trainee.model.load_state_dict(saved["model"])
    if trainee.probe is not None and saved.get("probe") is not None:
        trainee.probe.load_state_dict(saved["probe"])
    optimizer.load_state_dict(saved["optimizer"])
    state.step, state.elapsed_s = int(saved["step"]), float(saved["elapsed_s"])
    state.sums = dict(saved["epoch_sums"])
    set_rng_states(saved["rng"], {"views": generator})


def diverged(error: TrainingDiverged, *, cfg: Config, state: RunState,
             checkpoint: Path) -> TrainingDiverged:
    """``error`` told in one sentence: at which step, what to change, what was kept."""
    kept = (f"{checkpoint} (written at an earlier step) is untouched" if checkpoint.exists()
            else "no checkpoint had been written yet")
    return TrainingDiverged(
        f"The loss became {error.loss} at step {state.step + 1} (epoch {state.epoch + 1}), "
        f"so the run stopped: lower lr (now {cfg.lr:g}) or raise warmup_epochs (now "
        f"{cfg.warmup_epochs:g}), or try precision = 'fp32', and train again in a new "
        f"folder; {kept}.", error.loss)


def run_summary(state: RunState, *, cfg: Config, out: Path, stopped: str | None,
                wall_s: float) -> dict[str, Any]:
    """What :func:`cooc_minimal.train.train` returns: the counts, why it stopped early (or
    None), the last epoch's ``loss``, ``probe_acc`` and ``val_acc``, and the paths."""
    last = state.last_epoch
    return {"name": cfg.name, "out_dir": str(out), "checkpoint": str(out / CHECKPOINT),
            "metrics": str(out / METRICS), "config": str(out / CONFIG), "steps": state.step,
            "total_steps": state.total_steps, "epochs": state.epoch,
            "finished": state.finished, "stopped": stopped, "loss": last.get("loss"),
            "probe_acc": last.get("probe_acc"), "val_acc": last.get("val_acc"),
            "elapsed_s": state.elapsed_s, "wall_s": wall_s}
