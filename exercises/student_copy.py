"""Write a copy of the course for students: the committed tree, without the answers.

    make student-copy DEST=../ssl-course-students
    python -m exercises.student_copy ../ssl-course-students

The copy is what git holds at ``HEAD`` (``git archive``), so nothing uncommitted can reach
students, and it refuses to run while ``exercises/`` has uncommitted or untracked changes
(an answer typed into a stub, a stray key file). Left out: ``exercises/solutions/``, and the
parts of the README and of the book's instructors page meant for instructors only (between
``<!-- instructors -->`` and ``<!-- /instructors -->``: the grading workflow, the worked
answers).
Then the copy's own checker runs on the copy's stubs and every exercise must report "not done
yet"; otherwise the copy is removed and the command fails.

In a copy, ``make test`` skips the stub and solution tests (there are no solutions) and
``make lint`` leaves the students' answer files alone.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

COURSE_ROOT = Path(__file__).resolve().parent.parent
WITHHELD = ("exercises/solutions/",)
STRIPPED_PAGES = ("README.md", "book/instructors.md")
INSTRUCTOR_SECTION = re.compile(r"\n?<!-- instructors -->.*?<!-- /instructors -->\n?", re.S)


def _git(root: Path, *args: str, binary: bool = False):
    try:
        done = subprocess.run(["git", *args], cwd=root, check=True, capture_output=True,
                              text=not binary)
    except FileNotFoundError as error:
        raise ValueError("make student-copy needs git: it copies the committed tree.") from error
    except subprocess.CalledProcessError as error:
        raise ValueError(f"make student-copy needs a git checkout with a commit ({root}): "
                         f"git {args[0]} said {error.stderr.strip()!r}.") from error
    return done.stdout


def uncommitted_exercises(root: Path = COURSE_ROOT) -> list[str]:
    """Paths under exercises/ that differ from HEAD or are untracked (not ignored)."""
    status = _git(root, "status", "--porcelain", "--untracked-files=all", "--", "exercises/")
    return [line[3:] for line in status.splitlines() if line.strip()]


def strip_instructor_section(readme: str) -> str:
    return INSTRUCTOR_SECTION.sub("\n", readme)


def student_files(root: Path = COURSE_ROOT) -> list[str]:
    """The committed files a copy holds, in order."""
    listed = _git(root, "ls-tree", "-r", "--name-only", "HEAD").splitlines()
    return sorted(p for p in listed if not p.startswith(WITHHELD))


def write_student_copy(dest: Path, root: Path = COURSE_ROOT, verify: bool = True) -> list[str]:
    """Write the copy into ``dest``; return the files written (relative paths)."""
    dest = Path(dest).resolve()
    root = Path(root).resolve()
    if dest == root or root in dest.parents:
        raise ValueError(f"DEST={dest} lies inside the course; choose a folder outside {root}.")
    if dest.exists() and any(dest.iterdir()):
        raise ValueError(f"DEST={dest} already exists and is not empty; choose a new folder.")
    dirty = uncommitted_exercises(root)
    if dirty:
        shown = ", ".join(dirty[:3]) + (" ..." if len(dirty) > 3 else "")
        raise ValueError(f"exercises/ has uncommitted changes ({shown}): commit or remove them "
                         "first, because the copy is made from the committed tree.")
    archive = _git(root, "archive", "--format=tar", "HEAD", binary=True)
    written = []
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        for member in tar.getmembers():
            if not member.isfile() or member.name.startswith(WITHHELD):
                continue
            target = dest / member.name
            if dest not in target.resolve().parents:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(tar.extractfile(member).read())
            target.chmod(member.mode & 0o777 | 0o600)
            written.append(member.name)
    for page in STRIPPED_PAGES:  # the instructors' notes, and the worked answers on the book's page
        path = dest / page
        if path.exists():
            path.write_text(strip_instructor_section(path.read_text()))
    if verify:
        problems = stub_problems(dest)
        if problems:
            shutil.rmtree(dest)
            raise ValueError(f"the copy was removed: {problems[0]}")
    return sorted(written)


def stub_problems(copy: Path) -> list[str]:
    """Run the copy's checker on its stubs; each exercise not reported "not done" is listed."""
    done = subprocess.run([sys.executable, "-m", "exercises.checker", "--json"], cwd=copy,
                          capture_output=True, text=True)
    try:
        results = json.loads(done.stdout)
    except json.JSONDecodeError:
        return [f"the copy's checker did not run (exit code {done.returncode}): "
                f"{done.stderr.strip()[-500:]}"]
    return [f"{r['set']}.{r['exercise']} reports {r['status']!r}, not 'not done' (is an "
            "answer committed in the stub?)" for r in results if r["status"] != "not done"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write a student copy of the course.")
    parser.add_argument("dest", type=Path, help="a new folder outside the course")
    args = parser.parse_args(argv)
    try:
        files = write_student_copy(args.dest)
    except ValueError as error:
        print(error, file=sys.stderr)
        return 2
    print(f"Wrote {len(files)} committed files to {args.dest.resolve()}, without "
          f"{', '.join(WITHHELD)} and the README's instructor section; every exercise there "
          "reports 'not done yet'.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
