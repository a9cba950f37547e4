"""Sharpness estimators along a training run: products and time to a relative error of
1e-3, against the paper's power iteration.

    python -m benchmarks.sharpness_estimators --overhead   # ~30 min on 2 CPUs
    python -m benchmarks.sharpness_estimators --problems mlp_digits --snapshots 10

Two problems, trained full batch with Polyak-GD (the paper's defaults) and weight
decay 1e-4, with the parameters kept every `--every` steps (the tracking schedule):

- `mlp_digits`: the paper's MLP (40,714 parameters) on the 1437 digits images;
- `vgg_synthetic`: VGG11 without normalisation (`et.make_model("vgg11", ...)`) with
  its widths divided by `--vgg-width-divisor` (16: 36,610 parameters), on
  `--vgg-examples` images of the synthetic CIFAR-shaped dataset.

At every kept point the reference is the top eigenvalue from float64 Lanczos run to a
relative residual of 1e-10 (the models are too large for a dense float64 Hessian;
`--dense-max-params` switches to `numpy.linalg.eigvalsh` of the dense Hessian for
models up to that size). Then, in float32 as in training, each estimator measures the
sharpness:

- `power`: the paper's power iteration (`PowerIteration()`, random start every time);
- `power_warm`: the same, started from the previous point's eigenvector;
- `lanczos`: `Lanczos(warm_start=False)`, relative residual 1e-3;
- `lanczos_warm`: `Lanczos()`, started from the previous point's eigenvector;
- `lanczos_warm_1e-2`: the same with a relative residual of 1e-2.

For each estimator it reports the products and the wall time of its own stopping rule
(with the error reached and the fraction of points within 1e-3), and the products it
needs to first come within 1e-3 of the reference: for power iteration by iterating
from the same start until it does (at most 1000 products), for Lanczos from the Ritz
values of the tridiagonal matrix of the run, step by step. The time to 1e-3 is those
products times the estimator's measured time per product. Ratios are against `power`.

Writes `OUT/table.csv`, `OUT/table.json` (the table and the run's meta: versions,
device, git revision) and `OUT/<problem>.csv` (one row per point and estimator).
With `--overhead`, it also times `train` on `mlp_digits` for `--overhead-steps`
steps without sharpness, and with sharpness every 10 steps by each estimator, and
writes `OUT/overhead.json`.
"""

import argparse
import csv
import dataclasses
import json
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

import eqtuners as et
from eqtuners._sharpness import random_direction
from eqtuners._sharpness.lanczos import lanczos

from ._rundir import RunDirectory

TARGET = 1e-3


@dataclasses.dataclass
class Problem:
    name: str
    model: eqx.Module
    x: jax.Array
    y: jax.Array
    snapshots: int


def make_problem(name: str, args) -> Problem:
    key = jax.random.key(args.seed)
    if name == "mlp_digits":
        data = et.load_dataset("digits")
        model = et.make_model("mlp", data.input_shape, data.num_classes, key=key)
        return Problem(name, model, data.train_x, data.train_y, args.snapshots)
    if name == "vgg_synthetic":
        data = et.load_dataset(
            "synthetic_cifar10", num_train=args.vgg_examples, seed=args.seed
        )
        width = 1 / args.vgg_width_divisor
        model = et.make_model(
            "vgg11", data.input_shape, data.num_classes, width=width, key=key
        )
        return Problem(name, model, data.train_x, data.train_y, args.vgg_snapshots)
    raise ValueError(f"Unknown problem {name!r}.")


def trajectory(problem: Problem, args) -> list:
    """`(step, params)` every `args.every` steps of Polyak-GD after `args.burn_in`
    steps, `problem.snapshots` of them."""

    def advance(model, num_steps):
        return et.train(
            model,
            et.Polyak(),
            (problem.x, problem.y),
            num_steps,
            key=jax.random.key(args.seed),
            sharpness_every=None,
            steps_per_call=args.every,
        ).model

    model = advance(problem.model, args.burn_in) if args.burn_in else problem.model
    points = []
    for i in range(problem.snapshots):
        points.append(
            (args.burn_in + i * args.every, eqx.filter(model, eqx.is_inexact_array))
        )
        model = advance(model, args.every)
    return points


