"""Every bad input of issue 18 ends with one sentence on stderr and exit status 2, no
traceback, before any work: cooc-train and cooc-eval run in this process (and, for two of
them, in a real one)."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from train_tiny import tiny_config

from cooc_minimal import cli, runs
from cooc_minimal.checkpoint import load_checkpoint, save_checkpoint
from cooc_minimal.cli import eval_main, train_main
from cooc_minimal.config import save_config
from cooc_minimal.train import train

REPO = Path(__file__).resolve().parent.parent


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def said(capsys, prog: str) -> str:
    """stderr, checked to be one line starting with ``prog:`` and without a traceback."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: ") and "Traceback" not in err, err
    return lines[0]


def _config(tmp_path: Path, **changes) -> str:
    return str(save_config(tiny_config(**changes), tmp_path / "tiny.toml"))


def _images(root: Path, classes=("a", "b"), count: int = 8) -> Path:
    g = torch.Generator().manual_seed(0)
    for split in ("train", "val"):
        for c in classes:
            (root / split / c).mkdir(parents=True)
            for i in range(count):
                pixels = (torch.rand(32, 32, 3, generator=g) * 255).to(torch.uint8).numpy()
                Image.fromarray(pixels).save(root / split / c / f"{i}.png")
    return root


def _spoil(path: Path, kind: str) -> Path:
    if kind == "jpeg":  # a JPEG whose header is garbage
        bad = path.with_suffix(".jpg")
        Image.open(path).save(bad)
        raw = bad.read_bytes()
        bad.write_bytes(raw[:2] + os.urandom(60) + raw[62:])
        path.unlink()
        return bad
    path.write_bytes(path.read_bytes()[:200])  # a PNG cut short
    return path


FOLDER = dict(dataset="imagefolder", image_size=32, train_images=0, batch_size=8,
              num_workers=0)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "run"
    train(tiny_config(epochs=1), out, progress=False)
    return out / "last.pt"


# ------------------------------------------------------------------ cooc-train

def test_out_that_is_a_file_or_lies_below_one(tmp_path, capsys):
    (tmp_path / "file").write_text("not a folder")
    for out, words in ((tmp_path / "file", "is a file, not a folder"),
                       (tmp_path / "file" / "run", f"lies below {tmp_path / 'file'}, which is "
                                                   f"a file")):
        assert train_main(["--config", _config(tmp_path), "--out", str(out)]) == 2
        assert words in said(capsys, "cooc-train")
    assert (tmp_path / "file").read_text() == "not a folder"


