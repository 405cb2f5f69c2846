"""Check exercise answers and report, per exercise, a pass or a helpful failure.

Students run ``make check-exercises`` or ``make check-exercises CHAPTER=03``;
the same from Python: ``python -m exercises.checker --chapter 3``.

For chapter NN on topic T there are three files, found by name:

- ``exercises/exNN_T.py``: the stubs a student edits;
- ``exercises/solutions/exNN_T.py``: the reference answers (absent from a student copy);
- ``exercises/checks/exNN_T.py``: one ``check_<name>(answers)`` function per exercise,
  in the order the exercises are meant to be done. Each receives the answer module
  and raises ``AssertionError`` with a message that helps the student.

Everything is found by path, so this module also imports as plain ``checker``
from a notebook that sits beside it.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import re
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

EXERCISES_DIR = Path(__file__).resolve().parent
SET_PATTERN = re.compile(r"^ex(\d\d)_(\w+)\.py$")


@dataclass(frozen=True)
class ExerciseSet:
    chapter: int
    topic: str

    @property
    def stem(self) -> str:
        return f"ex{self.chapter:02d}_{self.topic}"

    def answers_path(self, solutions: bool = False) -> Path:
        folder = EXERCISES_DIR / "solutions" if solutions else EXERCISES_DIR
        return folder / f"{self.stem}.py"

    @property
    def checks_path(self) -> Path:
        return EXERCISES_DIR / "checks" / f"{self.stem}.py"


@dataclass(frozen=True)
class Result:
    exercise: str
    passed: bool
    message: str = ""


def exercise_sets(chapter: int | None = None) -> list[ExerciseSet]:
    """Every exercise set that has checks, in chapter order (one chapter if given)."""
    found = []
    for path in sorted((EXERCISES_DIR / "checks").glob("ex*.py")):
        match = SET_PATTERN.match(path.name)
        if match:
            found.append(ExerciseSet(int(match.group(1)), match.group(2)))
    if chapter is not None:
        found = [s for s in found if s.chapter == chapter]
        if not found:
            known = ", ".join(f"{s.chapter:02d}" for s in exercise_sets()) or "none"
            raise ValueError(f"There are no exercises for chapter {chapter:02d}; chapters with "
                             f"exercises: {known}.")
    return found


def _load(path: Path, name: str) -> ModuleType:
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: this copy of the course lacks it.")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def checks_of(exercise_set: ExerciseSet) -> list[tuple[str, Callable[[ModuleType], None]]]:
    """The ``(exercise name, check function)`` pairs of a set, in source order."""
    module = _load(exercise_set.checks_path, f"_checks_{exercise_set.stem}")
    functions = [
        (name.removeprefix("check_"), fn)
        for name, fn in vars(module).items()
        if name.startswith("check_") and inspect.isfunction(fn) and fn.__module__ == module.__name__
    ]
    return sorted(functions, key=lambda pair: pair[1].__code__.co_firstlineno)


def _explain(error: BaseException, answers_path: Path) -> str:
    if isinstance(error, NotImplementedError):
        return f"not done yet ({error})" if str(error) else "not done yet"
    if isinstance(error, AssertionError):
        return str(error) or "a check failed"
    frames = [f for f in traceback.extract_tb(error.__traceback__)
              if f.filename == str(answers_path)]
    where = f" at {answers_path.name} line {frames[-1].lineno}" if frames else ""
    return f"your code raised {type(error).__name__}{where}: {error}"


def run_set(exercise_set: ExerciseSet, answers_path: Path | None = None,
            solutions: bool = False) -> list[Result]:
    """Run every check of a set against an answer file (the stubs unless told otherwise)."""
    path = Path(answers_path) if answers_path else exercise_set.answers_path(solutions)
    try:
        answers = _load(path, f"_answers_{exercise_set.stem}")
    except Exception as error:  # a syntax error in the student's file fails every exercise
        return [Result(name, False, f"could not import {path.name}: {error}")
                for name, _ in checks_of(exercise_set)]
    results = []
    for name, check in checks_of(exercise_set):
        try:
            check(answers)
        except Exception as error:
            results.append(Result(name, False, _explain(error, path)))
        else:
            results.append(Result(name, True))
    return results


def report(chapter: int | None = None, solutions: bool = False) -> bool:
    """Print a pass/fail line per exercise; return True when all pass."""
    all_passed, counts = True, [0, 0]
    for exercise_set in exercise_sets(chapter):
        path = exercise_set.answers_path(solutions)
        shown = path.relative_to(EXERCISES_DIR.parent)
        print(f"Chapter {exercise_set.chapter:02d}, {exercise_set.topic} ({shown})")
        for result in run_set(exercise_set, solutions=solutions):
            counts[0 if result.passed else 1] += 1
            all_passed &= result.passed
            if result.passed:
                print(f"  PASS  {result.exercise}")
            else:
                print(f"  FAIL  {result.exercise}: {result.message}")
    print(f"exercises: {counts[0]} passed, {counts[1]} failed")
    return all_passed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chapter", type=int, help="check one chapter's set only, e.g. 3")
    parser.add_argument("--solutions", action="store_true",
                        help="check the reference solutions instead of the stubs")
    args = parser.parse_args(argv)
    try:
        return 0 if report(args.chapter, args.solutions) else 1
    except (ValueError, FileNotFoundError) as error:
        print(error, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
