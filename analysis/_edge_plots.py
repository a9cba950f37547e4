"""Figures of the tuners built for the edge of stability (the `edge_tuners` suite):
CDAT's threshold at `sigma = 2` in a network beside a model (`plot_sigma_sweep`),
and the curvature bracket that every Armijo search gives for free beside the
measured curvature along the gradient (`plot_curvature_bracket`). Conventions as
in `analysis.plots`: one legend below the panels, naming every reference line;
what was measured, and how often, in words above it."""

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ._four_panels import quantity
from ._legend import add_legend, handle, legend_label
from ._panel import Panel
from ._plot_core import (
    RAW_STYLE,
    Curve,
    checked_curves,
    column,
    label_colors,
    measured_steps_text,
    new_figure,
    save,
)
from ._sigma_sweep import SigmaSweep

_EDGE = {"color": "black", "linestyle": ":", "linewidth": 1.2}
_DIAGONAL = {"color": "0.45", "linestyle": "-.", "linewidth": 1.0}
_SIGMA_TWO = {"color": "0.6", "linestyle": "--", "linewidth": 0.9}

# A reference line: label -> (value, colour).
References = Mapping[str, tuple[float, object]]


def _references(panel: Panel, lines: References, handles, labels):
    for label, (value, color) in lines.items():
        if value is None or not np.isfinite(value):
            continue
        style = {"color": color, "linestyle": "--", "linewidth": 1.1}
        panel.hline(float(value), **style)
        handles.append(handle(**style))
        labels.append(label)


def _product_references(panel: Panel, sigmas: np.ndarray):
    """The line at 2 and the diagonal `step x sharpness = sigma`."""
    panel.hline(2.0, **_EDGE)
    grid = np.linspace(sigmas.min(), sigmas.max(), 2)
    panel.plot(grid, grid, **_DIAGONAL)


