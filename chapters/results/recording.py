"""What every script here shares: its ``--runs`` option, the stamp of a record (command,
commit, machine, seconds) and a mean with its standard deviation over seeds."""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from cooc_minimal.paths import runs_folder, source_commit


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}"


def runs_from_arguments(doc: str, argv: list[str] | None) -> Path:
    """The folder of the runs: ``--runs``, else ``$COOC_RUNS``, else the clone's ``runs/``."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--runs", type=Path, help="folder of the runs (default: $COOC_RUNS, "
                                                  "else runs/)")
    args = parser.parse_args(argv)
    return (args.runs or runs_folder()).resolve()


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
