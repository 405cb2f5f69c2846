"""Grading a class: every cheat the issue lists is caught, the CSV and Gradescope JSON are
right, one student cannot change another's grade, and student copies hold only what they
should (made in a temporary git repository, never in the course's own tree)."""

import csv
import json
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch

from exercises import grade, model, runner, sandbox

REPO = Path(__file__).resolve().parent.parent
VENV = Path(sys.executable).parent.parent
HAVE_SOLUTIONS = (REPO / "exercises" / "solutions").is_dir()
pytestmark = pytest.mark.skipif(not HAVE_SOLUTIONS, reason="a student copy has no solutions")

CHAPTERS = [0, 1, 2, 3, 4]
BWRAP = sandbox.find_bwrap() is not None
UNSAFE = [] if BWRAP else ["--unsafe-local"]  # without bubblewrap the grader refuses
SETS = {s.stem: s for s in model.exercise_sets(CHAPTERS)}
POINTS = {s: {c.name: c.points for c in model.load_checks(SETS[s]).checks} for s in SETS}


def stub(stem):
    return (REPO / "exercises" / f"{stem}.py").read_text()


def solution(stem):
    return (REPO / "exercises" / "solutions" / f"{stem}.py").read_text()


def write_submission(folder: Path, files: dict[str, str], inside="exercises") -> Path:
    for stem in SETS:
        target = folder / inside / f"{stem}.py"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(files.get(stem, stub(stem)))
    return folder


def make(*args, cwd=REPO):
    # STAMP= : never let a test reinstall the shared virtual environment
    return subprocess.run(["make", "--no-print-directory", *args, f"VENV={VENV}", "STAMP="],
                          cwd=cwd, capture_output=True, text=True)


CHEAT_MAIN = ("import __main__\n__main__.checks_of = lambda exercise_set: []\n\n"
              + stub("ex00_warmup"))
CHEAT_LIBRARY = ("from cooc_minimal.losses import simclr_loss, spectral_loss, tcr_loss, "
                 "vicreg_loss  # noqa\n\n\ndef multipatch_tcr(z, lam=30.0, eps=0.2):\n"
                 "    raise NotImplementedError\n")
CRASH_EX00 = solution("ex00_warmup").replace(
    "def cosine_similarity_matrix(z: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:\n",
    "def cosine_similarity_matrix(z: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:\n"
    "    raise SystemExit(0)\n")
CRASH_EX01 = solution("ex01_cooccurrence").replace(
    "def closed_form_embedding(P: torch.Tensor, d: int, w: float = 2.0) -> torch.Tensor:\n",
    "def closed_form_embedding(P: torch.Tensor, d: int, w: float = 2.0) -> torch.Tensor:\n"
    "    while True:\n        pass\n")


