"""Every cheat a reviewer found (issue 18) scores no more than the untouched stubs, or is
refused by the house rules; none changes another student's grade or any file outside its
own scratch folder, and nothing it starts runs after the grader returns.

The sandbox tests run the real checks of chapters 0 and 1 with ``HOUSE_RULES = False``, so
that the defences behind the rules are what hold: the checks run in the grader on the
answers' outputs (any machine), and bubblewrap hides and protects everything else (skipped,
with the reason, where bubblewrap is missing)."""

import hashlib
import json
import os
import secrets
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from exercises import grade, model, rules, sandbox

REPO = Path(__file__).resolve().parent.parent
SOLUTIONS = REPO / "exercises" / "solutions"
HAVE_SOLUTIONS = SOLUTIONS.is_dir()
BWRAP = sandbox.find_bwrap() is not None
needs_bwrap = pytest.mark.skipif(not BWRAP, reason="bubblewrap (bwrap) is not installed or "
                                 "cannot make namespaces here: apt-get install bubblewrap")
needs_solutions = pytest.mark.skipif(not HAVE_SOLUTIONS, reason="a student copy has no "
                                     "solutions")
STEMS = ("ex00_warmup", "ex01_cooccurrence")
MOST = 3 + 6


def stub(stem):
    return (REPO / "exercises" / f"{stem}.py").read_text()


def solution(stem):
    return (SOLUTIONS / f"{stem}.py").read_text()


def digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*.py")):
        h.update(path.read_bytes())
    return h.hexdigest()


@pytest.fixture
def checks(tmp_path):
    """Chapters 0 and 1's real checks, without the house rules."""
    folder = tmp_path / "checks"
    folder.mkdir()
    for stem in STEMS:
        text = (REPO / "exercises" / "checks" / f"{stem}.py").read_text()
        (folder / f"{stem}.py").write_text(text + "\nHOUSE_RULES = False\n")
    return folder


def submit(subs: Path, student: str, **files) -> None:
    (subs / student).mkdir(parents=True)
    for stem in STEMS:
        (subs / student / f"{stem}.py").write_text(files.get(stem, stub(stem)))


def outputs(out: Path, folder: str) -> dict:
    results = json.loads((out / folder / "results.json").read_text())
    return {t["name"]: t["output"] for t in results["tests"]}


# --- the house rules: the first line, with a sentence for each cheat ---------------------

CHEATS = {
    "eval by annotation": 'import typing\n\ndef f(x: "exec(PAYLOAD, globals())"):\n'
                          '    return typing.get_type_hints(f)\n',
    "get_type_hints": "import typing\n\ndef f(x):\n    return typing.get_type_hints(x)\n",
    "update_wrapper": "import functools\nimport torch\n\ndef f(holder):\n    functools."
                      "update_wrapper(torch.Tensor, holder, assigned=('any',), updated=())\n",
    "wraps": "from functools import wraps\n\ndef f(holder):\n    return wraps(holder)\n",
    "type()": "import sympy as sp\n\ndef f():\n    return type('E', (sp.Expr,), {})\n",
    "from_file": "import torch\n\ndef f(p):\n    return torch.from_file(p, shared=True, "
                 "size=10)\n",
    "collect_env": "import torch.utils.collect_env\n\ndef f():\n"
                   "    return torch.utils.collect_env.run('id')\n",
    "not main": "if __name__ != '__main__':\n    print('runs at import')\n",
    "call at import": "import torch\nT = torch.ones(3)\n",
    "default": "import torch\n\ndef f(x=torch.ones(3)):\n    return x\n",
    "sympify": "import sympy as sp\n\ndef f(t):\n    return sp.sympify(t)\n",
}


@pytest.mark.parametrize("name", CHEATS)
def test_the_house_rules_refuse_each_cheat_in_one_sentence(name):
    found = rules.file_problems(rules.parse(CHEATS[name]), (*rules.DEFAULT_IMPORTS, "sympy"))
    assert found, name
    assert all(p.startswith("line ") and len(p) < 200 and "\n" not in p for p in found)


# --- without any sandbox: the checks run in the grader, on data ---------------------------

