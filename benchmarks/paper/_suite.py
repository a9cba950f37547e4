"""What a suite is: workloads per scale, how they expand into runs, and what is
checked and drawn at the end.

A **workload** is a model on a dataset with a step budget and a measurement
schedule; a suite's scale lists its workloads, and the suite expands each into runs
(tuners, batch sizes, seeds). Command-line options override the workloads of a
scale (`override`).
"""

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ._config import SWEEP_GRID, DataSpec, RunConfig, SweepConfig, short_hash

SCALES = ("paper", "offline", "cpu", "smoke")


@dataclasses.dataclass(frozen=True)
class Workload:
    """A model on a dataset, with its budget and measurement schedule.

    - `steps`: steps per run (full batch), or `epochs` per run for mini-batch runs
      (then `steps` is ignored and each batch size gets `epochs` epochs).
    - `every`: steps between measurements (`None`: `steps // measurements`).
    - `batch_measurements`: also measure the batch curvature, batch sharpness and
      batch top eigenvalue (`eqtuners.Measurements`).
    - `spectrum`: also estimate the Hessian's spectral density on the measurement
      set at the start and at the end of each run (`eqtuners.spectral_density`).
    - `sweep_steps`, `sweep_data`: the step-size sweep (full batch, on `sweep_data`,
      by default `data`); `stepsizes` skips it.
    """

    model: str
    data: DataSpec
    steps: int = 1000
    width: float = 1.0
    batch_sizes: tuple[int | None, ...] = (None,)
    epochs: float | None = None
    every: int | None = 20
    measurements: int = 60
    zoom: tuple[int, int] | None = None
    estimator: str = "power"
    examples: int | None = None
    batch_measurements: bool = False
    spectrum: bool = False
    chunk_size: int | None = None
    seeds: tuple[int, ...] = (0,)
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
        return max(1, round(self.epochs * (num_examples // batch_size)))

    def run(self, suite: str, tuner, batch_size, seed, num_examples) -> RunConfig:
        steps = self.steps_for(batch_size, num_examples)
        every = self.every or max(1, steps // self.measurements)
        return RunConfig(
            suite=suite,
            model=self.model,
            data=self.data,
            tuner=tuner,
            steps=steps,
            batch_size=batch_size,
            width=self.width,
            seed=seed,
            every=every,
            zoom=self.zoom,
            estimator=self.estimator,
            examples=self.examples,
            batch_measurements=self.batch_measurements,
            spectrum=self.spectrum,
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


@dataclasses.dataclass(frozen=True)
class Suite:
    """An experiment of the paper (see `benchmarks.paper.suites`).

    - `plan(workload, stepsizes, num_examples)`: the workload's runs, given the
      sweep's two step sizes (or `None` when it needs no sweep).
    - `needs_sweep`: whether the workloads' fixed step sizes come from the sweep.
    - `claims(results)`: the paper's claims checked on the results.
    - `figures(results, directory)`: draws the figures, returns their paths.
    - `minutes`: the measured wall time per scale, `(2 CPU cores, one GPU)`, `None`
      where not measured (a scale missing here: neither was).
    """

    name: str
    doc: str
    figures_of_paper: str
    scales: dict[str, tuple[Workload, ...]]
    plan: Callable[[Workload, Sequence[float] | None, int], list[RunConfig]]
    needs_sweep: bool
    claims: Callable[[list[WorkloadResult]], list]
    figures: Callable[[list[WorkloadResult], Path], list[Path]]
    minutes: dict[str, tuple[float | None, float | None]] = dataclasses.field(
        default_factory=dict
    )


def _dedupe(workloads):
    return tuple(dict.fromkeys(workloads))


def override(workloads: Sequence[Workload], options: dict) -> tuple[Workload, ...]:
    """The workloads with the command line's overrides.

    `dataset` and `model` select the workloads on that dataset or model when the
    scale has some, and otherwise replace theirs; every other option replaces the
    field of the same name in every workload.
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
    changes = {k: v for k, v in options.items() if k not in ("dataset", "model")}
    changes = {k: v for k, v in changes.items() if v is not None}
    data_changes = {k: changes.pop(k) for k in ("subset", "pad_to") if k in changes}
    result = []
    for w in workloads:
        if data_changes:
            w = dataclasses.replace(w, data=dataclasses.replace(w.data, **data_changes))
        result.append(dataclasses.replace(w, **changes))
    return _dedupe(result)


def _replace_choice(workload, field, value):
    if field == "model":
        return dataclasses.replace(workload, model=value)
    data = dataclasses.replace(workload.data, name=value)
    sweep = workload.sweep_data
    if sweep is not None:
        sweep = dataclasses.replace(sweep, name=value)
    return dataclasses.replace(workload, data=data, sweep_data=sweep)
