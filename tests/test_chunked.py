"""Chunked backward (``batch_chunks``, GradCache): the whole batch's loss, one chunk's graph.

- K = 1 is today's step, bit for bit; the chunked code path with one chunk is too;
- with BatchNorm in eval mode (the model then treats images independently) K chunks give
  the plain step's gradients, where a loss per chunk (plain accumulation) does not;
- with BatchNorm in training mode, K chunks in one process train what K processes under
  torchrun train (gloo, sync_bn = false, the same global batch): weights, probe and BatchNorm
  running statistics after 8 steps to 1e-5; 2 processes of 2 chunks each too (DDP's no_sync);
- the pass without a graph leaves BatchNorm's running statistics alone: they change once
  per step, by the first chunk; a NaN stops the step before any weight or statistic changes;
- under DDP every rank starts each chunked step with rank 0's running statistics, as in a
  plain step (the passes without a graph neither broadcast them nor delay the broadcast);
- 'auto' takes the smallest K that fits, by the rule of ``choose_chunks``.
"""

import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from train_tiny import TINY, random_batch, tiny_config, weights

from cooc_minimal import step as step_module
from cooc_minimal.config import ConfigError, load_config
from cooc_minimal.losses import LOSSES
from cooc_minimal.runs import TrainingDiverged
from cooc_minimal.step import (
    activation_bytes_per_image,
    build_optimizer,
    build_trainee,
    choose_chunks,
    chunked_backward,
    chunks_needed,
    kept_batchnorm_stats,
    loss_bytes,
    train_step,
)
from cooc_minimal.train import train
from cooc_minimal.views import make_views

REPO = Path(__file__).resolve().parent.parent
WORKER = Path(__file__).with_name("train_distributed_worker.py")
CPU = torch.device("cpu")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def todays_step(net, optimizer, images, labels, *, cfg, generator):
    """train_step as it was before batch_chunks (one process, fp32), written out."""
    views = make_views(images, cfg, generator)
    b, n = views.shape[:2]
    z, logits = net(views.flatten(0, 1), b, n)
    loss = LOSSES[cfg.loss](z, **cfg.loss_coeffs)
    total = loss + F.cross_entropy(logits.float(), labels)
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    optimizer.step()


def trained(cfg, steps, step):
    """The state dict (weights and BatchNorm buffers) after ``steps`` calls of ``step``."""
    trainee = build_trainee(cfg, 10, CPU)
    optimizer = build_optimizer(cfg, trainee)
    generator = torch.Generator().manual_seed(cfg.seed)
    images, labels = random_batch()
    for _ in range(steps):
        step(trainee, optimizer, images, labels, cfg=cfg, generator=generator)
    return trainee.state_dict()


def forced_chunks(chunks):
    def step(net, optimizer, images, labels, *, cfg, generator):
        views = make_views(images, cfg, generator)
        chunked_backward(net, optimizer, views.flatten(0, 1), labels, b=views.shape[0],
                         n=views.shape[1], chunks=chunks, cfg=cfg)
        optimizer.step()
    return step


def assert_same(a, b, atol):
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=atol, msg=key)


def test_one_chunk_is_todays_step_bit_for_bit():
    cfg = tiny_config()
    reference = trained(cfg, 3, todays_step)
    assert_same(trained(cfg, 3, train_step), reference, atol=0)          # batch_chunks = 1
    assert_same(trained(cfg, 3, forced_chunks(1)), reference, atol=0)    # the chunked path


def test_chunks_give_the_whole_batch_gradient_where_accumulation_does_not():
    cfg = tiny_config()
    images, labels = random_batch()

    def gradients(chunks, per_chunk_loss=False):
        trainee = build_trainee(cfg, 10, CPU).eval()  # BatchNorm: running statistics
        optimizer = build_optimizer(cfg, trainee)
        views = make_views(images, cfg, torch.Generator().manual_seed(0))
        if per_chunk_loss:  # plain accumulation: a loss of each chunk's own statistics
            for part, y in zip(views.chunk(chunks), labels.chunk(chunks), strict=True):
                z, logits = trainee(part.flatten(0, 1), len(part), part.shape[1])
                (LOSSES[cfg.loss](z) / chunks + F.cross_entropy(logits, y) / chunks).backward()
        else:
            chunked_backward(trainee, optimizer, views.flatten(0, 1), labels, b=16, n=4,
                             chunks=chunks, cfg=cfg)
        return {k: p.grad.clone() for k, p in trainee.named_parameters()}

    whole = gradients(1)
    assert_same(gradients(4), whole, atol=1e-6)
    accumulated = gradients(4, per_chunk_loss=True)
    gap = max((accumulated[k] - whole[k]).abs().max().item() for k in whole)
    assert gap > 1e-3, "a loss per chunk should miss the whole batch's statistics"


def test_running_statistics_change_once_by_the_first_chunk():
    cfg = tiny_config()
    images, labels = random_batch()
    trainee = build_trainee(cfg, 10, CPU)
    before = {k: v.clone() for k, v in trainee.state_dict().items()}
    with kept_batchnorm_stats(trainee), torch.no_grad():
        trainee(torch.rand(32, 3, 8, 8), 8, 4)
    assert_same(trainee.state_dict(), before, atol=0)
    # A chunked step's statistics are those of a forward of the first chunk alone.
    views = make_views(images, cfg, torch.Generator().manual_seed(0))
    first = build_trainee(cfg, 10, CPU)
    with torch.no_grad():
        first(views[:4].flatten(0, 1), 4, 4)
    train_step(trainee, build_optimizer(cfg, trainee), None, labels, cfg=cfg,
               generator=torch.Generator(), views=views, chunks=4)
    buffers = {k: v for k, v in trainee.state_dict().items() if "running" in k or "tracked" in k}
    assert buffers and all(v.item() == 1 for k, v in buffers.items() if "tracked" in k)
    assert_same(buffers, {k: first.state_dict()[k] for k in buffers}, atol=0)


