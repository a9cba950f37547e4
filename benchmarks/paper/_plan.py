"""The one planning function: a workload's runs, for the run, `--dry-run` and the
time estimate alike.

A suite's runs on a workload are, for every seed and batch size, GD at the
sweep's largest stable step sizes (`Suite.gd_at_sweep` of them) followed by the
workload's tuners (the suite's unless `--tuners` says otherwise). Until the sweep
has run, its step sizes are placeholders (`WorkloadPlan.placeholder`); runs that
differ only by the tuner's hyperparameters and the seed form one group
(`group_runs`), one compiled, vmapped `train` call.
"""

import dataclasses
import json
from pathlib import Path
from typing import NamedTuple

import equinox as eqx
import jax

from ._config import RunConfig, SweepConfig
from ._suite import Suite, Workload
from ._tuners import TunerSpec

# GD's steps in a plan made before the sweep has run (a dry run's estimate).
PLACEHOLDER_STEPSIZES = (0.5, 0.25)


class WorkloadPlan(NamedTuple):
    """A workload's runs; `sweep` is its sweep (`None`: none needed), `swept` the
    sweep's outcome when it has run, and `placeholder` whether GD's step sizes
    wait for it."""

    workload: Workload
    configs: list[RunConfig]
    sweep: SweepConfig | None
    swept: dict | None
    placeholder: bool


def sweep_outcome(config: SweepConfig, out: Path) -> dict | None:
    """The outcome of the sweep already in `out/sweeps/`, or `None`."""
    path = out / "sweeps" / f"{config.name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def plan_workload(
    suite: Suite, workload: Workload, num_examples: int, out: Path
) -> WorkloadPlan:
    """The runs of `suite` on `workload` (whose training set has `num_examples`),
    with GD at the step sizes of the sweep in `out/sweeps/` (placeholders if it
    has not run) or at `workload.stepsizes`."""
    sweep = workload.sweep() if suite.needs_sweep else None
    swept = None if sweep is None else sweep_outcome(sweep, out)
    if not suite.needs_sweep:
        stepsizes = ()
    elif workload.stepsizes is not None:
        stepsizes = workload.stepsizes
    else:
        stepsizes = PLACEHOLDER_STEPSIZES if swept is None else swept["chosen"]
    gd = [TunerSpec("constant", s) for s in stepsizes[: suite.gd_at_sweep]]
    tuners = gd + list(workload.tuners or suite.tuners)
    configs = [
        workload.run(suite.name, tuner, batch_size, seed, num_examples)
        for seed in workload.seeds
        for batch_size in workload.batch_sizes
        for tuner in tuners
    ]
    placeholder = sweep is not None and swept is None
    return WorkloadPlan(workload, configs, sweep, swept, placeholder)


def _stack_key(config: RunConfig):
    """What runs of one stack share: everything but the tuner's array
    hyperparameters and the seed (the tuners' type and static fields must match
    for `eqtuners.stack`)."""
    others = tuple(
        (f.name, getattr(config, f.name))
        for f in dataclasses.fields(config)
        if f.name not in ("tuner", "seed")
    )
    tuner = config.tuner.build()
    return (
        others,
        config.tuner.kind,
        jax.tree.structure(eqx.filter(tuner, eqx.is_array)),
    )


def group_runs(configs: list[RunConfig]) -> list[list[RunConfig]]:
    """The configurations in groups of one stacked `train` call each, in their
    order."""
    groups: dict = {}
    for c in configs:
        groups.setdefault(_stack_key(c), []).append(c)
    return list(groups.values())
