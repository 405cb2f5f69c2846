"""Where the code runs and how big it runs: device, precision, scale switch and seeding.

Every notebook and script asks :func:`scale` which budget it has. ``"smoke"``
means a CPU and a minute per notebook (CI, the book build, a laptop);
``"full"`` means a GPU and the paper's settings.

The small helpers that training, evaluation and the figures share live here once:
:func:`pick_device`, :func:`autocast`, :func:`model_device`, :func:`to_unit_float`,
:func:`positive_int`, :func:`check_memory` and :func:`evaluation_mode`.
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator
from typing import TypeVar

import numpy as np
import torch
from torch import nn

SCALES = ("smoke", "full")
SCALE_VARIABLE = "COOC_SCALE"

T = TypeVar("T")


DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def device() -> torch.device:
    """The device to compute on: the first CUDA GPU when there is one, else the CPU."""
    return pick_device("auto")


def pick_device(requested: str = "auto") -> torch.device:
    """``"auto"`` (CUDA when visible, else the CPU), ``"cpu"`` or ``"cuda"`` as a device.

    Asking for ``"cuda"`` where no GPU is visible is refused with a sentence, not silently
    run on the CPU. Under ``torchrun`` the CUDA device is ``LOCAL_RANK``'s.
    """
    if requested not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {requested!r}.")
    if requested == "cuda" and not torch.cuda.is_available():
        raise ValueError("device = 'cuda' is not allowed here: no CUDA GPU is visible; use "
                         "device = 'auto' or 'cpu'.")
    if requested == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))


def resolve_precision(device: torch.device, precision: str) -> str:
    """The precision a run on ``device`` computes in: ``"fp32"``, ``"bf16"`` or ``"fp16"``.

    ``"auto"`` means bf16 on a GPU with bf16 units (compute capability 8.0 or more: A100,
    H100, RTX 30xx/40xx), fp32 on an older GPU and on the CPU. On a T4 or V100 (sm_75,
    sm_70), which only emulate bf16, ``"fp16"`` is the other option: fp16 autocast with a
    ``GradScaler`` (:func:`grad_scaler`), usually faster than fp32 there on their fp16
    tensor cores; ``make gpu-check`` (``benchmarks/gpu_check.py``) measures which is faster
    on your card. ``"bf16"`` and ``"fp16"`` are taken as asked on any device (a CPU runs
    both, at a speed that depends on the CPU).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got "
                         f"{precision!r}.")
    if precision != "auto":
        return precision
    return "bf16" if has_native_bf16(device) else "fp32"


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """The context a forward pass runs under: bf16 or fp16 autocast, or nothing (fp32),
    as :func:`resolve_precision` resolves ``precision`` on ``device``. The losses compute
    in float32 whatever the autocast (``losses.py`` upcasts half-precision inputs)."""
    resolved = resolve_precision(device, precision)
    if resolved == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if resolved == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler | None:
    """A ``torch.amp.GradScaler`` for fp16 (its gradients would underflow unscaled), None
    for fp32 and bf16 (bf16 has fp32's range). The scaler multiplies the loss before
    backward, unscales the gradients before the step, skips a step whose gradients are
    not finite and lowers its scale (``train_step`` reports such a step as skipped; it is
    no divergence unless the loss itself is not finite)."""
    if resolve_precision(device, precision) != "fp16":
        return None
    return torch.amp.GradScaler(device.type)


def configure_cuda(device: torch.device, precision: str, *, deterministic: bool = False) -> None:
    """Let cuDNN pick its fastest kernels and fp32 matmuls use TF32 on a GPU, except when
    ``precision="fp32"`` asks for full fp32 (runs compared to 1e-6, as the tests do).
    ``deterministic`` (:func:`deterministic_algorithms`): no cuDNN autotuning, whose choice
    of kernel may change from run to run."""
    if device.type != "cuda":
        return
    fast = precision != "fp32"
    torch.backends.cuda.matmul.allow_tf32 = fast
    torch.backends.cudnn.allow_tf32 = fast
    torch.backends.cudnn.benchmark = fast and not deterministic


#: what cuBLAS needs to compute deterministically (CUDA 10.2+): set before CUDA starts
CUBLAS_WORKSPACE = ":4096:8"