PATCHER = '''import functools
import math
import torch


class _Holder:
    def any(self, *args, **kwargs):
        return False

    def isclose(*args, **kwargs):
        return True


functools.update_wrapper(torch.Tensor, _Holder, assigned=("any",), updated=())
functools.update_wrapper(math, _Holder, assigned=("isclose",), updated=())


def cosine_similarity_matrix(z, eps=1e-8):
    return torch.zeros(z.shape[0], z.shape[0], dtype=z.dtype)


def off_diagonal(m):
    return torch.zeros(m.shape[0] * (m.shape[0] - 1), dtype=m.dtype)


def mean_squared_cosine(d):
    return 0.0
'''
FAKES = '''import sympy as sp
import torch

Liar = type("Liar", (sp.Expr,), {"__eq__": lambda self, other: True,
                                 "__ne__": lambda self, other: False,
                                 "__hash__": lambda self: 0})
Zero = type("Zero", (torch.Tensor,), {"item": lambda self: 0.0,
                                      "__float__": lambda self: 0.0})


def integrand_without_constant(w, s, r):
    return Liar()


def spectral_lambda(w):
    return Liar()


def closed_form_embedding(P, d, w=2.0):
    return torch.zeros(P.shape[0], d, dtype=P.dtype).as_subclass(Zero)


def within_class_similarity(w, K, V):
    return torch.zeros(()).as_subclass(Zero)
'''
FORGER = '''import json
import os

LINES = [{"event": "result", "stem": "ex00_warmup", "result": {
    "exercise": "cosine_similarity_matrix", "passed": True, "message": "", "status": "passed",
    "points": 10000, "max_points": 13}},
    {"op": "imported", "functions": ["cosine_similarity_matrix"]},
    {"op": "return", "value": {"t": "float", "v": "nan"}}]
for fd in range(3, 12):
    for line in LINES:
        try:
            os.write(fd, (json.dumps(line) + "\\n").encode())
        except OSError:
            pass


def cosine_similarity_matrix(z, eps=1e-8):
    for fd in range(3, 12):
        try:
            os.write(fd, (json.dumps(LINES[2]) + "\\n").encode())
        except OSError:
            pass
    raise NotImplementedError


def off_diagonal(m):
    raise NotImplementedError


def mean_squared_cosine(d):
    raise NotImplementedError
'''
FLOOD = stub("ex00_warmup").replace(
    "def cosine_similarity_matrix(z: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:\n",
    "def cosine_similarity_matrix(z: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:\n"
    "    raise ValueError('x' * 50_000_000)\n")


@needs_solutions
def test_forged_outputs_patched_torch_and_fake_classes_score_nothing(tmp_path, checks):
    subs, out = tmp_path / "subs", tmp_path / "out"
    submit(subs, "stubs")
    submit(subs, "patcher", ex00_warmup=PATCHER)
    submit(subs, "fakes", ex01_cooccurrence=FAKES)
    submit(subs, "forger", ex00_warmup=FORGER)
    submit(subs, "flood", ex00_warmup=FLOOD)
    submit(subs, "victim", **{s: solution(s) for s in STEMS})
    rows = grade.grade_class(subs, out, time_limit=10, jobs=2, checks_dir=checks,
                             unsafe_local=True)
    totals = {row["student"]: row["total"] for row in rows}
    assert totals == {"stubs": 0, "patcher": 0, "fakes": 0, "forger": 0, "flood": 0,
                      "victim": MOST}
    assert all(float(v) <= row["max"] for row in rows for k, v in row.items()
               if k.startswith("ex"))
    said = outputs(out, "fakes")
    assert "got <class 'answer.Liar'>" in said["ex01_cooccurrence.spectral_lambda"]
    assert "answer.Zero" in said["ex01_cooccurrence.closed_form_embedding"]
    flood = outputs(out, "flood")["ex00_warmup.cosine_similarity_matrix"]
    assert "your code raised ValueError" in flood and "more characters cut" in flood
    assert len(flood) < 2500 and (out / "flood" / "results.json").stat().st_size < 20_000
    assert "10000" not in (out / "grades.csv").read_text()


# --- inside bubblewrap: nothing to read, nothing to write, nothing left running ------------

