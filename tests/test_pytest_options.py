"""The course's own pytest options (conftest.py) refuse what the course does not have."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def collect(*options: str) -> subprocess.CompletedProcess:
    """Collect (not run) one small test file with the given options."""
    return subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p",
                           "no:cacheprovider", "tests/test_paths.py", *options], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("chapter", "sentence"), [
    ("11", "There is no chapter 11: the chapters are 00 to 09"),
    ("7a", "--chapter must be a chapter number such as 07, got '7a'."),
])
def test_an_unknown_chapter_is_refused_before_collection(chapter, sentence):
    result = collect("--chapter", chapter)
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, result.stdout + result.stderr
    assert sentence in result.stderr
    assert "test_paths.py::" not in result.stdout  # refused before anything was collected


def test_a_chapter_the_course_has_is_kept():
    result = collect("--chapter", "4")  # test_paths.py belongs to chapter 0's modules
    assert result.returncode == pytest.ExitCode.NO_TESTS_COLLECTED, result.stderr
    assert "There is no chapter" not in result.stderr
    assert "deselected" in result.stdout
