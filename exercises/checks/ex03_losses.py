"""Checks for chapter 3: each loss against its formula written out here, value and gradient.

The references below are deliberately plain (explicit masks, eigenvalues for the
log-determinant) and independent of ``cooc_minimal.losses``, so that the library can change
its defaults or its algorithms without moving the target.
"""

import math

import torch

from exercises.checktools import (
    NO_LIBRARY,
    NO_LOOPS,
    NO_NUMPY,
    agree,
    close,
    exercise,
    expect_tensor,
    forbid_names,
    unchanged_call,
)

LOSS_RULES = [NO_LIBRARY, NO_NUMPY, NO_LOOPS]
NO_LU = forbid_names(
    "logdet", "slogdet", "det",
    why="take the log-determinant from a Cholesky factor: torch.logdet uses LU, which on "
        "this course's torch build returns wrong values for a stack of matrices")


def _draw(*shape, seed, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(*shape, generator=g, dtype=torch.float64)


def _off_diagonal_mask(n: int) -> torch.Tensor:
    return ~torch.eye(n, dtype=torch.bool)


def spectral(a, b, lam=1.0, include_diagonal=False, over=None, sign=1.0):
    n = a.shape[0]
    squared = (a @ b.T) ** 2
    negatives = squared.sum() if include_diagonal else squared[_off_diagonal_mask(n)].sum()
    return -sign * (a * b).sum(1).mean() + lam * negatives / (over or n * (n - 1))


@exercise(points=1, forbid=LOSS_RULES)
def check_spectral_loss(answers) -> None:
    for shape, lam in (((6, 4), 1.0), ((5, 9), 0.3)):
        z1, z2 = _draw(*shape, seed=1), _draw(*shape, seed=2)
        n = shape[0]
        agree(lambda a, b, lam=lam: answers.spectral_loss(a, b, lam=lam),
              lambda a, b, lam=lam: spectral(a, b, lam), (z1, z2),
              f"spectral_loss on shape {shape} with lam={lam}",
              {"leave the pairs i == j out of the negatives":
               lambda a, b, lam=lam, n=n: spectral(a, b, lam, include_diagonal=True, over=n * n),
               "leave the pairs i == j out of the negatives (and divide by N (N - 1))":
               lambda a, b, lam=lam: spectral(a, b, lam, include_diagonal=True),
               "divide the negatives by the N (N - 1) pairs i != j, not by N^2":
               lambda a, b, lam=lam, n=n: spectral(a, b, lam, over=n * n),
               "the similarity term is minus the mean inner product (mind the sign)":
               lambda a, b, lam=lam: spectral(a, b, lam, sign=-1.0)})


def vicreg(a, b, inv_c=25.0, var_c=25.0, cov_c=1.0, gamma=1.0, eps=1e-4, var_scale=1.0,
           unbiased=True, cov_over="D", centre=True):
    def v(z):
        return torch.relu(gamma - torch.sqrt(z.var(dim=0, unbiased=unbiased) + eps)).mean()

    def c(z):
        n, d = z.shape
        centred = z - z.mean(dim=0) if centre else z
        cov = centred.T @ centred / (n - 1)
        total = cov[_off_diagonal_mask(d)].pow(2).sum()
        return total / {"D": d, "N": n, "D^2": d * d}[cov_over]

    invariance = ((a - b) ** 2).mean()
    return inv_c * invariance + var_c * var_scale * (v(a) + v(b)) + cov_c * (c(a) + c(b))


@exercise(points=2, forbid=LOSS_RULES)
def check_vicreg_loss(answers) -> None:
    for shape in ((8, 4), (5, 9)):
        z1, z2 = _draw(*shape, seed=3, scale=0.6) + 0.5, _draw(*shape, seed=4, scale=1.4)
        agree(answers.vicreg_loss, vicreg, (z1, z2), f"vicreg_loss on shape {shape}",
              {"the paper sums v(Z1) + v(Z2); the official code's halving is not asked for":
               lambda a, b: vicreg(a, b, var_scale=0.5),
               "use the unbiased variance (divide by N - 1)":
               lambda a, b: vicreg(a, b, unbiased=False),
               "c(Z) divides the sum of squared covariances by D (features), not by N":
               lambda a, b: vicreg(a, b, cov_over="N"),
               "c(Z) divides by D, not D^2 (a sum over off-diagonal entries, not a mean)":
               lambda a, b: vicreg(a, b, cov_over="D^2"),
               "centre each feature before the covariance (subtract the batch mean)":
               lambda a, b: vicreg(a, b, centre=False)})
    z1, z2 = _draw(6, 3, seed=5), _draw(6, 3, seed=6)
    agree(lambda a, b: answers.vicreg_loss(a, b, 2.0, 3.0, 0.5, gamma=1.5, eps=1e-3),
          lambda a, b: vicreg(a, b, 2.0, 3.0, 0.5, gamma=1.5, eps=1e-3),
          (z1, z2), "vicreg_loss with coefficients (2, 3, 0.5), gamma=1.5, eps=1e-3")


def rate(z, eps, factor=None):
    """-R(Z) from the eigenvalues of Z^T Z: no LU, no Cholesky. z: (..., N, D) -> (...)."""
    n, d = z.shape[-2:]
    c = d / (n * eps**2) if factor is None else factor
    eigenvalues = torch.linalg.eigvalsh(z.transpose(-1, -2) @ z)
    return -0.5 * torch.log1p(c * eigenvalues.clamp_min(0)).sum(dim=-1)


@exercise(points=2, forbid=[*LOSS_RULES, NO_LU])
def check_tcr_loss(answers) -> None:
    for shape in ((12, 5), (5, 12)):
        z = _draw(*shape, seed=7, scale=1 / 3)
        n, d = shape
        for eps in (0.2, 0.5):
            agree(lambda t, eps=eps: answers.tcr_loss(t, eps=eps),
                  lambda t, eps=eps: rate(t, eps), (z,),
                  f"tcr_loss on shape {shape} with eps={eps}",
                  {"square eps: the rate has D / (N eps^2)":
                   lambda t, eps=eps: rate(t, math.sqrt(eps)),
                   "return minus the rate, -1/2 logdet(...), not the rate":
                   lambda t, eps=eps: -rate(t, eps),
                   "keep the factor 1/2 in front of the log-determinant":
                   lambda t, eps=eps: 2 * rate(t, eps),
                   "the scale is D / (N eps^2) whichever Gram matrix you factor":
                   lambda t, eps=eps, n=n, d=d: rate(t, eps, n / (d * eps**2))})
    stack = _draw(3, 6, 4, seed=8, scale=0.5)
    got = unchanged_call(answers.tcr_loss, stack, eps=0.3, what="tcr_loss on a (3, 6, 4) stack")
    expect_tensor(got, "tcr_loss on a (3, 6, 4) stack", shape=(3,))
    close(got, rate(stack, 0.3), "tcr_loss on a (3, 6, 4) stack", atol=1e-9,
          mistakes={"return one value per batch of the stack, not their mean": rate(stack, 0.3)
                    .mean().expand(3)})
    big = _draw(2, 64, 96, seed=9, scale=0.2).float()
    got = answers.tcr_loss(big, eps=0.5)
    expect_tensor(got, "tcr_loss on a float32 (2, 64, 96) stack", shape=(2,))
    close(got, rate(big.double(), 0.5), "tcr_loss on a float32 (2, 64, 96) stack", atol=1e-3,
          rtol=1e-4)


def nt_xent(a, b, tau, normalise=True, mask_self=True):
    u = torch.cat([a, b])
    if normalise:
        u = u / u.norm(dim=1, keepdim=True)
    s = u @ u.T / tau
    n = a.shape[0]
    total = 0.0
    for i in range(2 * n):
        positive = (i + n) % (2 * n)
        others = [j for j in range(2 * n) if j != i or not mask_self]
        total = total - s[i, positive] + torch.logsumexp(s[i, others], dim=0)
    return total / (2 * n)


@exercise(points=1, forbid=LOSS_RULES)
def check_simclr_loss(answers) -> None:
    z1, z2 = _draw(6, 4, seed=10), _draw(6, 4, seed=11)
    scaled, plain = answers.simclr_loss(3 * z1, 0.5 * z2), answers.simclr_loss(z1, z2)
    for value in (scaled, plain):
        expect_tensor(value, "simclr_loss", shape=())
    scaled, plain = float(scaled), float(plain)
    assert math.isclose(scaled, plain, rel_tol=1e-9), (
        "simclr_loss changed when the rows of z were rescaled: normalise each row first, so "
        "that s is a cosine similarity")
    for shape, tau in (((6, 4), 0.1), ((5, 9), 0.5)):
        z1, z2 = _draw(*shape, seed=12), _draw(*shape, seed=13)
        agree(lambda a, b, tau=tau: answers.simclr_loss(a, b, temperature=tau),
              lambda a, b, tau=tau: nt_xent(a, b, tau), (z1, z2),
              f"simclr_loss on shape {shape} with temperature={tau}",
              {"leave each view's similarity with itself out of the log-sum-exp (mask the "
               "diagonal)": lambda a, b, tau=tau: nt_xent(a, b, tau, mask_self=False),
               "divide the similarities by the temperature (you multiplied)":
               lambda a, b, tau=tau: nt_xent(a, b, 1 / tau)})


def multipatch(z, lam, eps, normalise=True):
    if normalise:
        z = z / z.norm(dim=-1, keepdim=True)
    mean = z.mean(dim=1, keepdim=True)
    cosine = (z * mean).sum(-1) / (z.norm(dim=-1) * mean.norm(dim=-1))
    return rate(z.transpose(0, 1), eps).mean() - lam * cosine.mean()


@exercise(points=1, forbid=[*LOSS_RULES, NO_LU])
def check_multipatch_tcr(answers) -> None:
    for shape in ((8, 3, 5), (4, 4, 9)):
        z = _draw(*shape, seed=14)
        agree(lambda t: answers.multipatch_tcr(t, lam=30.0, eps=0.2 ** 0.5),
              lambda t: multipatch(t, 30.0, 0.2 ** 0.5), (z,),
              f"multipatch_tcr on shape {shape}",
              {"divide every z_bi by its norm first, as EMP-SSL does":
               lambda t: multipatch(t, 30.0, 0.2 ** 0.5, normalise=False),
               "subtract lam times the similarity: the loss rewards agreement":
               lambda t: multipatch(t, -30.0, 0.2 ** 0.5)})
    z = _draw(6, 2, 4, seed=15)
    agree(lambda t: answers.multipatch_tcr(t, lam=2.0, eps=0.5),
          lambda t: multipatch(t, 2.0, 0.5), (z,), "multipatch_tcr with lam=2, eps=0.5")


def given_covariance_term(z: torch.Tensor) -> torch.Tensor:
    """The page's buggy c(Z), exactly as shown to the student."""
    n, d = z.shape
    centred = z - z.mean(dim=0)
    cov = centred.T @ centred / (n - 1)
    off_diagonal = cov[cov != cov.diagonal()]
    return off_diagonal.pow(2).sum() / d


def covariance_term(z: torch.Tensor) -> torch.Tensor:
    n, d = z.shape
    centred = z - z.mean(dim=0)
    cov = centred.T @ centred / (n - 1)
    return cov[_off_diagonal_mask(d)].pow(2).sum() / d


@exercise(points=2, forbid=[NO_LIBRARY])
def check_covariance_bug_witness(answers) -> None:
    z = answers.covariance_bug_witness()
    expect_tensor(z, "covariance_bug_witness()")
    assert z.dim() == 2 and z.shape[0] >= 2 and z.shape[1] >= 2, (
        f"covariance_bug_witness() should return a (N, D) batch with N, D >= 2, got shape "
        f"{tuple(z.shape)}")
    assert z.is_floating_point() and bool(z.isfinite().all()), (
        "covariance_bug_witness() should return finite floats")
    z = z.detach().double()
    given, right = float(given_covariance_term(z)), float(covariance_term(z))
    assert abs(given - right) > 0.01 * max(abs(right), 1e-12), (
        f"on your batch the given function is right (it gives {given:.6g}, c(Z) = {right:.6g}):"
        " find a batch where the mask removes more than the diagonal")
