"""The configuration of one run, and of the step-size sweep some suites need.

A `RunConfig` says everything that makes a run what it is: model, data, tuner,
batch size, steps, seed and measurement schedule. Its `name` is readable and ends
with a hash of the whole configuration, so two configurations never share a run
directory and the same configuration always finds its own.
"""

import dataclasses
import hashlib
import json

import jax

import eqtuners as et


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


@dataclasses.dataclass(frozen=True)
class TunerSpec:
    """A tuner: `kind` is `"constant"` (GD at `value`), `"armijo"` or `"polyak"`
    (at the paper's defaults, with `value` the cap `max_stepsize`)."""

    kind: str
    value: float = 1.0

    def build(self) -> et.AbstractTuner:
        if self.kind == "constant":
            return et.Constant(self.value)
        if self.kind == "armijo":
            return et.Armijo(max_stepsize=self.value)
        if self.kind == "polyak":
            return et.Polyak(max_stepsize=self.value)
        raise ValueError(f"Unknown tuner kind {self.kind!r}.")

    @property
    def label(self) -> str:
        """The name of the run in figures and reports."""
        if self.kind == "constant":
            return f"GD {self.value:.3g}"
        name = {"armijo": "Armijo", "polyak": "Polyak"}[self.kind]
        return name if self.value == 1.0 else f"{name} (cap {self.value:.3g})"

    def slug(self) -> str:
        return f"{self.kind}{self.value:.4g}"


def short_hash(obj) -> str:
    text = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """One run of a suite (see the module docstring)."""

    suite: str
    model: str
    data: DataSpec
    tuner: TunerSpec
    steps: int
    batch_size: int | None = None
    width: float = 1.0
    seed: int = 0
    every: int | None = 20
    zoom: tuple[int, int] | None = None
    estimator: str = "power"
    examples: int | None = None
    chunk_size: int | None = None
    weight_decay: float = 1e-4
    steps_per_call: int = 100
    batch_measurements: bool = False
    spectrum: bool = False

    def to_json(self) -> dict:
        config = dataclasses.asdict(self)
        for field in ("batch_measurements", "spectrum"):
            if not config[field]:  # the names of runs made before it existed
                del config[field]
        return config

    @property
    def name(self) -> str:
        batch = "full" if self.batch_size is None else f"b{self.batch_size}"
        width = "" if self.width == 1.0 else f"-w{self.width:.3g}"
        return (
            f"{self.model}{width}-{self.data.slug()}-{batch}-{self.tuner.slug()}"
            f"-s{self.seed}-{short_hash(self.to_json())}"
        )

    def group_key(self):
        """Runs with the same key differ only by the tuner's value and the seed, so
        they go through one compiled, vmapped `train` call."""
        return dataclasses.replace(self, tuner=TunerSpec(self.tuner.kind), seed=0)

    def measurements(self) -> et.Measurements:
        return et.Measurements(
            self.every,
            zoom=self.zoom,
            examples=self.examples,
            seed=self.seed,
            sharpness=self.estimator,
            batch_curvature=self.batch_measurements,
            batch_sharpness=self.batch_measurements,
            batch_top_eigenvalue=self.batch_measurements,
        )

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
