"""The run folder holds up: one run at a time, metrics that survive a kill, no leftovers,
checkpoints checked before a resume, a full disk told in one sentence (issue 18)."""

import csv
import errno
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from PIL import Image
from train_tiny import tiny_config

from cooc_minimal import runs
from cooc_minimal.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from cooc_minimal.cli import train_main
from cooc_minimal.config import save_config
from cooc_minimal.train import RunFolderError, ensure_trained, train

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _rows(run: Path) -> list[dict]:
    with open(run / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def _steps(rows: list[dict]) -> list[tuple[int, float]]:
    return [(int(r["step"]), float(r["loss"])) for r in rows if r["kind"] == "step"]


def one_sentence(err: str, prog: str = "cooc-train") -> bool:
    lines = [line for line in err.splitlines() if line.strip()]
    return len(lines) == 1 and lines[0].startswith(f"{prog}: ") and "Traceback" not in err


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> Path:
    """2 epochs of 4 steps, uninterrupted: the reference."""
    out = tmp_path_factory.mktemp("straight") / "run"
    train(tiny_config(), out, progress=False)
    return out


@pytest.fixture(scope="module")
def half(tmp_path_factory) -> Path:
    """The same run stopped after epoch 1 (checkpoint at step 4); tests copy it."""
    out = tmp_path_factory.mktemp("half") / "run"
    train(tiny_config(), out, stop_after_epochs=1, progress=False)
    return out


def _copy(run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run, tmp_path / "run"))


def _config_file(tmp_path: Path) -> str:
    return str(save_config(tiny_config(), tmp_path / "tiny.toml"))


# ------------------------------------------------------------------ one run per folder

HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from cooc_minimal.runs import locked_run_folder
    with locked_run_folder(Path(sys.argv[1]), resume=False):
        print("held", flush=True)
        sys.stdin.readline()
""")


def test_a_second_run_into_a_held_folder_is_refused_with_the_holders_pid(tmp_path, capsys):
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], cwd=REPO,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        code = train_main(["--config", _config_file(tmp_path), "--out", str(out),
                           "--no-progress"])
        err = capsys.readouterr().err
        assert code == 2 and one_sentence(err), err
        assert f"Another run (PID {holder.pid} on " in err and str(out) in err
        assert not (out / "last.pt").exists() and not (out / "config.toml").exists()
    finally:
        holder.communicate("\n", timeout=30)
    assert holder.returncode == 0 and not (out / ".lock").exists()
    assert train_main(["--config", _config_file(tmp_path), "--out", str(out),
                       "--no-progress"]) == 0  # free again: the run goes ahead


def test_the_lock_is_taken_by_the_library_too_and_released_at_every_end(tmp_path, half):
    out = _copy(half, tmp_path)
    with runs.locked_run_folder(out, resume=True):  # another holder in this very process
        with pytest.raises(RunFolderError, match=f"PID {os.getpid()} on .* is writing to"):
            train(tiny_config(), out, resume=True, progress=False)
        with pytest.raises(RunFolderError, match="is writing to"):
            ensure_trained(tiny_config(), out, progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["config.toml", "last.pt", "metrics.csv"]
    with pytest.raises(RunFolderError, match="epochs = 2 there, 3 here"):  # refused inside
        train(tiny_config(epochs=3), out, resume=True, progress=False)
    (out / ".lock").write_text("12345 elsewhere\n")  # left by a run killed with -9
    assert train(tiny_config(), out, resume=True, progress=False)["finished"]
    assert not (out / ".lock").exists()


def test_a_refused_new_run_leaves_no_empty_folder_behind(tmp_path):
    with pytest.raises(FileNotFoundError, match="imagefolder was not found"):
        train(tiny_config(dataset="imagefolder", data_root=str(tmp_path / "none"),
                          image_size=32), tmp_path / "new" / "run", progress=False)
    assert not (tmp_path / "new" / "run").exists()


# ------------------------------------------------------------------ metrics.csv survives

def _stopped_mid_epoch_two(tmp_path: Path) -> Path:
    """A run killed after step 6: metrics rows 1-6 and epoch 1, checkpoint at step 4."""
    out = tmp_path / "run"

    class Killed(Exception):
        pass

    def kill(row):
        if row["step"] == 6:
            raise Killed

    with pytest.raises(Killed):
        train(tiny_config(), out, progress=False, on_step=kill)
    assert load_checkpoint(out / "last.pt")["step"] == 4
    assert [s for s, _ in _steps(_rows(out))] == [1, 2, 3, 4, 5, 6]
    return out


KILLED_AT_RENAME = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, sys.argv[2])
    import torch
    torch.set_num_threads(1)
    from train_tiny import tiny_config
    from cooc_minimal.train import train
    real = os.replace
    def replace(src, dst):
        if str(dst).endswith("metrics.csv"):
            os._exit(9)  # kill -9 at the worst moment: the kept rows written, not renamed
        return real(src, dst)
    os.replace = replace
    train(tiny_config(), sys.argv[1], resume=True, progress=False)
""")


