"""Checks for chapter 6: LARS against its update written out here, the schedule against its
formula at every step, and the two predictions against a simulation or the arithmetic."""

import math

import torch

from exercises.checktools import (
    ARITHMETIC_ONLY,
    NO_LIBRARY,
    close,
    close_number,
    exercise,
    unchanged_call,
)


def _lars(w, g, mu, lr, wd, m, eta, excluded, *, trust_on_grad=False, decay_after=False,
          scale_late=False):
    """The update written out, and the slips' variants (for the hints)."""
    wd = 0.0 if excluded else wd
    d = g + wd * w
    q = torch.tensor(1.0, dtype=w.dtype)
    if not excluded and w.norm() > 0 and d.norm() > 0:
        q = eta * w.norm() / (g.norm() if trust_on_grad else d.norm())
    step = q * g + wd * w if decay_after else q * d
    if scale_late:
        new_mu = m * mu + d
        return w - lr * q * new_mu, new_mu
    new_mu = m * mu + step
    return w - lr * new_mu, new_mu


@exercise(points=2, forbid=[NO_LIBRARY])
def check_lars_step(answers) -> None:
    g = torch.Generator().manual_seed(0)
    cases = [((4, 3), False, 0.3, 0.05), ((5,), True, 0.3, 0.05), ((2, 3, 3), False, 1.0, 0.0),
             ((4, 3), False, 0.1, 1e-4)]
    for shape, excluded, lr, wd in cases:
        w = torch.randn(shape, generator=g, dtype=torch.float64) * 3
        grad = torch.randn(shape, generator=g, dtype=torch.float64) * 0.01
        mu = torch.randn(shape, generator=g, dtype=torch.float64) * 0.1
        what = f"lars_step(w of shape {shape}, excluded={excluded})"
        result = unchanged_call(answers.lars_step, w, grad, mu, lr, wd, 0.9, 0.02, excluded,
                                what=what)
        assert isinstance(result, tuple) and len(result) == 2, (
            "lars_step should return a pair (new_w, new_mu)")
        expected = _lars(w, grad, mu, lr, wd, 0.9, 0.02, excluded)
        slips = {
            "the trust ratio divides by the norm of d = g + weight_decay * w, not of g":
                _lars(w, grad, mu, lr, wd, 0.9, 0.02, excluded, trust_on_grad=True),
            "add the weight decay before the trust ratio, which then scales both":
                _lars(w, grad, mu, lr, wd, 0.9, 0.02, excluded, decay_after=True),
            "the momentum buffer accumulates the scaled step q d":
                _lars(w, grad, mu, lr, wd, 0.9, 0.02, excluded, scale_late=True),
            "an excluded parameter gets no weight decay and no trust ratio":
                _lars(w, grad, mu, lr, wd, 0.9, 0.02, False),
        }
        for i, name in enumerate(("new_w", "new_mu")):
            close(result[i], expected[i], f"{what}, {name}", atol=1e-12, rtol=1e-9,
                  mistakes={hint: wrong[i] for hint, wrong in slips.items()})
    zero = torch.zeros(3, 2, dtype=torch.float64)
    new_w, _ = answers.lars_step(zero, torch.ones(3, 2, dtype=torch.float64), zero.clone(),
                                 0.5, 0.1, 0.9, 0.001)
    close(new_w, torch.full((3, 2), -0.5, dtype=torch.float64), "lars_step with w = 0",
          mistakes={"when ||w|| = 0 the trust ratio is 1, not 0": zero})


def _simulated_relative_step(lr, eta, m, k):
    """LARS without decay on a huge weight (so ||w|| barely moves), constant gradient."""
    w = torch.full((8,), 1e12, dtype=torch.float64)
    grad = torch.linspace(-1, 1, 8, dtype=torch.float64) * 1e-3
    mu = torch.zeros_like(w)
    for _ in range(k):
        before = w.clone()
        d = grad * (eta * w.norm() / grad.norm())
        mu = m * mu + d
        w = w - lr * mu
    return float((w - before).norm() / before.norm())