def objective_fn(static, x, y, chunk_size):
    return lambda p: et.objective(eqx.combine(p, static), x, y, chunk_size=chunk_size)


def reference(problem, static, params, start, args):
    """The top eigenvalue and eigenvector in float64 (Lanczos to a relative
    residual of 1e-10, or the dense Hessian for small models)."""
    with jax.enable_x64(True):
        to64 = lambda t: jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), t)  # noqa: E731
        params64, x64 = to64(params), jnp.asarray(problem.x, jnp.float64)
        fn = objective_fn(static, x64, problem.y, args.chunk_size)
        flat, unravel = ravel_pytree(params64)
        if flat.size <= args.dense_max_params:
            hessian = jax.jit(jax.hessian(lambda v: fn(unravel(v))))(flat)
            values, vectors = np.linalg.eigh(np.asarray(hessian))
            return float(values[-1]), np.asarray(vectors[:, -1], np.float32), 0.0
        estimate, info = _reference_lanczos(
            static, params64, to64(start), x64, problem.y, args.chunk_size
        )
        vector = np.asarray(ravel_pytree(info["eigenvector"])[0], np.float32)
        return float(estimate), vector, float(info["residual"] / abs(estimate))


@eqx.filter_jit
def _reference_lanczos(static, params, start, x, y, chunk_size):
    # The data are arguments, so that one compile serves every point.
    fn = objective_fn(static, x, y, chunk_size)
    method = et.Lanczos(max_steps=300, tol=1e-10, warm_start=False)
    return et.sharpness(fn, params, method=method, init=start)


def timed(fn, *args, repeats):
    """`fn(*args)` (compiled by a first call) and the best of `repeats` timings."""
    out = jax.block_until_ready(fn(*args))
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        out = jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - start)
    return out, best


ESTIMATORS = {
    "power": et.PowerIteration(),
    "power_warm": et.PowerIteration(warm_start=True),
    "lanczos": et.Lanczos(warm_start=False),
    "lanczos_warm": et.Lanczos(),
    "lanczos_warm_1e-2": et.Lanczos(tol=1e-2),
}


def power_products_to_target(fn, params, start, target_value, max_iters=1000):
    """Power iteration from `start` (as `PowerIteration.run`) until the estimate is
    within `TARGET` of `target_value`; the products used (`max_iters + 1`: never)."""
    flat_start, unravel = ravel_pytree(start)

    def matvec(v):
        return ravel_pytree(et.hessian_vector_product(fn, params, unravel(v)))[0]

    def far(estimate):
        return jnp.abs(estimate - target_value) > TARGET * jnp.abs(target_value)

    def keep_going(carry):
        k, _, estimate = carry
        return (k == 0) | ((k < max_iters) & far(estimate))

    def iterate(carry):
        k, v, _ = carry
        w = matvec(v)
        return k + 1, w / jnp.linalg.norm(w), jnp.dot(v, w)

    init = (jnp.array(0), flat_start, jnp.zeros((), flat_start.dtype))
    k, _, estimate = jax.lax.while_loop(keep_going, iterate, init)
    return jnp.where(far(estimate), max_iters + 1, k)


def lanczos_ritz_values(fn, params, start, tol, max_steps):
    """`Lanczos.run`'s computation, returning the tridiagonal matrix too."""
    flat_start, unravel = ravel_pytree(start)

    def matvec(v):
        return ravel_pytree(et.hessian_vector_product(fn, params, unravel(v)))[0]

    return lanczos(matvec, flat_start, max_steps=max_steps, tol=tol, k=1)


