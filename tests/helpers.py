"""Shared problems for the tests, small so compiled functions are reused."""

import functools

import jax
import jax.numpy as jnp
import numpy as np

import eqtuners as et


@functools.cache
def digits():
    return et.load_dataset("digits")


def small_data(num_examples: int = 64):
    """The first `num_examples` training examples of digits, as `(x, y)`."""
    data = digits()
    return data.train_x[:num_examples], data.train_y[:num_examples]


def small_mlp(key=0, widths=(16, 16)):
    """An MLP of the paper's shape but narrow, for 8x8 digits."""
    return et.MLP(64, 10, widths, key=jax.random.key(key))


def random_quadratic(seed: int, dim: int, eigenvalues=None):
    """`(matrix, vector)` for `f(w) = 1/2 w^T A w + b^T w`; `A` has the given
    eigenvalues (default: random in [0.1, 10]) and random eigenvectors."""
    rng = np.random.default_rng(seed)
    if eigenvalues is None:
        eigenvalues = rng.uniform(0.1, 10.0, dim)
    basis, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    matrix = basis @ np.diag(eigenvalues) @ basis.T
    return jnp.asarray((matrix + matrix.T) / 2), jnp.asarray(rng.normal(size=dim))


def quadratic(matrix, vector):
    return lambda w: 0.5 * w @ matrix @ w + vector @ w


def tree_allclose(a, b, **kwargs) -> bool:
    leaves = jax.tree.leaves(
        jax.tree.map(lambda x, y: np.allclose(x, y, **kwargs), a, b)
    )
    return all(leaves)
