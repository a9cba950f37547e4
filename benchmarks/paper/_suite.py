"""What a suite is: workloads per scale, the tuners it runs on them, and the names
of the claims it checks and the figures it draws.

A **workload** is a model on a dataset with a step budget and what is measured; a
suite's scale lists its workloads, and `_plan.plan_workload` expands each into
runs (tuners, batch sizes, seeds). Command-line options override the workloads of
a scale (`override`).
"""

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ._config import SWEEP_GRID, DataSpec, RunConfig, SweepConfig, short_hash
from ._measure import MeasureSpec
from ._tuners import TunerSpec

SCALES = ("paper", "offline", "cpu", "smoke")


@dataclasses.dataclass(frozen=True)
class Workload:
    """A model on a dataset, with its budget and measurements.

    - `steps`: steps per run (full batch), or `epochs` per run for mini-batch runs
      (then `steps` is ignored and each batch size gets `epochs` epochs, but at
      least `min_steps` steps: a claim judged on a few dozen steps is no finding).
    - `measure`: what is measured and when (`MeasureSpec`).
    - `seeds`: a run per seed of every tuner and batch size, stacked in one
      compiled call with the other runs of its group; claims are checked per seed.
    - `tuners`: the tuners run besides GD at the sweep's steps (`None`: the
      suite's own).
    - `sweep_steps`, `sweep_data`: the step-size sweep (full batch, on `sweep_data`,
      by default `data`); `stepsizes` skips it.
    """

    model: str
    data: DataSpec
    steps: int = 1000
    width: float = 1.0
    batch_sizes: tuple[int | None, ...] = (None,)
    epochs: float | None = None
    min_steps: int = 0
    measure: MeasureSpec = MeasureSpec()
    chunk_size: int | None = None
    seeds: tuple[int, ...] = (0,)
    tuners: tuple[TunerSpec, ...] | None = None
    sweep_steps: int = 500
    sweep_data: DataSpec | None = None
    stepsizes: tuple[float, ...] | None = None
    steps_per_call: int = 100

    @property
    def label(self) -> str:
        width = "" if self.width == 1.0 else f" (width {self.width:.3g})"
        return f"{self.model}{width} on {self.data.slug()}"

    def figure_name(self, seed: int) -> str:
        """The stem of the workload's figures for `seed`: readable, and different
        for every other configuration (a hash of the workload's fields), so a run
        with other settings never overwrites this one's figures."""
        fields = dataclasses.asdict(dataclasses.replace(self, seeds=()))
        width = "" if self.width == 1.0 else f"-w{self.width:.3g}"
        return f"{self.model}{width}-{self.data.slug()}-s{seed}-{short_hash(fields)}"

    def steps_for(self, batch_size: int | None, num_examples: int) -> int:
        if batch_size is None or self.epochs is None:
            return self.steps
        steps = round(self.epochs * (num_examples // batch_size))
        return max(1, steps, self.min_steps)

    def run(self, suite: str, tuner, batch_size, seed, num_examples) -> RunConfig:
        steps = self.steps_for(batch_size, num_examples)
        return RunConfig(
            suite=suite,
            model=self.model,
            data=self.data,
            tuner=tuner,
            steps=steps,
            measure=self.measure.for_steps(steps),
            batch_size=batch_size,
            width=self.width,
            seed=seed,
            chunk_size=self.chunk_size,
            steps_per_call=min(self.steps_per_call, steps),
        )

    def sweep(self) -> SweepConfig | None:
        if self.stepsizes is not None:
            return None
        return SweepConfig(
            model=self.model,
            data=self.sweep_data or self.data,
            steps=self.sweep_steps,
            grid=SWEEP_GRID,
            width=self.width,
            seed=self.seeds[0],
            chunk_size=self.chunk_size,
        )


class RunResult(NamedTuple):
    """A run read back from its directory (`path`)."""

    config: RunConfig
    history: dict[str, np.ndarray]
    meta: dict
    path: Path


class WorkloadResult(NamedTuple):
    workload: Workload
    runs: list[RunResult]
    sweep: dict | None

    def of_seed(self, seed: int) -> list[RunResult]:
        return [r for r in self.runs if r.config.seed == seed]


@dataclasses.dataclass(frozen=True)
class Suite:
    """An experiment of the paper (see `benchmarks.paper.suites`).

    - `scales`: the workloads of each scale.
    - `tuners`: the tuners run on every workload, batch size and seed.
    - `gd_at_sweep`: how many of the sweep's two largest stable step sizes GD
      runs at as well, largest first (0: no sweep).
    - `claims`: the names of the claims checked (`benchmarks.paper.claims`).
    - `figures`: the names of the figures drawn (`benchmarks.paper.figures`).
    - `minutes`: the measured wall time per scale, `(2 CPU cores, one GPU)`, `None`
      where not measured (a scale missing here: neither was).
    """

    name: str
    doc: str
    figures_of_paper: str
    scales: dict[str, tuple[Workload, ...]]
    tuners: tuple[TunerSpec, ...]
    claims: tuple[str, ...]
    figures: tuple[str, ...]
    gd_at_sweep: int = 0
    minutes: dict[str, tuple[float | None, float | None]] = dataclasses.field(
        default_factory=dict
    )

    @property
    def needs_sweep(self) -> bool:
        """Whether the workloads' fixed step sizes come from the sweep."""
        return self.gd_at_sweep > 0


def _dedupe(workloads):
    return tuple(dict.fromkeys(workloads))


def override(workloads: Sequence[Workload], options: dict) -> tuple[Workload, ...]:
    """The workloads with the command line's overrides.

    `dataset` and `model` select the workloads on that dataset or model when the
    scale has some, and otherwise replace theirs; `subset` and `pad_to` replace
    the data's, the fields of `MeasureSpec` the measurements', and every other
    option the workload's field of the same name. `None` changes nothing.
    """
    workloads = tuple(workloads)
    for field, get in (
        ("dataset", lambda w: w.data.name),
        ("model", lambda w: w.model),
    ):
        wanted = options.get(field)
        if wanted is None:
            continue
        chosen = tuple(w for w in workloads if get(w) in wanted)
        if not chosen:
            chosen = tuple(
                _replace_choice(w, field, value) for w in workloads for value in wanted
            )
        workloads = _dedupe(chosen)
    changes = {
        k: v
        for k, v in options.items()
        if k not in ("dataset", "model") and v is not None
    }
    data_changes = {k: changes.pop(k) for k in ("subset", "pad_to") if k in changes}
    measure_fields = {f.name for f in dataclasses.fields(MeasureSpec)}
    measure_changes = {k: changes.pop(k) for k in list(changes) if k in measure_fields}
    result = []
    for w in workloads:
        data = dataclasses.replace(w.data, **data_changes)
        measure = dataclasses.replace(w.measure, **measure_changes)
        result.append(dataclasses.replace(w, data=data, measure=measure, **changes))
    return _dedupe(result)


def _replace_choice(workload, field, value):
    if field == "model":
        return dataclasses.replace(workload, model=value)
    data = dataclasses.replace(workload.data, name=value)
    sweep = workload.sweep_data
    if sweep is not None:
        sweep = dataclasses.replace(sweep, name=value)
    return dataclasses.replace(workload, data=data, sweep_data=sweep)