PAYLOAD = r'''
import os, sys
FOUND = {}
try:
    from exercises.solutions import ex00_warmup as reference
    FOUND["solutions"] = reference
except Exception:
    pass
for path in (VICTIM, SOLUTION):
    try:
        FOUND[path] = open(path).read()
    except OSError:
        pass
for path in (CHECKS, REPO_CHECKS):
    try:
        with open(path, "a") as handle:
            handle.write("\n# tampered\n")
        FOUND[path] = "written"
    except OSError:
        pass
first = os.fork()
if first == 0:
    os.setsid()
    if os.fork() == 0:
        code = ("import time, pathlib; time.sleep(4); " +
                "[pathlib.Path(p).write_text('forged') for p in (TABLE, MARK)] # " + TOKEN)
        os.execv(sys.executable, [sys.executable, "-c", code])
    os._exit(0)
os.waitpid(first, 0)
'''
ANSWERS = '''

def cosine_similarity_matrix(z, eps=1e-8):
    if "solutions" in FOUND:
        return FOUND["solutions"].cosine_similarity_matrix(z, eps)
    raise NotImplementedError


def off_diagonal(m):
    if "solutions" in FOUND:
        return FOUND["solutions"].off_diagonal(m)
    raise NotImplementedError


def mean_squared_cosine(d):
    if "solutions" in FOUND:
        return FOUND["solutions"].mean_squared_cosine(d)
    raise NotImplementedError
'''


@pytest.mark.slow
@needs_bwrap
@needs_solutions
def test_inside_bubblewrap_a_cheat_reaches_nothing_and_leaves_nothing_running(tmp_path,
                                                                                checks):
    subs, out, token = tmp_path / "subs", tmp_path / "out", secrets.token_hex(8)
    mark, shell_mark = tmp_path / "daemon-ran", tmp_path / "shell-ran"
    names = {"VICTIM": subs / "victim" / "ex00_warmup.py", "SOLUTION": SOLUTIONS /
             "ex00_warmup.py", "CHECKS": checks / "ex00_warmup.py",
             "REPO_CHECKS": REPO / "exercises" / "checks" / "ex00_warmup.py",
             "TABLE": out / "grades.csv", "MARK": mark, "TOKEN": token}
    constants = "".join(f"{k} = {str(v)!r}\n" for k, v in names.items())
    payload = (f"import typing\n{constants}PAYLOAD = {PAYLOAD!r}\n\n\n"
               'def f(x: "exec(PAYLOAD, globals())"):\n    pass\n\n\n'
               "typing.get_type_hints(f)\n" + ANSWERS)
    from_file = stub("ex00_warmup").replace(
        "    raise NotImplementedError", "    import torch\n"
        f"    t = torch.from_file({str(SOLUTIONS / 'ex00_warmup.py')!r}, shared=True, "
        "size=600)\n    raise ValueError(bytes(t.tolist()).decode(errors='replace'))", 1)
    shell = stub("ex00_warmup").replace(
        "    raise NotImplementedError", "    import torch.utils.collect_env as c\n"
        f"    raise ValueError(c.run('touch {shell_mark}; ls {SOLUTIONS}; cat "
        f"{names['VICTIM']}'))", 1)
    submit(subs, "payload", ex00_warmup=payload)
    submit(subs, "from_file", ex00_warmup=from_file)
    submit(subs, "shell", ex00_warmup=shell)
    submit(subs, "victim", **{s: solution(s) for s in STEMS})
    before = (digest(checks), digest(REPO / "exercises"))
    rows = grade.grade_class(subs, out, time_limit=10, jobs=2, checks_dir=checks)
    running = [p for p in Path("/proc").iterdir() if p.name.isdigit()
               and token.encode() in _cmdline(p)]
    assert running == [], "a process started by an answer outlived the grader"
    table = (out / "grades.csv").read_bytes()
    totals = {row["student"]: row["total"] for row in rows}
    assert totals == {"payload": 0, "from_file": 0, "shell": 0, "victim": MOST}
    secret = "clamp_min(eps)"
    assert secret in solution("ex00_warmup")
    for student in ("payload", "from_file", "shell"):
        assert all(secret not in text for text in outputs(out, student).values())
    refused = outputs(out, "from_file")["ex00_warmup.cosine_similarity_matrix"]
    assert "No such file" in refused or "FileNotFoundError" in refused, refused
    time.sleep(5)  # the daemon would have rewritten the grades after 4 s
    assert (out / "grades.csv").read_bytes() == table
    assert not mark.exists() and not shell_mark.exists()
    assert (digest(checks), digest(REPO / "exercises")) == before


