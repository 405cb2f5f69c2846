"""LARS against its update written out by hand; the warmup + cosine schedule against its formula."""

import math

import pytest
import torch
from torch import nn

from cooc_minimal.optim import LARS, param_groups, warmup_cosine


def _model() -> nn.Module:
    torch.manual_seed(0)
    # No bias before the BatchNorm: its gradient would be rounding noise only.
    return nn.Sequential(nn.Linear(5, 4, bias=False), nn.BatchNorm1d(4), nn.ReLU(),
                         nn.Linear(4, 3)).double()


def _loss(model: nn.Module, seed: int) -> torch.Tensor:
    x = torch.randn(8, 5, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return (model(x) ** 2).sum() + model(x).sum()


def test_param_groups_exclude_biases_and_norm_parameters():
    model = _model()
    weights, excluded = param_groups(model, 1e-4)
    assert weights["weight_decay"] == 1e-4 and weights["lars"] is True
    assert excluded["weight_decay"] == 0.0 and excluded["lars"] is False
    assert {id(p) for p in weights["params"]} == {id(model[0].weight), id(model[3].weight)}
    assert {id(p) for p in excluded["params"]} == {
        id(model[1].weight), id(model[1].bias), id(model[3].bias)}


def test_lars_matches_the_update_written_out_by_hand():
    lr, wd, momentum, eta = 0.7, 0.05, 0.9, 0.02
    model, reference = _model(), _model()
    optimizer = LARS(param_groups(model, wd), lr=lr, momentum=momentum, eta=eta)
    names = dict(reference.named_parameters())
    mu = {name: torch.zeros_like(p) for name, p in names.items()}
    for step in range(3):
        optimizer.zero_grad()
        _loss(model, step).backward()
        optimizer.step()
        grads = torch.autograd.grad(_loss(reference, step), list(names.values()))
        with torch.no_grad():
            for (name, p), g in zip(names.items(), grads, strict=True):
                if p.ndim > 1:  # a weight: decay, then the trust ratio of the decayed gradient
                    d = g + wd * p
                    d = d * (eta * p.norm() / d.norm())
                else:           # a bias or a BatchNorm parameter: neither
                    d = g
                mu[name] = momentum * mu[name] + d
                p -= lr * mu[name]
    for (name, p), q in zip(model.named_parameters(), names.values(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-12, msg=name)


def test_trust_ratio_is_one_for_a_zero_weight():
    p = nn.Parameter(torch.zeros(3, 2, dtype=torch.float64))
    optimizer = LARS([p], lr=0.5, momentum=0.0, eta=0.001)
    p.grad = torch.ones_like(p)
    optimizer.step()
    torch.testing.assert_close(p.detach(), torch.full((3, 2), -0.5, dtype=torch.float64))


def test_lars_refuses_a_negative_learning_rate():
    with pytest.raises(ValueError, match="lr must be a finite number >= 0"):
        LARS(_model().parameters(), lr=-1.0)


def _by_hand(step, total, warmup, base, final):
    if step < warmup:
        return base * step / warmup
    t = (step - warmup) / (total - warmup)
    return final + (base - final) * (1 + math.cos(math.pi * t)) / 2


@pytest.mark.parametrize("total, warmup, final", [(100, 10, 0.0), (37, 0, 0.01), (20, 19, 0.0)])
def test_warmup_cosine_follows_its_formula(total, warmup, final):
    for step in range(total + 1):
        assert math.isclose(warmup_cosine(step, total, warmup, 0.3, final),
                            _by_hand(step, total, warmup, 0.3, final), abs_tol=1e-15)


def test_warmup_cosine_landmarks():
    assert warmup_cosine(0, 100, 10, 0.3) == 0.0
    assert math.isclose(warmup_cosine(5, 100, 10, 0.3), 0.15)
    assert math.isclose(warmup_cosine(10, 100, 10, 0.3), 0.3)
    assert math.isclose(warmup_cosine(55, 100, 10, 0.3, 0.1), 0.2)   # half-way: the mean
    assert math.isclose(warmup_cosine(100, 100, 10, 0.3, 0.1), 0.1, abs_tol=1e-15)
    assert warmup_cosine(150, 100, 10, 0.3, 0.1) == pytest.approx(0.1)  # past the end: final
    lrs = [warmup_cosine(s, 100, 10, 0.3) for s in range(10, 101)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:], strict=False))


@pytest.mark.parametrize("args, fragment", [
    ((-1, 10, 2, 0.1), "step must be a non-negative integer"),
    ((0, 0, 0, 0.1), "total_steps > 0"),
    ((0, 10, 11, 0.1), "warmup_steps <= total_steps"),
    ((1.5, 10, 2, 0.1), "step must be a non-negative integer"),
])
def test_warmup_cosine_bad_input(args, fragment):
    with pytest.raises(ValueError, match=fragment):
        warmup_cosine(*args)
