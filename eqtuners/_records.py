"""What `train` hands back: the history's rows, the loop's state, the result.

A `TrainState` is everything the loop carries between two steps, so that a run
resumed from it continues exactly; its per-run part (`RunState`, the state without
the step counter that stacked runs share) is what the compiled step maps over the
runs. Checkpoints are written and read by leaf order (equinox serialisation), so the
order of `TrainState`'s fields is part of the checkpoint format: a new field goes
last, and a renamed one keeps its place.
"""

import dataclasses
import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PyTree

from ._stack import Stack

History = dict[str, np.ndarray]

# The loop's own columns, in order; the estimator's and the tuner's follow.
LOOP_KEYS = (
    "step",
    "loss",
    "grad_sq_norm",
    "stepsize",
    "train_loss",
    "sharpness",
    "stepsize_x_sharpness",
    "sharpness_num_hvps",
    "sharpness_residual",
    "sharpness_converged",
    "directional_curvature",
)


class RunState(eqx.Module):
    """One run's part of the loop's carry: a `TrainState` without its step counter
    (which stacked runs share). For stacked runs every leaf has a leading run axis.
    """

    params: PyTree[Array]
    tuner_state: PyTree[Array]
    sharpness_state: PyTree[Array]
    order: tuple[Array, Array] | None
    key: Array
    finite: Array


_RUN_FIELDS = [f.name for f in dataclasses.fields(RunState)]


class TrainState(eqx.Module):
    """The loop's whole state between two steps: enough to resume a run exactly.

    - `params`: the model's floating-point arrays.
    - `tuner_state`: the tuner's state.
    - `sharpness_state`: the sharpness estimator's state (e.g. the last
      eigenvector; `None` when nothing is measured).
    - `order`: `(permutation, batch index)` of the mini-batch order; `None` for
      full-batch runs.
    - `key`: the PRNG key of the next step.
    - `step`: the number of steps taken (a scalar, shared by stacked runs).
    - `finite`: false once a run met a non-finite loss or gradient.

    For stacked runs every field but `step` has a leading run axis.
    """

    params: PyTree[Array]
    tuner_state: PyTree[Array]
    sharpness_state: PyTree[Array]
    order: tuple[Array, Array] | None
    key: Array  # a PRNG key array: one key, or one per run
    step: Array
    finite: Array

    @property
    def tracker(self):
        """Deprecated: `sharpness_state`."""
        warnings.warn(
            "`TrainState.tracker` is deprecated and will be removed in the next "
            "release: use `TrainState.sharpness_state`.",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.sharpness_state

    def runs(self) -> RunState:
        """The per-run part (every field but `step`)."""
        return RunState(**{f: getattr(self, f) for f in _RUN_FIELDS})

    @staticmethod
    def of(runs: RunState, step) -> "TrainState":
        """The state of `runs` at `step` (the inverse of `runs()`)."""
        return TrainState(step=step, **{f: getattr(runs, f) for f in _RUN_FIELDS})

    def take(self, i: int) -> "TrainState":
        """Run `i` of a stacked state, with the shared step counter: the state a
        single run would have (what `train(..., resume=...)` of that run takes)."""
        return TrainState.of(jax.tree.map(lambda a: a[i], self.runs()), self.step)

    @staticmethod
    def stack(states: "list[TrainState]") -> "TrainState":
        """The stacked state of single runs at the same step (the inverse of
        `take`); one state is returned as it is.

        **Raises:** `ValueError` when the states are at different steps.
        """
        states = list(states)
        steps = {int(s.step) for s in states}
        if len(steps) != 1:
            raise ValueError(
                f"Only states at the same step stack, got steps {sorted(steps)}."
            )
        if len(states) == 1:
            return states[0]
        runs = [s.runs() for s in states]
        return TrainState.of(
            jax.tree.map(lambda *xs: jnp.stack(xs), *runs), states[0].step
        )


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """What `train` returns.

    - `model`: the model after the last step run (a `Stack` for stacked runs).
    - `history`: one row per step, a dict of NumPy arrays keyed by `LOOP_KEYS` and
      the tuner's `info` keys (see `train`); for stacked runs each array has a
      leading run axis, and the rows of a run after it stopped are NaN in every
      column but `step`.
    - `state`: the final `TrainState` (`train(..., resume=state)` continues).
    - `diverged_at`: the step whose loss or gradient was not finite, or `None`; a
      list of those, one per run, for stacked runs.
    - `nonfinite`: what was not finite at that step (`"loss"`, `"gradient"`), or
      `None` (a list for stacked runs).
    """

    model: eqx.Module
    history: History
    state: TrainState
    diverged_at: int | None | list[int | None]
    nonfinite: str | None | list[str | None]

    @property
    def tuner_state(self):
        return self.state.tuner_state

    @property
    def sharpness_state(self):
        return self.state.sharpness_state

    def unstack(self) -> list["TrainResult"]:
        """The runs of a stacked result as separate results, each history cut at its
        run's last step (as a single run's would be)."""
        if not isinstance(self.model, Stack):
            return [self]
        results = []
        for i in range(len(self.model)):
            end = len(self.history["step"][i])
            if self.diverged_at[i] is not None:
                end = self.diverged_at[i] + 1 - int(self.history["step"][i][0])
            history = {k: v[i][:end] for k, v in self.history.items()}
            results.append(
                TrainResult(
                    self.model[i],
                    history,
                    self.state.take(i),
                    self.diverged_at[i],
                    self.nonfinite[i],
                )
            )
        return results
