"""The paper's two derivations, step by step, as sympy expressions a chapter can show and check.

- :func:`prop31_steps`: from the weighted square fit of eq. (3) to the spectral contrastive
  loss of eq. (6) (appendix A of Chen et al. 2023), in three forms: integrals over patches,
  the integrand alone (with symbols for ``z1^T z2`` and the density ratio), and sums over a
  finite vocabulary of ``k`` patch types (``k`` symbolic, or a small integer for explicit sums).
- :func:`derive_lambda`: ``lambda = w / 2``, found by matching coefficients.
- :func:`duality_identities`: appendix B's identities with correct matrix sizes, proven for
  every ``N`` and ``d`` by trace algebra whose rules are themselves proven in index notation.
- :func:`duality_explicit_residuals`: the same identities expanded entry by entry at small sizes.

Every step records how it relates to the previous one: ``previous == factor * step + constant``,
where ``constant`` does not depend on the embedding and ``factor`` is positive (both 0/1 for a
plain equality). :meth:`Derivation.residuals` simplifies ``previous - factor * step - constant``,
which is 0 for a correct step.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import sympy as sp

# ----------------------------------------------------------------------------------------------
# Steps and derivations
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One line of a derivation: ``previous == factor * expr + constant``.

    ``assumption`` maps sub-expressions to the values a stated assumption gives them
    (e.g. ``tr(Z^T Z) -> N`` for unit-norm rows); it is applied before checking this step.
    """

    label: str
    name: str
    expr: sp.Expr
    reason: str
    factor: sp.Expr = sp.Integer(1)
    constant: sp.Expr = sp.Integer(0)
    assumption: dict = field(default_factory=dict)

    def latex(self) -> str:
        return sp.latex(self.expr)


@dataclass(frozen=True)
class Derivation:
    """An ordered chain of :class:`Step` and what its constants must not depend on.

    ``embedding``: the atoms that carry the embedding (``z1^T z2``, ``S[i, j]``, ``Z``);
    ``substitutions``: values of auxiliary symbols (``lambda -> w / 2``) used in the checks;
    ``normalize``: how an expression is put in a form ``sympy.simplify`` can compare
    (identity for plain sympy, the trace rules for the duality proof).
    """

    title: str
    steps: tuple[Step, ...]
    embedding: tuple = ()
    substitutions: dict = field(default_factory=dict)
    normalize: Callable[[sp.Expr], sp.Expr] = field(default=lambda e: e)

    def residuals(self) -> list[sp.Expr]:
        """``previous - factor * step - constant`` for each step after the first, simplified."""
        out = []
        for prev, step in itertools.pairwise(self.steps):
            gap = self.normalize(prev.expr) - step.factor * self.normalize(step.expr)
            gap = (gap - step.constant).subs(self.substitutions)
            assumed = {self.normalize(k): v for k, v in step.assumption.items()}
            out.append(_simplify(gap.subs(assumed)))
        return out

    def constants_are_free_of_embedding(self) -> bool:
        return all(not s.constant.has(*self.embedding) for s in self.steps) if self.embedding \
            else True

    def factors_are_positive(self) -> bool:
        return all(bool(sp.sympify(s.factor).is_positive) for s in self.steps[1:])

    def verified(self) -> bool:
        """True when every step checks: zero residual, embedding-free constant, positive factor."""
        return (all(r == 0 for r in self.residuals()) and self.constants_are_free_of_embedding()
                and self.factors_are_positive())

    def total_factor_and_constant(self) -> tuple[sp.Expr, sp.Expr]:
        """``(F, C)`` with ``first == F * last + C``, composing every step's factor and constant."""
        factor, constant = sp.Integer(1), sp.Integer(0)
        for step in self.steps[1:]:
            constant = constant + factor * step.constant
            factor = factor * step.factor
        return sp.simplify(factor), sp.simplify(constant)


def _simplify(expr: sp.Expr) -> sp.Expr:
    expr = sp.simplify(expr)
    return expr if expr == 0 else sp.simplify(sp.expand(expr.doit()))


# ----------------------------------------------------------------------------------------------
# Proposition 3.1 (appendix A)
# ----------------------------------------------------------------------------------------------