def first_within(alphas, betas, steps, target_value) -> int:
    """The first Lanczos step whose top Ritz value is within `TARGET`, or steps + 1."""
    for m in range(1, steps + 1):
        t = (
            np.diag(alphas[:m])
            + np.diag(betas[: m - 1], 1)
            + np.diag(betas[: m - 1], -1)
        )
        if abs(np.linalg.eigvalsh(t)[-1] - target_value) <= TARGET * abs(target_value):
            return m
    return steps + 1


def measure(problem: Problem, args) -> list[dict]:
    """Every estimator at every point of the trajectory: one row each."""
    points = trajectory(problem, args)
    static = eqx.filter(problem.model, eqx.is_inexact_array, inverse=True)
    num_params = ravel_pytree(points[0][1])[0].size
    print(f"{problem.name}: {num_params} parameters, {len(points)} points")

    @eqx.filter_jit
    def update(estimator, params, state, key, x, y):
        fn = objective_fn(static, x, y, args.chunk_size)
        return estimator.update(fn, params, state, key)

    @eqx.filter_jit
    def power_oracle(params, start, target_value, x, y):
        fn = objective_fn(static, x, y, args.chunk_size)
        return power_products_to_target(fn, params, start, target_value)

    @eqx.filter_jit
    def lanczos_oracle(estimator, params, start, x, y):
        fn = objective_fn(static, x, y, args.chunk_size)
        # At most the tolerance 1e-3, so the run reaches the target.
        tol = jnp.minimum(estimator.tol, TARGET)
        return lanczos_ritz_values(fn, params, start, tol, estimator.max_steps)

    states = {name: e.init(points[0][1]) for name, e in ESTIMATORS.items()}
    rows, ref_vector = [], None
    for i, (step, params) in enumerate(points):
        flat, unravel = ravel_pytree(params)
        if ref_vector is None:
            start = random_direction(jax.random.key(123), params)
        else:  # the previous reference's eigenvector, mixed with a random direction
            noise = random_direction(jax.random.key(i), params)
            start = jax.tree.map(lambda a, b: a + b, unravel(ref_vector), noise)
        t0 = time.perf_counter()
        ref_value, ref_vector, ref_residual = reference(
            problem, static, params, start, args
        )
        ref_seconds = time.perf_counter() - t0
        key = jax.random.key(1000 + i)
        line = [f"  step {step}: reference {ref_value:.6g} ({ref_seconds:.1f} s)"]
        for name, estimator in ESTIMATORS.items():
            state = states[name]
            # The start `update` uses, for the products-to-target count.
            if estimator.warm_start and np.isfinite(float(state.estimate)):
                start = state.eigenvector
            else:
                start = random_direction(key, params)
            (estimate, new_state, info), seconds = timed(
                update,
                estimator,
                params,
                state,
                key,
                problem.x,
                problem.y,
                repeats=args.repeats,
            )
            states[name] = new_state
            if isinstance(estimator, et.PowerIteration):
                to_target = int(
                    power_oracle(
                        params, start, jnp.asarray(ref_value), problem.x, problem.y
                    )
                )
            else:
                result = lanczos_oracle(estimator, params, start, problem.x, problem.y)
                to_target = first_within(
                    np.asarray(result.alphas, np.float64),
                    np.asarray(result.betas, np.float64),
                    int(result.num_steps),
                    ref_value,
                )
            num_hvps = int(info["num_hvps"])
            error = abs(float(estimate) - ref_value) / abs(ref_value)
            rows.append(
                {
                    "problem": problem.name,
                    "point": i,
                    "step": step,
                    "estimator": name,
                    "reference": ref_value,
                    "reference_relative_residual": ref_residual,
                    "estimate": float(estimate),
                    "relative_error": error,
                    "num_hvps": num_hvps,
                    "seconds": seconds,
                    "converged": bool(info["converged"]),
                    "hvps_to_target": to_target,
                }
            )
            line.append(f"{name} {num_hvps} ({error:.1e}, to 1e-3: {to_target})")
        print(";  ".join(line), flush=True)
    return rows


