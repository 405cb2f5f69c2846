"""cooc_minimal.losses against references written here with loops and numpy in float64."""

import inspect
import itertools
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cooc_minimal import losses
from cooc_minimal.coefficients import COEFFICIENTS, default_coeffs
from cooc_minimal.losses import (
    LOSSES,
    TCR_EPS,
    LogDetSPD,
    UnknownLossError,
    check_coeffs,
    coding_rate,
    covariance_term,
    multipatch_loss,
    nt_xent,
    simclr_loss,
    spectral_loss,
    tcr_loss,
    variance_term,
    vicreg_loss,
    vicreg_terms,
)

REPO = Path(__file__).resolve().parent.parent

KINDS = ["spectral", "vicreg", "tcr", "simclr"]


def draw(*shape, seed=0, scale=1.0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed),
                       dtype=torch.float64) * scale


# ------------------------------------------------------------ independent references

def ref_spectral(z1, z2, lam):
    n = len(z1)
    positive = sum(z1[i] @ z2[i] for i in range(n)) / n
    negative = sum((z1[i] @ z2[j]) ** 2 for i in range(n) for j in range(n) if i != j)
    return -positive + lam * negative / (n * (n - 1))


def ref_v(z, gamma, eps):
    return np.mean([max(0.0, gamma - math.sqrt(np.var(z[:, j], ddof=1) + eps))
                    for j in range(z.shape[1])])


def ref_c(z):
    n, d = z.shape
    centred = z - z.mean(axis=0)
    c = np.zeros((d, d))
    for i, j in itertools.product(range(d), range(d)):
        c[i, j] = sum(centred[k, i] * centred[k, j] for k in range(n)) / (n - 1)
    return sum(c[i, j] ** 2 for i in range(d) for j in range(d) if i != j) / d


def ref_vicreg_terms(z1, z2, gamma=1.0, eps=1e-4):
    return (np.mean((z1 - z2) ** 2), ref_v(z1, gamma, eps) + ref_v(z2, gamma, eps),
            ref_c(z1) + ref_c(z2))


def ref_rate(z, eps):
    """R(Z) = 1/2 logdet(I_D + D/(N eps^2) Z^T Z), always the D x D form."""
    n, d = z.shape
    sign, logdet = np.linalg.slogdet(np.eye(d) + d / (n * eps**2) * z.T @ z)
    assert sign > 0
    return 0.5 * logdet


def unit(v):
    return v / np.linalg.norm(v)


def ref_simclr(z1, z2, tau):
    views = [unit(v) for v in np.concatenate([z1, z2])]
    n, total = len(z1), 0.0
    for a in range(2 * n):
        p = (a + n) % (2 * n)
        s = [views[a] @ views[b] / tau for b in range(2 * n)]
        total += -s[p] + math.log(sum(math.exp(s[b]) for b in range(2 * n) if b != a))
    return total / (2 * n)


def ref_multipatch(z, kind, **c):
    b, n, _ = z.shape
    if kind == "tcr" and c.get("normalize", True):
        z = np.array([[unit(z[i, j]) for j in range(n)] for i in range(b)])
    mean = z.mean(axis=1)
    pairs = [(i, j) for i in range(b) for j in range(n)]
    if kind == "spectral":
        if c.get("mean", "all") == "leave_one_out":
            sim = -np.mean([z[i, j] @ np.mean([z[i, k] for k in range(n) if k != j], axis=0)
                            for i, j in pairs])
        else:
            sim = -np.mean([z[i, j] @ mean[i] for i, j in pairs])
        neg = np.mean([np.mean([(z[i, k] @ z[m, k]) ** 2 for i in range(b) for m in range(b)
                                if i != m]) for k in range(n)])
        return sim + c.get("lam", 1.0) * neg
    if kind == "vicreg":
        gamma, eps = c.get("gamma", 1.0), c.get("eps", 1e-4)
        inv = np.mean([(z[i, j] - mean[i]) ** 2 for i, j in pairs])
        var = np.mean([ref_v(z[:, k], gamma, eps) for k in range(n)])
        cov = np.mean([ref_c(z[:, k]) for k in range(n)])
        return (c.get("inv_coeff", 25.0) * inv + c.get("var_coeff", 25.0) * var
                + c.get("cov_coeff", 1.0) * cov)
    if kind == "tcr":
        cos = np.mean([z[i, j] @ mean[i] / (np.linalg.norm(z[i, j]) * np.linalg.norm(mean[i]))
                       for i, j in pairs])
        rates = np.mean([ref_rate(z[:, k], c.get("eps", math.sqrt(0.2))) for k in range(n)])
        return -rates - c.get("lam", 30.0) * cos
    tau = c.get("temperature", 0.1)
    total = 0.0
    for i, j in pairs:
        s = {(m, k): unit(z[i, j]) @ unit(z[m, k]) / tau for m, k in pairs}
        log_norm = math.log(sum(math.exp(v) for key, v in s.items() if key != (i, j)))
        total += np.mean([-(s[(i, k)] - log_norm) for k in range(n) if k != j])
    return total / len(pairs)


