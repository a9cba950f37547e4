"""The paper's four panels of one group of runs (training loss; sharpness with
`2 / step size`; step size; step size x sharpness with the line at 2) and the
columns they read (`Columns`)."""

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np

from ._panel import Panel
from ._plot_core import (
    DENSE,
    MINIBATCH_STYLE,
    RAW_STYLE,
    SMOOTH_WIDTH,
    Curve,
    column,
    diverged_at,
    measured_steps_text,
    running,
    x_label,
    x_of,
)


class Columns(NamedTuple):
    """The history columns a figure reads (the defaults: the columns of
    `eqtuners.train(...).history`).

    - `loss`: the objective on the step's batch (the training loss of a full-batch
      run, the mini-batch loss of a mini-batch run);
    - `train_loss`: the full training objective, on its measurement schedule;
    - `stepsize`: the step size;
    - `sharpness`: the curvature drawn on the sharpness panel and multiplied by the
      step size on the last one, e.g. `Columns(sharpness="batch_sharpness")`.
    """

    loss: str = "loss"
    train_loss: str = "train_loss"
    stepsize: str = "stepsize"
    sharpness: str = "sharpness"


def checked_columns(columns) -> Columns:
    if not isinstance(columns, Columns):
        raise ValueError(
            "`columns` must be an analysis.plots.Columns (for instance "
            f"Columns(sharpness='batch_sharpness')), got {columns!r}."
        )
    return columns


QUANTITY = {
    "sharpness": "sharpness λ",
    "batch_sharpness": "batch sharpness",
    "directional_curvature": "curvature along the gradient",
}


def quantity(key: str) -> str:
    return QUANTITY.get(key, key.replace("_", " "))


class RowResult(NamedTuple):
    """What a drawn row needs said in the legend and the note."""

    uses: set[str]  # style entries to explain: "raw", "edge", "two", "failed", ...
    notes: list[str]


class _Row(NamedTuple):
    """One row being drawn: its four panels and how to read and draw the runs."""

    loss: Panel
    sharpness: Panel
    stepsize: Panel
    product: Panel
    columns: Columns
    window: int
    minibatch: bool
    has_train: bool


def _new_row(axes, curves, window, columns) -> _Row:
    xlabel = x_label(curves)
    minibatch = xlabel == "epoch"
    sharp_name = quantity(columns.sharpness)
    has_train = minibatch and any(
        np.isfinite(column(c.history, columns.train_loss)).any() for c in curves
    )
    if not minibatch:
        loss_label = "training loss"
    elif has_train:
        loss_label = "training loss (solid) and\nmini-batch loss (light)"
    else:
        loss_label = f"mini-batch loss\n(mean over {window} steps)"
    return _Row(
        Panel(axes[0], loss_label, xlabel),
        Panel(axes[1], sharp_name, xlabel),
        Panel(axes[2], "step size γ", xlabel),
        Panel(axes[3], f"step size × {sharp_name}", xlabel),
        columns,
        window,
        minibatch,
        has_train,
    )


def draw_four_panels(
    axes,
    curves: Sequence[Curve],
    colors: Mapping[str, object],
    *,
    window: int,
    columns: Columns,
) -> RowResult:
    """Draws loss, sharpness (with `2 / step` for fixed steps), step size and step
    size x sharpness (with the line at 2) of `curves` on four axes."""
    row = _new_row(axes, curves, window, columns)
    uses: set[str] = set()
    dense = False
    for curve in curves:
        line = {"color": colors[curve.label], "linestyle": curve.linestyle}
        uses |= _draw_loss(row, curve, line)
        sharp_uses, sharp_dense = _draw_sharpness(row, curve, line)
        uses |= sharp_uses
        dense |= sharp_dense
        uses |= _draw_stepsize(row, curve, line)
        product = column(curve.history, columns.stepsize) * column(
            curve.history, columns.sharpness
        )
        _measured(row.product, curve, product, window, line)
    row.product.hline(2.0, color="black", linestyle=":", linewidth=1.2)
    uses.add("two")
    if window > 1:
        uses.add("raw_step" if row.minibatch else "raw_loss_step")
    for panel in (row.loss, row.sharpness, row.stepsize):
        panel.finish()
    row.product.finish(ticks=(2.0,))
    return RowResult(uses, _notes(row, curves, dense))


def _draw_loss(row: _Row, curve: Curve, line: dict) -> set[str]:
    """The training loss (full batch: every step under its running median), or
    the full objective on its schedule over the mini-batch loss's running mean."""
    h, x, uses = curve.history, x_of(curve), set()
    diverged = diverged_at(h) is not None
    loss = column(h, row.columns.loss)
    if not row.minibatch:
        _per_step(row.loss, x, loss, row.window, diverged, line)
    elif row.has_train:
        style = {"color": line["color"], "linestyle": curve.linestyle}
        batch_mean = running(loss, row.window, np.nanmean)
        row.loss.plot(x, batch_mean, diverged=diverged, **style, **MINIBATCH_STYLE)
        uses.add("minibatch")
        train = column(h, row.columns.train_loss)
        _measured(row.loss, curve, train, row.window, line)
    else:
        batch_mean = running(loss, row.window, np.nanmean)
        row.loss.plot(x, batch_mean, diverged=diverged, linewidth=SMOOTH_WIDTH, **line)
    if diverged:
        _mark_divergence(row.loss.ax, x, line["color"])
        uses.add("diverged")
    return uses


