"""The process that runs a student's answers and nothing else (the grader's untrusted side).

Started by :mod:`exercises.runner` (inside bubblewrap when :mod:`exercises.sandbox` finds
it), with only this file and ``wire.py`` on its path: no check, no solution, no grade is
in reach. It limits itself (memory, file size, processes, CPU time, no core dumps; hard
limits, so an answer cannot raise them again), then answers requests, one JSON line each,
read from a private copy of stdin; it replies on a private copy of stdout, and the answers'
own ``print`` and ``input`` go to stderr and /dev/null:

- ``import``: load an answer file; reply with the names of its functions, or its error;
- ``call``: call one function with arguments the grader sent as data (a check's own
  function arrives as a handle: calling it asks the grader to run it, ``callback``), and
  reply with the value as data, the gradient of a scalar value with respect to the
  arguments that require it, and every tensor argument the answer changed in place.

Nothing here decides a grade: whatever this process sends, the grader reads it as data
and runs the checks itself. A forged reply can only be a wrong answer.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback

import wire  # beside this file, in the sandbox

_REPLIES = None
_REQUESTS = None


class TimeLimit(BaseException):  # noqa: N818  (BaseException: `except Exception` won't eat it)
    """Raised in the answer when its time is up."""


def send(**message) -> None:
    _REPLIES.write(json.dumps(message) + "\n")
    _REPLIES.flush()


def receive() -> dict:
    line = _REQUESTS.readline()
    if not line:
        raise SystemExit(0)
    return json.loads(line)


def limit_self(limits: dict) -> None:
    import resource

    for name, value in limits.items():
        which = getattr(resource, name, None)
        if which is None or value is None:
            continue
        soft, hard = resource.getrlimit(which)
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        try:
            resource.setrlimit(which, (value, value))
        except (ValueError, OSError):
            pass


def blame(error: BaseException, path: str) -> tuple[str, str]:
    """(status, sentence) for an error raised while an answer ran."""
    name = os.path.basename(path)
    if isinstance(error, TimeLimit):
        return "timed out", f"{error}: is there an endless loop?"
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == path]
    where = f" at {name} line {frames[-1].lineno}" if frames else ""
    if isinstance(error, NotImplementedError):
        if frames:
            return "not done", f"not done yet ({error})" if str(error) else "not done yet"
        return "failed", f"your answer led to NotImplementedError: {error}"
    if isinstance(error, SystemExit):
        return "failed", f"your code called exit(){where}: return a value instead"
    return "failed", (f"your code raised {type(error).__name__}{where}: "
                      f"{wire.clip(str(error), wire.MAX_TEXT - 300)}")


class _Alarm:
    def __init__(self, seconds: float) -> None:
        self.seconds = max(0.01, float(seconds))

    def __enter__(self):
        def ring(signum, frame):
            raise TimeLimit(f"did not finish within {self.limit:g} s")

        self.limit = round(self.seconds, 1)
        signal.signal(signal.SIGALRM, ring)
        signal.setitimer(signal.ITIMER_REAL, self.seconds)

    def __exit__(self, *exc) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)


class CheckFunction:
    """A check's own function, handed to an answer: calling it asks the grader to run it."""

    def __init__(self, handle: int, name: str) -> None:
        self.handle, self.__name__ = handle, name

    def __repr__(self) -> str:
        return f"<the check's function {self.__name__}>"

    def __call__(self, *args, **kwargs):
        send(op="callback", handle=self.handle, args=[wire.encode(a) for a in args],
             kwargs={str(k): wire.encode(v) for k, v in kwargs.items()})
        reply = receive()
        if reply.get("op") == "callback-return":
            return wire.decode(reply["value"], grad=True)
        error = reply.get("error", {})
        raise wire.error_class(error.get("classes"))(wire.clip(error.get("text", "")))


