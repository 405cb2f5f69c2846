"""A claim measured once: its figure, the threshold fixed in advance, and whether it holds.

The claims themselves live where the course teaches them (``claims`` for chapter 7, ``parts``
for chapter 9); both return a :class:`Verdict`, so a chapter prints the trained network's
verdicts beside its controls' in one table.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Verdict", "at_least"]


@dataclass(frozen=True)
class Verdict:
    """One claim measured once: ``holds`` is ``figure >= threshold``."""

    claim: str
    figure: float
    threshold: float

    @property
    def holds(self) -> bool:
        return self.figure >= self.threshold

    def row(self, model: str) -> dict:
        """A table row: the claim, the model it was measured on, figure, threshold, verdict."""
        return {"claim": self.claim, "model": model, "figure": self.figure,
                "threshold": self.threshold, "holds": "yes" if self.holds else "no"}


def at_least(claim: str, figure: float, threshold: float) -> Verdict:
    """The verdict of ``figure >= threshold``, with both as plain floats."""
    return Verdict(claim, float(figure), float(threshold))
