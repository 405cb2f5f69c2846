"""The checks run in the grader and the answers in a child give the same verdicts, word for
word, as running both in one process; and the data that crosses is read safely."""

import math
import sys

import pytest
import sympy as sp
import torch

from exercises import model, runner, sandbox, wire
from tests.test_exercises import CHECK_SETS, HAVE_SOLUTIONS, MUTATIONS, SETS, only

pytestmark = pytest.mark.skipif(not HAVE_SOLUTIONS, reason="a student copy has no solutions")


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    scratch = tmp_path_factory.mktemp("remote")
    with runner.Session(scratch, sandbox.choose("auto")) as opened:
        yield opened


def remotely(session, exercise_set, source, name=None):
    copy = session.answers_path(f"{exercise_set.stem}.py")
    copy.write_text(source)
    return runner.check_remotely(CHECK_SETS[exercise_set.stem], copy, session, time_limit=60,
                                 only=None if name is None else [name])


def test_stubs_solutions_and_planted_mistakes_get_the_same_verdicts_remotely(session,
                                                                               tmp_path):
    """Every set's stub and solution, and every planted mistake of test_exercises.py."""
    for exercise_set in SETS:
        for solutions in (False, True):
            source = exercise_set.answers_path(solutions).read_text()
            here = runner.run_set(exercise_set, solutions=solutions,
                                  check_set=CHECK_SETS[exercise_set.stem])
            there = remotely(session, exercise_set, source)
            assert there == here, (exercise_set.stem, solutions)
    by_stem = {s.stem: s for s in SETS}
    for stem, name, old, new, _ in MUTATIONS:
        exercise_set = by_stem[stem]
        source = exercise_set.answers_path(solutions=True).read_text().replace(old, new, 1)
        planted = tmp_path / f"{stem}.py"
        planted.write_text(source)
        here = only(exercise_set, name, answers_path=planted)
        (there,) = remotely(session, exercise_set, source, name)
        assert (there.status, there.message) == (here.status, here.message), (stem, name, new)


def test_a_check_may_catch_the_error_it_asks_for(session):
    (ex04,) = [s for s in SETS if s.stem == "ex04_patches"]
    source = ex04.answers_path(solutions=True).read_text()
    no_raise = source.replace("raise ValueError(", "return None and (", 1)
    assert no_raise != source
    (result,) = remotely(session, ex04, no_raise, "grid_patches")
    assert "should raise ValueError" in result.message


def test_wire_round_trips_plain_values():
    values = [None, True, 3, -2.5, math.inf, "text", (1, [2.0, {"a": 3}]), 1 + 2j,
              torch.arange(6, dtype=torch.float64).view(2, 3), torch.zeros(0, 4),
              torch.tensor([1.5], dtype=torch.bfloat16), torch.Size([2, 3]), torch.int64,
              sp.Symbol("w", positive=True) / 2 + sp.Rational(3, 7) * sp.Symbol("s") ** 2]
    for value in values:
        back = wire.decode(wire.encode(value))
        if isinstance(value, torch.Tensor):
            assert type(back) is torch.Tensor and back.dtype == value.dtype
            assert torch.equal(back, value)
        else:
            assert back == value and type(back) is type(value), value


def test_wire_refuses_what_is_not_plain_data():
    class Fake(torch.Tensor):
        pass

    fake = wire.decode(wire.encode(torch.zeros(2).as_subclass(Fake)))
    assert isinstance(fake, wire.Opaque) and type(fake).__name__ == "Fake"  # no methods cross
    odd = wire.decode(wire.encode(object()))
    assert isinstance(odd, wire.Opaque) and not isinstance(odd, torch.Tensor)
    for text in ("__import__('os').system('true')", "Symbol('x').__class__",
                 "Pow(Integer(10), Integer(10**90))", "Pow(Pow(Integer(10), Integer(900)), "
                 "Integer(900))", "Function('f')(Symbol('x'))", "Symbol('x', evil=True)",
                 "x" * 30_000):
        with pytest.raises(wire.WireError):
            wire.parse_sympy(text)
    for bad in ({"t": "tensor", "dtype": "object", "shape": [1], "data": ""},
                {"t": "tensor", "dtype": "float64", "shape": [3], "data": "AAAA"},
                {"t": "ndarray", "dtype": "object", "shape": [1], "data": ""},
                {"t": "pickle", "v": "gASV"}, {"t": "callable", "handle": 0}):
        with pytest.raises(wire.WireError):
            wire.decode(bad)
    assert len(wire.clip("x" * 50_000_000)) < 2100


def test_the_grader_keeps_only_the_checks_rows_and_caps_points():
    (ex00,) = [s for s in SETS if s.stem == "ex00_warmup"]
    checks = {ex00.stem: CHECK_SETS[ex00.stem]}
    first = checks[ex00.stem].checks[0]
    forged = {ex00.stem: [
        model.Result(first.name, True, "", "passed", 10_000, 10_000, ex00.stem),
        model.Result("made_up", True, "", "passed", 5, 5, ex00.stem),
        model.Result(checks[ex00.stem].checks[1].name, False, "x" * 10_000, "passed", 3, 3)]}
    from exercises import grade

    rows = grade._trusted(forged, checks)[ex00.stem]
    assert [r.exercise for r in rows] == [c.name for c in checks[ex00.stem].checks]
    assert rows[0].points == first.points and rows[0].max_points == first.points
    assert rows[1].points == 0 and rows[1].status == "check error"
    assert len(rows[1].message) <= 2000 and rows[2].message == "the check gave no result"


def test_host_files_are_all_the_child_needs():
    assert set(sandbox.HOST_FILES) == {"answer_host.py", "wire.py"}
    for name in sandbox.HOST_FILES:
        source = (model.EXERCISES_DIR / name).read_text()
        assert "from exercises" not in source and "import exercises" not in source


def test_the_sandbox_mounts_its_empty_tmp_before_the_python_it_binds(tmp_path):
    """A clone (and its venv) under /tmp must stay visible in the sandbox: bubblewrap applies
    mounts in order, so the fresh /tmp must come before every bind."""
    from exercises import sandbox

    argv, _ = sandbox.command(sandbox.Sandbox("bwrap", "/usr/bin/bwrap"), sys.executable,
                              tmp_path)
    tmpfs = argv.index("/tmp", argv.index("--tmpfs"))
    binds = [i for i, word in enumerate(argv) if word in ("--ro-bind", "--ro-bind-try")]
    assert binds and tmpfs < min(binds), argv


def test_answers_rewritten_in_the_same_second_are_read_anew(tmp_path):
    """Two answer files of the same size written within one second: the child must run the
    second, not a bytecode cache of the first (it runs with -I, which ignores
    PYTHONDONTWRITEBYTECODE, so it turns bytecode writing off itself)."""
    exercise_set = next(s for s in SETS if s.stem == "ex08_aggregation")
    source = exercise_set.answers_path(True).read_text()
    right = "side = (side + 2 * padding - kernel) // stride + 1"
    assert right in source, "the solution's formula moved: update this test"
    wrong = source.replace(right, "side = (side + 2 * padding - kernel) // stride - 1")
    assert len(wrong) == len(source)
    with runner.Session(tmp_path / "scratch", sandbox.choose("none")) as session:
        verdicts = [remotely(session, exercise_set, text, "map_side")
                    for text in (source, wrong)]
        answers = session.answers_path("ex08_aggregation.py").parent
        assert not (answers / "__pycache__").exists()
    statuses = [[result.status for result in results] for results in verdicts]
    assert statuses == [["passed"], ["failed"]], statuses
