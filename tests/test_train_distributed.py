"""Two gloo processes under torchrun train exactly what one process trains.

The global batch is the same (each rank takes its half of every global batch), the patch
boxes and augmentation draws are those of the global batch on every rank, BatchNorm
statistics are synchronised (sync_bn), each rank's loss is its share and DDP averages the
gradients: after a few steps the weights agree with a one-process run to 1e-5, and only
rank 0 wrote files.
"""

import csv
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from train_tiny import TINY, tiny_config, weights

from cooc_minimal.train import train

REPO = Path(__file__).resolve().parent.parent
WORKER = Path(__file__).with_name("train_distributed_worker.py")
CHANGES = {"sync_bn": True, "epochs": 2}  # 2 epochs of 4 steps, synchronised BatchNorm


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _overrides() -> list[str]:
    settings = {**TINY, **CHANGES}
    args = []
    for key, value in settings.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        args += ["--set", f"{key}={text}"]
    return args


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    out, report = root / "run", root / "report"
    report.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COOC_SCALE": "smoke"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
               "--nnodes=1", "--master_addr=127.0.0.1", f"--master_port={_free_port()}",
               str(WORKER), str(report), "--", "--config", "smoke", "--out", str(out),
               "--no-progress", *_overrides()]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=240)
    assert done.returncode == 0, f"torchrun failed:\n{done.stdout}\n{done.stderr}"
    counts = [json.loads((report / f"rank{r}.json").read_text()) for r in range(2)]
    return out, counts


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = tmp_path_factory.mktemp("single") / "run"
        train(tiny_config(**CHANGES, name="smoke"), out, progress=False)
    finally:
        torch.set_num_threads(threads)
    return out


def test_two_ranks_end_with_the_weights_of_one_process(two_ranks, one_process):
    out, _ = two_ranks
    a, b = weights(out / "last.pt"), weights(one_process / "last.pt")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-5, msg=key)
    moved = weights(one_process / "last.pt")["model.backbone.features.0.weight"]
    assert moved.abs().sum() > 0


def test_two_ranks_log_the_losses_of_one_process(two_ranks, one_process):
    def losses(run):
        with open(run / "metrics.csv", newline="") as f:
            return [float(r["loss"]) for r in csv.DictReader(f) if r["kind"] == "step"]

    assert len(losses(two_ranks[0])) == 8
    assert losses(two_ranks[0]) == pytest.approx(losses(one_process), rel=1e-5)


def test_only_rank_zero_writes(two_ranks):
    out, counts = two_ranks
    assert counts[0]["code"] == counts[1]["code"] == 0
    assert counts[0]["save_checkpoint"] >= 2 and counts[0]["save_config"] == 1
    assert counts[0]["metrics_rows"] == 10  # 8 steps and 2 epochs
    assert counts[1] == {"code": 0, "save_checkpoint": 0, "save_config": 0, "metrics_rows": 0}
    assert sorted(p.name for p in out.iterdir()) == ["config.toml", "last.pt", "metrics.csv"]
    state = torch.load(out / "last.pt", weights_only=True)
    assert state["world_size"] == 2 and state["step"] == 8
