"""Part `tracking`: what following the sharpness costs along Polyak-GD.

The MLP on the synthetic CIFAR-shaped examples, full batch: `train` with the
sharpness measured every `tracking_every` steps by the chosen estimator (default:
warm-started Lanczos to a relative residual of 1e-3; no directional curvature, as
`sharpness_estimators --parts overhead`), against the same training with nothing
measured. After a compiling call each, the two take turns for `repeats` rounds; the
overhead is the median over rounds of tracked / alone, minus 1.
"""

import numpy as np

import eqtuners as et
from eqtuners.internal import make_estimator

from ..tuner_speed import paired_ratio, timed_side_by_side
from ._budget import MEASURE_COMPILE
from ._common import Bench, trainer

MODEL = "mlp"
STEPS_PER_CALL = 100  # as in training, and as `sharpness_estimators` times it
# Planning: products per measurement, and a product's cost in steps.
PRODUCTS, PRODUCT_COST = 20, 2.5


def part_tracking(bench: Bench, deadline: float, estimator: str, tol: float) -> dict:
    every = bench.size.tracking_every
    plan = bench.plan(
        MODEL,
        deadline,
        compiles=1 + MEASURE_COMPILE,
        steps=2 + PRODUCTS * PRODUCT_COST / every,
        sizes=bench.size.tracking_steps,
    )
    if plan.steps is None:
        return plan.skipped()
    steps = plan.steps
    bench.budget.log(
        f"tracking: Polyak-GD on the {MODEL}, {steps} steps, {estimator} at {tol:g} "
        f"every {every} steps against none, {plan.repeats} rounds (planned "
        f"{plan.seconds:.0f} s)"
    )
    measure = et.Measurements(
        every,
        estimator=make_estimator(estimator, tol=tol),
        directional_curvature=False,
    )
    model, data = bench.model(MODEL), bench.data
    calls = min(STEPS_PER_CALL, steps)
    times, (alone, tracked) = timed_side_by_side(
        [
            trainer(model, et.Polyak(), data, steps, steps_per_call=calls),
            trainer(
                model,
                et.Polyak(),
                data,
                steps,
                steps_per_call=calls,
                measure=measure,
            ),
        ],
        plan.repeats,
    )
    products = np.asarray(tracked["sharpness_num_hvps"])
    measured = np.isfinite(products)
    return {
        "model": MODEL,
        **plan.fields(),
        "every": every,
        "estimator": estimator,
        "tol": tol,
        "alone_ms_per_step": 1e3 * float(np.median(times[0])) / steps,
        "tracked_ms_per_step": 1e3 * float(np.median(times[1])) / steps,
        "overhead": paired_ratio(times[1], times[0]) - 1,
        "measurements": int(measured.sum()),
        "products_per_measurement": float(products[measured].mean()),
        "converged_fraction": float(
            np.mean(np.asarray(tracked["sharpness_converged"])[measured])
        ),
        "final_sharpness": float(np.asarray(tracked["sharpness"])[measured][-1]),
        "same_losses": bool(np.array_equal(alone["loss"], tracked["loss"])),
    }
