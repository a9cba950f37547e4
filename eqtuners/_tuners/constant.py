import jax.numpy as jnp
from jaxtyping import Array

from .._tree import tree_dtype
from .._validation import checked_float
from ._base import AbstractTuner


class Constant(AbstractTuner):
    """Plain gradient descent: the same step size at every step.

    **Arguments:**

    - `stepsize`: the step size, a number > 0.

    `info` holds only the key every tuner has, `nonfinite_input`.
    """

    stepsize: Array

    def __init__(self, stepsize):
        self.stepsize = checked_float("stepsize", stepsize, lower=0.0, scalar=True)

    def validated(self):
        return Constant(self.stepsize)

    def init(self, params):
        return None

    def propose(self, fn, params, value, grad, state):
        return jnp.asarray(self.stepsize, tree_dtype(params)), state, {}
