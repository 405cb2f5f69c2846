"""cooc_minimal.viz: the shared figures name what they draw."""

import pytest
import torch
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from cooc_minimal import viz
from cooc_minimal.models import build_model
from cooc_minimal.viz import pipeline_figure


def test_pipeline_figure_names_every_stage_in_order():
    fig = pipeline_figure()
    assert isinstance(fig, Figure)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    for stage in ("images", "patches", "augment", "backbone", "projector", "loss",
                  "bag", "probe / kNN"):
        assert stage in texts, stage
    assert any("mean of h" in t for t in texts)
    assert any("embedding" in t for t in texts) and any("z: projection" in t for t in texts)
    # training row reads left to right in the data-flow order
    train = {t.get_text(): t.get_position() for t in fig.axes[0].texts}
    xs = [train[s][0] for s in ("augment", "projector", "loss")]
    assert xs == sorted(xs)


# ---------------------------------------- looking inside a model (chapter 9)

@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model("tiny", "32-16", width=8)


@pytest.fixture(scope="module")
def planted():
    """Four random 32x32 images; image 2 holds a copy of image 0's patch (3, 5, 11, 13)
    at the grid position (12, 8) of the 8-pixel grid with stride 4."""
    images = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    images[2, :, 8:16, 12:20] = images[0, :, 5:13, 3:11]
    return images, (3, 5, 11, 13)


def _labelled(fig: Figure) -> bool:
    """Every visible axes has a title or an axis label, and the figure has a title."""
    shown = [ax for ax in fig.get_axes() if ax.get_visible()]
    titled = all(ax.get_title() or ax.get_xlabel() or ax.get_ylabel() for ax in shown)
    suptitle = fig._suptitle.get_text() if fig._suptitle is not None else ""
    return bool(shown) and titled and bool(suptitle)


@pytest.mark.parametrize("space", ["embedding", "projection"])
def test_identical_grid_patch_scores_the_maximum(model, planted, space):
    images, box = planted
    similarity = viz.patch_similarity(model, images, box, 8, stride=4, space=space)
    assert similarity.shape == (4, 7, 7)
    row, col = 8 // 4, 12 // 4
    assert similarity[2, row, col] == pytest.approx(1.0, abs=1e-5)
    assert similarity[2, row, col] >= similarity.max() - 1e-6
    assert similarity[2].flatten().argmax().item() == row * 7 + col


def test_heatmap_figure_is_labelled_and_draws_the_dashed_query(model, planted):
    images, box = planted
    fig = viz.similarity_heatmap(model, images, box, 8, stride=4,
                                 space=["embedding", "projection"])
    assert _labelled(fig)
    image_axes = [ax for ax in fig.get_axes() if ax.get_title().startswith("image")]
    assert len(image_axes) == 8  # 4 images x 2 spaces
    queries = [p for ax in image_axes for p in ax.patches if isinstance(p, Rectangle)]
    assert len(queries) == 2  # on image 0, in each row
    assert all(p.get_linestyle() == "--" and p.get_edgecolor() == to_rgba("red")
               for p in queries)
    labels = [ax.get_ylabel() for ax in fig.get_axes()]
    assert "cosine similarity (projection)" in labels  # the colour bar


def test_bad_query_box_is_one_sentence(model, planted):
    images, _ = planted
    with pytest.raises(ValueError, match="patch_size=8"):
        viz.patch_similarity(model, images, (0, 0, 6, 6), 8)
    with pytest.raises(ValueError, match="inside the 32x32 image"):
        viz.patch_similarity(model, images, (28, 0, 36, 8), 8)


def test_frame_colours_follow_the_labels():
    images = torch.tensor([3, 5, 7, 3, 8])
    labels = torch.tensor([1, 1, 2, 1, 0])  # the labels of those images
    assert viz.frame_colours(3, 1, images, labels) == [None, "green", "red", None, "red"]


def test_nearest_patches_find_the_copy_and_skip_the_query(model, planted):
    images, _ = planted
    query = (0, (4, 8, 12, 16))  # on the 8-pixel grid with stride 4
    images = images.clone()
    images[3, :, 20:28, 16:24] = images[0, :, 8:16, 4:12]
    found = viz.nearest_patches(model, images, query, k=5, stride=4)
    assert found.image[0] == 3 and found.box[0].tolist() == [16, 20, 24, 28]
    assert found.similarity[0] == pytest.approx(1.0, abs=1e-5)
    own = [(int(i), b.tolist()) for i, b in zip(found.image, found.box, strict=True)]
    assert (0, [4, 8, 12, 16]) not in own
    assert torch.all(found.similarity[:-1] >= found.similarity[1:])


