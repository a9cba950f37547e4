"""The `power_residuals` part: the residuals behind `PowerIteration`'s
`residual_tol` (see the package's docstring)."""

import argparse
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import eqtuners as et

from .problems import TARGET, TUNERS, make_problem, objective, reference, trajectory


def part_power_residuals(args, out: Path) -> dict:
    problem = make_problem("mlp_digits", args)
    static = problem.static()
    x, y = problem.x, problem.y

    @eqx.filter_jit
    def power(params, key, x, y):
        return et.sharpness(objective(static, params, x, y, None), params, key=key)

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
    failures = _quadratic_failures()
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


def _quadratic_failures() -> list[dict]:
    """Power iteration on the quadratics whose two top eigenvalues have nearly
    opposite values: the residuals of the runs that swing between them."""
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
    return failures