w = sp.Symbol("w", positive=True)
lam = sp.Symbol("lambda", positive=True)
x1, x2 = sp.symbols("x_1 x_2", real=True)
density = sp.Function("p", positive=True)


class inner(sp.Function):  # lower case on purpose: inner(x1, x2) reads like the math
    """``z(x1)^T z(x2)``: the similarity of the embeddings of two patches."""

    nargs = 2

    def _latex(self, printer, exp=None) -> str:
        text = r"\vec{z}_1^{\top}\vec{z}_2"
        return text if exp is None else r"\left(" + text + r"\right)^{" + exp + "}"


def _prop31_terms(form: str, k: sp.Expr | int | None):
    """Weight, joint, similarity and the integral/sum wrapper for one form of the proof."""
    if form == "integral":
        p1, p2, joint, s = density(x1), density(x2), density(x1, x2), inner(x1, x2)

        def wrap(e):
            return sp.Integral(e, x1, x2)

        return p1, p2, joint, s, wrap, (inner,)
    if form == "pointwise":
        p1, p2 = sp.symbols("p_1 p_2", positive=True)
        s, r = sp.Symbol(r"\vec{z}_1^{\top}\vec{z}_2", real=True), sp.Symbol("r", positive=True)
        return p1, p2, r * p1 * p2, s, (lambda e: e), (s,)
    i, j = sp.symbols("i j", integer=True, positive=True)
    P, p, S = sp.IndexedBase("P"), sp.IndexedBase("p"), sp.IndexedBase("S")
    size = sp.Symbol("k", integer=True, positive=True) if k is None else k

    def wrap(e):
        return sp.Sum(e, (i, 1, size), (j, 1, size))

    return p[i], p[j], P[i, j], S[i, j], wrap, (S,)


def prop31_steps(form: str = "integral", k: int | None = None) -> Derivation:
    """Appendix A's proof of Proposition 3.1, eq. (3) to eq. (6), one :class:`Step` per line.

    form: ``"integral"`` (densities ``p(x1)``, ``p(x2)``, ``p(x1, x2)`` and ``z1^T z2`` as
    functions of the two patches), ``"pointwise"`` (the integrand only, with symbols
    ``z1^T z2`` and ``r = p(x1, x2) / (p(x1) p(x2))``), or ``"sum"`` (a vocabulary of ``k``
    patch types: joint ``P[i, j]``, marginals ``p[i]``, similarities ``S[i, j] = z_i^T z_j``).
    k: only for ``"sum"``; ``None`` keeps ``k`` symbolic, an integer expands the sums.

    Step (4) drops the embedding-free constant ``C = int p(x1,x2)^2 / (p(x1) p(x2))``, step (6)
    divides by ``2 w``: eq. (3) equals ``2 w`` times eq. (6) plus ``C``, not eq. (6) itself.
    """
    if form not in ("integral", "pointwise", "sum"):
        raise ValueError(f"form must be 'integral', 'pointwise' or 'sum', got {form!r}.")
    if k is not None and (form != "sum" or isinstance(k, bool) or not isinstance(k, int)
                          or not 1 <= k <= 6):
        raise ValueError(f"k must be None or an integer from 1 to 6 with form='sum', got k={k!r} "
                         f"with form={form!r}; use k=None for a symbolic vocabulary size.")
    p1, p2, joint, s, wrap, embedding = _prop31_terms(form, k)
    ratio = joint / (p1 * p2)
    steps = (
        Step("(3)", "weighted square fit", wrap(p1 * p2 * (w * s - ratio) ** 2),
             "fit w z1^T z2 to the density ratio, weighted by p(x1) p(x2)"),
        Step("(4)", "square expanded, constant dropped",
             wrap(p1 * p2 * ((w * s) ** 2 - 2 * w * s * ratio)),
             "expand the square; the ratio's square does not depend on the embedding",
             constant=wrap(p1 * p2 * ratio**2)),
        Step("(5)", "split into two terms",
             wrap(p1 * p2 * (w * s) ** 2) - 2 * w * wrap(sp.cancel(p1 * p2 * ratio) * s),
             "linearity; p(x1) p(x2) times the ratio is the joint p(x1, x2)"),
        Step("(6)", "spectral contrastive loss",
             wrap(joint * (-s)) + lam * wrap(p1 * p2 * s**2),
             "divide by 2w > 0: E_joint[-z1^T z2] + lambda E_marginals[(z1^T z2)^2]",
             factor=2 * w),
    )
    if isinstance(k, int):
        steps = tuple(dataclasses.replace(st, expr=st.expr.doit(), constant=st.constant.doit())
                      for st in steps)
    title = {"integral": "Proposition 3.1 over patch densities",
             "pointwise": "Proposition 3.1 on the integrand",
             "sum": f"Proposition 3.1 over a vocabulary of {k if k else 'k'} patch types"}[form]
    return Derivation(title, steps, embedding, {lam: derive_lambda()["lambda"]})


