import equinox as eqx
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array

from .._tree import tree_axpy, tree_dot, tree_dtype, tree_norm
from .._validation import checked_float, checked_int
from ._base import AbstractSharpnessEstimator
from ._hvp import hessian_vector_product, normalise


class PowerIteration(AbstractSharpnessEstimator):
    """The paper's estimator: power iteration on Hessian-vector products.

    `v <- Hv / ||Hv||`, with the estimate the Rayleigh quotient `v^T H v`, stopped
    when

        |lambda_k - lambda_{k-1}| <= tol * |lambda_k|      (tol = 1e-3)

    or after `max_iters` (1000) products. The tolerance is **relative** because
    sharpness spans orders of magnitude along a run (about 2 at step size 1,
    thousands at small steps): a relative rule gives every measurement the same
    number of significant digits.

    Power iteration converges to the eigenvalue of largest **magnitude**, signed, so
    a dominant negative eigenvalue shows as a negative sharpness (Lanczos finds the
    largest algebraic eigenvalue instead). It converges at the rate
    `|lambda_2 / lambda_1|` per product, and its rule stops on a small *change*,
    which comes early (with the estimate still low) when the top eigenvalues are
    clustered.

    **Arguments:**

    - `tol`: the relative change in the estimate below which iteration stops, >= 0.
    - `max_iters`: the most Hessian-vector products, >= 1.
    - `warm_start`: whether `update` starts from the previous eigenvector (the paper
      starts every measurement from a random direction).

    `info` holds `num_hvps`, `converged` (whether the tolerance was met),
    `residual`, `||Hv - lambda v||` for the last iterate `v` (computed from the last
    product, at no extra cost), and `top_k`, the estimate as an array of one.
    """

    tol: Array
    max_iters: int = eqx.field(static=True)
    warm_start: bool = eqx.field(static=True)

    def __init__(self, tol=1e-3, max_iters: int = 1000, *, warm_start: bool = False):
        self.tol = checked_float("tol", tol, lower=0.0, lower_open=False)
        self.max_iters = checked_int("max_iters", max_iters)
        self.warm_start = bool(warm_start)

    def run(self, fn, params, start):
        dtype = tree_dtype(params)
        zero = jnp.zeros((), dtype)
        tol = jnp.asarray(self.tol, dtype)

        def not_converged(estimate, previous):
            return ~(jnp.abs(estimate - previous) <= tol * jnp.abs(estimate))

        def keep_going(carry):
            k, _, estimate, previous, _, _ = carry
            going = (k < self.max_iters) & not_converged(estimate, previous)
            return (k == 0) | (going & jnp.isfinite(estimate))  # stop at a NaN

        def iterate(carry):
            k, vector, estimate, _, _, _ = carry
            product = hessian_vector_product(fn, params, vector)
            estimate, previous = tree_dot(vector, product), estimate
            return k + 1, normalise(product), estimate, previous, vector, product

        init = (jnp.array(0), start, zero, zero, start, start)
        num_hvps, _, estimate, previous, vector, product = lax.while_loop(
            keep_going, iterate, init
        )
        info = {
            "num_hvps": num_hvps,
            "converged": ~not_converged(estimate, previous),
            "residual": tree_norm(tree_axpy(-estimate, vector, product)),
            "top_k": estimate[None],
        }
        return estimate, vector, info
