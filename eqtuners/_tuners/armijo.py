import equinox as eqx
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array

from .._tree import tree_axpy, tree_dot, tree_dtype
from .._validation import checked_float, checked_int
from ._base import AbstractTuner


class Armijo(AbstractTuner):
    """Backtracking line search on the Armijo (sufficient decrease) condition.

    Trials run over the grid `s_k = s_0 * decrease_factor^k`, k = 0, 1, ...,
    `max_backtracks`, and the first step that satisfies

        f(w - s_k * grad) <= f(w) - c * s_k * ||grad||^2

    is accepted; a trial whose objective is NaN or infinite counts as a violation.
    The search is a bounded `lax.while_loop`: it stops at the first acceptance.

    The first trial `s_0` is `max_stepsize` at every step (the paper's rule), or, when
    `increase_factor` is given, `min(increase_factor * previous, max_stepsize)`, where
    `previous` is the step accepted at the previous step.

    If no trial is accepted, the step **fails**: the returned step size is 0 (the
    parameters do not move), `info["failed"]` is true, and the next step starts again
    from `max_stepsize`. Nothing else is remembered from a failure, so one bad
    batch or one NaN trial never stalls the search at later steps.

    **Arguments:**

    - `c`: the sufficient-decrease constant, in (0, 1) (the paper: 1e-4).
    - `max_stepsize`: the largest step ever tried, > 0 (the paper: 1).
    - `decrease_factor`: the shrink factor between trials, in (0, 1) (the paper: 0.8).
    - `max_backtracks`: the number of shrinkings after the first trial, so at most
      `max_backtracks + 1` objective evaluations per step. The default, 100, reaches
      `0.8^100 ~ 2e-10` times `max_stepsize`.
    - `increase_factor`: `None` (the default) to start every search from
      `max_stepsize`, or a number >= 1 to start from the previous step times it.

    `info` holds `num_evals` (objective evaluations in this step), `failed`,
    `accepted_stepsize` (the step accepted, 0 on failure) and `initial_stepsize`
    (the first trial).
    """

    c: Array
    max_stepsize: Array
    decrease_factor: Array
    increase_factor: Array | None
    max_backtracks: int = eqx.field(static=True)

    def __init__(
        self,
        c=1e-4,
        max_stepsize=1.0,
        decrease_factor=0.8,
        max_backtracks=100,
        increase_factor=None,
    ):
        self.c = checked_float("c", c, lower=0.0, upper=1.0)
        self.max_stepsize = checked_float("max_stepsize", max_stepsize, lower=0.0)
        self.decrease_factor = checked_float(
            "decrease_factor", decrease_factor, lower=0.0, upper=1.0
        )
        if increase_factor is not None:
            increase_factor = checked_float(
                "increase_factor", increase_factor, lower=1.0, lower_open=False
            )
        self.increase_factor = increase_factor
        self.max_backtracks = checked_int("max_backtracks", max_backtracks, lower=0)

    def init(self, params):
        # The step accepted at the previous step (used when `increase_factor` is set).
        return jnp.asarray(self.max_stepsize, tree_dtype(params))

    def step(self, fn, params, value, grad, state):
        dtype = tree_dtype(params)
        if self.increase_factor is None:
            initial = self.max_stepsize
        else:
            initial = jnp.minimum(self.increase_factor * state, self.max_stepsize)
        initial = jnp.asarray(initial, dtype)
        slope = self.c * tree_dot(grad, grad)

        def trial_stepsize(k):
            return (initial * self.decrease_factor**k).astype(dtype)

        def keep_searching(carry):  # no trial can pass when f(w) is NaN or infinite
            k, accepted = carry
            return ~accepted & (k <= self.max_backtracks) & jnp.isfinite(value)

        def try_next(carry):
            k, _ = carry
            stepsize = trial_stepsize(k)
            trial_value = fn(tree_axpy(-stepsize, grad, params))
            accepted = jnp.isfinite(trial_value) & (
                trial_value <= value - stepsize * slope
            )
            return k + 1, accepted

        num_evals, accepted = lax.while_loop(
            keep_searching, try_next, (jnp.array(0), jnp.array(False))
        )
        stepsize = jnp.where(accepted, trial_stepsize(num_evals - 1), 0).astype(dtype)
        new_state = jnp.where(accepted, stepsize, self.max_stepsize).astype(dtype)
        info = {
            "num_evals": num_evals,
            "failed": ~accepted,
            "accepted_stepsize": stepsize,
            "initial_stepsize": initial,
        }
        return stepsize, new_state, info