def test_a_kill_during_the_resumes_metrics_rewrite_loses_no_row(straight, tmp_path):
    out = _stopped_mid_epoch_two(tmp_path)
    before = (out / "metrics.csv").read_bytes()
    killed = subprocess.run([sys.executable, "-c", KILLED_AT_RENAME, str(out), str(TESTS)],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert killed.returncode == 9, killed.stderr
    assert (out / "metrics.csv").read_bytes() == before  # untouched, not cut
    assert [p.name for p in out.glob(".metrics.csv.tmp*")]  # what the kill left
    done = train(tiny_config(), out, resume=True, progress=False)
    assert done["finished"]
    assert sorted(p.name for p in out.iterdir()) == ["config.toml", "last.pt", "metrics.csv"]
    rows, reference = _rows(out), _rows(straight)
    assert [s for s, _ in _steps(rows)] == list(range(1, 9))  # 5 and 6 once, not twice
    assert [loss for _, loss in _steps(rows)] == pytest.approx(
        [loss for _, loss in _steps(reference)], rel=1e-6)
    assert [r["epoch"] for r in rows if r["kind"] == "epoch"] == ["1", "2"]


def test_a_last_line_cut_by_a_kill_is_dropped_and_a_bad_line_inside_refused(tmp_path):
    out = _stopped_mid_epoch_two(tmp_path)
    with open(out / "metrics.csv", "a") as f:
        f.write("step,2,7,0.51")  # the kill came mid-row
    assert train(tiny_config(), out, resume=True, progress=False)["finished"]
    assert [s for s, _ in _steps(_rows(out))] == list(range(1, 9))
    lines = (out / "metrics.csv").read_text().splitlines()
    (out / "metrics.csv").write_text("\n".join(lines[:3] + ["garbage"] + lines[3:]) + "\n")
    with pytest.raises(RunFolderError, match="Line 4 of .*metrics.csv is not a metrics row"):
        runs.MetricsLog(out / "metrics.csv", fresh=False, step=8, epoch=2)


def test_missing_epoch_rows_are_said_not_passed_over(half, tmp_path, capsys):
    out = _copy(half, tmp_path)
    lines = (out / "metrics.csv").read_text().splitlines()
    (out / "metrics.csv").write_text("\n".join(lines[:3]) + "\n")  # cut: 2 rows kept
    assert train(tiny_config(), out, resume=True, progress=False)["finished"]
    err = capsys.readouterr().err
    assert "has no row for epoch 1, though the checkpoint is past it" in err


def test_stale_temporaries_of_killed_runs_are_removed_on_start(half, tmp_path):
    out = _copy(half, tmp_path)
    for name in (".last.pt.tmp4242", ".metrics.csv.tmp77", ".config.toml.tmp9"):
        (out / name).write_bytes(b"half a file")
    (out / "notes.txt").write_text("mine")  # not ours: kept
    assert train(tiny_config(), out, resume=True, progress=False)["finished"]
    assert sorted(p.name for p in out.iterdir()) == ["config.toml", "last.pt", "metrics.csv",
                                                     "notes.txt"]


# ------------------------------------------------------------------ checkpoints checked

def _edit(state: dict, change: str) -> None:
    if change == "weight":
        state["model"].pop(next(iter(state["model"])))
    elif change == "version":
        state["version"] = "9.0.0"
    elif change == "step":
        state["step"] = "four"
    elif change == "views":
        state["rng"]["generators"].pop("views")
    else:
        state.pop(change)


@pytest.mark.parametrize("change, words", [
    ("rng", "lacks the entry 'rng' (the random states)"),
    ("optimizer", "lacks the entry 'optimizer'"),
    ("epoch_sums", "lacks the entry 'epoch_sums'"),
    ("weight", "does not fit the run its config describes (Error(s) in loading"),
    ("version", "was written by cooc_minimal 9.0.0, and this is"),
    ("step", "holds step = str"),
    ("views", "lacks rng.generators.views"),
])
def test_a_checkpoint_missing_what_a_resume_reads_is_one_sentence(half, tmp_path, capsys,
                                                                  change, words):
    out = _copy(half, tmp_path)
    state = torch.load(out / "last.pt", weights_only=True)
    _edit(state, change)
    torch.save(state, out / "last.pt")
    before = (out / "last.pt").read_bytes()
    assert train_main(["--out", str(out), "--resume", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert one_sentence(err) and words in err, err
    assert (out / "last.pt").read_bytes() == before


def test_a_checkpoint_without_a_version_is_refused(tmp_path):
    state = {"model": {}, "config": {}}
    torch.save(state, tmp_path / "old.pt")
    with pytest.raises(CheckpointError, match="has no 'version' entry"):
        load_checkpoint(tmp_path / "old.pt")


def _images(folder: Path, count: int, start: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(start)
    for i in range(start, start + count):
        pixels = (torch.rand(32, 32, 3, generator=g) * 255).to(torch.uint8).numpy()
        Image.fromarray(pixels).save(folder / f"{i}.png")


def test_other_data_than_the_runs_is_refused_on_resume(tmp_path):
    root = tmp_path / "images"
    for c in ("a", "b"):
        _images(root / "train" / c, 8)
    cfg = tiny_config(dataset="imagefolder", data_root=str(root), image_size=32,
                      train_images=0, batch_size=8, probe=False, num_workers=0)
    train(cfg, tmp_path / "run", stop_after_epochs=1, progress=False)
    _images(root / "train" / "a", 4, start=8)  # 20 images: still 2 steps per epoch
    with pytest.raises(RunFolderError, match="trained on 16 images .* has 20"):
        train(cfg, tmp_path / "run", resume=True, progress=False)


# ------------------------------------------------------------------ a full disk

@pytest.mark.parametrize("failure", [
    OSError(errno.ENOSPC, "No space left on device"),
    RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 64 vs 0"),
])
def test_a_full_disk_at_checkpoint_time_is_one_sentence_and_keeps_the_last_one(
        half, tmp_path, monkeypatch, capsys, failure):
    out = _copy(half, tmp_path)
    before = (out / "last.pt").read_bytes()

    def full(obj, f):
        f.write(b"PK\x03\x04 a few bytes")
        raise failure

    monkeypatch.setattr(torch, "save", full)
    assert train_main(["--out", str(out), "--resume", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert one_sentence(err), err
    assert "Writing the checkpoint" in err and "the previous last.pt there is intact" in err
    assert (out / "last.pt").read_bytes() == before
    assert not list(out.glob(".last.pt.tmp*"))
    monkeypatch.undo()
    assert train(tiny_config(), out, resume=True, progress=False)["finished"]


def test_a_full_disk_while_logging_is_one_sentence(half, tmp_path, monkeypatch):
    out = _copy(half, tmp_path)

    def full(path, mode="r", **kwargs):
        if "a" in mode:
            raise OSError(errno.ENOSPC, "No space left on device")
        return open(path, mode, **kwargs)

    monkeypatch.setattr(runs, "open", full, raising=False)  # runs' appends only
    with pytest.raises(RunFolderError, match="Writing .*metrics.csv failed .*No space left"):
        train(tiny_config(), out, resume=True, progress=False)


def test_save_checkpoint_names_a_full_disk(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "last.pt", {"model": {}, "config": {}})
    monkeypatch.setattr(torch, "save", lambda obj, f: (_ for _ in ()).throw(
        OSError(errno.ENOSPC, "No space left on device")))
    with pytest.raises(CheckpointError, match="no space left on the device"):
        save_checkpoint(path, {"model": {}, "config": {}})
    assert load_checkpoint(path)["model"] == {}


SHARER = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[2])
    from train_tiny import tiny_config
    from cooc_minimal.train import ensure_trained
    print(ensure_trained(tiny_config(epochs=3), sys.argv[1], progress=False), flush=True)
""")


def test_two_processes_that_need_the_same_run_share_one_training(tmp_path):
    """Notebooks run in parallel and ask for the same shared run: one trains it, the other
    waits for it and reads the finished checkpoint; nothing is trained twice."""
    out = tmp_path / "shared"
    sharers = [subprocess.Popen([sys.executable, "-c", SHARER, str(out), str(TESTS)], cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "OMP_NUM_THREADS": "1"})
               for _ in range(2)]
    results = [sharer.communicate(timeout=300) for sharer in sharers]
    for sharer, (stdout, stderr) in zip(sharers, results, strict=True):
        assert sharer.returncode == 0, stderr
        assert stdout.strip().splitlines()[-1] == str(out / "last.pt")
    with open(out / "metrics.csv", newline="") as handle:
        steps = [row["step"] for row in csv.DictReader(handle) if row["kind"] == "step"]
    assert len(steps) == len(set(steps)) == 12  # one run's steps, each once (3 epochs x 4)
