"""Sharpness estimators along training runs, side by side at the same accuracy, and
the cost of tracking the sharpness inside `train`.

    python -m benchmarks.sharpness_estimators                     # all parts
    python -m benchmarks.sharpness_estimators --parts estimators --snapshots 10
    python -m benchmarks.sharpness_estimators --parts overhead reuse

Four parts (`--parts`), each writing its own files under `--out`:

- `estimators`: problems (`mlp_digits`: the paper's MLP, 40,714 parameters, on the
  1437 digits images; `vgg_synthetic`: VGG11 without normalisation, widths divided
  by `--vgg-width-divisor`, on `--vgg-examples` synthetic CIFAR-shaped images),
  trained full batch by Polyak-GD and Armijo-GD (`--tuners`, the paper's defaults,
  weight decay 1e-4), with the parameters kept every `--every` steps after
  `--burn-in` steps: the tracking schedule. At every kept point the reference is the
  top eigenvalue from float64 Lanczos run to a relative residual of 1e-10 (or the
  dense Hessian up to `--dense-max-params` parameters). Then, in float32 as in
  training, each estimator of `--estimators` (`ESTIMATORS`) measures the sharpness
  through its `update`, carrying its state from point to point as `train` does:
  the products and the wall time of its own stopping rule, the relative error
  reached, and the products it needs to first come within 1e-3 of the reference
  (for power iteration by iterating from the same start, for Lanczos from the Ritz
  values of its tridiagonal matrix, for LOBPCG from its Ritz values per iteration).
  Writes `estimators.csv` (one row per point and estimator) and `table.csv` (one
  line per problem, tuner and estimator; the first point, a cold start for every
  estimator, is left out).
- `overhead`: the wall time of `train` on `mlp_digits` (`--overhead-tuners`,
  Polyak-GD by default; `--overhead-steps` steps) with the sharpness every 10
  steps by each configuration of `OVERHEAD_CONFIGS`, against no tracking; best of
  `--repeats` rounds taken in turn. Writes `overhead.json`.
- `reuse`: at a point of the Polyak-GD run on `mlp_digits`, what a measurement step
  could save by taking the training step's gradient from its first product (the
  primal output of `jax.jvp(jax.grad(fn), ...)`), and from computing the curvature
  along the gradient with `value_grad_and_curvature`. Writes `reuse.json`.
- `power_residuals`: the relative residuals `||Hv - lambda v|| / |lambda|` of the
  paper's power iteration (random starts) along Polyak-GD and Armijo-GD on
  `mlp_digits` against the float64 reference, and on the quadratics with spectra
  {3, -3, 0.5, 0.1} and {3, -2.97, 0.5, 0.1}: the measurements behind
  `PowerIteration`'s `residual_tol`. Writes `power_residuals.json`.

Every part records the run's meta (versions, device, git revision) in
`OUT/meta.json`; `OUT/summary.json` gathers the tables.
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
from jax.experimental.sparse.linalg import lobpcg_standard
from jax.flatten_util import ravel_pytree

import eqtuners as et
from eqtuners.internal import (
    flat_hessian,
    lanczos,
    lobpcg,
    random_direction,
    value_grad_and_curvature,
)

from ._rundir import RunDirectory

TARGET = 1e-3
TUNERS = {"polyak": et.Polyak, "armijo": et.Armijo}


# --- The one call of `train` --------------------------------------------------------


def run_train(model, tuner, data, num_steps, *, seed, estimator=None, every=10):
    """Every call of `train` in this benchmark goes through here (port it when the
    API of `train` changes): `num_steps` full-batch steps, measuring the sharpness
    by `estimator` every `every` steps (none when `estimator` is None), without the
    directional curvature."""
    if estimator is None:
        measure = None
    else:
        measure = et.Measurements(
            every, sharpness=estimator, directional_curvature=False
        )
    return et.train(
        model,
        tuner,
        data,
        num_steps,
        key=jax.random.key(seed),
        steps_per_call=min(100, num_steps),
        measure=measure,
        progress=False,
    )


# --- JAX's LOBPCG, as is, behind the estimator interface ----------------------------


class JaxLOBPCG(et.AbstractSharpnessEstimator):
    """`jax.experimental.sparse.linalg.lobpcg_standard` as an estimator, warm-started
    from the previous block like `et.LOBPCG`.

    Its rule stops when every one of the `block_size` pairs has `||A v - theta v|| <
    tol * 10 n (theta + ||A v||)`; `tol = target / (20 n)` makes that a relative
    residual of about `target` (`||A v|| ~ theta` near convergence). Its products: `b`
    for the first block, then `4 b` per iteration (`A` applied to the whole basis
    `[X, P, R]`, then to the new `X`). It returns no residual (NaN here) and stops
    without saying whether it converged (`converged` here: it stopped before `m`
    iterations).
    """

    block_size: int = eqx.field(static=True)
    target: float = eqx.field(static=True)
    max_iters: int = eqx.field(static=True)
    warm_start: bool = eqx.field(static=True)
    k: int = eqx.field(static=True)  # 1: `top_k` holds the estimate alone

    def __init__(self, block_size=2, target=TARGET, max_iters=100):
        self.block_size = block_size
        self.target = target
        self.max_iters = max_iters
        self.warm_start = True
        self.k = 1

    def _solve(self, fn, params, block):
        matvec, to_tree, from_tree = flat_hessian(fn, params)
        start = jax.vmap(from_tree)(block).T
        n = start.shape[0]

        def matmat(vectors):  # one product after another, as et.LOBPCG on CPU
            return jax.lax.map(matvec, vectors.T).T

        theta, vectors, iters = lobpcg_standard(
            matmat, start, m=self.max_iters, tol=self.target / (20 * n)
        )
        info = {
            "num_hvps": self.block_size * (1 + 4 * iters),
            "converged": iters < self.max_iters,
            "residual": jnp.full((), jnp.nan, theta.dtype),
            "top_k": theta[:1],
        }
        return theta[0], jax.vmap(to_tree)(vectors.T), info

    def _random_block(self, key, params):
        keys = jax.random.split(key, self.block_size)
        return jax.vmap(lambda key: random_direction(key, params))(keys)

    def run(self, fn, params, start=None, *, key=None):
        block = self._random_block(jax.random.key(0) if key is None else key, params)
        if start is not None:
            block = jax.tree.map(lambda b, s: b.at[0].set(s), block, start)
        estimate, block, info = self._solve(fn, params, block)
        return estimate, jax.tree.map(lambda v: v[0], block), info

    def init(self, params):
        return et.LOBPCG(self.block_size).init(params)

    def update(self, fn, params, state, key):
        block = start_block(self, params, state, key)
        estimate, block, info = self._solve(fn, params, block)
        top = jax.tree.map(lambda v: v[0], block)
        others = jax.tree.map(lambda v: v[1:], block)
        return estimate, et.SharpnessState(top, estimate, others), info


def start_block(estimator, params, state, key):
    """The block that `et.LOBPCG.update` starts from: the carried one when it holds
    a finite estimate and nonzero vectors, else `block_size` random directions."""
    keys = jax.random.split(key, estimator.block_size)
    block = jax.vmap(lambda key: random_direction(key, params))(keys)
    previous = jax.tree.map(
        lambda v, o: jnp.concatenate([v[None], o]), state.eigenvector, state.others
    )
    norms = jax.vmap(lambda t: jnp.linalg.norm(ravel_pytree(t)[0]))(previous)
    warm = jnp.isfinite(state.estimate) & jnp.all(norms > 0)
    return jax.tree.map(lambda a, b: jnp.where(warm, a, b), previous, block)


ESTIMATORS = {
    "power": et.PowerIteration(),
    "lanczos_warm": et.Lanczos(),
    "lanczos_warm_1e-2": et.Lanczos(tol=1e-2),
    "jax_lobpcg_b2": JaxLOBPCG(2),
    "lobpcg_b2": et.LOBPCG(2),
    "lobpcg_b3": et.LOBPCG(3),
    "lobpcg_b2_1e-2": et.LOBPCG(2, tol=1e-2),
    "lobpcg_b3_1e-2": et.LOBPCG(3, tol=1e-2),
    "lobpcg_b2_top_1e-2": et.LOBPCG(2, tol=1e-2, iterate_guards=False),
}


# --- Problems and trajectories ------------------------------------------------------


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


def trajectory(problem: Problem, tuner, args, snapshots=None) -> list:
    """`(step, params)` every `args.every` steps of `tuner` after `args.burn_in`
    steps, `snapshots` of them (default `problem.snapshots`)."""
    data = (problem.x, problem.y)
    model = problem.model
    if args.burn_in:
        model = run_train(model, tuner, data, args.burn_in, seed=args.seed).model
    points = []
    for i in range(problem.snapshots if snapshots is None else snapshots):
        params = eqx.filter(model, eqx.is_inexact_array)
        points.append((args.burn_in + i * args.every, params))
        model = run_train(model, tuner, data, args.every, seed=args.seed).model
    return points


def objective_fn(static, x, y, chunk_size):
    return lambda p: et.objective(eqx.combine(p, static), x, y, chunk_size=chunk_size)


def reference(problem, static, params, start, args):
    """The top eigenvalue and eigenvector in float64 (Lanczos to a relative
    residual of 1e-10, or the dense Hessian for small models): `(value, vector,
    relative residual, second eigenvalue)`."""
    with jax.enable_x64(True):
        to64 = lambda t: jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), t)  # noqa: E731
        params64, x64 = to64(params), jnp.asarray(problem.x, jnp.float64)
        fn = objective_fn(static, x64, problem.y, args.chunk_size)
        flat, unravel = ravel_pytree(params64)
        if flat.size <= args.dense_max_params:
            hessian = jax.jit(jax.hessian(lambda v: fn(unravel(v))))(flat)
            values, vectors = np.linalg.eigh(np.asarray(hessian))
            vector = np.asarray(vectors[:, -1], np.float32)
            return float(values[-1]), vector, 0.0, float(values[-2])
        estimate, info = _reference_lanczos(
            static, params64, to64(start), x64, problem.y, args.chunk_size
        )
        vector = np.asarray(ravel_pytree(info["eigenvector"])[0], np.float32)
        residual = float(info["residual"] / abs(estimate))
        return float(estimate), vector, residual, float(info["top_k"][1])


@eqx.filter_jit
def _reference_lanczos(static, params, start, x, y, chunk_size):
    # The data are arguments, so that one compile serves every point.
    fn = objective_fn(static, x, y, chunk_size)
    method = et.Lanczos(max_steps=300, tol=1e-10, k=2, warm_start=False)
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


# --- Products to the target, from the start each estimator used ---------------------


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


ORACLE_ITERS = 40  # LOBPCG iterations searched for the first within the target


def to_target(name, estimator, oracles, params, state, key, ref_value, x, y):
    """The products `estimator` needs, from the start its `update` uses, to first
    come within `TARGET` of the reference (a large number: never; NaN: not
    measured)."""
    if isinstance(estimator, JaxLOBPCG):
        return float("nan")
    if isinstance(estimator, et.PowerIteration | et.Lanczos):
        if estimator.warm_start and np.isfinite(float(state.estimate)):
            start = state.eigenvector
        else:
            start = random_direction(key, params)
        if isinstance(estimator, et.PowerIteration):
            return int(oracles["power"](params, start, jnp.asarray(ref_value), x, y))
        result = oracles["lanczos"](estimator, params, start, x, y)
        return first_within(
            np.asarray(result.alphas, np.float64),
            np.asarray(result.betas, np.float64),
            int(result.num_steps),
            ref_value,
        )
    history = np.asarray(oracles["lobpcg"](estimator, params, state, key, x, y))
    within = np.flatnonzero(np.abs(history - ref_value) <= TARGET * abs(ref_value))
    b = estimator.block_size
    per_iteration = b if estimator.iterate_guards else estimator.k
    return b + per_iteration * (int(within[0]) if within.size else ORACLE_ITERS + 1)


def measure(problem: Problem, tuner_name: str, args) -> list[dict]:
    """Every estimator at every point of the trajectory: one row each."""
    points = trajectory(problem, TUNERS[tuner_name](), args)
    static = eqx.filter(problem.model, eqx.is_inexact_array, inverse=True)
    num_params = ravel_pytree(points[0][1])[0].size
    print(
        f"{problem.name}, {tuner_name}: {num_params} parameters, {len(points)} points"
    )
    estimators = {name: ESTIMATORS[name] for name in args.estimators}

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
        matvec, _, from_tree = flat_hessian(fn, params)
        tol = jnp.minimum(estimator.tol, TARGET)  # so that the run reaches it
        return lanczos(matvec, from_tree(start), max_steps=estimator.max_steps, tol=tol)

    @eqx.filter_jit
    def lobpcg_oracle(estimator, params, state, key, x, y):
        fn = objective_fn(static, x, y, args.chunk_size)
        matvec, _, from_tree = flat_hessian(fn, params)
        block = start_block(estimator, params, state, key)

        def matmat(vectors):
            return jax.lax.map(matvec, vectors.T).T

        start = jax.vmap(from_tree)(block).T
        active = None if estimator.iterate_guards else estimator.k
        return lobpcg(
            matmat, start, k=1, tol=0.0, max_iters=ORACLE_ITERS, active=active
        ).history

    oracles = {
        "power": power_oracle,
        "lanczos": lanczos_oracle,
        "lobpcg": lobpcg_oracle,
    }
    states = {name: e.init(points[0][1]) for name, e in estimators.items()}
    rows, ref_vector = [], None
    for i, (step, params) in enumerate(points):
        flat, unravel = ravel_pytree(params)
        if ref_vector is None:
            start = random_direction(jax.random.key(123), params)
        else:  # the previous reference's eigenvector, mixed with a random direction
            noise = random_direction(jax.random.key(i), params)
            start = jax.tree.map(lambda a, b: a + b, unravel(ref_vector), noise)
        t0 = time.perf_counter()
        previous_vector = ref_vector
        ref_value, ref_vector, ref_residual, ref_second = reference(
            problem, static, params, start, args
        )
        ref_seconds = time.perf_counter() - t0
        # How far the top eigenvector turned since the last point (1 - |cos|).
        turn = (
            float("nan")
            if previous_vector is None
            else 1 - abs(float(np.dot(previous_vector, ref_vector)))
        )
        key = jax.random.key(1000 + i)
        line = [
            f"  step {step}: reference {ref_value:.6g} (gap "
            f"{(ref_value - ref_second) / ref_value:.2g}, turn {turn:.2g}; "
            f"{ref_seconds:.1f} s)"
        ]
        for name, estimator in estimators.items():
            state = states[name]
            hvps_to_target = to_target(
                name, estimator, oracles, params, state, key, ref_value, *xy(problem)
            )
            (estimate, new_state, info), seconds = timed(
                update,
                estimator,
                params,
                state,
                key,
                *xy(problem),
                repeats=args.repeats,
            )
            states[name] = new_state
            num_hvps = int(info["num_hvps"])
            error = abs(float(estimate) - ref_value) / abs(ref_value)
            rows.append(
                {
                    "problem": problem.name,
                    "tuner": tuner_name,
                    "point": i,
                    "step": step,
                    "estimator": name,
                    "reference": ref_value,
                    "reference_relative_residual": ref_residual,
                    "reference_relative_gap": (ref_value - ref_second) / ref_value,
                    "eigenvector_turn": turn,
                    "estimate": float(estimate),
                    "relative_error": error,
                    "relative_residual": float(info["residual"]) / abs(float(estimate)),
                    "num_hvps": num_hvps,
                    "seconds": seconds,
                    "converged": bool(info["converged"]),
                    "hvps_to_target": hvps_to_target,
                }
            )
            line.append(f"{name} {num_hvps} ({error:.1e}; to 1e-3: {hvps_to_target})")
        print(";  ".join(line), flush=True)
    return rows


def xy(problem):
    return problem.x, problem.y


def summarise(rows: list[dict]) -> list[dict]:
    """One line per problem, tuner and estimator, with ratios against `power`."""
    table = []
    groups = dict.fromkeys((r["problem"], r["tuner"]) for r in rows)
    for problem, tuner in groups:
        # The first point is a cold start for everyone: left out, so that every
        # estimator is compared on the points where tracking runs warm.
        tracked = [
            r
            for r in rows
            if r["problem"] == problem and r["tuner"] == tuner and r["point"] > 0
        ]
        lines = {}
        for name in dict.fromkeys(r["estimator"] for r in tracked):
            rs = [r for r in tracked if r["estimator"] == name]
            hvps = np.array([r["num_hvps"] for r in rs], float)
            seconds = np.array([r["seconds"] for r in rs])
            errors = np.array([r["relative_error"] for r in rs])
            to_target_ = np.array([r["hvps_to_target"] for r in rs], float)
            lines[name] = {
                "problem": problem,
                "tuner": tuner,
                "estimator": name,
                "points": len(rs),
                "hvps_per_measurement": hvps.mean(),
                "seconds_per_measurement": seconds.mean(),
                "median_relative_error": float(np.median(errors)),
                "max_relative_error": float(errors.max()),
                "fraction_within_1e-3": float(np.mean(errors <= TARGET)),
                "fraction_converged": float(np.mean([r["converged"] for r in rs])),
                "hvps_to_1e-3_per_measurement": to_target_.mean(),
            }
        base = lines.get("power")
        for line in lines.values():
            for key in ("hvps_per_measurement", "seconds_per_measurement"):
                line[key.replace("per_measurement", "ratio")] = (
                    line[key] / base[key] if base else float("nan")
                )
        table.extend(lines.values())
    return table


def print_table(table: list[dict]) -> None:
    print(
        f"{'problem':<14}{'tuner':<8}{'estimator':<19}{'HVPs':>7}{'ms':>8}"
        f"{'ratio':>7}{'med err':>9}{'max err':>9}{'<=1e-3':>8}{'conv':>6}"
        f"{'to 1e-3':>9}"
    )
    for r in table:
        print(
            f"{r['problem']:<14}{r['tuner']:<8}{r['estimator']:<19}"
            f"{r['hvps_per_measurement']:>7.1f}"
            f"{1e3 * r['seconds_per_measurement']:>8.1f}{r['seconds_ratio']:>7.3f}"
            f"{r['median_relative_error']:>9.1e}{r['max_relative_error']:>9.1e}"
            f"{r['fraction_within_1e-3']:>8.0%}{r['fraction_converged']:>6.0%}"
            f"{r['hvps_to_1e-3_per_measurement']:>9.1f}"
        )


def part_estimators(args, out: Path) -> dict:
    rows = []
    for problem_name in args.problems:
        for tuner_name in args.tuners:
            rows.extend(measure(make_problem(problem_name, args), tuner_name, args))
    write_csv(out / "estimators.csv", rows)
    table = summarise(rows)
    write_csv(out / "table.csv", table)
    print()
    print_table(table)
    return {"table": table}


def write_csv(path: Path, rows: list[dict]) -> None:
    if not rows:
        return
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


# --- Training time with tracking ----------------------------------------------------

OVERHEAD_CONFIGS = {
    "none": None,
    "power": et.PowerIteration(),
    "lanczos_warm": et.Lanczos(),
    "lanczos_warm_1e-2": et.Lanczos(tol=1e-2),
    "jax_lobpcg_b2": JaxLOBPCG(2),
    "lobpcg_b2": et.LOBPCG(2),
    "lobpcg_b2_1e-2": et.LOBPCG(2, tol=1e-2),
    "lobpcg_b2_top_1e-2": et.LOBPCG(2, tol=1e-2, iterate_guards=False),
}


def part_overhead(args, out: Path) -> dict:
    """Wall time of `train` on `mlp_digits` with sharpness every 10 steps by each
    configuration of `OVERHEAD_CONFIGS` (no directional curvature), against none.

    Every configuration is compiled first; then the runs are timed in turn,
    `args.repeats` rounds, and each keeps its best time (the machine is shared).
    """
    data = et.load_dataset("digits")
    model = et.make_model(
        "mlp", data.input_shape, data.num_classes, key=jax.random.key(args.seed)
    )
    configs = {name: OVERHEAD_CONFIGS[name] for name in args.overhead_configs}
    result = {"steps": args.overhead_steps, "sharpness_every": 10, "tuners": {}}
    print(f"\nTraining time, sharpness every 10 steps ({args.overhead_steps} steps):")
    for tuner_name in args.overhead_tuners:
        tuner = TUNERS[tuner_name]()

        def go(estimator):
            return run_train(
                model,
                tuner,
                data,
                args.overhead_steps,
                seed=args.seed,
                estimator=estimator,
            )

        results = {name: go(estimator) for name, estimator in configs.items()}
        times = {name: [] for name in configs}
        for _ in range(args.repeats):
            for name, estimator in configs.items():
                start = time.perf_counter()
                go(estimator)
                times[name].append(time.perf_counter() - start)
        lines = {}
        for name, run in results.items():
            hvps = run.history["sharpness_num_hvps"]
            measured = np.isfinite(hvps)
            lines[name] = {
                "seconds": min(times[name]),
                "seconds_all": times[name],
                "measurements": int(measured.sum()),
                "hvps_per_measurement": float(hvps[measured].mean())
                if measured.any()
                else 0.0,
            }
        for name, line in lines.items():
            line["overhead"] = line["seconds"] / lines["none"]["seconds"] - 1
            print(
                f"  {tuner_name:<8}{name:<22}{line['seconds']:>8.2f} s  overhead "
                f"{line['overhead']:>7.1%}  HVPs/measurement "
                f"{line['hvps_per_measurement']:.1f}"
            )
        result["tuners"][tuner_name] = lines
    return result


# --- What a measurement step could share with the training step ---------------------


def part_reuse(args, out: Path) -> dict:
    """Costs, in gradients, of the pieces of a measurement step at a point of the
    Polyak-GD run on `mlp_digits` (after `--burn-in` steps), best of 20 rounds
    taken in turn."""
    problem = make_problem("mlp_digits", args)
    params = trajectory(problem, et.Polyak(), args, snapshots=1)[0][1]
    static = eqx.filter(problem.model, eqx.is_inexact_array, inverse=True)
    x, y = xy(problem)
    fn = objective_fn(static, x, y, None)
    flat, unravel = ravel_pytree(params)
    vectors = jax.random.normal(jax.random.key(0), (2, flat.size))

    def product(p, v, with_grad):
        grad, tangent = jax.jvp(jax.grad(fn), (p,), (unravel(v),))
        return (grad, tangent) if with_grad else tangent

    pieces = {
        "value_and_grad": lambda p, v: jax.value_and_grad(fn)(p),
        "hvp": lambda p, v: product(p, v[0], False),
        "hvp_and_grad": lambda p, v: product(p, v[0], True),
        "two_hvps": lambda p, v: jax.lax.map(lambda u: product(p, u, False), v),
        "two_hvps_and_grad": lambda p, v: (
            product(p, v[0], True),
            product(p, v[1], False),
        ),
        "grad_then_directional": lambda p, v: et.directional_curvature(
            fn, p, jax.grad(fn)(p)
        ),
        "value_grad_and_curvature": lambda p, v: value_grad_and_curvature(fn, p),
    }
    compiled = {name: jax.jit(f) for name, f in pieces.items()}
    for f in compiled.values():
        jax.block_until_ready(f(params, vectors))
    best = {name: np.inf for name in compiled}
    for _ in range(20):
        for name, f in compiled.items():
            start = time.perf_counter()
            jax.block_until_ready(f(params, vectors))
            best[name] = min(best[name], time.perf_counter() - start)
    gradient = best["value_and_grad"]
    costs = {name: t / gradient for name, t in best.items()}
    saving_product = costs["value_and_grad"] - (costs["hvp_and_grad"] - costs["hvp"])
    # Today's loop: the step's value and gradient, then (in the measurement's
    # branch, not fused with it) one product along the gradient.
    saving_directional = (
        costs["value_and_grad"] + costs["hvp"] - costs["value_grad_and_curvature"]
    )
    result = {
        "seconds": best,
        "in_gradients": costs,
        # The training step's value and gradient taken from the measurement's first
        # product: what that saves per measurement, in gradients.
        "saving_gradient_from_first_product": saving_product,
        # The step's value and gradient and the curvature along it from one
        # linearised pass, instead of a gradient and then a product.
        "saving_directional_with_gradient": saving_directional,
    }
    print("\nCosts in gradients (value and gradient = 1):")
    for name, c in costs.items():
        print(f"  {name:<28}{c:>6.2f}  ({1e3 * best[name]:.2f} ms)")
    print(
        f"  saving per measurement, the gradient from the first product: "
        f"{saving_product:.2f} gradients ({saving_product / 10:.1%} of 10 steps)"
    )
    print(
        f"  the step's gradient and the curvature along it in one pass: saves "
        f"{saving_directional:.2f} gradients per measurement"
    )
    return result


# --- The residuals behind PowerIteration's residual_tol -----------------------------


def part_power_residuals(args, out: Path) -> dict:
    problem = make_problem("mlp_digits", args)
    static = eqx.filter(problem.model, eqx.is_inexact_array, inverse=True)
    x, y = xy(problem)

    @eqx.filter_jit
    def power(params, key, x, y):
        return et.sharpness(objective_fn(static, x, y, None), params, key=key)

    rows = []
    changes = {"burn_in": 0, "every": args.residual_every}
    steps = argparse.Namespace(**(vars(args) | changes))
    for tuner_name in args.tuners:
        points = trajectory(
            problem, TUNERS[tuner_name](), steps, snapshots=args.residual_points
        )
        for i, (step, params) in enumerate(points):
            for seed in range(3):
                estimate, info = power(params, jax.random.key(100 * i + seed), x, y)
                start = info["eigenvector"]
                ref = reference(problem, static, params, start, args)[0]
                rows.append(
                    {
                        "tuner": tuner_name,
                        "step": step,
                        "relative_residual": float(info["residual"])
                        / abs(float(estimate)),
                        "relative_error": abs(float(estimate) - ref) / abs(ref),
                        "converged": bool(info["converged"]),
                    }
                )
    residuals = np.array([r["relative_residual"] for r in rows])
    errors = np.array([r["relative_error"] for r in rows])
    within = errors <= TARGET
    failures = []
    with jax.enable_x64(True):
        for second in (-3.0, -2.97):
            rng = np.random.default_rng(0)  # as tests.helpers.random_quadratic(0, 4)
            basis, _ = np.linalg.qr(rng.normal(size=(4, 4)))
            matrix = basis @ np.diag([3.0, second, 0.5, 0.1]) @ basis.T
            matrix = jnp.asarray((matrix + matrix.T) / 2)
            for key in range(4):
                estimate, info = et.sharpness(
                    lambda w: 0.5 * w @ matrix @ w,
                    jnp.zeros(4),
                    key=jax.random.key(key),
                )
                failures.append(
                    {
                        "spectrum": [3.0, second, 0.5, 0.1],
                        "key": key,
                        "estimate": float(estimate),
                        "relative_residual": float(info["residual"])
                        / abs(float(estimate)),
                        "converged": bool(info["converged"]),
                    }
                )
    result = {
        "runs": len(rows),
        "max_relative_residual": float(residuals.max()),
        "median_relative_residual": float(np.median(residuals)),
        "runs_within_1e-3": int(within.sum()),
        "max_relative_residual_within_1e-3": float(residuals[within].max())
        if within.any()
        else None,
        "max_relative_error": float(errors.max()),
        "fraction_converged": float(np.mean([r["converged"] for r in rows])),
        "failures": failures,
        "rows": rows,
    }
    print(
        f"\nPower iteration along training ({len(rows)} runs): relative residual "
        f"max {result['max_relative_residual']:.3g}, median "
        f"{result['median_relative_residual']:.3g}; within 1e-3 of the top: "
        f"{result['runs_within_1e-3']}, their max residual "
        f"{result['max_relative_residual_within_1e-3']}; max error "
        f"{result['max_relative_error']:.3g}"
    )
    for f in failures:
        print(
            f"  spectrum {f['spectrum']}, key {f['key']}: estimate "
            f"{f['estimate']:.3f}, relative residual {f['relative_residual']:.3f}, "
            f"converged {f['converged']}"
        )
    return result


# --- Command line -------------------------------------------------------------------

PARTS = {
    "estimators": part_estimators,
    "overhead": part_overhead,
    "reuse": part_reuse,
    "power_residuals": part_power_residuals,
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.sharpness_estimators",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("--parts", nargs="*", default=list(PARTS), choices=list(PARTS))
    parser.add_argument("--problems", nargs="*", default=["mlp_digits"])
    parser.add_argument(
        "--tuners", nargs="*", default=["polyak", "armijo"], choices=list(TUNERS)
    )
    parser.add_argument(
        "--estimators", nargs="*", default=list(ESTIMATORS), choices=list(ESTIMATORS)
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
    parser.add_argument("--overhead-steps", type=int, default=1000)
    parser.add_argument(
        "--overhead-tuners", nargs="*", default=["polyak"], choices=list(TUNERS)
    )
    parser.add_argument(
        "--overhead-configs",
        nargs="*",
        default=list(OVERHEAD_CONFIGS),
        choices=list(OVERHEAD_CONFIGS),
    )
    parser.add_argument("--residual-points", type=int, default=16)
    parser.add_argument("--residual-every", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", type=Path, default=Path("results/sharpness_estimators")
    )
    args = parser.parse_args(argv)
    if "none" not in args.overhead_configs:
        args.overhead_configs = ["none", *args.overhead_configs]
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    config["estimator_settings"] = {name: repr(e) for name, e in ESTIMATORS.items()}
    run = RunDirectory(args.out, config)
    run.start({"seed": args.seed})
    summary = {}
    for part in args.parts:
        summary[part] = PARTS[part](args, args.out)
        (args.out / f"{part}.json").write_text(
            json.dumps(summary[part], indent=2, default=float) + "\n"
        )
    brief = {k: v for k, v in summary.items() if k != "power_residuals"}
    run.set_status("completed", summary=brief)
    everything = {"config": config, "meta": run.meta, **summary}
    (args.out / "summary.json").write_text(
        json.dumps(everything, indent=2, default=float) + "\n"
    )
    return summary


if __name__ == "__main__":
    main()