def plot_sigma_sweep(
    network: Mapping[float, Sequence[tuple[float | None, float | None]]],
    model: SigmaSweep,
    path: str | Path,
    *,
    network_lines: References | None = None,
    model_lines: References | None = None,
    network_label: str = "network",
    model_label: str = "model",
    color: object = "#ff7f0e",
    notes: Sequence[str] = (),
    title: str = "",
) -> Path:
    """CDAT's scale `sigma` against the final sharpness (top) and the median step
    size x sharpness over the second half (bottom), in a network (left: a dot per
    seed, the line through the medians over seeds) and in a model of the joint
    dynamics (right: `sigma_sweep`'s runs, an x on the bottom edge where a run
    diverged). Every panel marks `sigma = 2`; the bottom ones the edge of stability
    (step size x sharpness = 2) and the diagonal step size x sharpness = `sigma`
    (where CDAT's step would be if the gradient lay along the top eigenvector, since
    its step x curvature along the gradient is `sigma`).

    **Arguments:**

    - `network`: `sigma` -> one `(final sharpness, median step size x sharpness)`
      per seed (`None` where not measured or diverged).
    - `model`: a `SigmaSweep`.
    - `path`: the image to write; its suffix gives the format.
    - `network_lines`, `model_lines`: reference lines on the sharpness panels,
      label -> `(value, colour)` (for instance Armijo-GD's final sharpness).
    - `network_label`, `model_label`: the columns' titles.
    - `color`: CDAT's colour.
    - `notes`: sentences above the legend (what the runs were).
    - `title`: the figure's title.

    **Returns:** `path`, as a `Path`.

    **Raises:** `ValueError` if `network` is empty or `model` is not a
    `SigmaSweep`.
    """
    if not isinstance(network, Mapping) or not network:
        raise ValueError(
            "`network` must be a non-empty mapping: sigma -> [(final sharpness, "
            f"median step size x sharpness) per seed], got {network!r}."
        )
    if not isinstance(model, SigmaSweep):
        raise ValueError(f"`model` must be a SigmaSweep, got {type(model)}.")
    fig = new_figure(figsize=(13.5, 8.6))
    (net_sharp, model_sharp), (net_product, model_product) = fig.subplots(2, 2)
    sharp_label, product_label = "final sharpness λ", "step size × sharpness λ"
    product_label += "\n(median over the second half)"
    panels = {
        "net_sharp": Panel(net_sharp, sharp_label, "CDAT's σ"),
        "model_sharp": Panel(model_sharp, sharp_label, "CDAT's σ"),
        "net_product": Panel(net_product, product_label, "CDAT's σ"),
        "model_product": Panel(model_product, product_label, "CDAT's σ"),
    }
    net_sharp.set_title(network_label, fontsize="medium", fontweight="bold")
    model_sharp.set_title(model_label, fontsize="medium", fontweight="bold")
    handles = [
        handle(color=color, marker="o", linestyle="none", alpha=0.5),
        handle(color=color, marker="s", linewidth=1.6),
        handle(color=color, marker=".", linewidth=1.6),
    ]
    labels = [
        "network: one seed",
        "network: median over seeds",
        "model: one run per σ",
    ]

    sigmas = np.array(sorted(float(s) for s in network))
    for index, name in ((0, "net_sharp"), (1, "net_product")):
        medians = []
        for sigma in sigmas:
            values = [v[index] for v in network[sigma] if v[index] is not None]
            values = np.asarray(values, float)
            values = values[np.isfinite(values)]
            panels[name].plot(
                np.full(values.size, sigma),
                values,
                color=color,
                marker="o",
                linestyle="none",
                alpha=0.5,
            )
            medians.append(np.median(values) if values.size else np.nan)
        panels[name].plot(sigmas, np.asarray(medians), color=color, marker="s")
    model_x = np.asarray(model.sigmas, float)
    style = {"color": color, "marker": ".", "linewidth": 1.6}
    panels["model_sharp"].plot(model_x, model.final_sharpness, **style)
    panels["model_product"].plot(model_x, model.median_stepsize_x_sharpness, **style)
    if np.any(model.diverged):
        for ax in (model_sharp, model_product):
            ax.plot(
                model_x[model.diverged],
                np.zeros(int(np.sum(model.diverged))),
                "x",
                color=color,
                markersize=7,
                markeredgewidth=1.5,
                transform=ax.get_xaxis_transform(),
                clip_on=False,
            )
        handles.append(
            handle(color=color, marker="x", linestyle="none", markeredgewidth=1.5)
        )
        labels.append("model run diverged (left the model's domain)")

    _references(panels["net_sharp"], network_lines or {}, handles, labels)
    _references(panels["model_sharp"], model_lines or {}, handles, labels)
    _product_references(panels["net_product"], sigmas)
    _product_references(panels["model_product"], model_x)
    handles += [handle(**_EDGE), handle(**_DIAGONAL), handle(**_SIGMA_TWO)]
    labels += [
        "step size × sharpness = 2 (edge of stability)",
        "step size × sharpness = σ (gradient along the top eigenvector)",
        "σ = 2 (CDAT on the edge)",
    ]
    for name, panel in panels.items():
        panel.ax.axvline(2.0, **_SIGMA_TWO)
        panel.finish(ticks=(2.0,) if name.endswith("product") else ())
    add_legend(fig, handles, labels, list(notes))
    if title:
        fig.suptitle(title)
    return save(fig, path)


