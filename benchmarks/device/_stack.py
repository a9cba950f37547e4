"""Part `stack`: R runs in one compiled call against the same R runs one by one.

The MLP on the synthetic CIFAR-shaped examples, full batch, nothing measured: for
Constant and Polyak, R tuners spread over a grid (`runs_in_one_compile.GRIDS`)
stacked with `eqtuners.stack` and run in parallel under `vmap` (`vmap_runs=True`,
what `train` does on a GPU), against R separate `train` calls. After a compiling
call each, the two take turns for `repeats` rounds; the throughput ratio is the
median over rounds of sequential / stacked time (above 1: the stack is faster).
"""

import jax
import numpy as np

import eqtuners as et

from ..runs_in_one_compile import GRIDS
from ..tuner_speed import paired_ratio, timed_side_by_side
from ._common import Bench, trainer

MODEL = "mlp"
KINDS = ("constant", "polyak")


def part_stack(bench: Bench, deadline: float) -> dict:
    runs = bench.size.stack_runs
    # Per kind: the single run and the stack compile; R steps each way per step
    # (a vmapped stack costs at most R single steps).
    plan = bench.plan(
        MODEL,
        deadline,
        compiles=2 * len(KINDS),
        steps=2 * runs * len(KINDS),
        sizes=bench.size.stack_steps,
    )
    if plan.steps is None:
        return plan.skipped()
    steps = plan.steps
    bench.budget.log(
        f"stack: {runs} runs of the {MODEL} in one compile against one by one, "
        f"{steps} steps, {plan.repeats} rounds (planned {plan.seconds:.0f} s)"
    )
    model, data = bench.model(MODEL), bench.data
    result = {"model": MODEL, "runs": runs, **plan.fields()}
    for kind in KINDS:
        tuners = GRIDS[kind](runs)
        singles = [trainer(model, t, data, steps) for t in tuners]
        stacked = trainer(
            model,
            et.stack(tuners),
            data,
            steps,
            key=jax.random.split(jax.random.key(1), runs),
            vmap_runs=True,
        )
        times, (one_by_one, together) = timed_side_by_side(
            [lambda: [run() for run in singles], stacked], plan.repeats
        )
        gap = max(
            float(np.nanmax(np.abs(together["loss"][i] - h["loss"])))
            for i, h in enumerate(one_by_one)
        )
        result[kind] = {
            "sequential_runs_per_s": runs / float(np.median(times[0])),
            "stacked_runs_per_s": runs / float(np.median(times[1])),
            "throughput_ratio": paired_ratio(times[0], times[1]),
            "max_loss_gap": gap,
        }
    return result