def summarise(rows: list[dict]) -> list[dict]:
    """One line per problem and estimator, with ratios against `power`."""
    table = []
    problems = dict.fromkeys(r["problem"] for r in rows)
    for problem in problems:
        mine = [r for r in rows if r["problem"] == problem]
        # The first point has no warm start; leave it out so every estimator is
        # compared on the points where tracking runs warm.
        tracked = [r for r in mine if r["point"] > 0]
        lines = {}
        for name in ESTIMATORS:
            rs = [r for r in tracked if r["estimator"] == name]
            hvps = sum(r["num_hvps"] for r in rs)
            seconds = sum(r["seconds"] for r in rs)
            per_hvp = seconds / hvps
            to_target = sum(r["hvps_to_target"] for r in rs)
            lines[name] = {
                "problem": problem,
                "estimator": name,
                "points": len(rs),
                "hvps": hvps,
                "seconds": seconds,
                "median_relative_error": float(
                    np.median([r["relative_error"] for r in rs])
                ),
                "max_relative_error": max(r["relative_error"] for r in rs),
                "fraction_within_1e-3": float(
                    np.mean([r["relative_error"] <= TARGET for r in rs])
                ),
                "hvps_to_1e-3": to_target,
                "never_within_1e-3": sum(r["hvps_to_target"] > 1000 for r in rs),
                "seconds_to_1e-3": to_target * per_hvp,
            }
        base = lines["power"]
        for line in lines.values():
            line["hvps_ratio"] = line["hvps"] / base["hvps"]
            line["seconds_ratio"] = line["seconds"] / base["seconds"]
            line["hvps_to_1e-3_ratio"] = line["hvps_to_1e-3"] / base["hvps_to_1e-3"]
            line["seconds_to_1e-3_ratio"] = (
                line["seconds_to_1e-3"] / base["seconds_to_1e-3"]
            )
        table.extend(lines.values())
    return table


def print_table(table: list[dict]) -> None:
    header = (
        f"{'problem':<14}{'estimator':<19}{'HVPs':>7}{'time s':>9}{'max err':>9}"
        f"{'<=1e-3':>8}{'| to 1e-3: HVPs':>16}{'ratio':>7}{'time s':>9}{'ratio':>7}"
    )
    print(header)
    for r in table:
        print(
            f"{r['problem']:<14}{r['estimator']:<19}{r['hvps']:>7}{r['seconds']:>9.2f}"
            f"{r['max_relative_error']:>9.1e}{r['fraction_within_1e-3']:>8.0%}"
            f"{r['hvps_to_1e-3']:>16}{r['hvps_to_1e-3_ratio']:>7.3f}"
            f"{r['seconds_to_1e-3']:>9.2f}{r['seconds_to_1e-3_ratio']:>7.3f}"
        )


OVERHEAD_CONFIGS = {
    "none": dict(sharpness_every=None),
    "lanczos_warm": dict(sharpness_method=et.Lanczos()),
    "lanczos_warm_no_directional": dict(
        sharpness_method=et.Lanczos(), track_directional_curvature=False
    ),
    "lanczos_warm_1e-2_no_directional": dict(
        sharpness_method=et.Lanczos(tol=1e-2), track_directional_curvature=False
    ),
    "power": dict(sharpness_method=et.PowerIteration()),
}


