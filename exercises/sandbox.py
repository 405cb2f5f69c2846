"""Where students' answers run: inside bubblewrap, or, only when asked, as a plain child.

:func:`choose` picks the sandbox: ``"require"`` (the grader: bubblewrap or a one-sentence
refusal), ``"auto"`` (the students' checker: bubblewrap when it works here, a plain child
otherwise) or ``"none"`` (``--unsafe-local``). :func:`command` builds the child's command
line. Inside bubblewrap the child sees, read-only, only the Python installation and the
virtual environment (never the course's ``exercises/``, checks, solutions, other
submissions or the grades), its two host files and its private copy of the answers; it
writes only to a 64 MiB in-memory folder, has no network and no view of other processes
(new namespaces for everything), keeps no capability, and dies with the grader. The limits
it sets on itself (:data:`LIMITS`) apply in both cases; a plain child has only those and
its own session and process group, which the grader kills.

``COOC_BWRAP`` names the bubblewrap program (default ``bwrap`` on PATH).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

EXERCISES_DIR = Path(__file__).resolve().parent
COURSE_ROOT = EXERCISES_DIR.parent
HOST_FILES = ("answer_host.py", "wire.py")
SCRATCH_BYTES = 64 << 20
REFUSAL = ("bubblewrap (bwrap) is not installed here or cannot start, and the grader runs "
           "students' code only inside it: install it (apt-get install bubblewrap) or pass "
           "--unsafe-local to grade without a sandbox (see book/instructors.md).")
# The child's own limits (resource.setrlimit, soft = hard); RLIMIT_CPU is set per child.
LIMITS = {"RLIMIT_AS": 8 << 30, "RLIMIT_FSIZE": 16 << 20, "RLIMIT_CORE": 0,
          "RLIMIT_NPROC": None if os.geteuid() == 0 else 4096}
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/etc/ld.so.cache",
               "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime", "/etc/alternatives")


class SandboxError(RuntimeError):
    """The sandbox the grader needs is missing: nothing was graded."""


@dataclass(frozen=True)
class Sandbox:
    """``kind``: ``"bwrap"`` or ``"none"``; ``program``: the bubblewrap binary."""

    kind: str
    program: str | None = None

    @property
    def isolated(self) -> bool:
        return self.kind == "bwrap"


@functools.lru_cache(maxsize=4)
def _works(program: str) -> bool:
    try:
        done = subprocess.run([program, "--unshare-all", "--die-with-parent", "--ro-bind", "/",
                               "/", "--proc", "/proc", "--dev", "/dev", "true"],
                              capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def find_bwrap() -> str | None:
    """The bubblewrap program, if it is installed and can make its namespaces here."""
    program = shutil.which(os.environ.get("COOC_BWRAP", "bwrap"))
    return program if program and _works(program) else None


def choose(mode: str = "auto") -> Sandbox:
    """``"require"``, ``"auto"`` or ``"none"`` (see the module's docstring)."""
    if mode == "none":
        return Sandbox("none")
    program = find_bwrap()
    if program:
        return Sandbox("bwrap", program)
    if mode == "require":
        raise SandboxError(REFUSAL)
    return Sandbox("none")


def prepare(scratch: Path) -> None:
    """Lay out a child's scratch folder: ``host/`` (its code), ``answers/``, ``work/``."""
    (scratch / "host").mkdir(parents=True, exist_ok=True)
    for name in HOST_FILES:
        shutil.copyfile(EXERCISES_DIR / name, scratch / "host" / name)
    (scratch / "answers").mkdir(exist_ok=True)
    (scratch / "work").mkdir(exist_ok=True)


def answers_folder(sandbox: Sandbox, scratch: Path) -> str:
    """Where the child sees ``scratch/answers``."""
    return "/sandbox/answers" if sandbox.isolated else str(scratch / "answers")


def _readable_roots(python: str) -> list[str]:
    """The Python installation, the virtual environment and any other folder on sys.path,
    except the course's own tree (where the checks and solutions are)."""
    roots: list[str] = []

    def add(path: str) -> None:
        real = os.path.realpath(path)
        if not os.path.exists(real) or any(real == r or real.startswith(r + os.sep)
                                           for r in roots):
            return
        inside_course = real == str(COURSE_ROOT) or real.startswith(str(COURSE_ROOT) + os.sep)
        if inside_course and not real.startswith(os.path.realpath(sys.prefix)):
            return
        roots[:] = [r for r in roots if not r.startswith(real + os.sep)] + [real]

    for path in (sys.base_prefix, sys.prefix, sys.exec_prefix, os.path.dirname(python)):
        add(path)
    for path in sys.path:
        if path and os.path.isdir(path) and "site-packages" in path:
            add(path)
    return roots


def command(sandbox: Sandbox, python: str, scratch: Path) -> tuple[list[str], str]:
    """(argv, working folder) that start ``answer_host`` for ``scratch``."""
    host = "/sandbox/host" if sandbox.isolated else str(scratch / "host")
    boot = f"import sys; sys.path.insert(0, {host!r}); import answer_host; answer_host.main()"
    child = [python, "-I", "-c", boot]
    if not sandbox.isolated:
        return child, str(scratch / "work")
    # Mounts apply in order, a later one hiding what lies below it: the fresh /proc, /dev
    # and /tmp come first, so that a Python or venv that lives under /tmp (a clone in /tmp,
    # as CI may make) is bound on top of the empty /tmp, not hidden by it.
    argv = [sandbox.program, "--unshare-all", "--die-with-parent", "--new-session",
            "--cap-drop", "ALL", "--proc", "/proc", "--dev", "/dev",
            "--size", str(SCRATCH_BYTES), "--tmpfs", "/tmp"]
    for path in SYSTEM_DIRS:
        argv += ["--ro-bind-try", path, path]
    for path in _readable_roots(python):
        argv += ["--ro-bind", path, path]
    if os.path.realpath(python) != python:  # the venv's python is a link into its base
        argv += ["--ro-bind-try", os.path.dirname(python), os.path.dirname(python)]
    argv += ["--ro-bind", str(scratch / "host"), "/sandbox/host",
             "--ro-bind", str(scratch / "answers"), "/sandbox/answers",
             "--size", str(SCRATCH_BYTES), "--tmpfs", "/sandbox/work",
             "--chdir", "/sandbox/work", "--setenv", "HOME", "/sandbox/work",
             "--setenv", "TMPDIR", "/tmp", "--"]
    return argv + child, str(scratch / "work")


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TMPDIR",
                                                        "COOC_SCALE")}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONHASHSEED="0",
               PYTHONDONTWRITEBYTECODE="1", HOME=env.get("TMPDIR", "/tmp"))
    env.setdefault("COOC_SCALE", "smoke")
    env.setdefault("PATH", "/usr/bin:/bin")
    return env
