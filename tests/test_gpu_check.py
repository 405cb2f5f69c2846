"""benchmarks/gpu_check.py (``make gpu-check``) in its CPU form: every part runs and the JSON
holds what chapter 6 reads; the card's name becomes a file name; the CUDA tests are found."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "benchmarks" /
                                                  "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("gpu_check", None)


def test_card_names_become_file_names(gpu_check):
    assert gpu_check.card_name("NVIDIA H100 80GB HBM3") == "nvidia_h100_80gb_hbm3"
    assert gpu_check.card_name("Tesla T4") == "tesla_t4"
    assert gpu_check.card_name("NVIDIA A100-SXM4-40GB") == "nvidia_a100_sxm4_40gb"
    assert gpu_check.card_name("cpu") == "cpu" and gpu_check.card_name("../ /") == "cpu"


def test_the_cuda_tests_are_found_by_their_mark(gpu_check):
    ids = gpu_check.cuda_tests()
    assert "tests/test_augment.py::test_same_views_on_a_gpu_from_a_cpu_generator" in ids
    assert "tests/test_precision.py::test_cuda_deterministic_runs_are_bitwise_equal" in ids
    assert not any("test_gpu_check" in i for i in ids)  # it would run itself
    assert "tests/test_precision.py::test_fp16_autocast_runs_the_network_in_half_and_the_" \
           "loss_in_float32" not in ids


def test_the_quick_cpu_check_writes_every_field(gpu_check, tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        record = gpu_check.main(["--quick", "--save", str(tmp_path / "gpu_cpu.json")])
    finally:
        torch.set_num_threads(threads)
    saved = json.loads((tmp_path / "gpu_cpu.json").read_text())
    assert saved == json.loads(json.dumps(record))
    for key in ("command", "commit", "date", "machine", "card", "device", "configs",
                "speedups", "smaller_cards", "resume", "evaluation", "cuda_tests", "notes"):
        assert key in saved, key
    assert saved["command"].startswith("python benchmarks/gpu_check.py --quick")
    if not torch.cuda.is_available():
        assert saved["card"] == "cpu" and saved["device"]["auto_precision"] == "fp32"
        assert saved["speedups"] == [] and saved["smaller_cards"] == []
        assert any("GPU only" in note for note in saved["notes"])
    assert [r["config"] for r in saved["configs"]] == list(gpu_check.CONFIGS)
    for row in saved["configs"]:
        assert row["seconds_per_step"] > 0 and row["chunks"] >= 1
        assert row.get("peak_memory_bytes", row.get("activation_bytes_estimate", 0)) > 0
    assert saved["resume"]["max_weight_gap"] == 0.0  # deterministic, stopped and resumed
    assert saved["evaluation"]["exit_status"] == 0
    assert saved["evaluation"]["spaces"] == ["embedding", "projection"]
    assert len(saved["cuda_tests"]["tests"]) >= 4
