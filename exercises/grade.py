"""Grade a class: every submission checked in its own process, a CSV and Gradescope JSON.

    make grade SUBMISSIONS=path/to/submissions [OUT=grades] [TIME_LIMIT=30]
    python -m exercises.grade path/to/submissions --out grades [--time-limit 30] [--jobs 2]
    python -m exercises.grade --gradescope SUBMISSION_DIR RESULTS_JSON   # inside Gradescope

SUBMISSIONS holds one entry per student: a folder, or a ``.zip``, named after the student,
with the student's ``exNN_topic.py`` files (in ``exercises/`` or anywhere inside). Only
regular files with those names are taken (no links, at most 1 MB each) and copied to a
private folder; nothing else in a submission is read or run, so a submission's own
``checks/`` or ``checker.py`` is ignored: the checks are always this course's.

Each student is checked by :func:`exercises.runner.run_isolated`: one child process per
student (restarted after a hang or a crash, for the exercises still to run), each exercise
with a time limit. A crash, ``exit()``, ``os._exit``, a hang or an import error fails the
exercise with its reason; it never passes.

Writes, in OUT:

- ``grades.csv``: one row per student, one column per exercise (``ex03_losses.tcr_loss``)
  with the points earned, then ``total`` and ``max``;
- ``STUDENT/results.json``: Gradescope's autograder format (``score``, ``tests`` with
  ``name``, ``score``, ``max_score``, ``status``, ``output``, ``visibility``);
- ``STUDENT/report.txt``: the same lines ``make check-exercises`` prints.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import stat
import sys
import tempfile
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from exercises import model
from exercises.runner import CheckLoadError, run_isolated

MAX_FILE_BYTES = 1_000_000
STUDENT_NAME = re.compile(r"[^A-Za-z0-9._@+-]+")


def student_name(entry: Path) -> str:
    raw = entry.stem if entry.suffix.lower() == ".zip" else entry.name
    return STUDENT_NAME.sub("_", raw).strip("._") or "student"


def submissions(folder: Path) -> list[Path]:
    """The folders and zips in ``folder``, one per student, by name."""
    if not folder.is_dir():
        raise FileNotFoundError(f"SUBMISSIONS={folder} is not a folder; give the folder that "
                                "holds one folder or .zip per student.")
    entries = sorted(p for p in folder.iterdir() if not p.name.startswith(".")
                     and (p.is_dir() or p.suffix.lower() == ".zip") and not p.is_symlink())
    if not entries:
        raise FileNotFoundError(f"{folder} holds no student folder or .zip to grade.")
    names = [student_name(p) for p in entries]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"two submissions would both be graded as {twice[0]}: rename one.")
    return entries


def collect_answers(entry: Path, into: Path, stems: list[str]) -> dict[str, Path]:
    """Copy the student's answer files (by name, regular files only) into ``into``."""
    wanted = {f"{stem}.py": stem for stem in stems}
    found: dict[str, tuple[int, bytes]] = {}  # stem -> (depth, content); shallowest wins

    def offer(parts: tuple[str, ...], read) -> None:
        stem = wanted.get(parts[-1]) if parts else None
        if stem is None or "solutions" in parts or "checks" in parts:
            return
        depth = len(parts) - (2 if len(parts) > 1 and parts[-2] == "exercises" else 1)
        if stem not in found or depth < found[stem][0]:
            content = read()
            if content is not None:
                found[stem] = (depth, content)

    if entry.is_dir():
        for top, _, files in os.walk(entry):  # never follows links to folders
            for name in sorted(files):
                path = Path(top) / name
                info = path.lstat()
                if stat.S_ISREG(info.st_mode) and info.st_size <= MAX_FILE_BYTES:
                    offer(path.relative_to(entry).parts, path.read_bytes)
    else:
        try:
            archive = zipfile.ZipFile(entry)
        except zipfile.BadZipFile:
            return {}
        with archive:
            for info in archive.infolist():
                if info.is_dir() or info.file_size > MAX_FILE_BYTES:
                    continue
                if stat.S_ISLNK(info.external_attr >> 16):
                    continue
                parts = tuple(p for p in info.filename.replace("\\", "/").split("/") if p)
                offer(parts, lambda info=info, archive=archive: archive.read(info))
    into.mkdir(parents=True, exist_ok=True)
    paths = {}
    for stem, (_, content) in found.items():
        paths[stem] = into / f"{stem}.py"
        paths[stem].write_bytes(content)
    return paths


