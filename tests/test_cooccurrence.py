"""Co-occurrence counting, the Prop. 3.1 objective and its closed-form optimum."""

import itertools

import pytest
import torch

from cooc_minimal.cooccurrence import (
    closed_form_embedding,
    cooccurrence_matrix,
    normalized_cooccurrence,
    prop31_objective,
    self_included_cooccurrence,
)


def random_joint(vocab: int, seed: int, zero_diagonal: bool = False) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(vocab, vocab, generator=g, dtype=torch.float64) ** 3
    a = a + a.T
    if zero_diagonal:  # types that never repeat in an image: M has negative eigenvalues
        a.fill_diagonal_(0)
    return a / a.sum()


def one_sentence(message: str) -> bool:
    return message.endswith(".") and ". " not in message and "\n" not in message


def test_cooccurrence_matches_a_loop_over_pairs():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 6, (30, 5), generator=g)
    P, p = cooccurrence_matrix(ids, 7)  # type 6 never occurs
    ref = torch.zeros(7, 7, dtype=torch.float64)
    for image in ids.tolist():
        for u, v in itertools.permutations(range(5), 2):
            ref[image[u], image[v]] += 1
    ref /= ref.sum()
    assert P.dtype == torch.float64 and P.shape == (7, 7)
    assert torch.allclose(P, ref, atol=1e-15)
    assert torch.equal(P, P.T) and P.sum().item() == pytest.approx(1.0, abs=1e-12)
    frequency = torch.bincount(ids.flatten(), minlength=7).double() / ids.numel()
    assert torch.allclose(p, frequency, atol=1e-15) and p[6] == 0


def test_cooccurrence_rejects_bad_patch_ids():
    cases = [
        (torch.rand(4, 3), 5, "integer tensor"),
        (torch.zeros(6, dtype=torch.long), 5, "shape \\(images, patches per image\\)"),
        (torch.zeros(4, 1, dtype=torch.long), 5, "two patches per image"),
        (torch.full((4, 3), 5, dtype=torch.long), 5, "must lie in \\[0, vocab_size=5\\)"),
        (torch.zeros(4, 3, dtype=torch.long), 0, "vocab_size must be a positive integer"),
    ]
    for ids, vocab, message in cases:
        with pytest.raises(ValueError, match=message) as error:
            cooccurrence_matrix(ids, vocab)
        assert one_sentence(str(error.value)), str(error.value)


