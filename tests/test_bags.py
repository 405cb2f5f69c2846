"""cooc_minimal.bags: the patch-embedding primitive and bag means, each against a computation
written out by hand, and the loops over chunks against one another."""

import pytest
import torch
import torch.nn.functional as F

from cooc_minimal import bags
from cooc_minimal.models import build_model
from cooc_minimal.patches import random_boxes
from cooc_minimal.toyworld import ToyWorld, ToyWorldDataset


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model("tiny", "32-16", width=8).eval()


@pytest.fixture(scope="module")
def images():
    return torch.rand(6, 3, 24, 20, generator=torch.Generator().manual_seed(0))


def by_hand(model, images, boxes, space, out_size):
    """Crop each box by slicing, resize it alone, embed it alone: (B, n, D)."""
    rows = []
    with torch.no_grad():
        for image, image_boxes in zip(images, boxes, strict=True):
            row = []
            for x0, y0, x1, y1 in image_boxes.tolist():
                patch = image[None, :, y0:y1, x0:x1]
                if out_size is not None:
                    patch = F.interpolate(patch, size=(out_size, out_size), mode="bilinear",
                                          align_corners=False, antialias=True)
                row.append(model.embed(patch, space)[0])
            rows.append(torch.stack(row))
    return torch.stack(rows)


@pytest.mark.parametrize("space, out_size", [("embedding", None), ("projection", 16),
                                             ("embedding", 5)])
def test_embed_patches_is_crop_resize_embed_one_patch_at_a_time(model, images, space, out_size):
    boxes = random_boxes(6, 24, 20, 8, 3, generator=torch.Generator().manual_seed(1))  # (6, 3, 4)
    patches = torch.stack([torch.stack([image[:, y0:y1, x0:x1]
                                        for x0, y0, x1, y1 in image_boxes.tolist()])
                           for image, image_boxes in zip(images, boxes, strict=True)])
    with torch.no_grad():
        ours = bags.embed_patches(model, patches, space, out_size)
    dim = model.embedding_dim if space == "embedding" else 16
    assert ours.shape == (6, 3, dim) and ours.dtype == torch.float32
    torch.testing.assert_close(ours, by_hand(model, images, boxes, space, out_size),
                               atol=1e-5, rtol=1e-5)


def test_patch_embeddings_embeds_the_patches_random_patches_draws(model, images):
    ours = bags.patch_embeddings(model, images, 8, n=4, out_size=12,
                                 generator=torch.Generator().manual_seed(2))
    # the same draw as patch_embeddings made
    boxes = random_boxes(6, 24, 20, 8, 4, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(ours, by_hand(model, images, boxes, "embedding", 12),
                               atol=1e-5, rtol=1e-5)


def test_patch_embeddings_on_the_grid_is_row_by_row(model, images):
    ours = bags.patch_embeddings(model, images, 8, grid=True, stride=4)
    rows, cols = (24 - 8) // 4 + 1, (20 - 8) // 4 + 1
    assert bags.grid_length(24, 20, 8, 4) == rows * cols == ours.shape[1]
    grid = torch.tensor([[x, y, x + 8, y + 8] for y in range(0, 17, 4) for x in range(0, 13, 4)])
    expected = by_hand(model, images, grid.expand(6, -1, -1), "embedding", None)
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-5)
    some = bags.patch_embeddings(model, images, 8, n=5, grid=True, stride=4,
                                 generator=torch.Generator().manual_seed(0))
    for image in range(6):  # 5 distinct grid patches of the image
        match = torch.cdist(some[image], ours[image]).argmin(dim=1)
        assert match.unique().numel() == 5
        torch.testing.assert_close(some[image], ours[image][match], atol=1e-5, rtol=1e-5)


def test_bag_means_are_the_means_of_the_first_n_written_as_a_loop():
    h = torch.randn(4, 9, 5, generator=torch.Generator().manual_seed(0))
    means = bags.bag_means(h, [1, 3, 9])
    assert sorted(means) == [1, 3, 9]
    for n, bag in means.items():
        expected = torch.zeros(4, 5)
        for k in range(n):
            expected += h[:, k]
        torch.testing.assert_close(bag, expected / n, atol=1e-6, rtol=1e-6)


def test_bag_embeddings_of_a_tensor_equal_embed_dataset_of_the_same_images(model):
    dataset = ToyWorldDataset(ToyWorld(seed=0), 14, seed=4)
    for grid in (False, True):
        from_tensor = bags.bag_embeddings(model, dataset.images, 8, [1, 3, 6], grid=grid,
                                          batch_size=18,  # 3 images a pass, 5 passes
                                          generator=torch.Generator().manual_seed(7))
        from_dataset, labels = bags.embed_dataset(model, dataset, 8, [1, 3, 6], grid=grid,
                                                  batch_size=18, progress=False,
                                                  generator=torch.Generator().manual_seed(7))
        assert torch.equal(labels, dataset.labels)
        for n in (1, 3, 6):
            assert torch.equal(from_tensor[n], from_dataset[n]), (grid, n)


def test_grid_and_image_embeddings_are_chunked_without_changing_them(model, images):
    whole = bags.grid_embeddings(model, images, 8, stride=4, batch_size=10_000)
    chunked = bags.grid_embeddings(model, images, 8, stride=4, batch_size=1)  # 1 image a pass
    torch.testing.assert_close(whole, chunked, atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        expected = model.embed(images, "projection")
    torch.testing.assert_close(bags.image_embeddings(model, images, space="projection",
                                                     images_per_pass=4), expected,
                               atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("call, words", [
    (lambda m, x: bags.patch_embeddings(m, x, 8), "n must be given"),
    (lambda m, x: bags.patch_embeddings(m, x, 8, n=21, grid=True, stride=4), "more than the 20"),
    (lambda m, x: bags.patch_embeddings(m, x, 30, grid=True), "larger than the images"),
    (lambda m, x: bags.embed_patches(m, x[:, None], "z"), "'embedding' or 'projection'"),
    (lambda m, x: bags.embed_patches(m, x), r"\(B, n, C, s, s\)"),
    (lambda m, x: bags.grid_embeddings(torch.nn.Linear(3, 3), x, 8), "JointEmbedding"),
])
def test_bad_arguments_raise_one_clear_sentence(model, images, call, words):
    with pytest.raises(ValueError, match=words):
        call(model, images)


def test_a_datasets_bags_wait_on_the_cpu_whatever_the_models_device(monkeypatch):
    """Features of a whole dataset never sit on the model's device together: embed_dataset
    sends each chunk's bags, and the labels, to the CPU (a read-out moves one matrix at a
    time). The model is on the CPU here, so the test watches where chunks are sent."""
    from torch.utils.data import TensorDataset

    class Labelled(TensorDataset):
        classes = ["a", "b"]

    sent_to = []
    embed_chunks = bags._embed_chunks

    def watching(*args, keep_on, **kwargs):
        sent_to.append(keep_on)
        return embed_chunks(*args, keep_on=keep_on, **kwargs)

    monkeypatch.setattr(bags, "_embed_chunks", watching)
    torch.manual_seed(0)
    model = build_model("tiny", "16").eval()
    data = Labelled(torch.rand(6, 3, 16, 16), torch.tensor([0, 1, 0, 1, 0, 1]))
    found, labels = bags.embed_dataset(model, data, 8, [1, 4], progress=False)
    assert sent_to == [torch.device("cpu")]
    assert all(b.device.type == "cpu" and b.shape == (6, 128) for b in found.values())
    assert labels.device.type == "cpu" and labels.tolist() == [0, 1, 0, 1, 0, 1]