def expected_points(student):
    """{column: points} for the five synthetic students."""
    full = {f"{s}.{n}": p for s in POINTS for n, p in POINTS[s].items()}
    zero = dict.fromkeys(full, 0)
    if student == "solved":
        return full
    if student == "half_solved":
        return zero | {k: v for k, v in full.items() if k.startswith(("ex00", "ex02"))}
    if student == "cheating":
        return zero | {k: v for k, v in full.items() if k.startswith("ex02")}
    if student == "crashing":
        broken = {"ex00_warmup.cosine_similarity_matrix", "ex04_patches.grid_patches",
                  "ex01_cooccurrence.closed_form_embedding"}
        return zero | {k: v for k, v in full.items()
                       if k.startswith(("ex00", "ex01", "ex04")) and k not in broken}
    return zero


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """`make grade` on five synthetic submissions; returns (out folder, csv rows, stdout)."""
    root = tmp_path_factory.mktemp("class")
    subs = root / "submissions"
    write_submission(subs / "solved", {s: solution(s) for s in SETS})
    stubs = write_submission(root / "stubs_folder", {})
    with zipfile.ZipFile(subs / "stubs.zip", "w") as archive:
        for path in stubs.rglob("*.py"):
            archive.write(path, f"course/{path.relative_to(stubs)}")
    halves = ("ex00_warmup", "ex02_duality")
    write_submission(subs / "half_solved", {s: solution(s) for s in halves}, inside=".")
    cheating = write_submission(subs / "cheating", {
        "ex00_warmup": CHEAT_MAIN, "ex03_losses": CHEAT_LIBRARY,
        "ex02_duality": solution("ex02_duality")})
    fake_checks = cheating / "exercises" / "checks"
    fake_checks.mkdir()
    for stem in SETS:  # a submission's own checks and checker must be ignored
        (fake_checks / f"{stem}.py").write_text("def check_anything(answers):\n    pass\n")
    (cheating / "exercises" / "checker.py").write_text("import sys\nsys.exit(0)\n")
    write_submission(subs / "crashing", {
        "ex00_warmup": CRASH_EX00, "ex01_cooccurrence": CRASH_EX01,
        "ex02_duality": "BOOM = 1 / 0\n" + solution("ex02_duality"),
        "ex04_patches": solution("ex04_patches").replace(
            "    batch, channels, height, width = images.shape\n",
            "    return None\n    batch, channels, height, width = images.shape\n", 1)})
    write_submission(subs / "flooding", {"ex00_warmup": stub("ex00_warmup").replace(
        "    raise NotImplementedError", "    raise ValueError('x' * 50_000_000)", 1)})
    out = root / "grades"
    start = time.monotonic()
    if BWRAP:
        done = make("grade", f"SUBMISSIONS={subs}", f"OUT={out}", "TIME_LIMIT=10", "JOBS=2",
                    "CHAPTER=0-4")
    else:  # `make grade` refuses without bubblewrap (tests/test_grade_sandbox.py)
        done = subprocess.run([sys.executable, "-m", "exercises.grade", str(subs), "--out",
                               str(out), "--time-limit", "10", "--jobs", "2", "--chapter",
                               "0-4", "--unsafe-local"], cwd=REPO, capture_output=True,
                              text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert time.monotonic() - start < 60, "grading six students took a minute or more"
    with open(out / "grades.csv") as handle:
        rows = {row["student"]: row for row in csv.DictReader(handle)}
    return out, rows, done.stdout


@pytest.mark.slow
def test_make_grade_writes_the_expected_csv(graded):
    out, rows, stdout = graded
    assert sorted(rows) == ["cheating", "crashing", "flooding", "half_solved", "solved",
                            "stubs"]
    most = sum(p for s in POINTS.values() for p in s.values())
    for student, row in rows.items():
        expected = expected_points(student)
        got = {k: float(v) for k, v in row.items() if k.startswith("ex")}
        assert got == {k: float(v) for k, v in expected.items()}, student
        assert float(row["total"]) == sum(expected.values()) and float(row["max"]) == most
        assert f"{student}: {sum(expected.values()):g}/{most:g}" in stdout


@pytest.mark.slow
def test_gradescope_json_per_student(graded):
    out, rows, _ = graded
    for student, row in rows.items():
        results = json.loads((out / student / "results.json").read_text())
        assert results["score"] == float(row["total"])
        tests = results["tests"]
        assert [t["name"] for t in tests] == [k for k in row if k.startswith("ex")]
        assert all({"name", "score", "max_score", "output", "visibility"} <= set(t) for t in tests)
        assert sum(t["score"] for t in tests) == results["score"]
        assert sum(t["max_score"] for t in tests) == float(row["max"])
        for t in tests:
            assert (t["score"] == t["max_score"]) == (t["status"] == "passed")
            assert t["output"] and t["visibility"] == "visible"


def outputs(out, student):
    results = json.loads((out / student / "results.json").read_text())
    return {t["name"]: t["output"] for t in results["tests"]}


@pytest.mark.slow
def test_cheats_fail_with_their_reason(graded):
    out, _, _ = graded
    cheat = outputs(out, "cheating")
    assert "imports __main__" in cheat["ex00_warmup.off_diagonal"]
    assert "imports cooc_minimal.losses" in cheat["ex03_losses.spectral_loss"]
    assert cheat["ex04_patches.grid_patches"].startswith("not done")  # its own checks ignored
    crash = outputs(out, "crashing")
    assert "your code called exit()" in crash["ex00_warmup.cosine_similarity_matrix"]
    assert crash["ex01_cooccurrence.closed_form_embedding"].startswith("timed out: did not "
                                                                        "finish within 10 s")
    assert "ZeroDivisionError" in crash["ex02_duality.trace_constant"]
    assert "should return a pair" in crash["ex04_patches.grid_patches"]
    flood = outputs(out, "flooding")["ex00_warmup.cosine_similarity_matrix"]
    assert flood.startswith("failed: your code raised ValueError") and len(flood) < 2500
    assert (out / "flooding" / "results.json").stat().st_size < 20_000


# --- the runtime defences, on a throw-away set without house rules (os, top-level calls) ----

TRICKS = '''
import torch
from exercises.checktools import exercise

ALLOWED_IMPORTS = ("torch", "os")
HOUSE_RULES = False  # the sandbox alone must hold


@exercise(points=1)
def check_first(answers):
    assert answers.first() == 1, "first() should return 1"


@exercise(points=2)
def check_second(answers):
    assert answers.second() == 2, "second() should return 2"


@exercise(points=1)
def check_third(answers):
    assert answers.third() == 3, "third() should return 3"


@exercise(points=1)
def check_leak(answers):
    answers.leak()
    assert torch.get_default_dtype() == torch.float64, "the default dtype is float32"
'''
STUB = "".join(f"def {name}():\n    raise NotImplementedError\n\n\n"
               for name in ("first", "second", "third", "leak"))


def tricky(**bodies):
    lines = ["import torch\nfrom os import _exit\n\n"]
    for name in ("first", "second", "third", "leak"):
        lines.append(f"def {name}():\n    {bodies.get(name, 'raise NotImplementedError')}\n\n")
    return "".join(lines)


@pytest.mark.slow
def test_exit_os_exit_hangs_and_leaks_never_pass(tmp_path):
    checks = tmp_path / "checks"
    checks.mkdir()
    (checks / "ex97_tricks.py").write_text(TRICKS)
    subs = tmp_path / "subs"
    answers = {
        "exits": tricky(first="_exit(0)", second="return 2", third="return sum(range(10**12))",
                        leak="return None"),
        "import_exit": "from os import _exit\nBYE = _exit(0)\n" + STUB,
        "leaker": tricky(leak="torch.set_default_dtype(torch.float64)"),
        "victim": tricky(leak="return None"),
        "pyloop": tricky(first="while True: pass", second="return 2", third="return 3"),
        "flooder": tricky(first="return print('x' * 40_000_000)", second="return 2"),
    }
    for student, source in answers.items():
        (subs / student).mkdir(parents=True)
        (subs / student / "ex97_tricks.py").write_text(source)
    rows = grade.grade_class(subs, tmp_path / "out", time_limit=2, jobs=2, checks_dir=checks,
                             unsafe_local=not BWRAP)
    totals = {row["student"]: row["total"] for row in rows}
    # leaker: its leak stays in its own process, where no check looks (the checks run in
    # the grader, on the answers' outputs), so it no longer earns the leak's point either.
    assert totals == {"exits": 2, "import_exit": 0, "leaker": 0, "victim": 0, "pyloop": 3,
                      "flooder": 2}
    assert "File too large" in outputs(tmp_path / "out", "flooder")["ex97_tricks.first"]
    said = outputs(tmp_path / "out", "exits")
    assert said["ex97_tricks.first"].startswith("crashed: the process ended during this check "
                                               "(exit code 0)")
    assert said["ex97_tricks.third"].startswith("timed out")  # killed: a hang inside C code
    assert outputs(tmp_path / "out", "import_exit")["ex97_tricks.second"].startswith(
        "crashed: importing ex97_tricks.py")
    assert outputs(tmp_path / "out", "pyloop")["ex97_tricks.first"].startswith("timed out")
    # The same two students checked one after the other in one process: the leak is real.
    tricks = model.ExerciseSet(97, "tricks", checks)
    try:
        runner.run_set(tricks, answers_path=subs / "leaker" / "ex97_tricks.py")
        shared = runner.run_set(tricks, answers_path=subs / "victim" / "ex97_tricks.py")
    finally:
        torch.set_default_dtype(torch.float32)
    assert {r.exercise: r.passed for r in shared}["leak"], "the leak did not reproduce"


def test_submissions_are_read_by_name_only(tmp_path):
    entry = tmp_path / "ada"
    (entry / "exercises" / "solutions").mkdir(parents=True)
    (entry / "exercises" / "ex00_warmup.py").write_text("A = 1\n")
    (entry / "exercises" / "solutions" / "ex01_cooccurrence.py").write_text("B = 1\n")
    (entry / "ex02_duality.py").symlink_to(REPO / "exercises" / "solutions" / "ex02_duality.py")
    found, problems = grade.collect_answers(entry, tmp_path / "private", list(SETS))
    assert sorted(found) == ["ex00_warmup"] and problems == {}
    assert found["ex00_warmup"].read_text() == "A = 1\n"
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        grade.submissions(tmp_path / "nowhere")


# --- student copies, in a temporary git repository -----------------------------------------

COPIED = ["Makefile", "pyproject.toml", "README.md", "conftest.py", "book/instructors.md",
          "tests/conftest.py",
          "tests/test_exercises.py"]


def git(*args, cwd):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)


