"""The largest step the Armijo condition accepts on a one-dimensional slice, by root
finding (optimistix's bisection).

Along the slice `phi(s) = f(w - s g)`, `g = grad f(w)`, the Armijo condition is
`phi(s) <= phi(0) - c s ||g||^2`. Divided by `s ||g||^2 > 0`, it reads `m(s) <= 0`
for the *margin*

    m(s) = (phi(s) - phi(0)) / (s ||g||^2) + c,        m(0+) = -(1 - c) < 0,

since `phi'(0) = -||g||^2`. The first term is the slope of the chord from 0 to `s`
over `||g||^2`; when `phi` is convex it never decreases, so the accepted steps are
exactly `[0, s*]` with `s*` the unique positive root of `m`. On a quadratic
`phi(s) = phi(0) - s ||g||^2 + 1/2 s^2 g^T H g`, `m(s) = -(1 - c) + s kappa / 2` with
`kappa = g^T H g / ||g||^2`, and `s* = 2 (1 - c) / kappa`, the closed form of
`armijo_acceptance_bound`.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optimistix as optx
from jax import lax
from jaxtyping import Array, PyTree, Scalar

from eqtuners import hessian_vector_product
from eqtuners._tree import tree_axpy, tree_dot, tree_dtype
from eqtuners._validation import checked_float

_BRACKET_STEPS = 64  # factors of 4 either way from the first guess: 4^64 ~ 1e38


def largest_armijo_stepsize(
    fn: Callable[[PyTree[Array]], Scalar],
    params: PyTree[Array],
    c=1e-4,
    *,
    tol: float | None = None,
    max_steps: int = 256,
) -> Scalar:
    """The positive root `s*` of the Armijo margin along `-grad fn(params)`.

    The root is bracketed by factors of 4 from `1 / kappa` (the inverse curvature
    along the gradient) and then found by `optimistix.Bisection` on `log s`, so the
    tolerance is relative. When the slice is convex, the Armijo condition holds
    exactly for the steps in `[0, s*]`; otherwise `s*` is where it first fails.

    **Arguments:**

    - `fn`: the objective, `params -> scalar`, twice differentiable.
    - `params`: where the line search starts; its gradient must be nonzero.
    - `c`: the sufficient-decrease constant, in (0, 1).
    - `tol`: the tolerance on `log s*` and on the margin (default: `eps^0.75` of the
      parameters' dtype, about `2e-12` in float64).
    - `max_steps`: the most bisection steps; more raises an error.

    **Returns:** `s*`, or `inf` if the condition still holds `4^64` times beyond the
    first guess (e.g. on a linear slice).
    """
    c = checked_float("c", c, lower=0.0, upper=1.0)
    dtype = tree_dtype(params)
    if tol is None:
        tol = float(jnp.finfo(dtype).eps) ** 0.75
    value, grad = jax.value_and_grad(fn)(params)
    sq_norm = tree_dot(grad, grad)
    curvature = tree_dot(grad, hessian_vector_product(fn, params, grad)) / sq_norm
    guess = jnp.log(jnp.where(curvature > 0, 1 / curvature, 1)).astype(dtype)

    def margin(log_step):
        step = jnp.exp(log_step)
        chord = (fn(tree_axpy(-step, grad, params)) - value) / (step * sq_norm)
        # A non-finite trial counts as rejected, as in the tuner.
        return jnp.where(jnp.isfinite(chord), chord + c, jnp.inf)

    def bracket_end(accepted_there, direction):
        def keep_going(carry):
            k, log_step = carry
            return (k < _BRACKET_STEPS) & (accepted_there == (margin(log_step) <= 0))

        def move(carry):
            k, log_step = carry
            return k + 1, log_step + direction * jnp.log(4.0).astype(dtype)

        return lax.while_loop(keep_going, move, (jnp.array(0), guess))

    # Upper end: the first point up from the guess where the condition fails; lower
    # end: the first point down from the guess where it holds.
    up_steps, upper = bracket_end(True, 1.0)
    _, lower = bracket_end(False, -1.0)
    found = up_steps < _BRACKET_STEPS
    upper = jnp.where(found, upper, guess + 1)
    solution = optx.root_find(
        # Without a bracket there is no root: a zero margin ends without an error.
        lambda log_step, found: jnp.where(found, margin(log_step), 0),
        optx.Bisection(rtol=0.0, atol=tol, flip=False),
        (lower + upper) / 2,
        args=found,
        options=dict(lower=lower, upper=upper),
        max_steps=max_steps,
    )
    return jnp.where(found, jnp.exp(solution.value), jnp.inf)
