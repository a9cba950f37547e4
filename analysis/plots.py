"""Figures of the study, drawn from the histories that `eqtuners.train` returns.

- `plot_panels`: the paper's four panels for one group of runs (its Figures 1-2,
  and each batch size of Figures 3-5): training loss; sharpness with `2 / step
  size` dashed for the fixed-step runs; step size; step size x sharpness with the
  line at 2.
- `plot_batch_size_grid`: the stochastic suite, one row of the four panels per
  batch size, x in epochs.
- `plot_polyak_zoom`: the paper's Figure 6, a Polyak run step by step over its
  first steps, its step size drawn against the edge `2 / sharpness`.
- `plot_cap_sweep`: the paper's Figure 7, Polyak runs at several caps with
  constant-step GD at the same steps.
- `plot_phase_portrait`: sharpness against step size, with the curves of the
  top-eigenmode quadratic model.
- `plot_spectral_densities`: Hessian spectral densities (stochastic Lanczos
  quadrature) side by side, log density.
- `plot_sigma_sweep` and `plot_curvature_bracket` (in `_edge_plots`): CDAT's
  threshold at `sigma = 2` in a network and a model, and the free curvature
  bracket of the Armijo searches against the measured curvature.

A run is a `Curve`; the history columns a figure reads are a `Columns` (for
instance `Columns(sharpness="batch_sharpness")`). Every function writes one image,
whose format the suffix of `path` gives (`.png`, `.pdf`, `.svg`), and returns its
path. The figures share these conventions:

- one legend per figure, below the panels, that names the runs and every
  reference line; above its entries, in words, what was averaged over how many
  steps and how often the curvature was measured;
- a run has one colour in every panel (and every row);
- a per-step series (the loss of a full-batch run, the step size) is drawn thin
  and light at every step under its running median over `window` steps, so that a
  series that jumps at every step (Polyak's step size) does not hide the others;
  the measured quantities (sharpness, step size x sharpness, and the training loss
  of a mini-batch run) are drawn on their measurement schedule, unsmoothed; a
  mini-batch loss is averaged over `window` steps and never called a training loss;
- a y axis is logarithmic where its positive values span more than a decade, with
  plain tick labels (0.01, not 10^-2); zero step sizes (failed line searches),
  which a log axis cannot show, are marked on its bottom edge;
- a run that diverged (its loss stopped being finite, where `eqtuners.train` ends
  it) is drawn up to its end, its legend entry says at which step, an x marks its
  end on the loss panel, and it cannot stretch the y axes: they are fitted to the
  runs that did not diverge;
- a run without measurements simply has no curve on the measured panels.
"""

import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ._edge_plots import (
    plot_curvature_bracket as plot_curvature_bracket,
    plot_sigma_sweep as plot_sigma_sweep,
)
from ._four_panels import (
    Columns as Columns,
    checked_columns,
    draw_four_panels,
    quantity,
)
from ._legend import add_legend, handle, legend_label, style_entries
from ._panel import Panel
from ._plot_core import (
    SMOOTH_WIDTH,
    Curve as Curve,
    check_window,
    checked_curves,
    column,
    diverged_at,
    label_colors,
    log_formatter,
    moving_average as moving_average,
    new_figure,
    plain_number as plain_number,
    running,
    save,
)

_PANEL_SIZE = (4.2, 3.3)


def running_median(values: np.ndarray, window: int) -> np.ndarray:
    """The median of the `window` values centred on each entry (the entries
    `i - window // 2` to `i - window // 2 + window - 1`, those that exist: fewer
    at the ends). Values that are not finite are left out.

    **Arguments:**

    - `values`: a 1-D array, one value per step.
    - `window`: the number of steps, >= 1 (1 returns the values).

    **Returns:** an array of the shape of `values` (NaN where a window holds no
    finite value).

    **Raises:** `ValueError` if `window` is not an int >= 1.
    """
    return running(np.asarray(values, float), check_window(window), np.nanmedian)


def running_mean(values: np.ndarray, window: int) -> np.ndarray:
    """As `running_median`, with the mean: for a mini-batch loss, an estimate of the
    training loss over `window` steps."""
    return running(np.asarray(values, float), check_window(window), np.nanmean)


