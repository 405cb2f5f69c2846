"""Run answer files against their checks: here, or with the answers alone in a sandbox.

:func:`run_set` runs one set's checks and its answers in this process: the house rules of
:mod:`exercises.rules` first, then the answer file's import and each check under a time
limit, sorting the blame between the answer and the check. The tests call it directly.

:func:`run_isolated` is what the checker and the grader use. The checks run here, in the
trusted process; only the answers run in a child process (:mod:`exercises.answer_host`,
inside bubblewrap when :mod:`exercises.sandbox` provides it). A check's
``answers.f(x)`` sends ``x`` to the child as plain data (:mod:`exercises.wire`), the child
calls the student's ``f`` and sends back the value as data, which the check compares here
with its own reference. So the same check file serves both paths, and nothing the child
does (patching torch, a fake tensor class, a forged reply, an exit) can make a check pass:
a score is computed here, from data, and capped at the check's declared points.

What travels back besides the value: the gradient of a scalar value with respect to the
arguments that require one (rebuilt here as an autograd node, for ``agree``), the tensor
arguments the answer changed in place (copied onto the check's tensors, for
``unchanged_call``), an error as a builtin exception of the same kind with its sentence (so
a check may catch the ``ValueError`` it asks for), and calls the answer makes to a function
the check handed it (run here, on the data the answer passed). Every text from the child is
cut to :data:`exercises.wire.MAX_TEXT` characters, every reply line to
:data:`MAX_REPLY_BYTES`.

Time: each exercise has ``time_limit`` seconds of the child's time. The child stops an
answer at its limit by itself ("timed out"); one that hangs inside C code, exits or crashes
is killed with its whole process group (and, inside bubblewrap, its namespaces) and the
child restarted for the next exercise: "timed out" or "crashed", never a pass.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path

from exercises import rules, sandbox, wire
from exercises.model import (
    Check,
    CheckSet,
    ExerciseSet,
    Result,
    exercise_set_named,
    load_checks,
    load_file,
)

STARTUP_LIMIT = 180.0  # seconds for the child to start and import torch, sympy and numpy
GRACE = 3.0            # seconds past the child's own alarm before the parent kills it
MAX_REPLY_BYTES = 32 << 20  # one reply line from the child, at most


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
    return Result(check.name, passed, wire.clip(message), status,
                  check.points if passed else 0.0, check.points, stem)


def run_set(exercise_set: ExerciseSet, answers_path: Path | None = None,
            solutions: bool = False, only: Iterable[str] | None = None,
            time_limit: float | None = None,
            on_start: Callable[[str], None] | None = None,
            on_result: Callable[[Result], None] | None = None,
            check_set: CheckSet | None = None) -> list[Result]:
    """Run the checks of a set against an answer file (the stubs unless told otherwise).

    This runs the answers in this process: :func:`run_isolated` runs them in a child
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
    problems = (rules.file_problems(tree, check_set.allowed_imports, check_set.allow_classes)
                if check_set.house_rules else [])
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


# --- the answers in a child, the checks here --------------------------------------------

class CheckLoadError(RuntimeError):
    """The instructor's checks, or the process for the answers, could not be loaded."""