@exercise(points=1, forbid=[ARITHMETIC_ONLY])
def check_relative_step(answers) -> None:
    for lr, eta, m, k in ((0.3, 0.001, 0.9, 1), (0.3, 0.001, 0.9, 5), (1.0, 0.002, 0.5, 3),
                          (0.1, 1e-5, 0.9, 200)):
        expected = _simulated_relative_step(lr, eta, m, k)
        close_number(answers.relative_step(lr, eta, m, k), expected,
                     f"relative_step(lr={lr}, eta={eta}, momentum={m}, k={k})", rel=1e-5,
                     mistakes={
                         "the momentum buffer adds up the earlier steps too: "
                         "1 + m + ... + m^(k-1) of them": lr * eta if k > 1 else -1.0,
                         "that is the limit for k -> infinity; after k steps the geometric "
                         "sum has k terms": lr * eta / (1 - m) if k < 100 else -1.0,
                     })


def _schedule(step, total, warmup, base, final):
    if step < warmup:
        return base * step / warmup
    t = (step - warmup) / (total - warmup)
    return final + (base - final) * (1 + math.cos(math.pi * t)) / 2


@exercise(points=2, forbid=[NO_LIBRARY])
def check_warmup_cosine(answers) -> None:
    for total, warmup, base, final in ((100, 10, 0.3, 0.0), (57, 0, 1.0, 0.1), (40, 39, 0.2, 0.0),
                                       (28_800, 480, 0.3, 0.0)):
        steps = range(0, total + 1, max(1, total // 200))
        for step in (*steps, warmup, total):
            expected = _schedule(step, total, warmup, base, final)
            what = (f"warmup_cosine(step={step}, total_steps={total}, warmup_steps={warmup}, "
                    f"base_lr={base}, final_lr={final})")
            close_number(answers.warmup_cosine(step, total, warmup, base, final), expected,
                         what, rel=1e-9, abs_=1e-12, mistakes={
                             "the cosine runs over the steps after warmup, total - warmup, "
                             "not over all of them": final + (base - final) * (
                                 1 + math.cos(math.pi * step / total)) / 2
                             if step >= warmup and warmup else -1.0,
                             "the warmup starts from 0 at step 0 (step / warmup, not "
                             "(step + 1) / warmup)": base * (step + 1) / warmup
                             if step < warmup else -1.0,
                             "the cosine ends at final_lr, not at 0":
                             _schedule(step, total, warmup, base, 0.0) if final else -1.0,
                         })


@exercise(points=1, forbid=[ARITHMETIC_ONLY])
def check_half_lr_step(answers) -> None:
    # The last two runs decay over an odd number of steps (13 * 5 and 123 * 391): their
    # half-way point lies between two steps, which an integer division would round away.
    for images, batch, epochs, warmup in ((50_000, 1024, 600, 10), (1000, 100, 10, 0),
                                          (126_689, 1024, 400, 10), (10_000, 128, 3, 1),
                                          (1_300, 100, 6, 1), (126_689, 1024, 401, 10)):
        per_epoch = images // batch
        total, warm = epochs * per_epoch, warmup * per_epoch
        expected = next(s for s in range(warm, total + 1)
                        if _schedule(s, total, warm, 1.0, 0.0) <= 0.5 + 1e-12)
        if (total - warm) % 2:  # the exact half lies between two steps
            expected -= 0.5
        close_number(answers.half_lr_step(images, batch, epochs, warmup), expected,
                     f"half_lr_step({images}, {batch}, {epochs}, {warmup})", rel=1e-12,
                     mistakes={
                         "when total - warmup is odd the half-way point lies between two "
                         "steps: keep the fraction (/ 2, not // 2)":
                             warm + (total - warm) // 2 if (total - warm) % 2 else -1.0,
                         "the last incomplete batch is dropped: images // batch_size steps "
                         "per epoch": (warmup + (epochs - warmup) / 2) * images / batch,
                         "the cosine starts after the warmup, so add the warmup steps":
                             (total - warm) / 2 if warm else -1.0,
                         "the cosine is half way down half way through the decay, which "
                         "starts after the warmup": total / 2 if warm else -1.0,
                     })