def derive_lambda() -> dict[str, sp.Expr]:
    """Find ``lambda`` (and the factor ``c``) with ``eq5 == c * eq6`` for every ``z1^T z2``.

    Both integrands are polynomials in ``s = z1^T z2``; matching the coefficients of ``s`` and
    ``s^2`` gives ``c = 2 w`` and ``lambda = w / 2``. Returns ``{"factor", "lambda",
    "lambda_at_w_2"}``.
    """
    s, r = sp.Symbol("s", real=True), sp.Symbol("r", positive=True)
    p1, p2, c, lam_ = sp.symbols("p_1 p_2 c lambda_", positive=True)
    eq5 = p1 * p2 * (w * s) ** 2 - 2 * w * (r * p1 * p2) * s
    eq6 = (r * p1 * p2) * (-s) + lam_ * p1 * p2 * s**2
    coefficients = sp.Poly(sp.expand(eq5 - c * eq6), s).coeffs()
    (solution,) = sp.solve(coefficients, [c, lam_], dict=True)
    return {"factor": solution[c], "lambda": solution[lam_],
            "lambda_at_w_2": solution[lam_].subs(w, 2)}


# ----------------------------------------------------------------------------------------------
# Duality (appendix B): a small algebra of matrix words with shapes, and the lemmas it uses
# ----------------------------------------------------------------------------------------------

N, d = sp.symbols("N d", integer=True, positive=True)
Z = sp.Symbol("Z", commutative=False)
Zt = sp.Symbol(r"Z^{\top}", commutative=False)
I_N = sp.Symbol("I_N", commutative=False)
I_d = sp.Symbol("I_d", commutative=False)
SHAPES = {Z: (N, d), Zt: (d, N), I_N: (N, N), I_d: (d, d)}
TRANSPOSE = {Z: Zt, Zt: Z, I_N: I_N, I_d: I_d}
IDENTITIES = {I_N: N, I_d: d}


class _ScalarOfWord(sp.Function):
    """A scalar function of one matrix word (so it commutes), printed as ``open word close``."""

    nargs = 1
    latex_open, latex_close, latex_power = "", "", ("", "")

    def _eval_is_commutative(self) -> bool:
        return True

    def _latex(self, printer, exp=None) -> str:
        text = self.latex_open + printer._print(self.args[0]) + self.latex_close
        before, after = self.latex_power
        return text if exp is None else before + text + after + "^{" + exp + "}"


class Tr(_ScalarOfWord):
    """The trace of a matrix word."""

    latex_open, latex_close = r"\operatorname{tr}\left(", r"\right)"
    latex_power = (r"\left[", r"\right]")


class FrobSq(_ScalarOfWord):
    """The squared Frobenius norm of a matrix word."""

    latex_open, latex_close = r"\left\lVert ", r"\right\rVert_F^2"
    latex_power = (r"\left(", r"\right)")


def _terms(expr: sp.Expr) -> list[tuple[sp.Expr, tuple]]:
    """``expr`` expanded as ``sum coefficient * word``; a word is a tuple of matrix letters."""
    out = []
    for term in sp.Add.make_args(sp.expand(expr)):
        coefficient, word = sp.Integer(1), []
        for factor in sp.Mul.make_args(term):
            base, power = factor.as_base_exp()
            if base in SHAPES:
                word += [base] * int(power)
            elif factor.is_commutative:
                coefficient *= factor
            else:
                raise ValueError(f"{factor} is not a product of Z, Z^T, I_N and I_d.")
        out.append((coefficient, tuple(word)))
    return out