def test_a_nan_stops_a_chunked_step_before_anything_changes():
    cfg = tiny_config()
    images, labels = random_batch()
    trainee = build_trainee(cfg, 10, CPU)
    before = {k: v.clone() for k, v in trainee.state_dict().items()}
    views = make_views(images, cfg, torch.Generator().manual_seed(0))
    views[3, 0, 0, 0, 0] = math.nan
    with pytest.raises(TrainingDiverged):
        train_step(trainee, build_optimizer(cfg, trainee), None, labels, cfg=cfg,
                   generator=torch.Generator(), views=views, chunks=4)
    assert_same(trainee.state_dict(), before, atol=0)


def test_auto_takes_the_smallest_chunk_count_that_fits(monkeypatch):
    cfg = tiny_config(batch_chunks="auto")
    trainee = build_trainee(cfg, 10, CPU)
    a = activation_bytes_per_image(trainee, cfg, CPU)
    params = sum(p.numel() * p.element_size() for p in trainee.parameters())
    views = 16 * 4 * 3 * 8 * 8 * 4 * 2
    fixed = 2 * params + views + loss_bytes(cfg, 16, 16, CPU)  # the projection is 16 wide
    for images_that_fit, expected in ((16, 1), (15, 2), (5, 4), (1, 16)):
        free = fixed + images_that_fit * a / 0.8 + 1
        monkeypatch.setattr(step_module, "available_memory", lambda device, f=free: f)
        assert choose_chunks(cfg, trainee, CPU) == expected, images_that_fit
    monkeypatch.setattr(step_module, "available_memory", lambda device: fixed)
    with pytest.raises(ValueError, match="no chunk that fits"):
        choose_chunks(cfg, trainee, CPU)
    monkeypatch.setattr(step_module, "available_memory", lambda device: None)
    assert choose_chunks(cfg, trainee, CPU) == 1
    assert choose_chunks(tiny_config(batch_chunks=8), trainee, CPU) == 8
    assert chunks_needed(1024, 3e6, free=16e9, fixed=1e9) == 1         # 3 GB of 12 GB
    assert chunks_needed(1024, 30e6, free=16e9, fixed=1e9) == 4        # 7.7 GB a chunk
    assert chunks_needed(1024, 30e6, free=1e9, fixed=1e9) is None
    # The tiny CNN of width 8 on 4 patches of 8x8: tens of KB per image in fp32.
    assert 10_000 < a < 1_000_000


def test_batch_chunks_is_checked():
    assert load_config("smoke", ["batch_chunks=auto"]).batch_chunks == "auto"
    assert load_config("smoke", ["batch_chunks=4"]).batch_chunks == 4
    for bad, words in (("0", "positive integer"), ("3", "must divide the 128 images"),
                       ("true", "positive integer or 'auto'"), ("most", "or 'auto'")):
        with pytest.raises(ConfigError, match=words):
            load_config("smoke", [f"batch_chunks={bad}"])


# ---------------------------------------------- K chunks in one process = K processes

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(out: Path, world: int, chunks: int) -> None:
    settings = {**TINY, "sync_bn": False, "batch_chunks": chunks}
    overrides = [a for k, v in settings.items()
                 for a in ("--set", f"{k}={str(v).lower() if isinstance(v, bool) else v}")]
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={world}",
               "--nnodes=1", "--master_addr=127.0.0.1", f"--master_port={_free_port()}",
               str(WORKER), str(out.parent), "--", "--config", "smoke", "--out", str(out),
               "--no-progress", *overrides]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COOC_SCALE": "smoke"}
    out.parent.mkdir(parents=True)  # the worker's report folder
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=240)
    assert done.returncode == 0, f"torchrun failed:\n{done.stdout}\n{done.stderr}"


@pytest.mark.slow
@pytest.mark.parametrize("chunks_per_process", [1, 2])
def test_chunks_in_one_process_train_what_processes_train(tmp_path, chunks_per_process):
    world = 2
    _torchrun(tmp_path / "ranks" / "run", world, chunks_per_process)
    single = tmp_path / "single"
    train(tiny_config(sync_bn=False, batch_chunks=world * chunks_per_process, name="smoke"),
          single, progress=False)
    ranks, one = weights(tmp_path / "ranks" / "run" / "last.pt"), weights(single / "last.pt")
    assert_same(ranks, one, atol=1e-5)
    assert any("running_mean" in k for k in one) and any("probe" in k for k in one)
    assert one["model.backbone.features.1.num_batches_tracked"].item() == 8  # once a step


@pytest.mark.slow
def test_ranks_start_each_chunked_step_with_rank_zeros_running_statistics(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COOC_SCALE": "smoke",
           "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
               "--nnodes=1", "--master_addr=127.0.0.1", f"--master_port={_free_port()}",
               str(Path(__file__).with_name("chunked_distributed_worker.py")), str(tmp_path)]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=240)
    assert done.returncode == 0, f"torchrun failed:\n{done.stdout}\n{done.stderr}"
    gaps = json.loads((tmp_path / "rank0.json").read_text())["gaps"]
    assert gaps == [0.0, 0.0, 0.0]
