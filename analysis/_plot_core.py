"""Building blocks of `analysis.plots`: running statistics, one panel (an axis that
chooses its own scale and limits from the data it was given), plain log ticks, the
shared legend, and the four panels of one group of runs.

Figures are `matplotlib.figure.Figure` objects made without `pyplot`, so drawing
changes no global state (no backend switch, no open figures left behind).
"""

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

# Light, thin per-step lines under their running statistic.
RAW_STYLE = {"linewidth": 0.6, "alpha": 0.3}
# A mini-batch loss averaged over the window: smoother, so a little darker.
MINIBATCH_STYLE = {"linewidth": 0.9, "alpha": 0.45, "zorder": 1.5}
SMOOTH_WIDTH = 1.6
# Measurements at least this many per window are smoothed like per-step series.
DENSE = 4
# How far above the runs that did not diverge a diverged run may take the y axis.
_DIVERGED_HEADROOM = 3.0


class Curve(NamedTuple):
    """One run to draw.

    - `label`: its name in the legend.
    - `history`: a dict of per-step NumPy arrays, as `eqtuners.train(...).history`
      returns it (columns `step`, `loss`, `stepsize`, and on the measurement
      schedule, NaN elsewhere, `sharpness` and `train_loss`).
    - `fixed_stepsize`: its step size if that was fixed: drawn as the dashed line
      `2 / fixed_stepsize` on the sharpness panel (the edge of stability of GD).
    - `steps_per_epoch`: `None` for a full-batch run (x axis in steps; `loss` is the
      training objective); for a mini-batch run, its steps per epoch (x axis in
      epochs; `loss` is read as the loss on the step's mini-batch, and the training
      loss comes from `train_loss`).
    - `color`: a Matplotlib colour; `None` gives each label its own colour of the
      default cycle, the same in every panel and row.
    - `linestyle`: the run's line style (`"-"`, `"--"`, ...).
    """

    label: str
    history: Mapping[str, np.ndarray]
    fixed_stepsize: float | None = None
    steps_per_epoch: float | None = None
    color: str | tuple | None = None
    linestyle: str = "-"


def check_window(window) -> int:
    if isinstance(window, bool) or not isinstance(window, int | np.integer):
        raise ValueError(f"`window` must be an int >= 1 (steps), got {window!r}.")
    if window < 1:
        raise ValueError(
            f"`window` must be >= 1 (steps; 1 draws every step unsmoothed), got "
            f"{window}."
        )
    return int(window)


def checked_curves(curves, name: str = "curves") -> list[Curve]:
    """`curves` as a list, each with `step`, `loss` and `stepsize` columns of one
    length; raises `ValueError` naming the run and the column otherwise."""
    if isinstance(curves, Curve):
        curves = [curves]
    curves = list(curves)
    if not curves:
        raise ValueError(f"`{name}` is empty: give at least one Curve.")
    for curve in curves:
        if not isinstance(curve, Curve):
            raise ValueError(
                f"`{name}` must hold `Curve`s (label, history, ...), got {curve!r}."
            )
        history = curve.history
        missing = [k for k in ("step", "loss", "stepsize") if k not in history]
        if missing:
            raise ValueError(
                f"Run {curve.label!r} of `{name}`: its history lacks the column(s) "
                f"{missing}; give the dict that `eqtuners.train(...).history` "
                "returns."
            )
        lengths = {k: np.shape(v)[0] for k, v in history.items() if np.ndim(v) == 1}
        if len(set(lengths.values())) > 1:
            raise ValueError(
                f"Run {curve.label!r} of `{name}`: its history columns have different "
                f"lengths {lengths}; every column needs one row per step."
            )
        if curve.steps_per_epoch is not None and not curve.steps_per_epoch > 0:
            raise ValueError(
                f"Run {curve.label!r}: `steps_per_epoch` must be > 0 or None, got "
                f"{curve.steps_per_epoch!r}."
            )
    return curves


def column(history: Mapping[str, np.ndarray], key: str) -> np.ndarray:
    """The column `key` as floats; all NaN (not measured) if the history lacks it."""
    if key in history:
        return np.asarray(history[key], float)
    return np.full(np.shape(history["step"]), np.nan)


