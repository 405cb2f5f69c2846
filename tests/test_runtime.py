import contextlib
import random

import numpy as np
import pytest
import torch

from cooc_minimal import runtime


def test_scale_reads_the_environment(monkeypatch):
    monkeypatch.setenv("COOC_SCALE", "full")
    assert runtime.scale() == "full"
    monkeypatch.setenv("COOC_SCALE", " Smoke ")
    assert runtime.scale() == "smoke"


@pytest.mark.parametrize("cuda", [True, False])
def test_scale_default_follows_cuda(monkeypatch, cuda):
    monkeypatch.delenv("COOC_SCALE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    assert runtime.scale() == ("full" if cuda else "smoke")
    assert runtime.device().type == ("cuda" if cuda else "cpu")


def test_unknown_scale_is_one_clear_sentence(monkeypatch):
    monkeypatch.setenv("COOC_SCALE", "fast")
    with pytest.raises(ValueError, match=r"COOC_SCALE='fast' is not a scale: set it to 'smoke'"):
        runtime.scale()


def test_by_scale_picks_the_current_budget(monkeypatch):
    monkeypatch.setenv("COOC_SCALE", "smoke")
    assert runtime.by_scale(smoke=1, full=2) == 1
    monkeypatch.setenv("COOC_SCALE", "full")
    assert runtime.by_scale(smoke=1, full=2) == 2


def test_seed_everything_makes_every_generator_repeat():
    def draw():
        generator = runtime.seed_everything(123)
        legacy_numpy = np.random.rand()  # noqa: NPY002 - checks the legacy global state is seeded
        return (random.random(), legacy_numpy, torch.rand(2), torch.rand(2, generator=generator))

    first, second = draw(), draw()
    assert first[0] == second[0] and first[1] == second[1]
    assert torch.equal(first[2], second[2]) and torch.equal(first[3], second[3])
    runtime.seed_everything(124)
    assert not torch.equal(torch.rand(2), first[2])


@pytest.mark.parametrize("bad", [-1, 2**32, 1.5, "1", True])
def test_seed_everything_rejects_bad_seeds(bad):
    with pytest.raises(ValueError, match="seed must be an integer"):
        runtime.seed_everything(bad)


@pytest.mark.parametrize(("capability", "bf16"), [((7, 5), False), ((7, 0), False),
                                                  ((8, 0), True), ((9, 0), True)])
def test_auto_precision_is_bf16_only_on_gpus_with_bf16_units(monkeypatch, capability, bf16):
    from cooc_minimal import runtime

    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert runtime.has_native_bf16(torch.device("cuda", 0)) is bf16
    assert runtime.has_native_bf16(torch.device("cpu")) is False
    assert isinstance(runtime.autocast(torch.device("cpu"), "auto"), contextlib.nullcontext)


@pytest.mark.parametrize(("precision", "fast"), [("auto", True), ("bf16", True), ("fp32", False)])
def test_cuda_gets_tf32_and_cudnn_autotuning_unless_fp32_is_asked(precision, fast):
    from cooc_minimal import runtime

    flags = (torch.backends.cuda.matmul, "allow_tf32"), (torch.backends.cudnn, "allow_tf32"), \
        (torch.backends.cudnn, "benchmark")
    saved = [getattr(module, name) for module, name in flags]
    try:
        runtime.configure_cuda(torch.device("cpu"), precision)  # a CPU run changes nothing
        assert [getattr(module, name) for module, name in flags] == saved
        runtime.configure_cuda(torch.device("cuda", 0), precision)
        assert [getattr(module, name) for module, name in flags] == [fast] * 3
    finally:
        for (module, name), value in zip(flags, saved, strict=True):
            setattr(module, name, value)
