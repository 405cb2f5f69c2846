"""The book's structure builds, and the build fails on what should fail it.

The full, executing build is `make book`; here the structure is built without
execution (toc, citations, cross-references), and two small throw-away books
prove that a raising cell or an unknown citation fails the build.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
JUPYTER_BOOK = str(Path(sys.executable).parent / "jupyter-book")


def build(source: Path, output: Path, execute: bool):
    config = yaml.safe_load((REPO / "book" / "_config.yml").read_text())
    if not execute:
        config["execute"]["execute_notebooks"] = "off"
    config_path = output / "_config.yml"
    output.mkdir(parents=True, exist_ok=True)
    config_path.write_text(yaml.safe_dump(config))
    return subprocess.run(
        [JUPYTER_BOOK, "build", str(source), "--config", str(config_path),
         "--toc", str(source / "book" / "_toc.yml"), "--path-output", str(output), "-W",
         "--keep-going"],
        capture_output=True, text=True, cwd=source,
    )


def test_book_structure_builds_without_warnings(tmp_path):
    result = build(REPO, tmp_path / "out", execute=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (tmp_path / "out" / "_build" / "html" / "index.html").exists()


def tiny_book(root: Path, page: nbformat.NotebookNode) -> Path:
    (root / "book").mkdir(parents=True)
    shutil.copy(REPO / "book" / "references.bib", root / "book" / "references.bib")
    (root / "book" / "intro.md").write_text("# A tiny book\n")
    (root / "book" / "_toc.yml").write_text(
        "format: jb-book\nroot: book/intro\nchapters:\n  - file: page\n")
    page.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                   "language": "python"}
    nbformat.write(page, root / "page.ipynb")
    return root


BROKEN_REFERENCES = {
    "citation-executed": ("As shown by {cite}`nobody2099`.", "nobody2099", True),
    "citation-structure": ("As shown by {cite}`nobody2099`.", "nobody2099", False),
    "doc-link": ("See {doc}`no_such_page`.", "no_such_page", False),
    "toc-entry": ("Fine text.", "not_there", False),
}


@pytest.mark.parametrize("case", BROKEN_REFERENCES)
def test_a_broken_reference_fails_the_build(tmp_path, case):
    text, culprit, execute = BROKEN_REFERENCES[case]
    page = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(f"# Page\n\n{text}")])
    source = tiny_book(tmp_path / "src", page)
    if case == "toc-entry":
        toc = source / "book" / "_toc.yml"
        toc.write_text(toc.read_text() + f"  - file: {culprit}\n")
    result = build(source, tmp_path / "out", execute=execute)
    assert result.returncode != 0
    assert culprit in result.stdout + result.stderr


def test_a_raising_cell_fails_the_executed_build(tmp_path):
    page = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# Page"),
        nbformat.v4.new_code_cell("raise RuntimeError('this cell is broken on purpose')")])
    result = build(tiny_book(tmp_path / "src", page), tmp_path / "out", execute=True)
    assert result.returncode != 0
    assert "broken on purpose" in result.stdout + result.stderr


def test_a_raising_cell_fails_nbval(tmp_path):
    page = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("assert 1 + 1 == 3")])
    page.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                   "language": "python"}
    nbformat.write(page, tmp_path / "bad.ipynb")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
         "--nbval-current-env", str(tmp_path / "bad.ipynb")],
        capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 1, result.stdout[-2000:]
    assert "1 failed" in result.stdout
