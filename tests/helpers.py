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


def small_run(tuner, num_steps, **kwargs):
    """`et.train` of `tuner` on the small MLP and 64 digits, key 0."""
    return et.train(
        small_mlp(), tuner, small_data(64), num_steps, key=jax.random.key(0), **kwargs
    )


def assert_resumes_bit_identically(run, tuner, num_steps):
    """`run(tuner, num_steps, ...)` resumed from the state after its first call
    gives the rows of the uninterrupted run bit for bit (the same program);
    returns the uninterrupted run."""
    states = []
    whole = run(tuner, num_steps, callback=lambda rows, state: states.append(state))
    resumed = run(tuner, num_steps, resume=states[0])
    first = int(resumed.history["step"][0])
    assert 0 < first < num_steps
    for k, v in whole.history.items():
        np.testing.assert_array_equal(v[first:], resumed.history[k], err_msg=k)
    return whole


def scaled_eigenvalues(rng, log_scale: float, negative: bool, dim: int = 6):
    """`dim` eigenvalues spread over two decades below `10^log_scale`, the first
    negated when `negative` (a non-convex quadratic)."""
    eigenvalues = 10**log_scale * rng.uniform(0.01, 1.0, dim)
    if negative:
        eigenvalues[0] *= -1
    return eigenvalues


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
