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


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    _pyplot().close(fig)
    return path


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
    plt = _pyplot()
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
    return _save(fig, path)


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
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 6), constrained_layout=True)
    steps, sharps = [], []
    for index, curve in enumerate(curves):
        h = curve.history
        keep = (h["stepsize"] > 0) & np.isfinite(h["sharpness"]) & (h["sharpness"] > 0)
        step, sharp = h["stepsize"][keep], h["sharpness"][keep]
        if step.size == 0:
            continue
        color = f"C{index}"
        ax.plot(step, sharp, ".", color=color, markersize=3, alpha=0.5)
        ax.plot(step[0], sharp[0], "o", color=color, label=curve.label)
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
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("step size γ")
    ax.set_ylabel("sharpness λ")
    ax.legend(fontsize="small")
    if title:
        ax.set_title(title)
    return _save(fig, path)
