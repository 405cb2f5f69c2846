"""Every exercise set, found automatically: each stub is "not done", each solution passes.

Also the rules an answer must keep (read from its syntax tree) and who gets the blame
when something raises. Grading, cheats and student copies: tests/test_grade.py.
"""

import ast
import json
import re
import subprocess
import sys

import pytest

from exercises import model, rules, runner
from exercises.checktools import NO_LIBRARY, NO_LOOPS, NO_NUMPY, exercise, forbid_names

SETS = model.exercise_sets()
CHECK_SETS = {s.stem: model.load_checks(s) for s in SETS}
PAIRS = [(s, c.name) for s in SETS for c in CHECK_SETS[s.stem].checks]
IDS = [f"{s.stem}.{n}" for s, n in PAIRS]
HAVE_SOLUTIONS = (model.EXERCISES_DIR / "solutions").is_dir()


def only(exercise_set, name, **kwargs):
    (result,) = runner.run_set(exercise_set, only=[name], check_set=CHECK_SETS[exercise_set.stem],
                                **kwargs)
    return result


def test_every_set_is_complete_and_declared():
    assert len(SETS) >= 5, "no exercise sets found"
    for exercise_set in SETS:
        checks = CHECK_SETS[exercise_set.stem].checks
        assert checks, f"{exercise_set.stem}: no check_ functions"
        assert exercise_set.answers_path().exists(), f"{exercise_set.stem}: stub file missing"
        page = exercise_set.answers_path().with_suffix(".ipynb")
        assert page.exists(), f"{exercise_set.stem}: the book page {page.name} is missing"
        if HAVE_SOLUTIONS:
            assert exercise_set.answers_path(solutions=True).exists()
        assert all(c.points > 0 for c in checks)
        assert len({c.name for c in checks}) == len(checks)


@pytest.mark.skipif(not HAVE_SOLUTIONS, reason="a student copy: the stubs are the student's")
@pytest.mark.parametrize("exercise_set,name", PAIRS, ids=IDS)
def test_stub_fails_as_not_done(exercise_set, name):
    result = only(exercise_set, name)
    assert result.status == "not done" and not result.passed, result
    assert result.message.startswith("not done yet") and result.points == 0


@pytest.mark.skipif(not HAVE_SOLUTIONS, reason="a student copy has no solutions")
@pytest.mark.parametrize("exercise_set,name", PAIRS, ids=IDS)
def test_solution_passes(exercise_set, name):
    result = only(exercise_set, name, solutions=True)
    assert result.passed, result.message
    assert result.points == result.max_points > 0


def reasoning_tasks(exercise_set) -> list[tuple[str, str]]:
    """(number, function) of each task whose section on the page asks to predict or derive."""
    cells = json.loads(exercise_set.answers_path().with_suffix(".ipynb").read_text())["cells"]
    text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    tasks = []
    for section in re.split(r"\n(?=## \d+\.\d+ )", "\n" + text):
        heading = re.match(r"\s*## (\d+\.\d+) [^`]*`(\w+)\(", section)
        if heading and re.search(r"\b(predict|derive)\b", section, re.IGNORECASE):
            tasks.append(heading.groups())
    return tasks


@pytest.mark.skipif(not HAVE_SOLUTIONS, reason="a student copy has no worked answers")
def test_every_predict_or_derive_task_has_a_worked_answer_in_both_places():
    page = (model.EXERCISES_DIR.parent / "book" / "instructors.md").read_text()
    found = 0
    for exercise_set in SETS:
        source = exercise_set.answers_path(solutions=True).read_text()
        functions = {node.name: ast.get_source_segment(source, node)
                     for node in ast.parse(source).body if isinstance(node, ast.FunctionDef)}
        for number, function in reasoning_tasks(exercise_set):
            found += 1
            assert f"**{number} " in page, f"book/instructors.md has no worked answer to {number}"
            assert "Worked answer" in functions.get(function, ""), (
                f"{exercise_set.stem}: the solution of {number} ({function}) does not say "
                "'Worked answer' with its reasoning")
    assert found >= 10  # the pages' wording changed if this finds (almost) no task


