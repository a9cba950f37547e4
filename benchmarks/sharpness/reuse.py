"""The `reuse` part: what a measurement step costs in gradients, piece by piece, and
what it could share with the training step (see the package's docstring)."""

import time
from pathlib import Path

import jax
import numpy as np
from jax.flatten_util import ravel_pytree

import eqtuners as et
from eqtuners.internal import value_grad_and_curvature

from .problems import make_problem, objective, trajectory


def part_reuse(args, out: Path) -> dict:
    """Costs, in gradients, of the pieces of a measurement step at a point of the
    Polyak-GD run on `mlp_digits` (after `--burn-in` steps), best of 20 rounds
    taken in turn."""
    problem = make_problem("mlp_digits", args)
    params = trajectory(problem, et.Polyak(), args, snapshots=1)[0][1]
    fn = objective(problem.static(), params, problem.x, problem.y, None)
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