def running(values: np.ndarray, window: int, statistic: Callable) -> np.ndarray:
    """`statistic` (`np.nanmedian`, `np.nanmean`) over the `window` steps centred on
    each step (steps `i - window // 2` to `i - window // 2 + window - 1`, those that
    exist: fewer at the ends). Values that are not finite are left out; a window
    without finite values gives NaN."""
    values = np.where(np.isfinite(values), np.asarray(values, float), np.nan)
    if window <= 1 or values.size == 0:
        return values
    before = window // 2
    after = window - before - 1
    padded = np.concatenate([np.full(before, np.nan), values, np.full(after, np.nan)])
    windows = np.lib.stride_tricks.sliding_window_view(padded, window)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows give NaN
        return statistic(windows, axis=1)


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """The mean over the last `window` values (fewer at the start)."""
    values = np.asarray(values, float)
    if window <= 1:
        return values
    sums = np.concatenate([[0.0], np.cumsum(values)])
    end = np.arange(1, len(values) + 1)
    start = np.maximum(end - window, 0)
    return (sums[end] - sums[start]) / (end - start)


def diverged_at(history: Mapping[str, np.ndarray]) -> int | None:
    """The step at which the run's loss stopped being finite (`eqtuners.train`
    ends a run there), or `None`."""
    loss = column(history, "loss")
    bad = np.flatnonzero(~np.isfinite(loss))
    if bad.size == 0:
        return None
    return int(np.asarray(history["step"])[bad[0]])


def measured_steps_text(curves: Sequence[Curve], key: str) -> str | None:
    """How often `key` was measured: "every 10 steps", "at every step", or "at 37
    steps"; `None` if never."""
    gaps, counts = set(), []
    for curve in curves:
        values = column(curve.history, key)
        steps = np.asarray(curve.history["step"])[np.isfinite(values)]
        if steps.size:
            counts.append(steps.size)
            gaps.update(np.unique(np.diff(steps)).tolist())
    if not counts:
        return None
    if len(gaps) == 1:
        gap = gaps.pop()
        return "at every step" if gap == 1 else f"every {gap:g} steps"
    if not gaps:
        return "once"
    return f"at {max(counts)} steps"


def plain_number(value: float) -> str:
    """`value` written without scientific notation where that stays short."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    if 1e-4 <= abs(value) < 1e6:
        return np.format_float_positional(value, precision=6, trim="-")
    return f"{value:g}"


def log_formatter(always: Sequence[float] = ()):
    """Labels the ticks of a log axis that Matplotlib would label, and those in
    `always`, as plain numbers (0.01, not 10^-2)."""
    from matplotlib import ticker

    class PlainLogFormatter(ticker.LogFormatter):
        def __call__(self, x, pos=None):
            shown = any(np.isclose(x, t) for t in always) or super().__call__(x, pos)
            return plain_number(x) if shown else ""

    return PlainLogFormatter(labelOnlyBase=False, minor_thresholds=(1.5, 0.6))


class Panel:
    """One axis: records what is drawn on it, then picks a log or linear y scale
    (log where the positive values span more than a decade) and y limits that the
    runs which did not diverge fill (a diverged run may leave through the top)."""

    def __init__(self, ax, ylabel: str, xlabel: str):
        self.ax = ax
        ax.set_ylabel(ylabel)
        ax.set_xlabel(xlabel)
        ax.grid(True, which="major", alpha=0.25, linewidth=0.6)
        self._values: list[tuple[np.ndarray, bool]] = []
        self._has_data = False

    def plot(self, x, y, *, diverged: bool = False, **style):
        """Draws the finite points of `(x, y)`; those of a `diverged` run do not
        raise the top of the axis beyond a little headroom."""
        y = np.where(np.isfinite(y), np.asarray(y, float), np.nan)
        keep = np.isfinite(y)
        if keep.any():
            self.ax.plot(np.asarray(x)[keep], y[keep], **style)
            self._has_data = True
            self._values.append((y[keep], diverged))

    def hline(self, y: float, *, diverged: bool = False, **style):
        """A reference line; that of a diverged run does not widen the axis."""
        if math.isfinite(y):
            self.ax.axhline(y, **style)
            if not diverged:
                self._values.append((np.array([y]), False))

    def finish(
        self,
        *,
        log: bool | None = None,
        empty_text: str = "not measured",
        ticks: Sequence[float] = (),
    ):
        """Sets the scale and limits; `ticks` are labelled as well, if in view."""
        ax = self.ax
        if not self._has_data:
            ax.text(
                0.5,
                0.5,
                empty_text,
                transform=ax.transAxes,
                ha="center",
                va="center",
                color="0.4",
            )
            ax.set_yticks([])
            return
        kept = [v for v, diverged in self._values if not diverged]
        every = np.concatenate([v for v, _ in self._values])
        trusted = np.concatenate(kept) if kept else every
        positive = every[every > 0]
        if log is None:  # zeros (failed line searches) are masked, negatives are not
            shown = trusted[trusted > 0]
            log = every.min() >= 0 and shown.size > 0 and shown.max() > 10 * shown.min()
        if log and positive.size:
            from matplotlib import ticker

            ax.set_yscale("log", nonpositive="mask")
            ax.yaxis.set_major_formatter(log_formatter(ticks))
            ax.yaxis.set_minor_formatter(log_formatter())
            ax.yaxis.set_major_locator(ticker.LogLocator(base=10, numticks=8))
            low = positive.min()
            high = trusted[trusted > 0].max() if (trusted > 0).any() else positive.max()
            if every.max() > high * _DIVERGED_HEADROOM:
                high *= _DIVERGED_HEADROOM
            else:
                high = positive.max()
            pad = (high / low) ** 0.04
            ax.set_ylim(low / pad, high * pad)
            if ticks:
                low, high = ax.get_ylim()
                major = ax.yaxis.get_major_locator().tick_values(low, high)
                shown = [t for t in [*major, *ticks] if low <= t <= high]
                ax.yaxis.set_major_locator(ticker.FixedLocator(sorted(set(shown))))
        else:
            ax.ticklabel_format(axis="y", style="plain", useOffset=False)
            low, high = every.min(), trusted.max()
            span = trusted.max() - trusted.min() or abs(high) or 1.0
            if every.max() > high + _DIVERGED_HEADROOM * span:
                high += _DIVERGED_HEADROOM * span
            else:
                high = every.max()
            pad = 0.05 * ((high - low) or abs(high) or 1.0)
            ax.set_ylim(low - pad, high + pad)


def handle(**style):
    """A legend entry's line (no data)."""
    from matplotlib.lines import Line2D

    return Line2D([], [], **style)


