"""Grade a class: every submission checked in its own sandbox, a CSV and Gradescope JSON.

    make grade SUBMISSIONS=path/to/submissions [OUT=grades] [TIME_LIMIT=30]
    python -m exercises.grade path/to/submissions --out grades [--time-limit 30] [--jobs 2]
    python -m exercises.grade --gradescope SUBMISSION_DIR RESULTS_JSON   # inside Gradescope
    ... --unsafe-local    # without bubblewrap: only for code you trust

SUBMISSIONS holds one entry per student: a folder, or a ``.zip``, named after the student
(any Unicode name; two names are never merged), with the student's ``exNN_topic.py`` files
(in ``exercises/`` or anywhere inside). Only regular files with those names are taken (no
links, at most 1 MB each: a larger one, or a zip that cannot be read, gets its own
sentence) and copied to a private folder; nothing else in a submission is read or run, so a
submission's own ``checks/`` or ``checker.py`` is ignored: the checks are always this
course's.

Each student is checked by :func:`exercises.runner.run_isolated`: the checks run in this
process, the student's answers in a child process inside bubblewrap
(:mod:`exercises.sandbox`), which sees neither the checks, the solutions, the other
submissions nor OUT. The child only returns the answers' outputs as data; every score is
computed here and capped at the check's points. Without bubblewrap the grader refuses to
run unless given ``--unsafe-local``. A crash, ``exit()``, ``os._exit``, a hang or an import
error fails the exercise with its reason; it never passes.

OUT is checked before anything is graded (not inside SUBMISSIONS, writable, and a
student's folder already there holds only the two files below, which a re-grade
rewrites). It receives:

- ``grades.csv``: one row per student, one column per exercise (``ex03_losses.tcr_loss``)
  with the points earned, then ``total`` and ``max``;
- ``STUDENT/results.json``: Gradescope's autograder format (``score``, ``tests`` with
  ``name``, ``score``, ``max_score``, ``status``, ``output``, ``visibility``);
- ``STUDENT/report.txt``: the same lines ``make check-exercises`` prints.

``STUDENT`` is the student's name, with ``%`` and control characters written ``%XX`` and a
``_`` in front of a name that starts with ``_`` or ``.`` or is ``grades.csv``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import stat
import sys
import tempfile
import time
import zipfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from exercises import model, sandbox
from exercises.runner import CheckLoadError, run_isolated

MAX_FILE_BYTES = 1_000_000
RESERVED = ("grades.csv",)  # what OUT holds beside the students' folders
GRADER_FILES = ("results.json", "report.txt")  # all the grader writes in a student's folder


def student_name(entry: Path) -> str:
    """The student's name as the submission spells it (Unicode kept): a folder's name, or a
    zip's without ``.zip``."""
    return entry.name[:-4] if entry.suffix.lower() == ".zip" else entry.name


def folder_name(name: str) -> str:
    """The folder in OUT for the student called ``name``: the name itself, with ``%`` and
    control characters written ``%XX``, and ``_`` put before a name that starts with ``_`` or
    ``.`` or is one of OUT's own files. Two different names never get one folder."""
    escaped = "".join(f"%{ord(c):02X}" if c == "%" or ord(c) < 32 or ord(c) == 127 else c
                      for c in name)
    if escaped.startswith(("_", ".")) or escaped.lower() in RESERVED:
        escaped = "_" + escaped
    return escaped


def submissions(folder: Path) -> list[Path]:
    """The folders and zips in ``folder``, one per student, by name."""
    if not folder.is_dir():
        raise FileNotFoundError(f"SUBMISSIONS={folder} is not a folder; give the folder that "
                                "holds one folder or .zip per student.")
    entries = sorted(p for p in folder.iterdir() if not p.name.startswith(".")
                     and (p.is_dir() or p.suffix.lower() == ".zip") and not p.is_symlink())
    if not entries:
        raise FileNotFoundError(f"{folder} holds no student folder or .zip to grade.")
    seen: dict[str, Path] = {}
    for entry in entries:
        name = student_name(entry)
        if name in seen:
            raise ValueError(f"{seen[name].name} and {entry.name} would both be graded as "
                             f"{name}: rename one.")
        seen[name] = entry
    return entries


