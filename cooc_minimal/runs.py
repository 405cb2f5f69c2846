"""The run folder: what a training run writes, reads back and refuses.

A run folder holds ``config.toml`` (the resolved config), ``metrics.csv`` (one row per step
and per epoch) and ``last.pt`` (the checkpoint), and while a run is in it ``.lock``: the
file a run holds locked (``flock``) from start to end, so a second run into the same folder
is refused with the first one's process id (:func:`locked_run_folder`). Every file is
replaced atomically (a temporary ``.NAME.tmpPID`` renamed over it); temporaries left by a
killed run are removed when the next one starts.

This module knows those files: which folder may be started or resumed
(:func:`prepare_folder`, :func:`run_status`), the metrics log, the stop signals, and what a
checkpoint holds besides the weights (:class:`RunState`, :func:`checkpoint_state`,
:func:`check_resumable`, :func:`restore_state`). It never imports the loop (``train.py``);
the loop imports it.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import errno
import io
import os
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cooc_minimal.checkpoint import (
    RUN_CHECKPOINT,
    CheckpointError,
    get_rng_states,
    load_checkpoint,
    set_rng_states,
)
from cooc_minimal.config import (
    FIELDS,
    RUNTIME_KEYS,
    Config,
    ConfigError,
    config_from_dict,
    config_to_dict,
    load_config,
    write_text_atomically,
)
from cooc_minimal.distributed import any_rank
from cooc_minimal.runtime import check_memory, positive_int

try:  # POSIX; elsewhere a run folder is not locked
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

__all__ = ["CHECKPOINT", "COLUMNS", "CONFIG", "LOCK", "METRICS", "MetricsLog", "RunFolderError",
           "RunState", "StopSignal", "TrainingDiverged", "check_resumable", "check_step_memory",
           "checkpoint_state", "diverged", "locked_run_folder", "prepare_folder",
           "restore_state", "run_differences", "run_status", "run_summary",
           "train_arguments"]

CHECKPOINT = RUN_CHECKPOINT  # named where load_checkpoint reads it from a run folder
METRICS, CONFIG, LOCK = "metrics.csv", "config.toml", ".lock"
#: the beginnings of the temporary files a write leaves if it is killed half-way
TEMPORARY = tuple(f".{name}.tmp" for name in (CHECKPOINT, METRICS, CONFIG))
COLUMNS = ("kind", "epoch", "step", "loss", "lr", "images_per_s", "probe_loss", "probe_acc",
           "val_acc", "elapsed_s")


class RunFolderError(ValueError):
    """The run folder holds something that does not fit the request (another run, no run)."""


class RunFolderBusy(RunFolderError):
    """Another run holds the run folder's lock: it is training there now. ``ours``: the
    holder is this very process (then waiting for it would never end)."""

    def __init__(self, message: str, ours: bool = False) -> None:
        super().__init__(message)
        self.ours = ours


class TrainingStopped(RuntimeError):
    """A signal (``reason``: SIGTERM, SIGINT) stopped a run that was to be trained to its end;
    its checkpoint was saved at the step boundary, so running it again resumes it."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite (``loss``); the step was not taken and the last good
    checkpoint was left untouched."""

    def __init__(self, message: str, loss: float) -> None:
        super().__init__(message)
        self.loss = loss


# ------------------------------------------------------------------ the folder and its lock

def _nothing_to_resume(out: Path) -> RunFolderError:
    return RunFolderError(f"There is nothing to resume in {out}: it has no {CHECKPOINT}; "
                          f"start the run without --resume.")


def check_folder_path(out: Path) -> None:
    """Refuse, in one sentence, a run folder path that is a file or lies below one."""
    if out.exists() and not out.is_dir():
        raise RunFolderError(f"The run folder {out} is a file, not a folder: pass --out a "
                             f"folder path (it is made if missing).")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise RunFolderError(f"The run folder {out} lies below {parent}, which is a "
                                     f"file, not a folder: pass --out a path inside a folder.")
            return


def _holder(path: Path) -> str:
    """Who holds the lock, as its file says: 'PID 123 on host'."""
    try:
        pid, _, host = path.read_text().strip().partition(" ")
    except OSError:
        pid, host = "", ""
    return f"PID {pid} on {host}" if pid else "a process that has not yet written its PID"


def _take_lock(path: Path) -> int:
    """An open descriptor of ``path`` holding an exclusive ``flock``, with our PID written in.

    A run that ends unlinks the file while it holds it; a descriptor whose file was unlinked
    meanwhile is dropped and the new file taken, so two runs never hold two files."""
    for _ in range(100):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:  # the folder was removed by a run that just ended
            path.parent.mkdir(parents=True, exist_ok=True)
            continue
        except OSError as error:
            raise RunFolderError(f"The run folder {path.parent} is not writable "
                                 f"({error.strerror}): pass --out a folder you may write to, "
                                 f"or change its permissions.") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            os.close(fd)
            if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise RunFolderBusy(f"Another run ({_holder(path)}) is writing to "
                                    f"{path.parent}: wait for it to end, or pass another "
                                    f"--out folder.", ours=_held_by_us(path)) from None
            print(f"warning: {path.parent} cannot be locked ({error.strerror}); make sure no "
                  f"other run writes there.", file=sys.stderr)
            return -1
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
            return fd
        os.close(fd)
    raise RunFolderError(f"The lock {path} kept changing hands: wait for the other runs in "
                         f"{path.parent} to end, or pass another --out folder.")


def _held_by_us(path: Path) -> bool:
    try:
        return path.read_text().split(" ")[0] == str(os.getpid())
    except OSError:
        return False


def wait_while_busy(out: Path) -> Path:
    """``out``, once no other process holds its lock (at once if none does, or if this
    process holds it): how ``ensure_trained`` shares a run that another notebook or test
    is training now."""
    if fcntl is None or _held_by_us(out / LOCK):
        return out
    try:
        fd = os.open(out / LOCK, os.O_RDONLY)
    except OSError:  # no lock file: no run holds the folder
        return out
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)  # blocks while a run holds it exclusively
    finally:
        os.close(fd)
    return out


@contextlib.contextmanager
def unless_busy_elsewhere() -> Iterator[None]:
    """Swallow :class:`RunFolderBusy` raised because another process took the folder (the
    caller waits and looks again); a folder this process holds still raises."""
    try:
        yield
    except RunFolderBusy as busy:
        if busy.ours:
            raise


def remove_temporaries(out: Path) -> list[str]:
    """Delete the temporary files (``.last.pt.tmpPID`` ...) left by killed runs; their
    names. Only the lock's holder may call it: no other run is writing then."""
    removed = []
    for path in out.iterdir():
        if path.name.startswith(TEMPORARY):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            removed.append(path.name)
    return removed