def word_shape(word: tuple) -> tuple:
    """The (rows, cols) of a product of letters; ValueError when neighbours do not align."""
    rows, cols = SHAPES[word[0]]
    for letter in word[1:]:
        if SHAPES[letter][0] != cols:
            raise ValueError(f"{' '.join(map(str, word))} multiplies a matrix with {cols} columns "
                             f"by one with {SHAPES[letter][0]} rows; the sizes do not align.")
        cols = SHAPES[letter][1]
    return rows, cols


def matrix_shape(expr: sp.Expr) -> tuple:
    """The (rows, cols) of a sum of words; ValueError when terms of different sizes are added.

    ``N`` and ``d`` are different symbols, so ``Z^T Z - I_N`` (a d x d minus an N x N) is
    rejected, as it is at any concrete sizes with ``N != d``.
    """
    terms = _terms(expr)
    if any(not word for _, word in terms):
        raise ValueError(f"{expr} adds a plain number to a matrix: write it as c I_N or c I_d.")
    shapes = {word_shape(word) for _, word in terms}
    if len(shapes) != 1:
        raise ValueError(f"{expr} adds matrices of sizes {sorted(map(str, shapes))}: "
                         "write each identity matrix with the size of what it is added to.")
    return shapes.pop()


def transpose(expr: sp.Expr) -> sp.Expr:
    """``expr^T``: reverse every word and transpose every letter, ``(AB)^T = B^T A^T``."""
    matrix_shape(expr)
    return sp.Add(*[c * sp.Mul(*[TRANSPOSE[x] for x in reversed(word)]) for c, word in
                    _terms(expr)])


def frobenius_as_trace(expr: sp.Expr) -> sp.Expr:
    """Rewrite every ``||A||_F^2`` as ``tr(A^T A)``."""
    return expr.replace(FrobSq, lambda a: Tr(transpose(a) * a))


def expand_traces(expr: sp.Expr) -> sp.Expr:
    """Expand every trace by linearity; drop identities from products; ``tr(I_n) = n``."""
    def expand_one(a):
        matrix_shape(a)
        total = sp.Integer(0)
        for coefficient, word in _terms(a):
            letters = tuple(x for x in word if x not in IDENTITIES)
            total += coefficient * (Tr(sp.Mul(*letters)) if letters else IDENTITIES[word[0]])
        return total

    return sp.expand(expr.replace(Tr, expand_one))


def _canonical_rotation(word: tuple) -> tuple:
    rotations = [word[i:] + word[:i] for i in range(len(word))]
    return min(rotations, key=lambda r: [str(x) for x in r])


def cycle_traces(expr: sp.Expr) -> sp.Expr:
    """Rotate every trace's word to one canonical order, using ``tr(AB) = tr(BA)``."""
    def cycle_one(a):
        ((coefficient, word),) = _terms(a)
        return coefficient * Tr(sp.Mul(*_canonical_rotation(word)))

    return sp.expand(expr.replace(Tr, cycle_one))


def reduce_traces(expr: sp.Expr) -> sp.Expr:
    """All the rules at once: norms to traces, linearity, identities, cyclic order."""
    return cycle_traces(expand_traces(frobenius_as_trace(expr)))


@dataclass(frozen=True)
class Lemma:
    """A rule of the trace algebra, proven in index notation for symbolic sizes."""

    name: str
    statement: str  # LaTeX
    lhs: sp.Expr
    rhs: sp.Expr

    def holds(self) -> bool:
        return _sums_equal(self.lhs, self.rhs)


def _sums_equal(a: sp.Expr, b: sp.Expr) -> bool:
    """Whether two finite sums are equal by renaming and reordering their indices (Fubini).

    Non-sums are compared by simplifying their difference.
    """
    if not (isinstance(a, sp.Sum) and isinstance(b, sp.Sum)):
        return sp.simplify(_rename_indices(a) - _rename_indices(b)) == 0
    if len(a.limits) != len(b.limits):
        return False
    for order in itertools.permutations(b.limits):
        if any(sp.simplify(lb[1] - la[1]) != 0 or sp.simplify(lb[2] - la[2]) != 0
               for la, lb in zip(a.limits, order, strict=True)):
            continue
        rename = {lb[0]: la[0] for la, lb in zip(a.limits, order, strict=True)}
        if sp.simplify(a.function - b.function.xreplace(rename)) == 0:
            return True
    return False


