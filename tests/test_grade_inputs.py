"""Bad input to the grader and the checker is refused in one sentence before any work: no
student graded, no file written, nothing in OUT deleted. Re-grading into the same OUT still
works. None of these tests needs the solutions: they hold in a student copy too."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from exercises import checker, grade, model, sandbox

REPO = Path(__file__).resolve().parent.parent
UNSAFE = [] if sandbox.find_bwrap() else ["--unsafe-local"]  # the refusals come first anyway
TINY_CHECKS = ("@exercise(points=2)\ndef check_double(answers):\n"
               "    assert answers.double(2) == 4, 'double(2) should be 4'\n")


def stub(stem="ex00_warmup") -> str:
    return (REPO / "exercises" / f"{stem}.py").read_text()


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its content, to show that nothing changed."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def subs(tmp_path):
    """SUBMISSIONS with one student, ``notes``, who handed in chapter 0's untouched stub."""
    folder = tmp_path / "subs"
    (folder / "notes").mkdir(parents=True)
    (folder / "notes" / "ex00_warmup.py").write_text(stub())
    return folder


def refused(capsys, main, argv) -> str:
    """What ``main(argv)`` printed to stderr, after checking that it refused (exit 2)."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as stop:  # argparse's refusals
        code = stop.code
    assert code == 2
    out, err = capsys.readouterr()
    assert "PASS" not in out and "FAIL" not in out, "something was checked before refusing"
    return " ".join(err.split())


# --- 1. OUT/STUDENT holding someone else's files ------------------------------------------

def test_grader_refuses_a_student_folder_with_a_file_it_did_not_write(subs, tmp_path, capsys):
    out = tmp_path / "out"
    (out / "notes").mkdir(parents=True)
    (out / "notes" / "keep.txt").write_text("my notes\n")
    said = refused(capsys, grade.main, [subs, "--out", out, "--chapter", "0", *UNSAFE])
    assert "notes holds keep.txt, which the grader did not write" in said
    assert "choose another --out, or move keep.txt out of that folder" in said
    assert snapshot(out) == {"notes/keep.txt": b"my notes\n"}  # kept, and no grades.csv


def test_grader_refuses_a_file_where_a_student_folder_goes(subs, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes").write_text("not a grade\n")
    said = refused(capsys, grade.main, [subs, "--out", out, "--chapter", "0", *UNSAFE])
    assert "notes exists and is not a folder the grader wrote: choose another --out" in said
    assert snapshot(out) == {"notes": b"not a grade\n"}


def test_regrading_into_the_same_out_rewrites_the_graders_own_files(tmp_path):
    checks = tmp_path / "checks"
    checks.mkdir()
    (checks / "ex97_tiny.py").write_text("from exercises.checktools import exercise\n\n\n"
                                         + TINY_CHECKS)
    folder = tmp_path / "subs"
    (folder / "ada").mkdir(parents=True)
    (folder / "ada" / "ex97_tiny.py").write_text("def double(x):\n    return 3 * x\n")
    out = tmp_path / "out"
    first = grade.grade_class(folder, out, time_limit=10, checks_dir=checks, unsafe_local=True)
    assert first[0]["total"] == 0
    (folder / "ada" / "ex97_tiny.py").write_text("def double(x):\n    return 2 * x\n")
    second = grade.grade_class(folder, out, time_limit=10, checks_dir=checks, unsafe_local=True)
    assert second[0]["total"] == 2
    assert sorted(p.name for p in (out / "ada").iterdir()) == sorted(grade.GRADER_FILES)
    assert json.loads((out / "ada" / "results.json").read_text())["score"] == 2


# --- 2. a time limit that is not a finite positive number ---------------------------------

@pytest.mark.parametrize("limit", ["0", "-1", "nan", "inf", "abc"])
def test_grader_refuses_a_time_limit_that_is_not_positive(subs, tmp_path, capsys, limit):
    out = tmp_path / "out"
    said = refused(capsys, grade.main, [subs, "--out", out, f"--time-limit={limit}", *UNSAFE])
    assert f"argument --time-limit: TIME_LIMIT={limit!r}: give the seconds each exercise may " \
           "take as a positive number, like 30." in said
    assert not out.exists()
    with pytest.raises(ValueError, match="positive number"):
        grade.grade_class(subs, out, time_limit=float(limit) if limit != "abc" else 0.0,
                          unsafe_local=True)
    assert not out.exists()


@pytest.mark.parametrize("limit", ["0", "-0.5", "nan", "-inf"])
def test_checker_refuses_a_time_limit_that_is_not_positive(capsys, limit):
    said = refused(capsys, checker.main, ["--chapter", "0", f"--time-limit={limit}"])
    assert f"TIME_LIMIT={limit!r}: give the seconds each exercise may take" in said
    with pytest.raises(ValueError, match="positive number"):
        checker.report(0, time_limit=float(limit))
    assert capsys.readouterr().out == ""


# --- 3 and 4. Gradescope's SUBMISSION and RESULTS -----------------------------------------

def test_gradescope_refuses_a_submission_that_does_not_exist(tmp_path, capsys):
    results = tmp_path / "results" / "results.json"
    said = refused(capsys, grade.main, ["--gradescope", tmp_path / "nowhere", results,
                                        "--chapter", "0", *UNSAFE])
    assert f"SUBMISSION={tmp_path / 'nowhere'} does not exist: give the folder" in said
    assert not results.exists() and not results.parent.exists()


def test_gradescope_refuses_results_that_is_a_folder(subs, tmp_path, capsys):
    results = tmp_path / "results"
    results.mkdir()
    said = refused(capsys, grade.main, ["--gradescope", subs / "notes", results,
                                        "--chapter", "0", *UNSAFE])
    assert f"RESULTS={results} is a folder: give a file path, such as " \
           f"{results / 'results.json'}." in said
    assert list(results.iterdir()) == []


def test_gradescope_refuses_results_below_a_file(subs, tmp_path, capsys):
    blocker = tmp_path / "results"
    blocker.write_text("a file\n")
    said = refused(capsys, grade.main, ["--gradescope", subs / "notes",
                                        blocker / "results.json", "--chapter", "0", *UNSAFE])
    assert f"lies below {blocker}, which is a file, not a folder" in said
    assert blocker.read_text() == "a file\n"


# --- 5 and 6. --chapter: a reversed range, an empty selection, text that is no chapter ------

def test_a_reversed_range_or_no_chapter_is_refused():
    with pytest.raises(ValueError, match=r"the range 3-1 counts down .* like 1-3"):
        model.parse_chapters("3-1")
    with pytest.raises(ValueError, match="No chapter was given"):
        model.exercise_sets([])
    assert model.parse_chapters("1-1") == [1]


@pytest.mark.parametrize("text,expected", [
    ("3-1", "CHAPTER='3-1': the range 3-1 counts down and holds no chapter"),
    ("abc", "CHAPTER='abc': give numbers like 3, 0,3 or 0-4."),
    ("", "CHAPTER='': give numbers like 3, 0,3 or 0-4."),
    ("0,", "CHAPTER='0,': give numbers like 3, 0,3 or 0-4."),
    ("-1", "CHAPTER='-1': give numbers like 3, 0,3 or 0-4."),
])
def test_a_bad_chapter_gets_its_own_sentence(subs, tmp_path, capsys, text, expected):
    out = tmp_path / "out"
    said = refused(capsys, grade.main, [subs, "--out", out, f"--chapter={text}", *UNSAFE])
    assert f"argument --chapter: {expected}" in said and "invalid" not in said
    assert not out.exists()
    said = refused(capsys, checker.main, [f"--chapter={text}"])
    assert f"argument --chapter: {expected}" in said and "invalid" not in said


# --- 7. the checker in a copy of the course that lacks a file -----------------------------

@pytest.fixture
def student_copy(tmp_path):
    """exercises/ as a student gets it: no solutions/."""
    course = tmp_path / "course"
    shutil.copytree(REPO / "exercises", course / "exercises",
                    ignore=shutil.ignore_patterns("solutions", "__pycache__", "*.ipynb"))
    return course


def check_in(course: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "exercises.checker", *args], cwd=course,
                          capture_output=True, text=True, timeout=120)


def test_checker_says_a_student_copy_has_no_solutions(student_copy):
    done = check_in(student_copy, "--chapter", "0", "--solutions")
    assert done.returncode == 2 and done.stdout == ""
    said = " ".join(done.stderr.split())
    assert said == ("This copy of the course has no exercises/solutions/ folder, so --solutions "
                    "has nothing to check: the reference answers are only in the instructors' "
                    "copy."), said


def test_checker_names_a_stub_missing_from_this_copy(student_copy):
    (student_copy / "exercises" / "ex00_warmup.py").unlink()
    done = check_in(student_copy, "--chapter", "0-1")
    assert done.returncode == 2 and done.stdout == ""
    said = " ".join(done.stderr.split())
    assert said.startswith("exercises/ex00_warmup.py is missing from this copy of the course: "
                           "restore it"), said
    assert "submission" not in said
