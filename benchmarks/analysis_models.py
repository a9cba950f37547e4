"""What the models say: GD at fixed steps, Armijo-GD and Polyak-GD on the joint
step-size/sharpness models of `analysis`.

    python -m benchmarks.analysis_models --out results/analysis_models

Three models, each run with gradient descent at two fixed step sizes and with the
paper's Armijo (c = 1e-4, gamma_max = 1, shrink 0.8) and Polyak (f* = 0,
gamma_max = 1) tuners, in float64:

- `regression`: a second-order regression model (`random_second_order_regression`)
  with fewer data points than parameters, so its minimum is 0;
- `regression_overdetermined`: the same with more data than parameters, so its
  minimum is positive while Polyak assumes `f* = 0` (as with the paper's weight
  decay, whose minimum is positive too);
- `self_stabilisation`: the reduced dynamics of Damian et al. (`SelfStabilisation`).

Each run writes `OUT/<model>/<run>/{config.json, meta.json, history.csv}`; each
model gets `OUT/<model>/four_panels.png` (the paper's panels) and
`OUT/<model>/phase_portrait.png` (sharpness against step size, with the curves
`2/gamma`, `2(1-c)/gamma` and `1/(2 gamma)` of the top-eigenmode quadratic);
`OUT/summary.json` holds, per run, the final loss, the final and largest sharpness
and the median of step size x sharpness over the later half of the steps at which
the run still moved (step size > 0 and loss above 1e-12 of its start: this leaves
out failed line searches and the round-off after convergence to 0).

What to expect (the numbers are in `summary.json`): GD at 0.5 climbs to
`2 / 0.5 = 4` and stays there (median step x sharpness near 2 on the three
models), GD at 0.25 converges before reaching its edge; Armijo sharpens beyond GD's
larger step, with step x sharpness near 2; Polyak sits above the edge, furthest
where its `f* = 0` is wrong.
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
    SelfStabilisation,
    random_second_order_regression,
    simulate,
)
from analysis.plots import Curve, plot_four_panels, plot_phase_portrait

from ._rundir import RunDirectory

ARMIJO = {"c": 1e-4, "max_stepsize": 1.0, "decrease_factor": 0.8}
POLYAK = {"max_stepsize": 1.0, "f_min": 0.0}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.analysis_models",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument(
        "--num-params", type=int, default=40, help="of the regression models"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("results/analysis_models"))
    return parser.parse_args(argv)


def make_models(args) -> dict:
    """Each model with its config, its starting parameters and two fixed steps."""
    p = args.num_params
    regression = {
        "curvature_scale": 1.0,
        "target_scale": 7.0,
        "spectrum_decay": 1.0,
    }
    models = {}
    for name, num_data in [
        ("regression", p // 2),
        ("regression_overdetermined", p + p // 4),
    ]:
        config = {"model": "SecondOrderRegression", "num_data": num_data} | regression
        config |= {"num_params": p, "seed": args.seed}
        model = random_second_order_regression(
            jax.random.key(args.seed), num_data, p, **regression
        )
        models[name] = (model, jnp.zeros(p), (0.25, 0.5), config)
    stabilisation = {
        "sharpening_rate": 0.01,
        "stabilisation_strength": 1.0,
        "max_sharpness": 10.0,
        "misalignment": 1e-6,
    }
    model = SelfStabilisation(**stabilisation)
    start = {"displacement": 0.01, "sharpness": 0.5}
    config = {"model": "SelfStabilisation"} | stabilisation | start
    models["self_stabilisation"] = (
        model,
        model.params_at(**start),
        (0.25, 0.5),
        config,
    )
    return models


def still_moving(history: dict[str, np.ndarray]) -> np.ndarray:
    """The steps before the loss first fell below 1e-12 of its start (after which
    only round-off moves) at which the step size was > 0 (not a failed search)."""
    converged = np.cumsum(history["loss"] <= 1e-12 * history["loss"][0]) > 0
    return ~converged & (history["stepsize"] > 0)


def summarise(history: dict[str, np.ndarray]) -> dict:
    """Final loss, final and largest sharpness, and step x sharpness over the later
    half of the steps at which the run still moved."""
    moving = still_moving(history) & np.isfinite(history["stepsize_x_sharpness"])
    later = np.flatnonzero(moving)
    later = later[len(later) // 2 :]
    product = history["stepsize_x_sharpness"][later]
    return {
        "final_loss": float(history["loss"][-1]),
        "final_sharpness": float(history["sharpness"][-1]),
        "max_sharpness": float(np.nanmax(history["sharpness"])),
        "median_stepsize_x_sharpness": float(np.median(product))
        if product.size
        else None,
        "fraction_above_2": float(np.mean(product > 2)) if product.size else None,
        "steps_moving": int(moving.sum()),
        "steps": int(len(history["step"])),
    }


def drawn(history: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The history to draw: step size and sharpness only where the run moved."""
    moving = still_moving(history)
    keys = ("stepsize", "sharpness", "stepsize_x_sharpness")
    return history | {k: np.where(moving, history[k], np.nan) for k in keys}


