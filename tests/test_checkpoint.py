"""Checkpoints: atomic writes, clear refusals, RNG round trips, models rebuilt from their config."""

import random

import numpy as np
import pytest
import torch

from cooc_minimal import checkpoint as ck
from cooc_minimal.config import Config, config_to_dict
from cooc_minimal.models import build_model


def _state(seed: int = 0) -> dict:
    cfg = Config(width=4, projector="16-8")
    torch.manual_seed(seed)
    model = build_model(cfg.arch, cfg.projector, width=cfg.width)
    return {"model": model.state_dict(), "config": config_to_dict(cfg), "step": 3, "epoch": 1}


def test_save_then_load_gives_back_the_state_and_the_version(tmp_path):
    path = ck.save_checkpoint(tmp_path / "sub" / "last.pt", _state())
    loaded = ck.load_checkpoint(path)
    assert loaded["version"] == __import__("cooc_minimal").__version__
    assert (loaded["step"], loaded["epoch"]) == (3, 1)
    for key, value in _state()["model"].items():
        assert torch.equal(loaded["model"][key], value)
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]  # no temporary left


def test_a_crash_while_writing_leaves_the_old_checkpoint(tmp_path, monkeypatch):
    path = ck.save_checkpoint(tmp_path / "last.pt", _state(0))
    before = path.read_bytes()

    def crash(obj, f):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        ck.save_checkpoint(path, _state(1))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


@pytest.mark.parametrize("cut", [0, 100, 0.5, -10])
def test_a_truncated_file_is_one_sentence(tmp_path, cut):
    data = ck.save_checkpoint(tmp_path / "last.pt", _state()).read_bytes()
    end = int(len(data) * cut) if isinstance(cut, float) else cut
    (tmp_path / "cut.pt").write_bytes(data[:end])
    with pytest.raises(ck.CheckpointError) as caught:
        ck.load_checkpoint(tmp_path / "cut.pt")
    message = str(caught.value)
    assert "is truncated or corrupted" in message and "\n" not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_missing_and_foreign_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="There is no checkpoint at"):
        ck.load_checkpoint(tmp_path / "none.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ck.CheckpointError, match="not a cooc_minimal checkpoint"):
        ck.load_checkpoint(tmp_path / "other.pt")


def test_a_checkpoint_cannot_run_code(tmp_path):
    class Sneaky:
        def __reduce__(self):
            return (print, ("ran",))

    torch.save({"model": {}, "config": {}, "x": Sneaky()}, tmp_path / "evil.pt")
    with pytest.raises(ck.CheckpointError):
        ck.load_checkpoint(tmp_path / "evil.pt")


def test_load_model_rebuilds_the_saved_model_in_eval_mode(tmp_path):
    state = _state(5)
    ck.save_checkpoint(tmp_path / "last.pt", state)
    model, cfg = ck.load_model(tmp_path / "last.pt")
    assert not model.training and cfg.projector == "16-8" and cfg.width == 4
    for key, value in model.state_dict().items():
        assert torch.equal(value, state["model"][key])


def test_rng_states_round_trip(tmp_path):
    g = torch.Generator().manual_seed(3)
    states = ck.get_rng_states({"views": g})
    ck.save_checkpoint(tmp_path / "rng.pt", {"model": {}, "config": {}, "rng": states})
    first = (random.random(), np.random.rand(), torch.rand(2), torch.rand(2, generator=g))  # noqa: NPY002
    g2 = torch.Generator()
    ck.set_rng_states(ck.load_checkpoint(tmp_path / "rng.pt")["rng"], {"views": g2})
    again = (random.random(), np.random.rand(), torch.rand(2), torch.rand(2, generator=g2))  # noqa: NPY002
    assert first[:2] == again[:2]
    assert torch.equal(first[2], again[2]) and torch.equal(first[3], again[3])


def test_weights_that_do_not_fit_their_config_are_one_sentence(tmp_path):
    state = _state()
    state["config"]["projector"] = "16-4"
    ck.save_checkpoint(tmp_path / "last.pt", state)
    with pytest.raises(ck.CheckpointError, match="do not fit the model its config describes"):
        ck.load_model(tmp_path / "last.pt")


def test_a_run_saved_on_more_gpus_resumes_on_fewer(monkeypatch):
    # A checkpoint from 8 GPUs restored where 1 is visible: only device 0's state is set.
    from cooc_minimal import checkpoint

    restored = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "set_rng_state",
                        lambda state, device: restored.append((device, state)))
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: [])
    states = checkpoint.get_rng_states()
    states["cuda"] = [torch.full((8,), i, dtype=torch.uint8) for i in range(8)]
    checkpoint.set_rng_states(states)
    assert [device for device, _ in restored] == [0]
    assert torch.equal(restored[0][1], states["cuda"][0])


@pytest.mark.parametrize("failure, words", [
    (OSError(28, "No space left on device"), "no space left on the device"),
    (RuntimeError("[enforce fail at inline_container.cc:664] . PytorchStreamWriter failed "
                  "writing file data/0: file write failed"), "the disk is full"),
])
def test_a_full_disk_is_one_sentence_and_the_old_file_stays(tmp_path, monkeypatch, failure,
                                                            words):
    path = ck.save_checkpoint(tmp_path / "last.pt", _state(0))
    before = path.read_bytes()

    def full(obj, f):
        f.write(b"PK half")
        raise failure

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(ck.CheckpointWriteError) as caught:
        ck.save_checkpoint(path, _state(1))
    message = str(caught.value)
    assert words in message and "the previous last.pt there is intact" in message
    assert "\n" not in message and isinstance(caught.value, OSError | ValueError)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_other_runtime_errors_of_torch_save_are_not_hidden(tmp_path, monkeypatch):
    monkeypatch.setattr(torch, "save", lambda obj, f: (_ for _ in ()).throw(
        RuntimeError("cannot pickle this")))
    with pytest.raises(RuntimeError, match="cannot pickle this"):
        ck.save_checkpoint(tmp_path / "last.pt", _state())