def check_output_folder(out: Path, folder: Path, students: Sequence[str] = ()) -> None:
    """Refuse, before anything is graded, an OUT that cannot hold the grades, that lies
    inside SUBMISSIONS (or holds it), or whose folder for one of ``students`` (names as
    :func:`folder_name` spells them) holds something the grader did not write."""
    out_real, subs_real = out.resolve(), folder.resolve()
    if out_real == subs_real or subs_real in out_real.parents:
        raise ValueError(f"OUT={out} is inside SUBMISSIONS={folder}: write the grades "
                         "somewhere else, so that they are never graded as a student.")
    if out_real in subs_real.parents:
        raise ValueError(f"SUBMISSIONS={folder} is inside OUT={out}: give OUT a folder of "
                         "its own.")
    if out.exists() and not out.is_dir():
        raise ValueError(f"OUT={out} is a file, not a folder: give a folder for the grades.")
    table = out / "grades.csv"
    if table.is_symlink() or (table.exists() and not table.is_file()):
        raise ValueError(f"{table} exists and is not a plain file: remove it first.")
    for student in students:
        check_student_folder(out / student)
    out.mkdir(parents=True, exist_ok=True)
    if not os.access(out, os.W_OK):
        raise ValueError(f"OUT={out} is not writable: give a folder you can write to.")


def check_student_folder(where: Path) -> None:
    """Refuse a student's folder in OUT that holds anything but the grader's own files: the
    grader overwrites those, and whatever else is there is someone's work, not a grade."""
    if not where.exists() and not where.is_symlink():
        return
    shown = _shown(str(where))
    if where.is_symlink() or not where.is_dir():
        raise ValueError(f"{shown} exists and is not a folder the grader wrote: choose another "
                         "--out, or move it away.")
    try:
        foreign = sorted(p.name for p in where.iterdir() if p.name not in GRADER_FILES
                         or p.is_symlink() or not p.is_file())
    except OSError as error:
        raise ValueError(f"{shown} cannot be read ({error.strerror or error}): choose another "
                         "--out.") from None
    if foreign:
        raise ValueError(f"{shown} holds {_shown(foreign[0])}, which the grader did not write "
                         f"(it writes only {' and '.join(GRADER_FILES)} there): choose another "
                         f"--out, or move {_shown(foreign[0])} out of that folder.")


def check_gradescope_paths(submission: Path, results: Path) -> None:
    """Refuse, before anything is graded, a SUBMISSION that is not there or a RESULTS file
    that cannot be written (found out only after the grading, the grades would be lost)."""
    if not submission.exists():
        raise FileNotFoundError(f"SUBMISSION={submission} does not exist: give the folder that "
                                "holds the student's files (on Gradescope, "
                                "/autograder/submission).")
    if not submission.is_dir() and submission.suffix.lower() != ".zip":
        raise ValueError(f"SUBMISSION={submission} is neither a folder nor a .zip: give the "
                         "folder that holds the student's files.")
    if results.is_dir():
        raise ValueError(f"RESULTS={results} is a folder: give a file path, such as "
                         f"{results / 'results.json'}.")
    below = next(p for p in results.absolute().parents if p.exists())
    if not below.is_dir():
        raise ValueError(f"RESULTS={results} lies below {below}, which is a file, not a "
                         "folder: give a path inside a folder.")
    target = results if results.exists() else below
    if not os.access(target, os.W_OK):
        raise ValueError(f"RESULTS={results} cannot be written ({target} is not writable): "
                         "give a path in a folder you may write to.")


