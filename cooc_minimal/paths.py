"""Where the course keeps its files, in a clone of the repository or after a ``pip install``.

- **Runs** (checkpoints and metrics, never in git): ``$COOC_RUNS`` if set, else ``runs/`` at
  the root of the repository the package was installed from (``pip install -e .``, as
  ``make`` does), else ``./runs`` in the current folder (a ``pip install`` on Colab).
- **Recorded figures** (the JSON files that chapters show and assert on: seeds, benchmarks):
  package data, ``cooc_minimal/results/<name>.json``, read with ``importlib.resources``, so
  a chapter runs with no repository around it. The scripts under ``chapters/results/`` and
  ``benchmarks/`` write them there, in a clone.
"""

from __future__ import annotations

import json
import os
import subprocess
from importlib import resources
from pathlib import Path

__all__ = ["SHARED_RUNS", "read_result", "repository", "result_names", "result_path",
           "runs_folder", "source_commit"]

#: The runs that several chapters and tests share, in the runs folder: folder name ->
#: (shipped config, overrides). ``book/train_shared_runs.py`` trains them all in parallel.
SHARED_RUNS: dict[str, tuple[str, tuple[str, ...]]] = {
    "texture_vicreg": ("texture", ()),
    "texture_independent_vicreg": ("texture", ("dataset=textureworld_independent",)),
    "toy_vicreg": ("smoke", ()),
    "toy_spectral": ("smoke", ("loss=spectral",)),
    "toy_vicreg_proj4": ("smoke", ("projector=512-4", "epochs=2")),
}

_PACKAGE = Path(__file__).resolve().parent
#: the records' folder, relative to the clone's root (source_commit leaves it out)
RECORDS = "cooc_minimal/results"


def repository() -> Path | None:
    """The repository's root when the package is used from a clone, else None."""
    root = _PACKAGE.parent
    is_clone = (root / "pyproject.toml").is_file() and (root / "chapters").is_dir()
    return root if is_clone else None


def runs_folder() -> Path:
    """The folder of run folders: ``$COOC_RUNS``, else the repository's ``runs/``, else
    ``./runs``. Not created here: ``ensure_trained`` creates a run's folder when it trains."""
    if os.environ.get("COOC_RUNS"):
        return Path(os.environ["COOC_RUNS"]).expanduser().resolve()
    root = repository()
    return (root / "runs") if root is not None else Path.cwd().resolve() / "runs"


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
        raise ValueError(f"a recorded figure's name is a plain file stem such as "
                         f"'ch07_claims', got {name!r}.")
    return name


def result_names(prefix: str = "") -> list[str]:
    """The names of the recorded figures starting with ``prefix``, sorted."""
    folder = resources.files("cooc_minimal").joinpath("results")
    return sorted(item.name[:-5] for item in folder.iterdir()
                  if item.name.endswith(".json") and item.name.startswith(prefix))


def read_result(name: str) -> dict:
    """The recorded figure ``cooc_minimal/results/<name>.json``, as a dict."""
    item = resources.files("cooc_minimal").joinpath("results", f"{_check_name(name)}.json")
    if not item.is_file():
        known = ", ".join(result_names()) or "none"
        raise FileNotFoundError(f"no recorded figure {name!r} (recorded: {known}): its script "
                                f"under chapters/results/ or benchmarks/ writes it.")
    return json.loads(item.read_text(encoding="utf-8"))


def result_path(name: str) -> Path:
    """Where a script writes the recorded figure ``name``: the package's ``results/``
    folder in the clone it runs from."""
    return _PACKAGE / "results" / f"{_check_name(name)}.json"


def source_commit(root: str | Path | None = None) -> str:
    """The commit a record is made at: HEAD's full hash in the clone ``root`` (default: the
    package's :func:`repository`), with ``-dirty`` when tracked files differ from it
    (untracked files do not count, nor the records themselves, ``cooc_minimal/results/``,
    which a results script rewrites: several scripts in a row at one commit stay clean);
    ``"unknown"`` outside a git clone or without git."""
    root = repository() if root is None else Path(root)
    if root is None:
        return "unknown"

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                                  check=False).stdout.strip()
        except OSError:  # no git on this machine
            return ""

    head = git("rev-parse", "--verify", "--quiet", "HEAD")  # nothing before a first commit
    if not head:
        return "unknown"
    tracked_changes = ["status", "--porcelain", "--untracked-files=no", "--", ".",
                       f":(exclude){RECORDS}"]
    changed = git(*tracked_changes)
    return head + ("-dirty" if changed else "")