def test_patch_neighbors_frames_match_the_labels(model, planted):
    images, _ = planted
    labels = torch.tensor([0, 1, 0, 1])
    query = (0, (8, 8, 16, 16))
    fig = viz.patch_neighbors(model, (images, labels), query, k=10, stride=8)
    assert _labelled(fig)
    found = viz.nearest_patches(model, images, query, k=10, stride=8)
    expected = viz.frame_colours(0, 0, found.image, labels[found.image])
    for j, colour in enumerate(expected):
        (ax,) = [a for a in fig.get_axes() if a.get_label() == f"neighbour {j}"]
        spine = ax.spines["top"]
        if colour is None:
            assert not spine.get_visible()
        else:
            assert spine.get_visible() and spine.get_edgecolor() == to_rgba(colour)
    assert set(expected) == {None, "green", "red"}  # the test sees all three cases


def test_neighbour_agreement_against_a_count_by_hand():
    # two tight clusters on a circle; keys split each cluster 2 + 1
    vectors = torch.tensor([[1.0, 0.0], [1.0, 0.01], [1.0, -0.02],
                            [0.0, 1.0], [0.01, 1.0], [-0.02, 1.0]])
    keys = torch.tensor([0, 0, 1, 2, 2, 2])
    # k = 2: points 0, 1 see each other and point 2 (1 of 2 agree); point 2 sees 0 and 1
    # (0 of 2); points 3, 4, 5 see their own cluster (2 of 2): (1 + 1 + 0 + 6) / 12
    assert viz.neighbour_agreement(vectors, keys, 2) == pytest.approx(8 / 12)
    groups = torch.tensor([0, 0, 1, 1, 2, 2])  # skip neighbours of the same group
    # k = 1: 0 -> 2 (no), 1 -> 2 (no), 2 -> 1 (no; 3 is far), 3 -> 4 (yes), 4 -> 3, 5 -> 4 or 3
    assert viz.neighbour_agreement(vectors, keys, 1, groups=groups) == pytest.approx(3 / 6)


def test_composition_figure_is_labelled(model, planted):
    images, _ = planted
    fig = viz.composition_figure(model, (images, torch.tensor([0, 1, 2, 1])), 1, 16, k=6,
                                 show=1)
    assert _labelled(fig)
    texts = {ax.get_xlabel() for ax in fig.get_axes()}
    assert any("nearest patches of other images" in t for t in texts)


def test_training_curves_from_metrics_csv(tmp_path):
    (tmp_path / "metrics.csv").write_text(
        "step,epoch,loss,lr,probe_acc\n0,0,3.0,0.1,\n1,0,2.5,0.2,0.3\n2,1,2.0,0.3,0.5\n")
    data = viz.read_metrics(tmp_path)
    assert data["loss"] == [3.0, 2.5, 2.0] and data["probe_acc"][0] != data["probe_acc"][0]
    fig = viz.training_curves(tmp_path)
    assert _labelled(fig)
    shown = [ax for ax in fig.get_axes() if ax.get_visible()]
    assert [ax.get_ylabel() for ax in shown] == ["loss", "lr", "probe_acc"]
    assert all(ax.get_xlabel() == "step" for ax in shown)
    with pytest.raises(FileNotFoundError, match="No metrics file"):
        viz.read_metrics(tmp_path / "missing")
    with pytest.raises(ValueError, match="no column to plot"):
        viz.training_curves(tmp_path, columns=["accuracy"])


def test_training_curves_draw_epoch_rows_as_dots(tmp_path):
    # train.py's layout: a "kind" column, val_acc only on the epoch rows
    (tmp_path / "metrics.csv").write_text(
        "kind,epoch,step,loss,val_acc,elapsed_s\nstep,1,1,3.0,,0.5\nstep,1,2,2.0,,1.0\n"
        "epoch,1,2,2.5,0.4,1.1\n")
    data = viz.read_metrics(tmp_path)
    assert data["kind"] == ["step", "step", "epoch"]
    fig = viz.training_curves(data)
    shown = [ax for ax in fig.get_axes() if ax.get_visible()]
    assert [ax.get_ylabel() for ax in shown] == ["loss", "val_acc"]
    loss, val = shown
    assert [line.get_label() for line in loss.get_lines()] == ["per step", "per epoch"]
    assert list(loss.get_lines()[0].get_ydata()) == [3.0, 2.0]
    assert [line.get_label() for line in val.get_lines()] == ["per epoch"]
    assert list(val.get_lines()[0].get_xdata()) == [2.0]


def test_part_sharing_counts_classes_of_other_images_only(model):
    # two flat red images (class 0) and two flat blue ones (class 1): every patch of a red
    # image has its L nearest patches in the other red image (identical pixels)
    colours = torch.tensor([[0.9, 0.1, 0.1], [0.9, 0.1, 0.1], [0.1, 0.1, 0.9], [0.1, 0.1, 0.9]])
    images = colours[:, :, None, None].expand(4, 3, 16, 16).clone()
    labels = torch.tensor([0, 0, 1, 1])
    found = viz.part_sharing(model, (images, labels), 0, 8, k=4)
    assert found.share.shape == (4, 2)
    assert torch.equal(found.share, torch.tensor([[1.0, 0.0]] * 4))
    assert set((found.nearest // 4).flatten().tolist()) == {1}  # never image 0 itself