@contextlib.contextmanager
def _held(out: Path, resume: bool) -> Iterator[None]:
    """Rank 0's share of :func:`locked_run_folder`."""
    check_folder_path(out)
    if resume and not out.is_dir():
        raise _nothing_to_resume(out)
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RunFolderError(f"The run folder {out} cannot be made ({error.strerror}): pass "
                             f"--out a folder you may write to.") from None
    fd = _take_lock(out / LOCK) if fcntl is not None else -1
    try:
        remove_temporaries(out)
        yield
    finally:
        if fd >= 0:
            with contextlib.suppress(OSError):
                (out / LOCK).unlink()  # still held: a run waiting on it takes a new file
            os.close(fd)
        if created:  # a run refused before it wrote anything leaves no empty folder
            with contextlib.suppress(OSError):
                out.rmdir()


@contextlib.contextmanager
def locked_run_folder(out: Path, *, resume: bool, main: bool = True,
                      device: torch.device | str = "cpu") -> Iterator[None]:
    """Hold ``out`` for a whole run: checked (not a file, not below one, writable), made if
    missing, locked by rank 0 (``main``), cleared of the temporaries of killed runs.

    A second run into a held folder is refused with a sentence naming the holder's PID; with
    several processes, every rank stops when rank 0 could not take the folder. A folder this
    call made is removed again if the run leaves it empty.
    """
    failure: RunFolderError | None = None
    with contextlib.ExitStack() as stack:
        if main:
            try:
                stack.enter_context(_held(out, resume))
            except RunFolderError as error:
                failure = error
        if any_rank(failure is not None, device):  # every rank stops, not only rank 0
            raise failure or RunFolderError(f"Rank 0 could not take the run folder {out}: "
                                            f"its sentence says why.")
        yield


