import jax.numpy as jnp
from jaxtyping import Array

from .._tree import tree_dtype
from .._validation import checked_float
from ._base import AbstractTuner


class Constant(AbstractTuner):
    """Plain gradient descent: the same step size at every step.

    **Arguments:**

    - `stepsize`: the step size, > 0.

    `info` is empty.
    """

    stepsize: Array

    def __init__(self, stepsize):
        self.stepsize = checked_float("stepsize", stepsize, lower=0.0)

    def init(self, params):
        return None

    def step(self, fn, params, value, grad, state):
        return jnp.asarray(self.stepsize, tree_dtype(params)), state, {}