def close(actual, expected, tol=1e-5):
    actual = float(actual)
    assert abs(actual - expected) <= tol * max(1.0, abs(expected)), (actual, expected)


# ------------------------------------------------------------------ values vs references

SHAPES = [(7, 4), (5, 9)]  # N > D and N < D: the two code paths of the Gram choices


@pytest.mark.parametrize("shape", SHAPES)
def test_spectral_matches_loops(shape):
    z1, z2 = draw(*shape, seed=1), draw(*shape, seed=2)
    for lam in (1.0, 0.3):
        close(spectral_loss(z1, z2, lam=lam), ref_spectral(z1.numpy(), z2.numpy(), lam))


@pytest.mark.parametrize("shape", SHAPES)
def test_vicreg_matches_loops(shape):
    z1, z2 = draw(*shape, seed=3, scale=0.7), draw(*shape, seed=4, scale=1.3)
    expected = ref_vicreg_terms(z1.numpy(), z2.numpy(), gamma=1.1, eps=1e-3)
    for got, want in zip(vicreg_terms(z1, z2, gamma=1.1, eps=1e-3), expected, strict=True):
        close(got, want)
    close(vicreg_loss(z1, z2, 2.0, 3.0, 0.5, gamma=1.1, eps=1e-3),
          2.0 * expected[0] + 3.0 * expected[1] + 0.5 * expected[2])
    inv, var, cov = ref_vicreg_terms(z1.numpy(), z2.numpy())
    close(vicreg_loss(z1, z2), 25 * inv + 25 * var + cov)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("gram", ["auto", "samples", "features"])
def test_tcr_matches_logdet_of_the_definition(shape, gram):
    z = draw(*shape, seed=5)
    for eps in (0.2, 0.5):
        close(tcr_loss(z, eps=eps, gram=gram), -ref_rate(z.numpy(), eps))


@pytest.mark.parametrize("shape", SHAPES)
def test_simclr_matches_loops(shape):
    z1, z2 = draw(*shape, seed=6), draw(*shape, seed=7)
    for tau in (0.1, 0.5):
        close(simclr_loss(z1, z2, temperature=tau), ref_simclr(z1.numpy(), z2.numpy(), tau))


MULTI = [
    ("spectral", {}), ("spectral", {"lam": 0.4}), ("spectral", {"mean": "leave_one_out"}),
    ("vicreg", {}), ("vicreg", {"inv_coeff": 1.0, "var_coeff": 2.0, "cov_coeff": 3.0,
                                "gamma": 0.8, "eps": 1e-3}),
    ("tcr", {}), ("tcr", {"lam": 2.0, "eps": 0.5, "normalize": False}), ("tcr", {"lam": 0.0}),
    ("simclr", {}), ("simclr", {"temperature": 0.5}),
]


@pytest.mark.parametrize("kind,coeffs", MULTI, ids=[f"{k}-{i}" for i, (k, _) in enumerate(MULTI)])
@pytest.mark.parametrize("shape", [(6, 3, 4), (4, 3, 7)])
def test_multipatch_matches_loops(kind, coeffs, shape):
    z = draw(*shape, seed=8)
    close(multipatch_loss(z, kind, **coeffs), ref_multipatch(z.numpy(), kind, **coeffs))
    if not coeffs:
        close(LOSSES[kind](z), ref_multipatch(z.numpy(), kind))


# ------------------------------------------------------------------------ gradients