def label_colors(curves: Sequence[Curve]) -> dict[str, object]:
    """A colour per label: the curve's own, else the next of the default cycle, in
    the order the labels first appear."""
    colors: dict[str, object] = {}
    cycle = 0
    for curve in curves:
        if curve.label in colors:
            continue
        if curve.color is not None:
            colors[curve.label] = curve.color
        else:
            colors[curve.label] = f"C{cycle % 10}"
            cycle += 1
    return colors


def legend_label(curve: Curve) -> str:
    step = diverged_at(curve.history)
    return curve.label if step is None else f"{curve.label} (diverged at step {step})"


def x_of(curve: Curve) -> np.ndarray:
    step = np.asarray(curve.history["step"], float)
    return step if curve.steps_per_epoch is None else step / curve.steps_per_epoch


def x_label(curves: Sequence[Curve]) -> str:
    minibatch = {c.steps_per_epoch is not None for c in curves}
    if len(minibatch) > 1:
        raise ValueError(
            "`curves` mixes full-batch runs (steps_per_epoch=None, x in steps) and "
            "mini-batch runs (x in epochs); draw them in separate figures or give "
            "every run its steps_per_epoch."
        )
    return "epoch" if minibatch.pop() else "step"


class Keys(NamedTuple):
    """Which history columns the four panels read."""

    loss: str = "loss"
    train_loss: str = "train_loss"
    stepsize: str = "stepsize"
    sharpness: str = "sharpness"


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


