"""Reference answers for chapter 6."""

import math

import torch


def lars_step(w: torch.Tensor, g: torch.Tensor, mu: torch.Tensor, lr: float,
              weight_decay: float, momentum: float, eta: float,
              excluded: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    if excluded:
        d = g
    else:
        d = g + weight_decay * w
        w_norm, d_norm = w.norm(), d.norm()
        if w_norm > 0 and d_norm > 0:
            d = d * (eta * w_norm / d_norm)
    new_mu = momentum * mu + d
    return w - lr * new_mu, new_mu


def relative_step(lr: float, eta: float, momentum: float, k: int) -> float:
    # Worked answer. The buffer after k steps of the same q u is (1 + m + ... + m^(k-1)) q u
    # = (1 - m^k) / (1 - m) q u, and lr ||q u|| = lr eta ||theta||. For k -> infinity it tends to
    # lr eta / (1 - m): ten times lr eta for m = 0.9. The appendix C runs (lr 0.3 at the peak,
    # eta = 0.001, m = 0.9) thus move every weight tensor by about 0.3% of its norm per step,
    # not the 0.03% that lr * eta suggests.
    return lr * eta * (1 - momentum**k) / (1 - momentum)


def warmup_cosine(step: int, total_steps: int, warmup_steps: int, base_lr: float,
                  final_lr: float) -> float:
    if step < warmup_steps:
        return base_lr * step / warmup_steps
    t = (step - warmup_steps) / (total_steps - warmup_steps)
    return final_lr + (base_lr - final_lr) * (1 + math.cos(math.pi * t)) / 2


def half_lr_step(images: int, batch_size: int, epochs: int, warmup_epochs: int) -> float:
    # Worked answer. cos(pi t) = 0 at t = 1/2, so the learning rate is half way half way
    # through the decay: warmup + (total - warmup) / 2, a half-integer when total - warmup
    # is odd. CIFAR-10 (appendix C): 50,000 // 1024 = 48 steps per epoch, 28,800 in all,
    # 480 of warmup, so step 480 + 14,160 = 14,640 (epoch 305, not 300).
    per_epoch = images // batch_size
    total, warmup = epochs * per_epoch, warmup_epochs * per_epoch
    return warmup + (total - warmup) / 2
