"""Shared problems for the tests, small so compiled functions are reused."""

import functools

import equinox as eqx
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


# --- Spectra and Hessians that change between measurements (LOBPCG, RecycledRitz) --

DIM = 24


def spectrum(top, seed=0, low=-1.0, high=1.0):
    """`top` followed by eigenvalues uniform in [low, high], DIM in all."""
    rest = np.random.default_rng(seed).uniform(low, high, DIM - len(top))
    return np.concatenate([top, rest])


SPECTRA = {
    "separated": spectrum([10.0, 5.0, 3.0, 2.0]),
    "clustered_top": spectrum([100.0, 99.9, 99.8, 99.0], low=0.0, high=50.0),
    "negative_dominant": spectrum([3.0, 1.0, 0.9, -8.0, -20.0]),
    "opposite_pair": spectrum([3.0, -2.97, 0.5, 0.1], low=-0.1, high=0.1),
}


def swapped_pair(dim=DIM, top=1.0, second=0.99, seed=5):
    """Two Hessians with the same eigenvectors, whose two top eigenvalues `top` and
    `second` trade places: the top eigenvector of the first is an eigenvector of
    the second with eigenvalue `second`."""
    rest = np.random.default_rng(seed).uniform(0.0, 0.5, dim - 2)
    first, _ = random_quadratic(seed, dim, np.concatenate([[top, second], rest]))
    after, _ = random_quadratic(seed, dim, np.concatenate([[second, top], rest]))
    return first, after


@eqx.filter_jit
def track(estimator, matrices, key):
    """`update` at each Hessian in turn, from `init`, as the training loop does."""
    params = jnp.zeros(matrices.shape[-1], matrices.dtype)

    def measure(state, inputs):
        matrix, key = inputs
        fn = quadratic(matrix, jnp.zeros_like(params))
        estimate, state, info = estimator.update(fn, params, state, key)
        return state, (estimate, info)

    keys = jax.random.split(key, matrices.shape[0])
    return jax.lax.scan(measure, estimator.init(params), (matrices, keys))[1]
