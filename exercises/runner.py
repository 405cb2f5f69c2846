"""Run answer files in a child process, so no answer can pass by ending, hanging or patching.

The parent (:func:`run_isolated`) starts ``python -I`` in an empty temporary folder, with
only this course's root on ``sys.path``: the checks and the checker that run are always the
ones beside this file, never copies shipped with a submission. The child loads every
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
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict
from pathlib import Path

COURSE_ROOT = Path(__file__).resolve().parent.parent
_BOOT = ("import sys; sys.path.insert(0, sys.argv[1]); "
         "from exercises.runner import child_main; child_main()")
STARTUP_LIMIT = 180.0  # seconds for the child to import torch, sympy and the checks
GRACE = 3.0            # seconds past the child's own alarm before the parent kills it
MEMORY_LIMIT = 8 << 30  # bytes of address space for the child (a memory bomb fails there)
FILE_LIMIT = 16 << 20   # bytes any file the child writes may reach (its printed output too)


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
    from exercises import checker

    loaded = {stem: load_set(stem, checks_dir) for stem in jobs}
    order = {stem: [c.name for c in loaded[stem].checks] for stem in jobs}
    pending = [(stem, name) for stem in jobs for name in order[stem]]
    maxima = {(stem, c.name): c.points for stem in jobs for c in loaded[stem].checks}
    done: dict[tuple[str, str], checker.Result] = {}
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
            done[(s, n)] = checker.Result(n, False, message, status, 0.0, maxima[(s, n)], s)
        pending = [p for p in pending if p not in done]
    for s, n in pending:  # a child that said "done" too early: never a pass
        done.setdefault((s, n), checker.Result(n, False, "the check gave no result",
                                                "check error", 0.0, maxima[(s, n)], s))
    return {stem: [done[(stem, name)] for name in order[stem]] for stem in jobs}


def load_set(stem: str, checks_dir: str | Path | None = None):
    """The checks of the set named ``stem`` (``ex03_losses``)."""
    from exercises import checker

    match = checker.SET_PATTERN.match(f"{stem}.py")
    if match is None:
        raise ValueError(f"{stem!r} is not the name of an exercise set (exNN_topic).")
    folder = Path(checks_dir) if checks_dir else None
    return checker.load_checks(checker.ExerciseSet(int(match.group(1)), match.group(2), folder))


def _one_child(jobs, pending, time_limit, python, done, checks_dir):
    """Run one child over ``pending``; return (finished, current exercise, (status, why))."""
    from exercises import checker

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
                result = checker.Result(**event["result"])
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

    from exercises import checker

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

        checker.run_set(loaded[stem].exercise_set, answers_path=Path(item["answers"]),
                        only=item["exercises"], time_limit=job["time_limit"],
                        on_start=on_start, on_result=on_result, check_set=loaded[stem])
    emit(event="done")
    out.close()
