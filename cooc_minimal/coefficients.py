"""Every loss's coefficients: their names, defaults and allowed values, without torch.

One table, :data:`COEFFICIENTS`, is the single source of truth for the keyword arguments of
the losses in :mod:`cooc_minimal.losses`. The losses check their arguments with
:func:`check_coeffs`, and so does :mod:`cooc_minimal.config` when it loads a run's
``loss_coeffs``: a bad coefficient is refused before any work, and loading a config does
not import torch.

The names are the papers' (appendix C of Chen et al. 2023, and the cited losses)::

    check_coeffs("tcr", {"lam": 30.0, "eps": 0.447})        # fine
    check_coeffs("tcr", {"lamda": 30.0})                    # ValueError: ... did you mean 'lam'?
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["COEFFICIENTS", "LOSS_NAMES", "TCR_EPS", "Coefficient", "UnknownLossError",
           "check_coeffs", "check_loss_name", "default_coeffs"]

#: TCR's default distortion: EMP-SSL's ``--eps 0.2`` is eps^2 (its code divides by 0.2 where
#: eps^2 stands), so the library's eps, which is squared, is sqrt(0.2) = 0.447...
TCR_EPS = math.sqrt(0.2)

_KINDS = ("non_negative", "positive", "switch", "choice")


@dataclass(frozen=True)
class Coefficient:
    """One keyword argument of a loss: its default and which values it accepts.

    kind: ``"non_negative"`` (a finite real number >= 0, e.g. a weight), ``"positive"``
    (finite and > 0: it divides, e.g. a temperature), ``"switch"`` (True or False) or
    ``"choice"`` (one of ``choices``).
    """

    default: float | bool | str
    kind: str
    choices: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        assert self.kind in _KINDS, f"unknown coefficient kind {self.kind!r}"
        assert (self.kind == "choice") == bool(self.choices), "only a choice has choices"


def _weight(default: float) -> Coefficient:
    return Coefficient(default, "non_negative")


def _divisor(default: float) -> Coefficient:
    return Coefficient(default, "positive")


#: loss name -> coefficient name -> Coefficient, for the multi-patch forms (``LOSSES``).
#: The two-view functions take a subset of their loss's names, with the same defaults.
COEFFICIENTS: dict[str, dict[str, Coefficient]] = {
    "simclr": {"temperature": _divisor(0.1)},
    "spectral": {"lam": _weight(1.0),  # eq. (6): lam = w / 2 with w = 2
                 "mean": Coefficient("all", "choice", ("all", "leave_one_out"))},
    "tcr": {"lam": _weight(30.0), "eps": _divisor(TCR_EPS),
            "normalize": Coefficient(True, "switch")},
    "vicreg": {"inv_coeff": _weight(25.0), "var_coeff": _weight(25.0), "cov_coeff": _weight(1.0),
               "gamma": _weight(1.0), "eps": _divisor(1e-4)},
}

#: the losses' names, sorted: what a config's ``loss`` may be.
LOSS_NAMES: tuple[str, ...] = tuple(sorted(COEFFICIENTS))


class UnknownLossError(KeyError, ValueError):
    """An unknown loss name (both a KeyError, for registry look-ups, and a ValueError)."""

    def __str__(self) -> str:
        # KeyError's str() would quote the whole sentence.
        return str(self.args[0])


def check_loss_name(name: str) -> None:
    """Raise :class:`UnknownLossError` with one sentence unless ``name`` is a known loss."""
    if name not in COEFFICIENTS:
        raise UnknownLossError(f"There is no loss called {name!r}: the known losses are "
                               f"{', '.join(LOSS_NAMES)}.")


def default_coeffs(name: str) -> dict[str, float | bool | str]:
    """The coefficients of loss ``name`` at their defaults, e.g. ``{"temperature": 0.1}``."""
    check_loss_name(name)
    return {key: spec.default for key, spec in COEFFICIENTS[name].items()}


def _with_hint(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    return f"{key} (did you mean {close[0]!r}?)" if close else key


def _check_value(key: str, spec: Coefficient, value: object) -> None:
    if spec.kind == "choice":
        if not isinstance(value, str) or value not in spec.choices:
            raise ValueError(f"{key} must be {' or '.join(map(repr, spec.choices))}, "
                             f"got {value!r}.")
    elif spec.kind == "switch":
        if not isinstance(value, bool):
            raise ValueError(f"{key} must be True or False, got {value!r}.")
    else:
        strict = spec.kind == "positive"
        # bool is a numbers.Real, but True is a typo for a number here, never a weight.
        number = isinstance(value, numbers.Real) and not isinstance(value, bool)
        if not number or not math.isfinite(value) or value < 0 or (strict and value == 0):
            raise ValueError(f"{key} must be a finite number {'> 0' if strict else '>= 0'}, "
                             f"got {value!r}.")


def check_coeffs(name: str, coeffs: Mapping[str, object]) -> None:
    """Check keyword coefficients of loss ``name`` without computing anything.

    coeffs: coefficient name -> value, any subset of the loss's (missing ones default).
    Raises a ValueError with one sentence for an unknown loss (:class:`UnknownLossError`),
    an unknown coefficient name (suggesting the closest known one), or a value out of its
    range. The losses of :mod:`cooc_minimal.losses` call it on their own arguments.
    """
    check_loss_name(name)
    if not isinstance(coeffs, Mapping):
        raise ValueError(f"the coefficients of loss {name!r} must be a mapping of name to "
                         f"value, got a {type(coeffs).__name__}.")
    specs = COEFFICIENTS[name]
    unknown = sorted(str(key) for key in coeffs if key not in specs)
    if unknown:
        named = ", ".join(_with_hint(key, list(specs)) for key in unknown)
        raise ValueError(f"loss {name!r} does not take {named}: its coefficients are "
                         f"{', '.join(specs)}.")
    for key, value in coeffs.items():
        _check_value(key, specs[key], value)
