"""The one legend of a figure, below its panels: the runs, the reference lines and
markers drawn (`style_entries`), and in words what was averaged (`add_legend`)."""

from collections.abc import Sequence

from ._plot_core import Curve, diverged_at


def handle(**style):
    """A legend entry's line (no data)."""
    from matplotlib.lines import Line2D

    return Line2D([], [], **style)


def legend_label(curve: Curve) -> str:
    step = diverged_at(curve.history)
    return curve.label if step is None else f"{curve.label} (diverged at step {step})"


STYLE_ENTRIES = {
    "raw_loss_step": (
        "training loss and step size at every step (thin, light)",
        {"color": "0.5", "linewidth": 0.8},
    ),
    "raw_step": (
        "step size at every step (thin, light)",
        {"color": "0.5", "linewidth": 0.8},
    ),
    "minibatch": (
        "mini-batch loss, mean over {window} steps (thin, light)",
        {"color": "0.5", "linewidth": 0.9},
    ),
    "edge": (
        "2 / step size of a fixed-step run (dashed, its colour)",
        {"color": "0.3", "linestyle": "--", "linewidth": 1.0},
    ),
    "edge_dotted": (
        "2 / step size of a fixed-step run (dotted, its colour)",
        {"color": "0.3", "linestyle": ":", "linewidth": 1.0},
    ),
    "two": (
        "step size × {sharpness} = 2 (edge of stability)",
        {"color": "black", "linestyle": ":", "linewidth": 1.2},
    ),
    "diverged": (
        "run diverged (loss not finite) after this step",
        {"color": "0.3", "marker": "x", "linestyle": "none", "markeredgewidth": 2},
    ),
    "failed": (
        "step size 0 (failed line search)",
        {"color": "0.3", "marker": "|", "linestyle": "none", "markersize": 8},
    ),
}


def style_entries(
    uses: set[str], window: int, sharpness: str = "sharpness"
) -> tuple[list, list[str]]:
    """Legend entries for the reference lines and markers named in `uses`; the line
    at 2 names the curvature drawn (`sharpness`, as `quantity` names it)."""
    handles, labels = [], []
    for name, (label, style) in STYLE_ENTRIES.items():
        if name in uses:
            handles.append(handle(**style))
            labels.append(label.format(window=window, sharpness=sharpness))
    return handles, labels


def add_legend(fig, handles, labels, notes: Sequence[str]):
    """The figure's one legend, below the panels; `notes` (what was averaged, how
    often things were measured) are its title."""
    ncol = min(len(labels), 4) or 1
    fig.legend(
        handles,
        labels,
        loc="outside lower center",
        ncol=ncol,
        frameon=False,
        fontsize="small",
        title=_wrap(notes),
        title_fontsize="small",
        alignment="left",
    )


def _wrap(notes: Sequence[str], width: int = 150) -> str | None:
    if not notes:
        return None
    lines, line = [], ""
    for note in notes:
        if line and len(line) + 1 + len(note) > width:
            lines.append(line)
            line = note
        else:
            line = f"{line} {note}".strip()
    lines.append(line)
    return "\n".join(lines)