def plot_panels(
    curves: Curve | Sequence[Curve],
    path: str | Path,
    *,
    title: str = "",
    window: int = 20,
    columns: Columns = Columns(),
) -> Path:
    """The paper's four panels for one group of runs, in one row: the training
    loss; the sharpness, with the edge of stability `2 / step size` dashed in the
    colour of each fixed-step run; the step size; and step size x sharpness, with
    the line at 2 (Figures 1-5 of Roulet, Agarwala and Pedregosa).

    Full-batch runs (`Curve.steps_per_epoch` is `None`) are drawn against the
    step, their `loss` column as the training loss. Mini-batch runs
    (`steps_per_epoch` given) are drawn against the epoch: the loss panel shows the
    full training objective (`columns.train_loss`, on its measurement schedule) as
    the main line and the mini-batch loss (`columns.loss`) averaged over `window`
    steps as a thin light line. All runs of one call must be of one kind.

    **Arguments:**

    - `curves`: the runs (one `Curve` or several).
    - `path`: the image to write; its suffix gives the format.
    - `title`: the figure's title (say the model, data and batch size).
    - `window`: the number of steps of the running median drawn over the per-step
      series, and of the mean of the mini-batch loss (the paper: 20; 1 draws every
      step unsmoothed).
    - `columns`: the history columns read (a `Columns`); for instance
      `Columns(sharpness="batch_sharpness")` draws the batch sharpness, and the
      last panel then shows step size x batch sharpness.

    **Returns:** `path`, as a `Path`.

    **Raises:** `ValueError` if `curves` is empty, a history lacks `step`, `loss`
    or `stepsize` or has columns of different lengths, full-batch and mini-batch
    runs are mixed, `window` is not an int >= 1, or `columns` is not a `Columns`.
    """
    curves = checked_curves(curves)
    window = check_window(window)
    columns = checked_columns(columns)
    fig = new_figure(figsize=(4 * _PANEL_SIZE[0], _PANEL_SIZE[1] + 1.3))
    axes = fig.subplots(1, 4)
    colors = label_colors(curves)
    row = draw_four_panels(axes, curves, colors, window=window, columns=columns)
    _legend(fig, curves, colors, row.uses, row.notes, window, columns.sharpness)
    if title:
        fig.suptitle(title)
    return save(fig, path)


def plot_batch_size_grid(
    groups: Mapping[int, Sequence[Curve]],
    path: str | Path,
    *,
    title: str = "",
    window: int = 20,
    columns: Columns = Columns(),
) -> Path:
    """The stochastic suite (the paper's Figures 3-5) in one figure: a row of the
    four panels of `plot_panels` per batch size, x in epochs; a run label has the
    same colour in every row.

    **Arguments:**

    - `groups`: batch size -> its runs, mini-batch `Curve`s with `steps_per_epoch`
      set (rows in increasing batch size).
    - `path`, `title`, `window`, `columns`: as for `plot_panels`.

    **Returns:** `path`, as a `Path`.

    **Raises:** `ValueError` as `plot_panels`, if `groups` is empty, or if a run
    has no `steps_per_epoch`.
    """
    if not isinstance(groups, Mapping) or not groups:
        raise ValueError(
            "`groups` must be a non-empty mapping: batch size -> its Curves, got "
            f"{groups!r}."
        )
    window = check_window(window)
    columns = checked_columns(columns)
    rows = {}
    for batch_size in sorted(groups):
        curves = checked_curves(groups[batch_size], f"groups[{batch_size}]")
        for curve in curves:
            if curve.steps_per_epoch is None:
                raise ValueError(
                    f"Run {curve.label!r} of `groups[{batch_size}]` has no "
                    "steps_per_epoch: a mini-batch run needs it for the epoch axis."
                )
        rows[batch_size] = curves
    every = [c for curves in rows.values() for c in curves]
    colors = label_colors(every)
    fig = new_figure(
        figsize=(4 * _PANEL_SIZE[0], len(rows) * (_PANEL_SIZE[1] + 0.35) + 1.4)
    )
    subfigs = np.atleast_1d(fig.subfigures(len(rows), 1))
    uses, row_notes = set(), {}
    for subfig, (batch_size, curves) in zip(subfigs, rows.items()):
        axes = subfig.subplots(1, 4)
        row = draw_four_panels(axes, curves, colors, window=window, columns=columns)
        uses |= row.uses
        row_notes[batch_size] = [n for n in row.notes if not n.startswith("Epoch")]
        per_epoch = sorted({c.steps_per_epoch for c in curves})
        steps = "step" if per_epoch == [1] else "steps"
        subfig.suptitle(
            f"batch size {batch_size} ("
            + ", ".join(f"{s:g}" for s in per_epoch)
            + f" {steps} per epoch)",
            fontsize="medium",
            fontweight="bold",
        )
    notes = _merged_notes(row_notes)
    _legend(fig, every, colors, uses, notes, window, columns.sharpness)
    if title:
        fig.suptitle(title)
    return save(fig, path)