def grade_submission(entry: Path, sets: list[model.ExerciseSet],
                     time_limit: float) -> dict[str, list[model.Result]]:
    """``{set stem: [Result, ...]}`` for one student's folder or zip."""
    stems = [s.stem for s in sets]
    with tempfile.TemporaryDirectory(prefix="cooc-grade-") as scratch:
        answers = collect_answers(entry, Path(scratch) / "answers", stems)
        missing = Path(scratch) / "missing"
        missing.mkdir()
        jobs = {stem: answers.get(stem, missing / f"{stem}.py") for stem in stems}
        return run_isolated(jobs, time_limit=time_limit, checks_dir=sets[0].checks_dir)


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
                "output": "passed" if r.passed else f"{r.status}: {r.message}",
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
                checks_dir: Path | None = None) -> list[dict]:
    """Grade every submission in ``folder``; write ``out``; return the CSV rows.

    ``checks_dir``: another folder of check files than exercises/checks/ (for tests).
    """
    sets = model.exercise_sets(chapter, checks_dir)
    entries = submissions(folder)
    columns = [f"{s.stem}.{c.name}" for s in sets for c in model.load_checks(s).checks]
    most = sum(c.points for s in sets for c in model.load_checks(s).checks)
    out.mkdir(parents=True, exist_ok=True)

    def one(entry: Path) -> dict:
        start = time.monotonic()
        results = grade_submission(entry, sets, time_limit)
        name = student_name(entry)
        folder = out / name
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir()
        payload = gradescope_json(results, time.monotonic() - start)
        (folder / "results.json").write_text(json.dumps(payload, indent=2) + "\n")
        (folder / "report.txt").write_text(report_text(results))
        row = {"student": name}
        row.update({f"{stem}.{r.exercise}": r.points for stem, rs in results.items() for r in rs})
        row.update(total=payload["score"], max=most)
        print(f"{name}: {payload['score']:g}/{most:g}", flush=True)
        return row

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        rows = list(pool.map(one, entries))
    with open(out / "grades.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["student", *columns, "total", "max"])
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:g}" if isinstance(v, float) else v)
                             for k, v in row.items()})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("submissions", type=Path, nargs="?",
                        help="a folder with one folder or .zip per student")
    parser.add_argument("--out", type=Path, default=Path("grades"),
                        help="where to write grades.csv and a folder per student (default: grades)")
    parser.add_argument("--time-limit", type=float, default=30.0,
                        help="seconds each exercise may take (default 30)")
    parser.add_argument("--jobs", type=int, default=1, help="students checked at once")
    parser.add_argument("--chapter", type=model.parse_chapters,
                        help="grade these chapters' sets only: 3, 0,3 or 0-4")
    parser.add_argument("--gradescope", nargs=2, type=Path, metavar=("SUBMISSION", "RESULTS"),
                        help="grade one submission folder and write Gradescope's results.json")
    args = parser.parse_args(argv)
    try:
        if args.gradescope:
            submission, results_path = args.gradescope
            start = time.monotonic()
            results = grade_submission(submission, model.exercise_sets(args.chapter),
                                       args.time_limit)
            results_path.parent.mkdir(parents=True, exist_ok=True)
            results_path.write_text(json.dumps(
                gradescope_json(results, time.monotonic() - start), indent=2) + "\n")
            print(report_text(results), end="")
            return 0
        if args.submissions is None:
            parser.error("give the folder of submissions (or --gradescope SUBMISSION RESULTS)")
        rows = grade_class(args.submissions, args.out, args.time_limit, args.jobs, args.chapter)
    except (ValueError, FileNotFoundError, CheckLoadError) as error:
        print(error, file=sys.stderr)
        return 2
    print(f"Graded {len(rows)} submissions: {args.out / 'grades.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
