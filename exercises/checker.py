"""Check exercise answers and report, per exercise, a pass or a failure that teaches.

Students run ``make check-exercises`` or ``make check-exercises CHAPTER=03``, the same as
``python -m exercises.checker --chapter 3``; a notebook beside this file does
``from checker import report; report(chapter=3)``. Every answer file is run in a separate
process with a time limit (:mod:`exercises.runner`), so an endless loop, ``exit()`` or a
crash fails that exercise with its reason and never passes. The exit code is 0 only when
every check ran and passed (1 otherwise, 2 for a bad command line).

Files of a set (chapter NN, topic T), found by name
---------------------------------------------------
- ``exercises/exNN_T.py``: the stubs a student edits. One function per exercise; a stub
  raises ``NotImplementedError`` (reported as "not done yet").
- ``exercises/exNN_T.ipynb``: the book page that states the tasks, hints in collapsed
  ``:::{dropdown} Hint`` blocks (not in the stub's docstring), and runs ``report``.
- ``exercises/solutions/exNN_T.py``: the reference answers (absent from a student copy).
- ``exercises/checks/exNN_T.py``: the checks. Any number of sets; tests discover them all.

The check file's conventions
----------------------------
- One function ``check_<name>(answers)`` per exercise, in the order the exercises are meant
  to be done, decorated with ``@exercise(points=P, forbid=[rules...])`` from
  :mod:`exercises.checktools`. ``<name>`` is the answer function it checks (or say
  ``function="..."``). Points default to 1; the grade is the sum over passed exercises.
- ``forbid`` lists what the answer must not use, verified on the answer's syntax tree
  (function plus the helpers it calls) before it runs, with a one-sentence message:
  ``NO_LIBRARY`` (importing ``cooc_minimal``), ``forbid_names("spectral_loss", why=...)``
  (a named function, e.g. the library function under test or ``torch.logdet``),
  ``NO_NUMPY`` (numpy, ``.numpy()``, ``.tolist()``, ``.item()``), ``NO_LOOPS`` (``for``,
  ``while``, comprehensions, ``map``; a loop over a fixed few, ``range(3)`` or a literal
  tuple, is allowed), ``ARITHMETIC_ONLY`` (a derived formula: no module calls at all). See
  :mod:`exercises.rules`. The book page shows them with ``show_table(exercise_table(NN))``.
- Module constants: ``ALLOWED_IMPORTS`` (default ``rules.DEFAULT_IMPORTS``: math, torch,
  typing, functools, itertools, collections), ``ALLOW_CLASSES = False``. Every answer file
  must also keep the house rules of :func:`exercises.rules.file_problems` (no ``os``/``sys``,
  ``exec``, dunder attributes, top-level code ...); a file that breaks one is not imported.
- A check raises ``AssertionError`` with one sentence for the student. Use the helpers of
  :mod:`exercises.checktools`: ``unchanged_call`` (inputs left as they were), ``close`` and
  ``close_number`` and ``agree`` (value and gradient) with ``mistakes={hint: wrong}`` so a
  common slip is named before any number. Choose inputs that catch shortcuts (zeros off the
  diagonal, rows of different norms, N < D and N > D).
- Who is to blame: an exception raised in the answer file's code is "your code raised X at
  line N"; a ``NotImplementedError`` there is "not done yet"; an ``AssertionError`` raised by
  the check is the check's message; any other exception raised outside the answer file is
  reported as the check's own error ("the check itself failed ..."), never the student's.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import signal
import sys
import textwrap
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

EXERCISES_DIR = Path(__file__).resolve().parent
COURSE_ROOT = EXERCISES_DIR.parent
if str(COURSE_ROOT) not in sys.path:  # check files import exercises.checktools
    sys.path.insert(0, str(COURSE_ROOT))

from exercises import rules  # noqa: E402

SET_PATTERN = re.compile(r"^ex(\d\d)_(\w+)\.py$")
WIDTH = 96  # printed lines stay narrower than the book's code cells


@dataclass(frozen=True)
class ExerciseSet:
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
    name: str
    function: str
    points: float
    forbid: tuple
    run: Callable[[ModuleType], None]


@dataclass(frozen=True)
class CheckSet:
    exercise_set: ExerciseSet
    checks: list[Check]
    allowed_imports: tuple[str, ...]
    allow_classes: bool


STATUSES = ("passed", "not done", "failed", "not allowed", "timed out", "crashed",
            "check error")


@dataclass(frozen=True)
class Result:
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
        found = [s for s in found if s.chapter in wanted]
    return found


def parse_chapters(text: str) -> list[int]:
    """``"3"``, ``"00,03"`` or ``"0-4"`` -> chapter numbers."""
    chapters = []
    for part in text.replace(" ", "").split(","):
        first, _, last = part.partition("-")
        if not first.isdigit() or (last and not last.isdigit()):
            raise ValueError(f"CHAPTER={text!r}: give numbers like 3, 0,3 or 0-4.")
        chapters += list(range(int(first), int(last or first) + 1))
    return chapters


def _load(path: Path, name: str) -> ModuleType:
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: this copy of the course lacks it.")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_checks(exercise_set: ExerciseSet) -> CheckSet:
    """The checks of a set, in source order, with their declarations."""
    module = _load(exercise_set.checks_path, f"_checks_{exercise_set.stem}")
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
                    bool(getattr(module, "ALLOW_CLASSES", False)))


def checks_of(exercise_set: ExerciseSet) -> list[tuple[str, Callable[[ModuleType], None]]]:
    """The ``(exercise name, check function)`` pairs of a set, in source order."""
    return [(c.name, c.run) for c in load_checks(exercise_set).checks]


class TimeLimit(BaseException):  # noqa: N818  (BaseException: `except Exception` won't eat it)
    """Raised in the main thread when an exercise runs past its time limit."""


def _alarm(seconds: float | None):
    if not seconds:
        return None

    def ring(signum, frame):
        raise TimeLimit(f"did not finish within {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    return previous


def _disarm(previous) -> None:
    if previous is not None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _explain(error: BaseException, answers_path: Path) -> tuple[str, str]:
    """(status, message) for an exception raised while checking an exercise."""
    if isinstance(error, TimeLimit):
        return "timed out", f"{error}: is there an endless loop?"
    frames = [f for f in traceback.extract_tb(error.__traceback__)
              if Path(f.filename).resolve() == answers_path.resolve()]
    if frames:
        if isinstance(error, NotImplementedError):
            return "not done", f"not done yet ({error})" if str(error) else "not done yet"
        where = f" at {answers_path.name} line {frames[-1].lineno}"
        if isinstance(error, SystemExit):
            return "failed", f"your code called exit(){where}: return a value instead"
        return "failed", f"your code raised {type(error).__name__}{where}: {error}"
    if isinstance(error, AssertionError):
        return "failed", str(error) or "a check failed"
    if isinstance(error, NotImplementedError):  # raised by a library call, not by a stub
        return "failed", f"your answer led to NotImplementedError: {error}"
    return "check error", (f"the check itself failed ({type(error).__name__}: {error}); this "
                           "is a fault of the check or an answer it did not expect, not "
                           "counted as yours: tell your instructor")


def _result(check: Check, status: str, message: str = "", stem: str = "") -> Result:
    passed = status == "passed"
    return Result(check.name, passed, message, status, check.points if passed else 0.0,
                  check.points, stem)


def run_set(exercise_set: ExerciseSet, answers_path: Path | None = None,
            solutions: bool = False, only: Iterable[str] | None = None,
            time_limit: float | None = None,
            on_start: Callable[[str], None] | None = None,
            on_result: Callable[[Result], None] | None = None,
            check_set: CheckSet | None = None) -> list[Result]:
    """Run the checks of a set against an answer file (the stubs unless told otherwise).

    This runs the answers in this process: :func:`report` and :mod:`exercises.grade` call it
    in a child process. ``only``: the exercises to run (default all); ``time_limit``: seconds
    per exercise (SIGALRM, main thread only); ``on_start(name)`` is called before the file is
    imported (name ``"<import>"``) and before each check; ``on_result`` after each.
    """
    path = Path(answers_path) if answers_path else exercise_set.answers_path(solutions)
    check_set = check_set or load_checks(exercise_set)  # loaded before any answer runs
    wanted = set(only) if only is not None else None
    checks = [c for c in check_set.checks if wanted is None or c.name in wanted]
    results = []

    def finish(result: Result) -> None:
        results.append(result)
        if on_result:
            on_result(result)

    def fail_all(status: str, message: str) -> list[Result]:
        for check in checks:
            finish(_result(check, status, message, exercise_set.stem))
        return results

    if not path.exists():
        return fail_all("failed", f"{path.name} is missing from the submission")
    try:
        tree = rules.parse(path.read_text(encoding="utf-8", errors="replace"), str(path))
    except SyntaxError as error:
        return fail_all("failed", f"could not read {path.name}: {error.msg} at line "
                                  f"{error.lineno}")
    problems = rules.file_problems(tree, check_set.allowed_imports, check_set.allow_classes)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        return fail_all("not allowed", f"{path.name} was not run: {problems[0]}{more}")
    if on_start:
        on_start("<import>")
    previous = _alarm(time_limit)
    try:
        answers = _load(path, f"_answers_{exercise_set.stem}")
    except (KeyboardInterrupt, TimeLimit) as error:
        _disarm(previous)
        if isinstance(error, KeyboardInterrupt):
            raise
        return fail_all("timed out", f"importing {path.name} {error}")
    except BaseException as error:  # noqa: BLE001  (exit() or anything else at import)
        _disarm(previous)
        return fail_all("failed", f"could not import {path.name}: {type(error).__name__}: "
                                  f"{error}")
    _disarm(previous)
    for check in checks:
        if on_start:
            on_start(check.name)
        if not callable(getattr(answers, check.function, None)):
            finish(_result(check, "failed", f"{path.name} has no function {check.function} "
                                            "(keep the stub's name)", exercise_set.stem))
            continue
        broken = [p for p in (r.problem(tree, check.function) for r in check.forbid) if p]
        if broken:
            finish(_result(check, "not allowed", broken[0], exercise_set.stem))
            continue
        previous = _alarm(time_limit)
        try:
            check.run(answers)
        except KeyboardInterrupt:
            raise
        except BaseException as error:  # noqa: BLE001  (SystemExit from the answer too)
            _disarm(previous)
            finish(_result(check, *_explain(error, path), exercise_set.stem))
        else:
            _disarm(previous)
            finish(_result(check, "passed", "", exercise_set.stem))
    return results


def exercise_table(chapter: int) -> list[dict]:
    """One row per exercise of a chapter: its number, function, points, what it must not use
    (for the book page's table, made from the checks' own declarations)."""
    (exercise_set,) = exercise_sets(chapter)
    return [{"exercise": f"{chapter}.{i}", "function": check.function, "points": check.points,
             "must not use": ", ".join(rule.name for rule in check.forbid) or "-"}
            for i, check in enumerate(load_checks(exercise_set).checks, 1)]


def result_line(result: Result, width: int = WIDTH) -> str:
    """``  PASS  name (1/1)`` or a FAIL line wrapped to ``width`` with a hanging indent."""
    score = f"{result.points:g}/{result.max_points:g}"
    if result.passed:
        return f"  PASS  {result.exercise} ({score})"
    text = f"  FAIL  {result.exercise} ({score}): {result.message}"
    return textwrap.fill(text, width=width, subsequent_indent=" " * 8,
                         break_long_words=True, break_on_hyphens=False)


def report(chapter: int | Iterable[int] | None = None, solutions: bool = False,
           time_limit: float = 60.0, as_json: bool = False) -> bool:
    """Check the answers (in a child process), print a line per exercise (or, with
    ``as_json``, one JSON list), and return True when every check ran and passed."""
    from exercises.runner import run_isolated

    sets = exercise_sets(chapter)
    jobs = {s.stem: s.answers_path(solutions) for s in sets}
    results = run_isolated(jobs, time_limit=time_limit)
    if as_json:
        rows = [{"set": stem, "exercise": r.exercise, "status": r.status, "points": r.points,
                 "max_points": r.max_points, "message": r.message}
                for stem, rs in results.items() for r in rs]
        print(json.dumps(rows, indent=1))
        return all(r["status"] == "passed" for r in rows) and bool(rows)
    counts = {"passed": 0, "failed": 0}
    points = [0.0, 0.0]
    for exercise_set in sets:
        shown = jobs[exercise_set.stem].relative_to(COURSE_ROOT)
        print(f"Chapter {exercise_set.chapter:02d}, {exercise_set.topic} ({shown})")
        for result in results[exercise_set.stem]:
            counts["passed" if result.passed else "failed"] += 1
            points[0] += result.points
            points[1] += result.max_points
            print(result_line(result))
    print(f"exercises: {counts['passed']} passed, {counts['failed']} failed; "
          f"points: {points[0]:g}/{points[1]:g}")
    return counts["failed"] == 0 and counts["passed"] > 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chapter", type=parse_chapters,
                        help="check these chapters' sets only: 3, 0,3 or 0-4")
    parser.add_argument("--solutions", action="store_true",
                        help="check the reference solutions instead of the stubs")
    parser.add_argument("--time-limit", type=float, default=60.0,
                        help="seconds each exercise may take (default 60)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    try:
        return 0 if report(args.chapter, args.solutions, args.time_limit, args.json) else 1
    except (ValueError, FileNotFoundError) as error:
        print(error, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