class AnswerAbort(BaseException):  # noqa: N818  (BaseException: a check's except won't eat it)
    """The answer's process timed out, crashed, exited or sent nonsense: the exercise ends."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, wire.clip(message)


def load_set(stem: str, checks_dir: str | Path | None = None) -> CheckSet:
    """The checks of the set named ``stem`` (``ex03_losses``)."""
    return load_checks(exercise_set_named(stem, checks_dir))


_TOO_LONG = object()


def _reader(stream, sink: queue.Queue, stop: threading.Event) -> None:
    """Lines from the child, each at most MAX_REPLY_BYTES (a longer one becomes _TOO_LONG)."""
    def put(item) -> bool:
        while not stop.is_set():
            try:
                sink.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    buffer, skipping = bytearray(), False
    try:
        while True:
            chunk = stream.read1(1 << 16)
            if not chunk:
                break
            start = 0
            while True:
                end = chunk.find(b"\n", start)
                piece = chunk[start:] if end < 0 else chunk[start:end]
                if not skipping:
                    buffer += piece
                    if len(buffer) > MAX_REPLY_BYTES:
                        buffer.clear()
                        skipping = True
                        if not put(_TOO_LONG):
                            return
                if end < 0:
                    break
                if not skipping and not put(bytes(buffer)):
                    return
                buffer.clear()
                skipping = False
                start = end + 1
    except (OSError, ValueError):
        pass
    put(None)


class Session:
    """One child process for a student's answers, started on demand and after a crash.

    ``load(key, path)`` imports an answer file in it; ``call(...)`` runs one function;
    ``close()`` kills the child's process group. Use as a context manager.
    """

    def __init__(self, scratch: Path, box: sandbox.Sandbox, python: str = sys.executable,
                 cpu_seconds: float | None = None) -> None:
        self.scratch, self.box, self.python = Path(scratch), box, python
        self.cpu_seconds = cpu_seconds
        self.child: subprocess.Popen | None = None
        self.generation = 0
        self.loaded: dict[str, list[str]] = {}
        sandbox.prepare(self.scratch)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def answers_path(self, name: str) -> Path:
        return self.scratch / "answers" / name

    # -- the process --
    def _start(self) -> None:
        argv, cwd = sandbox.command(self.box, self.python, self.scratch)
        self.errors = tempfile.TemporaryFile()
        self.child = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=self.errors,
                                      env=sandbox.child_env(), start_new_session=True)
        self.stop_reading = threading.Event()
        self.lines: queue.Queue = queue.Queue(maxsize=8)
        threading.Thread(target=_reader, args=(self.child.stdout, self.lines,
                                               self.stop_reading), daemon=True).start()
        self.generation += 1
        self.loaded = {}
        limits = dict(sandbox.LIMITS)
        if self.cpu_seconds:
            limits["RLIMIT_CPU"] = int(self.cpu_seconds)
        self._send({"limits": limits}, STARTUP_LIMIT)
        try:
            reply = self._receive(time.monotonic() + STARTUP_LIMIT, ("ready",))
        except AnswerAbort as error:
            self.close()
            raise CheckLoadError(f"the process that runs the answers could not start "
                                 f"({error.message}): {self._stderr_tail()}") from None
        if reply.get("op") != "ready":
            self.close()
            raise CheckLoadError("the process that runs the answers did not start properly")

    def _stderr_tail(self) -> str:
        try:
            self.errors.seek(0, os.SEEK_END)
            size = self.errors.tell()
            self.errors.seek(max(0, size - wire.MAX_TEXT))
            return self.errors.read().decode(errors="replace").strip()
        except (OSError, ValueError):
            return ""

    def close(self) -> None:
        """Kill the child's process group (and so, inside bubblewrap, its namespaces)."""
        child, self.child = self.child, None
        if child is None:
            return
        self.stop_reading.set()
        try:
            os.killpg(child.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        child.wait()
        for stream in (child.stdin, child.stdout):
            try:
                stream.close()
            except OSError:
                pass
        self.errors.close()

    def _ended(self, importing: str = "") -> AnswerAbort:
        child = self.child
        try:
            code = child.wait(timeout=5) if child else None
        except subprocess.TimeoutExpired:
            code = None
        self.close()
        how = ("killed" if code is None else f"signal {-code}" if code < 0
               else f"exit code {code}")
        return AnswerAbort("crashed", f"{importing}the process ended during this check "
                                      f"({how}): did your code call os._exit() or crash "
                                      "Python?")

    def _send(self, message: dict, timeout: float) -> None:
        data = (json.dumps(message) + "\n").encode()
        failed: list[BaseException] = []

        def write() -> None:
            try:
                self.child.stdin.write(data)
                self.child.stdin.flush()
            except (OSError, ValueError) as error:
                failed.append(error)

        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        writer.join(timeout)
        if writer.is_alive() or failed:
            raise self._ended()

    def _receive(self, deadline: float, expected: tuple[str, ...] = ()) -> dict:
        try:
            line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            self.close()
            raise AnswerAbort("timed out", "") from None
        if line is None:
            raise self._ended()
        if line is _TOO_LONG:
            self.close()
            raise AnswerAbort("failed", f"your answer sent back more than "
                                        f"{MAX_REPLY_BYTES >> 20} MB of data")
        try:
            reply = json.loads(line)
        except (ValueError, RecursionError):
            reply = None
        if type(reply) is not dict or (expected and reply.get("op") not in expected):
            self.close()  # out of step with this process: a fresh one for what comes next
            raise AnswerAbort("failed", "the process running your answers sent something "
                                        "that is not a reply: did your code write to its "
                                        "output channel?")
        return reply

    # -- requests --
    def load(self, key: str, path: Path, time_limit: float) -> list[str]:
        """Import ``path`` as ``key`` in the child: the names of its functions."""
        if self.child is None:
            self._start()
        inside = f"{sandbox.answers_folder(self.box, self.scratch)}/{Path(path).name}"
        start = time.monotonic()
        self._send({"op": "import", "key": key, "path": inside, "time_limit": time_limit},
                   time_limit + GRACE)
        importing = f"importing {Path(path).name}: "
        try:
            reply = self._receive(start + time_limit + GRACE, ("imported", "raise"))
        except AnswerAbort as error:
            if error.status == "timed out":
                raise AnswerAbort("timed out", f"{importing}did not finish within "
                                               f"{time_limit:g} s: is there an endless "
                                               "loop?") from None
            if error.status == "crashed":
                raise AnswerAbort("crashed", importing + error.message) from None
            raise
        if reply.get("op") == "imported" and isinstance(reply.get("functions"), list):
            names = [n for n in reply["functions"] if isinstance(n, str)]
            self.loaded[key] = names
            return names
        error = reply.get("error") if isinstance(reply.get("error"), dict) else {}
        status = error.get("status") if error.get("status") in ("timed out",) else "failed"
        message = wire.clip(error.get("message", "it could not be imported"))
        if status == "timed out":
            raise AnswerAbort(status, importing + message)
        raise AnswerAbort("failed", f"could not import {Path(path).name}: {message}")

    def call(self, key: str, function: str, args: tuple, kwargs: dict, budget: Budget):
        """``function(*args, **kwargs)`` of the answers loaded as ``key``, its value rebuilt
        here from data; ``budget``: the exercise's remaining child time."""
        if budget.left <= 0:
            raise budget.exhausted()
        handles: dict[int, Callable] = {}
        try:
            message = {"op": "call", "key": key, "function": function,
                       "args": [wire.encode(a, handles) for a in args],
                       "kwargs": {str(k): wire.encode(v, handles) for k, v in kwargs.items()},
                       "time_limit": budget.left}
        except wire.WireError as error:
            raise RuntimeError(f"the check passed {function} something that cannot be sent "
                               f"as data: {error}") from None
        start = time.monotonic()
        try:
            self._send(message, budget.left + GRACE)
            while True:
                reply = self._receive(start + budget.left + GRACE,
                                      ("return", "raise", "callback"))
                if reply.get("op") != "callback":
                    break
                self._callback(reply, handles, start + budget.left + GRACE)
        except AnswerAbort as error:
            budget.spend(time.monotonic() - start)
            if error.status == "timed out":
                raise budget.exhausted() from None
            raise
        budget.spend(time.monotonic() - start)
        return _rebuild(reply, args, kwargs)

    def _callback(self, reply: dict, handles: dict, deadline: float) -> None:
        """The answer called a function the check handed it: run it here, on data."""
        try:
            target = handles[reply["handle"]]
            args = [wire.decode(a) for a in reply.get("args", [])]
            kwargs = {str(k): wire.decode(v) for k, v in reply.get("kwargs", {}).items()}
        except (KeyError, TypeError, wire.WireError, ValueError) as error:
            self.close()
            raise AnswerAbort("failed", f"your answer called the check's function with "
                                        f"something that is not data ({error})") from None
        try:
            value = target(*args, **kwargs)
            answer = {"op": "callback-return", "value": wire.encode(value)}
        except Exception as error:  # noqa: BLE001  (the answer's input made it fail)
            answer = {"op": "callback-raise",
                      "error": wire.encode_error(error, "failed", str(error))}
        self._send(answer, max(1.0, deadline - time.monotonic()))


class Budget:
    """The child time an exercise has left."""

    def __init__(self, seconds: float) -> None:
        self.limit = self.left = float(seconds)

    def spend(self, seconds: float) -> None:
        self.left -= seconds

    def exhausted(self) -> AnswerAbort:
        return AnswerAbort("timed out", f"did not finish within {self.limit:g} s: is there an "
                                        "endless loop?")


def _rebuild(reply: dict, args: tuple, kwargs: dict):
    """The value of a ``return`` reply (with its gradient and in-place changes), or the
    answer's error raised again as a builtin exception."""
    op = reply.get("op")
    if op not in ("return", "raise"):
        raise AnswerAbort("failed", "the process running your answers sent an unexpected reply")
    try:
        changed = reply.get("changed") or {}
        if type(changed) is not dict:
            raise wire.WireError("an unreadable list of changed arguments")
        for where, data in changed.items():
            _apply_change(where, wire.decode(data), args, kwargs)
        if op == "raise":
            error = reply.get("error")
            if type(error) is not dict:
                raise wire.WireError("an unreadable error")
            status = error.get("status")
            status = status if status in ("failed", "not done", "timed out") else "failed"
            message = wire.clip(error.get("message") or "your code raised an error")
            classes = error.get("classes") if isinstance(error.get("classes"), list) else []
            if "Exception" not in classes:  # exit(), the time limit: no check may catch it
                raise AnswerAbort(status, message)
            replica = wire.error_class(classes)(wire.clip(error.get("text", "")))
            replica.answer_error = (status, message)
            raise replica
        value = wire.decode(reply.get("value"))
        grads = reply.get("grads")
        data = reply.get("value")
        if type(data) is dict and data.get("t") == "tensor" and data.get("grad") is True:
            value = _with_gradient(value, grads, args, kwargs)
        return value
    except (wire.WireError, ValueError, TypeError, KeyError, IndexError,
            RecursionError) as error:
        if hasattr(error, "answer_error"):
            raise
        raise AnswerAbort("failed", f"your answer's result could not be read as data "
                                    f"({wire.clip(str(error), 200)})") from None


def _argument(where: str, args: tuple, kwargs: dict):
    if where.isdigit() and int(where) < len(args):
        return args[int(where)]
    if where in kwargs:
        return kwargs[where]
    raise wire.WireError("a change to an argument that does not exist")


def _apply_change(where: str, new, args: tuple, kwargs: dict) -> None:
    import torch

    target = _argument(where, args, kwargs)
    if not isinstance(target, torch.Tensor) or not isinstance(new, torch.Tensor):
        raise wire.WireError("a change to an argument that is not a tensor")
    with torch.no_grad():
        if target.shape == new.shape and target.dtype == new.dtype:
            target.copy_(new)
        else:
            target.data = new


def _with_gradient(value, grads, args: tuple, kwargs: dict):
    """``value`` as the output of an autograd node whose gradient is the one the child
    computed for each argument (only for a one-element value)."""
    import torch

    if not value.is_floating_point() and not value.is_complex():
        return value
    pairs = []
    if type(grads) is list:
        for item in grads:
            if type(item) is not list or len(item) != 2 or type(item[0]) is not str:
                raise wire.WireError("an unreadable gradient")
            target = _argument(item[0], args, kwargs)
            grad = None if item[1] is None else wire.decode(item[1])
            if not isinstance(target, torch.Tensor) or not target.requires_grad:
                raise wire.WireError("a gradient for an argument that needs none")
            if grad is not None and (not isinstance(grad, torch.Tensor)
                                     or grad.shape != target.shape):
                raise wire.WireError("a gradient of the wrong shape")
            pairs.append((target, grad))
    if not pairs:
        return value.detach().requires_grad_(True)
    return _Recorded.apply(value, [g for _, g in pairs], *[t for t, _ in pairs])


def _recorded_class():
    import torch

    class Recorded(torch.autograd.Function):
        """A value computed elsewhere, with the gradient recorded there."""

        @staticmethod
        def forward(ctx, value, grads, *inputs):
            ctx.grads = grads
            return value.detach().clone()

        @staticmethod
        def backward(ctx, out):
            scale = out.sum()
            return (None, None, *[None if g is None else (scale * g).to(g.dtype)
                                  for g in ctx.grads])

    return Recorded


class _LazyRecorded:
    def apply(self, *args):
        if not hasattr(self, "cls"):
            self.cls = _recorded_class()
        return self.cls.apply(*args)


_Recorded = _LazyRecorded()


class RemoteAnswers:
    """What a check calls ``answers``: attribute ``f`` runs the student's ``f`` remotely."""

    def __init__(self, session: Session, key: str, path: Path, functions: list[str],
                 budget: Budget, import_limit: float) -> None:
        self._session, self._key, self._path = session, key, path
        self._functions, self._budget = functions, budget
        self._import_limit = import_limit
        self._generation = session.generation

    def __getattr__(self, name: str):
        if name.startswith("_") or name not in self._functions:
            raise AttributeError(f"{self._path.name} has no function {name}")

        def remote(*args, **kwargs):
            session = self._session
            if session.child is None or session.generation != self._generation:
                session.load(self._key, self._path, self._import_limit)
                self._generation = session.generation
            return session.call(self._key, name, args, kwargs, self._budget)

        remote.__name__ = remote.__qualname__ = name
        return remote


def _explain_remote(error: BaseException) -> tuple[str, str]:
    if isinstance(error, AnswerAbort):
        return error.status, error.message
    if hasattr(error, "answer_error"):
        return error.answer_error
    if isinstance(error, AssertionError):
        return "failed", wire.clip(str(error)) or "a check failed"
    return "check error", (f"the check itself failed ({type(error).__name__}: "
                           f"{wire.clip(str(error), 500)}); this is a fault of the check or an "
                           "answer it did not expect, not counted as yours: tell your "
                           "instructor")


def check_remotely(check_set: CheckSet, path: Path | None, session: Session,
                   time_limit: float, only: Iterable[str] | None = None,
                   problem: str | None = None) -> list[Result]:
    """The results of one set: rules and checks here, the answers in ``session``.

    ``path``: the private copy of the answer file (None: missing); ``problem``: a sentence
    that says why the file cannot be checked (a corrupt zip, a file over the size limit).
    """
    stem = check_set.exercise_set.stem
    wanted = set(only) if only is not None else None
    checks = [c for c in check_set.checks if wanted is None or c.name in wanted]

    def fail_all(status: str, message: str) -> list[Result]:
        return [_result(check, status, message, stem) for check in checks]

    name = f"{stem}.py"
    if problem:
        return fail_all("failed", problem)
    if path is None or not path.exists():
        return fail_all("failed", f"{name} is missing from the submission")
    try:
        tree = rules.parse(path.read_text(encoding="utf-8", errors="replace"), name)
    except SyntaxError as error:
        return fail_all("failed", f"could not read {name}: {error.msg} at line {error.lineno}")
    except (ValueError, RecursionError, MemoryError) as error:
        return fail_all("failed", f"could not read {name}: {type(error).__name__}")
    if check_set.house_rules:
        problems = rules.file_problems(tree, check_set.allowed_imports,
                                       check_set.allow_classes)
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            return fail_all("not allowed", f"{name} was not run: {problems[0]}{more}")
    try:
        functions = session.load(stem, path, time_limit)
    except AnswerAbort as error:
        return fail_all(error.status, error.message)
    results = []
    for check in checks:
        if check.function not in functions:
            results.append(_result(check, "failed", f"{name} has no function "
                                   f"{check.function} (keep the stub's name)", stem))
            continue
        broken = [p for p in (r.problem(tree, check.function) for r in check.forbid) if p]
        if broken:
            results.append(_result(check, "not allowed", broken[0], stem))
            continue
        answers = RemoteAnswers(session, stem, path, functions, Budget(time_limit), time_limit)
        try:
            check.run(answers)
        except KeyboardInterrupt:
            raise
        except BaseException as error:  # noqa: BLE001  (AnswerAbort too)
            results.append(_result(check, *_explain_remote(error), stem))
        else:
            results.append(_result(check, "passed", "", stem))
    return results


def run_isolated(jobs: dict[str, Path | None], time_limit: float = 60.0,
                 python: str = sys.executable, checks_dir: Path | None = None,
                 box: sandbox.Sandbox | None = None,
                 problems: dict[str, str] | None = None) -> dict[str, list[Result]]:
    """Check answer files, the answers in one sandboxed child: ``{set stem: answers path}``
    -> ``{set stem: [Result, ...]}`` in check order, one result for every exercise.

    ``checks_dir``: where the check files are (default: this course's exercises/checks/);
    ``box``: the sandbox (default: bubblewrap if it works here, else a plain child);
    ``problems``: ``{set stem: sentence}`` for files that cannot be checked.
    """
    check_sets = {stem: load_set(stem, checks_dir) for stem in jobs}
    box = box or sandbox.choose("auto")
    count = sum(len(c.checks) for c in check_sets.values())
    results = {}
    with tempfile.TemporaryDirectory(prefix="cooc-check-") as scratch, \
            Session(Path(scratch), box, python,
                    cpu_seconds=STARTUP_LIMIT + time_limit * (count + len(jobs))) as session:
        for stem, path in jobs.items():
            copy = None
            if path is not None and Path(path).is_file():
                copy = session.answers_path(f"{stem}.py")
                shutil.copyfile(path, copy)
            results[stem] = check_remotely(check_sets[stem], copy, session, time_limit,
                                           problem=(problems or {}).get(stem))
    return results