def plot_curvature_bracket(
    curves: Curve | Sequence[Curve],
    path: str | Path,
    *,
    title: str = "",
) -> Path:
    """For each Armijo search (a column per run): the curvature bracket its search
    gives at every step for free (`directional_curvature_lower` <
    `directional_curvature_upper` in the `info`, `eqtuners.Armijo`) as a band, the
    measured curvature along the gradient (`directional_curvature`) and the
    sharpness on the measurement schedule (top), and the same times the step size
    (bottom), with the edge of stability at 2. On the quadratic model the measured
    curvature lies in the band; the sharpness above the band is the curvature
    that the search never sees.

    **Arguments:**

    - `curves`: full-batch runs of Armijo searches (`Curve`s whose histories have
      the bracket's columns; a run without them is drawn without the band).
    - `path`: the image to write; its suffix gives the format.
    - `title`: the figure's title.

    **Returns:** `path`, as a `Path`.

    **Raises:** `ValueError` as `analysis.plots.plot_panels` for invalid curves.
    """
    curves = checked_curves(curves)
    colors = label_colors(curves)
    # Wide enough for the legend below the panels, even for one search.
    fig = new_figure(figsize=(max(4.4 * len(curves), 12.0), 7.4))
    axes = np.asarray(fig.subplots(2, len(curves), squeeze=False))
    kappa_name = quantity("directional_curvature")
    measured = {"marker": ".", "markersize": 5, "linewidth": 1.0}
    shares = []
    for (top, bottom), curve in zip(axes.T, curves):
        h, color = curve.history, colors[curve.label]
        step = np.asarray(h["step"], float)
        stepsize = column(h, "stepsize")
        lower = column(h, "directional_curvature_lower")
        upper = column(h, "directional_curvature_upper")
        kappa = column(h, "directional_curvature")
        sharp = column(h, "sharpness")
        curvature = Panel(top, "curvature", "step")
        product = Panel(bottom, "step size × curvature", "step")
        top.set_title(legend_label(curve), fontsize="medium", color=color)
        both = np.isfinite(lower) & np.isfinite(upper) & (lower > 0)
        for panel, scale in ((curvature, 1.0), (product, stepsize)):
            if both.any():
                low, high = (lower * scale)[both], (upper * scale)[both]
                panel.ax.fill_between(
                    step[both], low, high, color=color, alpha=0.25, linewidth=0
                )
                panel.plot(step[both], low, color=color, **RAW_STYLE)
            # The upper end alone where the first trial passed (nothing rejected).
            known = np.isfinite(upper)
            panel.plot(step[known], (upper * scale)[known], color=color, **RAW_STYLE)
        rows = np.isfinite(kappa)
        curvature.plot(step[rows], kappa[rows], color="black", **measured)
        rows_sharp = np.isfinite(sharp)
        curvature.plot(step[rows_sharp], sharp[rows_sharp], color="0.55", **measured)
        product.plot(step[rows], (stepsize * kappa)[rows], color="black", **measured)
        product.plot(
            step[rows_sharp], (stepsize * sharp)[rows_sharp], color="0.55", **measured
        )
        product.hline(2.0, **_EDGE)
        curvature.finish()
        product.finish(ticks=(2.0,))
        inside = rows & np.isfinite(lower) & np.isfinite(upper)
        if inside.any():
            held = (lower < kappa) & (kappa <= upper)
            shares.append(
                f"{curve.label}: {int(held[inside].sum())} of {int(inside.sum())}"
            )
    handles = [
        handle(color="0.5", linewidth=6, alpha=0.35),
        handle(color="black", **measured),
        handle(color="0.55", **measured),
        handle(**_EDGE),
    ]
    labels = [
        "free bracket of the search at every step (its colour;\n"
        "the upper end alone where the first trial passed)",
        f"{kappa_name} (measured)",
        "sharpness λ (measured)",
        "step size × curvature = 2\n(edge of stability)",
    ]
    when = measured_steps_text(curves, "directional_curvature")
    notes = []
    if when:
        notes.append(f"Curvature along the gradient and sharpness measured {when}.")
    if shares:
        notes.append(
            "Measurements inside the bracket (where both ends are known): "
            + "; ".join(shares)
            + "."
        )
    add_legend(fig, handles, labels, notes)
    if title:
        fig.suptitle(title)
    return save(fig, path)
