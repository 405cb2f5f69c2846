"""Precision, determinism and compile on the CPU (issue 17); the CUDA forms are skipped here
and run by ``make gpu-check`` on a GPU.

- ``precision = 'auto'`` resolves to bf16 on compute capability 8.0+, fp32 on older GPUs and
  on the CPU; ``'fp16'`` trains with a GradScaler (CPU autocast runs fp16 too), whose state
  is saved in the checkpoint and taken up by a resume;
- a step whose gradients are not finite is skipped by the scaler, not a divergence, with
  one chunk or several; each chunk's backward carries the same scale;
- ``deterministic = true`` sets cuDNN's and torch's deterministic switches (and
  CUBLAS_WORKSPACE_CONFIG) for the run and restores them after; two runs are bitwise equal;
- ``compile = true`` with ``sync_bn = true`` on several processes is refused in a sentence
  before any work (exit status 2);
- the memory a GPU may still allocate respects ``set_per_process_memory_fraction``.
"""

import contextlib
import math
import os

import pytest
import torch
import torch.nn.functional as F
from train_tiny import random_batch, tiny_config, weights

from cooc_minimal import runtime
from cooc_minimal import train as training
from cooc_minimal.checkpoint import load_checkpoint
from cooc_minimal.cli import train_main
from cooc_minimal.config import ConfigError, validate_config
from cooc_minimal.losses import LOSSES
from cooc_minimal.step import build_optimizer, build_trainee, chunked_backward, train_step
from cooc_minimal.train import train
from cooc_minimal.views import make_views

CPU = torch.device("cpu")
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ------------------------------------------------------------------ what 'auto' resolves to

@pytest.mark.parametrize(("capability", "expected"), [((7, 0), "fp32"), ((7, 5), "fp32"),
                                                      ((8, 0), "bf16"), ((9, 0), "bf16")])
def test_auto_is_bf16_from_sm80_fp32_before_and_on_the_cpu(monkeypatch, capability, expected):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    cuda = torch.device("cuda", 0)
    assert runtime.resolve_precision(cuda, "auto") == expected
    assert runtime.resolve_precision(CPU, "auto") == "fp32"
    for asked in ("fp32", "bf16", "fp16"):
        assert runtime.resolve_precision(CPU, asked) == asked
    assert runtime.grad_scaler(cuda, "auto") is None  # only fp16 scales
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, bf16, fp16"):
        runtime.resolve_precision(CPU, "fp8")
    assert "T4 or V100" in runtime.resolve_precision.__doc__
    assert "gpu_check" in runtime.resolve_precision.__doc__


def test_fp16_autocast_runs_the_network_in_half_and_the_loss_in_float32():
    cfg = tiny_config(precision="fp16")
    trainee = build_trainee(cfg, 10, CPU)
    views = make_views(random_batch()[0], cfg, torch.Generator().manual_seed(0))
    with runtime.autocast(CPU, "fp16"):
        z, logits = trainee(views.flatten(0, 1), 16, 4)
    assert z.dtype == torch.float16
    assert LOSSES[cfg.loss](z, **cfg.loss_coeffs).dtype == torch.float32
    assert isinstance(runtime.grad_scaler(CPU, "fp16"), torch.amp.GradScaler)
    assert runtime.grad_scaler(CPU, "bf16") is None and runtime.grad_scaler(CPU, "fp32") is None


# ------------------------------------------------------------------ the scaler in a step

def _poisoned_gradients(trainee):
    """Make the next backward's gradients infinite (the loss stays finite)."""
    weight = trainee.model.backbone.features[0].weight
    return weight.register_hook(lambda g: g * math.inf)


@pytest.mark.parametrize("chunks", [1, 2])
def test_infinite_gradients_skip_the_step_without_divergence(chunks):
    cfg = tiny_config(precision="fp16")
    trainee = build_trainee(cfg, 10, CPU)
    optimizer = build_optimizer(cfg, trainee)
    scaler = runtime.grad_scaler(CPU, cfg.precision)
    images, labels = random_batch()
    before = {k: v.clone() for k, v in trainee.model.state_dict().items()
              if v.is_floating_point() and "running" not in k}
    hook = _poisoned_gradients(trainee)
    scale = scaler.get_scale()
    out = train_step(trainee, optimizer, images, labels, cfg=cfg,
                     generator=torch.Generator().manual_seed(0), chunks=chunks, scaler=scaler)
    hook.remove()
    assert out["skipped"] == 1.0 and math.isfinite(out["loss"])
    assert scaler.get_scale() == scale / 2
    after = trainee.model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items()), "a skipped step moved"
    out = train_step(trainee, optimizer, images, labels, cfg=cfg,
                     generator=torch.Generator().manual_seed(0), chunks=chunks, scaler=scaler)
    assert out["skipped"] == 0.0
    assert not torch.equal(trainee.model.state_dict()["backbone.features.0.weight"],
                           before["backbone.features.0.weight"])


