"""Train the runs the chapters share (``cooc_minimal.paths.SHARED_RUNS``), a few at a time.

``make book`` calls it before executing the notebooks, so that the notebooks, run two at a
time, only read finished runs. Each run goes through ``ensure_trained`` in the runs folder
(``paths.runs_folder``): a finished run is kept, an unfinished one resumed, and a run
another process is training is waited for. Each worker process uses one torch thread.

    python book/train_shared_runs.py              # 2 workers
    python book/train_shared_runs.py --workers 1
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor


def train_one(folder: str) -> tuple[str, float]:
    import torch

    from cooc_minimal.config import load_config
    from cooc_minimal.paths import SHARED_RUNS, runs_folder
    from cooc_minimal.train import ensure_trained

    torch.set_num_threads(1)
    started = time.perf_counter()
    config, overrides = SHARED_RUNS[folder]
    ensure_trained(load_config(config, list(overrides)), runs_folder() / folder, progress=False)
    return folder, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    from cooc_minimal.paths import SHARED_RUNS, runs_folder

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="processes (2)")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error(f"--workers must be at least 1, got {args.workers}.")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    started = time.perf_counter()
    print(f"shared runs in {runs_folder()} ...", flush=True)
    with ProcessPoolExecutor(max_workers=args.workers) as pool:  # longest first: texture
        for folder, seconds in pool.map(train_one, SHARED_RUNS):
            print(f"  {folder}: ready after {seconds:.0f} s", flush=True)
    print(f"all shared runs ready in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
