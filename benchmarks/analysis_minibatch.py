"""Does a sum of per-example quadratics reproduce the batch-size dependence of
Armijo-SGD (the paper's claim C5)?

    python -m benchmarks.analysis_minibatch --out results/analysis_minibatch

SGD (a constant step `1 / lambda_max(H)`, half the full-batch edge), Armijo-SGD
(c = 1e-4, gamma_max = 1, shrink 0.8) and Polyak-SGD (f* = 0, gamma_max = 1), each
checking its step on the gradient's own batch, run for `--steps` steps at batch
sizes 16, 64, 256, 1024 and 4096 on `n = 4096` examples in dimension 32, in
float64, for three shapes of per-example Hessians (`random_per_example_quadratics`,
label noise 0.5):

- `least_squares`: rank 1 (`H_i = x_i x_i^T`), a power-law spectrum: batch
  Hessians differ most;
- `shared_top`: rank 1 with a component shared by all examples, which makes one
  outlying eigenvalue (25 times the next) along which all batches agree;
- `ten_outputs`: rank 10 (the paper's ten outputs), the rows of each example's
  Jacobian drawn around one of ten class means;
- `full_rank` (with `--shapes`): rank 32.

and two scales, `lambda_max(H) = 10` (the full-batch edge `2 / lambda = 0.2`, five
times below the cap, as in the paper's runs) and 3 (the edge one or two grid steps
below the cap). Statistics are over the later half of the steps at which a run
still moved (loss above `f* + 1e-10 (f(w_0) - f*)` and step > 0).

Writes `OUT/summary.json` (per scale, shape, tuner and batch size: mean and median
step, fraction of steps at the cap, mean step x full sharpness and the fraction of
steps above 2, mean and largest step x batch curvature, mean step x batch top
eigenvalue, mean batch curvature and batch top eigenvalue over the sharpness,
final loss; per shape and batch size, the closed forms `expected_batch_curvature`
at the start and `batch_top_eigenvalue_bounds`), `OUT/summary_sharpness<L>.png`
(those against batch size) and `OUT/armijo_<shape>_sharpness<L>.png` (Armijo-SGD's
step x sharpness and step x batch curvature along the run, per batch size).

What to expect (the numbers are in `summary.json`): Armijo-SGD's step x batch
curvature never exceeds `2 (1 - c)` (the bound is exact); the batch top eigenvalue
falls with the batch size to `lambda_max(H)`, most for `least_squares`, whose batch
Hessians differ most. Armijo-SGD sits near the full-batch edge at every batch size,
a little above it at small batches, rarely at its cap at scale 10 and more often
at scale 3 and small batches. Polyak-SGD steps past the batch edge: its largest
step x batch curvature is well above 2.
"""

import argparse
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import eqtuners as et
from analysis import (
    batch_top_eigenvalue_bounds,
    expected_batch_curvature,
    random_per_example_quadratics,
    simulate_minibatch,
)

from ._rundir import environment

ARMIJO = {"c": 1e-4, "max_stepsize": 1.0, "decrease_factor": 0.8}
POLYAK = {"max_stepsize": 1.0, "f_min": 0.0}
SHAPES = {
    "least_squares": {"rank": 1},
    "shared_top": {"rank": 1, "shared_scale": 3.0},
    "ten_outputs": {"rank": 10, "shared_scale": 1.0, "num_classes": 10},
    "full_rank": {"rank": None},  # the dimension
}
DEFAULT_SHAPES = ["least_squares", "shared_top", "ten_outputs"]
COLORS = {"SGD": "tab:gray", "Armijo": "tab:blue", "Polyak": "tab:orange"}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.analysis_minibatch",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--num-examples", type=int, default=4096)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument(
        "--batch-sizes", type=int, nargs="+", default=[16, 64, 256, 1024, 4096]
    )
    parser.add_argument("--sharpness", type=float, nargs="+", default=[10.0, 3.0])
    parser.add_argument(
        "--shapes", nargs="+", default=DEFAULT_SHAPES, choices=list(SHAPES)
    )
    parser.add_argument("--noise-scale", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("results/analysis_minibatch"))
    return parser.parse_args(argv)


def make_model(shape: str, sharpness: float, args):
    kwargs = dict(SHAPES[shape])
    kwargs["rank"] = kwargs["rank"] or args.dim
    return random_per_example_quadratics(
        jax.random.key(args.seed),
        args.num_examples,
        args.dim,
        sharpness=sharpness,
        noise_scale=args.noise_scale,
        **kwargs,
    )