def test_each_chunk_backward_carries_the_same_scale():
    cfg = tiny_config(precision="fp16")
    images, labels = random_batch()
    views = make_views(images, cfg, torch.Generator().manual_seed(0))

    def gradients(chunks, scaler):
        trainee = build_trainee(cfg, 10, CPU).eval()  # images independent: chunks = batch
        optimizer = build_optimizer(cfg, trainee)
        if chunks:
            chunked_backward(trainee, optimizer, views.flatten(0, 1), labels, b=16, n=4,
                             chunks=chunks, cfg=cfg, scaler=scaler)
        else:  # the plain step's backward, written out
            with runtime.autocast(CPU, cfg.precision):
                z, logits = trainee(views.flatten(0, 1), 16, 4)
            total = LOSSES[cfg.loss](z, **cfg.loss_coeffs) + F.cross_entropy(logits.float(),
                                                                              labels)
            scaler.scale(total).backward()
        return {k: p.grad.double() for k, p in trainee.named_parameters()}

    scale = 1024.0
    plain = gradients(0, torch.amp.GradScaler("cpu", init_scale=scale))
    scaled = gradients(4, torch.amp.GradScaler("cpu", init_scale=scale))
    unscaled = gradients(4, None)
    for key, grad in unscaled.items():
        torch.testing.assert_close(scaled[key] / scale, grad, rtol=1e-2, atol=1e-5, msg=key)
        torch.testing.assert_close(scaled[key], plain[key], rtol=2e-2,
                                   atol=2e-2 * plain[key].abs().max().item(), msg=key)


def test_fp16_run_saves_its_precision_and_scaler_and_a_resume_takes_them_up(tmp_path,
                                                                            monkeypatch):
    cfg = tiny_config(precision="fp16")
    straight = train(cfg, tmp_path / "straight", progress=False)
    assert straight["finished"] and math.isfinite(straight["loss"])
    saved = load_checkpoint(tmp_path / "straight" / "last.pt")
    assert saved["precision"] == "fp16" and saved["scaler"]["scale"] > 0
    train(cfg, tmp_path / "halves", stop_after_epochs=1, progress=False)
    half = load_checkpoint(tmp_path / "halves" / "last.pt")["scaler"]
    scalers = []
    real = training.grad_scaler
    monkeypatch.setattr(training, "grad_scaler", lambda *a: scalers.append(real(*a)) or
                        scalers[-1])
    monkeypatch.setattr(torch.amp.GradScaler, "update", _recording_update(half, scalers))
    train(cfg, tmp_path / "halves", resume=True, progress=False)
    a, b = weights(tmp_path / "halves" / "last.pt"), weights(tmp_path / "straight" / "last.pt")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6, msg=key)
    fp32 = load_checkpoint(train(tiny_config(epochs=1), tmp_path / "fp32",
                                 progress=False)["checkpoint"])
    assert fp32["precision"] == "fp32" and fp32["scaler"] is None


def _recording_update(half, scalers):
    """GradScaler.update that checks, at the resumed run's first step, the saved scale."""
    real = torch.amp.GradScaler.update

    def update(self, *args, **kwargs):
        if not getattr(self, "_checked", False):
            assert self is scalers[-1] and self.get_scale() == half["scale"]
            assert self._get_growth_tracker() == half["_growth_tracker"]
            self._checked = True
        return real(self, *args, **kwargs)
    return update


# ------------------------------------------------------------------ determinism

FLAGS = ((torch.backends.cudnn, "deterministic"), (torch.backends.cudnn, "benchmark"))


