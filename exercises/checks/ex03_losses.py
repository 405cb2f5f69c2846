"""Checks for chapter 3: each loss against cooc_minimal.losses, value and gradient."""

import math

import torch

from cooc_minimal import losses
from exercises.checktools import NO_LIBRARY, NO_LOOPS, NO_NUMPY, exercise


def _draw(*shape, seed):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed),
                       dtype=torch.float64)


def _agree(student, reference, inputs, what: str, mistakes=None) -> None:
    """Compare value and gradient of student(*inputs) with reference(*inputs).

    mistakes: {hint: function} of common wrong answers; a match names the slip.
    """
    mine = [x.clone().requires_grad_(True) for x in inputs]
    value = student(*mine)
    assert isinstance(value, torch.Tensor), (
        f"{what} should return a tensor, got {type(value).__name__}")
    assert value.dim() == 0, f"{what} should return a 0-dim tensor, got shape {tuple(value.shape)}"
    expected = reference(*inputs)
    got, want = float(value.detach()), float(expected)
    if not math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-8):
        for hint, wrong in (mistakes or {}).items():
            if math.isclose(got, float(wrong(*inputs)), rel_tol=1e-6, abs_tol=1e-8):
                raise AssertionError(f"{what} = {got:.6g}, expected {want:.6g}: {hint}")
        raise AssertionError(f"{what} = {got:.6g}, expected {want:.6g}")
    assert value.requires_grad, (
        f"{what} is not differentiable: keep to torch operations (no .item(), no NumPy)")
    grads = torch.autograd.grad(value, mine)
    ref = [x.clone().requires_grad_(True) for x in inputs]
    expected_grads = torch.autograd.grad(reference(*ref), ref)
    for i, (g, e) in enumerate(zip(grads, expected_grads, strict=True)):
        worst = (g - e).abs().max().item()
        assert worst <= 1e-6 * max(1.0, e.abs().max().item()), (
            f"the gradient of {what} with respect to input {i + 1} is off by up to {worst:.3g}")


@exercise(points=1, forbid=[NO_LIBRARY, NO_NUMPY, NO_LOOPS])
def check_spectral_loss(answers) -> None:
    for shape, lam in (((6, 4), 1.0), ((5, 9), 0.3)):
        z1, z2 = _draw(*shape, seed=1), _draw(*shape, seed=2)
        n = shape[0]

        def with_diagonal(a, b, lam=lam):
            return -(a * b).sum(1).mean() + lam * ((a @ b.T) ** 2).mean()

        def over_n_squared(a, b, lam=lam, n=n):
            negatives = ((a @ b.T) ** 2).sum() - ((a * b).sum(1) ** 2).sum()
            return -(a * b).sum(1).mean() + lam * negatives / n**2

        _agree(lambda a, b, lam=lam: answers.spectral_loss(a, b, lam=lam),
               lambda a, b, lam=lam: losses.spectral_loss(a, b, lam=lam), (z1, z2),
               f"spectral_loss on shape {shape} with lam={lam}",
               {"leave out the pairs i == j from the negatives": with_diagonal,
                "average the negatives over N (N - 1) pairs, not N^2": over_n_squared})


def _vicreg_variant(a, b, var_scale=1.0, unbiased=True):
    """VICReg with default coefficients, and a common slip in the variance term."""
    def v(z):
        return torch.relu(1.0 - torch.sqrt(z.var(dim=0, unbiased=unbiased) + 1e-4)).mean()

    inv, _, cov = losses.vicreg_terms(a, b)
    return 25 * inv + 25 * var_scale * (v(a) + v(b)) + cov


@exercise(points=1, forbid=[NO_LIBRARY, NO_NUMPY, NO_LOOPS])
def check_vicreg_loss(answers) -> None:
    for shape in ((8, 4), (5, 9)):
        z1, z2 = _draw(*shape, seed=3) * 0.6, _draw(*shape, seed=4) * 1.4

        def halved(a, b):
            return _vicreg_variant(a, b, var_scale=0.5)

        def biased(a, b):
            return _vicreg_variant(a, b, unbiased=False)

        _agree(answers.vicreg_loss, losses.vicreg_loss, (z1, z2), f"vicreg_loss on shape {shape}",
               {"the paper sums v(Z1) + v(Z2); the official code's halving is not asked for":
                halved,
                "use the unbiased variance (divide by N - 1)": biased})
    z1, z2 = _draw(6, 3, seed=5), _draw(6, 3, seed=6)
    _agree(lambda a, b: answers.vicreg_loss(a, b, 2.0, 3.0, 0.5, gamma=1.5, eps=1e-3),
           lambda a, b: losses.vicreg_loss(a, b, 2.0, 3.0, 0.5, gamma=1.5, eps=1e-3),
           (z1, z2), "vicreg_loss with coefficients (2, 3, 0.5), gamma=1.5, eps=1e-3")


@exercise(points=1, forbid=[NO_LIBRARY, NO_NUMPY, NO_LOOPS])
def check_tcr_loss(answers) -> None:
    for shape in ((12, 5), (5, 12)):
        z = _draw(*shape, seed=7) / 3
        for eps in (0.2, 0.5):
            _agree(lambda t, eps=eps: answers.tcr_loss(t, eps=eps),
                   lambda t, eps=eps: losses.tcr_loss(t, eps=eps), (z,),
                   f"tcr_loss on shape {shape} with eps={eps}",
                   {"square eps: the rate has D / (N eps^2) (EMP-SSL's code "
                    "passes its 0.2 where eps^2 stands)":
                    lambda t, eps=eps: losses.tcr_loss(t, eps=math.sqrt(eps)),
                    "return minus the rate (-1/2 logdet), not the rate":
                    lambda t, eps=eps: -losses.tcr_loss(t, eps=eps)})


@exercise(points=1, forbid=[NO_LIBRARY, NO_NUMPY, NO_LOOPS])
def check_simclr_loss(answers) -> None:
    for shape, tau in (((6, 4), 0.1), ((5, 9), 0.5)):
        z1, z2 = _draw(*shape, seed=8), _draw(*shape, seed=9)
        _agree(lambda a, b, tau=tau: answers.simclr_loss(a, b, temperature=tau),
               lambda a, b, tau=tau: losses.simclr_loss(a, b, temperature=tau), (z1, z2),
               f"simclr_loss on shape {shape} with temperature={tau}")
    z1, z2 = _draw(6, 4, seed=10), _draw(6, 4, seed=11)
    scaled = float(answers.simclr_loss(3 * z1, 0.5 * z2))
    assert math.isclose(scaled, float(answers.simclr_loss(z1, z2)), rel_tol=1e-9), (
        "simclr_loss changed when z was rescaled: normalise each row (cosine similarity)")


@exercise(points=1, forbid=[NO_LIBRARY, NO_NUMPY])
def check_multipatch_tcr(answers) -> None:
    for shape in ((8, 3, 5), (4, 4, 9)):
        z = _draw(*shape, seed=12)
        _agree(answers.multipatch_tcr, lambda t: losses.multipatch_loss(t, "tcr"), (z,),
               f"multipatch_tcr on shape {shape}",
               {"divide every z_bi by its norm first, as EMP-SSL does":
                lambda t: losses.multipatch_loss(t, "tcr", normalize=False)})
    z = _draw(6, 2, 4, seed=13)
    _agree(lambda t: answers.multipatch_tcr(t, lam=2.0, eps=0.5),
           lambda t: losses.multipatch_loss(t, "tcr", lam=2.0, eps=0.5), (z,),
           "multipatch_tcr with lam=2, eps=0.5")
