"""Reproduce the paper's evaluation claims at small scale on a CPU (``make reproduce-cpu``).

Executes chapters 5 and 7 at smoke scale with ``COOC_WRITE_RESULTS=1``: each figure those
notebooks assert on is written to ``cooc_minimal/results/<figure>.json`` with its seed and the
seconds it took. Then every file is stamped with the command, the commit, the machine and
the notebook's total time, and ``benchmarks/bag_embeddings.py`` records its speed-up.

The toy runs are trained from scratch in a fresh folder (``--runs DIR`` to reuse one, e.g.
``runs``), so the recorded times include training. The book reads these files; it never
writes them.

    python chapters/results/reproduce_cpu.py               # about 2 minutes on 2 cores
    python chapters/results/reproduce_cpu.py --runs runs --no-benchmark
    python chapters/results/reproduce_cpu.py --chapter 07  # one chapter's figures only
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from recording import check_runs_folder, machine

from cooc_minimal.cli import run_command
from cooc_minimal.paths import source_commit

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
RESULTS = ROOT / "cooc_minimal" / "results"  # the recorded figures, package data
NOTEBOOKS = ("05_toy_world_on_a_cpu.ipynb", "07_evaluating_bags.ipynb")


def run_notebook(name: str, env: dict[str, str]) -> float:
    """Execute chapters/<name> in a fresh kernel; returns the seconds it took."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(ROOT / "chapters" / name, as_version=4)
    client = NotebookClient(notebook, timeout=1800, kernel_name="python3",
                            resources={"metadata": {"path": str(ROOT / "chapters")}})
    saved = dict(os.environ)
    os.environ.update(env)  # the kernel inherits this process's environment
    try:
        start = time.perf_counter()
        client.execute()
        return time.perf_counter() - start
    finally:
        os.environ.clear()
        os.environ.update(saved)


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--runs", type=Path,
                        help="folder of the toy runs (default: a fresh temporary folder)")
    parser.add_argument("--no-benchmark", action="store_true",
                        help="skip benchmarks/bag_embeddings.py")
    parser.add_argument("--chapter", action="append", choices=[n[:2] for n in NOTEBOOKS],
                        help="run only this chapter (repeatable; default: all of them)")
    args = parser.parse_args(argv)
    if args.runs is not None:
        args.runs = check_runs_folder(args.runs.resolve())
    return args


def reproduce(argv: list[str] | None) -> int:
    args = parse_arguments(argv)
    command = " ".join(["python chapters/results/reproduce_cpu.py",
                        *(sys.argv[1:] if argv is None else argv)])
    stamp = {"command": command.strip(), "commit": source_commit(), "machine": machine()}
    with tempfile.TemporaryDirectory() as fresh:
        runs = args.runs or Path(fresh)
        env = {"COOC_SCALE": "smoke", "COOC_WRITE_RESULTS": "1", "COOC_RUNS": str(runs)}
        for name in (n for n in NOTEBOOKS if not args.chapter or n[:2] in args.chapter):
            before = {p: p.stat().st_mtime for p in RESULTS.glob("ch*.json")}
            print(f"running chapters/{name} (runs in {runs}) ...", flush=True)
            seconds = run_notebook(name, env)
            written = [p for p in sorted(RESULTS.glob(f"ch{name[:2]}_*.json"))
                       if before.get(p) != p.stat().st_mtime]
            for path in written:
                record = json.loads(path.read_text())
                record.update(stamp, notebook=f"chapters/{name}",
                              notebook_elapsed_s=round(seconds, 1))
                path.write_text(json.dumps(record, indent=1) + "\n")
            print(f"  {seconds:.0f} s; wrote {', '.join(p.name for p in written)}", flush=True)
    if not args.no_benchmark:
        print("running benchmarks/bag_embeddings.py ...", flush=True)
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bag_embeddings.py"),
                        "--json", str(RESULTS / "bench_bag_embeddings.json")], cwd=ROOT,
                       check=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_command(Path(__file__).name, lambda: reproduce(argv))


if __name__ == "__main__":
    sys.exit(main())
