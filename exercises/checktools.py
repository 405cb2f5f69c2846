"""The toolkit of a check file: ``@exercise``, the must-not-use rules, comparisons that teach.

A check file ``exercises/checks/exNN_topic.py`` looks like this (see ``checker``'s docstring
for the whole convention)::

    import torch
    from exercises.checktools import NO_LIBRARY, NO_LOOPS, close, exercise, unchanged_call

    ALLOWED_IMPORTS = ("torch", "math")        # what the answer file may import

    @exercise(points=2, forbid=[NO_LIBRARY, NO_LOOPS])
    def check_cosine_similarity_matrix(answers):
        z = torch.randn(7, 5, dtype=torch.float64)
        got = unchanged_call(answers.cosine_similarity_matrix, z, what="cosine_similarity_matrix")
        close(got, expected, "cosine_similarity_matrix(z)",
              mistakes={"you divided by the std, not the norm": wrong})

Failures are ``AssertionError`` with one sentence for the student; a common mistake's hint
comes first, the raw numbers after it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from exercises.rules import (  # noqa: F401  (re-exported for check files)
    ARITHMETIC_ONLY,
    DEFAULT_IMPORTS,
    NO_LIBRARY,
    NO_LOOPS,
    NO_NUMPY,
    Rule,
    forbid_names,
)


@dataclass(frozen=True)
class ExerciseInfo:
    points: float
    forbid: tuple[Rule, ...]
    function: str | None  # the answer function it checks; None: the check's name


def exercise(points: float = 1, forbid: Iterable[Rule] = (),
             function: str | None = None) -> Callable:
    """Declare a check: its points and what the answer must not use.

    ``function`` names the answer function when it differs from the check's name without
    its ``check_`` prefix.
    """
    if points <= 0:
        raise ValueError(f"points must be positive, got {points}.")
    rules = tuple(forbid)
    if not all(isinstance(r, Rule) for r in rules):
        raise ValueError("forbid takes rules from exercises.rules (NO_LOOPS, forbid_names, ...).")

    def declare(check: Callable) -> Callable:
        check.exercise_info = ExerciseInfo(points, rules, function)
        return check

    return declare


def _torch():
    import torch  # imported lazily: the sympy-only sets need no torch

    return torch


def expect_tensor(value, what: str, shape: tuple | None = None) -> None:
    """``value`` is a plain torch tensor (of ``shape``) without NaN."""
    torch = _torch()
    assert type(value) in (torch.Tensor, torch.nn.Parameter), (
        f"{what} should return a torch tensor, got {type(value).__name__}")
    if shape is not None:
        assert tuple(value.shape) == tuple(shape), (
            f"{what} returned shape {tuple(value.shape)}, expected {tuple(shape)}")
    assert not (value.is_floating_point() and value.isnan().any()), f"{what} returned NaN"


def _differs(actual, expected, atol: float, rtol: float) -> float:
    """The largest difference beyond tolerance (0.0 when close), for same-shape tensors."""
    a, e = actual.detach().double(), expected.detach().double()
    if a.shape != e.shape:
        return math.inf
    if a.numel() == 0:
        return 0.0
    excess = (a - e).abs() - atol - rtol * e.abs()
    return float((a - e).abs().max()) if bool((excess > 0).any()) else 0.0


def close(actual, expected, what: str, atol: float = 1e-6, rtol: float = 1e-6,
          mistakes: Mapping[str, object] | Iterable[tuple[str, object]] | None = None) -> None:
    """``actual`` equals ``expected`` (a tensor) within tolerance.

    mistakes: ``{hint: what that mistake returns}`` (or ``(hint, result)`` pairs); when
    ``actual`` matches one, the hint is the message, before any number. Otherwise the
    message gives the largest difference.
    """
    torch = _torch()
    expect_tensor(actual, what)
    pairs = mistakes.items() if isinstance(mistakes, Mapping) else (mistakes or ())
    for hint, wrong in pairs:
        wrong = torch.as_tensor(wrong)
        if (tuple(wrong.shape) == tuple(actual.shape)
                and _differs(wrong, expected, atol, rtol) > 0
                and _differs(actual, wrong, atol, rtol) == 0):
            raise AssertionError(f"{what}: {hint} (your result matches that slip)")
    assert tuple(actual.shape) == tuple(expected.shape), (
        f"{what} returned shape {tuple(actual.shape)}, expected {tuple(expected.shape)}")
    worst = _differs(actual, expected, atol, rtol)
    assert worst == 0, f"{what} is off by up to {worst:.3g} from the expected values"


def close_number(actual, expected: float, what: str, rel: float = 1e-6, abs_: float = 1e-9,
                 mistakes: Mapping[str, float] | None = None) -> None:
    """A number (int, float or 0-d tensor) equals ``expected``; a matching mistake's hint
    comes before the raw numbers."""
    torch = _torch()
    if isinstance(actual, torch.Tensor):
        assert actual.numel() == 1, f"{what} should be a number, got shape {tuple(actual.shape)}"
        actual = float(actual.detach())
    assert isinstance(actual, int | float) and not isinstance(actual, bool), (
        f"{what} should be a number, got {type(actual).__name__}")
    if math.isclose(actual, expected, rel_tol=rel, abs_tol=abs_):
        return
    for hint, wrong in (mistakes or {}).items():
        if math.isclose(actual, wrong, rel_tol=rel, abs_tol=abs_):
            raise AssertionError(f"{what}: {hint} (you give {actual:.6g}, expected "
                                 f"{expected:.6g})")
    raise AssertionError(f"{what} = {actual:.6g}, expected {expected:.6g}")


def unchanged_call(function: Callable, *args, what: str, **kwargs):
    """Call ``function`` and check that it left every tensor argument as it was."""
    torch = _torch()
    before = [a.detach().clone() if isinstance(a, torch.Tensor) else None for a in args]
    result = function(*args, **kwargs)
    for i, (arg, copy) in enumerate(zip(args, before, strict=True)):
        if copy is not None and not torch.equal(arg.detach(), copy):
            raise AssertionError(
                f"{what} changed its input number {i + 1} in place (e.g. z /= norm or "
                "fill_diagonal_): work on a new tensor and leave the caller's as it was")
    return result


def agree(student: Callable, reference: Callable, inputs: tuple, what: str,
          mistakes: Mapping[str, Callable] | None = None, rtol: float = 1e-6) -> None:
    """A scalar loss: the same value and gradient as ``reference``, inputs left alone.

    mistakes: ``{hint: function computing that wrong loss}``; a matching hint comes first.
    Input ``i`` that the loss ignores is reported as such, not as a torch error.
    """
    torch = _torch()
    mine = [x.clone().requires_grad_(True) for x in inputs]
    value = unchanged_call(student, *mine, what=what)
    expect_tensor(value, what)
    assert value.dim() == 0, f"{what} should return a 0-dim tensor, got shape {tuple(value.shape)}"
    want = float(reference(*inputs))
    got = float(value.detach())
    if not math.isclose(got, want, rel_tol=rtol, abs_tol=1e-8):
        for hint, wrong in (mistakes or {}).items():
            if math.isclose(got, float(wrong(*inputs)), rel_tol=rtol, abs_tol=1e-8):
                raise AssertionError(f"{what}: {hint} (you give {got:.6g}, expected {want:.6g})")
        raise AssertionError(f"{what} = {got:.6g}, expected {want:.6g}")
    assert value.requires_grad, (
        f"{what} is not differentiable: keep to torch operations (no .item(), no NumPy)")
    grads = torch.autograd.grad(value, mine, allow_unused=True)
    ref = [x.clone().requires_grad_(True) for x in inputs]
    expected = torch.autograd.grad(reference(*ref), ref, allow_unused=True)
    for i, (g, e) in enumerate(zip(grads, expected, strict=True)):
        if g is None and e is not None:
            raise AssertionError(f"{what} does not depend on its input number {i + 1}")
        if g is None or e is None:
            continue
        worst = (g - e).abs().max().item()
        assert worst <= 1e-6 * max(1.0, e.abs().max().item()), (
            f"the gradient of {what} with respect to input {i + 1} is off by up to {worst:.3g}")
