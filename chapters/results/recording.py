"""What every script here shares: its ``--runs`` option, checked before any work; the run
folders it reads, checked against their configs before any work; bad input told in one
sentence; the stamp of a record (command, commit, machine, seconds) and a mean with its
standard deviation over seeds."""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from cooc_minimal.cli import run_command
from cooc_minimal.config import Config
from cooc_minimal.paths import runs_folder, source_commit
from cooc_minimal.runs import RunFolderError, run_status


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}"


def seed_folder(name: str, seed: int) -> str:
    """A run's folder name for a seed: ``name`` itself for seed 0, ``name_seed{s}`` else."""
    return name + (f"_seed{seed}" if seed else "")


def check_runs_folder(runs: Path, origin: str = "--runs") -> Path:
    """``runs`` if it is a folder or can be made one, else one sentence naming ``origin``
    (where the path came from). A folder made to find out is removed again: training
    makes it when it needs it."""
    if runs.exists() and not runs.is_dir():
        raise RunFolderError(f"The {origin} folder {runs} is a file, not a folder: pass "
                             f"--runs a folder path (it is made if missing).")
    if runs.exists():
        return runs
    above = next(parent for parent in runs.parents if parent.exists())
    if not above.is_dir():
        raise RunFolderError(f"The {origin} folder {runs} lies below {above}, which is a "
                             f"file, not a folder: pass --runs a path inside a folder.")
    missing = [folder for folder in (runs, *runs.parents) if not folder.exists()]
    try:  # permissions, read-only mounts and /proc-like folders all answer only to a try
        runs.mkdir(parents=True)
    except OSError as error:
        reason = error.strerror or str(error)
        raise RunFolderError(f"The {origin} folder {runs} cannot be made ({reason}): pass "
                             f"--runs a folder you may write to.") from None
    for folder in missing:  # deepest first; each is empty, having just been made
        with contextlib.suppress(OSError):
            folder.rmdir()
    return runs


def runs_from_arguments(doc: str, argv: list[str] | None) -> Path:
    """The folder of the runs: ``--runs``, else ``$COOC_RUNS``, else the clone's ``runs/``;
    a RunFolderError if it is not a folder and cannot be made one."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--runs", type=Path, help="folder of the runs (default: $COOC_RUNS, "
                                                  "else runs/)")
    args = parser.parse_args(argv)
    origin = ("--runs" if args.runs else "$COOC_RUNS" if os.environ.get("COOC_RUNS")
              else "default runs")
    return check_runs_folder((args.runs or runs_folder()).resolve(), origin)


def check_run_folders(needed: dict[Path, Config]) -> None:
    """Refuse, before anything is trained or measured, a run folder that holds anything but
    a run (finished or not) of the config the script trains or reads there."""
    for folder, cfg in needed.items():
        try:
            run_status(cfg, folder)
        except RunFolderError as error:
            # run_status advises the library's out_dir; here only --runs or the folder
            # itself can change, so its cause is kept and its advice replaced
            cause = str(error).rsplit(": ", 1)[0]
            raise RunFolderError(f"{cause}; this script needs that folder for a run of its "
                                 f"own: pass --runs another folder, or move {folder} "
                                 f"away.") from None


def run_script(script: str, doc: str, argv: list[str] | None, *,
               needed: Callable[[Path], dict[Path, Config]],
               record: Callable[[Path], int]) -> int:
    """A results script's exit status: ``--runs`` read and checked, every run folder of
    ``needed(runs)`` checked, then ``record(runs)``. Bad input at any point is one sentence
    on stderr, prefixed with the name of ``script`` (its ``__file__``), and status 2."""

    def work() -> int:
        runs = runs_from_arguments(doc, argv)
        check_run_folders(needed(runs))
        return record(runs)

    return run_command(Path(script).name, work)


def stamp(script: str, argv: list[str] | None, started: float) -> dict:
    """Where a record comes from: seconds since ``started``, the command, commit, machine."""
    command = " ".join([f"python chapters/results/{script}",
                        *(sys.argv[1:] if argv is None else argv)]).strip()
    return {"elapsed_s": round(time.perf_counter() - started, 1), "command": command,
            "commit": source_commit(), "machine": machine()}


def mean_std(values: list[float]) -> tuple[float, float]:
    """The mean and the standard deviation (n - 1; 0 for one value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def seed_summary(rows: list[dict], match: dict, figures, join: str = "_") -> dict:
    """The rows that agree with ``match`` on its keys, summarised over their seeds:
    ``match``, their number ``seeds``, then ``<figure><join>mean`` and ``<figure><join>std``
    (:func:`mean_std`) for each of ``figures`` that the rows hold."""
    mine = [r for r in rows if all(r.get(k) == v for k, v in match.items())]
    entry = dict(match, seeds=len(mine))
    for name in figures:
        if name in mine[0]:
            entry[f"{name}{join}mean"], entry[f"{name}{join}std"] = mean_std(
                [r[name] for r in mine])
    return entry