def test_objective_matches_a_loop_and_the_spectral_loss():
    P = random_joint(5, 1)
    P = torch.nn.functional.pad(P, (0, 1, 0, 1))  # a sixth type that never occurs
    p = P.sum(1)
    Z = torch.randn(6, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    w = 1.5
    ref, spectral, constant = 0.0, 0.0, 0.0
    for i, j in itertools.product(range(6), range(6)):
        if p[i] * p[j] == 0:
            continue
        s = float(Z[i] @ Z[j])
        ref += p[i] * p[j] * (w * s - P[i, j] / (p[i] * p[j])) ** 2
        spectral += -P[i, j] * s + w / 2 * p[i] * p[j] * s**2
        constant += P[i, j] ** 2 / (p[i] * p[j])
    value = prop31_objective(Z, P, w=w)
    assert value.item() == pytest.approx(float(ref), rel=1e-12)
    # Proposition 3.1: objective = 2w * (spectral contrastive loss) + constant.
    assert value.item() == pytest.approx(2 * w * float(spectral) + float(constant), rel=1e-12)


def test_normalized_cooccurrence_has_the_trivial_eigenpair():
    P = random_joint(6, 3)
    M, sqrt_p = normalized_cooccurrence(P)
    assert torch.allclose(M @ sqrt_p, sqrt_p, atol=1e-12)
    eigenvalues = torch.linalg.eigvalsh(M)
    assert eigenvalues.max().item() == pytest.approx(1.0, abs=1e-12)
    assert eigenvalues.min().item() >= -1 - 1e-12


CASES = [(4, 2, 10, False), (6, 3, 11, False), (6, 2, 12, True), (8, 5, 13, True),
         (5, 5, 14, False)]


@pytest.mark.parametrize("vocab,d,seed,zero_diag", CASES)
def test_closed_form_beats_random_and_perturbed_embeddings(vocab, d, seed, zero_diag):
    P = random_joint(vocab, seed, zero_diag)
    Z = closed_form_embedding(P, d)
    best = prop31_objective(Z, P).item()
    # The minimum is the sum of squares of the eigenvalues of M that the embedding cannot keep.
    eigenvalues = torch.linalg.eigvalsh(normalized_cooccurrence(P)[0]).flip(0)
    expected = eigenvalues.pow(2).sum() - eigenvalues[:d].clamp_min(0).pow(2).sum()
    assert best == pytest.approx(expected.item(), rel=1e-9, abs=1e-12)
    g = torch.Generator().manual_seed(seed)
    scales = torch.logspace(-3, 1, 1000, dtype=torch.float64)
    trials = torch.stack([prop31_objective(Z + s * torch.randn(Z.shape, generator=g,
                                                              dtype=torch.float64), P)
                          for s in scales])
    assert trials.min().item() >= best * (1 - 1e-12)
    rotation, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    assert prop31_objective(Z @ rotation, P).item() == pytest.approx(best, rel=1e-10)


def lbfgs(Z: torch.Tensor, P: torch.Tensor) -> float:
    optimizer = torch.optim.LBFGS([Z], max_iter=300, tolerance_grad=1e-12,
                                  tolerance_change=1e-16, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = prop31_objective(Z, P)
        loss.backward()
        return loss

    for _ in range(3):
        optimizer.step(closure)
    return prop31_objective(Z, P).item()


@pytest.mark.parametrize("vocab,d,seed,zero_diag", CASES)
def test_gradient_descent_from_random_starts_does_not_beat_the_closed_form(vocab, d, seed,
                                                                          zero_diag):
    P = random_joint(vocab, seed, zero_diag)
    best = prop31_objective(closed_form_embedding(P, d), P).item()
    g = torch.Generator().manual_seed(100 + seed)
    for _ in range(3):
        Z = (0.1 * torch.randn(vocab, d, generator=g, dtype=torch.float64)).requires_grad_()
        found = lbfgs(Z, P)
        assert found >= best * (1 - 1e-4)
        assert found <= best * (1 + 1e-4) + 1e-12  # the landscape has no bad local minima here


def test_rank_is_limited_to_positive_eigenvalues():
    # Types that never repeat within an image: M has a zero diagonal, so negative eigenvalues.
    P = random_joint(6, 5, zero_diagonal=True)
    positive = int((torch.linalg.eigvalsh(normalized_cooccurrence(P)[0]) > 1e-12).sum())
    assert positive < 6
    Z = closed_form_embedding(P, 6)
    norms = Z.norm(dim=0)
    assert (norms[:positive] > 0).all() and torch.all(norms[positive:] == 0)
    assert prop31_objective(Z, P).item() == pytest.approx(
        prop31_objective(closed_form_embedding(P, positive), P).item(), rel=1e-12)


def test_weight_w_changes_the_scale_of_z_not_the_minimum():
    P = random_joint(5, 7)
    z2, z8 = closed_form_embedding(P, 3, w=2.0), closed_form_embedding(P, 3, w=8.0)
    assert torch.allclose(z2 @ z2.T, 4 * (z8 @ z8.T), atol=1e-12)
    assert prop31_objective(z2, P, 2.0).item() == pytest.approx(
        prop31_objective(z8, P, 8.0).item(), rel=1e-10)


def test_bad_joints_and_sizes_raise_one_clear_sentence():
    P = random_joint(4, 8)
    skew = P.clone()
    skew[0, 1] += 0.05
    skew /= skew.sum()
    negative = P.clone()
    negative[0, 1] = negative[1, 0] = -0.01
    negative /= negative.sum()
    cases = [
        (lambda: closed_form_embedding(skew, 2), "not symmetric"),
        (lambda: closed_form_embedding(P, 5), "d=5 is larger than the vocabulary"),
        (lambda: closed_form_embedding(negative, 2), "negative entries"),
        (lambda: closed_form_embedding(2 * P, 2), "must sum to 1"),
        (lambda: closed_form_embedding(P, 2, w=0.0), "w must be a positive number"),
        (lambda: prop31_objective(torch.zeros(3, 2), P), "one row per patch type"),
        (lambda: prop31_objective(torch.zeros(4, 2), skew), "not symmetric"),
        (lambda: prop31_objective(torch.zeros(4, 2), negative), "negative entries"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message) as error:
            call()
        assert one_sentence(str(error.value)), str(error.value)


def test_toy_world_true_cooccurrence_is_what_its_images_show():
    """Chapter 4's toy world and chapter 1's estimator agree on P, in the same convention."""
    from cooc_minimal.toyworld import ToyWorld

    world = ToyWorld(seed=3)
    P_true, p_true = world.cooccurrence()
    sample = world.sample(4000, generator=0)
    P_seen, p_seen = cooccurrence_matrix(sample.parts, world.n_parts)
    assert (P_seen - P_true).abs().max().item() < 0.004
    assert torch.allclose(p_true, P_true.sum(1))
    Z = closed_form_embedding(P_true, d=4)
    assert Z.shape == (world.n_parts, 4)
    # P = W^T diag(prior) W has rank <= V = 8: d = 8 fits it exactly, d = 4 leaves a residual.
    assert prop31_objective(closed_form_embedding(P_true, d=world.n_parts), P_true) < 1e-12
    nothing = prop31_objective(torch.zeros_like(Z), P_true)
    assert prop31_objective(Z, P_true) < 0.05 * nothing


@pytest.mark.parametrize("n", [1, 2, 4, 8])
def test_self_included_cooccurrence_counts_the_pairs_of_a_mean_over_all_patches(n):
    # Counted pair by pair: a patch of type u meets each of the n patches of the mean with
    # weight 1/n; n - 1 of them are other patches (a pair from P), one is itself (type u).
    P = random_joint(5, seed=n)
    p = P.sum(1)
    expected = torch.zeros_like(P)
    for u, v in itertools.product(range(5), repeat=2):
        expected[u, v] = (n - 1) / n * P[u, v] + (p[u] / n if u == v else 0.0)
    got = self_included_cooccurrence(P, n)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(got.sum(1), p)  # the marginal is unchanged
    with pytest.raises(ValueError, match="n must be a number of patches"):
        self_included_cooccurrence(P, 0)