@pytest.mark.skipif(not HAVE_SOLUTIONS, reason="a student copy has no solutions")
@pytest.mark.parametrize("exercise_set", SETS, ids=[s.stem for s in SETS])
def test_solutions_and_stubs_keep_the_house_rules(exercise_set):
    check_set = CHECK_SETS[exercise_set.stem]
    for solutions in (False, True):
        path = exercise_set.answers_path(solutions)
        tree = rules.parse(path.read_text())
        assert rules.file_problems(tree, check_set.allowed_imports,
                                   check_set.allow_classes) == [], path
        for check in check_set.checks:
            assert [r.problem(tree, check.function) for r in check.forbid] == [None] * len(
                check.forbid), (path, check.name)


# --- the rules, on small files ------------------------------------------------------------

def problems(source, allowed=rules.DEFAULT_IMPORTS):
    return rules.file_problems(rules.parse(source), allowed)


@pytest.mark.parametrize("source,expected", [
    ("import os\n", "imports os"),
    ("import torch\ndef f():\n    return torch.serialization.os.getcwd()\n", "uses .os"),
    ("def f():\n    return __import__('os')\n", "uses __import__"),
    ("def f(x):\n    return x.__class__\n", "private attribute .__class__"),
    ("import sys\n", "imports sys"),
    ("import __main__\n", "imports __main__"),
    ("from exercises import checker\n", "imports exercises"),
    ("def f():\n    exit()\n", "uses exit"),
    ("import torch\ntorch.allclose = lambda *a, **k: True\n", "changes the module attribute"),
    ("class T:\n    pass\n", "defines a class"),
    ("while True:\n    pass\n", "runs code when the file is imported"),
    ("print('PASS')\n", "runs code when the file is imported"),
    ("def f():\n    return eval('1')\n", "uses eval"),
    ("import torch\ndef f():\n    return torch._C\n", "private attribute ._C"),
    ("import torch\ndef f(z):\n    torch.save(z, 'x')\n", "uses .save"),
])
def test_house_rules_refuse_what_could_cheat(source, expected):
    found = problems(source)
    assert any(expected in p for p in found), found
    assert all(len(p) < 200 and "\n" not in p for p in found)


def test_house_rules_accept_ordinary_answers():
    source = ('"""doc"""\nfrom __future__ import annotations\nimport math\nimport torch\n'
              'import torch.nn.functional as F\nEPS = 1e-8\n'
              'def helper(z: torch.Tensor) -> torch.Tensor:\n    return F.normalize(z, dim=1)\n'
              'def f(z, eps=EPS):\n    u = helper(z)\n    return u @ u.T * math.pi\n'
              'if __name__ == "__main__":\n    print(f(torch.ones(2, 2)))\n')
    assert problems(source) == []
    assert problems("import sympy\n") != []
    assert problems("import sympy\n", allowed=("sympy",)) == []


@pytest.mark.parametrize("rule,source,expected", [
    (NO_LOOPS, "def f(z):\n    return sum(r for r in z)\n", "uses a comprehension"),
    (NO_LOOPS, "def f(z):\n    return g(z)\ndef g(z):\n    for r in z:\n        pass\n",
     "uses a Python for loop (line 4)"),
    (NO_LOOPS, "def f(z):\n    i = 0\n    while i < 3:\n        i += 1\n", "while loop"),
    (NO_NUMPY, "import numpy as np\ndef f(z):\n    return z\n", "imports numpy"),
    (NO_NUMPY, "def f(z):\n    return z.numpy()\n", "calls .numpy()"),
    (NO_LIBRARY, "from cooc_minimal.losses import spectral_loss\ndef f(z):\n    return z\n",
     "imports cooc_minimal.losses"),
    (forbid_names("logdet", why="use Cholesky"), "import torch\ndef f(a):\n"
     "    return torch.logdet(a)\n", "uses torch.logdet (line 3): use Cholesky"),
])
def test_forbid_rules_name_the_line(rule, source, expected):
    message = rule.problem(rules.parse(source), "f")
    assert message is not None and expected in message, message
    assert message.startswith("f ")


