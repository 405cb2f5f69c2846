"""Every notebook is committed clean, runs on the python3 kernel, and is in the book."""

import json
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK_DIRS = ("chapters", "exercises")


def notebooks() -> list[Path]:
    return sorted(p for d in NOTEBOOK_DIRS for p in (REPO / d).rglob("*.ipynb")
                  if ".ipynb_checkpoints" not in p.parts)


def toc_entries(node) -> list[str]:
    entries = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("file", "root"):
                entries.append(value)
            else:
                entries += toc_entries(value)
    elif isinstance(node, list):
        for item in node:
            entries += toc_entries(item)
    return entries


def test_there_are_notebooks():
    assert len(notebooks()) >= 2


@pytest.mark.parametrize("path", notebooks(), ids=lambda p: str(p.relative_to(REPO)))
def test_notebook_is_committed_without_outputs_on_python3(path):
    notebook = json.loads(path.read_text())
    assert notebook["metadata"].get("kernelspec", {}).get("name") == "python3", (
        f"{path.name}: set the kernelspec to python3")
    dirty = [i for i, cell in enumerate(notebook["cells"]) if cell["cell_type"] == "code"
             and (cell.get("outputs") or cell.get("execution_count") is not None)]
    assert not dirty, f"{path.name}: clear the outputs of cells {dirty} before committing"


def test_toc_and_notebooks_match():
    toc = yaml.safe_load((REPO / "book" / "_toc.yml").read_text())
    entries = toc_entries(toc)
    missing = [e for e in entries
               if not any((REPO / f"{e}{suffix}").exists() for suffix in (".md", ".ipynb"))]
    assert not missing, f"toc entries without a file: {missing}"
    listed = {str(REPO / e) for e in entries}
    orphans = [str(p.relative_to(REPO)) for p in notebooks()
               if str(p.with_suffix("")) not in listed]
    assert not orphans, f"notebooks missing from book/_toc.yml: {orphans}"


SHOWN = re.compile(r"show_source\(([^)]*)\)")


@pytest.mark.parametrize("path", notebooks(), ids=lambda p: str(p.relative_to(REPO)))
def test_a_notebook_shows_only_public_library_code(path):
    notebook = json.loads(path.read_text())
    shown = [name for cell in notebook["cells"] if cell["cell_type"] == "code"
             for name in SHOWN.findall("".join(cell["source"]))]
    private = [name for name in shown
               if any(part.startswith("_") for part in re.split(r"[.\[\]\"'(, ]+", name))]
    assert not private, (f"{path.name} shows private code {private}: what the book teaches is "
                         f"the public API, so make the function public or show its caller")
