"""The time a suite still needs, measured on the real `eqtuners.train` path.

Each group of runs left to do is trained as it will be (`_runner.train_arguments`:
the same stacked models and tuners, batch size and measurements) for a few steps,
twice after compiling: measuring only at the last step, then at every step. The
difference is the cost of a measurement (every quantity the run measures, the
batch measurements included), the rest the cost of a step; scaled to the run's
steps and to the number of measurements its schedule makes. The sweep is timed the
same way (`_runner.sweep_arguments`). Rough: Armijo's search costs more as the
sharpness rises, and a measurement's cost varies with the estimator's
convergence.
"""

import dataclasses
import time
import warnings

import eqtuners as et

from .._rundir import RunDirectory
from ._plan import group_runs
from ._runner import sweep_arguments, train_arguments

STEPS = 4  # the steps of each timed call


def _timed(arguments: dict, **changes) -> float:
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a diverging run stops
        et.train(**(arguments | changes), progress=False)
    return time.perf_counter() - start


def group_seconds(configs, data) -> float:
    """The seconds the group `configs` (one stacked call) will take."""
    config = configs[0]
    steps = max(2, min(STEPS, config.steps))
    arguments = train_arguments(configs, data) | dict(
        num_steps=steps, steps_per_call=steps
    )
    spec = config.measure
    last = dataclasses.replace(spec, every=None, zoom=None).build(config.data.seed)
    every = dataclasses.replace(spec, every=1, zoom=None).build(config.data.seed)
    _timed(arguments, measure=last)  # compiles (a new schedule does not)
    once = _timed(arguments, measure=last)
    always = _timed(arguments, measure=every)
    per_measurement = max(always - once, 0.0) / (steps - 1)
    per_step = max(once - per_measurement, 0.0) / steps
    return config.steps * per_step + spec.count(config.steps) * per_measurement


def sweep_seconds(config, data) -> float:
    """The seconds the sweep `config` will take."""
    steps = max(2, min(STEPS, config.steps))
    arguments = sweep_arguments(config, data) | dict(
        num_steps=steps, steps_per_call=steps
    )
    _timed(arguments)  # compiles
    return config.steps * _timed(arguments) / steps


def estimate_seconds(suite, plans, data, out) -> list[tuple]:
    """For each workload plan (`_plan.plan_workload`): `(plan, runs to do,
    seconds)`, the runs not yet completed in `out` and the sweep if not yet
    run."""
    rows = []
    for plan in plans:
        dataset = data(plan.workload.data)
        todo = [
            c
            for c in plan.configs
            if not RunDirectory(out / suite.name / "runs" / c.name, c.to_json()).done
        ]
        total = sum(group_seconds(g, dataset) for g in group_runs(todo))
        if plan.placeholder:
            total += sweep_seconds(plan.sweep, data(plan.sweep.data))
        rows.append((plan, len(todo), total))
    return rows