def test_forbid_rules_allow_what_they_do_not_forbid():
    fine = "import torch\ndef f(z):\n    a, b = (z[:, i] for i in range(2))\n    return a @ b\n"
    assert NO_LOOPS.problem(rules.parse(fine), "f") is None
    assert NO_NUMPY.problem(rules.parse(fine), "f") is None
    unrelated = "def f(z):\n    return z\ndef other(z):\n    return [r for r in z]\n"
    assert NO_LOOPS.problem(rules.parse(unrelated), "f") is None


# --- who gets the blame --------------------------------------------------------------------

@pytest.fixture
def tiny_set(tmp_path):
    """A throw-away exercise set ex98_tiny with three checks, in a private checks dir."""
    checks = tmp_path / "checks"
    checks.mkdir()
    (checks / "ex98_tiny.py").write_text(
        "import torch\nfrom exercises.checktools import NO_LOOPS, close, exercise, "
        "unchanged_call\n\n"
        "@exercise(points=2, forbid=[NO_LOOPS])\n"
        "def check_double(answers):\n"
        "    z = torch.tensor([1.0, -2.0])\n"
        "    got = unchanged_call(answers.double, z, what='double(z)')\n"
        "    close(got, 2 * z, 'double(z)', mistakes={'you negated it': -2 * z})\n\n"
        "@exercise()\n"
        "def check_grad(answers):\n"
        "    z = torch.ones(2, requires_grad=True)\n"
        "    torch.autograd.grad(answers.grad(z), [z, torch.ones(1, requires_grad=True)])\n")
    return model.ExerciseSet(98, "tiny", checks)


@pytest.mark.parametrize("body,status,expected", [
    ("def double(z):\n    return 2 * z\n", "passed", ""),
    ("def double(z):\n    return -2 * z\n", "failed", "double(z): you negated it"),
    ("def double(z):\n    z *= 2\n    return z\n", "failed", "changed its input number 1"),
    ("def double(z):\n    return 3 * z\n", "failed", "off by up to 2"),
    ("def double(z):\n    return [2 * x for x in z]\n", "not allowed", "comprehension"),
    ("def double(z):\n    return z.undefined()\n", "failed",
     "your code raised AttributeError at ex98_tiny.py line 2"),
    ("def double(z):\n    raise SystemExit(0)\n", "failed", "your code called exit()"),
    ("def twice(z):\n    return 2 * z\n", "failed", "has no function double"),
])
def test_each_outcome_gets_its_status_and_sentence(tiny_set, tmp_path, body, status, expected):
    answers = tmp_path / "ex98_tiny.py"
    answers.write_text(body)
    result = runner.run_set(tiny_set, answers_path=answers, only=["double"], time_limit=1)[0]
    assert result.status == status, result
    assert expected in result.message
    assert result.points == (2 if status == "passed" else 0) and result.max_points == 2


def test_an_endless_loop_times_out_in_process(tiny_set, tmp_path):
    answers = tmp_path / "ex98_tiny.py"
    answers.write_text("def grad(z):\n    while True:\n        pass\n")
    (result,) = runner.run_set(tiny_set, answers_path=answers, only=["grad"], time_limit=0.5)
    assert result.status == "timed out" and "did not finish within 0.5 s" in result.message


def test_an_error_raised_by_the_check_is_the_checks_own(tiny_set, tmp_path):
    answers = tmp_path / "ex98_tiny.py"
    answers.write_text("def grad(z):\n    return (z * z).sum()\n")
    (result,) = runner.run_set(tiny_set, answers_path=answers, only=["grad"])
    assert result.status == "check error"
    assert result.message.startswith("the check itself failed (RuntimeError")
    assert "not counted as yours" in result.message and "your code" not in result.message


