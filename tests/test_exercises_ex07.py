"""Chapter 7's exercises: common mistakes, planted in the reference answers, get their hint
before any number (the stub / solution / house-rule tests of every set are in
tests/test_exercises.py)."""

import pytest

from exercises import checker

SET = next(s for s in checker.exercise_sets(7) if s.topic == "evaluation")
HAVE_SOLUTIONS = SET.answers_path(solutions=True).exists()

MUTATIONS = [  # (exercise, text in the solution, replacement, what the message says)
    ("bag_embeddings", "return h.view(batch, n, -1).mean(dim=1)",
     "return h.view(batch, n, -1).sum(dim=1)", "do not sum them"),
    ("bag_embeddings", "windows[image, :, corners[..., 1], corners[..., 0]]",
     "windows[image, :, corners[..., 0], corners[..., 1]]", "x0 indexes the width"),
    ("bag_embeddings", "h = embed(patches.reshape(batch * n, *patches.shape[2:]))",
     "h = embed(patches.reshape(batch * n, -1)).view(batch * n, -1)",
     "flatten the patches to (B * n, C, size, size)"),
    ("knn_classify", "weight = (similarity / temperature).exp()",
     "weight = torch.ones_like(similarity)", "outweighs the two farther ones"),
    ("knn_classify", "weight = (similarity / temperature).exp()",
     "weight = similarity.exp()", "outweighs the two farther ones"),
    ("knn_classify", "bank = train_x / train_x.norm(dim=1, keepdim=True)",
     "bank = train_x", "by cosine similarity"),
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
