"""The figures the suites draw, by name (a suite lists the names it draws).

A figure is `draw(result, seed, directory) -> list[Path]`, given one workload's
results (`WorkloadResult`) and a seed; the drawing itself is `analysis.plots`'. A
figure that does not apply to a workload (a full-batch figure of a mini-batch
workload) draws nothing; one that gathers the seeds (`sigma_sweep`) draws at the
workload's first seed. Every tuner has one colour in every figure of every suite
(`_tuners.TUNERS`); several runs of one kind in a figure (GD at two steps, CDAT at
several `sigma`) get shades of it, in the order of the plan.
"""

import functools
from pathlib import Path

import numpy as np

from analysis import SelfStabilisation, sigma_sweep as model_sigma_sweep
from analysis.plots import (
    Columns,
    Curve,
    plot_batch_size_grid,
    plot_cap_sweep,
    plot_curvature_bracket,
    plot_panels,
    plot_polyak_zoom,
    plot_sigma_sweep,
    plot_spectral_densities,
)

from ._spectrum import LANCZOS_STEPS, PROBES, read_spectra
from ._stats import final, first, median_second_half
from ._tuners import TunerSpec
from .claims.edge import cdat_runs
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


# A ramp of one colour, from this much towards white to this much towards black
# (not so dark that it passes for another tuner's colour: orange darkened by 0.35
# is Zhang-Hager's brown).
RAMP = (0.55, 0.2)


def ramp(color, index: int, count: int):
    """The `index`-th of `count` shades of `color`, from lighter to darker."""
    from matplotlib.colors import to_rgb

    rgb = np.array(to_rgb(color))
    t = -RAMP[0] + (RAMP[0] + RAMP[1]) * index / max(count - 1, 1)
    target = 0.0 if t > 0 else 1.0
    return tuple(float(v) for v in rgb + (target - rgb) * abs(t))


def _families(runs) -> dict[str, dict[tuple, list[str]]]:
    """Kind -> options -> the labels of the runs of that kind with those options,
    in their order."""
    families: dict[str, dict[tuple, list[str]]] = {}
    for r in runs:
        tuner = r.config.tuner
        labels = families.setdefault(tuner.kind, {}).setdefault(tuner.options, [])
        if tuner.label not in labels:
            labels.append(tuner.label)
    return families


def run_colors(runs) -> dict[str, object]:
    """Tuner label -> colour: the tuner kind's (`TunerSpec.color`); a second
    variant of the kind among `runs` gets a lighter shade of it (GD at two steps),
    and from three variants on, the variants with the same options form a ramp
    from lighter to darker in the plan's order (CDAT by increasing sigma)."""
    colors = {}
    by_kind = {r.config.tuner.kind: r.config.tuner.color for r in runs}
    for kind, families in _families(runs).items():
        color = by_kind[kind]
        if sum(len(labels) for labels in families.values()) <= 2:
            labels = [label for labels in families.values() for label in labels]
            colors |= {label: shade(color, i) for i, label in enumerate(labels)}
            continue
        for labels in families.values():
            n = len(labels)
            colors |= {label: ramp(color, i, n) for i, label in enumerate(labels)}
    return colors


def run_linestyles(runs) -> dict[str, str]:
    """Tuner label -> line style: dashed for a run with options (CDAT with its
    moving average) whose kind also runs without them, solid otherwise."""
    styles = {}
    for families in _families(runs).values():
        for options, labels in families.items():
            dashed = options and () in families
            styles |= dict.fromkeys(labels, "--" if dashed else "-")
    return styles


def curve(run, colors, steps_per_epoch=None, linestyles=None) -> Curve:
    tuner = run.config.tuner
    fixed = tuner.value if tuner.kind == "constant" else None
    style = (linestyles or {}).get(tuner.label, "-")
    return Curve(
        tuner.label, run.history, fixed, steps_per_epoch, colors[tuner.label], style
    )


def _path(result, seed, directory, suffix="") -> Path:
    return Path(directory) / f"{result.workload.figure_name(seed)}{suffix}.png"


def panels(result, seed, directory) -> list[Path]:
    """The paper's four panels of the full-batch runs (its Figures 1 and 2)."""
    runs = result.of_seed(seed)
    colors, styles = run_colors(runs), run_linestyles(runs)
    return [
        plot_panels(
            [curve(r, colors, linestyles=styles) for r in runs],
            _path(result, seed, directory),
            title=f"{result.workload.label}, full batch (seed {seed})",
        )
    ]


def _batch_size_groups(runs, colors) -> dict[int, list[Curve]]:
    """Batch size -> the `Curve`s of the runs at that batch size, in epochs."""
    groups, styles = {}, run_linestyles(runs)
    for r in runs:
        per_epoch = r.meta["num_examples"] // r.config.batch_size
        groups.setdefault(r.config.batch_size, []).append(
            curve(r, colors, per_epoch, styles)
        )
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


def _full_batch(result) -> bool:
    return tuple(result.workload.batch_sizes) == (None,)


