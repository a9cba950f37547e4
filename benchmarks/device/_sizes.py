"""The two sizes of the device benchmark: `FULL` (the paper's sizes, for one GPU)
and `CPU` (narrow models, few examples and steps: the tests' end-to-end run).

Step counts are ranges `(smallest, largest)`: each part takes as many as fit in its
share of the budget, and is skipped when the smallest does not fit.
"""

import dataclasses

# The parts in the order they run, and their weights in the budget (the last takes
# what is left).
SHARES = {
    "speed_mlp": 0.08,
    "stack": 0.06,
    "speed_vgg11": 0.22,
    "tracking": 0.07,
    "resnet34": 0.12,
    "deterministic": 0.45,
}


@dataclasses.dataclass(frozen=True)
class Size:
    """What each part runs at one size (see the package docstring for the parts).

    - `examples`: the synthetic CIFAR-shaped (32x32x3) training examples of every
      part but `deterministic`; `widths`: each model's width multiplier.
    - `budget`: the default seconds for the whole run; `repeats`: the timed rounds
      of each side-by-side comparison.
    - `speed_models`: the models of the speed parts; `speed_steps`: steps per
      timed call, per model; `blocks`: the block sizes of `Armijo(block_size=k)`.
    - `product_steps`: steps (and products) per timed call of `resnet34`.
    - `stack_runs`, `stack_steps`: the runs of a stack and their steps.
    - `tracking_steps`, `tracking_every`: Polyak-GD's steps, and the steps between
      measurements.
    - `suite_*`: the `deterministic` suite's models, seeds, Fashion-MNIST subset,
      width, steps, sweep steps, steps between measurements, and the seconds kept
      for what is not a training step (loading the data, building the models, the
      figures and the report).
    """

    name: str
    examples: int
    widths: dict[str, float]
    budget: float
    repeats: int
    speed_models: tuple[str, ...]
    blocks: tuple[int, ...]
    speed_steps: dict[str, tuple[int, int]]
    product_steps: tuple[int, int]
    stack_runs: int
    stack_steps: tuple[int, int]
    tracking_steps: tuple[int, int]
    tracking_every: int
    suite_models: tuple[str, ...]
    suite_seeds: tuple[int, ...]
    suite_subset: int
    suite_width: float
    suite_steps: tuple[int, int]
    suite_sweep_steps: int
    suite_every: int
    suite_reserve: float


FULL = Size(
    name="full",
    examples=4096,
    widths={"mlp": 1.0, "vgg11": 1.0, "resnet34": 1.0},
    budget=480.0,
    repeats=3,
    speed_models=("mlp", "vgg11"),
    blocks=(4, 8),
    speed_steps={"mlp": (50, 300), "vgg11": (3, 20)},
    product_steps=(1, 3),
    stack_runs=8,
    stack_steps=(50, 300),
    tracking_steps=(200, 1000),
    tracking_every=10,
    suite_models=("mlp", "vgg11"),
    suite_seeds=(0,),
    suite_subset=4096,
    suite_width=1.0,
    suite_steps=(1000, 10000),
    suite_sweep_steps=100,
    suite_every=50,
    suite_reserve=40.0,
)

CPU = Size(
    name="cpu",
    examples=64,
    widths={"mlp": 0.25, "vgg11": 0.0625, "resnet34": 0.0625},
    budget=300.0,
    repeats=2,
    speed_models=("mlp",),
    blocks=(4,),
    speed_steps={"mlp": (5, 30)},
    product_steps=(1, 1),
    stack_runs=8,
    stack_steps=(5, 20),
    tracking_steps=(20, 40),
    tracking_every=10,
    suite_models=("mlp",),
    suite_seeds=(0,),
    suite_subset=200,
    suite_width=0.25,
    suite_steps=(20, 30),
    suite_sweep_steps=5,
    suite_every=10,
    suite_reserve=15.0,
)
