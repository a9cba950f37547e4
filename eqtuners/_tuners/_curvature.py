"""The curvature along the gradient for the tuners that read it, at the least cost.

A tuner needs the scalar `kappa = g^T H g / ||g||^2`, not the vector `H g`. It is the
second derivative of `t -> f(w + t u)` at 0 for the unit gradient `u = g / ||g||`,
which forward-over-forward differentiation (`jax.jvp` of `jax.jvp`) gives by pushing
two tangents forward through the model, with no second backward pass. Next to the
reverse pass that gives the value and the gradient, whose forward pass XLA shares
with it, this costs less than a Hessian-vector product, even one taken from the
gradient's own linearisation (`value_grad_and_curvature`, forward over reverse): the
second tangent pass replaces the backward pass of the tangent.
`python -m benchmarks.tuner_speed` times the three side by side (its `pieces`).
"""

import jax
import jax.numpy as jnp

from .._sharpness._hvp import normalise
from .._tree import tree_dot


def curvature_along(fn, params, direction):
    """`d^T H d / ||d||^2` for the Hessian `H` of `fn` at `params`, by
    forward-over-forward differentiation along the unit direction; NaN for a zero
    direction. In units of `fn` per squared unit of `params`.

    **Arguments:** `fn`, `params -> scalar`; `params`; `direction`, a pytree like
    `params`.
    """
    unit = normalise(direction)

    def slope(p):
        return jax.jvp(fn, (p,), (unit,))[1]

    second = jax.jvp(slope, (params,), (unit,))[1]
    return jnp.where(tree_dot(direction, direction) > 0, second, jnp.nan)


def value_grad_and_curvature_along_grad(fn, params):
    """`(value, grad, kappa)`: `fn(params)`, its gradient (reverse mode) and the
    curvature along that gradient (`curvature_along`), NaN at a zero gradient."""
    value, grad = jax.value_and_grad(fn)(params)
    return value, grad, curvature_along(fn, params, grad)
