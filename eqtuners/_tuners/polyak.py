import jax.numpy as jnp
from jaxtyping import Array

from .._tree import tree_dot, tree_dtype
from .._validation import checked_float
from ._base import AbstractTuner


class Polyak(AbstractTuner):
    """The Polyak step size, capped (SPS_max of Loizou et al., 2021):

        stepsize = min((f(w) - f_min) / (||grad||^2 + eps), max_stepsize).

    Edge cases, chosen so the parameters never become NaN through the step size:

    - a zero gradient (with `eps = 0`) gives an unclipped step of `+inf` and hence
      `max_stepsize`; the update `max_stepsize * 0` leaves the parameters unchanged;
    - `f(w) < f_min` gives a step of 0 rather than a step uphill;
    - a NaN or infinite `f(w)` or gradient gives a step of 0 (`info["nonfinite_input"]`,
      see `AbstractTuner.step`), never the cap.

    **Arguments:**

    - `max_stepsize`: the cap, a number > 0 (the paper: 1).
    - `f_min`: the estimate of the minimal value, a number (the paper: 0).
    - `eps`: added to `||grad||^2`, a number >= 0 (the paper: 0).

    `info` holds `unclipped_stepsize` (before the cap and the clip at 0), `capped`
    (whether the cap was hit) and `nonfinite_input`.
    """

    max_stepsize: Array
    f_min: Array
    eps: Array

    def __init__(self, max_stepsize=1.0, f_min=0.0, eps=0.0):
        self.max_stepsize = checked_float(
            "max_stepsize", max_stepsize, lower=0.0, scalar=True
        )
        self.f_min = checked_float("f_min", f_min, scalar=True)
        self.eps = checked_float("eps", eps, lower=0.0, lower_open=False, scalar=True)

    def validated(self):
        return Polyak(self.max_stepsize, self.f_min, self.eps)

    def init(self, params):
        return None

    def propose(self, fn, params, value, grad, state):
        dtype = tree_dtype(params)
        gap = jnp.asarray(value - self.f_min, dtype)
        denominator = tree_dot(grad, grad) + self.eps
        positive = denominator > 0
        unclipped = gap / jnp.where(positive, denominator, 1)
        # +inf at a zero gradient, but a NaN gap stays NaN (and is not "capped").
        unclipped = jnp.where(positive | jnp.isnan(gap), unclipped, jnp.inf)
        capped = unclipped >= self.max_stepsize
        stepsize = jnp.clip(unclipped, 0, self.max_stepsize).astype(dtype)
        return stepsize, state, {"unclipped_stepsize": unclipped, "capped": capped}