def _draw_sharpness(row: _Row, curve: Curve, line: dict) -> tuple[set[str], bool]:
    """The sharpness on its schedule, with `2 / step` for a fixed step; returns
    the legend entries used and whether the measurements were smoothed."""
    sharp = column(curve.history, row.columns.sharpness)
    dense = _measured(row.sharpness, curve, sharp, row.window, line)
    if curve.fixed_stepsize is None or not curve.fixed_stepsize > 0:
        return set(), dense
    edge_style = "--" if curve.linestyle == "-" else ":"
    row.sharpness.hline(
        2 / curve.fixed_stepsize,
        diverged=diverged_at(curve.history) is not None,
        color=line["color"],
        linestyle=edge_style,
        linewidth=1.0,
        alpha=0.9,
    )
    return {"edge" if edge_style == "--" else "edge_dotted"}, dense


def _draw_stepsize(row: _Row, curve: Curve, line: dict) -> set[str]:
    """The step size at every step under its running median. Zero steps (failed
    searches) are marked on the bottom edge, but not the row where a run stopped
    on a non-finite loss (no step was taken). A fixed step is a flat line that a
    tuner at its cap would hide: it goes on top."""
    h, x = curve.history, x_of(curve)
    stepsize = column(h, row.columns.stepsize)
    on_top = {"zorder": 2.5} if curve.fixed_stepsize is not None else {}
    diverged = diverged_at(h) is not None
    _per_step(row.stepsize, x, stepsize, row.window, diverged, line | on_top)
    zero = (stepsize == 0) & np.isfinite(column(h, row.columns.loss))
    if not zero.any():
        return set()
    row.stepsize.ax.plot(
        x[zero],
        np.zeros(zero.sum()),
        "|",
        color=line["color"],
        markersize=7,
        transform=row.stepsize.ax.get_xaxis_transform(),
        clip_on=False,
    )
    return {"failed"}


def _notes(row: _Row, curves, dense: bool) -> list[str]:
    """What the row averaged, over how many steps, and how often it measured."""
    columns, window, smooth = row.columns, row.window, row.window > 1
    sharp_name = quantity(columns.sharpness)
    notes = []
    if row.minibatch:
        if row.has_train:
            when = measured_steps_text(curves, columns.train_loss)
            notes.append(f"Training loss: the full objective, measured {when}.")
        notes.append(
            f"Mini-batch loss: mean over windows of {window} steps."
            if smooth
            else "Mini-batch loss: every step, not averaged."
        )
    if smooth:
        per_step = "step size" if row.minibatch else "training loss and step size"
        notes.append(
            f"{per_step.capitalize()}: light lines every step; solid lines the "
            f"running median over windows of {window} steps."
        )
    when = measured_steps_text(curves, columns.sharpness)
    if when:
        notes.append(f"{sharp_name.capitalize()}: measured {when}.")
    if dense:
        notes.append(
            f"Where measured at least every {window // DENSE:g} steps, measured "
            "quantities too: light lines every measurement; solid lines the running "
            f"median over windows of {window} steps."
        )
    if row.minibatch:
        per_epoch = sorted({c.steps_per_epoch for c in curves})
        steps = "step" if per_epoch == [1] else "steps"
        notes.append("Epoch = " + ", ".join(f"{s:g}" for s in per_epoch) + f" {steps}.")
    return notes


def _measured(panel, curve, values, window, line) -> bool:
    """A quantity measured on a schedule: its measurements joined, with dots where
    there are few. Where the measurements are dense (at least `DENSE` per window
    of steps), they are drawn light, under their running median over `window`
    steps. Returns whether any were smoothed."""
    history, x = curve.history, x_of(curve)
    diverged = diverged_at(history) is not None
    rows = np.isfinite(values)
    steps = np.asarray(history["step"], float)[rows]
    gaps = np.diff(steps)
    nearest = np.minimum(np.append(gaps, np.inf), np.insert(gaps, 0, np.inf))
    dense = (window > 1) & (nearest * DENSE <= window)
    drawn = values[rows]
    if dense.any():
        panel.plot(x, values, diverged=diverged, **(line | RAW_STYLE | {"zorder": 1.5}))
        median = running(values, window, np.nanmedian)[rows]
        drawn = np.where(dense, median, drawn)
    panel.plot(
        x[rows],
        drawn,
        diverged=diverged,
        marker="." if rows.sum() <= 60 else None,
        markersize=4,
        linewidth=SMOOTH_WIDTH if dense.any() else 1.2,
        **line,
    )
    return bool(dense.any())


def _per_step(panel, x, values, window, diverged, line):
    """Every step, thin and light, under its running median over `window` steps."""
    if window > 1:
        panel.plot(x, values, diverged=diverged, **(line | RAW_STYLE | {"zorder": 1.5}))
        values = running(values, window, np.nanmedian)
    panel.plot(x, values, diverged=diverged, linewidth=SMOOTH_WIDTH, **line)


def _mark_divergence(ax, x, color):
    """An x at the top edge of `ax`, over the last step of a diverged run."""
    ax.plot(
        [x[-1]],
        [1.0],
        "x",
        color=color,
        markersize=9,
        markeredgewidth=2,
        transform=ax.get_xaxis_transform(),
        clip_on=False,
    )
