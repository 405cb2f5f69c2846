"""Chapter 6: one LARS step, the warmup + cosine schedule, and two predictions.

Edit the functions below, then run ``make check-exercises CHAPTER=06``. The tasks, with
hints, are on the book page "Exercises 6". Leave the inputs unchanged, and do not import
``cooc_minimal``.
"""

import math  # noqa: F401 - you may need it

import torch


def lars_step(w: torch.Tensor, g: torch.Tensor, mu: torch.Tensor, lr: float,
              weight_decay: float, momentum: float, eta: float,
              excluded: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """One LARS update of one parameter tensor, as the VICReg code makes it.

    w: the parameter, g: its gradient, mu: its momentum buffer (all of one shape).
    Return ``(new_w, new_mu)`` as new tensors, with norms over all entries:

    - d = g + weight_decay * w
    - q = eta * ||w|| / ||d||, or q = 1 when ||w|| = 0 or ||d|| = 0
    - new_mu = momentum * mu + q * d
    - new_w = w - lr * new_mu

    ``excluded`` (a bias or a normalisation parameter): no weight decay and q = 1.
    """
    raise NotImplementedError


def relative_step(lr: float, eta: float, momentum: float, k: int) -> float:
    """Your prediction: how far LARS moves a weight tensor at its k-th step (k = 1, 2, ...).

    Return ||w_k - w_(k-1)|| / ||w|| for LARS without weight decay, starting from a zero
    momentum buffer, when every gradient points the same way and ||w|| barely changes.
    A formula with arithmetic only.
    """
    raise NotImplementedError


def warmup_cosine(step: int, total_steps: int, warmup_steps: int, base_lr: float,
                  final_lr: float) -> float:
    """The learning rate at ``step`` (0, 1, ..., total_steps).

    A linear warmup from 0 at step 0 to ``base_lr`` at step ``warmup_steps``, then a cosine
    from ``base_lr`` down to ``final_lr`` at step ``total_steps`` (half a period).
    """
    raise NotImplementedError


def half_lr_step(images: int, batch_size: int, epochs: int, warmup_epochs: int) -> float:
    """Your prediction: the step at which the cosine has come half way down.

    Training visits ``images`` images per epoch in batches of ``batch_size``, dropping the
    last incomplete batch; the schedule warms up for ``warmup_epochs`` epochs, then decays
    along a cosine until the end of ``epochs`` epochs. At which step (it may be fractional)
    is the learning rate half way between its peak and its final value? Arithmetic only.
    """
    raise NotImplementedError