# ------------------------------------------------------------------ which folder may run

def run_differences(saved: Config, wanted: Config) -> list[str]:
    """The keys (outside :data:`RUNTIME_KEYS`) where two configs differ, as 'key: a vs b'."""
    a, b = config_to_dict(saved), config_to_dict(wanted)
    return [f"{k} = {a[k]!r} there, {b[k]!r} here" for k in FIELDS
            if k not in RUNTIME_KEYS and a[k] != b[k]]


def train_arguments(out_dir: Any, resume: Any, stop_after_epochs: Any) -> Path:
    """``train``'s arguments checked (one sentence each): the run folder as a Path."""
    if not isinstance(out_dir, str | os.PathLike) or not str(out_dir):
        raise ValueError(f"out_dir must be a folder path, got {out_dir!r}.")
    if not isinstance(resume, bool):
        raise ValueError(f"resume must be True or False, got {resume!r}.")
    if stop_after_epochs is not None:
        positive_int("stop_after_epochs", stop_after_epochs)
    return Path(out_dir).expanduser()


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
        raise _nothing_to_resume(out)
    saved = load_checkpoint(checkpoint)
    check_resumable(saved, checkpoint)
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
    check_folder_path(out)
    if (out / CHECKPOINT).exists():
        saved = load_checkpoint(out / CHECKPOINT)
        differences = run_differences(config_from_dict(saved["config"]), cfg)
        if differences:
            raise RunFolderError(f"{out} holds a run of another config "
                                 f"({'; '.join(differences[:3])}): pass another out_dir, or "
                                 f"delete that folder to train this config there.")
        return "finished" if saved.get("finished") else "unfinished"
    if out.exists():
        others = sorted(p.name for p in out.iterdir() if p.name not in (CONFIG, METRICS, LOCK)
                        and not p.name.startswith(TEMPORARY))
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
    """metrics.csv, appended row by row (rank 0 only).

    On resume, the rows after the checkpoint (``step``, ``epoch``) are dropped so that the
    file reads as if the run had never stopped; the kept rows are written to a temporary
    file that is then renamed over metrics.csv, so a kill at any moment leaves the old file
    or the new one, never a cut one. A last line cut by a kill is dropped; a file without
    its header, or with a bad line inside, is refused with a sentence.
    """

    def __init__(self, path: Path, fresh: bool, step: int = 0, epoch: int = 0) -> None:
        self.path = path
        rows = [] if fresh or not path.exists() else self._rows_until(step, epoch)
        text = io.StringIO(newline="")
        writer = csv.writer(text)
        writer.writerow(COLUMNS)
        writer.writerows(rows)
        self._guarded(lambda: write_text_atomically(path, text.getvalue()))

    def _rows_until(self, step: int, epoch: int) -> list[list[str]]:
        """The rows of the file up to the checkpoint, as lists of cells."""
        try:
            with open(self.path, newline="", encoding="utf-8") as f:
                lines = list(csv.reader(f))
        except (UnicodeDecodeError, csv.Error) as error:
            raise RunFolderError(f"{self.path} cannot be read as CSV ({error}): restore it "
                                 f"from a copy, or move it away to resume without its "
                                 f"rows.") from None
        if lines and lines[0] != list(COLUMNS):
            raise RunFolderError(f"{self.path} does not start with its header line "
                                 f"{','.join(COLUMNS)}, so its rows cannot be read: add that "
                                 f"line at its top, or move the file away to resume without "
                                 f"its rows.")
        kept, epochs = [], set()
        for number, row in enumerate(lines[1:], start=2):
            if not row:  # a blank line
                continue
            try:
                kind, row_epoch, row_step = row[0], int(row[1]), int(row[2])
            except (IndexError, ValueError):
                kind = None
            if kind not in ("step", "epoch") or len(row) != len(COLUMNS):
                if number == len(lines):  # the last line, cut by a kill: after the checkpoint
                    break
                raise RunFolderError(f"Line {number} of {self.path} is not a metrics row "
                                     f"({','.join(row)[:60]!r}): fix or delete that line, "
                                     f"then resume.")
            if (kind == "step" and row_step <= step) or (kind == "epoch" and row_epoch <= epoch):
                kept.append(row)
                epochs.update([row_epoch] if kind == "epoch" else [])
        missing = sorted(set(range(1, epoch + 1)) - epochs)
        if missing:
            print(f"warning: {self.path} has no row for epoch {', '.join(map(str, missing))}, "
                  f"though the checkpoint is past it: the file was cut or edited before; the "
                  f"run continues from step {step}.", file=sys.stderr)
        return kept

    def write(self, row: dict[str, Any]) -> None:
        def append() -> None:
            with open(self.path, "a", newline="") as f:
                csv.DictWriter(f, COLUMNS).writerow({k: row.get(k, "") for k in COLUMNS})

        self._guarded(append)

    def _guarded(self, write) -> None:
        try:
            write()
        except OSError as error:
            raise RunFolderError(f"Writing {self.path} failed ({error.strerror or error}): "
                                 f"free some space, then continue with --resume (the "
                                 f"checkpoint {CHECKPOINT} beside it is intact).") from None


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
    n_images: int = 0  # the training images the schedule was made for
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
                   round(cfg.warmup_epochs * steps_per_epoch), n_images)

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
                     world: int, scaler: torch.amp.GradScaler | None = None,
                     precision: str | None = None) -> dict[str, Any]:
    """Everything ``last.pt`` holds: weights, optimizer, counters, config, random states.

    ``trainee`` has ``model`` and ``probe`` (None without one). These keys are the
    checkpoint format: old files resume because they are never renamed. ``precision``:
    what the run computed in, resolved (``"fp32"``, ``"bf16"``, ``"fp16"``; the config may
    say ``"auto"``); ``scaler``: fp16's GradScaler, whose scale a resume takes up.
    """
    return {"model": trainee.model.state_dict(),
            "probe": trainee.probe.state_dict() if trainee.probe is not None else None,
            "optimizer": optimizer.state_dict(), "step": state.step, "epoch": state.epoch,
            "total_steps": state.total_steps, "steps_per_epoch": state.steps_per_epoch,
            "finished": state.finished, "config": config_to_dict(cfg),
            "elapsed_s": state.elapsed_s, "epoch_sums": dict(state.sums), "world_size": world,
            "n_images": state.n_images, "rng": get_rng_states({"views": generator}),
            "precision": precision,
            "scaler": scaler.state_dict() if scaler is not None else None}