def still_moving(history: dict[str, np.ndarray], minimum: float) -> np.ndarray:
    """The steps before the loss first came within 1e-10 of its start's excess over
    the minimum (after which only round-off moves), with a step > 0."""
    excess = history["loss"] - minimum
    converged = np.cumsum(excess <= 1e-10 * excess[0]) > 0
    return ~converged & (history["stepsize"] > 0)


def drawn(history: dict[str, np.ndarray], minimum: float) -> dict[str, np.ndarray]:
    """The history to draw: the products only where the run still moved (after
    convergence the tuner's test compares round-off)."""
    moving = still_moving(history, minimum)
    keys = ("stepsize_x_sharpness", "stepsize_x_batch_curvature")
    return {k: np.where(moving, history[k], np.nan) for k in keys}


def summarise(history, minimum, sharpness, max_stepsize) -> dict:
    """Statistics over the later half of the steps at which the run still moved."""
    moving = np.flatnonzero(still_moving(history, minimum))
    later = moving[len(moving) // 2 :]
    if later.size == 0:
        return {"steps_used": 0}
    h = {k: v[later] for k, v in history.items()}
    step = h["stepsize"]
    return {
        "steps_used": int(later.size),
        "mean_stepsize": float(np.mean(step)),
        "median_stepsize": float(np.median(step)),
        "fraction_at_cap": float(np.mean(step >= max_stepsize * (1 - 1e-9))),
        "mean_stepsize_x_sharpness": float(np.mean(h["stepsize_x_sharpness"])),
        "fraction_stepsize_x_sharpness_above_2": float(
            np.mean(h["stepsize_x_sharpness"] > 2)
        ),
        "mean_stepsize_x_batch_curvature": float(
            np.mean(h["stepsize_x_batch_curvature"])
        ),
        "max_stepsize_x_batch_curvature": float(
            np.max(h["stepsize_x_batch_curvature"])
        ),
        "mean_stepsize_x_batch_top_eigenvalue": float(
            np.mean(h["stepsize_x_batch_top_eigenvalue"])
        ),
        "mean_batch_curvature_over_sharpness": float(
            np.mean(h["batch_curvature"]) / sharpness
        ),
        "mean_batch_top_eigenvalue_over_sharpness": float(
            np.mean(h["batch_top_eigenvalue"]) / sharpness
        ),
        "final_excess_loss": float(history["loss"][-1] - minimum),
    }


def closed_forms(model, params, batch_sizes) -> dict:
    """The closed forms of `analysis._minibatch` at `params`, per batch size."""
    sharpness = float(model.sharpness())
    out = {}
    for b in batch_sizes:
        lower, upper = batch_top_eigenvalue_bounds(model, b)
        out[str(b)] = {
            "expected_batch_curvature_at_start_over_sharpness": float(
                expected_batch_curvature(model, params, b) / sharpness
            ),
            "batch_top_eigenvalue_bounds_over_sharpness": [
                float(lower / sharpness),
                float(upper / sharpness),
            ],
        }
    return out


def tuners(sharpness: float) -> dict:
    return {
        "SGD": et.Constant(1 / sharpness),
        "Armijo": et.Armijo(**ARMIJO),
        "Polyak": et.Polyak(**POLYAK),
    }


def run_shape(shape, sharpness, args) -> tuple[dict, dict]:
    model = make_model(shape, sharpness, args)
    params = jnp.zeros(args.dim)
    minimum = float(model.minimum)
    summaries, armijo_runs = {}, {}
    for name, tuner in tuners(sharpness).items():
        summaries[name] = {}
        cap = 1 / sharpness if name == "SGD" else 1.0
        for b in args.batch_sizes:
            trajectory = simulate_minibatch(
                model, tuner, params, args.steps, b, jax.random.key(args.seed + 1)
            )
            history = {k: np.asarray(v) for k, v in trajectory.history.items()}
            summaries[name][str(b)] = summarise(history, minimum, sharpness, cap)
            if name == "Armijo":
                armijo_runs[b] = drawn(history, minimum)
    summaries["closed_forms"] = closed_forms(model, params, args.batch_sizes)
    summaries["model"] = {
        "sharpness": float(model.sharpness()),
        "trace": float(jnp.trace(model.hessian)),
        "minimum": minimum,
        "initial_loss": float(model.loss(params)),
    } | {k: v for k, v in SHAPES[shape].items() if v is not None}
    return summaries, armijo_runs


PANEL_LABELS = (
    "step size (mean)",
    "step x full-batch sharpness (mean)",
    "step x batch curvature",
    "curvature / full-batch sharpness",
)


def _tuner_curves(row, runs: dict, sizes) -> None:
    """Each tuner's step size and its products with the curvatures, against the
    batch size; Armijo's largest step x batch curvature and its batch curvature."""
    for name, color in COLORS.items():

        def values(key, name=name):
            return np.array([runs[name][str(b)].get(key, np.nan) for b in sizes], float)

        style = {"color": color, "marker": "o", "label": name}
        row[0].plot(sizes, values("mean_stepsize"), **style)
        row[1].plot(sizes, values("mean_stepsize_x_sharpness"), **style)
        row[2].plot(sizes, values("mean_stepsize_x_batch_curvature"), **style)
        if name == "Armijo":
            row[2].plot(
                sizes,
                values("max_stepsize_x_batch_curvature"),
                color=color,
                ls=":",
                marker="^",
                label="Armijo, largest",
            )
            row[3].plot(
                sizes,
                values("mean_batch_curvature_over_sharpness"),
                color=color,
                marker="o",
                label="batch curvature (Armijo run)",
            )


def _closed_forms(ax, runs: dict, sizes) -> None:
    """The batch top eigenvalue of the SGD run against the bounds on its
    expectation, and the expected batch curvature at the start."""
    closed = runs["closed_forms"]
    over = "batch_top_eigenvalue_bounds_over_sharpness"
    bounds = np.array([closed[str(b)][over] for b in sizes])
    top = "mean_batch_top_eigenvalue_over_sharpness"
    ax.plot(
        sizes,
        [runs["SGD"][str(b)][top] for b in sizes],
        color="k",
        marker="s",
        label="batch top eigenvalue (SGD run)",
    )
    ax.fill_between(
        sizes,
        bounds[:, 0],
        bounds[:, 1],
        color="k",
        alpha=0.1,
        label="bounds on its expectation",
    )
    start = "expected_batch_curvature_at_start_over_sharpness"
    ax.plot(
        sizes,
        [closed[str(b)][start] for b in sizes],
        color="tab:green",
        marker="x",
        label="E[g^T H_B g] / E|g|^2 at the start",
    )


def _reference_lines(row, edge: float) -> None:
    row[0].axhline(1.0, color="k", ls="--", lw=1, label="cap 1")
    row[0].axhline(edge, color="k", ls=":", lw=1, label="2 / sharpness")
    row[1].axhline(2, color="k", ls="--", lw=1, label="2 (edge)")
    row[2].axhline(2 * (1 - ARMIJO["c"]), color="k", ls="--", lw=1, label="2 (1 - c)")
    row[3].axhline(1, color="k", ls="--", lw=1, label="1 (full sharpness)")


def _format_row(row, shape: str, sizes) -> None:
    from matplotlib.ticker import FixedLocator, NullLocator

    from analysis._plot_core import log_formatter

    for ax, label in zip(row, PANEL_LABELS):
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(FixedLocator(sizes))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticklabels([str(b) for b in sizes])
        ax.set_xlabel("batch size")
        ax.set_ylabel(label)
        ax.set_title(f"{shape}", fontsize=9)
    row[0].set_yscale("log")
    row[0].yaxis.set_major_formatter(log_formatter())
    row[0].yaxis.set_minor_formatter(log_formatter())


def plot_summary(results: dict, sharpness: float, args, path: Path) -> None:
    """A row of four panels per shape of the data, against the batch size."""
    import matplotlib.pyplot as plt

    shapes = list(results)
    fig, axes = plt.subplots(
        len(shapes), 4, figsize=(16, 3.2 * len(shapes)), squeeze=False
    )
    sizes = np.array(args.batch_sizes)
    for row, shape in zip(axes, shapes):
        _tuner_curves(row, results[shape], sizes)
        _closed_forms(row[3], results[shape], sizes)
        _reference_lines(row, 2 / sharpness)
        _format_row(row, shape, sizes)
    # One legend per column, under the figure, so that none covers data.
    for i, ax in enumerate(axes[-1]):
        handles, labels = axes[0][i].get_legend_handles_labels()
        ax.legend(
            handles,
            labels,
            fontsize=7,
            loc="upper center",
            bbox_to_anchor=(0.5, -0.28),
            ncol=2,
            frameon=False,
        )
    fig.suptitle(
        f"Per-example quadratics, n = {args.num_examples}, d = {args.dim}, "
        f"lambda_max(H) = {sharpness:g}: means over the later half of the steps that "
        f"moved ({args.steps} steps per run)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def plot_armijo_runs(runs: dict, sharpness: float, shape: str, path: Path) -> None:
    import matplotlib.pyplot as plt

    from analysis.plots import running_mean

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), sharey=True)
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(runs)))
    window = 20
    for color, (b, h) in zip(colors, runs.items()):
        x = np.arange(len(h["stepsize_x_sharpness"]))
        for ax, key in zip(
            axes, ("stepsize_x_sharpness", "stepsize_x_batch_curvature")
        ):
            values = np.where(np.isfinite(h[key]), h[key], np.nan)
            ax.plot(
                x, running_mean(values, window), color=color, lw=1, label=f"b = {b}"
            )
    for ax, label in zip(
        axes, ("step x full-batch sharpness", "step x batch curvature")
    ):
        ax.axhline(2, color="k", ls="--", lw=1, label="2")
        ax.set_xlabel("step")
        ax.set_ylabel(label)
    axes[0].legend(fontsize=7, ncol=2)
    fig.suptitle(
        f"Armijo-SGD on {shape}, lambda_max(H) = {sharpness:g}: running means over "
        f"{window} steps, until the run converged",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> dict:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    config = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    summary = {"config": config, "environment": environment()}
    # Float64 only inside: the setting is not left changed for the caller.
    with jax.enable_x64(True):
        for sharpness in args.sharpness:
            results = {}
            for shape in args.shapes:
                print(
                    f"sharpness {sharpness:g}, {shape}: SGD, Armijo, Polyak at batch "
                    f"sizes {args.batch_sizes}"
                )
                results[shape], armijo_runs = run_shape(shape, sharpness, args)
                plot_armijo_runs(
                    armijo_runs,
                    sharpness,
                    shape,
                    args.out / f"armijo_{shape}_sharpness{sharpness:g}.png",
                )
            plot_summary(
                results,
                sharpness,
                args,
                args.out / f"summary_sharpness{sharpness:g}.png",
            )
            summary[f"sharpness {sharpness:g}"] = results
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print_table(summary, args)
    print(f"\nWrote {args.out} in {time.perf_counter() - start:.1f} s")
    return summary


def print_table(summary: dict, args) -> None:
    header = (
        f"{'scale':>6} {'shape':<14}{'tuner':<8}{'b':>6}{'step':>8}{'at cap':>8}"
        f"{'s*lam':>8}{'>2':>6}{'s*kB':>8}{'max':>7}{'s*lamB':>8}{'kB/lam':>8}"
        f"{'lamB/lam':>9}"
    )
    print("\n" + header)
    for scale, results in summary.items():
        if not scale.startswith("sharpness"):
            continue
        for shape, runs in results.items():
            for tuner in COLORS:
                for b, s in runs[tuner].items():
                    if not s.get("steps_used"):
                        print(
                            f"{scale[10:]:>6} {shape:<14}{tuner:<8}{b:>6}  (converged)"
                        )
                        continue
                    print(
                        f"{scale[10:]:>6} {shape:<14}{tuner:<8}{b:>6}"
                        f"{s['mean_stepsize']:>8.3g}{s['fraction_at_cap']:>8.2f}"
                        f"{s['mean_stepsize_x_sharpness']:>8.3g}"
                        f"{s['fraction_stepsize_x_sharpness_above_2']:>6.2f}"
                        f"{s['mean_stepsize_x_batch_curvature']:>8.3g}"
                        f"{s['max_stepsize_x_batch_curvature']:>7.3g}"
                        f"{s['mean_stepsize_x_batch_top_eigenvalue']:>8.3g}"
                        f"{s['mean_batch_curvature_over_sharpness']:>8.3g}"
                        f"{s['mean_batch_top_eigenvalue_over_sharpness']:>9.3g}"
                    )


if __name__ == "__main__":
    main()
