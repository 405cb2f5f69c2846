"""The results scripts (``chapters/results/``) and the benchmarks (``benchmarks/``) refuse bad
input in one sentence and a non-zero exit status, before any training or measuring.

Every case runs its script as ``python <script> <arguments>`` runs it, ``__main__`` and
``sys.exit`` included, in one child process: an interpreter per case would cost seconds of
imports each. That child also replaces ``ensure_trained`` with a refusal and points
``result_path`` into a scratch folder, so that a check that stopped working fails a test
instead of training for minutes or writing over a recorded figure. Two cases run as plain
``python <script>`` processes as well, with nothing replaced. The run folders a case gives
hold a conflicting run before its script starts, so that no script can ever finish.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import runpy
import subprocess
import sys
import time
import traceback
from pathlib import Path

import pytest

from cooc_minimal.checkpoint import save_checkpoint
from cooc_minimal.config import config_to_dict, load_config, save_config
from cooc_minimal.runs import RunFolderError, run_status

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "chapters" / "results"
QUICK_S = 10.0  # far under what a training or a timing takes, far over an argument check
CHILD_TIMEOUT_S = 120  # a child past this is killed (SIGKILL: training swallows SIGTERM)


# --- the child: every case in one interpreter ----------------------------------------------

def _no_training(*args, **kwargs):
    raise AssertionError("ensure_trained was called: the script began work before it "
                         "checked its input")


def run_case(case: dict) -> dict:
    """One case as ``python <script> <argv>`` would run it: status, stdout, stderr, seconds."""
    script = REPO / case["script"]
    sys.argv = [str(script), *case["argv"]]
    saved = dict(os.environ)
    os.environ.update(case.get("env", {}))
    out, err, started = io.StringIO(), io.StringIO(), time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            runpy.run_path(str(script), run_name="__main__")
            status = 0
        except SystemExit as stop:
            status = stop.code if isinstance(stop.code, int) else int(stop.code is not None)
        except Exception:  # noqa: BLE001 - a traceback is what the test looks for
            traceback.print_exc()
            status = 1
        finally:
            os.environ.clear()
            os.environ.update(saved)
    return {"status": status, "out": out.getvalue(), "err": err.getvalue(),
            "seconds": time.perf_counter() - started}


def child(cases_file: str, scratch: str) -> None:
    """Run every case of ``cases_file``; write the answers beside it as JSON."""
    import cooc_minimal.paths
    import cooc_minimal.train

    cooc_minimal.train.ensure_trained = _no_training
    cooc_minimal.paths.result_path = lambda name: Path(scratch) / f"{name}.json"
    sys.path.insert(0, str(RESULTS))  # as python chapters/results/x.py puts it first
    cases = json.loads(Path(cases_file).read_text())
    answers = {name: run_case(case) for name, case in cases.items()}
    Path(cases_file).with_suffix(".answers.json").write_text(json.dumps(answers))


# --- the folders the cases point at ---------------------------------------------------------

def conflicting_runs(root: Path) -> dict[str, Path]:
    """Runs folders whose LAST folder each script needs holds something else, so a script
    that checked nothing first would train or measure every earlier run before failing."""
    toy, texture, afile = root / "toy", root / "texture", root / "afile"
    afile.write_text("not a folder\n")
    (toy / "toy_independent_vicreg_seed2").mkdir(parents=True)  # ch05_seeds' last
    save_config(load_config("smoke", ["seed=7"]),
                toy / "toy_independent_vicreg_seed2" / "config.toml")
    save_checkpoint(toy / "toy_vicreg_proj4_seed2" / "last.pt",  # ch07_toy_seeds' last
                    {"model": {}, "config": config_to_dict(load_config("smoke", ["seed=5"]))})
    (texture / "texture_vicreg_seed2").mkdir(parents=True)
    (texture / "texture_vicreg_seed2" / "notes.txt").write_text("not a run\n")
    for folder, config, overrides in (
            (toy / "toy_independent_vicreg_seed2", "smoke",
             ["seed=2", "dataset=toyworld_independent"]),
            (toy / "toy_vicreg_proj4_seed2", "smoke", ["projector=512-4", "epochs=2", "seed=2"]),
            (texture / "texture_vicreg_seed2", "texture", ["seed=2"])):
        with pytest.raises(RunFolderError):  # never launch a script on a folder it could use
            run_status(load_config(config, overrides), folder)
    return {"toy": toy, "texture": texture, "afile": afile}


def cases_for(paths: dict[str, Path], scratch: Path) -> dict[str, dict]:
    """{name: {script, argv, says[, env]}}: ``says`` is a piece of the expected sentence."""
    toy, texture, afile = str(paths["toy"]), str(paths["texture"]), str(paths["afile"])
    folder, below = str(scratch), str(paths["afile"] / "x.json")
    results = {
        "ch05_seeds runs is a file": ("ch05_seeds", ["--runs", afile], "is a file, not a"),
        "ch07_claims runs below a file": ("ch07_claims", ["--runs", afile + "/runs"],
                                          "lies below"),
        "ch07_toy_seeds last run of another config": (
            "ch07_toy_seeds", ["--runs", toy], "holds a run of another config"),
        "ch05_seeds last run started with another config": (
            "ch05_seeds", ["--runs", toy], "holds the start of a run of another config"),
        **{f"{name} last run folder holds other files": (
            name, ["--runs", texture], "holds files that are not a run")
           for name in ("ch08_pooling", "ch09_parts", "texture_world", "texture_knn_ceiling")},
        "reproduce_cpu runs is a file": ("reproduce_cpu", ["--runs", afile], "is a file"),
    }
    cases = {name: {"script": f"chapters/results/{script}.py", "argv": argv, "says": says}
             for name, (script, argv, says) in results.items()}
    cases["ch09_parts COOC_RUNS is a file"] = {
        "script": "chapters/results/ch09_parts.py", "argv": [], "says": "$COOC_RUNS folder",
        "env": {"COOC_RUNS": afile}}
    benchmarks = {
        "losses n below two images": ("losses", ["--n", "8", "--dims", "8", "--save",
                                                  str(scratch / "losses.json")], "at least 16"),
        "losses negative n": ("losses", ["--n", "-4", "--save", ""], "--n must be a positive"),
        "losses zero n": ("losses", ["--n", "0"], "--n must be a positive"),
        "losses zero dims": ("losses", ["--dims", "0"], "--dims must be a positive"),
        "losses save is a folder": ("losses", ["--save", folder], "is a folder"),
        "bag_embeddings zero images": ("bag_embeddings", ["--images", "0"], "--images must"),
        "bag_embeddings zero n": ("bag_embeddings", ["--n", "0"], "--n must be a positive"),
        "bag_embeddings json is a folder": ("bag_embeddings", ["--json", folder], "is a folder"),
        "memory unknown config": ("memory", ["--configs", "cifar10_vicrge", "--save", ""],
                                  "did you mean 'cifar10_vicreg'"),
        "memory config without classes": ("memory", ["--configs", "smoke", "--save", ""],
                                          "number of classes"),
        "memory save below a file": ("memory", ["--save", below], "lies below"),
        "patch_pipeline zero n": ("patch_pipeline", ["--n", "4", "0", "--save", ""],
                                  "--n must be a positive"),
        "patch_pipeline save is a folder": ("patch_pipeline", ["--save", folder], "is a folder"),
        "train_step negative workers": ("train_step", ["--workers", "-1", "--save", ""],
                                        "--workers must be"),
        "train_step zero steps": ("train_step", ["--steps", "0", "--save", ""],
                                  "--steps must be a positive"),
        "gpu_check save is a folder": ("gpu_check", ["--quick", "--save", folder],
                                       "is a folder"),
        "gpu_check zero steps": ("gpu_check", ["--quick", "--steps", "0", "--save", ""],
                                 "--steps must be a positive"),
    }
    cases.update({name: {"script": f"benchmarks/{script}.py", "argv": argv, "says": says}
                  for name, (script, argv, says) in benchmarks.items()})
    return cases


#: cases also run as plain processes, nothing replaced: (case name, its script's arguments)
PLAIN = ("ch05_seeds last run started with another config", "losses n below two images")


# --- the tests ------------------------------------------------------------------------------

def _environment(scratch: Path) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "COOC_RUNS": str(scratch / "default-runs")}


@pytest.fixture(scope="module")
def answers(tmp_path_factory) -> dict[str, dict]:
    """Every case's answer: the child's, and for PLAIN cases also a plain process's, under
    ``"<name> (plain)"``; all processes run at once."""
    root = tmp_path_factory.mktemp("script_inputs")
    scratch = root / "scratch"
    scratch.mkdir()
    cases = cases_for(conflicting_runs(root), scratch)
    cases_file = root / "cases.json"
    cases_file.write_text(json.dumps(cases))
    env = _environment(scratch)
    launch = {"child": [sys.executable, __file__, str(cases_file), str(scratch)]}
    launch.update({f"{name} (plain)": [sys.executable, cases[name]["script"],
                                       *cases[name]["argv"]] for name in PLAIN})
    started = time.perf_counter()
    running = {name: subprocess.Popen(command, cwd=REPO, env=env, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE)
               for name, command in launch.items()}
    found = {}
    for name, process in running.items():
        try:
            out, err = process.communicate(timeout=CHILD_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()  # SIGKILL: a script that began training ignores SIGTERM
            out, err = process.communicate()
        found[name] = {"status": process.returncode, "out": out, "err": err,
                       "seconds": time.perf_counter() - started}
    ran = found.pop("child")
    assert ran["status"] == 0, f"the child process failed: {ran['err'][-3000:]}"
    found.update(json.loads(cases_file.with_suffix(".answers.json").read_text()))
    return {name: dict(answer, says=cases[name.removesuffix(" (plain)")]["says"],
                       script=cases[name.removesuffix(" (plain)")]["script"])
            for name, answer in found.items()}


ALL_CASES = [*cases_for({"toy": Path("t"), "texture": Path("x"), "afile": Path("f")},
                        Path("s")), *(f"{name} (plain)" for name in PLAIN)]


@pytest.mark.parametrize("name", ALL_CASES)
def test_bad_input_is_one_sentence_before_any_work(answers, name):
    answer = answers[name]
    said = answer["out"] + answer["err"]
    assert "Traceback" not in said, said
    assert answer["status"] == 2, said
    lines = [line for line in answer["err"].splitlines() if line.strip()]
    prog = Path(answer["script"]).name
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: "), said
    assert answer["says"] in lines[0], said
    assert answer["out"] == "", f"it began work (printed a header or a table): {said}"
    assert answer["seconds"] < QUICK_S + (20 if name.endswith("(plain)") else 0), answer


def test_a_run_folder_sentence_names_the_option_to_change(answers):
    """The library's run folder sentences advise --out or out_dir; a results script's user
    can only change --runs or the folder itself."""
    for answer in answers.values():
        if answer["script"].startswith("chapters/results/"):
            assert "--out" not in answer["err"] and "out_dir" not in answer["err"], answer
            assert "--runs" in answer["err"], answer


def test_checking_the_runs_folder_leaves_nothing_behind(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(RESULTS))
    import recording

    wanted = tmp_path / "a" / "b" / "runs"
    assert recording.check_runs_folder(wanted) == wanted
    assert not (tmp_path / "a").exists()
    (tmp_path / "made").mkdir()
    assert recording.check_runs_folder(tmp_path / "made") == tmp_path / "made"


if __name__ == "__main__":
    child(*sys.argv[1:])
