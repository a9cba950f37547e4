"""A user's own tuner, for `--tuners tests.paper_tuners:ScaledPolyak:scale=0.5`
(the suites take any `AbstractTuner` by import path)."""

import jax.numpy as jnp
from jaxtyping import Array

import eqtuners as et
from eqtuners.internal import checked_float, tree_dot, tree_dtype


class ScaledPolyak(et.AbstractTuner):
    """`scale` times the uncapped Polyak step `f / ||g||^2`, capped at
    `max_stepsize`."""

    scale: Array
    max_stepsize: Array

    def __init__(self, scale=1.0, max_stepsize=1.0):
        self.scale = checked_float("scale", scale, lower=0.0, scalar=True)
        self.max_stepsize = checked_float(
            "max_stepsize", max_stepsize, lower=0.0, scalar=True
        )

    def validated(self):
        return ScaledPolyak(self.scale, self.max_stepsize)

    def init(self, params):
        return None

    def propose(self, fn, params, value, grad, state):
        dtype = tree_dtype(params)
        step = self.scale * value / jnp.maximum(tree_dot(grad, grad), 1e-12)
        return jnp.minimum(step, self.max_stepsize).astype(dtype), state, {}


NOT_A_TUNER = "a string"
