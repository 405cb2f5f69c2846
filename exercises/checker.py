"""Check exercise answers and report, per exercise, a pass or a failure that teaches.

Students run ``make check-exercises`` or ``make check-exercises CHAPTER=03``, the same as
``python -m exercises.checker --chapter 3``; a notebook beside this file does
``from exercises.checker import report; report(chapter=3)``. The checks run in this process and
the answers in a separate one (inside bubblewrap when it is installed), with a time limit
(:mod:`exercises.runner`), so an endless loop, ``exit()`` or a crash fails that exercise
with its reason and never passes; the grader (:mod:`exercises.grade`) runs the same checks
the same way. The exit code is 0 only when
every check ran and passed (1 otherwise, 2 for a bad command line).

This module is the students' front: :func:`report`, :func:`exercise_table` and the command.
The sets, checks and results as data are in :mod:`exercises.model`; running the checks, in
this process or in a child, is :mod:`exercises.runner`.

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
import json
import sys
from collections.abc import Iterable
from pathlib import Path

from exercises.model import (
    COURSE_ROOT,
    EXERCISES_DIR,
    ExerciseSet,
    check_time_limit,
    exercise_sets,
    load_checks,
    option_type,
    parse_chapters,
    parse_time_limit,
    result_line,
)
from exercises.runner import run_isolated  # noqa: E402


def exercise_table(chapter: int) -> list[dict]:
    """One row per exercise of a chapter: its number, function, points, what it must not use
    (for the book page's table, made from the checks' own declarations)."""
    (exercise_set,) = exercise_sets(chapter)
    return [{"exercise": f"{chapter}.{i}", "function": check.function, "points": check.points,
             "must not use": ", ".join(rule.name for rule in check.forbid) or "-"}
            for i, check in enumerate(load_checks(exercise_set).checks, 1)]


def answer_files(sets: list[ExerciseSet], solutions: bool = False) -> dict:
    """``{set stem: answer file}``, or a FileNotFoundError when this copy of the course lacks
    one: the runner would blame a submission, and here there is none, only this copy."""
    jobs = {s.stem: s.answers_path(solutions) for s in sets}
    folder = EXERCISES_DIR / "solutions"
    if solutions and not folder.is_dir():
        raise FileNotFoundError(f"This copy of the course has no {_in_course(folder)}/ folder, so "
                                "--solutions has nothing to check: the reference answers are "
                                "only in the instructors' copy.")
    missing = [_in_course(path) for path in jobs.values() if not path.is_file()]
    if missing:
        raise FileNotFoundError(f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} "
                                "missing from this copy of the course: restore it from the "
                                f"course (for instance git checkout -- {missing[0]}) and check "
                                "again.")
    return jobs


def _in_course(path: Path) -> str:
    """``path`` relative to the course's root when it lies inside it, as a student types it."""
    return str(path.relative_to(COURSE_ROOT) if path.is_relative_to(COURSE_ROOT) else path)


def report(chapter: int | Iterable[int] | None = None, solutions: bool = False,
           time_limit: float = 60.0, as_json: bool = False) -> bool:
    """Check the answers (in a child process), print a line per exercise (or, with
    ``as_json``, one JSON list), and return True when every check ran and passed."""
    check_time_limit(time_limit)
    sets = exercise_sets(chapter)
    jobs = answer_files(sets, solutions)
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
    parser.add_argument("--chapter", type=option_type(parse_chapters),
                        help="check these chapters' sets only: 3, 0,3 or 0-4")
    parser.add_argument("--solutions", action="store_true",
                        help="check the reference solutions instead of the stubs")
    parser.add_argument("--time-limit", type=option_type(parse_time_limit), default=60.0,
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
