"""Run answer files against their checks: here, or in a child process no answer can fool.

:func:`run_set` runs one set's checks in this process: the house rules of
:mod:`exercises.rules` first, then the answer file's import and each check under a time
limit, sorting the blame between the answer and the check. It is what the child runs, and
what the tests call directly.

:func:`run_isolated` runs sets in a child process, so no answer can pass by ending, hanging
or patching. It starts ``python -I`` in an empty temporary folder, with only this course's
root on ``sys.path`` (put there by the child's first line, ``_BOOT``): the checks and the
runner that run are always the ones beside this file, never copies shipped with a
submission. The child loads every
check first, then imports each answer file (after its syntax-tree checks) and runs the
checks one by one, reporting each start and result on a private copy of stdout, each line
prefixed with a random token the parent sent on stdin; the answers' own ``print`` goes to
stderr. Whatever an answer does, the parent decides:

- an exercise without a result line failed: "timed out" when the child was silent for
  longer than the time limit (then it is killed), "crashed" when it ended (``os._exit``, a
  segfault, ``exit()`` at import);
- the child is then restarted for the exercises not yet run, so one hang costs one exercise.

The child also limits itself (before any answer runs) to 8 GiB of address space, 16 MiB per
written file (its printed output goes to a temporary file) and no core dumps.
"""

from __future__ import annotations

import json
import os
import queue
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path

from exercises import rules
from exercises.model import (
    COURSE_ROOT,
    Check,
    CheckSet,
    ExerciseSet,
    Result,
    exercise_set_named,
    load_checks,
    load_file,
)

# The child's first line: it is started with ``python -I`` (no PYTHONPATH, no working
# folder on sys.path), so it puts the course root, its argv[1], on its own path here.
_BOOT = ("import sys; sys.path.insert(0, sys.argv[1]); "
         "from exercises.runner import child_main; child_main()")
STARTUP_LIMIT = 180.0  # seconds for the child to import torch, sympy and the checks
GRACE = 3.0            # seconds past the child's own alarm before the parent kills it
MEMORY_LIMIT = 8 << 30  # bytes of address space for the child (a memory bomb fails there)
FILE_LIMIT = 16 << 20   # bytes any file the child writes may reach (its printed output too)


# --- in this process ----------------------------------------------------------------------

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

    This runs the answers in this process: :func:`run_isolated` runs it in a child
    process. ``only``: the exercises to run (default all); ``time_limit``: seconds
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
        answers = load_file(path, f"_answers_{exercise_set.stem}")
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


# --- in a child process -------------------------------------------------------------------

class CheckLoadError(RuntimeError):
    """The instructor's checks could not be loaded: nothing was graded."""


def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "COOC_SCALE")}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONHASHSEED="0",
               PYTHONDONTWRITEBYTECODE="1")
    env.setdefault("COOC_SCALE", "smoke")
    return env


def _reader(stream, sink: queue.Queue) -> None:
    for line in stream:
        sink.put(line)
    sink.put(None)


def run_isolated(jobs: dict[str, Path], time_limit: float = 60.0,
                 python: str = sys.executable, checks_dir: Path | None = None) -> dict[str, list]:
    """Check answer files in child processes: ``{set stem: answers path}`` ->
    ``{set stem: [Result, ...]}`` in check order, one result for every exercise.

    ``checks_dir``: where the check files are (default: this course's exercises/checks/).
    """
    loaded = {stem: load_set(stem, checks_dir) for stem in jobs}
    order = {stem: [c.name for c in loaded[stem].checks] for stem in jobs}
    pending = [(stem, name) for stem in jobs for name in order[stem]]
    maxima = {(stem, c.name): c.points for stem in jobs for c in loaded[stem].checks}
    done: dict[tuple[str, str], Result] = {}
    while pending:
        finished, current, why = _one_child(jobs, pending, time_limit, python, done,
                                            checks_dir)
        if finished:
            break
        stem, name = current
        status, message = why
        hit = [(s, n) for s, n in pending if s == stem] if name == "<import>" else [current]
        if name == "<import>":
            message = f"importing {Path(jobs[stem]).name}: {message}"
        for s, n in hit:
            done[(s, n)] = Result(n, False, message, status, 0.0, maxima[(s, n)], s)
        pending = [p for p in pending if p not in done]
    for s, n in pending:  # a child that said "done" too early: never a pass
        done.setdefault((s, n), Result(n, False, "the check gave no result",
                                                "check error", 0.0, maxima[(s, n)], s))
    return {stem: [done[(stem, name)] for name in order[stem]] for stem in jobs}


