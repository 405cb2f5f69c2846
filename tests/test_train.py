"""The training loop on the CPU: exact resume, signals, NaN, folders, views, bf16, data paths."""

import csv
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image
from train_tiny import tiny_config, weights

from cooc_minimal import train as training
from cooc_minimal.checkpoint import CheckpointError, load_checkpoint, load_model
from cooc_minimal.cli import run_command, train_main
from cooc_minimal.config import load_config
from cooc_minimal.data import LoaderData, epoch_order, make_data
from cooc_minimal.distributed import GlobalBatchNorm, convert_sync_batchnorm
from cooc_minimal.losses import LOSSES
from cooc_minimal.runs import TrainingStopped
from cooc_minimal.train import RunFolderError, TrainingDiverged, ensure_trained, train
from cooc_minimal.views import make_views

REPO = Path(__file__).resolve().parent.parent


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _same_weights(a: Path, b: Path, tol: float) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], rtol=0, atol=tol, msg=key)


def _step_losses(run: Path) -> list[float]:
    with open(run / "metrics.csv", newline="") as f:
        return [float(r["loss"]) for r in csv.DictReader(f) if r["kind"] == "step"]


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> Path:
    """A 2-epoch run (8 steps) without interruption: the reference of the resume tests."""
    out = tmp_path_factory.mktemp("straight") / "run"
    summary = train(tiny_config(), out, progress=False)
    assert summary["finished"] and summary["steps"] == 8 and summary["stopped"] is None
    return out


def test_a_run_folder_holds_config_metrics_and_checkpoint(straight):
    assert sorted(p.name for p in straight.iterdir()) == ["config.toml", "last.pt",
                                                          "metrics.csv"]
    assert load_config(straight / "config.toml") == tiny_config()
    with open(straight / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["kind"] for r in rows].count("step") == 8
    assert [(r["epoch"], r["step"]) for r in rows if r["kind"] == "epoch"] == [("1", "4"),
                                                                              ("2", "8")]
    state = load_checkpoint(straight / "last.pt")
    assert (state["step"], state["epoch"], state["finished"]) == (8, 2, True)
    assert set(state["rng"]) >= {"python", "numpy", "torch", "cuda", "generators"}
    model, cfg = load_model(straight / "last.pt")
    assert cfg == tiny_config() and not model.training


def test_stop_after_one_epoch_then_resume_equals_a_straight_run(straight, tmp_path):
    out = tmp_path / "run"
    first = train(tiny_config(), out, stop_after_epochs=1, progress=False)
    assert (first["steps"], first["finished"]) == (4, False)
    assert "stop-after-epochs" in first["stopped"]
    second = train(tiny_config(), out, resume=True, progress=False)
    assert (second["steps"], second["finished"]) == (8, True)
    _same_weights(out / "last.pt", straight / "last.pt", 1e-6)
    assert _step_losses(out) == pytest.approx(_step_losses(straight), rel=1e-6)


def test_sigterm_mid_epoch_checkpoints_and_resumes_to_the_same_run(straight, tmp_path):
    out = tmp_path / "run"

    def send_sigterm(row):
        if row["step"] == 3:  # inside epoch 1 (steps 1-4)
            os.kill(os.getpid(), signal.SIGTERM)

    stopped = train(tiny_config(), out, progress=False, on_step=send_sigterm)
    assert stopped["stopped"] == "SIGTERM" and stopped["steps"] == 3
    assert load_checkpoint(out / "last.pt")["step"] == 3
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # handler restored
    resumed = train(tiny_config(), out, resume=True, progress=False)
    assert resumed["steps"] == 8 and resumed["finished"]
    _same_weights(out / "last.pt", straight / "last.pt", 1e-6)
    assert len(_step_losses(out)) == 8