def _size(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 100_000 else f"{size:,} bytes"


def collect_answers(entry: Path, into: Path, stems: list[str]
                    ) -> tuple[dict[str, Path], dict[str, str]]:
    """Copy the student's answer files (by name, regular files only) into ``into``.

    Returns (``{stem: copied file}``, ``{stem: why it cannot be checked}``): a file over
    MAX_FILE_BYTES, or every set when the zip cannot be read, gets its own sentence.
    """
    wanted = {f"{stem}.py": stem for stem in stems}
    found: dict[str, tuple[int, bytes]] = {}  # stem -> (depth, content); shallowest wins
    too_big: dict[str, tuple[int, int]] = {}  # stem -> (depth, size)

    def depth_of(parts: tuple[str, ...]) -> int:
        return len(parts) - (2 if len(parts) > 1 and parts[-2] == "exercises" else 1)

    def offer(parts: tuple[str, ...], size: int, read) -> None:
        stem = wanted.get(parts[-1]) if parts else None
        if stem is None or "solutions" in parts or "checks" in parts:
            return
        depth = depth_of(parts)
        if size > MAX_FILE_BYTES:
            if stem not in too_big or depth < too_big[stem][0]:
                too_big[stem] = (depth, size)
            return
        if stem not in found or depth < found[stem][0]:
            content = read()
            if content is not None and len(content) <= MAX_FILE_BYTES:
                found[stem] = (depth, content)

    problems: dict[str, str] = {}
    if entry.is_dir():
        for top, _, files in os.walk(entry):  # never follows links to folders
            for name in sorted(files):
                path = Path(top) / name
                info = path.lstat()
                if stat.S_ISREG(info.st_mode):
                    offer(path.relative_to(entry).parts, info.st_size, path.read_bytes)
    else:
        try:
            with zipfile.ZipFile(entry) as archive:
                for info in archive.infolist():
                    if info.is_dir() or stat.S_ISLNK(info.external_attr >> 16):
                        continue
                    parts = tuple(p for p in info.filename.replace("\\", "/").split("/") if p)

                    def read(info=info, archive=archive):
                        with archive.open(info) as handle:  # the header's size may lie
                            return handle.read(MAX_FILE_BYTES + 1)

                    offer(parts, info.file_size, read)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError,
                NotImplementedError, RuntimeError) as error:
            sentence = (f"{entry.name} is not a readable zip file ({type(error).__name__}: "
                        f"{str(error)[:200]}): ask the student to upload it again")
            return {}, dict.fromkeys(stems, sentence)
    for stem, (_, size) in too_big.items():
        if stem not in found:
            problems[stem] = (f"{stem}.py is {_size(size)}, over the {_size(MAX_FILE_BYTES)} "
                              "an answer file may have: it was not run")
    into.mkdir(parents=True, exist_ok=True)
    paths = {}
    for stem, (_, content) in found.items():
        paths[stem] = into / f"{stem}.py"
        paths[stem].write_bytes(content)
    return paths, problems


def grade_submission(entry: Path, sets: list[model.ExerciseSet], time_limit: float,
                     box: sandbox.Sandbox) -> dict[str, list[model.Result]]:
    """``{set stem: [Result, ...]}`` for one student's folder or zip."""
    stems = [s.stem for s in sets]
    with tempfile.TemporaryDirectory(prefix="cooc-grade-") as scratch:
        answers, problems = collect_answers(entry, Path(scratch) / "answers", stems)
        jobs = {stem: answers.get(stem) for stem in stems}
        return run_isolated(jobs, time_limit=time_limit, checks_dir=sets[0].checks_dir,
                            box=box, problems=problems)


def gradescope_json(results: dict[str, list[model.Result]], elapsed: float) -> dict:
    tests = []
    for stem, rows in results.items():
        for i, r in enumerate(rows, 1):
            tests.append({
                "name": f"{stem}.{r.exercise}",
                "number": f"{int(stem[2:4])}.{i}",
                "score": r.points,
                "max_score": r.max_points,
                "status": "passed" if r.passed else "failed",
                "output": "passed" if r.passed else f"{r.status}: {r.message[:2000]}",
                "visibility": "visible",
            })
    total = sum(t["score"] for t in tests)
    return {"score": total, "execution_time": round(elapsed, 1), "visibility": "visible",
            "stdout_visibility": "hidden", "tests": tests}


def report_text(results: dict[str, list[model.Result]]) -> str:
    lines = []
    for stem, rows in results.items():
        lines.append(stem)
        lines += [model.result_line(r) for r in rows]
    earned = sum(r.points for rows in results.values() for r in rows)
    most = sum(r.max_points for rows in results.values() for r in rows)
    lines.append(f"points: {earned:g}/{most:g}")
    return "\n".join(lines) + "\n"


