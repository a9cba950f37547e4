"""What a suite's runs measure, and when: the one place for every measurement
option.

`MeasureSpec` is a workload's measurement options and a run's, as data. It builds
the `eqtuners.Measurements` the run trains with (`build`), gives the fields of the
run's configuration (`to_json`, hence its name) and the command line's overrides
(`cli.parser` adds a flag per field that has a `help`). A new option of
`eqtuners.Measurements` is one field here, declared with `option(...,
measures=NAME)`.
"""

import dataclasses

import numpy as np

import eqtuners as et
from eqtuners.internal import METHODS, is_scheduled, schedule_arrays


def option(
    default,
    *,
    measures: str | tuple[str, ...] = (),
    help: str | None = None,
    type=None,
    choices=None,
    in_run: bool = True,
    always: bool = False,
):
    """A field of `MeasureSpec`.

    - `measures`: the argument(s) of `eqtuners.Measurements` it sets (none: a
      measurement of the suite itself, or the schedule's planning).
    - `help`, `type`, `choices`: its command-line flag (`--name-with-dashes`;
      no `help`, no flag); a number (`type` int or float) must be > 0. A boolean
      gets `--name` and `--no-name`.
    - `in_run`: whether it is part of a run's configuration (and name).
    - `always`: whether a run's configuration has it even at its default (the
      options older than the rule "defaults are left out", so that the names of
      runs made before a new option existed stay the same).
    """
    measures = (measures,) if isinstance(measures, str) else tuple(measures)
    metadata = {"measures": measures, "in_run": in_run, "always": always}
    if help is not None:
        metadata["flag"] = {"help": help, "type": type, "choices": choices}
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True)
class MeasureSpec:
    """The measurement options of a workload (and, with `every` resolved, of a
    run); see `eqtuners.Measurements` for what each measures."""

    every: int | None = option(
        20,
        measures="every",
        always=True,
        help="steps between measurements",
        type=int,
    )
    # With `every=None`: about this many measurements per run (`for_steps`).
    measurements: int = option(60, in_run=False)
    zoom: tuple[int, int] | None = option(None, measures="zoom", always=True)
    estimator: str = option(
        "power",
        measures="estimator",
        always=True,
        help="sharpness estimator ('power': the paper's power iteration)",
        choices=METHODS,
    )
    examples: int | None = option(
        None,
        measures="examples",
        always=True,
        help="sharpness measurement set size",
        type=int,
    )
    batch_measurements: bool = option(
        False,
        measures=("batch_curvature", "batch_sharpness", "batch_top_eigenvalue"),
        help="also measure the batch curvature, batch sharpness and batch top "
        "eigenvalue",
    )
    # The Hessian's spectral density at the start and the end (`_spectrum`).
    spectrum: bool = option(
        False,
        help="also estimate the Hessian's spectral density at the start and end",
    )

    def for_steps(self, steps: int) -> "MeasureSpec":
        """The options of a run of `steps` steps: `every` resolved (with `None`,
        `steps // measurements`)."""
        every = self.every or max(1, steps // self.measurements)
        return dataclasses.replace(self, every=every)

    def build(self, seed: int) -> et.Measurements:
        """The `eqtuners.Measurements` of a run; `seed` draws the measurement
        set."""
        options = {}
        for field in dataclasses.fields(self):
            for name in field.metadata["measures"]:
                options[name] = getattr(self, field.name)
        return et.Measurements(seed=seed, **options)

    def to_json(self) -> dict:
        """The fields of a run's configuration: those older than the rule always,
        the others where they differ from their defaults."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.metadata["in_run"]
            and (f.metadata["always"] or getattr(self, f.name) != f.default)
        }

    def count(self, steps: int) -> int:
        """How many of `steps` steps a run measures (the compiled loop's rule)."""
        schedule = schedule_arrays(self.build(0))
        return int(np.sum(is_scheduled(np.arange(steps), steps, *schedule)))


def flags() -> list[dataclasses.Field]:
    """The fields that are command-line flags."""
    return [f for f in dataclasses.fields(MeasureSpec) if "flag" in f.metadata]
