"""The figures the suites draw, by name (a suite lists the names it draws).

A figure is `draw(result, seed, directory) -> list[Path]`, given one workload's
results (`WorkloadResult`) and a seed; the drawing itself is `analysis.plots`'.
Every tuner has one colour in every figure of every suite (`_tuners.TUNERS`);
several runs of one kind in a figure (GD at two steps) get shades of it, in the
order of the plan.
"""

from pathlib import Path

import numpy as np

from analysis.plots import (
    Columns,
    Curve,
    plot_batch_size_grid,
    plot_cap_sweep,
    plot_panels,
    plot_polyak_zoom,
    plot_spectral_densities,
)

from ._spectrum import LANCZOS_STEPS, PROBES, read_spectra
from .claims.polyak import by_cap


def shade(color, index: int):
    """`color` for the first run of a kind, then alternately lighter and darker
    for the next ones."""
    from matplotlib.colors import to_rgb

    if index == 0:
        return color
    rgb = np.array(to_rgb(color))
    amount = min(0.4 * ((index + 1) // 2), 0.8)
    target = 1.0 if index % 2 else 0.0
    return tuple(float(v) for v in rgb + (target - rgb) * amount)


def run_colors(runs) -> dict[str, object]:
    """Tuner label -> colour: the tuner kind's, shaded for its second, third, ...
    variant among `runs`."""
    colors, seen = {}, {}
    for r in runs:
        tuner = r.config.tuner
        if tuner.label in colors:
            continue
        index = seen.get(tuner.kind, 0)
        seen[tuner.kind] = index + 1
        colors[tuner.label] = shade(tuner.color, index)
    return colors


def curve(run, colors, steps_per_epoch=None) -> Curve:
    tuner = run.config.tuner
    fixed = tuner.value if tuner.kind == "constant" else None
    return Curve(tuner.label, run.history, fixed, steps_per_epoch, colors[tuner.label])


def _path(result, seed, directory, suffix="") -> Path:
    return Path(directory) / f"{result.workload.figure_name(seed)}{suffix}.png"


def panels(result, seed, directory) -> list[Path]:
    """The paper's four panels of the full-batch runs (its Figures 1 and 2)."""
    runs = result.of_seed(seed)
    colors = run_colors(runs)
    return [
        plot_panels(
            [curve(r, colors) for r in runs],
            _path(result, seed, directory),
            title=f"{result.workload.label}, full batch (seed {seed})",
        )
    ]


def _batch_size_groups(runs, colors) -> dict[int, list[Curve]]:
    """Batch size -> the `Curve`s of the runs at that batch size, in epochs."""
    groups = {}
    for r in runs:
        per_epoch = r.meta["num_examples"] // r.config.batch_size
        groups.setdefault(r.config.batch_size, []).append(curve(r, colors, per_epoch))
    return groups


def batch_size_grid(result, seed, directory) -> list[Path]:
    """The four panels per batch size (the paper's Figures 3 to 5)."""
    runs = result.of_seed(seed)
    return [
        plot_batch_size_grid(
            _batch_size_groups(runs, run_colors(runs)),
            _path(result, seed, directory),
            title=f"{result.workload.label}, mini-batches (seed {seed})",
        )
    ]


CURVATURES = (
    ("sharpness", "full-batch sharpness"),
    ("batch_sharpness", "batch sharpness"),
    ("batch_top_eigenvalue", "batch top eigenvalue"),
)


def curvature_grids(result, seed, directory) -> list[Path]:
    """The four panels per batch size for each of the full-batch sharpness, the
    batch sharpness and the batch top eigenvalue."""
    runs = result.of_seed(seed)
    groups = _batch_size_groups(runs, run_colors(runs))
    return [
        plot_batch_size_grid(
            groups,
            _path(result, seed, directory, f"-{key}"),
            title=f"{result.workload.label}: {what} (seed {seed})",
            columns=Columns(sharpness=key),
        )
        for key, what in CURVATURES
    ]


def spectra(result, seed, directory) -> list[Path]:
    """The Hessian's spectral density at the start (the same model for every run
    of a seed) and at the end of each run, a panel per batch size."""
    runs = result.of_seed(seed)
    colors = run_colors(runs)
    by_panel, curve_colors = {}, {}
    for r in runs:
        found = read_spectra(r.path)
        panel = by_panel.setdefault(f"batch size {r.config.batch_size}", {})
        if "start" in found:
            panel.setdefault("start", found["start"])
        if "end" in found:
            label = f"end: {r.config.tuner.label}"
            panel[label] = found["end"]
            curve_colors[label] = colors[r.config.tuner.label]
    return [
        plot_spectral_densities(
            {name: curves for name, curves in by_panel.items() if curves},
            _path(result, seed, directory, "-spectrum"),
            title=f"{result.workload.label}: Hessian spectral density on the "
            f"measurement set (stochastic Lanczos quadrature, {PROBES} probes x "
            f"{LANCZOS_STEPS} steps), seed {seed}",
            colors=curve_colors,
        )
    ]


def polyak_zoom(result, seed, directory) -> list[Path]:
    """The paper's Figure 6 for each run: every step of its zoom window."""
    runs = result.of_seed(seed)
    colors = run_colors(runs)
    paths = []
    for r in runs:
        suffix = "" if len(runs) == 1 else f"-{r.config.tuner.slug()}"
        window = r.config.measure.zoom
        paths.append(
            plot_polyak_zoom(
                curve(r, colors),
                _path(result, seed, directory, suffix),
                stop=r.config.steps if window is None else window[1],
                title=f"{r.config.tuner.label}-GD, {result.workload.label}, every step",
            )
        )
    return paths


def cap_sweep(result, seed, directory) -> list[Path]:
    """The paper's Figure 7: Polyak-GD at each cap, and GD at the same steps (a
    colour per cap, as in the paper; GD dashed)."""
    runs = result.of_seed(seed)
    polyak = {c: r.history for c, r in by_cap(runs, "polyak").items()}
    if not polyak:
        return []
    constant = {c: r.history for c, r in by_cap(runs, "constant").items()}
    return [
        plot_cap_sweep(
            polyak,
            _path(result, seed, directory),
            constant=constant,
            title=f"Polyak-GD caps and GD, {result.workload.label}",
        )
    ]


FIGURES = {
    "panels": panels,
    "batch_size_grid": batch_size_grid,
    "curvature_grids": curvature_grids,
    "spectra": spectra,
    "polyak_zoom": polyak_zoom,
    "cap_sweep": cap_sweep,
}


def draw_figures(names, results, directory) -> list[Path]:
    """The figures `names` (keys of `FIGURES`) of every workload and seed."""
    return [
        path
        for result in results
        for seed in result.workload.seeds
        for name in names
        for path in FIGURES[name](result, seed, directory)
    ]