def grade_class(folder: Path, out: Path, time_limit: float = 30.0, jobs: int = 1,
                chapter: int | list[int] | None = None,
                checks_dir: Path | None = None, unsafe_local: bool = False) -> list[dict]:
    """Grade every submission in ``folder``; write ``out``; return the CSV rows.

    ``checks_dir``: another folder of check files than exercises/checks/ (for tests);
    ``unsafe_local``: run the answers without bubblewrap (see book/instructors.md).
    """
    model.check_time_limit(time_limit)
    box = sandbox.choose("none" if unsafe_local else "require")
    sets = model.exercise_sets(chapter, checks_dir)
    entries = submissions(folder)
    check_output_folder(out, folder, [folder_name(student_name(e)) for e in entries])
    check_sets = {s.stem: model.load_checks(s) for s in sets}
    columns = [f"{stem}.{c.name}" for stem, cs in check_sets.items() for c in cs.checks]
    most = sum(c.points for cs in check_sets.values() for c in cs.checks)

    def one(entry: Path) -> dict:
        start = time.monotonic()
        results = _trusted(grade_submission(entry, sets, time_limit, box), check_sets)
        name = student_name(entry)
        where = out / folder_name(name)
        where.mkdir(exist_ok=True)  # checked to hold only GRADER_FILES, which are rewritten
        payload = gradescope_json(results, time.monotonic() - start)
        (where / "results.json").write_text(json.dumps(payload, indent=2) + "\n")
        (where / "report.txt").write_text(report_text(results), errors="surrogateescape")
        row = {"student": name}
        row.update({f"{stem}.{r.exercise}": r.points for stem, rs in results.items() for r in rs})
        row.update(total=payload["score"], max=most)
        print(f"{_shown(name)}: {payload['score']:g}/{most:g}", flush=True)
        return row

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        rows = list(pool.map(one, entries))
    table = out / "grades.csv"
    with open(table, "w", newline="", errors="surrogateescape") as handle:
        writer = csv.DictWriter(handle, fieldnames=["student", *columns, "total", "max"])
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:g}" if isinstance(v, float) else v)
                             for k, v in row.items()})
    return rows


def _shown(name: str) -> str:
    """A name as printed on one line (control characters escaped)."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in name)


def _trusted(results: dict[str, list[model.Result]],
             check_sets: dict[str, model.CheckSet]) -> dict[str, list[model.Result]]:
    """The results again, row for row from the checks' own list: a name not in it is
    dropped, a missing one fails, points are 0 or the check's declared maximum."""
    clean = {}
    for stem, check_set in check_sets.items():
        given = {r.exercise: r for r in results.get(stem, [])}
        rows = []
        for check in check_set.checks:
            r = given.get(check.name)
            passed = bool(r and r.passed and r.status == "passed")
            if passed:
                status = "passed"
            elif r and r.status in model.STATUSES and r.status != "passed":
                status = r.status
            else:
                status = "check error"
            message = "" if passed else (r.message if r else "the check gave no result")
            rows.append(model.Result(check.name, passed, message[:2000], status,
                                     check.points if passed else 0.0, check.points, stem))
        clean[stem] = rows
    return clean


def grade_for_gradescope(submission: Path, results_path: Path, time_limit: float,
                         chapter: list[int] | None, unsafe_local: bool) -> None:
    """Grade one submission, write Gradescope's ``results_path`` and print the report."""
    check_gradescope_paths(submission, results_path)
    box = sandbox.choose("none" if unsafe_local else "require")
    start = time.monotonic()
    sets = model.exercise_sets(chapter)
    results = _trusted(grade_submission(submission, sets, time_limit, box),
                       {s.stem: model.load_checks(s) for s in sets})
    results_path.parent.mkdir(parents=True, exist_ok=True)
    results_path.write_text(json.dumps(
        gradescope_json(results, time.monotonic() - start), indent=2) + "\n")
    print(report_text(results), end="")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("submissions", type=Path, nargs="?",
                        help="a folder with one folder or .zip per student")
    parser.add_argument("--out", type=Path, default=Path("grades"),
                        help="where to write grades.csv and a folder per student (default: grades)")
    parser.add_argument("--time-limit", type=model.option_type(model.parse_time_limit),
                        default=30.0,
                        help="seconds each exercise may take (default 30)")
    parser.add_argument("--jobs", type=int, default=1, help="students checked at once")
    parser.add_argument("--chapter", type=model.option_type(model.parse_chapters),
                        help="grade these chapters' sets only: 3, 0,3 or 0-4")
    parser.add_argument("--gradescope", nargs=2, type=Path, metavar=("SUBMISSION", "RESULTS"),
                        help="grade one submission folder and write Gradescope's results.json")
    parser.add_argument("--unsafe-local", action="store_true",
                        help="run the answers without the bubblewrap sandbox: only for code "
                             "you trust, on a machine you can afford to lose")
    args = parser.parse_args(argv)
    try:
        if args.gradescope:
            grade_for_gradescope(*args.gradescope, args.time_limit, args.chapter,
                                 args.unsafe_local)
            return 0
        if args.submissions is None:
            parser.error("give the folder of submissions (or --gradescope SUBMISSION RESULTS)")
        rows = grade_class(args.submissions, args.out, args.time_limit, args.jobs, args.chapter,
                           unsafe_local=args.unsafe_local)
    except (ValueError, FileNotFoundError, CheckLoadError, sandbox.SandboxError) as error:
        print(error, file=sys.stderr)
        return 2
    print(f"Graded {len(rows)} submissions: {args.out / 'grades.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
