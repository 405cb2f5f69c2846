"""The exercise sets as data: a set, its checks, a result, where their files are.

Every other module of ``exercises/`` builds on this one, and it imports none of them but
:mod:`exercises.rules` (for the default imports a set allows), so the package imports in one
direction: ``rules <- model <- runner <- checker, grade`` (``checktools`` uses ``rules``;
``runner`` also uses ``wire`` and ``sandbox``, which import nothing of the course, and
``answer_host`` runs alone in the sandbox beside ``wire``). Nothing here runs an answer:
:mod:`exercises.runner` does.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import re
import textwrap
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from exercises import rules

EXERCISES_DIR = Path(__file__).resolve().parent
COURSE_ROOT = EXERCISES_DIR.parent
SET_PATTERN = re.compile(r"^ex(\d\d)_(\w+)\.py$")
WIDTH = 96  # printed lines stay narrower than the book's code cells
MAX_MESSAGE = 2000  # characters of a result's message that are printed
STATUSES = ("passed", "not done", "failed", "not allowed", "timed out", "crashed",
            "check error")


@dataclass(frozen=True)
class ExerciseSet:
    """Chapter NN's set, topic T: ``exNN_T.py`` (stubs), ``solutions/`` and ``checks/``."""

    chapter: int
    topic: str
    checks_dir: Path | None = None  # None: exercises/checks/ (another folder: tests only)

    @property
    def stem(self) -> str:
        return f"ex{self.chapter:02d}_{self.topic}"

    def answers_path(self, solutions: bool = False) -> Path:
        folder = EXERCISES_DIR / "solutions" if solutions else EXERCISES_DIR
        return folder / f"{self.stem}.py"

    @property
    def checks_path(self) -> Path:
        return (self.checks_dir or EXERCISES_DIR / "checks") / f"{self.stem}.py"


@dataclass(frozen=True)
class Check:
    """One ``check_<name>`` function of a check file, with its ``@exercise`` declaration."""

    name: str
    function: str
    points: float
    forbid: tuple
    run: Callable[[ModuleType], None]


@dataclass(frozen=True)
class CheckSet:
    """A set's checks in source order, and what its answer file may import and define."""

    exercise_set: ExerciseSet
    checks: list[Check]
    allowed_imports: tuple[str, ...]
    allow_classes: bool
    house_rules: bool = True  # False only in the tests of the sandbox (HOUSE_RULES = False)


@dataclass(frozen=True)
class Result:
    """The outcome of one exercise: ``status`` is one of ``STATUSES``."""

    exercise: str
    passed: bool
    message: str = ""
    status: str = "passed"  # one of STATUSES
    points: float = 0.0     # earned
    max_points: float = 1.0
    set_stem: str = field(default="", compare=False)


def exercise_sets(chapter: int | Iterable[int] | None = None,
                  checks_dir: Path | None = None) -> list[ExerciseSet]:
    """Every exercise set that has checks, in chapter order (only the chapters given)."""
    found = []
    for path in sorted((checks_dir or EXERCISES_DIR / "checks").glob("ex*.py")):
        match = SET_PATTERN.match(path.name)
        if match:
            found.append(ExerciseSet(int(match.group(1)), match.group(2), checks_dir))
    if chapter is not None:
        wanted = {chapter} if isinstance(chapter, int) else set(chapter)
        known = {s.chapter for s in found}
        if not wanted <= known:
            listed = ", ".join(f"{c:02d}" for c in sorted(known)) or "none"
            raise ValueError(f"There are no exercises for chapter {min(wanted - known):02d}; "
                             f"chapters with exercises: {listed}.")
        if not wanted:  # an empty list would check nothing and still report success
            raise ValueError("No chapter was given: name at least one, like 3, 0,3 or 0-4.")
        found = [s for s in found if s.chapter in wanted]
    if not found:
        where = checks_dir or EXERCISES_DIR / "checks"
        raise FileNotFoundError(f"{where} holds no check file exNN_topic.py: this copy of the "
                                "course has no exercises to check.")
    return found


