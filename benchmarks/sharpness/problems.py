"""What the parts of the estimator benchmark share: the problems, the training runs
that give their trajectories, the float64 reference, and timing."""

import csv
import dataclasses
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

import eqtuners as et

TARGET = 1e-3  # the relative accuracy against the float64 reference
TUNERS = {"polyak": et.Polyak, "armijo": et.Armijo}


def run_train(model, tuner, data, num_steps, *, seed, estimator=None, every=10):
    """Every call of `train` in this benchmark goes through here (port it when the
    API of `train` changes): `num_steps` full-batch steps, measuring the sharpness
    by `estimator` every `every` steps (none when `estimator` is None), without the
    directional curvature."""
    if estimator is None:
        measure = None
    else:
        measure = et.Measurements(
            every, estimator=estimator, directional_curvature=False
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


@dataclasses.dataclass
class Problem:
    name: str
    model: eqx.Module
    x: jax.Array
    y: jax.Array
    snapshots: int

    def static(self):
        """The model without its floating-point arrays."""
        return eqx.filter(self.model, eqx.is_inexact_array, inverse=True)


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


def objective(static, params, x, y, chunk_size):
    """The objective on `(x, y)` as a function of the parameters (`et.objective_fn`
    of the model that `params` and `static` make)."""
    return et.objective_fn(eqx.combine(params, static), x, y, chunk_size=chunk_size)[0]


def reference(problem, static, params, start, args):
    """The top eigenvalue and eigenvector in float64 (Lanczos to a relative
    residual of 1e-10, or the dense Hessian for small models): `(value, vector,
    relative residual, second eigenvalue)`."""
    with jax.enable_x64(True):
        to64 = lambda t: jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), t)  # noqa: E731
        params64, x64 = to64(params), jnp.asarray(problem.x, jnp.float64)
        fn = objective(static, params64, x64, problem.y, args.chunk_size)
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
    fn = objective(static, params, x, y, chunk_size)
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


def write_csv(path: Path, rows: list[dict]) -> None:
    if not rows:
        return
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
