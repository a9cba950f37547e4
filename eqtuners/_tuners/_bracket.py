"""The curvature bracket that every Armijo search gives for free.

Along the gradient, the quadratic model of the objective is

    f(w - s g) ~ f - s G + s^2/2 kappa G,   G = ||g||^2,   kappa = g^T H g / G,

`kappa` the curvature along the gradient (`eqtuners.directional_curvature`). On this
model the Armijo test against a reference `R >= f`, `f(w - s g) <= R - c s G`,
holds if and only if

    kappa <= U(s) = 2 (1 - c) / s + 2 (R - f) / (s^2 G).

`U` decreases in `s`, so an accepted trial `s` bounds `kappa` from above and a
rejected one from below: the largest accepted trial and the smallest rejected trial
give the tightest bracket

    U(smallest rejected) < kappa <= U(largest accepted).

For the paper's monotone search (`R = f`) after `b >= 1` backtracks by `rho`, this is
`2 (1 - c) rho / s < kappa <= 2 (1 - c) / s` for the accepted step `s` (issue 19).
On a true quadratic the bracket holds exactly (to the rounding of the test); on a
network it is the curvature of the quadratic model that makes the same decisions,
which `kappa` is close to when the step is short compared with the scale on which
the curvature changes. A trial whose objective is NaN or infinite counts as
rejected, as in the search.
"""

import jax.numpy as jnp
from jaxtyping import Array, Bool, Scalar


def curvature_bound(c, excess: Scalar, grad_sq_norm: Scalar, stepsize: Scalar):
    """`U(s) = 2 (1 - c) / s + 2 (R - f) / (s^2 G)`, with `excess = R - f >= 0`
    (the second term is exactly 0 for the monotone search)."""
    slack = jnp.where(
        excess > 0, 2 * excess / (stepsize * stepsize * grad_sq_norm), 0
    ).astype(stepsize.dtype)
    return 2 * (1 - c) / stepsize + slack


def curvature_bracket(
    c,
    excess: Scalar,
    grad_sq_norm: Scalar,
    accepted: Bool[Array, ""],
    largest_accepted: Scalar,
    rejected: Bool[Array, ""],
    smallest_rejected: Scalar,
) -> tuple[Scalar, Scalar]:
    """`(lower, upper)` with `lower < kappa <= upper` on the quadratic model.

    `upper = U(largest_accepted)` when a trial was accepted, else `+inf`; `lower =
    U(smallest_rejected)` when a trial was rejected, else `-inf` (a first trial
    accepted rejects nothing). At a zero gradient `kappa` is undefined and the
    bracket is `(-inf, inf)`. Both in the dtype of the steps.
    """
    dtype = largest_accepted.dtype
    moving = grad_sq_norm > 0
    upper = curvature_bound(c, excess, grad_sq_norm, largest_accepted)
    lower = curvature_bound(c, excess, grad_sq_norm, smallest_rejected)
    upper = jnp.where(accepted & moving, upper, jnp.inf).astype(dtype)
    lower = jnp.where(rejected & moving, lower, -jnp.inf).astype(dtype)
    return lower, upper