#: what a resume reads from a checkpoint, besides ``config``: (type, what it is)
RESUME_ENTRIES = {
    "model": (dict, "the weights"), "optimizer": (dict, "the optimizer's state"),
    "step": (int, "the steps done"), "epoch": (int, "the epochs done"),
    "total_steps": (int, "the schedule"), "steps_per_epoch": (int, "the schedule"),
    "elapsed_s": (int | float, "the training time"), "finished": (bool, "whether it ended"),
    "epoch_sums": (dict, "the current epoch's running sums"),
    "rng": (dict, "the random states"),
}
RNG_ENTRIES = ("python", "numpy", "torch", "cuda", "generators")


def check_resumable(saved: dict[str, Any], path: Path) -> None:
    """Refuse, in one sentence, a checkpoint that lacks what a resume reads (each entry of
    :data:`RESUME_ENTRIES`, of its type; the epoch sums; the random states), before any
    model is built. The weights themselves are checked when they are loaded."""
    fix = ("the file was edited or written by another program; resume from a copy of the run "
           "folder, or train again in a new folder")
    for key, (kind, what) in RESUME_ENTRIES.items():
        if key not in saved:
            raise CheckpointError(f"{path} lacks the entry {key!r} ({what}) that a resume "
                                  f"needs: {fix}.")
        if not isinstance(saved[key], kind) or (kind is int and isinstance(saved[key], bool)):
            raise CheckpointError(f"{path} holds {key} = {type(saved[key]).__name__}, not "
                                  f"{what}: {fix}.")
    lacking = sorted(set(_empty_sums()) - set(saved["epoch_sums"]))
    lacking += [f"rng.{k}" for k in RNG_ENTRIES if k not in saved["rng"]]
    if "views" not in saved["rng"].get("generators", {"views": None}):
        lacking.append("rng.generators.views")
    if lacking:
        raise CheckpointError(f"{path} lacks {', '.join(lacking)}, which a resume needs: "
                              f"{fix}.")
    if not 0 <= saved["step"] <= saved["total_steps"]:
        raise CheckpointError(f"{path} holds step {saved['step']} of {saved['total_steps']}, "
                              f"which no run reaches: {fix}.")