def run_model(name, model, params, stepsizes, config, args) -> dict:
    runs = {
        f"gd_{s:g}": (et.Constant(s), {"tuner": "Constant", "stepsize": s})
        for s in stepsizes
    }
    runs["armijo"] = (et.Armijo(**ARMIJO), {"tuner": "Armijo"} | ARMIJO)
    runs["polyak"] = (et.Polyak(**POLYAK), {"tuner": "Polyak"} | POLYAK)
    summaries, curves = {}, []
    for run_name, (tuner, tuner_config) in runs.items():
        run = RunDirectory(
            args.out / name / run_name, config | tuner_config | {"steps": args.steps}
        )
        run.discard()  # a new run of the script replaces the last one's rows
        run.start({"seed": args.seed})
        start = time.perf_counter()
        trajectory = simulate(model, tuner, params, args.steps)
        history = {k: np.asarray(v) for k, v in trajectory.history.items()}
        run.append(history)
        summary = summarise(history) | {
            "seconds": round(time.perf_counter() - start, 2)
        }
        diverged = not np.all(np.isfinite(history["loss"]))
        run.set_status("diverged" if diverged else "completed", summary=summary)
        summaries[run_name] = summary
        fixed = tuner_config.get("stepsize")
        label = f"GD {fixed:g}" if fixed else tuner_config["tuner"]
        curves.append(Curve(label, drawn(history), fixed))
    plot_four_panels(curves, args.out / name / "four_panels.png", title=name)
    plot_phase_portrait(
        curves, args.out / name / "phase_portrait.png", c=ARMIJO["c"], title=name
    )
    return summaries


def main(argv=None) -> dict:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    summaries = {}
    # Float64 only inside: the setting is not left changed for the caller.
    with jax.enable_x64(True):
        for name, (model, params, stepsizes, config) in make_models(args).items():
            print(f"{name}: {args.steps} steps of GD at {stepsizes}, Armijo, Polyak")
            summaries[name] = run_model(name, model, params, stepsizes, config, args)
    (args.out / "summary.json").write_text(json.dumps(summaries, indent=2) + "\n")
    header = (
        f"{'model':<27}{'run':<9}{'final loss':>11}{'sharpness':>11}"
        f"{'max sharp':>11}{'med s*lam':>11}{'>2':>6}"
    )
    print("\n" + header)
    for name, runs in summaries.items():
        for run_name, s in runs.items():
            median = s["median_stepsize_x_sharpness"]
            above = s["fraction_above_2"]
            print(
                f"{name:<27}{run_name:<9}{s['final_loss']:>11.3g}"
                f"{s['final_sharpness']:>11.4g}{s['max_sharpness']:>11.4g}"
                f"{float('nan') if median is None else median:>11.4g}"
                f"{float('nan') if above is None else above:>6.2f}"
            )
    print(
        f"\nWrote {args.out}/<model>/{{four_panels,phase_portrait}}.png, the runs and "
        f"{args.out / 'summary.json'} in {time.perf_counter() - start:.1f} s"
    )
    return summaries


if __name__ == "__main__":
    main()
