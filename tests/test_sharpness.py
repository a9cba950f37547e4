import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import eqtuners as et

from .helpers import quadratic, random_quadratic


def dense_eigenvalues(fn, params):
    flat, unravel = ravel_pytree(params)
    return np.linalg.eigvalsh(dense_hessian(fn, unravel, flat))


def dense_hessian(fn, unravel, flat):
    return np.asarray(jax.jit(jax.hessian(lambda v: fn(unravel(v))))(flat))


@pytest.mark.parametrize(
    "eigenvalues, accuracy",
    [
        ([10.0, 5.0, 3.0, 1.0, 0.1, 0.0], 1e-3),  # well separated
        ([1e3, 1.0, 1.0, 0.5, 0.1, 0.01], 1e-3),  # large scale
        ([4.0, 3.0, -0.5, -1.0, 0.2, 0.1], 1e-2),  # indefinite, positive dominant
        # Clustered at the top: the paper's rule stops on a small *change*, which
        # here comes while the estimate is still a few percent low.
        ([100.0, 95.0, 90.0, 1.0, 1.0, 1.0], 5e-2),
    ],
)
def test_power_iteration_finds_the_top_eigenvalue_of_a_quadratic(
    x64, eigenvalues, accuracy
):
    matrix, vector = random_quadratic(1, 6, np.array(eigenvalues))
    fn = quadratic(matrix, vector)
    top = max(eigenvalues)
    for seed in range(3):
        estimate, info = et.sharpness(fn, jnp.ones(6), key=jax.random.key(seed))
        assert float(estimate) <= top * (1 + 1e-12)  # a Rayleigh quotient
        assert float(estimate) == pytest.approx(top, rel=accuracy)
        assert info["converged"] and 1 < int(info["num_hvps"]) < 1000
    tight, _ = et.sharpness(fn, jnp.ones(6), tol=1e-10)
    assert float(tight) == pytest.approx(top, rel=1e-6)


def test_power_iteration_returns_the_largest_magnitude_eigenvalue(x64):
    matrix, vector = random_quadratic(2, 5, np.array([3.0, 1.0, 0.5, -8.0, 0.1]))
    estimate, _ = et.sharpness(quadratic(matrix, vector), jnp.zeros(5), tol=1e-10)
    assert float(estimate) == pytest.approx(-8.0, rel=1e-6)


def test_power_iteration_stops_at_max_iters(x64):
    matrix, vector = random_quadratic(3, 4, np.array([1.0, 0.999, 0.5, 0.2]))
    fn = quadratic(matrix, vector)
    _, info = et.sharpness(fn, jnp.zeros(4), tol=1e-15, max_iters=17)
    assert int(info["num_hvps"]) == 17 and not info["converged"]


def tiny_problem():
    """A one-hidden-layer MLP on 8 random features (162 parameters), in float64."""
    model = et.MLP(8, 10, (8,), key=jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (32, 8))
    y = jax.random.randint(jax.random.key(2), (32,), 0, 10)
    params, static = eqx.partition(model, eqx.is_inexact_array)
    return params, lambda p: et.objective(eqx.combine(p, static), x, y)


def test_hessian_vector_product_matches_the_dense_hessian(x64):
    params, fn = tiny_problem()
    flat, unravel = ravel_pytree(params)
    vector = jax.random.normal(jax.random.key(0), flat.shape, jnp.float64)
    dense = dense_hessian(fn, unravel, flat) @ vector
    product, _ = ravel_pytree(et.hessian_vector_product(fn, params, unravel(vector)))
    np.testing.assert_allclose(product, dense, rtol=1e-8, atol=1e-10)


def test_sharpness_of_a_tiny_mlp_matches_the_dense_hessian(x64):
    params, fn = tiny_problem()
    eigenvalues = dense_eigenvalues(fn, params)
    top = eigenvalues[np.argmax(np.abs(eigenvalues))]
    estimate, info = et.sharpness(fn, params)
    assert info["converged"]
    assert float(estimate) == pytest.approx(top, rel=1e-2)
    tight, _ = et.sharpness(fn, params, tol=1e-10, max_iters=5000)
    assert float(tight) == pytest.approx(top, rel=1e-6)


def test_sharpness_of_a_zero_hessian_is_zero():
    estimate, info = et.sharpness(lambda w: jnp.sum(w), jnp.ones(3))
    assert float(estimate) == 0.0 and info["converged"]