def test_the_command_line_exits_cleanly_on_sigterm(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COOC_SCALE": "smoke"}
    command = [sys.executable, "-m", "cooc_minimal.train", "--config", "smoke", "--out",
               str(out), "--no-progress", "--set", "train_images=8192", "--set", "epochs=1",
               "--set", "batch_size=16", "--set", "width=8", "--set", "probe=false"]
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(_rows_if_any(out)) < 3:
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr and "continue with --resume" in stdout
    step = load_checkpoint(out / "last.pt")["step"]
    assert 3 <= step < 512 and len(_rows_if_any(out)) == step  # 512 steps in the epoch


def _rows_if_any(out: Path) -> list:
    try:
        with open(out / "metrics.csv", newline="") as f:
            return [r for r in csv.DictReader(f) if r["kind"] == "step"]
    except (FileNotFoundError, KeyError):
        return []


def test_a_nan_loss_stops_the_run_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    out = tmp_path / "run"
    train(tiny_config(), out, stop_after_epochs=1, progress=False)
    before = hashlib.sha256((out / "last.pt").read_bytes()).hexdigest()
    calls = []
    real = LOSSES["vicreg"]

    def poisoned(z, **coeffs):
        loss = real(z, **coeffs)
        if z.shape[0] != 16:  # the config check's dry run on a tiny input
            return loss
        calls.append(1)
        return loss * float("nan") if len(calls) == 2 else loss

    monkeypatch.setitem(LOSSES, "vicreg", poisoned)
    with pytest.raises(TrainingDiverged) as caught:
        train(tiny_config(), out, resume=True, progress=False)
    message = str(caught.value)
    assert "nan at step 6 (epoch 2)" in message and "lower lr" in message
    assert "untouched" in message and "\n" not in message
    assert hashlib.sha256((out / "last.pt").read_bytes()).hexdigest() == before
    assert load_checkpoint(out / "last.pt")["step"] == 4


def test_non_finite_network_output_is_reported_the_same_way(tmp_path, monkeypatch):
    # An infinite projector makes z infinite from the first step: the loss's own check
    # raises, and the loop turns that into the same sentence.
    original = training.build_trainee

    def exploding(*args, **kwargs):
        trainee = original(*args, **kwargs)
        with torch.no_grad():
            trainee.model.projector[-1].weight.fill_(float("inf"))
        return trainee

    monkeypatch.setattr(training, "build_trainee", exploding)
    with pytest.raises(TrainingDiverged, match="at step 1 .*no checkpoint had been written"):
        train(tiny_config(), tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "last.pt").exists()


def test_a_truncated_checkpoint_is_refused_with_a_sentence(straight, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    data = (straight / "last.pt").read_bytes()
    (out / "last.pt").write_bytes(data[: len(data) // 2])
    (out / "config.toml").write_bytes((straight / "config.toml").read_bytes())
    with pytest.raises(CheckpointError) as caught:
        train(tiny_config(), out, resume=True, progress=False)
    message = str(caught.value)
    assert "truncated or corrupted" in message and "\n" not in message
    assert "Traceback" not in message


def test_resume_refuses_a_change_of_schedule_but_allows_runtime_keys(straight, tmp_path):
    with pytest.raises(RunFolderError, match="epochs = 2 there, 3 here"):
        train(tiny_config(epochs=3), straight, resume=True, progress=False)
    done = train(tiny_config(log_every=2), straight, resume=True, progress=False)
    assert done["stopped"] == "already finished" and done["steps"] == 8


def test_an_existing_run_is_not_overwritten_and_nothing_to_resume_is_said(straight, tmp_path):
    with pytest.raises(RunFolderError, match="already holds a run"):
        train(tiny_config(), straight, progress=False)
    with pytest.raises(RunFolderError, match="nothing to resume"):
        train(tiny_config(), tmp_path / "empty", resume=True, progress=False)


def test_ensure_trained_reuses_resumes_or_refuses(straight, tmp_path, monkeypatch):
    assert ensure_trained(tiny_config(), straight) == straight / "last.pt"  # finished: as is
    with pytest.raises(RunFolderError, match="another config .*lr = 0.3 there, 0.2 here"):
        ensure_trained(tiny_config(lr=0.2), straight)
    half = tmp_path / "half"
    train(tiny_config(), half, stop_after_epochs=1, progress=False)
    path = ensure_trained(tiny_config(), half, progress=False)         # unfinished: resumed
    assert load_checkpoint(path)["finished"]
    _same_weights(path, straight / "last.pt", 1e-6)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(RunFolderError, match="not a run of this config"):
        ensure_trained(tiny_config(), tmp_path / "other")


def test_ensure_trained_stops_on_sigterm_instead_of_resuming(straight, tmp_path, monkeypatch):
    out, real_train = tmp_path / "run", training.train

    def train_until_sigterm_at_step_3(*args, **kwargs):
        def send_sigterm(row):
            if row["step"] == 3:
                os.kill(os.getpid(), signal.SIGTERM)
        return real_train(*args, **kwargs, on_step=send_sigterm)

    monkeypatch.setattr(training, "train", train_until_sigterm_at_step_3)
    with pytest.raises(TrainingStopped, match=r"stopped on SIGTERM at step 3 of 8, its "
                                              r"checkpoint saved: call ensure_trained again"):
        ensure_trained(tiny_config(), out, progress=False)
    assert load_checkpoint(out / "last.pt")["step"] == 3  # stopped there, not resumed
    monkeypatch.setattr(training, "train", real_train)
    path = ensure_trained(tiny_config(), out, progress=False)  # asked again: resumed
    _same_weights(path, straight / "last.pt", 1e-6)
    status = run_command("cooc", lambda: (_ for _ in ()).throw(
        TrainingStopped("stopped", "SIGTERM")))
    assert status == 128 + signal.SIGTERM


def test_views_of_rank_slices_equal_the_views_of_the_global_batch():
    images = (torch.rand(12, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 255)
    images = images.to(torch.uint8)
    cfg = tiny_config(patch_out=16, n_patches=5)
    whole = make_views(images, cfg, torch.Generator().manual_seed(7))
    assert whole.shape == (12, 5, 3, 16, 16)
    for world in (2, 3):
        parts = [make_views(images[r * 12 // world:(r + 1) * 12 // world], cfg,
                            torch.Generator().manual_seed(7), rank=r, world=world)
                 for r in range(world)]
        torch.testing.assert_close(torch.cat(parts), whole, rtol=0, atol=1e-6)


def test_global_batchnorm_in_one_process_is_batchnorm():
    torch.manual_seed(0)
    plain = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4),
                                torch.nn.Flatten(), torch.nn.Linear(4 * 36, 5),
                                torch.nn.BatchNorm1d(5)).double()
    synced = convert_sync_batchnorm(__import__("copy").deepcopy(plain))
    assert isinstance(synced[1], GlobalBatchNorm) and isinstance(synced[4], GlobalBatchNorm)
    x = torch.randn(6, 3, 8, 8, dtype=torch.float64)
    for _ in range(2):
        ya, yb = plain(x), synced(x)
        torch.testing.assert_close(ya, yb)
        ga = torch.autograd.grad(ya.square().sum(), list(plain.parameters()))
        gb = torch.autograd.grad(yb.square().sum(), list(synced.parameters()))
        for a, b in zip(ga, gb, strict=True):
            torch.testing.assert_close(a, b)
    torch.testing.assert_close(plain.state_dict(), synced.state_dict())


def test_bf16_autocast_on_the_cpu_trains_a_step(tmp_path, monkeypatch):
    seen = []
    original = training.build_trainee

    def recording(*args, **kwargs):
        trainee = original(*args, **kwargs)
        trainee.model.backbone.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
        return trainee

    monkeypatch.setattr(training, "build_trainee", recording)
    summary = train(tiny_config(precision="bf16", epochs=1, probe=False), tmp_path / "r",
                    progress=False)
    assert seen and set(seen) == {torch.bfloat16}
    assert summary["steps"] == 4 and torch.isfinite(torch.tensor(summary["loss"]))
    state = load_checkpoint(tmp_path / "r" / "last.pt")
    start = original(tiny_config(probe=False), 10, torch.device("cpu"))
    for key, value in state["model"].items():
        if value.is_floating_point():
            assert value.dtype == torch.float32, key
    moved = [k for k, v in start.model.state_dict().items()
             if v.is_floating_point() and not torch.equal(v, state["model"][k])]
    assert any("backbone" in k and k.endswith("weight") for k in moved)


def _write_image_folder(root: Path, sizes=((40, 30), (24, 50), (64, 64))) -> None:
    generator = torch.Generator().manual_seed(0)
    for split, count in (("train", 12), ("val", 4)):
        for c in range(2):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(count):
                w, h = sizes[i % len(sizes)]
                pixels = (torch.rand(h, w, 3, generator=generator) * 255).to(torch.uint8)
                Image.fromarray(pixels.numpy()).save(folder / f"{i}.png")


def _folder_config(tmp_path: Path, num_workers: int = 1):
    """The tiny config on a small image folder written under ``tmp_path`` (24 images)."""
    root = tmp_path / "images"
    if not root.exists():
        _write_image_folder(root)
    return tiny_config(dataset="imagefolder", data_root=str(root), image_size=24,
                       train_images=0, batch_size=8, num_workers=num_workers, epochs=1)


def test_an_image_folder_trains_through_dataloader_workers(tmp_path):
    cfg = _folder_config(tmp_path)
    data = make_data(cfg, torch.device("cpu"))
    assert isinstance(data, LoaderData) and data.size == 24 and data.n_classes == 2
    order = epoch_order(cfg.seed, 0, data.size)
    whole = list(data.batches(order, cfg.batch_size))
    assert len(whole) == 3 and whole[0][0].dtype == torch.uint8
    assert whole[0][0].shape == (8, 3, 24, 24)
    halves = [list(data.batches(order, cfg.batch_size, start=1, rank=r, world=2))
              for r in range(2)]  # two ranks, from step 1 on
    for step in range(2):
        joined = torch.cat([halves[0][step][0], halves[1][step][0]])
        assert torch.equal(joined, whole[step + 1][0])
    summary = train(cfg, tmp_path / "run", progress=False)
    assert summary["steps"] == 3 and summary["val_acc"] is not None


def test_a_command_turns_bad_input_into_one_sentence_and_a_status(tmp_path, capsys):
    def refused():
        raise RunFolderError("There is nothing to resume in x: start without --resume.")

    def diverging():
        raise TrainingDiverged("The loss became nan at step 1.", float("nan"))

    assert run_command("cooc-test", lambda: 0) == 0
    assert run_command("cooc-test", refused) == 2
    assert capsys.readouterr().err == ("cooc-test: There is nothing to resume in x: start "
                                       "without --resume.\n")
    assert run_command("cooc-test", diverging) == 1
    assert capsys.readouterr().err == "cooc-test: The loss became nan at step 1.\n"
    assert train_main(["--out", str(tmp_path / "r"), "--resume"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("cooc-train: There is nothing to resume") and error.count("\n") == 1


def test_dataloader_workers_persist_across_epochs_and_never_outnumber_the_cores(tmp_path):
    from cooc_minimal.data import usable_workers

    cfg = _folder_config(tmp_path)
    with_workers = make_data(cfg, torch.device("cpu"))
    in_process = make_data(_folder_config(tmp_path, num_workers=0), torch.device("cpu"))
    loaders = []
    for epoch in range(2):
        order = epoch_order(cfg.seed, epoch, with_workers.size)
        got = list(with_workers.batches(order, cfg.batch_size))
        expected = list(in_process.batches(order, cfg.batch_size))
        assert len(got) == len(expected) == 3
        for (a, y), (b, z) in zip(got, expected, strict=True):
            assert torch.equal(a, b) and torch.equal(y, z)
        loaders.append(with_workers._loaders["train"][0])
    assert loaders[0] is loaders[1] and loaders[0].persistent_workers
    cores = len(os.sched_getaffinity(0))
    assert usable_workers(10 * cores) == cores and usable_workers(0) == 0


def test_a_run_saved_with_more_cuda_rng_states_than_gpus_resumes(straight, tmp_path,
                                                                 monkeypatch):
    # Saved on 8 GPUs (8 CUDA generator states), resumed where 1 is visible: device 0's
    # state is restored, the others are left, and the run ends as the straight run does.
    out = tmp_path / "run"
    train(tiny_config(), out, stop_after_epochs=1, progress=False)
    state = torch.load(out / "last.pt", weights_only=True)
    state["rng"]["cuda"] = [torch.full((16,), i, dtype=torch.uint8) for i in range(8)]
    torch.save(state, out / "last.pt")
    restored = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "set_rng_state",
                        lambda new, device="cuda": restored.append((device, new)))
    monkeypatch.setattr(torch.cuda, "get_rng_state_all",
                        lambda: [torch.zeros(16, dtype=torch.uint8)])
    summary = train(tiny_config(), out, resume=True, progress=False)
    assert summary["finished"] and [device for device, _ in restored] == [0]
    assert torch.equal(restored[0][1], state["rng"]["cuda"][0])
    _same_weights(out / "last.pt", straight / "last.pt", 1e-6)


@pytest.mark.parametrize("world", [2, 3, 8])
def test_ranks_share_the_held_out_batches_and_their_counts_add_up(world):
    from cooc_minimal.data import TensorData, held_out_batches
    from cooc_minimal.step import build_trainee, probe_counts

    g = torch.Generator().manual_seed(0)
    held_out = (torch.randint(0, 256, (37, 3, 32, 32), dtype=torch.uint8, generator=g),
                torch.randint(0, 3, (37,), generator=g))
    data = TensorData(held_out[0][:8], held_out[1][:8], torch.device("cpu"), validation=held_out)
    cfg = tiny_config()
    trainee = build_trainee(cfg, 3, torch.device("cpu"))
    lengths = held_out_batches(data.held_out_size, 8)
    assert lengths == [8, 8, 8, 8, 5]
    one = probe_counts(trainee, data.validation(8), cfg, lengths=lengths)
    shares = [probe_counts(trainee, data.validation(8, rank=r, world=world), cfg,
                           lengths=lengths, rank=r, world=world) for r in range(world)]
    assert one[1] == 37 and tuple(map(sum, zip(*shares, strict=True))) == one
    labels = torch.cat([y for r in range(world) for _, y in data.validation(8, rank=r,
                                                                             world=world)])
    assert sorted(labels.tolist()) == sorted(held_out[1].tolist())


@pytest.mark.slow
def test_two_ranks_validate_their_shares_to_the_accuracy_of_one_process(tmp_path):
    # The held-out accuracy under torchrun: every rank embeds its rows of each batch and the
    # counts are all-reduced (no rank waits in a collective while rank 0 validates alone).
    import json
    import socket

    from train_tiny import TINY

    settings = {**TINY, "sync_bn": True, "epochs": 1}
    overrides = [a for k, v in settings.items()
                 for a in ("--set", f"{k}={str(v).lower() if isinstance(v, bool) else v}")]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    report, out = tmp_path / "report", tmp_path / "report" / "run"
    report.mkdir()
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
               "--nnodes=1", "--master_addr=127.0.0.1", f"--master_port={port}",
               str(Path(__file__).with_name("train_distributed_worker.py")), str(report), "--",
               "--config", "smoke", "--out", str(out), "--no-progress", *overrides]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COOC_SCALE": "smoke"}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=240)
    assert done.returncode == 0, f"torchrun failed:\n{done.stdout}\n{done.stderr}"
    assert json.loads((report / "rank1.json").read_text())["code"] == 0
    single = train(tiny_config(sync_bn=True, epochs=1, name="smoke"), tmp_path / "one",
                   progress=False)

    def val_acc(run):
        with open(run / "metrics.csv", newline="") as f:
            return [float(r["val_acc"]) for r in csv.DictReader(f) if r["kind"] == "epoch"]

    assert len(val_acc(out)) == 1 and val_acc(out)[0] > 0
    assert val_acc(out) == pytest.approx([single["val_acc"]], abs=1e-3)  # 2 of 2000 images
