"""pytest options of the whole course (``make test``, ``make quick``, ``make test CHAPTER=NN``).

- ``--save-executed DIR``: nbval runs every notebook, as always; each notebook whose cells all
  passed is then written, outputs included, to ``DIR/<its path in the repository>``.
  ``book/stage_executed.py`` builds the book from those copies with execution off, so each
  notebook runs once per ``make test``.
- ``--chapter NN``: keep only chapter NN's notebook, its exercise set and the tests of the
  modules that chapter teaches (``cooc_minimal.MODULES``), e.g. ``--chapter 07``.
- At the end, the ten slowest notebooks (all their cells) and tests, with their seconds;
  ``--slowest-file PATH`` adds this session's to those of earlier sessions kept in PATH, so
  ``make test`` (unit tests in two workers, then the notebooks in two workers) ends with one
  list.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent
SLOWEST = 10


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--save-executed", metavar="DIR", default=None,
                     help="write each notebook nbval ran without a failure, with its "
                          "outputs, under DIR (same relative path as in the repository)")
    parser.addoption("--chapter", metavar="NN", default=None,
                     help="keep only chapter NN's notebook, its exercise set and the tests of "
                          "the modules that chapter teaches (cooc_minimal.MODULES)")
    parser.addoption("--slowest-file", metavar="PATH", default=None,
                     help="keep every item's seconds in PATH (JSON) and list the slowest of "
                          "this session and the earlier ones kept there")


def _is_notebook_cell(item: pytest.Item) -> bool:
    return type(item).__name__ == "IPyNbCell"


# ------------------------------------------------------------------------ one chapter

def chapters_of(text: str) -> set[int]:
    """``"1-2"`` -> {1, 2}; ``"3, 6"`` -> {3, 6}: the chapter column of cooc_minimal.MODULES."""
    chapters: set[int] = set()
    for part in text.split(","):
        low, _, high = part.strip().partition("-")
        chapters.update(range(int(low), int(high or low) + 1))
    return chapters


def tests_of_chapter(chapter: int) -> set[str]:
    """The unit-test files of the modules a chapter teaches: ``tests/test_<module>.py``."""
    import cooc_minimal

    return {f"test_{name}.py" for name, _, taught in cooc_minimal.MODULES
            if chapter in chapters_of(taught)}


def _belongs_to_chapter(item: pytest.Item, chapter: int) -> bool:
    path = Path(str(item.fspath))
    if path.suffix == ".ipynb":
        return re.match(rf"(ex)?{chapter:02d}_", path.name) is not None
    if path.name in ("test_exercises.py", "test_grade.py"):
        return f"ex{chapter:02d}" in item.nodeid
    return path.name in tests_of_chapter(chapter)


def pytest_configure(config: pytest.Config) -> None:
    """Refuse a ``--chapter`` the course does not have before collecting anything."""
    wanted = config.getoption("--chapter")
    if wanted is None:
        return
    if not wanted.isdigit():
        raise pytest.UsageError(f"--chapter must be a chapter number such as 07, got "
                                f"{wanted!r}.")
    chapters = sorted(path.name[:2] for path in (ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))
    if f"{int(wanted):02d}" not in chapters:
        raise pytest.UsageError(f"There is no chapter {int(wanted):02d}: the chapters are "
                                f"{chapters[0]} to {chapters[-1]} (CHAPTER=07, for example).")


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    wanted = config.getoption("--chapter")
    if wanted is not None:
        kept = [item for item in items if _belongs_to_chapter(item, int(wanted))]
        config.hook.pytest_deselected(items=[i for i in items if i not in kept])
        items[:] = kept
    _mark_last_cells(items)


# ------------------------------------------------------------- executed notebooks kept

def _mark_last_cells(items: list[pytest.Item]) -> None:
    """Tell the last cell of each notebook that it writes the notebook out."""
    last, counts = {}, defaultdict(int)
    for item in items:
        if _is_notebook_cell(item):
            last[item.parent] = item
            counts[item.parent] += 1
    for notebook, item in last.items():
        item._writes_notebook = notebook
        notebook._cells_total = counts[notebook]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    if call.when != "call" or not _is_notebook_cell(item):
        return
    report = outcome.get_result()
    notebook = item.parent
    if report.passed or report.skipped:
        notebook._cells_done = getattr(notebook, "_cells_done", 0) + 1
    if item.test_outputs is not None:  # None: nbval skipped the cell
        item.cell.outputs = [nbformat.from_dict(out) for out in item.test_outputs]
        item.cell.execution_count = item.cell_num + 1


def pytest_runtest_teardown(item: pytest.Item) -> None:
    target = item.config.getoption("--save-executed")
    notebook = getattr(item, "_writes_notebook", None)
    if target is None or notebook is None:
        return
    if getattr(notebook, "_cells_done", 0) != notebook._cells_total:
        return  # a cell failed or did not run: the book build will say this one is missing
    path = Path(str(notebook.fspath)).resolve()
    out = Path(target) / path.relative_to(ROOT)
    out.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook.nb, out)


# ------------------------------------------------------------------- the slowest items

_seconds: dict[str, float] = defaultdict(float)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    path, _, _ = report.nodeid.partition("::")
    key = path if path.endswith(".ipynb") else report.nodeid  # a notebook counts whole
    _seconds[key] += report.duration


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    seconds_of = dict(_seconds)
    kept = config.getoption("--slowest-file")
    if kept is not None:
        path = Path(kept)
        earlier = json.loads(path.read_text()) if path.exists() else {}
        seconds_of = {**earlier, **seconds_of}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(seconds_of))
    if not seconds_of:
        return
    slowest = sorted(seconds_of.items(), key=lambda kv: kv[1], reverse=True)[:SLOWEST]
    terminalreporter.section(f"the {len(slowest)} slowest notebooks and tests")
    for key, seconds in slowest:
        terminalreporter.write_line(f"{seconds:7.1f} s  {key}")
