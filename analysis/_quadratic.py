"""The quadratic model of the top Hessian eigenmode, and what it says of the tuners.

Near a minimum `w*`, the loss along the top eigenvector `u` of the Hessian is

    f(w) = 1/2 lambda a^2,        a = <u, w - w*>,        lambda = the sharpness,

so that `grad f = lambda a u`, `||grad f||^2 = lambda^2 a^2` and `f(w - gamma grad f)
= 1/2 lambda a^2 (1 - gamma lambda)^2`. Everything below follows from these three
lines (Section 4 of the paper): the Armijo tuner accepts only steps below
`2 (1 - c) / lambda`, the Polyak step is `min(1 / (2 lambda), gamma_max)`, and both
lie below the edge of stability `2 / lambda` beyond which gradient descent diverges.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Scalar

from eqtuners.internal import checked_float, checked_int, tree_dtype

from ._simulate import AbstractDynamicsModel


class TopEigenmodeQuadratic(AbstractDynamicsModel):
    """`f(w) = 1/2 sum_i lambda_i <u_i, w>^2`: the top eigenmode `(lambda_0, u_0)`
    and, optionally, further modes with smaller eigenvalues (minimum at `w = 0`).

    With `eigenvectors=None`, the parameters are the coordinates `a_i` themselves (a
    vector with one entry per mode); otherwise they are vectors `w` of dimension
    `dim` and `a = U w` for the orthonormal rows `u_i` of `U`.

    **Arguments:**

    - `eigenvalues`: `lambda_0` (a number) or `(lambda_0, lambda_1, ...)`, all > 0,
      the first the largest: it is the sharpness.
    - `eigenvectors`: `None`, or an array `(modes, dim)` with orthonormal rows.
    """

    eigenvalues: Float[Array, " modes"]
    eigenvectors: Float[Array, "modes dim"] | None

    def __init__(self, eigenvalues, eigenvectors=None):
        eigenvalues = jnp.atleast_1d(
            checked_float("eigenvalues", eigenvalues, lower=0.0)
        )
        if eigenvalues.ndim != 1:
            raise ValueError(
                f"`eigenvalues` must be a number or a vector, got shape "
                f"{eigenvalues.shape}."
            )
        if eigenvectors is not None:
            eigenvectors = jnp.asarray(eigenvectors)
            if eigenvectors.ndim != 2 or eigenvectors.shape[0] != eigenvalues.size:
                raise ValueError(
                    f"`eigenvectors` must have shape ({eigenvalues.size}, dim), got "
                    f"{eigenvectors.shape}."
                )
        # Values can be checked only outside of a trace.
        if not isinstance(eigenvalues, jax.core.Tracer):
            values = np.asarray(eigenvalues)
            if np.any(values[1:] > values[0]):
                raise ValueError(
                    "`eigenvalues` must start with the largest (the top eigenmode), "
                    f"got {values}."
                )
        if eigenvectors is not None and not isinstance(eigenvectors, jax.core.Tracer):
            vectors = np.asarray(eigenvectors, float)
            gram = vectors @ vectors.T
            if not np.allclose(gram, np.eye(len(gram)), atol=1e-5):
                raise ValueError("`eigenvectors` must have orthonormal rows.")
        self.eigenvalues = eigenvalues
        self.eigenvectors = eigenvectors

    def coordinates(self, params: Array) -> Array:
        """The coordinates `a_i = <u_i, w>` of `params` along the modes."""
        return params if self.eigenvectors is None else self.eigenvectors @ params

    def loss(self, params: Array) -> Scalar:
        a = self.coordinates(params)
        return 0.5 * jnp.sum(self.eigenvalues * a**2)

    def grad(self, params: Array) -> Array:
        """`grad f(w) = sum_i lambda_i a_i u_i`."""
        scaled = self.eigenvalues * self.coordinates(params)
        return scaled if self.eigenvectors is None else self.eigenvectors.T @ scaled

    def sharpness(self, params: Array | None = None) -> Scalar:
        """The top eigenvalue `lambda_0` (the same everywhere)."""
        return self.eigenvalues[0]

    def curvature_along_gradient(self, params: Array) -> Scalar:
        """`kappa = g^T H g / ||g||^2 = sum lambda_i^3 a_i^2 / sum lambda_i^2 a_i^2`:
        a weighted mean of the eigenvalues, between the smallest and `lambda_0`, equal
        to `lambda_0` when `w` lies along the top mode."""
        a = self.coordinates(params)
        weights = (self.eigenvalues * a) ** 2
        return jnp.sum(weights * self.eigenvalues) / jnp.sum(weights)


def edge_of_stability(sharpness) -> Array:
    """`2 / lambda`: gradient descent with a constant step `gamma` multiplies the top
    coordinate by `1 - gamma lambda` each step, so it converges iff
    `|1 - gamma lambda| < 1`, i.e. `gamma < 2 / lambda`, and diverges above.
    """
    return 2 / checked_float("sharpness", sharpness, lower=0.0)


def armijo_acceptance_bound(sharpness, c=1e-4) -> Array:
    """`2 (1 - c) / lambda`: the largest step the Armijo condition accepts.

    The condition `f(w - gamma g) <= f(w) - c gamma ||g||^2` reads, on the model,
    `1/2 lambda a^2 (1 - gamma lambda)^2 <= 1/2 lambda a^2 - c gamma lambda^2 a^2`;
    dividing by `1/2 lambda a^2 > 0` gives `-2 gamma lambda + gamma^2 lambda^2 <= -2 c
    gamma lambda`, i.e. `gamma <= 2 (1 - c) / lambda`: the accepted steps form the
    interval `[0, 2 (1 - c) / lambda]`, below the edge of stability by a factor `1 - c`.

    With several modes, `f(w - gamma g) = f(w) - gamma ||g||^2 + 1/2 gamma^2 g^T H g`,
    so the same algebra gives `gamma <= 2 (1 - c) / kappa` with `kappa` the curvature
    along the gradient (`TopEigenmodeQuadratic.curvature_along_gradient`): pass
    `kappa` as `sharpness`. As `kappa <= lambda_0`, this bound is *at least*
    `2 (1 - c) / lambda_0`, and it exceeds it when the gradient lies mostly along the
    flatter modes.

    **Arguments:**

    - `sharpness`: `lambda` (or `kappa`), > 0.
    - `c`: the sufficient-decrease constant, in (0, 1).
    """
    sharpness = checked_float("sharpness", sharpness, lower=0.0)
    c = checked_float("c", c, lower=0.0, upper=1.0)
    return 2 * (1 - c) / sharpness


def polyak_stepsize(sharpness, max_stepsize=1.0) -> Array:
    """`min(1 / (2 lambda), gamma_max)`: the Polyak step (with `f* = 0`) on the model.

    `(f(w) - f*) / ||g||^2 = (1/2 lambda a^2) / (lambda^2 a^2) = 1 / (2 lambda)`, the
    same at every `a != 0`, then capped: a quarter of the edge of stability.

    **Arguments:**

    - `sharpness`: `lambda`, > 0.
    - `max_stepsize`: the cap `gamma_max`, > 0.
    """
    sharpness = checked_float("sharpness", sharpness, lower=0.0)
    max_stepsize = checked_float("max_stepsize", max_stepsize, lower=0.0)
    return jnp.minimum(1 / (2 * sharpness), max_stepsize)


def armijo_grid_stepsize(
    acceptance_bound,
    max_stepsize=1.0,
    decrease_factor=0.8,
    max_backtracks: int = 100,
) -> Array:
    """The step `eqtuners.Armijo` returns when it accepts exactly `[0, bound]`.

    The tuner tries `gamma_k = gamma_max d^k` for `k = 0, 1, ..., max_backtracks` and
    returns the first accepted, i.e. the largest grid point `<= bound`:
    `k = max(0, ceil(log(bound / gamma_max) / log d))`, or 0 (a failed search) if that
    `k` exceeds `max_backtracks`. Hence, when it succeeds,
    `d min(bound, gamma_max) < gamma_k <= min(bound, gamma_max)`. On the quadratic
    model `bound = armijo_acceptance_bound(lambda, c)`; on any slice
    `s -> f(w - s g)` that is convex, `bound = largest_armijo_stepsize(f, w, c)`.

    **Arguments:**

    - `acceptance_bound`: the largest accepted step, > 0.
    - `max_stepsize`, `decrease_factor`, `max_backtracks`: the tuner's (see
      `eqtuners.Armijo`).
    """
    bound = checked_float("acceptance_bound", acceptance_bound, lower=0.0)
    max_stepsize = checked_float("max_stepsize", max_stepsize, lower=0.0)
    decrease_factor = checked_float(
        "decrease_factor", decrease_factor, lower=0.0, upper=1.0
    )
    max_backtracks = checked_int("max_backtracks", max_backtracks, lower=0)
    return _grid_step(bound, max_stepsize, decrease_factor, max_backtracks)


# Jitted so that `decrease_factor**k` is computed as inside the tuner's (traced)
# loop: eagerly, JAX would specialise the power to each concrete `k`.
@eqx.filter_jit
def _grid_step(bound, max_stepsize, decrease_factor, max_backtracks):
    dtype = tree_dtype((bound, max_stepsize))

    def grid(k):  # as the tuner computes its trials
        return (jnp.asarray(max_stepsize, dtype) * decrease_factor**k).astype(dtype)

    estimate = jnp.log(bound / max_stepsize) / jnp.log(decrease_factor)
    k = jnp.maximum(jnp.ceil(estimate), 0).astype(int)
    # The logarithms may be off by one at a grid point: settle on the grid itself.
    k = jnp.where((k > 0) & (grid(k - 1) <= bound), k - 1, k)
    k = jnp.where(grid(k) > bound, k + 1, k)
    return jnp.where(k <= max_backtracks, grid(k), 0).astype(dtype)