GRADCHECK = {
    "spectral": lambda a, b: spectral_loss(a, b, lam=0.5),
    "vicreg": lambda a, b: vicreg_loss(a, b, gamma=2.0),  # every std below gamma: no kink
    "tcr": lambda a, b: tcr_loss(a) + tcr_loss(b, gram="features"),
    "simclr": lambda a, b: simclr_loss(a, b, temperature=0.5),
}


@pytest.mark.parametrize("name", list(GRADCHECK))
@pytest.mark.parametrize("shape", [(5, 3), (4, 6)])
def test_two_view_gradcheck(name, shape):
    z1 = draw(*shape, seed=9).requires_grad_(True)
    z2 = draw(*shape, seed=10).requires_grad_(True)
    assert torch.autograd.gradcheck(GRADCHECK[name], (z1, z2))


@pytest.mark.parametrize("kind", KINDS)
def test_multipatch_gradcheck(kind):
    z = draw(4, 3, 5, seed=11).requires_grad_(True)
    coeffs = {"vicreg": {"gamma": 3.0}, "simclr": {"temperature": 0.5}}.get(kind, {})
    assert torch.autograd.gradcheck(lambda t: multipatch_loss(t, kind, **coeffs), (z,))


# ------------------------------------------------------------------------ invariances

def test_simclr_ignores_the_scale_of_each_row():
    z1, z2 = draw(6, 5, seed=12), draw(6, 5, seed=13)
    scale = torch.rand(6, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    close(simclr_loss(z1 * (0.1 + 10 * scale), z2 * 3.0), float(simclr_loss(z1, z2)), 1e-10)
    z = draw(4, 3, 5, seed=14)
    close(multipatch_loss(z * 7.0, "simclr"), float(multipatch_loss(z, "simclr")), 1e-10)


def test_vicreg_variance_is_zero_when_every_std_reaches_gamma():
    z1, z2 = draw(16, 4, seed=15), draw(16, 4, seed=16)
    z1 = z1 / z1.std(0) * 1.5  # std 1.5 in each column
    z2 = z2 / z2.std(0) * 1.0 + 0.01  # std exactly gamma: sqrt(1 + eps) > 1
    assert float(vicreg_terms(z1, z2, gamma=1.0).variance) == 0.0
    assert float(vicreg_terms(z1 * 0.5, z2, gamma=1.0).variance) > 0.2


def test_both_gram_forms_of_tcr_agree_in_float32_too():
    for shape in [(32, 256), (256, 32)]:
        z = draw(*shape, seed=17).float() / 4
        samples, features = tcr_loss(z, gram="samples"), tcr_loss(z, gram="features")
        assert samples.dtype == torch.float32
        assert abs(float(samples - features)) <= 1e-4 * abs(float(features))


def test_two_patches_relate_to_the_two_view_losses():
    z = draw(8, 2, 5, seed=18)
    z1, z2 = z[:, 0], z[:, 1]
    close(multipatch_loss(z, "simclr", temperature=0.3), float(simclr_loss(z1, z2, 0.3)), 1e-10)
    inv, var, cov = vicreg_terms(z1, z2)
    close(multipatch_loss(z, "vicreg", inv_coeff=1.0, var_coeff=0.0, cov_coeff=0.0),
          float(inv) / 4, 1e-10)
    close(multipatch_loss(z, "vicreg", inv_coeff=0.0, var_coeff=1.0, cov_coeff=2.0),
          float(var + 2 * cov) / 2, 1e-10)


# ------------------------------------------------------------------------- collapse

def spread_and_collapsed(shape, seed):
    spread = draw(*shape, seed=seed)
    collapsed = spread[:1].expand(shape).clone()  # every image maps to image 0's embedding
    return spread, collapsed


@pytest.mark.parametrize("name", list(GRADCHECK))
def test_two_view_collapse_costs_more(name):
    spread, collapsed = spread_and_collapsed((32, 16), seed=19)
    noise = 0.1 * draw(32, 16, seed=20)
    loss = {"spectral": spectral_loss, "vicreg": vicreg_loss, "simclr": simclr_loss,
            "tcr": lambda a, b: tcr_loss(a) + tcr_loss(b)}[name]
    assert loss(collapsed, collapsed + noise) > loss(spread, spread + noise) + 0.5


@pytest.mark.parametrize("kind", KINDS)
def test_multipatch_collapse_costs_more(kind):
    spread, collapsed = spread_and_collapsed((32, 16), seed=21)
    noise = 0.1 * draw(32, 4, 16, seed=22)
    assert (multipatch_loss(collapsed[:, None] + noise, kind)
            > multipatch_loss(spread[:, None] + noise, kind) + 0.5)


# ------------------------------------------------------------------ precision, devices

def test_losses_compute_in_float32_under_bf16_autocast():
    z1, z2, z = draw(64, 32, seed=23).float(), draw(64, 32, seed=24).float(), draw(16, 4, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under = [tcr_loss(z1), vicreg_loss(z1, z2), spectral_loss(z1, z2), simclr_loss(z1, z2),
                 multipatch_loss(z.float(), "tcr"), tcr_loss(z1.bfloat16())]
    plain = [tcr_loss(z1), vicreg_loss(z1, z2), spectral_loss(z1, z2), simclr_loss(z1, z2),
             multipatch_loss(z.float(), "tcr"), tcr_loss(z1.bfloat16().float())]
    for a, b in zip(under, plain, strict=True):
        assert a.dtype == torch.float32
        assert torch.allclose(a, b, rtol=1e-6)


def test_keyword_arguments_work_under_autocast():
    z1, z2 = draw(6, 4, seed=27).float(), draw(6, 4, seed=28).float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert spectral_loss(z1=z1, z2=z2).dtype == torch.float32
        assert multipatch_loss(z=torch.stack([z1, z2], 1), kind="tcr").dtype == torch.float32


def test_float64_stays_float64():
    z1, z2 = draw(5, 3, seed=25), draw(5, 3, seed=26)
    for value in (spectral_loss(z1, z2), vicreg_loss(z1, z2), tcr_loss(z1), simclr_loss(z1, z2)):
        assert value.dtype == torch.float64


# ------------------------------------------------------------------------ bad input

@pytest.mark.parametrize("name", list(GRADCHECK))
def test_bad_two_view_input_names_the_argument(name):
    loss = {"spectral": spectral_loss, "vicreg": vicreg_loss, "simclr": simclr_loss,
            "tcr": lambda a, b: tcr_loss(a)}[name]
    good = torch.randn(4, 3)
    bad = good.clone()
    bad[1, 2] = float("nan")
    cases = [((torch.randn(1, 3), torch.randn(1, 3)), r"z1? has shape \(1, 3\).*at least 2"),
             ((good.flatten(), good.flatten()), r"z1? has shape \(12,\), expected 2 dim"),
             ((bad, good), r"z1? contains NaN or inf"),
             ((good.long(), good.long()), r"z1? has dtype torch.int64"),
             (([[1.0]], good), r"must be a torch.Tensor")]
    if name != "tcr":
        cases += [((good, torch.randn(4, 5)), r"z2 has shape \(4, 5\), expected \(4, 3\)"),
                  ((good, bad), r"z2 contains NaN or inf")]
    for args, message in cases:
        with pytest.raises(ValueError, match=message):
            loss(*args)


def test_bad_multipatch_input_and_coefficients():
    z = torch.randn(4, 3, 5)
    with pytest.raises(ValueError, match=r"z has shape \(4, 1, 5\).*at least 2 patches"):
        multipatch_loss(z[:, :1], "vicreg")
    with pytest.raises(ValueError, match=r"z has shape \(4, 15\), expected 3 dimensions"):
        multipatch_loss(z.flatten(1), "vicreg")
    with pytest.raises(ValueError, match=r"z has shape \(1, 3, 5\).*at least 2 rows"):
        multipatch_loss(z[:1], "spectral")
    with pytest.raises(ValueError, match=r"does not take temperature: its coefficients are lam"):
        multipatch_loss(z, "spectral", temperature=0.1)
    with pytest.raises(ValueError, match=r"kind='byol' is not a multi-patch loss"):
        multipatch_loss(z, "byol")
    with pytest.raises(ValueError, match="temperature must be a finite number > 0, got 0.0"):
        multipatch_loss(z, "simclr", temperature=0.0)
    with pytest.raises(ValueError, match="gram must be"):
        tcr_loss(z[0], gram="dual")


def test_registry_lists_the_known_losses_on_a_wrong_name():
    assert sorted(LOSSES) == sorted(KINDS)
    with pytest.raises(UnknownLossError) as caught:
        LOSSES["barlow"]
    assert str(caught.value) == ("There is no loss called 'barlow': the known losses are "
                                 "simclr, spectral, tcr, vicreg.")
    assert isinstance(caught.value, KeyError) and isinstance(caught.value, ValueError)


# ------------------------------------------------------- conventions of the public code

def test_spectral_matches_haochen_public_code_with_lam_one_half():
    """HaoChen et al.'s code: clip rows to norm sqrt(mu), then (-2 E<+> + E<->^2) / mu."""
    z1, z2 = draw(9, 5, seed=40, scale=1.5), draw(9, 5, seed=41, scale=1.5)
    for mu in (1.0, 10.0):
        a, b = z1.numpy(), z2.numpy()
        a = np.array([r if np.linalg.norm(r) < math.sqrt(mu) else r / np.linalg.norm(r)
                      * math.sqrt(mu) for r in a])
        b = np.array([r if np.linalg.norm(r) < math.sqrt(mu) else r / np.linalg.norm(r)
                      * math.sqrt(mu) for r in b])
        n = len(a)
        public = (-2 * np.mean([a[i] @ b[i] for i in range(n)])
                  + np.mean([(a[i] @ b[j]) ** 2 for i in range(n) for j in range(n)
                             if i != j])) / mu
        clipped = [torch.from_numpy(m) for m in (a, b)]
        assert any(np.linalg.norm(r) > 0.99 * math.sqrt(mu) for r in a)  # clipping happened
        close(2 / mu * spectral_loss(*clipped, lam=0.5), public, 1e-10)


def test_tcr_default_eps_is_the_emp_ssl_code_convention():
    """EMP-SSL passes 0.2 where eps^2 stands: R = 1/2 logdet(I + D/(N 0.2) Z^T Z)."""
    assert math.isclose(TCR_EPS, math.sqrt(0.2))
    for shape in [(12, 5), (5, 12)]:
        z = torch.nn.functional.normalize(draw(*shape, seed=42), dim=1)
        n, d = shape
        matrix = torch.eye(d, dtype=torch.float64) + d / (n * 0.2) * z.T @ z
        chol = torch.linalg.cholesky(matrix)  # one matrix, float64: no batched LU
        emp_ssl_rate = float(torch.log(torch.diagonal(chol)).sum())  # 1/2 logdet
        close(tcr_loss(z), -emp_ssl_rate, 1e-10)
        close(tcr_loss(z, eps=0.2), -ref_rate(z.numpy(), 0.2), 1e-10)
        assert float(tcr_loss(z, eps=0.2)) < float(tcr_loss(z)) - 0.5  # 0.2 squared: other
    z = draw(6, 3, 5, seed=43)
    unit = torch.nn.functional.normalize(z, dim=-1)
    rates = []
    for k in range(3):
        zk = unit[:, k]
        sign, logdet = np.linalg.slogdet(np.eye(5) + 5 / (6 * 0.2) * (zk.T @ zk).numpy())
        rates.append(0.5 * logdet)
    close(multipatch_loss(z, "tcr", lam=0.0), -np.mean(rates), 1e-10)


def test_multipatch_spectral_self_pair_term():
    """mean="all": <z_bi, zbar_b> = ((n-1)/n) <z_bi, zbar_b^-i> + ||z_bi||^2 / n."""
    z = draw(7, 4, 6, seed=44)
    n = z.shape[1]
    everything = multipatch_loss(z, "spectral", lam=0.0)
    others = multipatch_loss(z, "spectral", lam=0.0, mean="leave_one_out")
    self_pairs = float(z.square().sum(-1).mean())
    close(everything, (n - 1) / n * float(others) - self_pairs / n, 1e-12)
    # n = 2: -<z1, z2>/2 - (||z1||^2 + ||z2||^2)/4 per image
    pair = draw(7, 2, 6, seed=45)
    z1, z2 = pair[:, 0], pair[:, 1]
    expected = (-(z1 * z2).sum(1) / 2 - (z1.square().sum(1) + z2.square().sum(1)) / 4).mean()
    close(multipatch_loss(pair, "spectral", lam=0.0), float(expected), 1e-12)
    close(multipatch_loss(pair, "spectral", lam=0.0, mean="leave_one_out"),
          float(-(z1 * z2).sum(1).mean()), 1e-12)
    # the regulariser does not depend on the mean
    close(multipatch_loss(z, "spectral") - everything,
          float(multipatch_loss(z, "spectral", mean="leave_one_out") - others), 1e-12)


# ------------------------------------------------------------ bad input, one sentence

def one_sentence(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert message.endswith(".") and "\n" not in message, message
    assert not re.search(r"\.\s+[A-Z]", message), message  # no second sentence
    return message


def test_views_of_different_dtypes_or_devices_are_one_sentence():
    z32 = torch.randn(4, 3)
    for loss in (spectral_loss, vicreg_loss, simclr_loss, vicreg_terms):
        with pytest.raises(ValueError, match=r"z1 has dtype torch.float32 but z2 has "
                                             r"torch.float64: pass both views in one dtype") as e:
            loss(z32, z32.double())
        one_sentence(e)
        with pytest.raises(ValueError, match=r"z1 is on cpu but z2 is on meta") as e:
            loss(z32, torch.empty(4, 3, device="meta"))
        one_sentence(e)


BAD_COEFFICIENTS = [
    (lambda z1, z2: spectral_loss(z1, z2, lam=float("nan")),
     r"lam must be a finite number >= 0, got nan"),
    (lambda z1, z2: spectral_loss(z1, z2, lam=-1.0), r"lam must be a finite number >= 0, got -1.0"),
    (lambda z1, z2: spectral_loss(z1, z2, lam=float("inf")), r"lam must be .*, got inf"),
    (lambda z1, z2: vicreg_loss(z1, z2, var_coeff=float("nan")), r"var_coeff must be"),
    (lambda z1, z2: vicreg_loss(z1, z2, inv_coeff=-25.0), r"inv_coeff must be"),
    (lambda z1, z2: vicreg_loss(z1, z2, cov_coeff="1"), r"cov_coeff must be .*, got '1'"),
    (lambda z1, z2: vicreg_loss(z1, z2, gamma=-1.0), r"gamma must be"),
    (lambda z1, z2: vicreg_loss(z1, z2, eps=0.0), r"eps must be a finite number > 0, got 0.0"),
    (lambda z1, z2: tcr_loss(z1, eps=float("nan")), r"eps must be a finite number > 0"),
    (lambda z1, z2: simclr_loss(z1, z2, temperature=-0.1), r"temperature must be .* > 0"),
    (lambda z1, z2: multipatch_loss(torch.stack([z1, z2], 1), "spectral", lam=float("nan")),
     r"lam must be a finite number >= 0, got nan"),
    (lambda z1, z2: multipatch_loss(torch.stack([z1, z2], 1), "spectral", mean="others"),
     r"mean must be 'all' or 'leave_one_out', got 'others'"),
    (lambda z1, z2: multipatch_loss(torch.stack([z1, z2], 1), "vicreg", cov_coeff=-1.0),
     r"cov_coeff must be"),
    (lambda z1, z2: multipatch_loss(torch.stack([z1, z2], 1), "tcr", lam=float("nan")),
     r"lam must be"),
    (lambda z1, z2: multipatch_loss(torch.stack([z1, z2], 1), "tcr", normalize="yes"),
     r"normalize must be True or False"),
    (lambda z1, z2: multipatch_loss(torch.stack([z1, z2], 1), "simclr", temperature=True),
     r"temperature must be a finite number > 0, got True"),
]


@pytest.mark.parametrize("call,message", BAD_COEFFICIENTS,
                         ids=[str(i) for i in range(len(BAD_COEFFICIENTS))])
def test_nan_negative_or_non_numeric_coefficients_are_one_sentence(call, message):
    with pytest.raises(ValueError, match=message) as error:
        call(torch.randn(4, 3), torch.randn(4, 3))
    one_sentence(error)


def test_zero_weights_are_allowed():
    z1, z2 = draw(6, 4, seed=46), draw(6, 4, seed=47)
    close(spectral_loss(z1, z2, lam=0.0), float(-(z1 * z2).sum(1).mean()), 1e-12)
    close(vicreg_loss(z1, z2, 0.0, 0.0, 0.0), 0.0, 1e-12)


def test_an_empty_batch_is_one_sentence():
    cases = [
        (lambda: spectral_loss(torch.empty(0, 3), torch.empty(0, 3)),
         r"z1 has shape \(0, 3\): a batch needs at least 2 rows"),
        (lambda: tcr_loss(torch.empty(0, 8)), r"z has shape \(0, 8\): a batch needs at least"),
        (lambda: vicreg_loss(torch.empty(5, 0), torch.empty(5, 0)),
         r"z1 has shape \(5, 0\): the embedding dimension D is 0"),
        (lambda: multipatch_loss(torch.empty(0, 4, 8), "vicreg"),
         r"z has shape \(0, 4, 8\): a batch needs at least 2 rows"),
        (lambda: multipatch_loss(torch.empty(6, 0, 8), "tcr"),
         r"z has shape \(6, 0, 8\): the multi-patch objective needs at least 2 patches"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message) as error:
            call()
        one_sentence(error)


# ------------------------------------------------------- coefficients: one table, one check

def test_check_coeffs_accepts_what_each_loss_accepts():
    for kind, coeffs in MULTI:
        check_coeffs(kind, coeffs)
    for kind in KINDS:
        check_coeffs(kind, {})
        check_coeffs(kind, default_coeffs(kind))
    check_coeffs("spectral", {"lam": 0})  # an int, and a zero weight
    check_coeffs("vicreg", {"inv_coeff": 0.0, "var_coeff": 0.0, "cov_coeff": 0.0})
    check_coeffs("tcr", {"eps": np.float64(0.5), "normalize": False})


BAD_COEFFS = [  # (loss, coefficients, what the sentence must say)
    ("barlow", {}, "There is no loss called 'barlow': the known losses are simclr, spectral, "
                   "tcr, vicreg."),
    ("spectral", {"lamda": 1.0}, "loss 'spectral' does not take lamda (did you mean 'lam'?): "
                                 "its coefficients are lam, mean."),
    ("simclr", {"temprature": 0.1}, "does not take temprature (did you mean 'temperature'?)"),
    ("spectral", {"temperature": 0.1}, "does not take temperature: its coefficients are lam"),
    ("spectral", {"lam": -1.0}, "lam must be a finite number >= 0, got -1.0."),
    ("tcr", {"lam": float("nan")}, "lam must be a finite number >= 0, got nan."),
    ("vicreg", {"cov_coeff": float("inf")}, "cov_coeff must be a finite number >= 0, got inf."),
    ("vicreg", {"eps": 0.0}, "eps must be a finite number > 0, got 0.0."),
    ("simclr", {"temperature": True}, "temperature must be a finite number > 0, got True."),
    ("vicreg", {"gamma": "1"}, "gamma must be a finite number >= 0, got '1'."),
    ("spectral", {"mean": "others"}, "mean must be 'all' or 'leave_one_out', got 'others'."),
    ("tcr", {"normalize": 1}, "normalize must be True or False, got 1."),
    ("tcr", [("lam", 1.0)], "the coefficients of loss 'tcr' must be a mapping"),
]


@pytest.mark.parametrize("kind,coeffs,fragment", BAD_COEFFS,
                         ids=[str(i) for i in range(len(BAD_COEFFS))])
def test_check_coeffs_rejects_each_bad_coefficient_with_one_sentence(kind, coeffs, fragment):
    with pytest.raises(ValueError) as error:
        check_coeffs(kind, coeffs)
    assert fragment in one_sentence(error)
    assert isinstance(error.value, UnknownLossError) == (kind not in KINDS)


@pytest.mark.parametrize("kind,coeffs,fragment",
                         [case for case in BAD_COEFFS if case[0] in KINDS
                          and isinstance(case[1], dict)])
def test_the_losses_refuse_what_check_coeffs_refuses_with_the_same_sentence(kind, coeffs,
                                                                             fragment):
    with pytest.raises(ValueError) as direct:
        check_coeffs(kind, coeffs)
    with pytest.raises(ValueError) as through_loss:
        multipatch_loss(draw(4, 2, 3), kind, **coeffs)
    assert str(through_loss.value) == str(direct.value)


def test_check_coeffs_runs_no_loss_and_needs_no_torch():
    # The same table serves config.py, which must not import torch: run it where none is.
    script = ("import sys\n"
              "from cooc_minimal.coefficients import check_coeffs, default_coeffs\n"
              "for kind in ('simclr', 'spectral', 'tcr', 'vicreg'):\n"
              "    check_coeffs(kind, default_coeffs(kind))\n"
              "try:\n"
              "    check_coeffs('tcr', {'lam': -1.0})\n"
              "except ValueError as error:\n"
              "    print(error)\n"
              "assert 'torch' not in sys.modules, 'check_coeffs imported torch'\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "lam must be a finite number >= 0, got -1.0."


# the public functions that take coefficients, and the loss whose table they follow
TAKES_COEFFICIENTS = {
    spectral_loss: "spectral", vicreg_terms: "vicreg", vicreg_loss: "vicreg",
    variance_term: "vicreg", tcr_loss: "tcr", coding_rate: "tcr", simclr_loss: "simclr",
    nt_xent: "simclr", losses.multipatch_spectral_loss: "spectral",
    losses.multipatch_vicreg_loss: "vicreg", losses.multipatch_tcr_loss: "tcr",
    losses.multipatch_simclr_loss: "simclr",
}
NOT_COEFFICIENTS = {"z", "z1", "z2", "gram"}


@pytest.mark.parametrize("fn", list(TAKES_COEFFICIENTS), ids=lambda fn: fn.__name__)
def test_signature_defaults_are_the_tables(fn):
    table = COEFFICIENTS[TAKES_COEFFICIENTS[fn]]
    parameters = inspect.signature(fn).parameters
    coefficients = {name: p.default for name, p in parameters.items()
                    if name not in NOT_COEFFICIENTS}
    assert coefficients == {name: table[name].default for name in coefficients}
    if fn.__name__.startswith("multipatch_"):
        assert list(coefficients) == list(table)  # the multi-patch form takes all of them


# -------------------------------------------------------------- the public term functions

def test_term_functions_match_the_references_on_stacks_of_batches():
    stack = draw(3, 7, 5, seed=50, scale=0.8)                  # 3 batches of N = 7, D = 5
    wide = draw(2, 4, 9, seed=51)                              # N < D: the Gram path
    for z in (stack, wide):
        want_v = [ref_v(batch.numpy(), 1.2, 1e-3) for batch in z]
        want_c = [ref_c(batch.numpy()) for batch in z]
        want_r = [ref_rate(batch.numpy(), 0.5) for batch in z]
        for got, want in ((variance_term(z, 1.2, 1e-3), want_v), (covariance_term(z), want_c),
                          (coding_rate(z, 0.5), want_r)):
            assert got.shape == (len(z),)
            for value, expected in zip(got, want, strict=True):
                close(value, expected, 1e-10)
    z1, z2 = draw(6, 4, seed=52), draw(6, 4, seed=53)
    close(nt_xent(torch.stack([z1, z2], dim=1), 0.3), ref_simclr(z1.numpy(), z2.numpy(), 0.3))


def test_logdet_spd_value_and_gradient():
    z = draw(5, 3, seed=54)
    a = (torch.eye(3, dtype=torch.float64) + z.T @ z).requires_grad_(True)
    close(LogDetSPD.apply(a.detach()), float(torch.logdet(a.detach())), 1e-12)
    assert torch.autograd.gradcheck(lambda m: LogDetSPD.apply(m @ m.T), (a,))


def test_term_functions_refuse_bad_input_with_one_sentence():
    cases = [
        (lambda: variance_term(torch.ones(1, 4)), r"z has shape \(1, 4\): each batch needs"),
        (lambda: covariance_term(torch.ones(5)), r"z must be a floating-point torch.Tensor"),
        (lambda: coding_rate(torch.ones(4, 3), eps=0.0), r"eps must be a finite number > 0"),
        (lambda: coding_rate(torch.ones(4, 3), gram="dual"), r"gram must be"),
        (lambda: nt_xent(torch.ones(4, 1, 3)), r"at least 2 patches per image"),
        (lambda: variance_term(torch.ones(4, 3), gamma=-1.0), r"gamma must be"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message) as error:
            call()
        one_sentence(error)


def test_chapter_3_shows_only_public_library_code():
    cells = json.loads((REPO / "chapters" / "03_losses.ipynb").read_text())["cells"]
    code = "\n".join("".join(cell["source"]) for cell in cells if cell["cell_type"] == "code")
    private = re.findall(r"losses\._\w+|_multipatch_", code)
    assert not private, f"chapter 3 uses private names: {private}"
    for name in losses.__all__:
        assert hasattr(losses, name), name