def load_set(stem: str, checks_dir: str | Path | None = None) -> CheckSet:
    """The checks of the set named ``stem`` (``ex03_losses``)."""
    return load_checks(exercise_set_named(stem, checks_dir))


def _one_child(jobs, pending, time_limit, python, done, checks_dir):
    """Run one child over ``pending``; return (finished, current exercise, (status, why))."""
    token = secrets.token_hex(16)
    sets = {}
    for stem, name in pending:
        sets.setdefault(stem, []).append(name)
    job = {"token": token, "time_limit": time_limit,
           "checks_dir": str(checks_dir) if checks_dir else None,
           "sets": [{"stem": s, "answers": str(Path(jobs[s]).resolve()), "exercises": names}
                    for s, names in sets.items()]}
    with tempfile.TemporaryDirectory(prefix="cooc-check-") as scratch, \
            tempfile.TemporaryFile() as errors:
        child = subprocess.Popen([python, "-I", "-c", _BOOT, str(COURSE_ROOT)], cwd=scratch,
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors,
                                 env=_child_env(), text=True, start_new_session=True)
        child.stdin.write(json.dumps(job) + "\n")
        child.stdin.close()
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=_reader, args=(child.stdout, lines), daemon=True).start()
        deadline, current, ended = time.monotonic() + STARTUP_LIMIT, None, "timeout"
        ready = False
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                ended = "exit"
                break
            prefix, _, payload = line.partition(" ")
            if prefix != token:
                continue
            event = json.loads(payload)
            kind = event["event"]
            if kind == "load-error":
                _stop(child)
                raise CheckLoadError(event["message"])
            if kind == "done":
                ended = "done"
                break
            deadline = time.monotonic() + time_limit + GRACE
            ready = True
            if kind == "start":
                current = (event["stem"], event["exercise"])
            elif kind == "result":
                result = Result(**event["result"])
                done[(event["stem"], result.exercise)] = result
                current = None
        _stop(child)
        if ended == "done":
            return True, None, None
        errors.seek(0)
        tail = errors.read()[-2000:].decode(errors="replace")
        if not ready:
            raise CheckLoadError(f"the checker's child process stopped before checking "
                                 f"anything (exit code {child.returncode}): {tail}")
        if current is None:  # ended between two exercises: blame the next one
            current = next(p for p in pending if p not in done)
        if ended == "timeout":
            return False, current, ("timed out", f"did not finish within {time_limit:g} s: "
                                                 "is there an endless loop?")
        code = child.returncode
        how = f"signal {-code}" if code < 0 else f"exit code {code}"
        return False, current, ("crashed", f"the process ended during this check ({how}): "
                                           "did your code call os._exit() or crash Python?")


def _stop(child: subprocess.Popen) -> None:
    if child.poll() is None:
        try:
            os.killpg(child.pid, 9)
        except ProcessLookupError:
            pass
    child.wait()


def child_main() -> None:
    """The child's side: read the job from stdin, check, report on a private stdout."""
    import resource

    job = json.loads(sys.stdin.readline())
    token = job["token"]
    for limit, value in ((resource.RLIMIT_AS, MEMORY_LIMIT), (resource.RLIMIT_FSIZE, FILE_LIMIT),
                         (resource.RLIMIT_CORE, 0)):
        soft, hard = resource.getrlimit(limit)
        wanted = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(limit, (wanted, hard))
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # from here on, fd 1 (the answers' print) is stderr

    def emit(**event) -> None:
        out.write(f"{token} {json.dumps(event)}\n")
        out.flush()

    try:
        loaded = {item["stem"]: load_set(item["stem"], job["checks_dir"])
                  for item in job["sets"]}
    except Exception as error:  # noqa: BLE001  (the instructor's files: report and stop)
        emit(event="load-error", message=f"{type(error).__name__}: {error}")
        return
    emit(event="ready")
    for item in job["sets"]:
        stem = item["stem"]

        def on_start(name, stem=stem):
            emit(event="start", stem=stem, exercise=name)

        def on_result(result, stem=stem):
            emit(event="result", stem=stem, result=asdict(result))

        run_set(loaded[stem].exercise_set, answers_path=Path(item["answers"]),
                        only=item["exercises"], time_limit=job["time_limit"],
                        on_start=on_start, on_result=on_result, check_set=loaded[stem])
    emit(event="done")
    out.close()