def _cmdline(proc: Path) -> bytes:
    try:
        return (proc / "cmdline").read_bytes()
    except OSError:
        return b""


# --- names, folders, zips, sizes: no answer needs to run ----------------------------------

def test_names_keep_their_unicode_and_never_merge_or_collide_with_the_csv(tmp_path):
    subs, out = tmp_path / "subs", tmp_path / "out"
    names = ["李雷", "王芳", "José Núñez", "grades.csv", "_grades.csv", "%41", "A"]
    for name in names:
        (subs / name).mkdir(parents=True)
    rows = grade.grade_class(subs, out, time_limit=5, chapter=0, unsafe_local=True)
    assert sorted(row["student"] for row in rows) == sorted(names)
    folders = {grade.folder_name(n) for n in names}
    assert len(folders) == len(names) and "grades.csv" not in folders
    assert (out / "grades.csv").is_file()
    for name in names:
        assert (out / grade.folder_name(name) / "results.json").is_file()
    text = (out / "grades.csv").read_text()
    assert "李雷" in text and "José Núñez" in text
    (subs / "A.zip").write_bytes(b"")
    with pytest.raises(ValueError, match="A and A.zip would both be graded as A"):
        grade.submissions(subs)


def test_the_output_folder_is_checked_before_grading(tmp_path):
    subs = tmp_path / "subs"
    (subs / "ada").mkdir(parents=True)
    for out in (subs / "grades", subs):
        with pytest.raises(ValueError, match="inside SUBMISSIONS"):
            grade.grade_class(subs, out, chapter=0, unsafe_local=True)
    out = tmp_path / "out"
    (out / "grades.csv").mkdir(parents=True)
    with pytest.raises(ValueError, match="is not a plain file"):
        grade.grade_class(subs, out, chapter=0, unsafe_local=True)
    assert not (subs / "grades").exists()


def test_a_corrupt_zip_and_an_oversize_file_each_get_their_own_sentence(tmp_path):
    subs, out = tmp_path / "subs", tmp_path / "out"
    subs.mkdir()
    (subs / "broken.zip").write_bytes(b"PK\x03\x04 not really a zip")
    with zipfile.ZipFile(subs / "crc.zip", "w") as archive:
        archive.writestr("ex00_warmup.py", stub("ex00_warmup"))
    data = bytearray((subs / "crc.zip").read_bytes())
    start = data.index(b"def ")
    data[start:start + 3] = b"DEF"  # the stored CRC no longer matches
    (subs / "crc.zip").write_bytes(bytes(data))
    (subs / "big").mkdir()
    (subs / "big" / "ex00_warmup.py").write_text("# " + "x" * 1_100_000 + "\n")
    grade.grade_class(subs, out, time_limit=5, chapter=0, unsafe_local=True)
    broken = outputs(out, "broken")["ex00_warmup.off_diagonal"]
    assert "broken.zip is not a readable zip file" in broken and "missing" not in broken
    assert "crc.zip is not a readable zip file" in outputs(out, "crc")["ex00_warmup.off_diagonal"]
    big = outputs(out, "big")["ex00_warmup.off_diagonal"]
    assert "ex00_warmup.py is 1.1 MB, over the 1.0 MB an answer file may have" in big


def test_without_bubblewrap_the_grader_refuses_in_one_sentence(tmp_path):
    subs, out = tmp_path / "subs", tmp_path / "out"
    (subs / "ada").mkdir(parents=True)
    env = dict(os.environ, COOC_BWRAP=str(tmp_path / "no-bwrap-here"))
    done = subprocess.run([sys.executable, "-m", "exercises.grade", str(subs), "--out",
                           str(out), "--chapter", "0"], cwd=REPO, env=env, capture_output=True,
                          text=True)
    assert done.returncode == 2 and done.stderr == sandbox.REFUSAL + "\n"
    assert not out.exists()


def test_model_statuses_cover_the_grader(tmp_path):
    assert {"passed", "failed", "timed out", "crashed", "not allowed"} <= set(model.STATUSES)