def _merged_notes(row_notes: Mapping[int, list[str]]) -> list[str]:
    """The rows' notes, once: a note that every row has as is, the others (how
    often a row was measured) prefixed with their row's batch size."""
    shared = set.intersection(*(set(n) for n in row_notes.values()))
    notes = [n for n in next(iter(row_notes.values())) if n in shared]
    for batch_size, own in row_notes.items():
        notes += [f"Batch size {batch_size}: {n}" for n in own if n not in shared]
    return notes


def plot_polyak_zoom(
    curve: Curve,
    path: str | Path,
    *,
    stop: int = 200,
    title: str = "",
    columns: Columns = Columns(),
) -> Path:
    """The paper's Figure 6: one run (Polyak-GD), every step up to `stop`: its
    loss; its sharpness; its step size on the same axes as the edge of stability
    `2 / sharpness`, so that the step size is seen to oscillate around the edge;
    and step size x sharpness with the line at 2. Nothing is averaged. Measure the
    sharpness at every step of the window (`eqtuners.train(...,
    measure=Measurements(zoom=(0, stop)))`); steps without a measurement have no
    point on the measured curves.

    **Arguments:**

    - `curve`: the run.
    - `path`: the image to write; its suffix gives the format.
    - `stop`: draw the steps before this one (the paper: 200).
    - `title`: the figure's title.
    - `columns`: the history columns read (its `loss`, `stepsize` and
      `sharpness`), a `Columns`.

    **Returns:** `path`, as a `Path`.

    **Raises:** `ValueError` if `curve` is not one valid `Curve`, `stop` is not an
    int >= 1, or `columns` is not a `Columns`.
    """
    if not isinstance(curve, Curve):
        raise ValueError(f"`curve` must be one Curve, got {curve!r}.")
    (curve,) = checked_curves([curve], "curve")
    if isinstance(stop, bool) or not isinstance(stop, int | np.integer) or stop < 1:
        raise ValueError(f"`stop` must be an int >= 1 (a step), got {stop!r}.")
    columns = checked_columns(columns)
    h = curve.history
    step = np.asarray(h["step"], float)
    rows = step < stop
    step = step[rows]
    loss = column(h, columns.loss)[rows]
    stepsize = column(h, columns.stepsize)[rows]
    sharp = column(h, columns.sharpness)[rows]
    color = label_colors([curve])[curve.label]
    diverged = diverged_at({"step": step, "loss": loss}) is not None
    measured = np.isfinite(sharp)
    with np.errstate(divide="ignore"):
        edge = 2 / sharp[measured]
    product = stepsize * sharp

    fig = new_figure(figsize=(13, 7.6))
    (loss_ax, sharp_ax), (step_ax, product_ax) = fig.subplots(2, 2, sharex=True)
    sharp_name = quantity(columns.sharpness)
    loss_name = "training loss" if curve.steps_per_epoch is None else "mini-batch loss"
    panels = [
        Panel(loss_ax, loss_name, "step"),
        Panel(sharp_ax, sharp_name, "step"),
        Panel(step_ax, "step size γ", "step"),
        Panel(product_ax, f"step size × {sharp_name}", "step"),
    ]
    loss_panel, sharp_panel, step_panel, product_panel = panels
    run = {"color": color, "marker": ".", "markersize": 4, "linewidth": 0.6}
    reference = {
        "color": "black",
        "marker": ".",
        "markersize": 3,
        "linewidth": 0.9,
        "zorder": 3,
    }
    loss_panel.plot(step, loss, diverged=diverged, **run)
    sharp_panel.plot(step[measured], sharp[measured], **run)
    step_panel.plot(step[measured], edge, **reference)
    step_panel.plot(step, stepsize, **run)
    product_panel.plot(step, product, **run)
    product_panel.hline(2.0, color="black", linestyle=":", linewidth=1.2)
    for panel in panels:
        panel.finish(ticks=(2.0,) if panel is product_panel else ())
        panel.ax.tick_params(labelbottom=True)
    loss_ax.set_xlim(-0.01 * stop, stop)

    handles = [
        handle(**run),
        handle(**reference),
        handle(color="black", linestyle=":", linewidth=1.2),
    ]
    labels = [
        legend_label(curve),
        f"edge of stability 2 / {sharp_name} (step-size panel)",
        f"step size × {sharp_name} = 2",
    ]
    last = int(step.max()) if step.size else 0
    notes = [
        f"Every step from 0 to {last}, nothing averaged; {sharp_name} measured at "
        f"{int(measured.sum())} of these {step.size} steps. Above the edge "
        f"(step size > 2 / {sharp_name}), a step on the quadratic model grows its "
        "top eigenmode."
    ]
    add_legend(fig, handles, labels, notes)
    if title:
        fig.suptitle(title)
    return save(fig, path)


