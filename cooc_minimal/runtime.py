"""Where the code runs and how big it runs: device, scale switch and seeding.

Every notebook and script asks :func:`scale` which budget it has. ``"smoke"``
means a CPU and a minute per notebook (CI, the book build, a laptop);
``"full"`` means a GPU and the paper's settings.
"""

from __future__ import annotations

import os
import random
from typing import TypeVar

import numpy as np
import torch

SCALES = ("smoke", "full")
SCALE_VARIABLE = "COOC_SCALE"

T = TypeVar("T")


def device() -> torch.device:
    """The device to compute on: the first CUDA GPU when there is one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


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