def _words(error: BaseException) -> str:
    """An error's message on one line, at most 200 characters."""
    text = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
    text = text or type(error).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def restore_state(saved: dict[str, Any], state: RunState, *, trainee: nn.Module,
                  optimizer: torch.optim.Optimizer, generator: torch.Generator,
                  path: Path | str = CHECKPOINT,
                  scaler: torch.amp.GradScaler | None = None) -> None:
    """Load what :func:`checkpoint_state` saved (at ``path``) into a freshly built run, in
    place. A state that does not fit this run (other weights, another dataset size) is a
    :class:`CheckpointError` or :class:`RunFolderError`, one sentence. fp16's ``scaler``
    takes up the saved scale when the run was in fp16 too, else it starts afresh."""
    images = saved.get("n_images", state.n_images)  # older checkpoints do not say
    if (saved["steps_per_epoch"], images) != (state.steps_per_epoch, state.n_images):
        raise RunFolderError(f"The run in {path} was trained on {images} images "
                             f"({saved['steps_per_epoch']} steps per epoch), and the data "
                             f"found now has {state.n_images} ({state.steps_per_epoch}): "
                             f"resume with the same data (data_root), or train again in a new "
                             f"folder.")
    try:
        trainee.model.load_state_dict(saved["model"])
        if trainee.probe is not None and saved.get("probe") is not None:
            trainee.probe.load_state_dict(saved["probe"])
        optimizer.load_state_dict(saved["optimizer"])
        set_rng_states(saved["rng"], {"views": generator})
        if scaler is not None and saved.get("scaler"):
            scaler.load_state_dict(saved["scaler"])
    except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as error:
        raise CheckpointError(f"The state saved in {path} does not fit the run its config "
                              f"describes ({_words(error)}): the file was edited or written "
                              f"by another version; resume from a copy, or train again.") \
            from None
    state.step, state.elapsed_s = int(saved["step"]), float(saved["elapsed_s"])
    state.sums = dict(saved["epoch_sums"])


def check_step_memory(cfg: Config, world: int, device: torch.device) -> None:
    """Refuse a step whose views alone would not fit in the memory of ``device``: each of
    the ``world`` processes holds batch_size / world x n_patches views of 3 x S x S floats
    (S: patch_out, else patch_size), and about as much again while augmenting them."""
    side = cfg.patch_out or cfg.patch_size
    views = cfg.batch_size // world * cfg.n_patches * 3 * side * side * 4 * 2
    check_memory(views, device, f"One step's views ({cfg.batch_size // world} images x "
                 f"{cfg.n_patches} patches of {side} px)",
                 "lower batch_size, n_patches or patch_out, or add processes")


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


def check_not_stopped(summary: dict[str, Any]) -> None:
    """Raise :class:`TrainingStopped` when a signal ended the run of ``summary`` (what
    :func:`cooc_minimal.train.train` returns) before its last step."""
    if summary["stopped"] is not None and not summary["finished"]:
        raise TrainingStopped(
            f"Training {summary['name']} in {summary['out_dir']} stopped on "
            f"{summary['stopped']} at step {summary['steps']} of {summary['total_steps']}, "
            "its checkpoint saved: call ensure_trained again to resume it.",
            summary["stopped"])


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
