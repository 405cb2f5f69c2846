"""Every step of the two derivations checks in sympy, and the checks can fail."""

import dataclasses
import itertools

import numpy as np
import pytest
import sympy as sp
import torch

from cooc_minimal import derivations as D

FORMS = [("integral", None), ("pointwise", None), ("sum", None), ("sum", 2), ("sum", 3)]


@pytest.mark.parametrize("form,k", FORMS, ids=[f"{f}-{k}" for f, k in FORMS])
def test_prop31_every_step_differs_by_its_named_constant(form, k):
    derivation = D.prop31_steps(form, k)
    assert [s.label for s in derivation.steps] == ["(3)", "(4)", "(5)", "(6)"]
    assert derivation.residuals() == [0, 0, 0]
    assert derivation.constants_are_free_of_embedding()
    assert derivation.factors_are_positive()
    assert derivation.verified()
    # Only two steps are not plain equalities: (4) drops a constant, (6) divides by 2w.
    kinds = [(s.factor, s.constant == 0) for s in derivation.steps[1:]]
    assert kinds == [(1, False), (1, True), (2 * D.w, True)]


def test_prop31_total_constant_is_the_ratio_squared_under_the_joint():
    factor, constant = D.prop31_steps("sum").total_factor_and_constant()
    i, j = sp.symbols("i j", integer=True, positive=True)
    k = sp.Symbol("k", integer=True, positive=True)
    P, p = sp.IndexedBase("P"), sp.IndexedBase("p")
    expected = sp.Sum(P[i, j] ** 2 / (p[i] * p[j]), (i, 1, k), (j, 1, k))
    assert factor == 2 * D.w
    assert sp.simplify(constant - expected) == 0


def test_prop31_explicit_sums_agree_with_numpy_at_random_values():
    # An independent check: plug numbers into the k = 3 sums and compare with numpy loops.
    derivation = D.prop31_steps("sum", 3)
    rng = np.random.default_rng(0)
    joint = rng.random((3, 3))
    joint = (joint + joint.T) / (joint + joint.T).sum()
    marg, sim, w_value = joint.sum(1), rng.normal(size=(3, 3)), 1.7
    values = {D.w: w_value, D.lam: w_value / 2}
    for i, j in itertools.product(range(3), range(3)):
        values[sp.IndexedBase("P")[i + 1, j + 1]] = joint[i, j]
        values[sp.IndexedBase("S")[i + 1, j + 1]] = sim[i, j]
    for i in range(3):
        values[sp.IndexedBase("p")[i + 1]] = marg[i]
    eq3, *_, eq6 = (float(s.expr.subs(values)) for s in derivation.steps)
    ref3 = sum(marg[i] * marg[j] * (w_value * sim[i, j] - joint[i, j] / (marg[i] * marg[j])) ** 2
               for i in range(3) for j in range(3))
    ref6 = sum(-joint[i, j] * sim[i, j] + w_value / 2 * marg[i] * marg[j] * sim[i, j] ** 2
               for i in range(3) for j in range(3))
    const = sum(joint[i, j] ** 2 / (marg[i] * marg[j]) for i in range(3) for j in range(3))
    assert eq3 == pytest.approx(ref3, rel=1e-12)
    assert eq6 == pytest.approx(ref6, rel=1e-12)
    assert eq3 == pytest.approx(2 * w_value * eq6 + const, rel=1e-12)


def test_a_wrong_step_is_caught():
    derivation = D.prop31_steps("pointwise")
    steps = list(derivation.steps)
    steps[3] = dataclasses.replace(steps[3], factor=D.w)  # the paper's "=" is off by 2w, not w
    assert dataclasses.replace(derivation, steps=tuple(steps)).residuals()[2] != 0
    steps = list(derivation.steps)
    s = derivation.embedding[0]
    steps[1] = dataclasses.replace(steps[1], constant=steps[1].constant + s)
    tampered = dataclasses.replace(derivation, steps=tuple(steps))
    assert not tampered.constants_are_free_of_embedding() and not tampered.verified()


def test_lambda_is_derived_as_half_w():
    found = D.derive_lambda()
    assert sp.simplify(found["lambda"] - D.w / 2) == 0
    assert sp.simplify(found["factor"] - 2 * D.w) == 0
    assert found["lambda_at_w_2"] == 1


