"""The `estimators` part: every estimator along the same trajectories, against the
float64 reference, from the start its own `update` uses (see the package's
docstring)."""

import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

import eqtuners as et
from eqtuners.internal import (
    flat_hessian,
    lanczos,
    lobpcg,
    random_block,
    random_direction,
    recycled_ritz,
    start_block,
)

from .peers import JaxLOBPCG
from .problems import (
    TARGET,
    TUNERS,
    Problem,
    make_problem,
    objective,
    reference,
    timed,
    trajectory,
    write_csv,
)

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
    "recycled_b2": et.RecycledRitz(2),
    "recycled_b3": et.RecycledRitz(3),
    "recycled_b3_1e-2": et.RecycledRitz(3, tol=1e-2),
    "recycled_b3_nograd": et.RecycledRitz(3, use_grad=False),
}

ORACLE_ITERS = 40  # LOBPCG iterations searched for the first within the target


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


def make_oracles(static, chunk_size):
    """Compiled functions that replay an estimator's start to find the products it
    needs to first come within `TARGET` of the reference."""

    @eqx.filter_jit
    def power(params, start, target_value, x, y):
        fn = objective(static, params, x, y, chunk_size)
        return power_products_to_target(fn, params, start, target_value)

    @eqx.filter_jit
    def lanczos_run(estimator, params, start, x, y):
        fn = objective(static, params, x, y, chunk_size)
        matvec, _, from_tree = flat_hessian(et.hessian_operator(fn, params))
        tol = jnp.minimum(estimator.tol, TARGET)  # so that the run reaches it
        return lanczos(matvec, from_tree(start), max_steps=estimator.max_steps, tol=tol)

    @eqx.filter_jit
    def lobpcg_history(estimator, params, state, key, x, y):
        fn = objective(static, params, x, y, chunk_size)
        matvec, _, from_tree = flat_hessian(et.hessian_operator(fn, params))
        block = start_block(params, state, key)

        def matmat(vectors):
            return jax.lax.map(matvec, vectors.T).T

        start = jax.vmap(from_tree)(block).T
        active = None if estimator.iterate_guards else estimator.k
        return lobpcg(
            matmat, start, k=1, tol=0.0, max_iters=ORACLE_ITERS, active=active
        ).history

    @eqx.filter_jit
    def recycled_history(estimator, params, state, key, grad, x, y):
        fn = objective(static, params, x, y, chunk_size)
        matvec, _, from_tree = flat_hessian(et.hessian_operator(fn, params))
        if estimator.warm_start:
            block = start_block(params, state, key)
        else:
            block = random_block(key, params, estimator.block_size)
        candidates = jax.vmap(from_tree)(block)
        if estimator.use_grad:
            candidates = jnp.concatenate([candidates, from_tree(grad)[None]])
        return recycled_ritz(
            matvec,
            candidates,
            k=1,
            b=estimator.block_size,
            tol=0.0,
            max_size=estimator.max_size,
        ).history

    return {
        "power": power,
        "lanczos": lanczos_run,
        "lobpcg": lobpcg_history,
        "recycled": recycled_history,
    }


def to_target(estimator, oracles, params, state, key, grad, ref_value, x, y):
    """The products `estimator` needs, from the start its `update` uses, to first
    come within `TARGET` of the reference (a large number: never; NaN: not
    measured)."""
    if isinstance(estimator, et.RecycledRitz):
        history = np.asarray(
            oracles["recycled"](estimator, params, state, key, grad, x, y)
        )
        close = np.abs(history - ref_value) <= TARGET * abs(ref_value)
        within = np.flatnonzero(close)
        return int(within[0]) + 1 if within.size else estimator.max_size + 1
    if not isinstance(estimator, et.PowerIteration | et.Lanczos | et.LOBPCG):
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
    static = problem.static()
    num_params = ravel_pytree(points[0][1])[0].size
    print(
        f"{problem.name}, {tuner_name}: {num_params} parameters, {len(points)} points"
    )
    estimators = {name: ESTIMATORS[name] for name in args.estimators}

    @eqx.filter_jit
    def update(estimator, params, state, key, grad, x, y):
        # As in `train`: one operator for the measurement (linearised when it
        # fits), and the step's gradient, which the training step computed.
        fn = objective(static, params, x, y, args.chunk_size)
        operator = et.hessian_operator(fn, params)
        return estimator.update(fn, params, state, key, operator=operator, grad=grad)

    @eqx.filter_jit
    def gradient(params, x, y):
        return jax.grad(objective(static, params, x, y, args.chunk_size))(params)

    oracles = make_oracles(static, args.chunk_size)
    states = {name: e.init(points[0][1]) for name, e in estimators.items()}
    rows, ref_vector = [], None
    x, y = problem.x, problem.y
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
        grad = gradient(params, x, y)
        line = [
            f"  step {step}: reference {ref_value:.6g} (gap "
            f"{(ref_value - ref_second) / ref_value:.2g}, turn {turn:.2g}; "
            f"{ref_seconds:.1f} s)"
        ]
        for name, estimator in estimators.items():
            state = states[name]
            hvps_to_target = to_target(
                estimator, oracles, params, state, key, grad, ref_value, x, y
            )
            (estimate, new_state, info), seconds = timed(
                update,
                estimator,
                params,
                state,
                key,
                grad,
                x,
                y,
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
