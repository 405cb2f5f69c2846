"""Write a copy of the course for students, without the reference solutions.

    make student-copy DEST=../ssl-course-students
    python -m exercises.student_copy ../ssl-course-students

Copies what git tracks (plus new files git does not ignore), except
``exercises/solutions/``. Outside a git checkout it copies the tree minus
build folders. DEST must not exist yet or be empty, and lie outside the course.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

COURSE_ROOT = Path(__file__).resolve().parent.parent
WITHHELD = ("exercises/solutions/",)
NEVER_COPIED = {".git", ".venv", "_build", "__pycache__", ".pytest_cache", ".ruff_cache"}


def course_files(root: Path = COURSE_ROOT) -> list[str]:
    """Relative paths of the files that make up the course."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
            cwd=root, check=True, capture_output=True, text=True,
        ).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        listed = [str(p.relative_to(root)) for p in root.rglob("*")
                  if p.is_file() and not NEVER_COPIED & set(p.relative_to(root).parts)]
    return sorted(p for p in listed if (root / p).is_file())


def student_files(root: Path = COURSE_ROOT) -> list[str]:
    return [p for p in course_files(root) if not p.startswith(WITHHELD)]


def write_student_copy(dest: Path, root: Path = COURSE_ROOT) -> list[str]:
    """Copy the student files into ``dest``; return what was copied."""
    dest = Path(dest).resolve()
    if dest == root or root in dest.parents:
        raise ValueError(f"DEST={dest} lies inside the course; choose a folder outside {root}.")
    if dest.exists() and any(dest.iterdir()):
        raise ValueError(f"DEST={dest} already exists and is not empty; choose a new folder.")
    files = student_files(root)
    for relative in files:
        target = dest / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / relative, target)
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write a student copy of the course.")
    parser.add_argument("dest", type=Path, help="a new folder outside the course")
    args = parser.parse_args(argv)
    try:
        files = write_student_copy(args.dest)
    except ValueError as error:
        print(error, file=sys.stderr)
        return 2
    print(f"Wrote {len(files)} files to {args.dest.resolve()} (solutions withheld).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