@contextlib.contextmanager
def deterministic_algorithms(enabled: bool) -> Iterator[None]:
    """With ``enabled``, a ``with`` block in which torch computes deterministically: cuDNN's
    deterministic kernels without autotuning (``cudnn.deterministic = True``,
    ``cudnn.benchmark = False``) and ``torch.use_deterministic_algorithms(True)``, which
    raises at any op that has no deterministic kernel rather than run it. cuBLAS needs
    ``CUBLAS_WORKSPACE_CONFIG`` (``:4096:8``) in the environment before CUDA starts: it is
    set here when unset, so enter this block before the first CUDA call (``train`` does,
    before it picks the device); a value set beforehand is kept. The previous settings
    come back at the end. Without ``enabled`` nothing changes: TF32 and cuDNN autotuning
    stay as :func:`configure_cuda` sets them. TF32 itself is deterministic."""
    if not enabled:
        yield
        return
    saved = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark,
             torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled())
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    torch.use_deterministic_algorithms(True, warn_only=False)
    try:
        yield
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[:2]
        torch.use_deterministic_algorithms(saved[2], warn_only=saved[3])


def has_native_bf16(device: torch.device) -> bool:
    """Whether ``device`` is a CUDA GPU whose tensor cores compute in bf16 (sm_80 or later)."""
    return device.type == "cuda" and torch.cuda.get_device_capability(device) >= (8, 0)


def model_device(model: nn.Module) -> torch.device:
    """The device of a model's first parameter (or buffer); the CPU for an empty model."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def to_unit_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 pixels (0..255) -> float32 in [0, 1]; floating-point images are returned as is.

    Any other dtype is refused with a sentence that says how to convert it.
    """
    if images.dtype == torch.uint8:
        return images.float().div_(255)
    if not images.is_floating_point():
        raise ValueError(f"images must be floating point in [0, 1] or uint8, got "
                         f"{images.dtype}: convert them with images.float() / 255.")
    return images


def available_memory(device: torch.device) -> int | None:
    """Bytes that ``device`` can still allocate: a GPU's free memory (no more than this
    process's share, ``torch.cuda.set_per_process_memory_fraction``), or the system's
    ``MemAvailable`` (``/proc/meminfo``) for the CPU; None where that cannot be read (a CPU
    outside Linux), so callers skip their check rather than guess."""
    if device.type == "cuda":  # within set_per_process_memory_fraction's share, if set
        free, total = torch.cuda.mem_get_info(device)
        share = torch.cuda.get_per_process_memory_fraction(device) * total
        return int(max(min(free, share - torch.cuda.memory_reserved(device)), 0))
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def check_memory(need: int, device: torch.device, what: str, hint: str) -> None:
    """Refuse, in one sentence, work that needs ``need`` bytes on ``device`` when fewer are
    available: ``what`` says what needs them, ``hint`` what to change. An allocation that
    large would otherwise wake the kernel's OOM killer, or fail deep inside torch."""
    free = available_memory(device)
    if free is not None and need > free:
        where = "GPU" if device.type == "cuda" else "memory"
        raise ValueError(f"{what} needs about {_size(need)}, more than the {_size(free)} of "
                         f"{where} available: {hint}.")


def _size(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def positive_int(name: str, value: object) -> int:
    """``value`` if it is an integer >= 1 (not a bool); else one sentence naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return value


def scale() -> str:
    """The run's scale, ``"smoke"`` or ``"full"``, read from ``COOC_SCALE``.

    Unset or empty, it is ``"full"`` when CUDA is available and ``"smoke"``
    otherwise. Any other value raises a ``ValueError`` that says what to set.
    """
    raw = os.environ.get(SCALE_VARIABLE, "").strip()
    if not raw:
        return "full" if torch.cuda.is_available() else "smoke"
    value = raw.lower()
    if value not in SCALES:
        raise ValueError(
            f"{SCALE_VARIABLE}={raw!r} is not a scale: set it to 'smoke' (CPU, about a "
            f"minute per notebook) or 'full' (GPU, the paper's settings), or unset it."
        )
    return value


def by_scale(smoke: T, full: T) -> T:
    """Pick the value for the current scale: ``steps = by_scale(smoke=200, full=20_000)``."""
    return smoke if scale() == "smoke" else full


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and PyTorch (CPU and every GPU) with ``seed``.

    Returns a fresh ``torch.Generator`` on the CPU seeded with the same value,
    for code that takes an explicit generator.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an integer in [0, 2**32), got {seed!r}.")
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - the legacy global state is what old code draws from
    torch.manual_seed(seed)  # also seeds every CUDA device
    return torch.Generator().manual_seed(seed)


@contextlib.contextmanager
def evaluation_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode (BatchNorm uses its running statistics) and no autograd, for a ``with``
    block; every module's own mode is restored afterwards, so a training loop can call it."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for module, training in modes:
            module.training = training