def four_panels(result, seed, directory) -> list[Path]:
    """`panels` for a full-batch workload, `batch_size_grid` for a mini-batch one
    (a suite with both kinds of workload)."""
    if _full_batch(result):
        return panels(result, seed, directory)
    return batch_size_grid(result, seed, directory)


# The Armijo searches, whose `info` has the free curvature bracket.
ARMIJO_KINDS = ("armijo", "zhang_hager", "ponos")


def curvature_bracket(result, seed, directory) -> list[Path]:
    """The free curvature bracket of each Armijo search of a full-batch workload
    against the measured curvature along the gradient and the sharpness."""
    if not _full_batch(result):
        return []
    runs = result.of_seed(seed)
    colors = run_colors(runs)
    searches = [r for r in runs if r.config.tuner.kind in ARMIJO_KINDS]
    if not searches:
        return []
    return [
        plot_curvature_bracket(
            [curve(r, colors) for r in searches],
            _path(result, seed, directory, "-bracket"),
            title=f"{result.workload.label}: the Armijo searches' free curvature "
            f"bracket (seed {seed})",
        )
    ]


# The model beside the network in `sigma_sweep`: the reduced self-stabilisation
# dynamics (`analysis.SelfStabilisation`) with the tests' parameters, from x =
# 0.05, S = 1.5, over 2000 steps, at 31 sigmas from 1 to 2.5 (below 1 its runs
# converge to the minimum, where step x sharpness says nothing).
MODEL = {
    "sharpening_rate": 0.05,
    "stabilisation_strength": 2.0,
    "max_sharpness": 10.0,
    "misalignment": 1e-4,
}
MODEL_START = (0.05, 1.5)
MODEL_STEPS = 2000
MODEL_SIGMAS = tuple(round(1.0 + 0.05 * k, 2) for k in range(31))


@functools.cache
def model_sweep():
    """CDAT's `sigma` swept in the model (`MODEL`), once per process."""
    model = SelfStabilisation(**MODEL)
    start = model.params_at(*MODEL_START)
    return model_sigma_sweep(model, start, MODEL_SIGMAS, MODEL_STEPS)


def _median_final(runs, key="sharpness"):
    values = [final(r.history, key) for r in runs]
    values = [v for v in values if v is not None]
    return float(np.median(values)) if values else None


def sigma_sweep(result, seed, directory) -> list[Path]:
    """CDAT's final sharpness and median step size x sharpness against `sigma`, a
    point per seed, beside the same in the model (drawn once per workload, at its
    first seed)."""
    if not _full_batch(result) or seed != result.workload.seeds[0]:
        return []
    network = {}
    for run in result.runs:
        for sigma, r in cdat_runs([run]).items():
            network.setdefault(sigma, []).append(
                (final(r.history, "sharpness"), median_second_half(r.history))
            )
    if not network:
        return []
    lines = {}
    initial = [first(r.history, "sharpness") for r in result.runs]
    initial = [v for v in initial if v is not None]
    if initial:
        lines["network at step 0 (median over seeds)"] = (
            float(np.median(initial)),
            "0.4",
        )
    armijo = [r for r in result.runs if r.config.tuner == TunerSpec("armijo")]
    gd = [r for r in result.runs if r.config.tuner.kind == "constant"]
    if armijo:
        lines["Armijo-GD at the end (median over seeds)"] = (
            _median_final(armijo),
            armijo[0].config.tuner.color,
        )
    if gd:
        lines[f"{gd[0].config.tuner.label} at the end (median over seeds)"] = (
            _median_final(gd),
            gd[0].config.tuner.color,
        )
    sweep = model_sweep()
    model_lines = {
        "model at step 0 (S₀)": (float(sweep.initial_sharpness[0]), "0.4"),
        "model's S_max (where sharpening stops)": (MODEL["max_sharpness"], "0.2"),
    }
    w = result.workload
    seeds = len(w.seeds)
    notes = [
        f"Network: {w.label}, full batch, {w.steps} steps, {seeds} "
        f"seed{'' if seeds == 1 else 's'}; final sharpness at the last step, step "
        "size × sharpness on the measurement schedule.",
        "Model: the reduced self-stabilisation dynamics (Damian et al.) with a "
        f"residual loss, alpha {MODEL['sharpening_rate']:g}, beta "
        f"{MODEL['stabilisation_strength']:g}, S_max {MODEL['max_sharpness']:g}, "
        f"misalignment {MODEL['misalignment']:g}, from x = {MODEL_START[0]:g}, "
        f"S = {MODEL_START[1]:g}, {MODEL_STEPS} steps, {len(MODEL_SIGMAS)} values "
        "of σ in one compile.",
    ]
    return [
        plot_sigma_sweep(
            network,
            sweep,
            _path(result, seed, directory, "-sigma-sweep"),
            network_lines=lines,
            model_lines=model_lines,
            network_label=f"network: {w.label}",
            model_label="model: self-stabilisation dynamics",
            color=TunerSpec("cdat").color,
            notes=notes,
            title="CDAT's σ: where the sharpness stops rising",
        )
    ]


FIGURES = {
    "panels": panels,
    "four_panels": four_panels,
    "curvature_bracket": curvature_bracket,
    "sigma_sweep": sigma_sweep,
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