def _rename_indices(expr: sp.Expr) -> sp.Expr:
    """Give the bound indices of every sum the names k0, k1, ... in order (alpha-renaming)."""
    def rename(summand, *limits):
        names = {lim[0]: sp.Symbol(f"k{n}", integer=True) for n, lim in enumerate(limits)}
        return sp.Sum(summand.xreplace(names), *[(names[v], lo, hi) for v, lo, hi in limits])

    return expr.replace(sp.Sum, rename)


def trace_lemmas() -> tuple[Lemma, ...]:
    """The rules :func:`reduce_traces` uses, for matrices of symbolic sizes ``n x m``."""
    n, m = sp.symbols("n m", integer=True, positive=True)
    A, B = sp.MatrixSymbol("A", n, m), sp.MatrixSymbol("B", m, n)
    C, D = sp.MatrixSymbol("C", n, n), sp.MatrixSymbol("D", n, n)
    a, i, j = sp.Symbol("a"), sp.Symbol("i", integer=True), sp.Symbol("j", integer=True)
    frob = sp.Sum(A[i, j] ** 2, (i, 0, n - 1), (j, 0, m - 1))
    return (
        Lemma("Frobenius norm as a trace", r"\lVert A\rVert_F^2 = \operatorname{tr}(A^\top A)",
              frob, sp.Trace(A.T * A).rewrite(sp.Sum)),
        Lemma("cyclic order", r"\operatorname{tr}(AB) = \operatorname{tr}(BA)",
              sp.Trace(A * B).rewrite(sp.Sum), sp.Trace(B * A).rewrite(sp.Sum)),
        Lemma("transpose of a product", r"\left[(AB)^\top\right]_{ij} = [B^\top A^\top]_{ij}",
              (A * B).T[i, j], (B.T * A.T)[i, j]),
        Lemma("linearity", r"\operatorname{tr}(C + aD) = \operatorname{tr}C + a\operatorname{tr}D",
              sp.Trace(C + a * D).rewrite(sp.Sum),
              sp.Trace(C).rewrite(sp.Sum) + a * sp.Trace(D).rewrite(sp.Sum)),
        Lemma("trace of the identity", r"\operatorname{tr}(I_n) = n",
              sp.Trace(sp.Identity(n)).doit(), n),
    )


def duality_identities() -> dict[str, Derivation]:
    """Appendix B's identities for a batch ``Z`` of shape ``(N, d)``, for every ``N`` and ``d``.

    - ``"gap"``: ``||Z Z^T - I_N||_F^2 - ||Z^T Z - I_d||_F^2 = N - d`` (Le et al. 2011), with no
      assumption on ``Z``;
    - ``"trace"``: ``||Z^T Z - I_d||_F^2 - ||Z^T Z - (N/d) I_d||_F^2 = (N - d)^2 / d``, using
      ``tr(Z^T Z) = N``: unit-norm rows, or zero-mean columns of variance ``1/d`` (divide by
      N). Zero-mean *unit*-variance columns give ``tr(Z^T Z) = N d`` and another constant;
    - ``"covariance"``: ``||Z^T Z / N - I_d / d||_F^2 = ||Z^T Z - (N/d) I_d||_F^2 / N^2``, the
      batch-covariance form of the same penalty.

    Each step is produced by one rule of the trace algebra (see :func:`trace_lemmas`), and
    ``residuals()`` checks it by reducing both sides with all the rules.
    """
    G_N, G_d = Z * Zt, Zt * Z
    gap = (
        Step("B.1", "difference of the two penalties", FrobSq(G_N - I_N) - FrobSq(G_d - I_d),
             "the sample-Gram penalty (N x N) minus the feature-Gram penalty (d x d)"),
        Step("B.2", "norms as traces", frobenius_as_trace(FrobSq(G_N - I_N) - FrobSq(G_d - I_d)),
             "||A||_F^2 = tr(A^T A), and both Gram matrices are symmetric"),
        Step("B.3", "expand", expand_traces(frobenius_as_trace(FrobSq(G_N - I_N)
                                                              - FrobSq(G_d - I_d))),
             "linearity of the trace, I A = A, tr(I_N) = N and tr(I_d) = d"),
        Step("B.4", "rotate", N - d,
             "tr(Z Z^T Z Z^T) = tr(Z^T Z Z^T Z) and tr(Z Z^T) = tr(Z^T Z) (cyclic order)"),
    )
    t = Tr(G_d)
    target = N / d * I_d
    expanded = expand_traces(frobenius_as_trace(FrobSq(G_d - I_d) - FrobSq(G_d - target)))
    trace = (
        Step("B.5", "two feature-side penalties", FrobSq(G_d - I_d) - FrobSq(G_d - target),
             "identity target versus the (N/d) I_d target"),
        Step("B.6", "expand", expanded, "norms as traces, linearity, tr(I_d) = d"),
        Step("B.7", "fix the trace", (N - d) ** 2 / d,
             "tr(Z^T Z) = sum of squared row norms = N for unit-norm rows",
             assumption={t: N}),
    )
    covariance = (
        Step("B.8", "batch covariance penalty", FrobSq(G_d / N - I_d / d),
             "Z^T Z / N is the batch covariance when columns have zero mean"),
        Step("B.9", "scaled feature penalty", FrobSq(G_d - target),
             "pull 1/N out of the norm: ||A / N||_F^2 = ||A||_F^2 / N^2", factor=1 / N**2),
    )
    embedding = (Z, Zt)
    return {
        "gap": Derivation("Sample Gram versus feature Gram", gap, embedding,
                          normalize=reduce_traces),
        "trace": Derivation("Identity versus (N/d) I_d target, trace fixed", trace, embedding,
                            normalize=reduce_traces),
        "covariance": Derivation("Covariance form", covariance, embedding,
                                 normalize=reduce_traces),
    }