@pytest.fixture
def course(tmp_path):
    """A git repository holding the course's exercises, Makefile and exercise tests."""
    root = tmp_path / "course"
    listed = git("ls-files", "exercises", cwd=REPO).stdout.split() + COPIED
    for relative in listed:
        if (REPO / relative).is_file():
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / relative, root / relative)
    for extra in ("exercises/grade.py", "exercises/runner.py", "exercises/rules.py",
                  "exercises/checktools.py", "exercises/model.py", "exercises/checker.py",
                  "exercises/wire.py", "exercises/answer_host.py", "exercises/sandbox.py"):
        shutil.copy2(REPO / extra, root / extra)
    readme = (root / "README.md").read_text()
    if "<!-- instructors -->" not in readme:
        readme += "\n<!-- instructors -->\n## For instructors\nsecret\n<!-- /instructors -->\n"
    (root / "README.md").write_text(readme + "\nThe end.\n")
    git("init", "-q", cwd=root)
    git("add", ".", cwd=root)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "course", cwd=root)
    return root


def student_copy(course, dest):
    return make("student-copy", f"DEST={dest}", cwd=course)


def test_student_copy_refuses_a_dirty_exercises_folder(course, tmp_path):
    stub_file = course / "exercises" / "ex00_warmup.py"
    stub_file.write_text(solution("ex00_warmup"))
    refused = student_copy(course, tmp_path / "copy")
    assert refused.returncode != 0
    assert "exercises/ has uncommitted changes (exercises/ex00_warmup.py)" in refused.stderr
    git("checkout", "--", "exercises/ex00_warmup.py", cwd=course)
    (course / "exercises" / "answer_key.py").write_text("KEY = 42\n")
    refused = student_copy(course, tmp_path / "copy")
    assert "exercises/answer_key.py" in refused.stderr and not (tmp_path / "copy").exists()
    (course / "exercises" / "answer_key.py").unlink()
    # an answer committed into a stub is caught by running the copy's checker
    stub_file.write_text(solution("ex00_warmup"))
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "oops", cwd=course)
    refused = student_copy(course, tmp_path / "copy")
    assert "ex00_warmup.cosine_similarity_matrix reports 'passed'" in refused.stderr
    assert not (tmp_path / "copy").exists()