def test_out_that_cannot_be_written(tmp_path, capsys, monkeypatch):
    real = os.open

    def read_only(path, flags, *args):
        if str(path).endswith(runs.LOCK):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, flags, *args)

    monkeypatch.setattr(runs.os, "open", read_only)
    (tmp_path / "ro").mkdir()
    assert train_main(["--config", _config(tmp_path), "--out", str(tmp_path / "ro")]) == 2
    assert "is not writable (Permission denied)" in said(capsys, "cooc-train")
    assert list((tmp_path / "ro").iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_for_real(tmp_path, capsys):
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro").chmod(0o500)
    try:
        assert train_main(["--config", _config(tmp_path), "--out",
                           str(tmp_path / "ro" / "run")]) == 2
        assert "cannot be made (Permission denied)" in said(capsys, "cooc-train")
    finally:
        (tmp_path / "ro").chmod(0o700)


@pytest.mark.parametrize("overrides, words", [
    (["projector=10000000000"], "each width must be at most 65536"),
    (["loss_coeffs=5"], "set one coefficient with --set loss_coeffs.NAME=VALUE"),
    (["n_patches=100000000"], "One step's views (16 images x 100000000 patches of 8 px) needs "
                              "about"),
])
def test_sizes_and_tables_that_cannot_be(tmp_path, capsys, overrides, words):
    argv = ["--config", _config(tmp_path), "--out", str(tmp_path / "run"), "--no-progress"]
    for item in overrides:
        argv += ["--set", item]
    assert train_main(argv) == 2
    assert words in said(capsys, "cooc-train")
    assert not (tmp_path / "run").exists()


def test_a_config_file_that_is_not_utf8_is_named(tmp_path, capsys):
    path = tmp_path / "latin.toml"
    path.write_bytes('name = "d\xe9j\xe0 vu"\n'.encode("latin-1"))
    assert train_main(["--config", str(path), "--out", str(tmp_path / "run")]) == 2
    assert f"{path} is not UTF-8 text" in said(capsys, "cooc-train")


def test_a_metrics_file_without_its_header(tmp_path, capsys):
    out = tmp_path / "run"
    train(tiny_config(), out, stop_after_epochs=1, progress=False)
    text = (out / "metrics.csv").read_text()
    (out / "metrics.csv").write_text(text.split("\n", 1)[1])
    assert train_main(["--out", str(out), "--resume", "--no-progress"]) == 2
    assert "metrics.csv does not start with its header line kind,epoch" in said(
        capsys, "cooc-train")
    assert (out / "metrics.csv").read_text() == text.split("\n", 1)[1]  # left as it was


@pytest.mark.parametrize("kind", ["jpeg", "png"])
def test_a_corrupt_image_stops_training_and_is_named(tmp_path, capsys, kind):
    root = _images(tmp_path / "images")
    bad = _spoil(root / "train" / "b" / "3.png", kind)
    config = _config(tmp_path, data_root=str(root), **FOLDER)
    assert train_main(["--config", config, "--out", str(tmp_path / "run"),
                       "--no-progress"]) == 2
    assert f"The image {bad} cannot be read (" in said(capsys, "cooc-train")


def test_a_one_class_folder_with_the_online_probe(tmp_path, capsys):
    root = _images(tmp_path / "images", classes=("only",))
    config = _config(tmp_path, data_root=str(root), **FOLDER)
    assert train_main(["--config", config, "--out", str(tmp_path / "run")]) == 2
    assert "has one class (only), so the online probe" in said(capsys, "cooc-train")


# ------------------------------------------------------------------ cooc-eval

def _eval(checkpoint: Path, *options: str) -> int:
    return eval_main(["--checkpoint", str(checkpoint), "--no-progress", "--device", "cpu",
                      "--limit", "40", *options])


@pytest.mark.parametrize("options, words", [
    (["--patches", "1000000000"], "Bags of up to 1000000000 patches of 8 px"),
    (["--convergence", "1000000000", "--patches", "none"], "Bags of up to 1000000000"),
    (["--patch-size", "0"], "patch_size (--patch-size) must be a positive integer, got 0."),
    (["--out-size", "0"], "out_size (--out-size) must be a positive integer, got 0."),
    (["--k", "0"], "k (--k) must be a positive integer"),
    (["--temperature", "0"], "temperature (--temperature) must be a positive number"),
    (["--batch-size", "-1"], "batch_size (--batch-size) must be a positive integer"),
    (["--num-workers", "-2"], "num_workers (--num-workers) must be an integer >= 0"),
])
def test_eval_options_are_checked_before_any_work(checkpoint, capsys, options, words):
    assert _eval(checkpoint, *options) == 2
    message = said(capsys, "cooc-eval")
    assert words in message
    if "Bags" in message:
        assert "more than the" in message and "--patches" in message


@pytest.mark.parametrize("where, words", [
    ("folder", "is a folder: pass a file path"),
    ("below", "which is a file, not a folder"),
    ("read-only", "cannot be written (Permission denied)"),
])
def test_json_is_checked_before_the_evaluation(checkpoint, tmp_path, capsys, monkeypatch,
                                               where, words):
    (tmp_path / "file").write_text("x")
    path = {"folder": tmp_path, "below": tmp_path / "file" / "rows.json",
            "read-only": tmp_path / "ro" / "rows.json"}[where]
    if where == "read-only":
        def denied(file, mode="r", *args, **kwargs):
            raise PermissionError(13, "Permission denied", str(file))

        monkeypatch.setattr(cli, "open", denied, raising=False)
    monkeypatch.setattr(cli, "evaluate_checkpoint",
                        lambda *a, **k: pytest.fail("evaluated before checking --json"))
    assert _eval(checkpoint, "--json", str(path)) == 2
    assert words in said(capsys, "cooc-eval")


def test_json_is_written_whole(checkpoint, tmp_path, capsys):
    path = tmp_path / "new" / "rows.json"
    assert _eval(checkpoint, "--patches", "1", "--json", str(path)) == 0
    assert path.read_text().startswith("[") and not list(path.parent.glob(".rows.json.tmp*"))


@pytest.mark.parametrize("kind", ["jpeg", "png"])
def test_a_corrupt_image_stops_the_evaluation_and_is_named(checkpoint, tmp_path, capsys, kind):
    root = _images(tmp_path / "images")
    bad = _spoil(root / "train" / "a" / "5.png", kind)
    assert _eval(checkpoint, "--dataset", "imagefolder", "--data-root", str(root),
                 "--patches", "1", "--k", "8", "--num-workers", "1") == 2
    assert f"The image {bad} cannot be read (" in said(capsys, "cooc-eval")


def test_a_one_class_folder_is_refused_not_scored_1(checkpoint, tmp_path, capsys):
    root = _images(tmp_path / "images", classes=("only",))
    assert _eval(checkpoint, "--dataset", "imagefolder", "--data-root", str(root)) == 2
    assert "hold one class only (only), so the probe and the kNN would score 1.0" in said(
        capsys, "cooc-eval")
    two = _images(tmp_path / "two")  # the first 8 of 16 are one class: --limit says so
    assert _eval(checkpoint, "--dataset", "imagefolder", "--data-root", str(two),
                 "--limit", "8") == 2
    assert "the first 8 training images hold one class only (a)" in said(capsys, "cooc-eval")


def test_a_checkpoint_of_another_version(checkpoint, tmp_path, capsys):
    state = load_checkpoint(checkpoint)
    save_checkpoint(tmp_path / "old.pt", {**state, "version": "0.0.3"})
    assert _eval(tmp_path / "old.pt") == 2
    assert "was written by cooc_minimal 0.0.3" in said(capsys, "cooc-eval")


# ------------------------------------------------------------------ in a real process

def test_in_real_processes_the_worst_two_are_one_line(checkpoint, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    commands = [
        ([sys.executable, "-m", "cooc_minimal.evaluate", "--checkpoint", str(checkpoint),
          "--patches", "1000000000", "--device", "cpu", "--no-progress"], "cooc-eval: Bags"),
        ([sys.executable, "-m", "cooc_minimal.train", "--config", "smoke", "--out",
          str(tmp_path / "x"), "--set", "projector=10000000000"], "cooc-train: projector"),
    ]
    for command, start in commands:
        done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 2 and done.stderr.startswith(start), done.stderr
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_run_command_words_what_the_library_did_not(capsys):
    def raising(error):
        def work():
            raise error
        return work

    cases = [(PermissionError(13, "Permission denied", "/data/x"),
              "Permission denied (/data/x): check that path"),
             (MemoryError(), "There is not enough memory for this run (out of memory)"),
             (RuntimeError("[enforce fail at alloc_cpu.cpp:117] . DefaultCPUAllocator: can't "
                           "allocate memory: you tried to allocate 5120000000000 bytes.\nmore"),
              "There is not enough memory for this run ([enforce fail")]
    for error, words in cases:
        assert cli.run_command("cooc-x", raising(error)) == 2
        assert words in said(capsys, "cooc-x")
    with pytest.raises(RuntimeError, match="a bug"):  # not bad input: the traceback stays
        cli.run_command("cooc-x", raising(RuntimeError("a bug")))


def test_an_abbreviated_option_is_refused_not_guessed(capsys):
    """``--run x`` must not be taken for ``--runs x`` (a results script would train every
    run into ./x), nor ``--data`` for ``--dataset`` or ``--data-root``."""
    with pytest.raises(SystemExit) as stop:
        cli.build_eval_parser().parse_args(["--checkpoint", "x.pt", "--data", "cifar10"])
    assert stop.value.code == 2 and "unrecognized arguments: --data" in capsys.readouterr().err
    spec = importlib.util.spec_from_file_location(
        "recording", REPO / "chapters" / "results" / "recording.py")
    recording = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recording)
    runs_from_arguments = recording.runs_from_arguments
    with pytest.raises(SystemExit):
        runs_from_arguments("A results script.", ["--run", "x"])
    assert "unrecognized arguments: --run" in capsys.readouterr().err
    assert runs_from_arguments("A results script.", ["--runs", "x"]) == Path("x").resolve()
