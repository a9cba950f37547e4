"""Linear-algebra helpers on pytrees of arrays (parameters, gradients, vectors)."""

import jax
import jax.numpy as jnp
from jaxtyping import Array, PyTree, Scalar


def tree_dot(a: PyTree[Array], b: PyTree[Array]) -> Scalar:
    """The Euclidean inner product of two pytrees with the same structure."""
    leaves = jax.tree.leaves(jax.tree.map(lambda x, y: jnp.vdot(x, y), a, b))
    return sum(leaves, start=jnp.zeros((), jnp.result_type(*leaves)))


def tree_norm(x: PyTree[Array]) -> Scalar:
    """The Euclidean norm of a pytree."""
    return jnp.sqrt(tree_dot(x, x))


def tree_axpy(alpha, x: PyTree[Array], y: PyTree[Array]) -> PyTree[Array]:
    """`alpha * x + y`, leaf by leaf, in each leaf's own dtype."""
    return jax.tree.map(lambda xi, yi: (alpha * xi + yi).astype(yi.dtype), x, y)


def tree_scale(alpha, x: PyTree[Array]) -> PyTree[Array]:
    """`alpha * x`, leaf by leaf, in each leaf's own dtype."""
    return jax.tree.map(lambda xi: (alpha * xi).astype(xi.dtype), x)


def tree_dtype(x: PyTree[Array]):
    """The floating dtype that all leaves of `x` promote to."""
    return jnp.result_type(*jax.tree.leaves(x))
