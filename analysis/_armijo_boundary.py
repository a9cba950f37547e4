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
from eqtuners.internal import checked_float, tree_axpy, tree_dot, tree_dtype

_BRACKET_STEPS = 64  # factors of 4 down from the first guess: 4^64 ~ 1e38
_SCAN_PER_OCTAVE = 16  # the scan up multiplies the step by 2^(1/16) ~ 1.044
_SCAN_STEPS = 2 * _BRACKET_STEPS * _SCAN_PER_OCTAVE  # a factor 4^64 up


def largest_armijo_stepsize(
    fn: Callable[[PyTree[Array]], Scalar],
    params: PyTree[Array],
    c=1e-4,
    *,
    tol: float | None = None,
    max_steps: int = 256,
) -> Scalar:
    """The positive root `s*` of the Armijo margin along `-grad fn(params)`.

    From `1 / kappa` (the inverse curvature along the gradient) the search goes down
    by factors of 4 to a step where the condition holds, a factor 16 further, then up
    by factors of `2^(1/16)` to the first step where it fails; the root in that
    bracket is found by `optimistix.Bisection` on `log s`, so the tolerance is
    relative. When the slice is convex, the Armijo condition holds exactly for the
    steps in `[0, s*]`. Otherwise `s*` is where it first fails above the scan's
    start, even where it holds again beyond (a failure on an interval narrower than
    a ratio of `2^(1/16)`, about 4%, can be stepped over).

    **Arguments:**

    - `fn`: the objective, `params -> scalar`, twice differentiable.
    - `params`: where the line search starts; its gradient must be nonzero.
    - `c`: the sufficient-decrease constant, in (0, 1).
    - `tol`: the tolerance on `log s*` and on the margin (default: `eps^0.75` of the
      parameters' dtype, about `2e-12` in float64).
    - `max_steps`: the most bisection steps; more raises an error.

    **Returns:** `s*`, or `inf` if the condition still holds `4^64` times beyond the
    scan's start (e.g. on a linear slice).
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

    # Lower end: the first point down from the guess where the condition holds, then
    # a factor 16 further down. From there a fine scan up (ratio 2^(1/16)) stops at
    # the first point where it fails: a failure interval above the start is found
    # whenever it is wider than that ratio, even if the condition holds again past it.
    _, lower = bracket_end(False, -1.0)
    fine = jnp.log(2.0).astype(dtype) / _SCAN_PER_OCTAVE

    def holds_next(carry):
        k, log_step = carry
        return (k < _SCAN_STEPS) & (margin(log_step + fine) <= 0)

    def scan_up(carry):
        k, log_step = carry
        return k + 1, log_step + fine

    start = lower - 2 * jnp.log(4.0).astype(dtype)
    up_steps, lower = lax.while_loop(holds_next, scan_up, (jnp.array(0), start))
    found = up_steps < _SCAN_STEPS
    upper = jnp.where(found, lower + fine, lower + 1)
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
