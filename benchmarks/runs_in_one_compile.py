"""R runs in one compiled, vmapped `train` call against the same R runs one by one.

    python -m benchmarks.runs_in_one_compile       # a few minutes on 2 CPU cores

The paper's MLP on digits, full batch, `--steps` steps, no sharpness: R = `--runs`
tuners of one kind, with their values spread over a grid (GD at step sizes 0.1 to
0.8, Polyak and Armijo with caps 0.25 to 2), stacked with `eqtuners.stack`, against
the R runs one after the other. The stack runs both ways `train` offers: the runs
one after the other inside each compiled step (`vmap_runs=False`, the CPU default)
and in parallel under `vmap` (`vmap_runs=True`, the GPU and TPU default). Compile
time is measured separately (the first call, minus a timed call), and each timing
is the median of `--repeats` rounds, the three ways taking turns. It reports runs
per second and the ratios to sequential (above 1: the stack is faster), and the
largest difference between a stacked run's losses and its separate run's.

Armijo under `vmap` runs its backtracking `while_loop` until every run of the stack
has accepted a step, so each step costs the largest number of evaluations among the
runs rather than each run's own: the table gives both (mean over steps of the
maximum over runs, against the mean over runs and steps).

Writes `OUT/runs_in_one_compile.json`.
"""

import argparse
import json
import time
import warnings
from pathlib import Path

import jax
import numpy as np

import eqtuners as et

from ._rundir import write_rows

GRIDS = {
    "constant": lambda r: [et.Constant(s) for s in np.geomspace(0.1, 0.8, r)],
    "polyak": lambda r: [et.Polyak(max_stepsize=s) for s in np.geomspace(0.25, 2, r)],
    "armijo": lambda r: [et.Armijo(max_stepsize=s) for s in np.geomspace(0.25, 2, r)],
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.runs_in_one_compile",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("--runs", type=int, default=8, help="R, the runs per stack")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--tuners",
        nargs="+",
        default=["constant", "polyak", "armijo"],
        choices=sorted(GRIDS),
    )
    parser.add_argument("--out", type=Path, default=Path("results/runs_in_one_compile"))
    return parser.parse_args(argv)


def _timed(fn):
    start = time.perf_counter()
    results = fn()
    jax.block_until_ready([r.state.params for r in results])
    return time.perf_counter() - start, results


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    data = et.load_dataset("digits")
    model = et.make_model("mlp", data.input_shape, 10, key=jax.random.key(0))
    options = dict(
        key=jax.random.key(1),
        measure=None,
        steps_per_call=args.steps,
        progress=False,
    )
    rows = []
    for kind in args.tuners:
        tuners = GRIDS[kind](args.runs)

        def sequential():
            return [et.train(model, t, data, args.steps, **options) for t in tuners]

        def stacked(vmap_runs):
            return lambda: [
                et.train(
                    model,
                    et.stack(tuners),
                    data,
                    args.steps,
                    vmap_runs=vmap_runs,
                    **options,
                )
            ]

        ways = {"sequential": sequential, "map": stacked(False), "vmap": stacked(True)}
        first, times, results = {}, {k: [] for k in ways}, {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            for name, way in ways.items():
                first[name], results[name] = _timed(way)
            for _ in range(args.repeats):  # the ways take turns
                for name, way in ways.items():
                    times[name].append(_timed(way)[0])
        seconds = {k: float(np.median(v)) for k, v in times.items()}
        row = {"tuner": kind, "runs": args.runs, "steps": args.steps}
        for name in ways:
            row[f"{name}_runs_per_s"] = round(args.runs / seconds[name], 3)
            row[f"{name}_compile_s"] = round(first[name] - seconds[name], 2)
        for name in ("map", "vmap"):
            row[f"{name}_over_sequential"] = round(
                seconds["sequential"] / seconds[name], 3
            )
            stack = results[name][0].unstack()
            row[f"{name}_max_loss_gap"] = max(
                float(np.nanmax(np.abs(s.history["loss"] - u.history["loss"])))
                for s, u in zip(results["sequential"], stack)
            )
        if kind == "armijo":
            evals = np.stack([r.history["num_evals"] for r in results["sequential"]])
            row["evals_per_step_each_run"] = round(float(evals.mean()), 2)
            row["evals_per_step_under_vmap"] = round(float(evals.max(0).mean()), 2)
        rows.append(row)
        print(json.dumps(row), flush=True)
    write_rows(args.out / "runs_in_one_compile.json", rows)
    return rows


if __name__ == "__main__":
    main()