def plot_cap_sweep(
    polyak: Mapping[float, Mapping[str, np.ndarray]],
    path: str | Path,
    *,
    constant: Mapping[float, Mapping[str, np.ndarray]] | None = None,
    title: str = "",
    window: int = 20,
    columns: Columns = Columns(),
    colormap: str = "plasma",
) -> Path:
    """The paper's Figure 7: Polyak-GD at several caps (maximal step sizes), solid,
    with constant-step GD at the same step sizes, dashed, in the colour of the cap of
    the same value (colours ordered by the cap): loss, sharpness (with the edge
    `2 / step size` of each constant run, dotted), step size, and step size x
    sharpness with the line at 2. Full-batch runs, x in steps.

    **Arguments:**

    - `polyak`: cap -> the history of Polyak-GD with that cap.
    - `path`: the image to write; its suffix gives the format.
    - `constant`: step size -> the history of GD at that constant step (optional).
    - `title`, `window`, `columns`: as for `plot_panels`.
    - `colormap`: the Matplotlib colormap that orders the caps' colours.

    **Returns:** `path`, as a `Path`.

    **Raises:** `ValueError` if `polyak` is empty, a cap or step is not > 0, or as
    `plot_panels`.
    """
    from matplotlib import colormaps

    if not isinstance(polyak, Mapping) or not polyak:
        raise ValueError(
            f"`polyak` must be a non-empty mapping: cap -> history, got {polyak!r}."
        )
    constant = {} if constant is None else constant
    if not isinstance(constant, Mapping):
        raise ValueError(
            f"`constant` must be a mapping: step size -> history, or None; got "
            f"{constant!r}."
        )
    for name, runs in (("polyak", polyak), ("constant", constant)):
        for value in runs:
            if not float(value) > 0:
                raise ValueError(f"The keys of `{name}` must be > 0, got {value!r}.")
    window = check_window(window)
    columns = checked_columns(columns)
    values = sorted({float(v) for v in [*polyak, *constant]})
    cmap = colormaps[colormap]
    color_of = {
        v: cmap(0.85 * i / max(len(values) - 1, 1)) for i, v in enumerate(values)
    }
    curves = []
    for cap in sorted(polyak, key=float):
        curves.append(
            Curve(f"Polyak, cap {cap:g}", polyak[cap], color=color_of[float(cap)])
        )
    for step in sorted(constant, key=float):
        curves.append(
            Curve(
                f"GD, step {step:g}",
                constant[step],
                fixed_stepsize=float(step),
                color=color_of[float(step)],
                linestyle="--",
            )
        )
    curves = checked_curves(curves, "polyak")
    fig = new_figure(figsize=(4 * _PANEL_SIZE[0], _PANEL_SIZE[1] + 1.5))
    axes = fig.subplots(1, 4)
    colors = label_colors(curves)
    row = draw_four_panels(axes, curves, colors, window=window, columns=columns)

    handles, labels = [], []
    for value in values:
        handles.append(handle(color=color_of[value], linewidth=SMOOTH_WIDTH))
        labels.append(f"cap = step = {value:g}")
    handles.append(handle(color="0.3", linewidth=SMOOTH_WIDTH))
    labels.append("Polyak-GD (solid)")
    if constant:
        handles.append(handle(color="0.3", linestyle="--", linewidth=SMOOTH_WIDTH))
        labels.append("constant-step GD (dashed)")
    more_handles, more_labels = style_entries(row.uses - {"diverged"}, window)
    for curve in curves:  # the runs are not listed one by one: name the diverged
        if diverged_at(curve.history) is not None:
            more_handles.append(
                handle(
                    color=colors[curve.label],
                    marker="x",
                    linestyle="none",
                    markeredgewidth=2,
                )
            )
            more_labels.append(legend_label(curve))
    add_legend(fig, handles + more_handles, labels + more_labels, row.notes)
    if title:
        fig.suptitle(title)
    return save(fig, path)