def test_prop31_rejects_bad_arguments():
    with pytest.raises(ValueError, match="form must be"):
        D.prop31_steps("matrix")
    with pytest.raises(ValueError, match="k must be None or an integer"):
        D.prop31_steps("pointwise", 3)
    with pytest.raises(ValueError, match="k must be None or an integer"):
        D.prop31_steps("sum", 0)


def test_trace_lemmas_hold_for_symbolic_sizes_and_a_false_one_does_not():
    lemmas = D.trace_lemmas()
    assert [lemma.holds() for lemma in lemmas] == [True] * len(lemmas)
    n = sp.Symbol("n", integer=True, positive=True)
    A, B = sp.MatrixSymbol("A", n, n), sp.MatrixSymbol("B", n, n)
    false = D.Lemma("not a rule", "", sp.Trace(A * B).rewrite(sp.Sum),
                    sp.Trace(A.T * B).rewrite(sp.Sum))
    assert not false.holds()


def test_duality_identities_hold_for_every_size():
    identities = D.duality_identities()
    assert set(identities) == {"gap", "trace", "covariance"}
    for derivation in identities.values():
        assert all(r == 0 for r in derivation.residuals()), derivation.title
        assert derivation.verified()
    assert identities["gap"].steps[-1].expr == D.N - D.d
    assert sp.simplify(identities["trace"].steps[-1].expr - (D.N - D.d) ** 2 / D.d) == 0
    # Without the trace assumption the last step does not follow.
    trace = identities["trace"]
    last = dataclasses.replace(trace.steps[-1], assumption={})
    unfixed = dataclasses.replace(trace, steps=(*trace.steps[:-1], last))
    assert unfixed.residuals()[-1] != 0


def test_trace_constant_depends_on_which_trace_is_fixed():
    N, d = D.N, D.d
    assert sp.simplify(D.trace_constant(N) - (N - d) ** 2 / d) == 0
    # Zero-mean unit-variance columns fix tr(Z^T Z) = N d instead, and the constant changes.
    unit_var = D.trace_constant(N * d)
    assert sp.simplify(unit_var - (2 * N**2 - 2 * N * d + d - N**2 / d)) == 0
    assert sp.simplify(unit_var - D.trace_constant(N)) != 0


@pytest.mark.parametrize("n_rows,dim", [(1, 3), (2, 3), (3, 2), (4, 2), (3, 3)])
def test_duality_by_expansion_at_small_sizes(n_rows, dim):
    assert D.duality_explicit_residuals(n_rows, dim) == {"gap": 0, "trace": 0, "offdiagonal": 0}


@pytest.mark.parametrize("n_rows,dim", [(5, 17), (40, 7), (12, 12)])
def test_duality_numerically(n_rows, dim):
    g = torch.Generator().manual_seed(n_rows * dim)
    z = torch.randn(n_rows, dim, generator=g, dtype=torch.float64)
    eye_n, eye_d = torch.eye(n_rows, dtype=z.dtype), torch.eye(dim, dtype=z.dtype)
    gap = (z @ z.T - eye_n).pow(2).sum() - (z.T @ z - eye_d).pow(2).sum()
    assert gap.item() == pytest.approx(n_rows - dim, abs=1e-9)
    z = z / z.norm(dim=1, keepdim=True)  # unit-norm rows fix tr(Z^T Z) = N
    trace = (z.T @ z - eye_d).pow(2).sum() - (z.T @ z - n_rows / dim * eye_d).pow(2).sum()
    assert trace.item() == pytest.approx((n_rows - dim) ** 2 / dim, abs=1e-9)


def test_the_paper_eq7_as_printed_has_mismatched_sizes():
    with pytest.raises(ValueError, match="adds matrices of sizes"):
        D.matrix_shape(D.Zt * D.Z - D.I_N)
    with pytest.raises(ValueError, match="adds matrices of sizes"):
        D.reduce_traces(D.FrobSq(D.Z * D.Zt - D.I_d))
    with pytest.raises(ValueError, match="do not align"):
        D.word_shape((D.Z, D.Z))
    assert D.matrix_shape(D.Zt * D.Z - D.I_d) == (D.d, D.d)


def test_explicit_residuals_reject_large_sizes():
    with pytest.raises(ValueError, match="n_rows must be an integer from 1 to 5"):
        D.duality_explicit_residuals(9, 2)
