"""Lay out the book's sources with the notebooks nbval already executed, ready to build.

    python book/stage_executed.py EXECUTED STAGE

EXECUTED holds the notebooks that ``pytest --save-executed EXECUTED`` wrote (conftest.py):
every notebook whose cells all passed, with its outputs. STAGE receives a copy of ``book/``,
every page of ``book/_toc.yml`` (executed notebooks from EXECUTED, Markdown pages from the
repository) and ``book/_config_executed.yml``, the book's config with execution off. The
book built from STAGE shows the very outputs nbval checked, so no notebook runs twice.
A page of the table of contents with no executed notebook stops this with one sentence.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
STAGED_CONFIG = "_config_executed.yml"


def toc_files(node) -> list[str]:
    """Every ``file`` and ``root`` entry of a parsed ``_toc.yml``, in reading order."""
    if isinstance(node, dict):
        found = [node[key] for key in ("root", "file") if key in node]
        return found + [f for key, value in node.items() if key not in ("root", "file")
                        for f in toc_files(value)]
    if isinstance(node, list):
        return [f for item in node for f in toc_files(item)]
    return []


def stage(executed: Path, out: Path) -> list[str]:
    """Fill ``out`` as described in the module docstring; returns the pages staged."""
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(ROOT / "book", out / "book", ignore=shutil.ignore_patterns("_build"))
    pages = toc_files(yaml.safe_load((ROOT / "book" / "_toc.yml").read_text()))
    missing = []
    for page in pages:
        notebook, markdown = Path(f"{page}.ipynb"), Path(f"{page}.md")
        if (ROOT / notebook).exists():
            source = executed / notebook
            if not source.exists():
                missing.append(str(notebook))
                continue
        else:
            source = ROOT / markdown
        target = out / (notebook if source.suffix == ".ipynb" else markdown)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    if missing:
        raise SystemExit(f"stage_executed: no executed copy of {', '.join(missing[:3])} in "
                         f"{executed}: run the notebooks first (pytest --nbval-lax chapters "
                         f"exercises --save-executed {executed}); a notebook whose cell failed "
                         f"is not saved.")
    config = yaml.safe_load((ROOT / "book" / "_config.yml").read_text())
    config["execute"]["execute_notebooks"] = "off"
    (out / "book" / STAGED_CONFIG).write_text(yaml.safe_dump(config, sort_keys=False))
    return pages


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: python book/stage_executed.py EXECUTED_DIR STAGE_DIR")
    staged = stage(Path(sys.argv[1]), Path(sys.argv[2]))
    print(f"stage_executed: {len(staged)} pages in {sys.argv[2]}")
