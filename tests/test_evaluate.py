"""Bag embeddings (``bags.py``), linear probe, weighted kNN, multi-scale convergence and the
toy-world comparison (``toyworld.py``), each against an independent computation or a model
whose output is known."""

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from cooc_minimal import bags as B
from cooc_minimal import evaluate as E
from cooc_minimal.cli import eval_main
from cooc_minimal.cooccurrence import closed_form_embedding
from cooc_minimal.models import Backbone, JointEmbedding, build_model, projector
from cooc_minimal.patches import grid_patches, random_patches
from cooc_minimal.toyworld import ToyWorld, ToyWorldDataset, gram_similarity, part_embeddings


class MeanColour(Backbone):
    """A backbone known by construction: the mean colour of its input, (B, 3, 1, 1)."""

    out_dim = 3

    def forward_features(self, x):
        return x.mean(dim=(2, 3), keepdim=True)


class TileId(Backbone):
    """One-hot of round(value * (L - 1)) of channel 0's mean: which of L tiles a patch is."""

    def __init__(self, n_tiles: int):
        super().__init__()
        self.out_dim = n_tiles

    def forward_features(self, x):
        index = (x[:, 0].mean(dim=(1, 2)) * (self.out_dim - 1)).round().long()
        return nn.functional.one_hot(index, self.out_dim).float()[:, :, None, None]


def known_model(backbone: Backbone) -> JointEmbedding:
    """Identity normalisation, no projector: embed(x) is the backbone's output."""
    return JointEmbedding(backbone, projector("", backbone.out_dim), mean=(0.0, 0.0, 0.0),
                          std=(1.0, 1.0, 1.0))


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model = build_model("tiny", "32-16", width=8)
    return model


@pytest.fixture(scope="module")
def images():
    return torch.rand(10, 3, 24, 20, generator=torch.Generator().manual_seed(0))


# ---------------------------------------------------------------------- bag embeddings

def test_bag_is_the_mean_of_per_patch_embeddings_computed_one_image_at_a_time(tiny, images):
    bags = B.bag_embeddings(tiny, images, 8, 5, generator=torch.Generator().manual_seed(3))
    patches, _ = random_patches(images, 8, 5, generator=torch.Generator().manual_seed(3))
    tiny.eval()
    with torch.no_grad():
        expected = torch.stack([tiny.embed(p).mean(dim=0) for p in patches])  # image by image
    tiny.train()
    assert bags.shape == (10, tiny.embedding_dim) and bags.dtype == torch.float32
    torch.testing.assert_close(bags, expected, atol=1e-5, rtol=1e-5)