def overhead(args) -> dict:
    """Wall time of `train` on `mlp_digits` (Polyak-GD and Armijo-GD) with sharpness
    every 10 steps by each configuration of `OVERHEAD_CONFIGS`, against none.

    Every configuration is compiled first; then the runs are timed in turn,
    `args.repeats` rounds, and each keeps its best time (the machine is shared).
    """
    data = et.load_dataset("digits")
    model = et.make_model(
        "mlp", data.input_shape, data.num_classes, key=jax.random.key(args.seed)
    )
    out = {"steps": args.overhead_steps, "sharpness_every": 10, "tuners": {}}
    for tuner in (et.Polyak(), et.Armijo()):

        def go(config):
            kwargs = dict(sharpness_every=10, steps_per_call=100) | config
            return et.train(
                model,
                tuner,
                data,
                args.overhead_steps,
                key=jax.random.key(args.seed),
                **kwargs,
            )

        results = {name: go(config) for name, config in OVERHEAD_CONFIGS.items()}
        times = {name: [] for name in OVERHEAD_CONFIGS}
        for _ in range(args.repeats):
            for name, config in OVERHEAD_CONFIGS.items():
                start = time.perf_counter()
                go(config)
                times[name].append(time.perf_counter() - start)
        lines = {}
        for name, result in results.items():
            hvps = result.history["sharpness_num_hvps"]
            measured = np.isfinite(hvps)
            lines[name] = {
                "seconds": min(times[name]),
                "seconds_all": times[name],
                "mean_hvps_per_measurement": float(hvps[measured].mean())
                if measured.any()
                else 0.0,
            }
        for line in lines.values():
            line["overhead"] = line["seconds"] / lines["none"]["seconds"] - 1
        out["tuners"][type(tuner).__name__] = lines
    # The cost of one product against one gradient, to read the overhead by.
    params, static = eqx.partition(model, eqx.is_inexact_array)

    @jax.jit
    def gradient(p, x, y):
        return jax.value_and_grad(objective_fn(static, x, y, None))(p)

    @jax.jit
    def hvp(p, x, y):
        return et.hessian_vector_product(objective_fn(static, x, y, None), p, p)

    xy = (data.train_x, data.train_y)
    _, gradient_seconds = timed(gradient, params, *xy, repeats=20)
    _, hvp_seconds = timed(hvp, params, *xy, repeats=20)
    out["hvp_over_gradient"] = hvp_seconds / gradient_seconds
    return out


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.sharpness_estimators",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument(
        "--problems",
        nargs="*",
        default=["mlp_digits", "vgg_synthetic"],
        help="none (an empty list) with --overhead times the overhead alone",
    )
    parser.add_argument("--burn-in", type=int, default=500)
    parser.add_argument("--snapshots", type=int, default=21)
    parser.add_argument("--vgg-snapshots", type=int, default=9)
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunk-size", type=int, default=None)
    parser.add_argument("--vgg-examples", type=int, default=128)
    parser.add_argument("--vgg-width-divisor", type=int, default=16)
    parser.add_argument("--dense-max-params", type=int, default=3000)
    parser.add_argument("--overhead", action="store_true")
    parser.add_argument("--overhead-steps", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", type=Path, default=Path("results/sharpness_estimators")
    )
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    config["estimators"] = {name: repr(e) for name, e in ESTIMATORS.items()}
    run = RunDirectory(args.out, config, seed=args.seed)
    all_rows = []
    for name in args.problems:
        rows = measure(make_problem(name, args), args)
        all_rows.extend(rows)
        with (args.out / f"{name}.csv").open("w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    table = summarise(all_rows)
    summary = {"table": table}
    if table:
        with (args.out / "table.csv").open("w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=list(table[0]))
            writer.writeheader()
            writer.writerows(table)
        print()
        print_table(table)
    if args.overhead:
        print("\nTraining time with sharpness every 10 steps (mlp_digits, Polyak):")
        summary["overhead"] = overhead(args)
        (args.out / "overhead.json").write_text(
            json.dumps(summary["overhead"], indent=2) + "\n"
        )
        for tuner, lines in summary["overhead"]["tuners"].items():
            for name, line in lines.items():
                print(
                    f"  {tuner:<8}{name:<34}{line['seconds']:>8.2f} s  overhead "
                    f"{line['overhead']:>7.1%}  HVPs/measurement "
                    f"{line['mean_hvps_per_measurement']:.1f}"
                )
        print(
            "  one Hessian-vector product costs "
            f"{summary['overhead']['hvp_over_gradient']:.2f} gradient evaluations"
        )
    run.finish("completed", summary)
    (args.out / "table.json").write_text(
        json.dumps({"config": config, "meta": run.meta, **summary}, indent=2) + "\n"
    )
    return summary


if __name__ == "__main__":
    main()