def plot_spectral_densities(
    panels: Mapping[str, Mapping[str, tuple]],
    path: str | Path,
    *,
    title: str = "",
    colors: Mapping[str, object] | None = None,
    num_points: int = 600,
) -> Path:
    """Spectral densities of the Hessian side by side: a panel per key of
    `panels`, a curve per quadrature in it (for instance a batch size per panel,
    the start of training and the end of each tuner's run as curves).

    Each quadrature, `(nodes, weights)` as `eqtuners.spectral_density` returns it,
    is smoothed by `eqtuners.spectral_density_on_grid` with one Gaussian width per
    panel (1/100 of the span of its nodes) on one grid, so the curves of a panel
    compare. The density axis is logarithmic: the bulk near zero is orders of
    magnitude above the outliers, which carry the sharpness (Ghorbani, Krishnan and
    Xiao 2019). A curve labelled "start" is drawn black and dashed.

    **Arguments:**

    - `panels`: panel title -> (curve label -> `(nodes, weights)`).
    - `path`, `title`: as for `plot_panels`.
    - `colors`: curve label -> colour (default: the colour cycle, by first
      appearance, so a label has one colour in every panel).
    - `num_points`: the grid's size, >= 2.

    **Returns:** `path`, as a `Path`.

    **Raises:** `ValueError` if `panels` or one of its panels is empty, or a
    quadrature is not a pair of arrays of one shape.
    """
    import eqtuners as et

    if not isinstance(panels, Mapping) or not panels:
        raise ValueError(
            "`panels` must be a non-empty mapping: panel title -> (curve label -> "
            f"(nodes, weights)), got {panels!r}."
        )
    colors = dict(colors or {})
    for curves in panels.values():
        if not isinstance(curves, Mapping) or not curves:
            raise ValueError(
                "Each panel must be a non-empty mapping: curve label -> (nodes, "
                f"weights), got {curves!r}."
            )
        for label in curves:
            if label != "start" and label not in colors:
                colors[label] = f"C{len(colors) % 10}"
    fig = new_figure(figsize=(max(4.2 * len(panels), 8.0), 4.0))
    axes = np.atleast_1d(fig.subplots(1, len(panels), squeeze=False)[0])
    for ax, (name, curves) in zip(axes, panels.items()):
        nodes = np.concatenate([np.ravel(q[0]) for q in curves.values()])
        weights = np.concatenate([np.ravel(q[1]) for q in curves.values()])
        probes = max(np.atleast_2d(q[0]).shape[0] for q in curves.values())
        span = max(np.ptp(nodes), np.max(np.abs(nodes)), 1e-12)
        width = span / 100
        grid = np.linspace(nodes.min() - 5 * width, nodes.max() + 5 * width, num_points)
        for label, quadrature in curves.items():
            _, density = et.spectral_density_on_grid(
                tuple(quadrature), width=width, grid=grid
            )
            style = (
                {"color": "black", "linestyle": "--"}
                if label == "start"
                else {"color": colors[label]}
            )
            ax.plot(grid, np.maximum(np.asarray(density), 1e-12), label=label, **style)
        ax.set_yscale("log")
        # Low enough to show the bump of the lightest node (an outlier eigenvalue
        # carries a weight of about 1 / number of parameters).
        lightest = np.min(weights[weights > 0], initial=1.0)
        ax.set_ylim(bottom=0.1 * lightest / (width * np.sqrt(2 * np.pi) * probes))
        ax.set_xlabel("eigenvalue of the Hessian")
        ax.set_ylabel("density")
        ax.set_title(name, fontsize="medium")
    handles, labels = axes[0].get_legend_handles_labels()
    for ax in axes[1:]:
        for h, label in zip(*ax.get_legend_handles_labels()):
            if label not in labels:
                handles.append(h)
                labels.append(label)
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 4))
    if title:
        fig.suptitle(textwrap.fill(title, 80))
    return save(fig, path)


def plot_four_panels(
    curves: Sequence[Curve], path: str | Path, *, title: str = "", smooth: int = 1
) -> Path:
    """`plot_panels` with `window=smooth` (kept for existing callers)."""
    return plot_panels(curves, path, title=title, window=smooth)


