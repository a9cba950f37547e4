"""Chunked evaluation of the objective: same value, gradient and Hessian-vector
product as all at once (up to float rounding), with memory bounded by the chunk."""

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import eqtuners as et


@functools.cache
def problem(n=10):
    # A small convolutional network: the chunking does not depend on the model.
    model = et.VGG(3, 10, (8, "M", 16, "M", 16), key=jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (n, 8, 8, 3))
    y = jnp.arange(n) % 10
    params = eqx.filter(model, eqx.is_inexact_array)
    vector = jax.tree.map(
        lambda p: jax.random.normal(jax.random.key(2), p.shape, p.dtype), params
    )
    return model, x, y, vector


@functools.cache
def evaluate(chunk_size):
    model, x, y, vector = problem()
    fn, params = et.objective_fn(model, x, y, weight_decay=1e-4, chunk_size=chunk_size)

    @jax.jit
    def run(params, vector):
        value, grad = jax.value_and_grad(fn)(params)
        return value, grad, et.hessian_vector_product(fn, params, vector)

    return run(params, vector)


@pytest.mark.parametrize("chunk_size", [3, 5])  # 3 leaves a remainder of 1
def test_chunked_value_gradient_and_hvp_match_unchunked(chunk_size):
    reference = evaluate(None)
    chunked = evaluate(chunk_size)
    for a, b in zip(jax.tree.leaves(reference), jax.tree.leaves(chunked)):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6)


def test_chunking_bounds_the_memory_of_gradients_and_hvps():
    """XLA's memory plan for the gradient and the Hessian-vector product: the
    temporary buffers shrink with the chunk, since one chunk's activations are live
    at a time (the chunk's forward pass is recomputed in the backward pass)."""
    model = et.VGG(3, 10, (8, "M", 16, "M"), key=jax.random.key(0))
    params, static = eqx.partition(model, eqx.is_inexact_array)
    x = jax.ShapeDtypeStruct((512, 32, 32, 3), jnp.float32)
    y = jax.ShapeDtypeStruct((512,), jnp.int32)

    def temp_bytes(chunk_size):
        def fn(p, x, y):
            return et.objective(eqx.combine(p, static), x, y, chunk_size=chunk_size)

        def grad_and_hvp(p, x, y):
            return jax.grad(fn)(p, x, y), et.hessian_vector_product(
                lambda q: fn(q, x, y), p, p
            )

        compiled = jax.jit(grad_and_hvp).lower(params, x, y).compile()
        return compiled.memory_analysis().temp_size_in_bytes

    whole, chunked = temp_bytes(None), temp_bytes(32)
    activations = 512 * 32 * 32 * 8 * 4  # one activation of the first layer, bytes
    assert whole > activations
    assert chunked < whole / 8