def test_chunking_does_not_change_the_bags(tiny, images):
    big = B.bag_embeddings(tiny, images, 8, 6, batch_size=10_000,
                           generator=torch.Generator().manual_seed(1))
    small = B.bag_embeddings(tiny, images, 8, 6, batch_size=7,  # one image per pass
                             generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(big, small, atol=1e-5, rtol=1e-5)


def test_projection_space_averages_the_projections_not_the_projection_of_the_mean(images):
    torch.manual_seed(0)
    model = build_model("tiny", "32-16", width=8).eval()
    bags = B.bag_embeddings(model, images, 8, 4, space="projection",
                            generator=torch.Generator().manual_seed(2))
    patches, _ = random_patches(images, 8, 4, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        h, z = model(patches.flatten(0, 1))
        mean_of_z = z.view(10, 4, -1).mean(1)
        z_of_mean = model.projector(h.view(10, 4, -1).mean(1))
    assert bags.shape == (10, 16)
    torch.testing.assert_close(bags, mean_of_z, atol=1e-5, rtol=1e-5)
    assert (bags - z_of_mean).abs().max() > 1e-3


def test_full_grid_bag_of_mean_colours_is_the_image_mean_colour():
    model = known_model(MeanColour())
    images = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    bags = B.bag_embeddings(model, images, 8, None, grid=True)  # all 16 tiles
    torch.testing.assert_close(bags, images.mean(dim=(2, 3)), atol=1e-6, rtol=1e-6)


def test_grid_subsets_are_distinct_tiles_and_nested():
    grid, n_tiles = 4, 16
    values = torch.arange(n_tiles, dtype=torch.float32) / (n_tiles - 1)  # tile t shows t / 15
    tiles = values.view((1, 1, grid, 1, grid, 1)).expand((6, 3, grid, 8, grid, 8))
    images = tiles.reshape(6, 3, 32, 32)
    model = known_model(TileId(n_tiles))
    bags = B.bag_embeddings(model, images, 8, [1, 5, 16], grid=True,
                            generator=torch.Generator().manual_seed(0))
    for n, bag in bags.items():
        histogram = bag * n  # how often each tile was used
        assert torch.allclose(histogram.sum(1), torch.full((6,), float(n)))
        assert histogram.max() <= 1 + 1e-6, f"a tile was used twice in a bag of {n}"
    assert torch.all(bags[1] * 1 <= bags[5] * 5 + 1e-6)  # the 1-bag's tile is in the 5-bag
    assert torch.allclose(bags[16], torch.full((6, 16), 1 / 16))


def test_list_of_counts_gives_nested_prefix_means(tiny, images):
    bags = B.bag_embeddings(tiny, images, 6, [4, 1, 16], generator=torch.Generator().manual_seed(5))
    assert sorted(bags) == [1, 4, 16]
    single = B.bag_embeddings(tiny, images, 6, 16, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(bags[16], single, atol=1e-5, rtol=1e-5)
    patches, _ = random_patches(images, 6, 16, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        tiny.eval()
        h = tiny.embed(patches.flatten(0, 1)).view(10, 16, -1)
        tiny.train()
    torch.testing.assert_close(bags[4], h[:, :4].mean(1), atol=1e-5, rtol=1e-5)


def test_out_size_resizes_patches_before_the_network(tiny, images):
    bags = B.bag_embeddings(tiny, images, 8, 3, out_size=16,
                            generator=torch.Generator().manual_seed(4))
    patches, _ = random_patches(images, 8, 3, out_size=16,
                                generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        tiny.eval()
        expected = tiny.embed(patches.flatten(0, 1)).view(10, 3, -1).mean(1)
        tiny.train()
    torch.testing.assert_close(bags, expected, atol=1e-5, rtol=1e-5)


def test_uint8_pixels_are_read_as_values_over_255(tiny, images):
    pixels = (images * 255).round().to(torch.uint8)
    a = B.bag_embeddings(tiny, pixels, 8, 3, generator=torch.Generator().manual_seed(0))
    b = B.bag_embeddings(tiny, pixels.float() / 255, 8, 3,
                         generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)


def test_model_runs_in_eval_mode_without_touching_batchnorm_and_its_mode_is_restored(images):
    torch.manual_seed(0)
    model = build_model("tiny", "32-16", width=8).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    B.bag_embeddings(model, images, 8, 4, space="projection")
    assert model.training and all(m.training for m in model.modules())
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), f"{key} changed"
    model.eval()
    B.bag_embeddings(model, images, 8, 4)
    assert not any(m.training for m in model.modules())


def test_bf16_autocast_runs_the_network_in_bf16_and_averages_in_float32(tiny, images):
    reference = B.bag_embeddings(tiny, images, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = B.bag_embeddings(tiny, images, 8, 8, generator=torch.Generator().manual_seed(0))
    assert low.dtype == torch.float32
    error = ((low - reference).norm(dim=1) / reference.norm(dim=1)).max().item()
    assert 0 < error < 0.03, f"bf16 bags differ from float32 by {error:.3g} (relative)"


def test_a_dataset_gives_the_same_bags_as_its_tensor_and_the_labels():
    world = ToyWorld(seed=0)
    dataset = ToyWorldDataset(world, 12, seed=3)
    torch.manual_seed(0)
    model = build_model("tiny", "", width=8)
    from_tensor = B.bag_embeddings(model, dataset.images, 8, [2, 4],
                                   generator=torch.Generator().manual_seed(0))
    bags, labels = B.embed_dataset(model, dataset, 8, [2, 4], batch_size=20,  # 5 images a pass
                                   generator=torch.Generator().manual_seed(0), progress=False)
    assert torch.equal(labels, dataset.labels)
    for n in (2, 4):
        torch.testing.assert_close(bags[n], from_tensor[n], atol=1e-5, rtol=1e-5)
    only = B.bag_embeddings(model, dataset, 8, 4, generator=torch.Generator().manual_seed(0),
                            progress=False)
    torch.testing.assert_close(only, from_tensor[4], atol=1e-5, rtol=1e-5)
    limited, few = B.embed_dataset(model, dataset, 8, 4, limit=5, progress=False)
    assert limited.shape == (5, model.embedding_dim) and torch.equal(few, dataset.labels[:5])


@pytest.mark.parametrize("kwargs, words", [
    (dict(patch_size=40, n_patches=2), "larger than the images"),
    (dict(patch_size=8, n_patches=0), "positive integer"),
    (dict(patch_size=8, n_patches=[]), "non-empty list"),
    (dict(patch_size=8, n_patches=2, space="z"), "'embedding' or 'projection'"),
    (dict(patch_size=8, n_patches=7, grid=True), "more than the 6 grid patches"),
    (dict(patch_size=8, n_patches=2, batch_size=0), "batch_size"),
])
def test_bad_arguments_raise_one_clear_sentence(tiny, images, kwargs, words):
    with pytest.raises(ValueError, match=words):
        B.bag_embeddings(tiny, images, **kwargs)


def test_bad_images_and_models_are_named(tiny, images):
    with pytest.raises(ValueError, match="unsqueeze"):
        B.bag_embeddings(tiny, images[0], 8, 2)
    with pytest.raises(ValueError, match="JointEmbedding"):
        B.bag_embeddings(nn.Linear(3, 3), images, 8, 2)
    with pytest.raises(ValueError, match="floating point"):
        B.bag_embeddings(tiny, (images * 255).to(torch.int32), 8, 2)


# ------------------------------------------------------------------------ linear probe

def gaussian_classes(n: int, seed: int, dim: int = 20, classes: int = 4, spread: float = 0.8):
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(classes, dim, generator=torch.Generator().manual_seed(99)) * spread / 2
    y = torch.randint(0, classes, (n,), generator=g)
    return means[y] + torch.randn(n, dim, generator=g), y, means


def test_probe_reaches_the_bayes_classifier_on_gaussian_classes():
    train_x, train_y, means = gaussian_classes(4000, 0)
    test_x, test_y, _ = gaussian_classes(4000, 1)
    result = E.linear_probe(train_x, train_y, test_x, test_y)
    # Equal isotropic covariances and priors: Bayes picks the nearest class mean.
    bayes = (torch.cdist(test_x, means).argmin(1) == test_y).float().mean().item()
    assert 0.4 < bayes < 0.9  # a problem where the classifier matters
    assert result.accuracy >= bayes - 0.015, (result.accuracy, bayes)
    logits = result.head(test_x)
    assert logits.shape == (4000, 4)
    assert E.accuracy(logits.argmax(1), test_y) == pytest.approx(result.accuracy)


def test_probe_budget_reaches_the_optimum_of_its_objective():
    train_x, train_y, _ = gaussian_classes(3000, 2, dim=64, classes=10, spread=3.0)
    wd = 5e-4
    result = E.linear_probe(train_x, train_y, train_x[:10], train_y[:10], weight_decay=wd)
    standardize, linear = result.head
    # The gradient of the objective, recomputed independently in float64, is ~0.
    x = ((train_x.double() - train_x.double().mean(0)) / train_x.double().std(0))
    W = linear.weight.detach().double().clone().requires_grad_(True)
    b = linear.bias.detach().double().clone().requires_grad_(True)
    logp = torch.log_softmax(x @ W.T + b, dim=1)
    loss = -logp[torch.arange(3000), train_y].mean() + wd / 2 * W.square().sum()
    loss.backward()
    gradient = torch.cat([W.grad.flatten(), b.grad]).norm().item()
    assert gradient < 1e-4, f"the probe stopped with gradient norm {gradient:.2e}"
    assert result.loss == pytest.approx(loss.item(), rel=1e-4)
    longer = E.linear_probe(train_x, train_y, train_x[:10], train_y[:10], weight_decay=wd,
                            max_iter=3000)
    assert result.loss <= longer.loss + 1e-5


def test_probe_is_invariant_to_the_scale_of_each_feature():
    train_x, train_y, _ = gaussian_classes(1500, 3)
    test_x, test_y, _ = gaussian_classes(1500, 4)
    scale = torch.logspace(-3, 3, train_x.shape[1])
    a = E.linear_probe(train_x, train_y, test_x, test_y)
    b = E.linear_probe(train_x * scale + 7, train_y, test_x * scale + 7, test_y)
    assert a.accuracy == pytest.approx(b.accuracy, abs=2e-3)


def test_probe_is_deterministic_and_its_bias_never_leaves_the_plane_sum_zero():
    # The objective is flat along b -> b + c (every logit shifted by c); L-BFGS from b = 0
    # never moves that way, since every gradient in b sums to zero over the classes.
    train_x, train_y, _ = gaussian_classes(1000, 7, classes=5)
    first = E.linear_probe(train_x, train_y, train_x[:10], train_y[:10])
    again = E.linear_probe(train_x, train_y, train_x[:10], train_y[:10])
    bias = first.head[1].bias
    assert abs(bias.sum().item()) < 1e-4 * bias.abs().max().item()
    for a, b in zip(first.head.state_dict().values(), again.head.state_dict().values(),
                    strict=True):
        assert torch.equal(a, b)


def test_probe_rejects_mismatched_inputs():
    x, y, _ = gaussian_classes(50, 0)
    with pytest.raises(ValueError, match="test_x has 5"):
        E.linear_probe(x, y, x[:, :5], y)
    with pytest.raises(ValueError, match="one label per row"):
        E.linear_probe(x, y[:10], x, y)
    with pytest.raises(ValueError, match="NaN"):
        E.linear_probe(x * math.nan, y, x, y)


# --------------------------------------------------------------------------------- kNN

def knn_reference(train_x, train_y, test_x, *, k, temperature, n_classes):
    """The InstDisc vote written out in NumPy, one test row at a time."""
    a = train_x.double().numpy()
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    out = []
    for q in test_x.double().numpy():
        s = a @ (q / np.linalg.norm(q))
        top = np.argsort(-s)[:k]
        votes = np.zeros(n_classes)
        for j in top:
            votes[train_y[j]] += math.exp(s[j] / temperature)
        out.append(int(np.argmax(votes)))
    return torch.tensor(out)


def test_knn_matches_the_written_out_vote():
    g = torch.Generator().manual_seed(0)
    train_x, train_y = torch.randn(300, 8, generator=g), torch.randint(0, 5, (300,), generator=g)
    test_x = torch.randn(120, 8, generator=g)
    for k, t in ((20, 0.07), (5, 0.5), (1, 0.07)):
        ours = E.knn_classify(train_x, train_y, test_x, k=k, temperature=t)
        expected = knn_reference(train_x, train_y, test_x, k=k, temperature=t, n_classes=5)
        assert torch.equal(ours, expected), f"k={k}, T={t}"


def test_knn_chunked_is_the_same_as_unchunked():
    g = torch.Generator().manual_seed(1)
    train_x, train_y = torch.randn(500, 16, generator=g), torch.randint(0, 10, (500,), generator=g)
    test_x = torch.randn(333, 16, generator=g)
    whole = E.knn_classify(train_x, train_y, test_x, chunk_size=333)
    for chunk in (1, 7, 100):
        assert torch.equal(E.knn_classify(train_x, train_y, test_x, chunk_size=chunk), whole)


def test_knn_weights_let_one_close_neighbour_outvote_two_far_ones():
    train_x = torch.tensor([[1.0, 0.02], [1.0, 0.6], [1.0, -0.6]])
    train_y = torch.tensor([0, 1, 1])
    query = torch.tensor([[1.0, 0.0]])
    assert E.knn_classify(train_x, train_y, query, k=3, temperature=0.07).item() == 0
    assert E.knn_classify(train_x, train_y, query, k=3, temperature=100.0).item() == 1  # ~vote
    # a tiny temperature would overflow exp(s / T) without the shift
    assert E.knn_classify(train_x, train_y, query, k=3, temperature=1e-3).item() == 0


class LargestTensor(TorchFunctionMode):
    """Records the most elements of any tensor a torch function returns."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, tuple) else (out,):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


def test_knn_memory_is_bounded_by_chunks_for_a_cifar_sized_bank():
    g = torch.Generator().manual_seed(2)
    train_x, train_y = torch.randn(50_000, 4, generator=g), torch.randint(0, 10, (50_000,),
                                                                         generator=g)
    test_x = torch.randn(1000, 4, generator=g)
    with LargestTensor() as spy:
        predictions = E.knn_classify(train_x, train_y, test_x)
    assert predictions.shape == (1000,)
    # 50,000 x 10,000 would be 5e8 similarities (2 GB); each chunk holds at most 2**24 of them.
    assert spy.largest <= 2**24 + 50_000 * 4, spy.largest


def test_knn_rejects_k_larger_than_the_bank():
    with pytest.raises(ValueError, match="k=20 is more than the 5 training samples"):
        E.knn_classify(torch.randn(5, 3), torch.zeros(5, dtype=torch.long), torch.randn(2, 3))


# -------------------------------------------------------------- multi-scale convergence

class LinearMap(Backbone):
    """A 1x1 convolution: a fixed linear map of each pixel, then (Backbone) the global
    average. A patch's embedding is the average over its pixels, so the embedding of an image
    is exactly the mean of the embeddings of the tiles that cover it."""

    out_dim = 6

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, self.out_dim, 1, bias=False)
        nn.init.normal_(self.conv.weight, generator=torch.Generator().manual_seed(0))

    def forward_features(self, x):
        return self.conv(x)


def written_out_centred_cosine(a, b):
    a = a.double() - a.double().mean(0)
    b = b.double() - b.double().mean(0)
    return ((a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))).mean().item()


def test_convergence_is_the_written_out_centred_cosine_against_own_and_other_image():
    world = ToyWorld(seed=0)
    images = world.sample(64, 0).images
    model = known_model(MeanColour())
    counts = [16, 1, 4]  # any order: the result follows it
    pairing = torch.arange(64).roll(1)  # image i against image i - 1
    result = E.multiscale_convergence(model, images, 8, counts, pairing=pairing,
                                      generator=torch.Generator().manual_seed(0))
    patches, _ = random_patches(images, 8, 16, generator=torch.Generator().manual_seed(0))
    colours = patches.mean(dim=(3, 4))  # (B, 16, 3): each patch's embedding
    whole = images.mean(dim=(2, 3))  # (B, 3)
    same = [written_out_centred_cosine(colours[:, :n].mean(1), whole) for n in counts]
    other = [written_out_centred_cosine(colours[:, :n].mean(1), whole[pairing]) for n in counts]
    assert result.counts == counts
    assert result.same.tolist() == pytest.approx(same, abs=1e-5)
    assert result.different.tolist() == pytest.approx(other, abs=1e-5)
    assert result.gap.tolist() == pytest.approx([s - d for s, d in zip(same, other, strict=True)],
                                                abs=1e-5)
    rows = result.rows()
    assert [r["n_patches"] for r in rows] == counts and set(rows[0]) == {
        "n_patches", "same", "different", "gap"}


def test_a_linear_average_converges_to_one_and_another_image_stays_near_zero():
    g = torch.Generator().manual_seed(1)  # independent images: a colour each, and pixel noise
    images = (torch.rand(256, 3, 1, 1, generator=g) * 0.1
              + torch.rand(256, 3, 32, 32, generator=g) * 0.9)  # one patch: cos about 0.6
    model = known_model(LinearMap())
    # every tile of the 4x4 grid: the bag is the whole image's embedding, exactly
    grid = E.multiscale_convergence(model, images, 8, [1, 4, 16], grid=True,
                                    generator=torch.Generator().manual_seed(0))
    assert grid.same[-1].item() == pytest.approx(1.0, abs=1e-5)
    assert grid.same[0] < 0.7 < grid.same[1] < grid.same[2]
    # random patches cover the image unevenly (the border less), but come close to it
    rand = E.multiscale_convergence(model, images, 8, [1, 4, 16, 64],
                                    generator=torch.Generator().manual_seed(0))
    assert (rand.same[1:] > rand.same[:-1]).all() and rand.same[-1] > 0.97
    # independent images share nothing beyond the mean the centring removes
    assert grid.different.abs().max() < 0.1 and rand.different.abs().max() < 0.1


def test_the_plain_cosine_of_non_negative_features_is_high_for_unrelated_images():
    # Why the metric is centred: mean colours are >= 0, so any two images have a large plain
    # cosine, and the uncentred "convergence" is mostly what every image has in common.
    images = torch.rand(200, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    model = known_model(MeanColour())
    plain = E.multiscale_convergence(model, images, 4, [16], centre=False, grid=True)
    centred = E.multiscale_convergence(model, images, 4, [16], grid=True)
    assert plain.different.item() > 0.99  # another image scores as well as the same one
    assert centred.same.item() == pytest.approx(1.0, abs=1e-5)
    assert abs(centred.different.item()) < 0.1


def test_centred_cosine_ignores_a_shift_of_either_set_and_can_be_plain():
    g = torch.Generator().manual_seed(3)
    a, b = torch.randn(50, 7, generator=g), torch.randn(50, 7, generator=g)
    shifted = E.centred_cosine(a + torch.randn(7, generator=g), b - 5.0)
    torch.testing.assert_close(shifted, E.centred_cosine(a, b), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(E.centred_cosine(a, b, centre=False),
                               nn.functional.cosine_similarity(a, b))
    with pytest.raises(ValueError, match="same shape"):
        E.centred_cosine(a, b[:, :3])


@pytest.mark.parametrize("n", [2, 3, 10, 257])
def test_derangement_moves_every_index_and_is_a_permutation(n):
    pairing = E.derangement(n, seed=5)
    assert sorted(pairing.tolist()) == list(range(n))
    assert (pairing != torch.arange(n)).all()
    assert torch.equal(pairing, E.derangement(n, seed=5))


def test_convergence_refuses_a_single_image_or_a_bad_pairing(tiny, images):
    with pytest.raises(ValueError, match="at least 2 images"):
        E.multiscale_convergence(tiny, images[:1], 8, [1])
    with pytest.raises(ValueError, match="pairing"):
        E.multiscale_convergence(tiny, images, 8, [1], pairing=torch.arange(3))
    with pytest.raises(ValueError, match="at least 2"):
        E.derangement(1)


def test_convergence_of_a_full_grid_is_exact_for_a_linear_embedding():
    images = torch.rand(5, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    model = known_model(MeanColour())
    bags = B.bag_embeddings(model, images, 4, None, grid=True)
    cos = nn.functional.cosine_similarity(bags, model.embed(images)).min().item()
    assert cos == pytest.approx(1.0, abs=1e-6)


# ----------------------------------------------------- part embeddings and the closed form

def test_part_embeddings_of_mean_colours_are_the_part_colours():
    world = ToyWorld(seed=0)
    sample = world.sample(200, 1)
    model = known_model(MeanColour())
    parts = part_embeddings(model, sample.images, sample.parts, world.tile, world.n_parts,
                            space="embedding")
    assert parts.shape == (world.n_parts, 3)
    assert (parts - world.colors).abs().max() < 0.03  # stripes and noise average out


def test_part_embeddings_average_the_tiles_of_each_part(tiny):
    world = ToyWorld(seed=0)
    sample = world.sample(6, 2)
    parts = part_embeddings(tiny, sample.images, sample.parts, 8, world.n_parts)
    tiles = grid_patches(sample.images, 8)[0].flatten(0, 1)
    with torch.no_grad():
        tiny.eval()
        z = tiny.embed(tiles, "projection")
        tiny.train()
    ids = sample.parts.flatten()
    for v in range(world.n_parts):
        if (ids == v).any():
            torch.testing.assert_close(parts[v], z[ids == v].mean(0), atol=1e-5, rtol=1e-5)
        else:
            assert torch.isnan(parts[v]).all()


def centred_kernel_alignment(Z, R, p):
    """Independent form: H D^1/2 Z Z^T D^1/2 H with H the projection off sqrt(p)."""
    u = np.sqrt(p) / np.linalg.norm(np.sqrt(p))
    H = np.eye(len(p)) - np.outer(u, u)
    D = np.diag(np.sqrt(p))
    A = H @ D @ Z @ Z.T @ D @ H
    B = H @ D @ R @ R.T @ D @ H
    return float((A * B).sum() / np.linalg.norm(A) / np.linalg.norm(B))


def test_gram_similarity_matches_the_written_out_formula_and_its_invariances():
    world = ToyWorld(seed=0)
    P, p = world.cooccurrence()
    closed = closed_form_embedding(P, 8)
    g = torch.Generator().manual_seed(0)
    Z = torch.randn(8, 5, generator=g, dtype=torch.float64)
    value = gram_similarity(Z, closed, p)
    assert value == pytest.approx(centred_kernel_alignment(Z.numpy(), closed.numpy(), p.numpy()),
                                  abs=1e-10)
    Q, _ = torch.linalg.qr(torch.randn(8, 8, generator=g, dtype=torch.float64))
    assert gram_similarity(3.0 * closed @ Q, closed, p) == pytest.approx(1.0, abs=1e-10)
    assert gram_similarity(torch.ones(8, 4), closed, p) == 0.0  # constant: nothing learned
    assert gram_similarity(closed, closed, p, centre=False) == pytest.approx(1.0)


# ------------------------------------------------------------------------ command line

@pytest.fixture(scope="module")
def smoke_checkpoint(tmp_path_factory):
    """A checkpoint of the smoke config, two steps long (the CLI's plumbing, not its quality)."""
    from cooc_minimal.config import Config
    from cooc_minimal.train import train

    out = tmp_path_factory.mktemp("run")
    train(Config(epochs=1, train_images=128, batch_size=64, n_patches=2, probe=False), out,
          progress=False)
    return out / "last.pt"


def test_cli_prints_the_table_and_writes_json_rows(smoke_checkpoint, tmp_path, capsys):
    import json

    path = tmp_path / "rows.json"
    code = eval_main(["--checkpoint", str(smoke_checkpoint), "--dataset", "toyworld",
                   "--patches", "4,1", "--space", "both", "--limit", "120", "--json", str(path),
                   "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.splitlines()[0].split() == ["space", "n_patches", "patch_size", "probe_acc",
                                           "knn_acc"]
    rows = json.loads(path.read_text())
    assert [(r["space"], r["n_patches"]) for r in rows] == [
        ("embedding", 1), ("embedding", 4), ("projection", 1), ("projection", 4)]
    for row in rows:
        assert set(row) == {"metric", "space", "n_patches", "patch_size", "probe_acc", "knn_acc"}
        assert row["metric"] == "accuracy"
        assert row["patch_size"] == 8 and 0 <= row["probe_acc"] <= 1 and 0 <= row["knn_acc"] <= 1
        assert f"{row['probe_acc']:.4f}" in out


def test_cli_rows_match_the_library_functions(smoke_checkpoint):
    from cooc_minimal.checkpoint import load_model
    from cooc_minimal.data import get_dataset

    rows = E.evaluate_checkpoint(smoke_checkpoint, dataset="toyworld", patches=[2], limit=100,
                                 grid=True, progress=False)
    model, _ = load_model(smoke_checkpoint)
    train, test = get_dataset("toyworld"), get_dataset("toyworld", train=False)
    bags = [B.bag_embeddings(model, d.images[:100], 8, 2, grid=True,
                             generator=torch.Generator().manual_seed(s))
            for s, d in enumerate((train, test))]
    probe = E.linear_probe(bags[0], train.labels[:100], bags[1], test.labels[:100], 10)
    knn = E.knn_classify(bags[0], train.labels[:100], bags[1], n_classes=10)
    assert rows[0]["probe_acc"] == pytest.approx(probe.accuracy)
    assert rows[0]["knn_acc"] == pytest.approx(E.accuracy(knn, test.labels[:100]))


def one_sentence(text: str) -> bool:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return len(lines) == 1 and "Traceback" not in text and lines[0].startswith("cooc-eval: ")


def test_cli_missing_checkpoint_is_one_sentence_without_traceback(tmp_path, repo):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "cooc_minimal.evaluate", "--checkpoint",
                             str(tmp_path / "nothing" / "last.pt")], capture_output=True,
                            text=True, cwd=repo)
    assert result.returncode == 2
    assert one_sentence(result.stderr), result.stderr
    assert "no checkpoint" in result.stderr.lower()


def test_cli_checkpoint_of_another_architecture_is_one_sentence(smoke_checkpoint, tmp_path,
                                                                capsys):
    from cooc_minimal.checkpoint import load_checkpoint, save_checkpoint

    state = load_checkpoint(smoke_checkpoint)
    state["config"] = {**state["config"], "arch": "resnet18"}  # tiny weights, ResNet config
    save_checkpoint(tmp_path / "other.pt", state)
    assert eval_main(["--checkpoint", str(tmp_path / "other.pt"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert one_sentence(err) and "resnet18" in err, err


@pytest.mark.parametrize("dataset, words", [("cifar10", "cifar-10-batches-py"),
                                            ("imagefolder", "does not exist"),
                                            ("mnist", "Unknown dataset")])
def test_cli_missing_or_unknown_dataset_is_one_sentence(smoke_checkpoint, tmp_path, capsys,
                                                        dataset, words):
    code = eval_main(["--checkpoint", str(smoke_checkpoint), "--dataset", dataset,
                   "--data-root", str(tmp_path), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and one_sentence(err) and words in err, err


def test_cli_reads_an_image_folder(smoke_checkpoint, tmp_path, capsys):
    from PIL import Image

    g = np.random.default_rng(0)
    for split in ("train", "val"):
        for c, colour in enumerate(((200, 40, 40), (40, 40, 200))):
            folder = tmp_path / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(12):
                pixels = np.clip(g.normal(colour, 20, (40, 48, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    code = eval_main(["--checkpoint", str(smoke_checkpoint), "--dataset", "imagefolder",
                   "--data-root", str(tmp_path), "--patches", "1,4", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0, out
    rows = [line.split() for line in out.splitlines()[1:]]
    assert [r[1] for r in rows] == ["1", "4"]
    assert float(rows[1][3]) == 1.0  # red vs blue: the probe cannot miss


def test_cli_rejects_bad_patch_counts(smoke_checkpoint, capsys):
    assert eval_main(["--checkpoint", str(smoke_checkpoint), "--patches", "1,x"]) == 2
    assert one_sentence(capsys.readouterr().err)


def test_cli_convergence_rows_match_the_library_function(smoke_checkpoint, tmp_path, capsys):
    import json

    from cooc_minimal.checkpoint import load_model
    from cooc_minimal.data import get_dataset

    path = tmp_path / "convergence.json"
    code = eval_main(["--checkpoint", str(smoke_checkpoint), "--dataset", "toyworld",
                      "--patches", "none", "--convergence", "4,1", "--limit", "60",
                      "--json", str(path), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("multi-scale convergence")
    assert out.splitlines()[1].split() == ["space", "n_patches", "patch_size", "images", "same",
                                           "different", "gap"]
    rows = json.loads(path.read_text())
    assert [r["n_patches"] for r in rows] == [1, 4]
    for row in rows:
        assert set(row) == {"metric", "space", "n_patches", "patch_size", "images", "same",
                            "different", "gap"}
        assert row["metric"] == "convergence" and row["images"] == 60
        assert row["gap"] == pytest.approx(row["same"] - row["different"])
    model, _ = load_model(smoke_checkpoint)
    images = get_dataset("toyworld", train=False).images[:60]
    expected = E.multiscale_convergence(model, images, 8, [1, 4],
                                        generator=torch.Generator().manual_seed(1))  # seed + 1
    assert [r["same"] for r in rows] == pytest.approx(expected.same.tolist(), abs=1e-5)
    assert [r["different"] for r in rows] == pytest.approx(expected.different.tolist(), abs=1e-5)


def test_untrained_is_the_run_at_its_initialisation(smoke_checkpoint):
    from cooc_minimal.checkpoint import load_model
    from cooc_minimal.data import get_dataset

    trained = E.evaluate_checkpoint(smoke_checkpoint, patches=(), convergence=[2], limit=40,
                                    progress=False)
    rows = E.evaluate_checkpoint(smoke_checkpoint, patches=(), convergence=[2], limit=40,
                                 untrained=True, progress=False)
    _, cfg = load_model(smoke_checkpoint)
    torch.manual_seed(cfg.seed)  # as training seeds the model it builds
    initial = build_model(cfg.arch, cfg.projector, width=cfg.width).eval()
    images = get_dataset("toyworld", train=False).images[:40]
    expected = E.multiscale_convergence(initial, images, 8, [2],
                                        generator=torch.Generator().manual_seed(1))
    assert rows[0]["same"] == pytest.approx(expected.same.item(), abs=1e-5)
    assert rows[0]["same"] != pytest.approx(trained[0]["same"], abs=1e-3)


@pytest.mark.parametrize("options, words", [
    (["--convergence", "1,x"], "--convergence must be positive integers"),
    (["--patches", "none"], "nothing to evaluate"),
    (["--patch-size", "32", "--patches", "1,4"], "covers the whole 32x32 image"),
    (["--patches", "none", "--convergence", "4", "--limit", "1"], "at least 2 images"),
])
def test_cli_bad_convergence_input_is_one_sentence(smoke_checkpoint, capsys, options, words):
    code = eval_main(["--checkpoint", str(smoke_checkpoint), "--dataset", "toyworld",
                      "--no-progress", *options])
    err = capsys.readouterr().err
    assert code == 2 and one_sentence(err) and words in err, err


def test_probe_and_knn_stay_in_float32_inside_an_autocast_region():
    train_x, train_y, _ = gaussian_classes(1000, 5)
    test_x, test_y, _ = gaussian_classes(500, 6)
    plain = E.linear_probe(train_x, train_y, test_x, test_y)
    knn = E.knn_classify(train_x, train_y, test_x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = E.linear_probe(train_x, train_y, test_x, test_y)
        knn_inside = E.knn_classify(train_x, train_y, test_x)
    assert inside.loss == pytest.approx(plain.loss, rel=1e-6)
    assert inside.accuracy == plain.accuracy and torch.equal(knn_inside, knn)


def test_cli_reads_cifar10_files_in_their_real_format(smoke_checkpoint, tmp_path, monkeypatch,
                                                      capsys):
    import hashlib
    import json
    import pickle

    from torchvision import datasets

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    files = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for file in files:  # red images of class 0, blue ones of class 1, rows as CIFAR stores them
        labels = rng.integers(0, 2, 12)
        planes = rng.integers(0, 40, (12, 3, 1024))
        planes[np.arange(12), np.where(labels == 0, 0, 2)] += 200
        entry = {"batch_label": file, "data": planes.reshape(12, 3072).astype(np.uint8),
                 "labels": labels.tolist(), "filenames": [f"{i}.png" for i in range(12)]}
        (folder / file).write_bytes(pickle.dumps(entry, protocol=2))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": ["red", "blue"]}))
    md5 = {f: hashlib.md5((folder / f).read_bytes()).hexdigest()
           for f in [*files, "batches.meta"]}
    cls = datasets.CIFAR10  # torchvision checks each file's md5: expect our small files
    monkeypatch.setattr(cls, "train_list", [[f, md5[f]] for f in files[:5]])
    monkeypatch.setattr(cls, "test_list", [["test_batch", md5["test_batch"]]])
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": md5["batches.meta"]})
    path = tmp_path / "rows.json"
    code = eval_main(["--checkpoint", str(smoke_checkpoint), "--dataset", "cifar10", "--data-root",
                   str(tmp_path), "--patches", "4", "--json", str(path), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    (row,) = json.loads(path.read_text())
    assert row["n_patches"] == 4 and row["probe_acc"] == 1.0 and row["knn_acc"] == 1.0



def test_a_config_that_trains_on_whole_images_evaluates_its_own_smaller_patches(
        smoke_checkpoint, tmp_path):
    """imagenet_vicreg_multiscale trains on crops of the whole image (patch_size = image
    side); its eval_patch_size makes cooc-eval's default bags real, and --patch-size still
    overrides it (then refused: every patch the same crop)."""
    from cooc_minimal.config import load_config

    shipped = load_config("imagenet_vicreg_multiscale")
    assert shipped.patch_size == shipped.image_size
    assert 0 < shipped.eval_patch_size < shipped.image_size and shipped.eval_out_size > 0
    state = torch.load(smoke_checkpoint, weights_only=True)
    state["config"].update(patch_size=32, eval_patch_size=16, eval_out_size=8)
    whole = tmp_path / "last.pt"
    torch.save(state, whole)
    rows = E.evaluate_checkpoint(whole, dataset="toyworld", patches=(1, 4), limit=40,
                                 progress=False)
    assert [r["patch_size"] for r in rows] == [16, 16]
    with pytest.raises(ValueError, match="covers the whole 32x32 image"):
        E.evaluate_checkpoint(whole, dataset="toyworld", patches=(1, 4), patch_size=32,
                              limit=40, progress=False)


# ------------------------------------------- checkpoints and options refused before any work

def _random_file(path, size: int = 5000):
    path.write_bytes(np.random.default_rng(0).integers(0, 256, size, dtype=np.uint8).tobytes())
    return path


def _no_embedding(monkeypatch):
    monkeypatch.setattr(B, "embed_dataset",
                        lambda *a, **k: pytest.fail("images embedded before the refusal"))


def test_cli_a_checkpoint_of_random_bytes_is_one_sentence(tmp_path, capsys, monkeypatch):
    _no_embedding(monkeypatch)
    path = _random_file(tmp_path / "rand.pt")
    assert eval_main(["--checkpoint", str(path), "--patches", "1", "--limit", "50",
                      "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert one_sentence(err), err
    assert f"{path} is not a PyTorch checkpoint (torch.save writes a zip archive" in err


def test_cli_a_checkpoint_changed_inside_is_refused_not_evaluated(smoke_checkpoint, tmp_path,
                                                                  capsys, monkeypatch):
    from test_checkpoint import _flip_inside

    name = _flip_inside(smoke_checkpoint, tmp_path / "last.pt")
    _no_embedding(monkeypatch)
    assert eval_main(["--checkpoint", str(tmp_path / "last.pt"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert one_sentence(err), err
    assert f"its entry {name} fails its CRC check" in err
    assert "delete it and resume from another checkpoint or train again." in err


def test_cli_takes_a_run_folder_for_its_last_pt_and_refuses_its_config(smoke_checkpoint,
                                                                       capsys):
    run = smoke_checkpoint.parent
    options = ["--dataset", "toyworld", "--patches", "1", "--limit", "40", "--no-progress"]
    assert eval_main(["--checkpoint", str(run), *options]) == 0
    from_folder = capsys.readouterr().out
    assert eval_main(["--checkpoint", str(smoke_checkpoint), *options]) == 0
    assert capsys.readouterr().out == from_folder
    assert eval_main(["--checkpoint", str(run / "config.toml"), *options]) == 2
    err = capsys.readouterr().err
    assert one_sentence(err), err
    assert f"{run / 'config.toml'} is not a PyTorch checkpoint" in err
    assert "pass the last.pt that cooc_minimal.train writes in its run folder" in err
    assert "delete" not in err and "corrupted" not in err


def test_cli_resume_from_a_last_pt_of_random_bytes_is_one_sentence(smoke_checkpoint, tmp_path,
                                                                   capsys):
    from cooc_minimal.cli import train_main

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.toml").write_bytes((smoke_checkpoint.parent / "config.toml").read_bytes())
    before = _random_file(run / "last.pt").read_bytes()
    assert train_main(["--out", str(run), "--resume", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err == (f"cooc-train: {run / 'last.pt'} is not a PyTorch checkpoint (torch.save "
                   f"writes a zip archive, and this file is not one): restore it from a copy, "
                   f"or train again.\n")
    assert (run / "last.pt").read_bytes() == before


def test_cli_a_k_larger_than_the_training_bags_is_refused_before_embedding(
        smoke_checkpoint, capsys, monkeypatch):
    _no_embedding(monkeypatch)
    assert eval_main(["--checkpoint", str(smoke_checkpoint), "--dataset", "toyworld",
                      "--patches", "1", "--limit", "50", "--k", "1000", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert one_sentence(err), err
    assert err == ("cooc-eval: k=1000 (--k) is more than the 50 training bags the kNN votes "
                   "among: pass --k 50 or less, or use a larger --limit (now 50, of 10000 "
                   "training images).\n")
    with pytest.raises(ValueError, match=r"k=20000 \(--k\) is more than the 10000 training "
                                         r"bags .*: pass --k 10000 or less, or use a larger "
                                         r"training split\."):
        E.evaluate_checkpoint(smoke_checkpoint, dataset="toyworld", patches=[1], k=20000,
                              progress=False)


def test_a_k_as_large_as_the_training_bags_votes_with_all_of_them(smoke_checkpoint):
    from cooc_minimal.checkpoint import load_model
    from cooc_minimal.data import get_dataset

    (row,) = E.evaluate_checkpoint(smoke_checkpoint, dataset="toyworld", patches=[2], k=40,
                                   limit=40, progress=False)
    model, _ = load_model(smoke_checkpoint)
    train, test = get_dataset("toyworld"), get_dataset("toyworld", train=False)
    bags = [B.embed_dataset(model, d, 8, [2], limit=40, progress=False,
                            generator=torch.Generator().manual_seed(s)) for s, d in
            enumerate((train, test))]
    knn = E.knn_classify(bags[0][0][2], bags[0][1], bags[1][0][2], k=40, n_classes=10)
    assert row["knn_acc"] == pytest.approx(E.accuracy(knn, bags[1][1]))


def test_cli_grid_refusal_speaks_of_options_not_python_arguments(smoke_checkpoint, capsys):
    options = dict(dataset="toyworld", patches=[64], grid=True, limit=40, progress=False)
    with pytest.raises(ValueError, match=r"or use random patches \(grid=False\)\.$"):
        E.evaluate_checkpoint(smoke_checkpoint, **options)  # Python callers: its argument
    assert eval_main(["--checkpoint", str(smoke_checkpoint), "--dataset", "toyworld",
                      "--patches", "64", "--grid", "--limit", "40", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert one_sentence(err), err
    assert err.endswith("ask for at most 16, or drop --grid to use random patches.\n"), err
    assert "grid=False" not in err
