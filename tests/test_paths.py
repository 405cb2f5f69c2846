"""Where runs and recorded figures live, in a clone and with no repository around (Colab)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cooc_minimal import paths

REPO = Path(__file__).resolve().parents[1]
CHAPTERS_WITH_RUNS = ("05_toy_world_on_a_cpu", "06_training_at_scale", "07_evaluating_bags",
                      "08_local_aggregation", "09_looking_inside")


def test_in_a_clone_runs_go_to_the_repository_unless_told(monkeypatch, tmp_path):
    monkeypatch.delenv("COOC_RUNS", raising=False)
    assert paths.repository() == REPO
    assert paths.runs_folder() == REPO / "runs"
    monkeypatch.setenv("COOC_RUNS", str(tmp_path / "elsewhere"))
    assert paths.runs_folder() == tmp_path / "elsewhere"


def test_every_recorded_figure_reads_back_as_the_file_says():
    names = paths.result_names()
    assert {"ch07_claims", "ch05_seeds", "ch08_pooling", "ch09_parts", "texture_world"} <= set(
        names)
    for name in names:
        on_disk = json.loads((REPO / "cooc_minimal" / "results" / f"{name}.json").read_text())
        assert paths.read_result(name) == on_disk, name
        assert paths.result_path(name) == REPO / "cooc_minimal" / "results" / f"{name}.json"
    assert paths.result_names("ch07_") and all(n.startswith("ch07_")
                                               for n in paths.result_names("ch07_"))


@pytest.mark.parametrize("name", ["no_such_figure", "../pyproject", ""])
def test_a_wrong_name_is_one_sentence(name):
    with pytest.raises((FileNotFoundError, ValueError)) as caught:
        paths.read_result(name)
    assert len(str(caught.value).splitlines()) == 1


def setup_cell(chapter: str) -> str:
    """The chapter's setup: its first code cell that sets RUNS (imports, folders)."""
    cells = json.loads((REPO / "chapters" / f"{chapter}.ipynb").read_text())["cells"]
    return next("".join(c["source"]) for c in cells
                if c["cell_type"] == "code" and "RUNS = " in "".join(c["source"]))


def test_chapters_start_with_no_repository_around(tmp_path):
    """As after `pip install` on Colab: the package alone on the path, the current folder
    empty. Each chapter's setup cell must run and put its runs in ./runs; the recorded
    figures must still read."""
    site, work = tmp_path / "site", tmp_path / "work"
    work.mkdir()
    shutil.copytree(REPO / "cooc_minimal", site / "cooc_minimal",
                    ignore=shutil.ignore_patterns("__pycache__"))
    script = "\n".join([
        "import json, sys",
        "from cooc_minimal import paths",
        "assert paths.repository() is None, paths.repository()",
        "assert paths.read_result('ch07_claims')['figure'] == 'ch07_claims'",
        "found = {}",
        "for name, source in json.loads(sys.argv[1]).items():",
        "    scope = {}",
        "    exec(compile(source, name, 'exec'), scope)",
        "    found[name] = str(scope['RUNS'])",
        "print(json.dumps(found))",
    ])
    cells = {name: setup_cell(name) for name in CHAPTERS_WITH_RUNS}
    env = {k: v for k, v in os.environ.items() if k not in ("COOC_RUNS", "PYTHONPATH")}
    env.update(PYTHONPATH=str(site), MPLBACKEND="Agg", OMP_NUM_THREADS="1")
    result = subprocess.run([sys.executable, "-c", script, json.dumps(cells)], cwd=work,
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found == {name: str(work.resolve() / "runs") for name in CHAPTERS_WITH_RUNS}


def test_source_commit_names_head_and_says_when_tracked_files_changed(tmp_path):
    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
                       cwd=tmp_path, check=True, capture_output=True)

    assert paths.source_commit(tmp_path) == "unknown"  # not a clone
    git("init", "-q")
    assert paths.source_commit(tmp_path) == "unknown"  # a clone with no commit yet
    (tmp_path / "a.txt").write_text("one\n")
    git("add", "a.txt")
    git("commit", "-qm", "first")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True,
                          text=True, check=True).stdout.strip()
    assert paths.source_commit(tmp_path) == head and len(head) == 40
    (tmp_path / "new.txt").write_text("untracked\n")
    assert paths.source_commit(tmp_path) == head  # untracked files do not count
    record = tmp_path / paths.RECORDS / "figure.json"
    record.parent.mkdir(parents=True)
    record.write_text("{}\n")
    git("add", ".")
    git("commit", "-qm", "a record")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True,
                          text=True, check=True).stdout.strip()
    record.write_text('{"rewritten": true}\n')
    assert paths.source_commit(tmp_path) == head  # a results script rewrote its record
    (tmp_path / "a.txt").write_text("two\n")
    assert paths.source_commit(tmp_path) == head + "-dirty"
