"""Figures the chapters share, drawn with matplotlib (no external diagram tool).

- ``pipeline_figure()``: the course's data flow, training row and evaluation row.
"""

from __future__ import annotations

from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

__all__ = ["pipeline_figure"]

# (label, detail, module) for each stage of the two rows
_TRAIN_STAGES = (
    ("images", "(B, 3, H, W)", "data"),
    ("patches", "n per image\n(B, n, 3, p, p)", "patches"),
    ("augment", "BYOL, per patch", "augment"),
    ("backbone", "h: embedding\n(B, n, out_dim)", "models"),
    ("projector", "z: projection\n(B, n, D)", "models"),
    ("loss", "spectral, VICReg,\nTCR, SimCLR", "losses"),
)
_EVAL_STAGES = (
    ("images", "(B, 3, H, W)", "data"),
    ("patches", "n per image\n(or a grid)", "patches"),
    ("backbone", "h per patch\n(B, n, out_dim)", "models"),
    ("bag", "mean of h over\npatches (B, out_dim)", "evaluate"),
    ("probe / kNN", "linear probe,\nk nearest neighbours", "evaluate"),
)
_COLOURS = {
    "data": "#e8eef7",
    "patches": "#e3f1e0",
    "augment": "#fdf1d8",
    "models": "#f6e0e0",
    "losses": "#ece3f3",
    "evaluate": "#dff2f2",
}


def _row(ax, stages, y: float, box_w: float, gap: float) -> list[tuple[float, float]]:
    """Draw one row of boxes joined by arrows; returns each box's (x_left, x_right)."""
    spans = []
    for i, (label, detail, module) in enumerate(stages):
        x = i * (box_w + gap)
        ax.add_patch(
            FancyBboxPatch(
                (x, y - 0.5), box_w, 1.0,
                boxstyle="round,pad=0.02,rounding_size=0.08",
                facecolor=_COLOURS[module], edgecolor="#444", linewidth=1.2,
            )
        )
        ax.text(x + box_w / 2, y + 0.22, label, ha="center", va="center",
                fontsize=12, fontweight="bold")
        ax.text(x + box_w / 2, y - 0.13, detail, ha="center", va="center", fontsize=8.5)
        ax.text(x + box_w / 2, y - 0.62, f"{module}.py", ha="center", va="top",
                fontsize=7.5, color="#555", family="monospace")
        if i:
            ax.add_patch(
                FancyArrowPatch((x - gap + 0.02, y), (x - 0.02, y),
                                arrowstyle="-|>", mutation_scale=14, linewidth=1.4, color="#333")
            )
        spans.append((x, x + box_w))
    return spans


def pipeline_figure() -> Figure:
    """The course's pipeline as a figure: the training row and the evaluation row.

    Training: images -> patches -> augment -> backbone (h, the embedding) -> projector (z)
    -> loss. Evaluation: images -> patches -> backbone -> bag (mean of h over the patches)
    -> linear probe / kNN. Each box names the `cooc_minimal` module that implements it.
    """
    fig = Figure(figsize=(11, 4.6), layout="constrained")
    ax = fig.add_subplot()
    box_w, gap = 1.55, 0.45
    width = len(_TRAIN_STAGES) * (box_w + gap) - gap
    ax.text(-0.05, 2.95, "Training (self-supervised)", fontsize=11, style="italic",
            ha="left", va="center")
    _row(ax, _TRAIN_STAGES, 2.2, box_w, gap)
    ax.text(-0.05, 0.95, "Evaluation (frozen backbone)", fontsize=11, style="italic",
            ha="left", va="center")
    spans = _row(ax, _EVAL_STAGES, 0.2, box_w, gap)
    # the evaluation reuses the trained backbone: a dashed link between the two rows
    x_train = 3 * (box_w + gap) + box_w / 2
    x_eval = (spans[2][0] + spans[2][1]) / 2
    ax.add_patch(
        FancyArrowPatch((x_train, 1.38), (x_eval, 0.76), arrowstyle="-|>", mutation_scale=12,
                        linestyle="--", linewidth=1.1, color="#777")
    )
    ax.text((x_train + x_eval) / 2 + 0.12, 1.07, "same trained weights", fontsize=8,
            color="#555", ha="left", va="center")
    ax.set_xlim(-0.15, width + 0.15)
    ax.set_ylim(-0.75, 3.2)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title("The course's pipeline: what each stage turns into what", fontsize=12)
    return fig
