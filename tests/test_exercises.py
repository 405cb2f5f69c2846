"""The checker rejects every stub and accepts every reference solution."""

import subprocess
import sys

import pytest

from exercises import checker
from exercises.student_copy import student_files, write_student_copy

SETS = checker.exercise_sets()
PAIRS = [(s, name) for s in SETS for name, _ in checker.checks_of(s)]
HAVE_SOLUTIONS = (checker.EXERCISES_DIR / "solutions").is_dir()


def test_every_chapter_set_is_complete():
    assert SETS, "no exercise sets found"
    for exercise_set in SETS:
        assert exercise_set.answers_path().exists(), f"{exercise_set.stem}: stub file missing"
        assert checker.checks_of(exercise_set), f"{exercise_set.stem}: no check_ functions"
        page = exercise_set.answers_path().with_suffix(".ipynb")
        assert page.exists(), f"{exercise_set.stem}: the book page {page.name} is missing"


@pytest.mark.parametrize("exercise_set,name", PAIRS, ids=[f"{s.stem}.{n}" for s, n in PAIRS])
def test_stub_fails_as_not_done(exercise_set, name):
    results = {r.exercise: r for r in checker.run_set(exercise_set)}
    assert not results[name].passed
    assert results[name].message.startswith("not done yet"), results[name].message


@pytest.mark.skipif(not HAVE_SOLUTIONS, reason="a student copy has no solutions")
@pytest.mark.parametrize("exercise_set,name", PAIRS, ids=[f"{s.stem}.{n}" for s, n in PAIRS])
def test_solution_passes(exercise_set, name):
    results = {r.exercise: r for r in checker.run_set(exercise_set, solutions=True)}
    assert results[name].passed, results[name].message


def test_a_wrong_answer_gets_a_helpful_message(tmp_path):
    wrong = tmp_path / "answers.py"
    wrong.write_text(
        "import torch\n"
        "def cosine_similarity_matrix(z, eps=1e-8):\n    return z @ z.T\n"
        "def off_diagonal(m):\n    return m.flatten()[1:]\n"
    )
    results = checker.run_set(checker.exercise_sets(chapter=0)[0], answers_path=wrong)
    messages = {r.exercise: r.message for r in results}
    assert not any(r.passed for r in results)
    assert "off by up to" in messages["cosine_similarity_matrix"]
    assert "returned shape" in messages["off_diagonal"]


def test_checker_command_exit_codes(repo):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "exercises.checker", *args], cwd=repo,
                              capture_output=True, text=True)

    stubs = run("--chapter", "0")
    assert stubs.returncode == 1 and "FAIL  off_diagonal: not done yet" in stubs.stdout
    if HAVE_SOLUTIONS:
        assert run("--solutions").returncode == 0
    missing = run("--chapter", "99")
    assert missing.returncode == 2 and "no exercises for chapter 99" in missing.stderr


def test_student_copy_withholds_solutions_and_still_checks(tmp_path, repo):
    files = write_student_copy(tmp_path / "copy")
    assert files == student_files()
    assert not any(f.startswith("exercises/solutions/") for f in files)
    assert "exercises/ex00_warmup.py" in files and "Makefile" in files
    assert not (tmp_path / "copy" / "exercises" / "solutions").exists()
    in_copy = subprocess.run([sys.executable, "-m", "exercises.checker"], cwd=tmp_path / "copy",
                             capture_output=True, text=True)
    assert in_copy.returncode == 1 and "not done yet" in in_copy.stdout
    with pytest.raises(ValueError, match="already exists and is not empty"):
        write_student_copy(tmp_path / "copy")
    with pytest.raises(ValueError, match="lies inside the course"):
        write_student_copy(repo / "student-copy")
