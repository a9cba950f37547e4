"""Hessian-vector products, unit vectors, and the curvature along one direction."""

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, PRNGKeyArray, PyTree, Scalar

from .._tree import tree_axpy, tree_dot, tree_norm, tree_scale
from .._validation import checked_params
from ._operator import as_operator

# The default `residual_tol` of the estimators whose stopping rule is not the
# residual (power iteration, the directional curvature); see `PowerIteration`.
RESIDUAL_TOL = 0.1


def hessian_vector_product(
    fn: Callable[[PyTree[Array]], Scalar], params: PyTree[Array], vector: PyTree[Array]
) -> PyTree[Array]:
    """`H(params) @ vector` for the Hessian `H` of `fn`, forward over reverse.

    It costs about as much as two or three gradients and never forms the Hessian; an
    objective evaluated in chunks of examples (`objective(..., chunk_size=...)`) gives
    products evaluated in the same chunks.

    **Arguments:**

    - `fn`: the objective, `params -> scalar`.
    - `params`: where to differentiate: a pytree of floating-point arrays.
    - `vector`: a pytree like `params`.

    **Returns:** a pytree like `params`, in its dtypes.

    **Raises:** `ValueError` when `params` holds a leaf that is not a floating-point
    array.
    """
    checked_params("params", params)
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


def work_dtype(params: PyTree[Array]):
    """The dtype of the estimators' small dense algebra and stored bases: the
    parameters' (promoted) dtype, widened to at least float32.

    The products themselves run in the parameters' dtypes; only the
    orthogonalisation, the Rayleigh-Ritz problems and the eigendecompositions
    (which `jnp.linalg.eigh` does not offer below float32, and which lose all
    accuracy in bfloat16's 8 significant bits) use this one.
    """
    dtype = jnp.result_type(*jax.tree.leaves(params))
    return jnp.promote_types(dtype, jnp.float32)


def flat_hessian(operator):
    """The Hessian of an `AbstractHessianOperator` as an operator on flat vectors.

    **Returns:** `(matvec, to_tree, from_tree)`: `matvec(v)` is `H v` for a flat
    vector `v` in `work_dtype(params)`, computed in the parameters' dtypes by
    `operator.mv`; `to_tree` and `from_tree` convert between flat vectors (in the
    work dtype) and pytrees like `params` (in its dtypes).
    """
    params = operator.params
    flat, unravel = ravel_pytree(params)
    work = work_dtype(params)

    def to_tree(vector):
        tree = unravel(vector.astype(flat.dtype))
        return jax.tree.map(lambda a, p: a.astype(p.dtype), tree, params)

    def from_tree(tree):
        return ravel_pytree(tree)[0].astype(work)

    def matvec(vector):
        return from_tree(operator.mv(to_tree(vector)))

    return matvec, to_tree, from_tree


def directional_curvature(
    fn: Callable[[PyTree[Array]], Scalar],
    params: PyTree[Array],
    direction: PyTree[Array],
    *,
    residual_tol=RESIDUAL_TOL,
    operator=None,
) -> tuple[Scalar, dict[str, Array]]:
    """The curvature of `fn` along `direction`, `d^T H d / ||d||^2`, from one product.

    Along the gradient `g`, this is the curvature that a gradient step sees: the
    quadratic model of the step `w - s g` is `f - s ||g||^2 + s^2/2 g^T H g`. It lies
    between the smallest and the largest Hessian eigenvalue.

    **Arguments:**

    - `fn`: the objective, `params -> scalar`.
    - `params`: where to measure: a pytree of floating-point arrays.
    - `direction`: a pytree like `params`.
    - `residual_tol`: `converged` holds when `||H u - curvature u|| <= residual_tol
      * |curvature|` for the unit direction `u`.
    - `operator`: the Hessian of `fn` at `params` as an `AbstractHessianOperator`
      to take the product from (`hessian_operator`: shared with other
      measurements at the same point); `None`: a fresh product.

    **Returns:** `(curvature, info)`: NaN for a zero direction; `info` has the keys of
    the estimators: `num_hvps` = 1; `converged`: whether `u` is an eigenvector at
    the relative residual `residual_tol`, so that the curvature is also an
    eigenvalue (the curvature itself is exact whatever `converged` says);
    `residual` = `||H u - curvature u||`; `top_k` = the curvature, shape (1,); and
    `eigenvector` = `u`.

    **Raises:** `ValueError` when `params` holds a leaf that is not a floating-point
    array.
    """
    checked_params("params", params)
    unit = normalise(direction)
    product = as_operator(fn, params, operator).mv(unit)
    return curvature_and_info(unit, product, direction, residual_tol)


def small_residual(residual, estimate, rtol):
    """`residual <= rtol * |estimate|`, false for anything not finite (a zero
    Hessian, with residual and estimate both zero, passes)."""
    return jnp.isfinite(estimate) & (residual <= rtol * jnp.abs(estimate))


def curvature_and_info(unit, product, direction, residual_tol):
    """The directional curvature and its `info` from `H u` for the unit `u`."""
    curvature = tree_dot(unit, product)
    nonzero = tree_dot(direction, direction) > 0
    curvature = jnp.where(nonzero, curvature, jnp.nan)
    residual = tree_norm(tree_axpy(-curvature, unit, product))
    info = {
        "num_hvps": jnp.array(1),
        "converged": small_residual(residual, curvature, residual_tol),
        "residual": residual,
        "top_k": curvature[None],
        "eigenvector": unit,
    }
    return curvature, info