@pytest.mark.parametrize("version, words", [
    (None, "has no 'version' entry"), (3, "has no 'version' entry"),
    ("0.2.0", "was written by cooc_minimal 0.2.0"), ("1.1.0", "reads checkpoints of 0.1.x")])
def test_the_version_is_checked(tmp_path, version, words):
    state = {**_state(), "version": version}
    if version is None:
        del state["version"]
    torch.save(state, tmp_path / "last.pt")
    with pytest.raises(ck.CheckpointError, match=words):
        ck.load_checkpoint(tmp_path / "last.pt")
    torch.save({**_state(), "version": "0.1.7"}, tmp_path / "patch.pt")  # same series: read
    assert ck.load_checkpoint(tmp_path / "patch.pt")["version"] == "0.1.7"


# -------------------------------------------------- files that are not whole checkpoints

def _flip_inside(path, out) -> str:
    """Copy ``path`` to ``out`` with every float of its largest tensor entry changed (one
    exponent bit each), the zip structure untouched; return that entry's name."""
    import struct
    import zipfile

    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        entry = max((i for i in archive.infolist() if "/data/" in i.filename),
                    key=lambda i: i.file_size)
    head = entry.header_offset
    name_length, extra_length = struct.unpack("<HH", data[head + 26:head + 30])  # local header
    start = head + 30 + name_length + extra_length
    for i in range(start + 3, start + entry.file_size, 4):
        data[i] ^= 0x40
    out.write_bytes(bytes(data))
    return entry.filename


@pytest.mark.parametrize("seed", range(40))
def test_random_bytes_are_not_a_pytorch_checkpoint(tmp_path, seed):
    rng = random.Random(seed)  # the audit's files: 21 in 200 escaped as IndexError, KeyError...
    data = bytes(rng.getrandbits(8) for _ in range(rng.choice([1, 2, 10, 100, 5000])))
    (tmp_path / "last.pt").write_bytes(data)
    with pytest.raises(ck.CheckpointError) as caught:
        ck.load_checkpoint(tmp_path / "last.pt")
    message = str(caught.value)
    assert message == (f"{tmp_path / 'last.pt'} is not a PyTorch checkpoint (torch.save writes "
                       f"a zip archive, and this file is not one): restore it from a copy, or "
                       f"train again.")


def test_a_file_passed_by_mistake_is_named_and_never_to_be_deleted(tmp_path):
    (tmp_path / "config.toml").write_text('name = "run"\n')
    with pytest.raises(ck.CheckpointError) as caught:
        ck.load_checkpoint(tmp_path / "config.toml")
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'config.toml'} is not a PyTorch checkpoint")
    assert "pass the last.pt that cooc_minimal.train writes" in message
    assert "delete" not in message and "corrupted" not in message


def test_a_zip_archive_that_torch_did_not_write_is_not_a_checkpoint(tmp_path):
    import zipfile

    with zipfile.ZipFile(tmp_path / "photos.zip", "w") as archive:
        archive.writestr("a.txt", "not a tensor")
    with pytest.raises(ck.CheckpointError, match="is not a PyTorch checkpoint \\(a zip archive "
                                                 "without the data.pkl"):
        ck.load_checkpoint(tmp_path / "photos.zip")


def test_bytes_changed_inside_an_entry_are_refused_not_loaded(tmp_path):
    path = ck.save_checkpoint(tmp_path / "last.pt", _state())
    name = _flip_inside(path, tmp_path / "flipped.pt")
    silent = torch.load(tmp_path / "flipped.pt", weights_only=True)  # torch checks no CRC
    assert any(not torch.equal(silent["model"][k], v) for k, v in _state()["model"].items())
    with pytest.raises(ck.CheckpointError) as caught:
        ck.load_checkpoint(tmp_path / "flipped.pt")
    assert str(caught.value) == (
        f"{tmp_path / 'flipped.pt'} is corrupted: its entry {name} fails its CRC check, so what "
        f"it holds is not what was saved; delete it and resume from another checkpoint or train "
        f"again.")


def test_a_run_folder_is_read_as_its_last_pt(tmp_path):
    ck.save_checkpoint(tmp_path / "run" / "last.pt", _state())
    assert ck.load_checkpoint(tmp_path / "run")["step"] == 3
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError) as caught:
        ck.load_checkpoint(tmp_path / "empty")
    assert str(caught.value) == (
        f"{tmp_path / 'empty'} is a folder without a last.pt: pass a run folder that "
        f"cooc_minimal.train has written a checkpoint to, or the path of an existing last.pt.")


def test_an_empty_file_is_truncated(tmp_path):
    (tmp_path / "last.pt").write_bytes(b"")
    with pytest.raises(ck.CheckpointError, match=r"is truncated or corrupted and cannot be read "
                                                 r"\(the file is empty\); delete it"):
        ck.load_checkpoint(tmp_path / "last.pt")
