"""Chapter 6's exercises: common mistakes, planted in the reference answers, get their hint
before any number (the stub / solution / house-rule tests of every set are in
tests/test_exercises.py)."""

import pytest

from exercises import checker

SET = next(s for s in checker.exercise_sets(6) if s.topic == "training")
HAVE_SOLUTIONS = SET.answers_path(solutions=True).exists()

MUTATIONS = [  # (exercise, text in the solution, replacement, what the message says)
    ("lars_step", "d = d * (eta * w_norm / d_norm)", "d = d * (eta * w_norm / g.norm())",
     "the norm of d = g + weight_decay * w, not of g"),
    ("lars_step", "    if excluded:\n        d = g\n    else:\n",
     "    if False:\n        d = g\n    else:\n", "an excluded parameter gets no weight decay"),
    ("lars_step",
     "        if w_norm > 0 and d_norm > 0:\n            d = d * (eta * w_norm / d_norm)\n",
     "        d = d * (eta * w_norm / d_norm.clamp_min(1e-12))\n",
     "when ||w|| = 0 the trust ratio is 1"),
    ("relative_step", "return lr * eta * (1 - momentum**k) / (1 - momentum)",
     "return lr * eta", "1 + m + ... + m^(k-1)"),
    ("relative_step", "return lr * eta * (1 - momentum**k) / (1 - momentum)",
     "return lr * eta / (1 - momentum)", "the limit for k -> infinity"),
    ("warmup_cosine", "t = (step - warmup_steps) / (total_steps - warmup_steps)",
     "t = step / total_steps", "total - warmup"),
    ("warmup_cosine", "return base_lr * step / warmup_steps",
     "return base_lr * (step + 1) / warmup_steps", "starts from 0 at step 0"),
    ("warmup_cosine", "return final_lr + (base_lr - final_lr) * (1 + math.cos(math.pi * t)) / 2",
     "return base_lr * (1 + math.cos(math.pi * t)) / 2", "ends at final_lr"),
    ("half_lr_step", "per_epoch = images // batch_size", "per_epoch = images / batch_size",
     "last incomplete batch is dropped"),
    ("half_lr_step", "return warmup + (total - warmup) / 2", "return (total - warmup) / 2",
     "add the warmup steps"),
]


@pytest.mark.skipif(not HAVE_SOLUTIONS, reason="a student copy has no solutions")
@pytest.mark.parametrize("name,old,new,expected", MUTATIONS,
                         ids=[f"{m[0]}-{i}" for i, m in enumerate(MUTATIONS)])
def test_a_planted_mistake_gets_its_hint(tmp_path, name, old, new, expected):
    source = SET.answers_path(solutions=True).read_text()
    assert old in source, f"the planted mistake no longer applies: {old!r}"
    answers = tmp_path / f"{SET.stem}.py"
    answers.write_text(source.replace(old, new, 1))
    (result,) = checker.run_set(SET, only=[name], check_set=checker.load_checks(SET),
                                answers_path=answers)
    assert not result.passed and expected in result.message, result.message
    head = result.message.split(expected)[0]
    assert "off by" not in head and ", expected" not in head, "the hint must come first"