@pytest.mark.slow
def test_student_copy_passes_its_own_tests_before_and_after_solving(course, tmp_path):
    copy = tmp_path / "copy"
    made = student_copy(course, copy)
    assert made.returncode == 0, made.stdout + made.stderr
    assert not (copy / "exercises" / "solutions").exists()
    readme = (copy / "README.md").read_text()
    assert "instructors" not in readme and "The end." in readme
    page = (copy / "book" / "instructors.md").read_text()
    assert "Worked answers" not in page and "<!-- instructors -->" not in page

    def own_tests():
        return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                               "tests/test_exercises.py", "-x"], cwd=copy, capture_output=True,
                              text=True)

    before = own_tests()
    assert before.returncode == 0, before.stdout[-3000:]
    assert "skipped" in before.stdout
    for stem in SETS:  # the student solves everything, with a lint error ruff would flag
        (copy / "exercises" / f"{stem}.py").write_text("import math  # unused\n"
                                                       + solution(stem))
    after = own_tests()
    assert after.returncode == 0, after.stdout[-3000:]
    lint = make("lint", cwd=copy)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    # the student's checker runs every chapter even when one answer calls exit()
    (copy / "exercises" / "ex00_warmup.py").write_text(CRASH_EX00)
    checked = subprocess.run([sys.executable, "-m", "exercises.checker", "--chapter", "0-4"],
                             cwd=copy, capture_output=True, text=True)
    assert checked.returncode == 1, checked.stdout
    assert "FAIL  cosine_similarity_matrix (0/1): your code called exit()" in checked.stdout
    total = sum(len(p) for p in POINTS.values())
    assert checked.stdout.count("  PASS  ") == total - 1 and "Chapter 04" in checked.stdout


def test_gradescope_mode_grades_one_submission(tmp_path):
    submission = write_submission(tmp_path / "submission", {"ex00_warmup": solution("ex00_warmup")})
    results = tmp_path / "results" / "results.json"
    done = subprocess.run([sys.executable, "-m", "exercises.grade", "--gradescope",
                           str(submission), str(results), "--chapter", "0", *UNSAFE], cwd=REPO,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    payload = json.loads(results.read_text())
    assert payload["score"] == sum(POINTS["ex00_warmup"].values()) > 0
    assert [t["name"].split(".")[1] for t in payload["tests"]] == list(POINTS["ex00_warmup"])
