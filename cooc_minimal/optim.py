"""LARS and the warmup + cosine learning-rate schedule of appendix C.

LARS (You et al. 2017) scales each weight tensor's step by a *trust ratio*
``eta * ||w|| / ||g + wd w||``, so that every layer moves by about the same fraction
of its norm whatever the scale of its gradient: the reason large batches (1024 here)
train stably. As in the VICReg code (facebookresearch/vicreg, ``main_vicreg.py``),
biases and normalisation parameters (every tensor with one dimension) get neither
weight decay nor the trust ratio: :func:`param_groups` splits a model that way.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

__all__ = ["LARS", "param_groups", "warmup_cosine"]


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: weights (weight decay, trust ratio) and biases + norm parameters (neither).

    A parameter with ``ndim <= 1`` (a bias, a BatchNorm scale or shift) is excluded, the rule
    of VICReg's ``exclude_bias_and_norm``. Parameters without ``requires_grad`` are skipped.
    """
    weights, excluded = [], []
    for p in model.parameters():
        if p.requires_grad:
            (excluded if p.ndim <= 1 else weights).append(p)
    return [{"params": weights, "weight_decay": weight_decay, "lars": True},
            {"params": excluded, "weight_decay": 0.0, "lars": False}]


class LARS(torch.optim.Optimizer):
    """SGD with momentum, weight decay and a layer-wise trust ratio (VICReg's variant).

    For each parameter p with gradient g, in a group with ``lars=True``::

        d  = g + weight_decay * p
        q  = eta * ||p|| / ||d||    (1 when ||p|| = 0 or ||d|| = 0)
        mu = momentum * mu + q * d
        p  = p - lr * mu

    In a group with ``lars=False`` the same update runs with q = 1. Per-group options:
    ``lr``, ``weight_decay``, ``momentum``, ``eta``, ``lars``.
    """

    def __init__(self, params: Iterable, lr: float, weight_decay: float = 0.0,
                 momentum: float = 0.9, eta: float = 0.001, lars: bool = True) -> None:
        for name, value in (("lr", lr), ("weight_decay", weight_decay),
                            ("momentum", momentum), ("eta", eta)):
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ValueError(f"LARS {name} must be a finite number >= 0, got {value!r}.")
        defaults = {"lr": lr, "weight_decay": weight_decay, "momentum": momentum, "eta": eta,
                    "lars": lars}
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):  # noqa: D102 - documented on the class
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                d = p.grad
                if group["weight_decay"]:
                    d = d.add(p, alpha=group["weight_decay"])
                if group["lars"]:
                    p_norm, d_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(d)
                    ratio = torch.where((p_norm > 0) & (d_norm > 0),
                                        group["eta"] * p_norm / d_norm, torch.ones_like(p_norm))
                    d = d * ratio
                state = self.state[p]
                if "mu" not in state:
                    state["mu"] = torch.zeros_like(p)
                mu = state["mu"]
                mu.mul_(group["momentum"]).add_(d)
                p.add_(mu, alpha=-group["lr"])
        return loss


def warmup_cosine(step: int, total_steps: int, warmup_steps: int, base_lr: float,
                  final_lr: float = 0.0) -> float:
    """The learning rate at ``step`` (0-based): linear warmup, then cosine decay.

    For ``step < warmup_steps``: ``base_lr * step / warmup_steps`` (0 at step 0, as in the
    VICReg code). Then, with ``t = (step - warmup_steps) / (total_steps - warmup_steps)``
    in [0, 1]: ``final_lr + (base_lr - final_lr) * (1 + cos(pi t)) / 2``, so ``base_lr``
    right after warmup and ``final_lr`` at ``step = total_steps``. Steps past the end keep
    ``final_lr``.
    """
    for name, value in (("step", step), ("total_steps", total_steps),
                        ("warmup_steps", warmup_steps)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}.")
    if total_steps == 0 or warmup_steps > total_steps:
        raise ValueError(f"need 0 <= warmup_steps <= total_steps and total_steps > 0, got "
                         f"warmup_steps={warmup_steps}, total_steps={total_steps}.")
    if step < warmup_steps:
        return base_lr * step / warmup_steps
    if warmup_steps == total_steps:
        return final_lr
    t = min(1.0, (step - warmup_steps) / (total_steps - warmup_steps))
    return final_lr + (base_lr - final_lr) * 0.5 * (1.0 + math.cos(math.pi * t))
