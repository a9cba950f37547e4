"""The loop's measurements against dense float64 references, and the measurement
schedule's checks."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import eqtuners as et

from .helpers import small_data


class Linear(eqx.Module):
    """Logits `W x + b`: with the squared loss, every example's Hessian is known."""

    weight: jax.Array
    bias: jax.Array

    def __call__(self, x):
        return self.weight @ jnp.ravel(x) + self.bias


def linear_model(dtype=jnp.float64):
    key = jax.random.key(0)
    return Linear(0.1 * jax.random.normal(key, (10, 64), dtype), jnp.zeros(10, dtype))


def dense_references(model, x, y, weight_decay=1e-4):
    """The gradient, the Hessian and its eigenvalues of the objective, dense."""
    params, static = eqx.partition(model, eqx.is_inexact_array)
    flat, unravel = ravel_pytree(params)

    def fn(v):
        return et.objective(
            eqx.combine(unravel(v), static), x, y, weight_decay=weight_decay
        )

    grad = jax.grad(fn)(flat)
    hessian = jax.hessian(fn)(flat)
    return np.asarray(grad), np.asarray(hessian), np.linalg.eigvalsh(hessian)


BATCH = et.Measurements(
    1,
    estimator=et.Lanczos(tol=1e-10, max_steps=200),
    batch_curvature=True,
    batch_sharpness=True,
    batch_top_eigenvalue=True,
    batches=3,
)


@pytest.mark.parametrize("batch_size", [None, 32])
def test_batch_measurements_match_dense_references(x64, batch_size):
    """With batches of the whole training set (full batch, or mini-batches of all
    32 examples), every batch quantity is the full objective's, exactly."""
    x, y = (jnp.asarray(a) for a in small_data(32))
    x = x.astype(jnp.float64)
    model = linear_model()
    result = et.train(
        model,
        et.Constant(1e-3),
        (x, y),
        2,
        key=jax.random.key(0),
        batch_size=batch_size,
        measure=BATCH,
        progress=False,
    )
    row = {k: v[0] for k, v in result.history.items()}
    grad, hessian, eigenvalues = dense_references(model, x, y)
    curvature = grad @ hessian @ grad / (grad @ grad)
    assert row["sharpness"] == pytest.approx(eigenvalues[-1], rel=1e-8)
    assert row["directional_curvature"] == pytest.approx(curvature, rel=1e-8)
    assert row["batch_curvature"] == pytest.approx(curvature, rel=1e-8)
    assert row["batch_sharpness"] == pytest.approx(curvature, rel=1e-8)
    assert row["batch_top_eigenvalue"] == pytest.approx(eigenvalues[-1], rel=1e-8)
    assert abs(row["batch_sharpness_stderr"]) < 1e-8
    assert row["stepsize_x_batch_sharpness"] == pytest.approx(1e-3 * curvature)


def test_fresh_batches_differ_and_their_mean_lies_among_theirs(x64):
    x, y = (jnp.asarray(a) for a in small_data(64))
    x = x.astype(jnp.float64)
    model = linear_model()
    result = et.train(
        model,
        et.Constant(1e-3),
        (x, y),
        1,
        key=jax.random.key(0),
        batch_size=8,
        measure=BATCH,
        progress=False,
    )
    row = {k: v[0] for k, v in result.history.items()}
    assert row["batch_sharpness_stderr"] > 0
    assert row["batch_top_eigenvalue_stderr"] > 0
    # Every batch's top eigenvalue is at least its curvature along any direction;
    # small batches have a larger top eigenvalue than the whole set (lambda_max is
    # convex, and the mean of the batch Hessians is the full one).
    assert row["batch_top_eigenvalue"] >= row["batch_sharpness"]
    assert row["batch_top_eigenvalue"] >= row["sharpness"] * (1 - 1e-9)
    # The step's own batch: its curvature from the dense Hessian of some batch of 8
    # lies between the smallest and largest eigenvalue of that batch's Hessian, so
    # between 0 and the largest over all examples' (a weak but exact check).
    assert 0 < row["batch_curvature"] <= 64 * row["sharpness"]


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(every=0), "every"),
        (dict(zoom=(5, 2)), "zoom\\[1\\]"),
        (dict(zoom=3), "zoom"),
        (dict(examples=0), "examples"),
        (dict(seed=-1), "seed"),
        (dict(estimator="newton"), "estimator"),
        (dict(sharpness="newton"), "sharpness"),  # the deprecated name
        (dict(batches=1), "batches"),
    ],
)
def test_measurements_reject_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        et.Measurements(**kwargs)


def test_every_method_name_works_in_the_loop():
    for name in ("power", "lanczos", "directional"):
        history = et.train(
            Linear(jnp.zeros((10, 64)), jnp.zeros(10)),
            et.Constant(0.1),
            small_data(16),
            2,
            key=jax.random.key(0),
            measure=et.Measurements(1, estimator=name),
            progress=False,
        ).history
        assert np.isfinite(history["sharpness"]).all(), name


def test_the_hessian_trace_on_the_schedule_matches_the_dense_trace(x64):
    x, y = (jnp.asarray(a) for a in small_data(32))
    x = x.astype(jnp.float64)
    model = linear_model()
    measure = et.Measurements(2, estimator="directional", hessian_trace=300)
    history = et.train(
        model,
        et.Constant(1e-3),
        (x, y),
        3,
        key=jax.random.key(0),
        measure=measure,
        progress=False,
    ).history
    _, hessian, _ = dense_references(model, x, y)
    trace, stderr = history["hessian_trace"][0], history["hessian_trace_stderr"][0]
    assert 0 < stderr < 0.05 * np.trace(hessian)
    assert abs(trace - np.trace(hessian)) < 4 * stderr
    measured = np.isfinite(history["hessian_trace"])
    np.testing.assert_array_equal(measured, [True, False, True])


def test_a_trace_of_one_probe_is_refused():
    with pytest.raises(ValueError, match="`hessian_trace`"):
        et.Measurements(hessian_trace=1)
    assert "hessian_trace" not in et.Measurements().probe().keys()