def test_failure_lines_wrap_below_100_characters():
    long = model.Result("spectral_loss", False, "word " * 60, "failed", 0, 1)
    lines = model.result_line(long).splitlines()
    assert len(lines) > 2 and all(len(line) < 100 for line in lines)
    assert all(line.startswith(" " * 8) for line in lines[1:])


def test_exercise_declaration_rejects_nonsense():
    with pytest.raises(ValueError, match="points must be positive"):
        exercise(points=0)
    with pytest.raises(ValueError, match="forbid takes rules"):
        exercise(forbid=["numpy"])


def test_checker_command_exit_codes(repo):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "exercises.checker", *args], cwd=repo,
                              capture_output=True, text=True)

    if HAVE_SOLUTIONS:  # in a student copy the stubs may be solved
        stubs = run("--chapter", "0")
        assert stubs.returncode == 1 and "FAIL  off_diagonal (0/1): not done yet" in stubs.stdout
        solved = run("--solutions", "--chapter", "0")
        assert solved.returncode == 0 and "PASS  off_diagonal (1/1)" in solved.stdout
    missing = run("--chapter", "99")
    assert missing.returncode == 2 and "no exercises for chapter 99" in missing.stderr


# --- common mistakes, planted in the reference answers, are named before any number ---------

MUTATIONS = [  # (set, exercise, text in the solution, replacement, what the message says)
    ("ex00_warmup", "cosine_similarity_matrix",
     "    z_hat = z / z.norm(dim=1, keepdim=True).clamp_min(eps)\n",
     "    z /= z.norm(dim=1, keepdim=True).clamp_min(eps)\n    z_hat = z\n",
     "changed its input number 1 in place"),
    ("ex00_warmup", "cosine_similarity_matrix", "z.norm(dim=1, keepdim=True)",
     "z.std(dim=1, keepdim=True)", "not by the standard deviation"),
    ("ex00_warmup", "cosine_similarity_matrix", "z.norm(dim=1, keepdim=True).clamp_min(eps)",
     "z.norm(dim=0, keepdim=True).clamp_min(eps)", "normalise the rows (dim=1)"),
    ("ex00_warmup", "off_diagonal",
     "    k = m.shape[0]\n", "    m = m.clone()\n    m.fill_diagonal_(0)\n    return m[m != 0]\n",
     "keep the zeros that sit off the diagonal"),
    ("ex00_warmup", "off_diagonal", "    k = m.shape[0]\n",
     "    m.fill_diagonal_(0)\n    k = m.shape[0]\n", "changed its input number 1 in place"),
    ("ex00_warmup", "mean_squared_cosine", "return 1 / d", "return 0.0", "mean cosine"),
    ("ex00_warmup", "mean_squared_cosine", "return 1 / d", "return torch.tensor(1.0 / d)",
     "arithmetic on the arguments only"),
    ("ex01_cooccurrence", "within_class_similarity", "return K / w", "return K / (w * V)",
     "V cancels"),
    ("ex02_duality", "contrastive_penalty_from_features", "- 2 * gram.trace() + z.shape[0]",
     "- 2 * gram.trace()", "add N, the trace of I_N"),
    ("ex02_duality", "expected_contrastive_penalty", "N * (N - 1) / d", "N * N / d",
     "the N diagonal terms"),
    ("ex03_losses", "spectral_loss", "squared.sum() - squared.diagonal().sum()) / (n * (n - 1))",
     "squared.sum()) / (n * n)", "leave the pairs i == j out of the negatives"),
    ("ex03_losses", "spectral_loss", "similarity = -(z1", "similarity = (z1", "mind the sign"),
    ("ex03_losses", "vicreg_loss", "cov.diagonal().pow(2).sum()) / d",
     "cov.diagonal().pow(2).sum()) / n", "by D (features), not by N"),
    ("ex03_losses", "vicreg_loss", "z.var(dim=0)", "z.var(dim=0, unbiased=False)",
     "unbiased variance"),
    ("ex03_losses", "vicreg_loss", "(v(z1) + v(z2)) +", "(v(z1) + v(z2)) / 2 +", "halving"),
    ("ex03_losses", "tcr_loss", "d / (n * eps**2)", "d / (n * eps)", "square eps"),
    ("ex03_losses", "tcr_loss", "    chol = torch.linalg.cholesky(eye + d / (n * eps**2) * gram)\n"
     "    return -chol.diagonal(dim1=-2, dim2=-1).log().sum(dim=-1)\n",
     "    return -0.5 * torch.logdet(eye + d / (n * eps**2) * gram)\n", "uses torch.logdet"),
    ("ex03_losses", "simclr_loss", "u = F.normalize(torch.cat([z1, z2]), dim=1)",
     "u = torch.cat([z1, z2])", "normalise each row first"),
    ("ex03_losses", "simclr_loss", "    s = s.masked_fill(", "    _ = s.masked_fill(",
     "mask the diagonal"),
    ("ex03_losses", "multipatch_tcr", "    z = F.normalize(z, dim=-1)\n", "",
     "divide every z_bi by its norm first"),
    ("ex03_losses", "multipatch_tcr", "tcr_loss(z.transpose(0, 1), eps).mean()",
     "torch.stack([tcr_loss(z[:, i], eps) for i in range(z.shape[1])]).mean()",
     "uses a comprehension"),
    ("ex03_losses", "covariance_bug_witness", "return torch.cat(",
     "return torch.randn(16, 4, generator=g, dtype=torch.float64)\n    return torch.cat(",
     "the given function is right"),
    ("ex03_losses", "spectral_loss", "import torch\n",
     "import torch\nfrom cooc_minimal.losses import spectral_loss as reference  # noqa\n",
     "imports cooc_minimal.losses"),
    ("ex04_patches", "color_jitter", "    x = (b * x).clamp(0, 1)\n", "    x = b * x\n",
     "clamp to [0, 1] after each"),
    ("ex04_patches", "overlap_probability", "return along(height) * along(width)",
     "return along(width)", "multiply the two axes"),
    ("ex04_patches", "grid_patches", "    batch, channels, height, width = images.shape\n",
     "    images.mul_(2)\n    batch, channels, height, width = images.shape\n",
     "changed its input number 1 in place"),
    ("ex06_training", "lars_step",
     "d = d * (eta * w_norm / d_norm)", "d = d * (eta * w_norm / g.norm())",
     "the norm of d = g + weight_decay * w, not of g"),
    ("ex06_training", "lars_step",
     "    if excluded:\n        d = g\n    else:\n",
     "    if False:\n        d = g\n    else:\n", "an excluded parameter gets no weight decay"),
    ("ex06_training", "lars_step",
     "        if w_norm > 0 and d_norm > 0:\n            d = d * (eta * w_norm / d_norm)\n",
     "        d = d * (eta * w_norm / d_norm.clamp_min(1e-12))\n",
     "when ||w|| = 0 the trust ratio is 1"),
    ("ex06_training", "relative_step",
     "return lr * eta * (1 - momentum**k) / (1 - momentum)",
     "return lr * eta", "1 + m + ... + m^(k-1)"),
    ("ex06_training", "relative_step",
     "return lr * eta * (1 - momentum**k) / (1 - momentum)",
     "return lr * eta / (1 - momentum)", "the limit for k -> infinity"),
    ("ex06_training", "warmup_cosine",
     "t = (step - warmup_steps) / (total_steps - warmup_steps)",
     "t = step / total_steps", "total - warmup"),
    ("ex06_training", "warmup_cosine",
     "return base_lr * step / warmup_steps",
     "return base_lr * (step + 1) / warmup_steps", "starts from 0 at step 0"),
    ("ex06_training", "warmup_cosine",
     "return final_lr + (base_lr - final_lr) * (1 + math.cos(math.pi * t)) / 2",
     "return base_lr * (1 + math.cos(math.pi * t)) / 2", "ends at final_lr"),
    ("ex06_training", "half_lr_step",
     "per_epoch = images // batch_size", "per_epoch = images / batch_size",
     "last incomplete batch is dropped"),
    ("ex06_training", "half_lr_step",
     "return warmup + (total - warmup) / 2", "return (total - warmup) / 2",
     "add the warmup steps"),
    ("ex06_training", "half_lr_step",
     "return warmup + (total - warmup) / 2", "return warmup + (total - warmup) // 2",
     "keep the fraction (/ 2, not // 2)"),
    ("ex07_evaluation", "bag_embeddings",
     "return h.view(batch, n, -1).mean(dim=1)",
     "return h.view(batch, n, -1).sum(dim=1)", "do not sum them"),
    ("ex07_evaluation", "bag_embeddings",
     "windows[image, :, corners[..., 1], corners[..., 0]]",
     "windows[image, :, corners[..., 0], corners[..., 1]]", "x0 indexes the width"),
    ("ex07_evaluation", "bag_embeddings",
     "h = embed(patches.reshape(batch * n, *patches.shape[2:]))",
     "h = embed(patches.reshape(batch * n, -1)).view(batch * n, -1)",
     "flatten the patches to (B * n, C, size, size)"),
    ("ex07_evaluation", "knn_classify",
     "weight = (similarity / temperature).exp()",
     "weight = torch.ones_like(similarity)", "outweighs the two farther ones"),
    ("ex07_evaluation", "knn_classify",
     "weight = (similarity / temperature).exp()",
     "weight = similarity.exp()", "outweighs the two farther ones"),
    ("ex07_evaluation", "knn_classify",
     "bank = train_x / train_x.norm(dim=1, keepdim=True)",
     "bank = train_x", "by cosine similarity"),
    ("ex07_evaluation", "split_bags",
     "part_bags = means[parts].mean(dim=1)",
     "part_bags = tiles.mean(dim=1)", "not in the image itself"),
    ("ex07_evaluation", "split_bags",
     "return part_bags, tiles.mean(dim=1) - part_bags",
     "return part_bags, part_bags - tiles.mean(dim=1)", "not a - b"),
    ("ex07_evaluation", "split_bags",
     "part_bags = means[parts].mean(dim=1)",
     "part_bags = (torch.nn.functional.one_hot(parts, n_parts).amax(dim=1).to(means.dtype) @ means)"
     " / torch.nn.functional.one_hot(parts, n_parts).amax(dim=1).sum(dim=1, keepdim=True)",
     "not over the distinct parts"),
    ("ex07_evaluation", "read_histograms",
     "return with_one(bags) @ readout", "return bags @ readout[:-1]", "need their 1 too"),
    ("ex07_evaluation", "read_histograms",
     "readout = torch.linalg.lstsq(with_one(train_tiles), targets).solution",
     "readout = torch.cat([torch.linalg.lstsq(train_tiles, targets).solution, "
     "torch.zeros(1, n_parts, dtype=targets.dtype)])", "the map is affine"),
    ("ex07_evaluation", "read_histograms",
     "targets = torch.nn.functional.one_hot(train_parts, n_parts).to(train_tiles.dtype)",
     "targets = train_parts[:, None].to(train_tiles.dtype)", "returned shape"),
    ("ex05_toyworld", "sampled_cooccurrence",
     "pairs = counts.T @ counts - torch.diag(counts.sum(dim=0))", "pairs = counts.T @ counts",
     "not with itself too"),
    ("ex05_toyworld", "sampled_cooccurrence",
     "return P, inv_sqrt[:, None] * P * inv_sqrt[None, :]", "return P, P / p[:, None]",
     "the conditional p(v | u)"),
    ("ex05_toyworld", "sampled_cooccurrence",
     "return P, inv_sqrt[:, None] * P * inv_sqrt[None, :]",
     "return P, P / (p[:, None] * p[None, :]).sqrt()", "M has NaN"),
    ("ex05_toyworld", "cooccurrence_rank", "return min(K, V)", "return V", "only K rows"),
    ("ex05_toyworld", "gram_similarity",
     "    U = U - unit[:, None] * (unit @ U)[None, :]  # project every column off sqrt(p)\n",
     "    U = U - U.mean(dim=0)\n", "not by subtracting the plain mean"),
    ("ex05_toyworld", "gram_similarity",
     "    U = U - unit[:, None] * (unit @ U)[None, :]  # project every column off sqrt(p)\n",
     "", "centre first"),
    ("ex05_toyworld", "gram_similarity",
     "return float((G1 * G2).sum() / norms) if norms > 0 else 0.0",
     "return float((G1 * G2).sum() / norms)", "return 0 instead of dividing"),
    ("ex05_toyworld", "centring_bug_witness",
     "p = torch.tensor([0.5, 0.3, 0.15, 0.05], dtype=torch.float64)",
     "p = torch.full((4,), 0.25, dtype=torch.float64)", "the given function is right"),
    ("ex08_aggregation", "map_side", "side = (side + 2 * padding - kernel) // stride + 1",
     "side = -(-(side + 2 * padding - kernel) // stride) + 1", "round down, not up"),
    ("ex08_aggregation", "map_side", "side = (side + 2 * padding - kernel) // stride + 1",
     "side = (side + padding - kernel) // stride + 1", "2p in all"),
    ("ex08_aggregation", "map_side", "side = (side + 2 * padding - kernel) // stride + 1",
     "side = (side + 2 * padding - kernel) // stride", "count the first position too"),
    ("ex08_aggregation", "map_side", "side = (side + 2 * padding - kernel) // stride + 1",
     "side = (side + 2 * padding - kernel) / stride + 1", "should return an int"),
    ("ex08_aggregation", "local_aggregation", "return windows.mean(dim=(-2, -1)).flatten(1)",
     "return windows.mean(dim=(-2, -1)).permute(0, 2, 3, 1).flatten(1)",
     "not position by position"),
    ("ex08_aggregation", "local_aggregation", "return windows.mean(dim=(-2, -1)).flatten(1)",
     "return windows.sum(dim=(-2, -1)).flatten(1)", "do not sum it"),
    ("ex08_aggregation", "local_aggregation", "return windows.mean(dim=(-2, -1)).flatten(1)",
     "return windows.mean(dim=(-2, -1)).mean(dim=(-2, -1))", "instead of averaging them"),
    ("ex08_aggregation", "local_aggregation", "return windows.mean(dim=(-2, -1)).flatten(1)",
     "return torch.nn.functional.avg_pool2d(fmap, pool, stride).flatten(1)",
     "uses torch.nn.functional.avg_pool2d"),
    ("ex08_aggregation", "invisible_map", "F[2, 2] = -1.0", "F[2, 2] = -2.0",
     "every one of the four 3x3 windows must sum to zero"),
    ("ex08_aggregation", "recovers_global_average",
     "return pool == side or (pool % stride == 0 and side % pool == 0)",
     "return (side - pool) % stride == 0", "that is not enough"),
    ("ex08_aggregation", "recovers_global_average",
     "return pool == side or (pool % stride == 0 and side % pool == 0)",
     "return pool == stride and side % pool == 0", "tile the map end to end"),
]


@pytest.mark.skipif(not HAVE_SOLUTIONS, reason="a student copy has no solutions")
@pytest.mark.parametrize("stem,name,old,new,expected", MUTATIONS,
                         ids=[f"{m[1]}-{i}" for i, m in enumerate(MUTATIONS)])
def test_a_planted_mistake_gets_its_hint(tmp_path, stem, name, old, new, expected):
    exercise_set = next(s for s in SETS if s.stem == stem)
    source = exercise_set.answers_path(solutions=True).read_text()
    assert old in source, f"the planted mistake no longer applies to {stem}: {old!r}"
    answers = tmp_path / f"{stem}.py"
    answers.write_text(source.replace(old, new, 1))
    result = only(exercise_set, name, answers_path=answers)
    assert not result.passed and expected in result.message, result.message
    head = result.message.split(expected)[0]
    assert "off by" not in head and ", expected" not in head, "the hint must come first"