def _tensor_arguments(args, kwargs):
    import torch

    places = [(i, a) for i, a in enumerate(args)] + list(kwargs.items())
    return [(where, a) for where, a in places if type(a) in (torch.Tensor, torch.nn.Parameter)]


def _raw(t) -> tuple:
    return (tuple(t.shape), str(t.dtype), wire.encode(t.detach())["data"])


def call(modules: dict, request: dict) -> None:
    import torch

    module, path = modules[request["key"]]
    function = getattr(module, request["function"])
    make = CheckFunction
    args = [wire.decode(a, make, grad=True) for a in request["args"]]
    kwargs = {k: wire.decode(v, make, grad=True) for k, v in request["kwargs"].items()}
    tensors = _tensor_arguments(args, kwargs)
    before = {str(where): _raw(t) for where, t in tensors}
    try:
        with _Alarm(request["time_limit"]):
            value = function(*args, **kwargs)
            grads = None
            wanted = [(where, t) for where, t in tensors if t.requires_grad]
            if (wanted and type(value) is torch.Tensor and value.requires_grad
                    and value.numel() == 1):
                found = torch.autograd.grad(value.sum(), [t for _, t in wanted],
                                            allow_unused=True, retain_graph=True)
                grads = [[str(where), None if g is None else wire.encode(g)]
                         for (where, _), g in zip(wanted, found, strict=True)]
            reply = {"op": "return", "value": wire.encode(value), "grads": grads}
    except KeyboardInterrupt:
        raise
    except BaseException as error:  # noqa: BLE001  (exit() and the time limit too)
        status, message = blame(error, path)
        reply = {"op": "raise", "error": wire.encode_error(error, status, message)}
    changed = {str(where): t for where, t in tensors if _raw(t) != before[str(where)]}
    reply["changed"] = {where: wire.encode(t.detach()) for where, t in changed.items()}
    send(**reply)


def load(modules: dict, request: dict) -> None:
    import importlib.util

    path = request["path"]
    try:
        spec = importlib.util.spec_from_file_location(f"_answers_{request['key']}", path)
        module = importlib.util.module_from_spec(spec)
        with _Alarm(request["time_limit"]):
            spec.loader.exec_module(module)
    except KeyboardInterrupt:
        raise
    except BaseException as error:  # noqa: BLE001  (exit() at import too)
        if isinstance(error, TimeLimit):
            status, message = "timed out", f"{error}: is there an endless loop?"
        else:
            status, message = "failed", (f"{type(error).__name__}: "
                                         f"{wire.clip(str(error), wire.MAX_TEXT - 300)}")
        send(op="raise", error=wire.encode_error(error, status, message))
        return
    modules[request["key"]] = (module, path)
    functions = sorted(name for name, value in vars(module).items()
                       if callable(value) and not name.startswith("__"))
    send(op="imported", functions=[wire.clip(n, 100) for n in functions[:500]])


def main() -> None:
    global _REPLIES, _REQUESTS
    # No __pycache__ next to the answers: the child runs with -I, which ignores
    # PYTHONDONTWRITEBYTECODE, and a cached .pyc of an earlier file of the same size and
    # second would be run instead of the new answers.
    sys.dont_write_bytecode = True
    _REQUESTS = os.fdopen(os.dup(0), "r")
    _REPLIES = os.fdopen(os.dup(1), "w")
    first = json.loads(_REQUESTS.readline())
    limit_self(first.get("limits", {}))
    quiet = os.open(os.devnull, os.O_RDONLY)
    os.dup2(quiet, 0)  # input() reads nothing
    os.dup2(2, 1)      # print() goes to stderr
    import numpy  # noqa: F401  (loaded before any answer, so their time is theirs)
    import sympy  # noqa: F401
    import torch

    torch.set_num_threads(1)
    modules: dict = {}
    send(op="ready")
    while True:
        request = receive()
        op = request.get("op")
        if op == "import":
            load(modules, request)
        elif op == "call":
            call(modules, request)
        else:
            return


if __name__ == "__main__":
    main()
