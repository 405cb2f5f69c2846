"""cooc_minimal.viz: the shared figures name what they draw."""

from matplotlib.figure import Figure

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
