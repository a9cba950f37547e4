"""Sharpness: the largest eigenvalue of the objective's Hessian, as in the paper.

Hessian-vector products are computed forward-over-reverse (`jax.jvp` of `jax.grad`),
which costs about as much as two gradients and never forms the Hessian. The paper's
estimator is power iteration on these products: `v <- Hv / ||Hv||`, with the estimate
the Rayleigh quotient `v^T H v`, stopped when

    |lambda_k - lambda_{k-1}| <= tol * |lambda_k|      (tol = 1e-3)

or after `max_iters` (1000) products. The tolerance is **relative** because sharpness
spans orders of magnitude along a run (about 2 at step size 1, thousands at small
steps): a relative rule gives every measurement the same number of significant
digits, which is what the comparison of step size x sharpness with 2 needs.

Power iteration converges to the eigenvalue of largest *magnitude*; the estimate is
signed, so a dominant negative eigenvalue shows as a negative sharpness.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, PRNGKeyArray, PyTree, Scalar

from ._tree import tree_dot, tree_dtype, tree_scale


def hessian_vector_product(
    fn: Callable[[PyTree[Array]], Scalar], params: PyTree[Array], vector: PyTree[Array]
) -> PyTree[Array]:
    """`H(params) @ vector` for the Hessian `H` of `fn`, forward over reverse."""
    return jax.jvp(jax.grad(fn), (params,), (vector,))[1]


def _normalise(vector):
    norm = jnp.sqrt(tree_dot(vector, vector))
    return tree_scale(1 / jnp.where(norm > 0, norm, 1), vector)


def random_direction(key: PRNGKeyArray, params: PyTree[Array]) -> PyTree[Array]:
    """A unit vector shaped like `params`, uniformly distributed on the sphere."""
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    noise = [jax.random.normal(k, x.shape, x.dtype) for k, x in zip(keys, leaves)]
    return _normalise(jax.tree.unflatten(treedef, noise))


def sharpness(
    fn: Callable[[PyTree[Array]], Scalar],
    params: PyTree[Array],
    *,
    key: PRNGKeyArray | None = None,
    tol: float = 1e-3,
    max_iters: int = 1000,
) -> tuple[Scalar, dict[str, Array]]:
    """The largest-magnitude Hessian eigenvalue of `fn` at `params`, by power iteration.

    **Arguments:**

    - `fn`: the objective, `params -> scalar`.
    - `params`: where to measure.
    - `key`: draws the starting vector (default `jax.random.key(0)`).
    - `tol`: the relative change in the estimate below which iteration stops.
    - `max_iters`: the most Hessian-vector products.

    **Returns:** `(estimate, info)` with `info["num_hvps"]`, the Hessian-vector
    products used, and `info["converged"]`, whether the tolerance was met.
    """
    if max_iters < 1:
        raise ValueError(f"`max_iters` must be >= 1, got {max_iters}.")
    if key is None:
        key = jax.random.key(0)
    dtype = tree_dtype(params)
    zero = jnp.zeros((), dtype)

    def not_converged(estimate, previous):
        return ~(jnp.abs(estimate - previous) <= tol * jnp.abs(estimate))

    def keep_going(carry):
        k, _, estimate, previous = carry
        return (k == 0) | ((k < max_iters) & not_converged(estimate, previous))

    def iterate(carry):
        k, vector, estimate, _ = carry
        product = hessian_vector_product(fn, params, vector)
        return k + 1, _normalise(product), tree_dot(vector, product), estimate

    init = (jnp.array(0), random_direction(key, params), zero, zero)
    num_hvps, _, estimate, previous = lax.while_loop(keep_going, iterate, init)
    converged = ~not_converged(estimate, previous)
    return estimate, {"num_hvps": num_hvps, "converged": converged}
