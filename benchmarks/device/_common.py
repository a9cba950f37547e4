"""What the parts share: the size, the budget, the synthetic CIFAR-shaped data, the
models and their measured step times, and `train` as a function to time."""

import equinox as eqx
import jax
import numpy as np

import eqtuners as et

from ._budget import Budget, Plan, StepEstimate, plan_timing, probe, until
from ._sizes import Size


class Bench:
    """The state of one run of the benchmark (see the module docstring)."""

    def __init__(self, size: Size, budget: Budget):
        self.size = size
        self.budget = budget
        self.data = et.load_synthetic_cifar10(num_train=size.examples, num_test=16)
        self._models: dict[str, eqx.Module] = {}
        self._estimates: dict[str, StepEstimate] = {}

    def model(self, name: str):
        """The model `name` at the size's width, built once."""
        if name not in self._models:
            # One compiled program: faster than initialising op by op.
            build = eqx.filter_jit(
                lambda key: et.make_model(
                    name,
                    self.data.input_shape,
                    self.data.num_classes,
                    key=key,
                    width=self.size.widths[name],
                )
            )
            self._models[name] = build(jax.random.key(0))
        return self._models[name]

    def chunk_size(self, name: str) -> int | None:
        chunk = et.DEFAULT_CHUNK_SIZES[name]
        return None if chunk is None else min(chunk, self.size.examples)

    def estimate(self, name: str) -> StepEstimate:
        """The model's step time on the data (`_budget.probe`), measured once."""
        if name not in self._estimates:
            self.budget.log(f"{name}: timing one step to plan the parts")
            data = self.data
            estimate = probe(
                self.model(name), data.train_x, data.train_y, self.chunk_size(name)
            )
            self.budget.log(
                f"{name}: a step {1e3 * estimate.step_s:.4g} ms, its compile "
                f"{estimate.compile_s:.3g} s"
            )
            self._estimates[name] = estimate
        return self._estimates[name]

    def plan(
        self, name: str, deadline: float, compiles: float, steps: float, sizes
    ) -> Plan:
        """The timing plan of a part on the model `name` by `deadline`: compiling
        costs `compiles` of the model's loop compiles, a step of every function
        timed together `steps` of its steps, and `sizes` is the range of steps
        (`_budget.plan_timing`)."""
        estimate = self.estimate(name)
        return plan_timing(
            until(deadline),
            compiles * estimate.compile_s,
            steps * estimate.step_s,
            sizes,
            self.size.repeats,
            left=self.budget.available(),
        )


def trainer(model, tuner, data, steps: int, **options):
    """`eqtuners.train` of `steps` full-batch steps in one compiled call, nothing
    measured unless `measure` is given, as a function of no arguments returning the
    history (what `tuner_speed.timed_side_by_side` times)."""
    options = dict(measure=None, steps_per_call=steps, key=jax.random.key(1)) | options

    def run():
        return et.train(model, tuner, data, steps, progress=False, **options).history

    return run


def finite_loss(history) -> bool:
    """Whether every recorded loss is finite (a run that diverged stops stepping,
    and its time is then not a step time)."""
    return bool(np.all(np.isfinite(np.asarray(history["loss"]))))
