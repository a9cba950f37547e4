"""Building blocks of `analysis.plots`: the run to draw (`Curve`), running
statistics, plain log ticks, colours, and figures made and saved (one panel:
`_panel`; the legend: `_legend`; the four panels of a group of runs:
`_four_panels`).

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


def new_figure(**kwargs):
    from matplotlib.figure import Figure

    return Figure(layout="constrained", **kwargs)


def save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path