def test_deterministic_is_applied_for_the_run_and_two_runs_are_bitwise_equal(tmp_path,
                                                                             monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    before = ([getattr(m, n) for m, n in FLAGS], torch.are_deterministic_algorithms_enabled())
    seen = []

    def record(row):
        seen.append(([getattr(m, n) for m, n in FLAGS],
                     torch.are_deterministic_algorithms_enabled(),
                     torch.is_deterministic_algorithms_warn_only_enabled(),
                     os.environ.get("CUBLAS_WORKSPACE_CONFIG")))

    cfg = tiny_config(deterministic=True, epochs=1)
    for name in ("a", "b"):
        train(cfg, tmp_path / name, progress=False, on_step=record)
    assert seen and all(s == ([True, False], True, False, ":4096:8") for s in seen)
    assert ([getattr(m, n) for m, n in FLAGS], torch.are_deterministic_algorithms_enabled()) \
        == before
    a, b = weights(tmp_path / "a" / "last.pt"), weights(tmp_path / "b" / "last.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    seen.clear()
    train(tiny_config(epochs=1), tmp_path / "c", progress=False, on_step=record)
    assert seen[0][1] is False  # without the key nothing is switched on


def test_deterministic_cuda_keeps_tf32_but_not_cudnn_autotuning():
    saved = [torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32]
    try:
        runtime.configure_cuda(torch.device("cuda", 0), "auto", deterministic=True)
        assert torch.backends.cudnn.benchmark is False
        assert torch.backends.cuda.matmul.allow_tf32 is True
        runtime.configure_cuda(torch.device("cuda", 0), "auto")
        assert torch.backends.cudnn.benchmark is True
    finally:
        torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32 = saved


# ------------------------------------------------------------------ compile with sync_bn

def test_compile_with_sync_bn_on_several_processes_is_refused_before_any_work(
        tmp_path, monkeypatch, capsys):
    cfg = tiny_config(compile=True, sync_bn=True)
    assert validate_config(cfg, 1).compile  # one process: plain BatchNorm, compiles
    with pytest.raises(ConfigError, match="compile = true with sync_bn = true is not allowed "
                                          "on 2 processes"):
        validate_config(cfg, 2)
    validate_config(tiny_config(compile=True, sync_bn=False), 2)
    monkeypatch.setenv("WORLD_SIZE", "2")  # as torchrun says, before any process group
    out = tmp_path / "run"
    code = train_main(["--config", "smoke", "--out", str(out), "--no-progress",
                       "--set", "compile=true", "--set", "sync_bn=true"])
    error = capsys.readouterr().err
    assert code == 2 and error.count("\n") == 1 and "set compile = false" in error
    assert not out.exists()


# ------------------------------------------------------------------ a GPU's share of memory

def test_available_gpu_memory_respects_the_process_fraction(monkeypatch):
    gib = 2**30
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (70 * gib, 80 * gib))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: 2 * gib)
    for fraction, expected in ((1.0, 70 * gib), (0.2, 14 * gib), (0.01, 0)):
        monkeypatch.setattr(torch.cuda, "get_per_process_memory_fraction",
                            lambda device=None, f=fraction: f)
        assert runtime.available_memory(torch.device("cuda", 0)) == expected


# ------------------------------------------------------------------ on a GPU (make gpu-check)

@CUDA
def test_cuda_fp16_and_bf16_steps_train(tmp_path):
    for precision in ("fp16", "bf16", "auto"):
        summary = train(tiny_config(device="cuda", precision=precision, epochs=1),
                        tmp_path / precision, progress=False)
        saved = load_checkpoint(tmp_path / precision / "last.pt")
        assert math.isfinite(summary["loss"])
        assert saved["precision"] == runtime.resolve_precision(torch.device("cuda"), precision)
        assert (saved["scaler"] is not None) == (saved["precision"] == "fp16")


@CUDA
def test_cuda_deterministic_runs_are_bitwise_equal(tmp_path):
    cfg = tiny_config(device="cuda", precision="auto", deterministic=True, arch="resnet18",
                      epochs=1)
    for name in ("a", "b"):
        train(cfg, tmp_path / name, progress=False)
    a, b = weights(tmp_path / "a" / "last.pt"), weights(tmp_path / "b" / "last.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)


@CUDA
def test_cuda_available_memory_follows_the_fraction():
    device = torch.device("cuda", 0)
    total = torch.cuda.mem_get_info(device)[1]
    previous = torch.cuda.get_per_process_memory_fraction(device)
    try:
        torch.cuda.set_per_process_memory_fraction(0.1, device)
        assert runtime.available_memory(device) <= 0.1 * total
    finally:
        with contextlib.suppress(RuntimeError):
            torch.cuda.set_per_process_memory_fraction(previous, device)