def exercise_set_named(stem: str, checks_dir: str | Path | None = None) -> ExerciseSet:
    """The set named ``stem`` (``ex03_losses``), its checks in ``checks_dir`` if given."""
    match = SET_PATTERN.match(f"{stem}.py")
    if match is None:
        raise ValueError(f"{stem!r} is not the name of an exercise set (exNN_topic).")
    return ExerciseSet(int(match.group(1)), match.group(2),
                       Path(checks_dir) if checks_dir else None)


def parse_chapters(text: str) -> list[int]:
    """``"3"``, ``"00,03"`` or ``"0-4"`` -> chapter numbers."""
    chapters = []
    for part in text.replace(" ", "").split(","):
        first, _, last = part.partition("-")
        if not first.isdigit() or (last and not last.isdigit()):
            raise ValueError(f"CHAPTER={text!r}: give numbers like 3, 0,3 or 0-4.")
        if last and int(last) < int(first):
            raise ValueError(f"CHAPTER={text!r}: the range {part} counts down and holds no "
                             f"chapter; write the lower number first, like {last}-{first}.")
        chapters += list(range(int(first), int(last or first) + 1))
    return chapters


def check_time_limit(seconds: float, shown: object = None) -> float:
    """``seconds`` itself when it is a finite positive number; a ValueError otherwise (naming
    ``shown``, the value as the user typed it, when given)."""
    if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"TIME_LIMIT={seconds if shown is None else shown!r}: give the seconds "
                         "each exercise may take as a positive number, like 30.")
    return float(seconds)


def parse_time_limit(text: str) -> float:
    """The ``--time-limit`` option's text as seconds (see :func:`check_time_limit`)."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan  # not a number at all: refused below, with the text as typed
    return check_time_limit(seconds, text)


def option_type(parse: Callable[[str], object]) -> Callable[[str], object]:
    """``parse`` for argparse's ``type=``: its ValueError's sentence becomes argparse's
    message (argparse would otherwise print only "invalid parse value")."""
    def parse_option(text: str):
        try:
            return parse(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
    parse_option.__name__ = parse.__name__
    return parse_option


def load_file(path: Path, name: str) -> ModuleType:
    """Import the file at ``path`` as a module called ``name`` (not put in sys.modules)."""
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: this copy of the course lacks it.")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_checks(exercise_set: ExerciseSet) -> CheckSet:
    """The checks of a set, in source order, with their declarations."""
    module = load_file(exercise_set.checks_path, f"_checks_{exercise_set.stem}")
    checks = []
    for name, fn in vars(module).items():
        if not (name.startswith("check_") and callable(fn)
                and getattr(fn, "__module__", None) == module.__name__):
            continue
        info = getattr(fn, "exercise_info", None)
        if info is None:
            raise ValueError(f"{exercise_set.checks_path.name}: {name} lacks its "
                             "@exercise(points=..., forbid=[...]) declaration.")
        exercise = name.removeprefix("check_")
        checks.append(Check(exercise, info.function or exercise, info.points, info.forbid, fn))
    checks.sort(key=lambda c: c.run.__code__.co_firstlineno)
    return CheckSet(exercise_set, checks,
                    tuple(getattr(module, "ALLOWED_IMPORTS", rules.DEFAULT_IMPORTS)),
                    bool(getattr(module, "ALLOW_CLASSES", False)),
                    getattr(module, "HOUSE_RULES", True) is not False)


def result_line(result: Result, width: int = WIDTH) -> str:
    """``  PASS  name (1/1)`` or a FAIL line wrapped to ``width`` with a hanging indent."""
    score = f"{result.points:g}/{result.max_points:g}"
    if result.passed:
        return f"  PASS  {result.exercise} ({score})"
    message = result.message
    if len(message) > MAX_MESSAGE:  # textwrap is slow on a long text: never format one
        message = message[:MAX_MESSAGE] + " ..."
    text = f"  FAIL  {result.exercise} ({score}): {message}"
    return textwrap.fill(text, width=width, subsequent_indent=" " * 8,
                         break_long_words=True, break_on_hyphens=False)
