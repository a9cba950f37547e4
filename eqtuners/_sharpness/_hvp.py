"""Hessian-vector products, unit vectors, and the curvature along one direction."""

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, PRNGKeyArray, PyTree, Scalar

from .._tree import tree_axpy, tree_dot, tree_norm, tree_scale


def hessian_vector_product(
    fn: Callable[[PyTree[Array]], Scalar], params: PyTree[Array], vector: PyTree[Array]
) -> PyTree[Array]:
    """`H(params) @ vector` for the Hessian `H` of `fn`, forward over reverse.

    It costs about as much as two or three gradients and never forms the Hessian; an
    objective evaluated in chunks of examples (`objective(..., chunk_size=...)`) gives
    products evaluated in the same chunks.
    """
    return jax.jvp(jax.grad(fn), (params,), (vector,))[1]


def normalise(vector: PyTree[Array]) -> PyTree[Array]:
    """`vector / ||vector||`, or zeros for a zero vector."""
    norm = tree_norm(vector)
    return tree_scale(1 / jnp.where(norm > 0, norm, 1), vector)


def random_direction(key: PRNGKeyArray, params: PyTree[Array]) -> PyTree[Array]:
    """A unit vector shaped like `params`, uniformly distributed on the sphere.

    One draw for the flattened parameters: a draw per leaf compiles one random
    generator per leaf, which took seconds of XLA compilation for an MLP.
    """
    flat, unravel = ravel_pytree(params)
    return normalise(unravel(jax.random.normal(key, flat.shape, flat.dtype)))


def directional_curvature(
    fn: Callable[[PyTree[Array]], Scalar],
    params: PyTree[Array],
    direction: PyTree[Array],
) -> tuple[Scalar, dict[str, Array]]:
    """The curvature of `fn` along `direction`, `d^T H d / ||d||^2`, from one product.

    Along the gradient `g`, this is the curvature that a gradient step sees: the
    quadratic model of the step `w - s g` is `f - s ||g||^2 + s^2/2 g^T H g`. It lies
    between the smallest and the largest Hessian eigenvalue.

    **Arguments:**

    - `fn`: the objective, `params -> scalar`.
    - `params`: where to measure.
    - `direction`: a pytree like `params`.

    **Returns:** `(curvature, info)`: NaN for a zero direction; `info` has the keys of
    the estimators (`num_hvps` = 1, `converged` = True, `residual` =
    `||H u - curvature u||` for the unit direction `u`, `eigenvector` = `u`).
    """
    unit = normalise(direction)
    product = hessian_vector_product(fn, params, unit)
    curvature = tree_dot(unit, product)
    nonzero = tree_dot(direction, direction) > 0
    residual = tree_norm(tree_axpy(-curvature, unit, product))
    info = {
        "num_hvps": jnp.array(1),
        "converged": jnp.array(True),
        "residual": residual,
        "eigenvector": unit,
    }
    return jnp.where(nonzero, curvature, jnp.nan), info