def plot_phase_portrait(
    curves: Sequence[Curve],
    path: str | Path,
    *,
    c: float = 1e-4,
    title: str = "",
) -> Path:
    """Draws sharpness against step size for `curves` into `path` and returns it.

    Each run is a cloud of points, one per step (a circle marks its start, a square
    its end; steps of size 0, such as failed line searches, are left out). The step
    axis spans the runs' steps from their 1st percentile up, so that a few tiny
    steps (a line search at round-off level) do not squeeze the rest. The curves of
    the top-eigenmode quadratic model are drawn for reference: the edge of stability
    `lambda = 2 / gamma`, the Armijo acceptance bound `lambda = 2 (1 - c) / gamma`
    (on the quadratic, the accepted steps lie on or left of it) and the Polyak step
    `lambda = 1 / (2 gamma)`.

    **Arguments:**

    - `curves`: the runs; their histories need `stepsize` and `sharpness`.
    - `path`: where to write (PNG, PDF, ...: by the suffix).
    - `c`: the Armijo constant of the bound drawn.
    - `title`: the figure's title.
    """
    curves = checked_curves(curves)
    fig = new_figure(figsize=(8.5, 6))
    ax = fig.subplots()
    colors = label_colors(curves)
    steps, sharps = [], []
    for curve in curves:
        h = curve.history
        stepsize, sharpness = column(h, "stepsize"), column(h, "sharpness")
        keep = (stepsize > 0) & np.isfinite(stepsize) & np.isfinite(sharpness)
        keep &= sharpness > 0
        step, sharp = stepsize[keep], sharpness[keep]
        if step.size == 0:
            continue
        color = colors[curve.label]
        ax.plot(step, sharp, ".", color=color, markersize=3, alpha=0.5)
        ax.plot(step[0], sharp[0], "o", color=color, label=legend_label(curve))
        ax.plot(step[-1], sharp[-1], "s", color=color, markeredgecolor="black")
        steps.append(step)
        sharps.append(sharp)
    if steps:
        all_steps = np.concatenate(steps)
        lo, hi = np.percentile(all_steps, 1), np.max(all_steps)
    else:
        lo, hi = 1e-2, 1.0
    gamma = np.geomspace(lo / 2, hi * 2, 200)
    ax.plot(gamma, 2 / gamma, "k-", linewidth=1, label="edge of stability 2/γ")
    ax.plot(
        gamma,
        2 * (1 - c) / gamma,
        "k--",
        linewidth=1,
        label=f"Armijo bound 2(1-c)/γ, c={c:g}",
    )
    ax.plot(gamma, 1 / (2 * gamma), "k:", linewidth=1, label="Polyak step 1/(2γ)")
    if sharps:
        all_sharp = np.concatenate(sharps)
        ax.set_ylim(np.min(all_sharp) / 2, np.max(all_sharp) * 2)
    ax.set_xlim(lo / 2, hi * 2)
    for axis, log_axis in ((ax.xaxis, "x"), (ax.yaxis, "y")):
        getattr(ax, f"set_{log_axis}scale")("log")
        axis.set_major_formatter(log_formatter())
        axis.set_minor_formatter(log_formatter())
    ax.set_xlabel("step size γ")
    ax.set_ylabel("sharpness λ")
    handles = [
        handle(marker="o", color="0.3", linestyle="none"),
        handle(marker="s", color="0.3", markeredgecolor="black", linestyle="none"),
        handle(marker=".", color="0.3", linestyle="none"),
    ]
    labels = ["start of a run", "end of a run", "one step (with a measurement)"]
    run_handles, run_labels = ax.get_legend_handles_labels()
    fig.legend(
        run_handles + handles,
        run_labels + labels,
        loc="outside right center",
        fontsize="small",
        frameon=False,
    )
    if title:
        ax.set_title(title)
    return save(fig, path)


def _legend(fig, curves, colors, uses, notes, window, sharpness_key="sharpness"):
    """One entry per run label (in its colour and style), then the reference lines
    and markers that were drawn."""
    handles, labels, seen = [], [], set()
    for curve in curves:
        if curve.label in seen:
            continue
        seen.add(curve.label)
        handles.append(
            handle(
                color=colors[curve.label],
                linestyle=curve.linestyle,
                linewidth=SMOOTH_WIDTH,
            )
        )
        labels.append(legend_label(curve))
    more_handles, more_labels = style_entries(uses, window, quantity(sharpness_key))
    add_legend(fig, handles + more_handles, labels + more_labels, notes)


__all__ = [
    "Columns",
    "Curve",
    "moving_average",
    "plain_number",
    "plot_batch_size_grid",
    "plot_cap_sweep",
    "plot_curvature_bracket",
    "plot_four_panels",
    "plot_panels",
    "plot_phase_portrait",
    "plot_polyak_zoom",
    "plot_sigma_sweep",
    "plot_spectral_densities",
    "running_mean",
    "running_median",
]
