"""Checkpoints: written atomically, read back with a clear error, shared by training and
evaluation (evaluation reads them here and never imports the training loop).

A training checkpoint is a dict with at least ``model`` (the JointEmbedding's state dict),
``config`` (``config_to_dict``), ``step``, ``epoch`` and ``version``; the loop adds the
optimizer, the RNG states and its counters (see ``train.py``). Everything in it is a
tensor, a number, a string or a container of those, so it loads with
``torch.load(weights_only=True)``: opening a checkpoint cannot run code.
"""

from __future__ import annotations

import errno
import os
import pickle
import random
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cooc_minimal import __version__
from cooc_minimal.config import Config, config_from_dict

__all__ = ["CheckpointError", "CheckpointWriteError", "check_version", "get_rng_states",
           "load_checkpoint", "load_model", "save_checkpoint", "set_rng_states"]


class CheckpointError(ValueError):
    """A checkpoint file is truncated, corrupted or not one of ours."""


class CheckpointWriteError(CheckpointError, OSError):
    """A checkpoint could not be written (a full disk, a quota, an I/O error); the previous
    file at that path, if any, is intact."""


def _write_failure(error: BaseException) -> str | None:
    """What went wrong, in a few words, if ``error`` is a failed write; else None.

    torch's zip writer reports a full disk as a RuntimeError ("[enforce fail at
    inline_container.cc:...] ... file write failed"), other writes as an OSError.
    """
    if isinstance(error, OSError):
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            return "no space left on the device"
        return error.strerror or str(error).strip() or type(error).__name__
    text = str(error)
    if isinstance(error, RuntimeError) and ("inline_container" in text or "write" in text):
        return ("the write failed, most often because the disk is full: "
                + text.strip().splitlines()[0][:200])
    return None


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically: a temporary file in the same folder, flushed
    and fsynced, then renamed over ``path``.

    A crash at any moment leaves either the old file or the new one, never half of one.
    ``version`` (the library's) is added when missing. Returns the path.
    """
    path = Path(path)
    if not isinstance(state, dict):
        raise ValueError(f"state must be a dict, got {type(state).__name__}.")
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"version": __version__, **state}
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as error:
        reason = _write_failure(error)
        if reason is None:
            raise
        kept = (f"the previous {path.name} there is intact" if path.exists() else
                "no earlier checkpoint was there")
        raise CheckpointWriteError(f"Writing the checkpoint {path} failed ({reason}); {kept}: "
                                   f"free some space, then continue with --resume.") from None
    finally:
        if tmp.exists():
            tmp.unlink()
    try:  # make the rename itself durable
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:  # some file systems cannot fsync a folder
        pass
    return path


#: the file a run folder keeps its checkpoint in; ``runs.CHECKPOINT`` is this name
RUN_CHECKPOINT = "last.pt"
#: the first bytes of every zip archive, which torch.save writes (torch.load checks the same)
ZIP_MAGIC = b"PK\x03\x04"
#: what reading a damaged archive can raise (zlib.error: a compressed member cut short)
_ZIP_ERRORS = (zipfile.BadZipFile, OSError, EOFError, ValueError,
               NotImplementedError, RuntimeError, struct.error, zlib.error)


def _damaged(path: Path, reason: str) -> CheckpointError:
    return CheckpointError(f"{path} is truncated or corrupted and cannot be read ({reason}); "
                           f"delete it and resume from another checkpoint or train again.")


def _checkpoint_file(path: Path) -> Path:
    """The file to read for ``path``: itself, or a run folder's last.pt."""
    if path.is_dir():
        if (path / RUN_CHECKPOINT).is_file():  # a run folder: it holds one checkpoint
            return path / RUN_CHECKPOINT
        raise FileNotFoundError(f"{path} is a folder without a {RUN_CHECKPOINT}: pass a run "
                                f"folder that cooc_minimal.train has written a checkpoint to, "
                                f"or the path of an existing last.pt.")
    if not path.is_file():
        raise FileNotFoundError(f"There is no checkpoint at {path}: train first (python -m "
                                f"cooc_minimal.train ... --out {path.parent}) or pass the "
                                f"path of an existing last.pt.")
    return path


def _not_a_checkpoint(path: Path, why: str) -> CheckpointError:
    # A .pt that is not one was overwritten or damaged beyond recognition; any other file
    # (a config.toml, a log) was most likely passed by mistake and must not be deleted.
    fix = ("restore it from a copy, or train again" if path.suffix in (".pt", ".pth") else
           "pass the last.pt that cooc_minimal.train writes in its run folder")
    return CheckpointError(f"{path} is not a PyTorch checkpoint ({why}): {fix}.")


def _check_archive(path: Path) -> None:
    """Refuse, before unpickling, a file that is not torch's zip archive, and an archive
    whose stored bytes fail their CRC: torch.load checks neither, so random bytes end in
    the unpickler's IndexError or KeyError and flipped bits load as other weights."""
    with open(path, "rb") as f:  # a file we may not read is an OSError, not damage
        head = f.read(len(ZIP_MAGIC))
    if not head:
        raise _damaged(path, "the file is empty") from None
    if head != ZIP_MAGIC:
        raise _not_a_checkpoint(path, "torch.save writes a zip archive, and this file is not one")
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            bad = archive.testzip()  # torch.load checks no CRC; ~0.06 s per 200 MB cached
    except _ZIP_ERRORS as error:  # the magic but no readable directory: cut short
        raise _damaged(path, _first_line(error)) from None
    if not any(name == "data.pkl" or name.endswith("/data.pkl") for name in names):
        raise _not_a_checkpoint(path, "a zip archive without the data.pkl that torch.save "
                                      "writes")
    if bad is not None:
        raise CheckpointError(f"{path} is corrupted: its entry {bad} fails its CRC check, so "
                              f"what it holds is not what was saved; delete it and resume "
                              f"from another checkpoint or train again.")


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint written by :func:`save_checkpoint`; ``path`` may also be a run
    folder, whose last.pt is read.

    A missing file raises FileNotFoundError; a file that is not torch's zip archive, a
    truncated or corrupted one (its entries' CRCs are checked), or one of another library
    version (:func:`check_version`), a :class:`CheckpointError`, each one sentence.
    """
    path = _checkpoint_file(Path(path))
    _check_archive(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, OSError,
            ValueError, IndexError, KeyError, struct.error) as error:
        raise _damaged(path, _first_line(error)) from None
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise CheckpointError(f"{path} is not a cooc_minimal checkpoint (no 'model' and "
                              f"'config' entries): pass a last.pt written by "
                              f"cooc_minimal.train.")
    check_version(state, path)
    return state


def check_version(state: dict, path: str | Path) -> None:
    """Refuse, in one sentence, a checkpoint without a version or of another series: this
    library reads the checkpoints of its own major.minor version (``0.1.x`` for 0.1.0)."""
    version = state.get("version")
    if not isinstance(version, str) or not version.strip():
        raise CheckpointError(f"{path} has no 'version' entry, so it was not written by "
                              f"cooc_minimal's save_checkpoint: pass a last.pt written by "
                              f"cooc_minimal.train.")
    series = __version__.split(".")[:2]
    if version.split(".")[:2] != series:
        raise CheckpointError(f"{path} was written by cooc_minimal {version}, and this is "
                              f"{__version__}, which reads checkpoints of "
                              f"{'.'.join(series)}.x only: read it with cooc_minimal "
                              f"{version}, or train again.")


def load_model(path: str | Path, device: str | torch.device = "cpu"):
    """Rebuild the model of a checkpoint from its saved config and load its weights.

    Returns ``(model, config)``: a ``JointEmbedding`` in eval mode on ``device``, and the
    run's :class:`Config`.
    """
    from cooc_minimal.models import build_model

    state = load_checkpoint(path)
    cfg: Config = config_from_dict(state["config"])
    model = build_model(cfg.arch, cfg.projector, cifar_stem=cfg.cifar_stem, width=cfg.width)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as error:  # torch lists every missing and unexpected key
        first = str(error).strip().splitlines()[0]
        raise CheckpointError(f"The weights in {path} do not fit the model its config "
                              f"describes ({cfg.arch}, projector {cfg.projector!r}): {first}; "
                              f"was the file edited or written by another version?") from None
    return model.to(device).eval(), cfg


# ------------------------------------------------------------------------------- RNG states

def get_rng_states(generators: dict[str, torch.Generator] | None = None) -> dict[str, Any]:
    """Python's, NumPy's, torch's CPU and CUDA RNG states, and those of ``generators``.

    Stored as tensors and plain containers, so that the checkpoint loads with
    ``weights_only=True``.
    """
    kind, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002
    states: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "generators": {name: g.get_state() for name, g in (generators or {}).items()},
    }
    return states


def set_rng_states(states: dict[str, Any],
                   generators: dict[str, torch.Generator] | None = None) -> None:
    """Restore what :func:`get_rng_states` saved.

    CUDA states are restored for the GPUs visible now, and only for them: a run saved on 8
    GPUs resumes on 1 (the other states belong to devices this process does not have).
    """
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    n = states["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"],  # noqa: NPY002
                         n["has_gauss"], n["cached"]))
    torch.set_rng_state(states["torch"])
    if torch.cuda.is_available():
        for index, state in enumerate(states["cuda"][:torch.cuda.device_count()]):
            torch.cuda.set_rng_state(state, index)
    for name, g in (generators or {}).items():
        g.set_state(states["generators"][name])
