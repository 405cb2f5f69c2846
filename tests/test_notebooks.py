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


# A figure stated in prose must be one that a run recorded (issue 16): the README and every
# chapter's Markdown may state a percentage, or a number with 2 or 3 decimals, only if some
# number in cooc_minimal/results/*.json rounds to it (a percentage
# may be recorded as a fraction). Formulas and code are not prose: math ($...$, $$...$$),
# code spans and blocks, and version numbers are skipped. What stays is typed text, where a
# number can drift from the run it came from. An integer percentage is checked at its own
# precision (within half a point), so it can match some unrelated recorded number by chance:
# the check is exact for 91.1% or 0.93, weak for "about 30%".
RESULT_DIRS = ("cooc_minimal/results",)
NOT_PROSE = re.compile(r"```.*?```|\$\$.*?\$\$|\$[^$\n]+\$|`[^`\n]+`|<!--.*?-->", re.S)
VERSION = re.compile(r"(?:python3?|torch|pytorch|cuda)\W{0,3}\d+(?:\.\d+)+"
                     r"|\d+(?:\.\d+)+\s+or\s+newer", re.I)
# a figure keeps its sign when written with a minus sign (U+2212), as prose writes one; a
# hyphen before a number is left out: it is as often a range or a dash
FIGURE = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)\s?%|(?<![\w.])(\u2212?\d+\.\d{2,3})(?!\d|\.\d)")
NOT_MEASURED = {  # (document, figure): why the figure is not a measurement
    ("chapters/04_patches_and_bags.ipynb", "0.08"): "RandomResizedCrop's smallest area",
}


def prose_documents() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "chapters").glob("*.ipynb"))]


def prose(path: Path) -> str:
    if path.suffix != ".ipynb":
        return path.read_text()
    cells = json.loads(path.read_text())["cells"]
    return "\n\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")


def recorded_numbers() -> list[float]:
    def leaves(node):
        if isinstance(node, bool):
            return
        if isinstance(node, int | float):
            yield float(node)
        elif isinstance(node, dict | list):
            for value in node.values() if isinstance(node, dict) else node:
                yield from leaves(value)

    return [x for folder in RESULT_DIRS for path in sorted((REPO / folder).glob("*.json"))
            for x in leaves(json.loads(path.read_text()))]


def stated_figures(text: str) -> list[tuple[str, bool]]:
    """(figure, is a percentage) for every figure in the prose of text."""
    text = VERSION.sub(" ", NOT_PROSE.sub(" ", text))
    return [(m[1], True) if m[1] else (m[2], False) for m in FIGURE.finditer(text)]


def is_recorded(figure: str, percent: bool, numbers: list[float]) -> bool:
    value = float(figure.replace("\u2212", "-"))
    tolerance = 0.5 * 10 ** -len(figure.partition(".")[2]) + 1e-9
    return any(abs(x - value) <= tolerance or (percent and abs(100 * x - value) <= tolerance)
               for x in numbers)


def test_stated_figures_check_finds_typed_numbers():
    figures = stated_figures("reaches 91.1% and 0.93 (2.14.1, torch 2.14, $0.447$, `0.25`)")
    assert figures == [("91.1", True), ("0.93", False)]
    assert is_recorded("91.1", True, [0.911]) and is_recorded("0.93", False, [0.9295])
    assert not is_recorded("73", True, [0.63]) and not is_recorded("0.99", False, [0.98])
    signed = stated_figures("correlate negatively (\u22120.274, and 0.1-0.25)")
    assert signed == [("\u22120.274", False), ("0.25", False)]
    assert is_recorded(signed[0][0], False, [-0.2741]) and not is_recorded(signed[0][0], False,
                                                                            [0.274])


@pytest.mark.parametrize("path", prose_documents(), ids=lambda p: str(p.relative_to(REPO)))
def test_stated_figures_are_recorded(path):
    numbers, name = recorded_numbers(), str(path.relative_to(REPO))
    missing = sorted({figure + ("%" if percent else "")
                      for figure, percent in stated_figures(prose(path))
                      if (name, figure) not in NOT_MEASURED
                      and not is_recorded(figure, percent, numbers)})
    assert not missing, (f"{name} states {missing}, found in no {' or '.join(RESULT_DIRS)} "
                         f"file: record the figure with the run that made it, print it from "
                         f"code, or remove it")


def notation_table(text: str) -> list[str]:
    lines = [line.strip() for line in text.splitlines()]
    start = lines.index("| symbol | meaning |")
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")),
               len(lines))
    return lines[start:end]


def test_readme_and_chapter_5_share_one_notation_table():
    readme = notation_table((REPO / "README.md").read_text())
    chapter = notation_table(prose(REPO / "chapters" / "05_toy_world_on_a_cpu.ipynb"))
    assert len(readme) > 2 and readme == chapter, (
        "README.md's notation table and chapter 5's differ: keep one table, copied exactly")
