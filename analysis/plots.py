"""The paper's four panels: loss, sharpness, step size, and step size x sharpness."""

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np


class Curve(NamedTuple):
    """One run to draw: its label, its history (a dict of per-step arrays, as
    `eqtuners.train` returns), and its step size if that was fixed (drawn as the
    dashed line `2 / stepsize` on the sharpness panel)."""

    label: str
    history: dict[str, np.ndarray]
    fixed_stepsize: float | None = None


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """The mean over the last `window` values (fewer at the start)."""
    values = np.asarray(values, float)
    if window <= 1:
        return values
    sums = np.concatenate([[0.0], np.cumsum(values)])
    end = np.arange(1, len(values) + 1)
    start = np.maximum(end - window, 0)
    return (sums[end] - sums[start]) / (end - start)


def _measured(history, key):
    rows = ~np.isnan(history[key])
    return history["step"][rows], history[key][rows]


def plot_four_panels(
    curves: Sequence[Curve], path: str | Path, *, title: str = "", smooth: int = 1
) -> Path:
    """Draws the four panels for `curves` into the image file `path` and returns it.

    **Arguments:**

    - `curves`: the runs.
    - `path`: where to write (PNG, PDF, ...: by the suffix).
    - `title`: the figure's title.
    - `smooth`: average the per-step loss and step size over this many steps (the
      paper uses about 20 for mini-batch runs).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(18, 4), constrained_layout=True)
    loss_ax, sharp_ax, step_ax, product_ax = axes
    for index, curve in enumerate(curves):
        color = f"C{index}"
        h = curve.history
        loss_ax.plot(
            h["step"], moving_average(h["loss"], smooth), color=color, label=curve.label
        )
        sharp_ax.plot(*_measured(h, "sharpness"), color=color, label=curve.label)
        if curve.fixed_stepsize is not None:
            sharp_ax.axhline(
                2 / curve.fixed_stepsize, color=color, linestyle="--", linewidth=1
            )
        step_ax.plot(
            h["step"],
            moving_average(h["stepsize"], smooth),
            color=color,
            label=curve.label,
        )
        product_ax.plot(
            *_measured(h, "stepsize_x_sharpness"), color=color, label=curve.label
        )
    product_ax.axhline(2, color="black", linestyle=":", linewidth=1, label="2")
    for ax, name in zip(
        axes,
        [
            "training loss",
            "sharpness (dashed: 2 / step size)",
            "step size",
            "step size x sharpness",
        ],
    ):
        ax.set_title(name)
        ax.set_xlabel("step")
    loss_ax.set_yscale("log")
    step_ax.set_yscale("log")
    sharp_ax.set_yscale("log")
    product_ax.set_yscale("log")
    loss_ax.legend()
    if title:
        fig.suptitle(title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