def draw_four_panels(
    axes,
    curves: Sequence[Curve],
    colors: Mapping[str, object],
    *,
    window: int,
    keys: Keys,
) -> RowResult:
    """Draws loss, sharpness (with `2 / step` for fixed steps), step size and step
    size x sharpness (with the line at 2) of `curves` on four axes."""
    xlabel = x_label(curves)
    minibatch = xlabel == "epoch"
    sharp_name = quantity(keys.sharpness)
    has_train = minibatch and any(
        np.isfinite(column(c.history, keys.train_loss)).any() for c in curves
    )
    if not minibatch:
        loss_label = "training loss"
    elif has_train:
        loss_label = "training loss (solid) and\nmini-batch loss (light)"
    else:
        loss_label = f"mini-batch loss\n(mean over {window} steps)"
    panels = [
        Panel(axes[0], loss_label, xlabel),
        Panel(axes[1], sharp_name, xlabel),
        Panel(axes[2], "step size γ", xlabel),
        Panel(axes[3], f"step size × {sharp_name}", xlabel),
    ]
    loss_panel, sharp_panel, step_panel, product_panel = panels
    uses: set[str] = set()
    smooth = window > 1
    dense = False
    for curve in curves:
        h = curve.history
        x = x_of(curve)
        color = colors[curve.label]
        line = {"color": color, "linestyle": curve.linestyle}
        diverged = diverged_at(h) is not None
        loss = column(h, keys.loss)
        stepsize = column(h, keys.stepsize)
        sharp = column(h, keys.sharpness)

        # Loss.
        if minibatch:
            batch_mean = running(loss, window, np.nanmean)
            if has_train:
                loss_panel.plot(
                    x,
                    batch_mean,
                    diverged=diverged,
                    color=color,
                    linestyle=curve.linestyle,
                    **MINIBATCH_STYLE,
                )
                uses.add("minibatch")
                train = column(h, keys.train_loss)
                _measured(loss_panel, x, train, h, window, diverged, line)
            else:
                loss_panel.plot(
                    x, batch_mean, diverged=diverged, linewidth=SMOOTH_WIDTH, **line
                )
        else:
            _per_step(loss_panel, x, loss, window, diverged, line)
        if diverged:
            _mark_divergence(loss_panel.ax, x, color)
            uses.add("diverged")

        # Sharpness, with 2 / step for a fixed step.
        dense |= _measured(sharp_panel, x, sharp, h, window, diverged, line)
        if curve.fixed_stepsize is not None and curve.fixed_stepsize > 0:
            edge_style = "--" if curve.linestyle == "-" else ":"
            sharp_panel.hline(
                2 / curve.fixed_stepsize,
                diverged=diverged,
                color=color,
                linestyle=edge_style,
                linewidth=1.0,
                alpha=0.9,
            )
            uses.add("edge" if edge_style == "--" else "edge_dotted")

        # Step size; zero steps (failed searches) are marked on the bottom edge, but
        # not the row where a run stopped on a non-finite loss (no step was taken). A
        # fixed step is a flat line that a tuner at its cap would hide: it goes on top.
        on_top = {"zorder": 2.5} if curve.fixed_stepsize is not None else {}
        _per_step(step_panel, x, stepsize, window, diverged, line | on_top)
        zero = (stepsize == 0) & np.isfinite(loss)
        if zero.any():
            step_panel.ax.plot(
                x[zero],
                np.zeros(zero.sum()),
                "|",
                color=color,
                markersize=7,
                transform=step_panel.ax.get_xaxis_transform(),
                clip_on=False,
            )
            uses.add("failed")

        # Step size x sharpness, on the measurement schedule.
        product = stepsize * sharp
        _measured(product_panel, x, product, h, window, diverged, line)
    product_panel.hline(2.0, color="black", linestyle=":", linewidth=1.2)
    uses.add("two")
    if smooth:
        uses.add("raw_step" if minibatch else "raw_loss_step")
    for panel in panels[:3]:
        panel.finish()
    product_panel.finish(ticks=(2.0,))

    notes = []
    if minibatch:
        if has_train:
            when = measured_steps_text(curves, keys.train_loss)
            notes.append(f"Training loss: the full objective, measured {when}.")
        notes.append(
            f"Mini-batch loss: mean over windows of {window} steps."
            if smooth
            else "Mini-batch loss: every step, not averaged."
        )
    if smooth:
        per_step = "step size" if minibatch else "training loss and step size"
        notes.append(
            f"{per_step.capitalize()}: light lines every step; solid lines the "
            f"running median over windows of {window} steps."
        )
    when = measured_steps_text(curves, keys.sharpness)
    if when:
        notes.append(f"{sharp_name.capitalize()}: measured {when}.")
    if dense:
        notes.append(
            f"Where measured at least every {window // DENSE:g} steps, measured "
            "quantities too: light lines every measurement; solid lines the running "
            f"median over windows of {window} steps."
        )
    if minibatch:
        per_epoch = sorted({c.steps_per_epoch for c in curves})
        steps = "step" if per_epoch == [1] else "steps"
        notes.append("Epoch = " + ", ".join(f"{s:g}" for s in per_epoch) + f" {steps}.")
    return RowResult(uses, notes)


def _measured(panel, x, values, history, window, diverged, line) -> bool:
    """A quantity measured on a schedule: its measurements joined, with dots where
    there are few. Where the measurements are dense (at least `DENSE` per window
    of steps), they are drawn light, under their running median over `window`
    steps. Returns whether any were smoothed."""
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


def new_figure(**kwargs):
    from matplotlib.figure import Figure

    return Figure(layout="constrained", **kwargs)


def save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path
