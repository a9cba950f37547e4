"""Part `resnet34`: the time of a training step and of a Hessian-vector product on
ResNet34, the paper's largest model.

On the synthetic CIFAR-shaped examples, full batch, the objective evaluated in the
default chunks (`eqtuners.DEFAULT_CHUNK_SIZES`): `train` with `Constant` (a step),
against `eqtuners.hessian_vector_product` of the same chunked objective (the
product every sharpness estimator makes), applied `steps` times in one compiled
call, each to the normalised previous product (as power iteration does). After a
compiling call each, the two take turns for `repeats` rounds.
"""

import jax
import jax.numpy as jnp
import numpy as np

import eqtuners as et
from eqtuners.internal import random_direction, tree_dot

from ..tuner_speed import paired_ratio, timed_side_by_side
from ._budget import MEASURE_COMPILE
from ._common import Bench, trainer
from ._tracking import PRODUCT_COST

MODEL = "resnet34"


def products(model, x, y, chunk_size: int | None, steps: int):
    """`steps` Hessian-vector products in one compiled call, as a function of no
    arguments returning the last product's norm."""
    fn, params = et.objective_fn(model, x, y, chunk_size=chunk_size)

    @jax.jit
    def run(params, vector):
        def body(vector, _):
            product = et.hessian_vector_product(fn, params, vector)
            norm = jnp.sqrt(tree_dot(product, product))
            return jax.tree.map(lambda p: p / norm, product), norm

        return jax.lax.scan(body, vector, length=steps)[1][-1]

    start = random_direction(jax.random.key(2), params)
    return lambda: run(params, start)


def part_products(bench: Bench, deadline: float) -> dict:
    plan = bench.plan(
        MODEL,
        deadline,
        compiles=1 + MEASURE_COMPILE,  # the step's loop, and the products
        steps=1 + PRODUCT_COST,
        sizes=bench.size.product_steps,
    )
    if plan.steps is None:
        return plan.skipped()
    steps = plan.steps
    bench.budget.log(
        f"{MODEL}: {steps} steps and {steps} Hessian-vector products a call, "
        f"{plan.repeats} rounds (planned {plan.seconds:.0f} s)"
    )
    model, data = bench.model(MODEL), bench.data
    chunk = bench.chunk_size(MODEL)
    times, (history, norm) = timed_side_by_side(
        [
            trainer(model, et.Constant(0.01), data, steps, chunk_size=chunk),
            products(model, data.train_x, data.train_y, chunk, steps),
        ],
        plan.repeats,
    )
    step_ms = 1e3 * float(np.median(times[0])) / steps
    product_ms = 1e3 * float(np.median(times[1])) / steps
    return {
        "model": MODEL,
        "parameters": et.num_parameters(model),
        "examples": int(data.train_x.shape[0]),
        "chunk_size": chunk,
        **plan.fields(),
        "step_ms": step_ms,
        "product_ms": product_ms,
        "product_over_step": paired_ratio(times[1], times[0]),
        "last_product_norm": float(norm),
        "final_loss": float(history["loss"][-1]),
    }
