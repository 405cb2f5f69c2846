"""Two gloo ranks on the CPU give the loss and gradients of one process on the whole batch.

Each rank returns its share of the loss (their mean is the one-process loss), its embeddings
receive world_size times the one-process gradient, and averaging the layer's gradient over
ranks, as DDP does, gives exactly the one-process gradient.
"""

import importlib.util
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
WORKER = Path(__file__).with_name("losses_distributed_worker.py")
WORLD = 2


def _load_worker():
    spec = importlib.util.spec_from_file_location("losses_distributed_worker", WORKER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


worker = _load_worker()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("ranks")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={WORLD}",
               "--nnodes=1", "--master_addr=127.0.0.1", f"--master_port={_free_port()}",
               str(WORKER), str(out)]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, f"torchrun failed:\n{done.stdout}\n{done.stderr}"
    return [torch.load(out / f"rank{r}.pt") for r in range(WORLD)]


@pytest.mark.parametrize("name", list(worker.CASES))
def test_two_ranks_match_one_process(ranks, name):
    x, weight = worker.inputs(name)
    single = worker.run(name, x, weight)
    shares = torch.stack([r[name]["loss"] for r in ranks])
    assert torch.allclose(shares.mean(), single["loss"], rtol=1e-10, atol=1e-10), (
        f"{name}: mean over ranks {shares.mean().item()} vs one process {single['loss'].item()}")
    for r, grads in enumerate(single["grad_z"].chunk(WORLD)):
        assert torch.allclose(ranks[r][name]["grad_z"], WORLD * grads, rtol=1e-9, atol=1e-10), (
            f"{name}: rank {r}'s embedding gradient is not world_size x the one-process one")
    ddp_mean = torch.stack([r[name]["grad_weight"] for r in ranks]).mean(0)
    assert torch.allclose(ddp_mean, single["grad_weight"], rtol=1e-9, atol=1e-10), (
        f"{name}: the rank-averaged weight gradient differs from one process")


@pytest.mark.parametrize("name", ["spectral", "vicreg_samples", "multipatch_simclr"])
def test_a_plain_all_gather_would_be_caught(ranks, name):
    # With dist.all_gather the other ranks' rows are constants: the loss is the same, the
    # rank-averaged weight gradient is not, and the check above would fail.
    x, weight = worker.inputs(name)
    single = worker.run(name, x, weight)
    plain = [r[f"plain_all_gather/{name}"] for r in ranks]
    assert torch.allclose(torch.stack([p["loss"] for p in plain]).mean(), single["loss"])
    ddp_mean = torch.stack([p["grad_weight"] for p in plain]).mean(0)
    gap = (ddp_mean - single["grad_weight"]).abs().max() / single["grad_weight"].abs().max()
    assert gap > 1e-2, f"{name}: a plain all_gather gave a gradient only {gap:.2g} off"


def test_one_process_changes_nothing():
    from cooc_minimal import distributed

    z = torch.randn(4, 3)
    assert not distributed.is_distributed()
    assert (distributed.rank(), distributed.world_size()) == (0, 1)
    assert distributed.gather_with_grad(z) is z