def trace_constant(t: sp.Expr | None = None) -> sp.Expr:
    """``||Z^T Z - I_d||_F^2 - ||Z^T Z - (N/d) I_d||_F^2`` as a function of ``t = tr(Z^T Z)``.

    Without an argument ``t`` is a symbol; ``trace_constant(N)`` is ``(N - d)^2 / d``.
    """
    t = sp.Symbol("t", positive=True) if t is None else t
    expr = reduce_traces(FrobSq(Zt * Z - I_d) - FrobSq(Zt * Z - N / d * I_d))
    return sp.simplify(expr.subs(Tr(Zt * Z), t).subs(Tr(Z * Zt), t))


def duality_explicit_residuals(n_rows: int, dim: int) -> dict[str, sp.Expr]:
    """The identities expanded entry by entry for a ``(n_rows, dim)`` matrix of symbols.

    Returns expanded residuals that are 0 when the identities hold:
    ``"gap"`` (``||ZZ^T - I||^2 - ||Z^TZ - I||^2 - (N - d)``), ``"trace"`` (the difference of
    the feature penalties minus ``trace_constant(tr Z^T Z)``), and ``"offdiagonal"``
    (``||ZZ^T - I||^2 - sum_{i != j} (z_i^T z_j)^2 - sum_i (||z_i||^2 - 1)^2``).
    """
    for name, value in (("n_rows", n_rows), ("dim", dim)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
            raise ValueError(f"{name} must be an integer from 1 to 5 (expansion grows fast), "
                             f"got {value!r}.")
    z = sp.Matrix(n_rows, dim, lambda i, a: sp.Symbol(f"z_{i}{a}", real=True))
    gram_n, gram_d = z * z.T, z.T * z

    def frob(m):
        return sum(x**2 for x in m)

    sizes = {N: n_rows, d: dim}
    gap = frob(gram_n - sp.eye(n_rows)) - frob(gram_d - sp.eye(dim)) - (n_rows - dim)
    ratio = sp.Rational(n_rows, dim)
    trace = (frob(gram_d - sp.eye(dim)) - frob(gram_d - ratio * sp.eye(dim))
             - trace_constant(gram_d.trace()).subs(sizes))
    off = sum(gram_n[i, j] ** 2 for i in range(n_rows) for j in range(n_rows) if i != j)
    diag = sum((gram_n[i, i] - 1) ** 2 for i in range(n_rows))
    offdiagonal = frob(gram_n - sp.eye(n_rows)) - off - diag
    return {"gap": sp.expand(gap), "trace": sp.expand(trace),
            "offdiagonal": sp.expand(offdiagonal)}
