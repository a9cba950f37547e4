"""The configuration of one run, and of the step-size sweep some suites need.

A `RunConfig` says everything that makes a run what it is: model, data, tuner,
batch size, steps, seed and what is measured. Its `name` is readable and ends with
a hash of the whole configuration (`to_json`), so two configurations never share a
run directory and the same configuration always finds its own. New options enter
`to_json` only where they differ from their defaults, so the names of runs made
before an option existed stay the same.
"""

import dataclasses
import hashlib
import json

import jax

import eqtuners as et

from ._measure import MeasureSpec
from ._tuners import TunerSpec


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """A dataset as `eqtuners.load_dataset` loads it: `name`, a class-balanced
    `subset` (the paper's deterministic regime: 4096), `pad_to` (Fashion-MNIST to
    32x32 for the convolutional models) and the data `seed`."""

    name: str
    subset: int | None = None
    pad_to: int | None = None
    seed: int = 0

    def options(self) -> dict:
        """The loader's keyword arguments."""
        options = {"subset": self.subset, "pad_to": self.pad_to, "seed": self.seed}
        return {k: v for k, v in options.items() if v is not None}

    def slug(self) -> str:
        parts = [self.name]
        if self.subset is not None:
            parts.append(f"n{self.subset}")
        if self.pad_to is not None:
            parts.append(f"pad{self.pad_to}")
        return "-".join(parts)


def short_hash(obj) -> str:
    text = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """One run of a suite (see the module docstring); `measure` has its schedule
    resolved (`MeasureSpec.for_steps`)."""

    suite: str
    model: str
    data: DataSpec
    tuner: TunerSpec
    steps: int
    measure: MeasureSpec
    batch_size: int | None = None
    width: float = 1.0
    seed: int = 0
    chunk_size: int | None = None
    weight_decay: float = 1e-4
    steps_per_call: int = 100

    def to_json(self) -> dict:
        return {
            "suite": self.suite,
            "model": self.model,
            "data": dataclasses.asdict(self.data),
            "tuner": self.tuner.to_json(),
            "steps": self.steps,
            "batch_size": self.batch_size,
            "width": self.width,
            "seed": self.seed,
            **self.measure.to_json(),
            "chunk_size": self.chunk_size,
            "weight_decay": self.weight_decay,
            "steps_per_call": self.steps_per_call,
        }

    @property
    def name(self) -> str:
        batch = "full" if self.batch_size is None else f"b{self.batch_size}"
        width = "" if self.width == 1.0 else f"-w{self.width:.3g}"
        return (
            f"{self.model}{width}-{self.data.slug()}-{batch}-{self.tuner.slug()}"
            f"-s{self.seed}-{short_hash(self.to_json())}"
        )

    def measurements(self) -> et.Measurements:
        """The run's `eqtuners.Measurements`. The measurement set is drawn with
        the data's seed, not the run's: every seed of a workload is measured on
        the same examples, and seeds stacked in one call share them."""
        return self.measure.build(self.data.seed)

    def keys(self):
        """`(model key, training key)` from the seed."""
        model_key, train_key = jax.random.split(jax.random.key(self.seed))
        return model_key, train_key


@dataclasses.dataclass(frozen=True)
class SweepConfig:
    """GD at every step size of `grid` for `steps` steps, full batch, to find the
    largest step sizes that do not diverge."""

    model: str
    data: DataSpec
    steps: int
    grid: tuple[float, ...]
    width: float = 1.0
    seed: int = 0
    chunk_size: int | None = None
    weight_decay: float = 1e-4

    @property
    def name(self) -> str:
        width = "" if self.width == 1.0 else f"-w{self.width:.3g}"
        return (
            f"sweep-{self.model}{width}-{self.data.slug()}-{self.steps}steps"
            f"-{short_hash(dataclasses.asdict(self))}"
        )


# Step sizes 1/16 to 4, ratio sqrt(2).
SWEEP_GRID = tuple(float(0.0625 * 2 ** (k / 2)) for k in range(13))
