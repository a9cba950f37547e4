"""The Hessian operator that a measurement shares: one linearisation of the gradient,
chunk by chunk, against fresh products and the dense float64 Hessian."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import eqtuners as et

from .helpers import on_four_host_devices, small_data


def to64(tree):
    return jax.tree.map(
        lambda a: a.astype(jnp.float64) if eqx.is_inexact_array(a) else a, tree
    )


def mlp_problem(n=40):
    x, y = small_data(n)
    return to64(et.MLP(64, 10, (6, 5), key=jax.random.key(0))), to64(x), y


def conv_problem(n=12):
    """A VGG with two convolutions (patches times a matrix on CPU) on 8x8 images."""
    model = et.VGG(3, 10, (3, "M", 4, "M"), key=jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (n, 8, 8, 3))
    y = jax.random.randint(jax.random.key(2), (n,), 0, 10)
    return to64(model), to64(x), y


PROBLEMS = {"mlp": mlp_problem, "conv": conv_problem}


def dense_hessian(fn, params):
    flat, unravel = ravel_pytree(params)
    return np.asarray(jax.hessian(lambda v: fn(unravel(v)))(flat))


# Whole, in chunks that divide the examples, in chunks with a remainder (the
# convolutional model only there: its dense Hessian is the slow part).
@pytest.mark.parametrize(
    "name, chunk_size", [("mlp", None), ("mlp", 4), ("mlp", 5), ("conv", 5)]
)
def test_linearised_products_equal_fresh_ones_and_the_dense_hessian(
    x64, name, chunk_size
):
    model, x, y = PROBLEMS[name]()
    fn, params = et.objective_fn(model, x, y, weight_decay=0.1, chunk_size=chunk_size)
    hessian = dense_hessian(fn, params)
    flat, unravel = ravel_pytree(params)
    vectors = jax.random.normal(jax.random.key(3), (3, flat.size), jnp.float64)

    @eqx.filter_jit
    def products(fn, params, vectors):
        linearised = et.hessian_operator(fn, params, products="linearised")
        fresh = et.hessian_operator(fn, params, products="fresh")
        mv = lambda op: jax.vmap(lambda v: ravel_pytree(op.mv(unravel(v)))[0])  # noqa: E731
        return mv(linearised)(vectors), mv(fresh)(vectors), linearised

    linear, fresh, operator = products(fn, params, vectors)
    assert isinstance(operator, et.LinearisedProducts)
    dense = np.asarray(vectors) @ hessian
    scale = np.max(np.abs(dense))
    # Three programs, one Hessian: equal up to float64 rounding.
    np.testing.assert_allclose(linear, dense, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(fresh, dense, rtol=0, atol=1e-12 * scale)
    # The linearisation's primal outputs are the value and the gradient.
    value, grad = operator.value_and_grad()
    assert float(value) == pytest.approx(float(fn(params)), rel=1e-13)
    np.testing.assert_allclose(
        ravel_pytree(grad)[0], ravel_pytree(jax.grad(fn)(params))[0], atol=1e-13
    )
    # The chunks are linearised one by one and kept: whole chunks stacked, the
    # remainder apart.
    if chunk_size is None:
        assert operator.chunks is not None and operator.rest is None
    elif x.shape[0] % chunk_size:
        assert operator.rest is not None
    num_chunks = {None: 1}.get(chunk_size, x.shape[0] // (chunk_size or 1))
    assert jax.tree.leaves(operator.chunks)[0].shape[0] == num_chunks


def test_a_plain_function_is_linearised_as_a_whole(x64):
    model, x, y = mlp_problem()
    fn, params = et.objective_fn(model, x, y)
    plain = lambda p: fn(p)  # noqa: E731  (not an Objective: no chunks known)
    operator = et.hessian_operator(plain, params, products="linearised")
    assert operator.chunks is None and operator.rest is not None
    flat, unravel = ravel_pytree(params)
    v = jax.random.normal(jax.random.key(0), flat.shape, flat.dtype)
    np.testing.assert_allclose(
        ravel_pytree(operator.mv(unravel(v)))[0],
        dense_hessian(fn, params) @ v,
        atol=1e-12,
    )


def test_linearised_bytes_is_what_the_operator_keeps_and_auto_respects_it(x64):
    model, x, y = conv_problem(10)
    fn, params = et.objective_fn(model, x, y, chunk_size=4)
    size = et.linearised_bytes(fn, params)
    operator = et.hessian_operator(fn, params, products="linearised")
    assert size == operator.nbytes > 0
    # The residuals grow with the examples (per chunk), not only with the
    # parameters: twice the examples, about twice the bytes.
    bigger, _ = et.objective_fn(model, jnp.concatenate([x, x]), jnp.tile(y, 2))
    assert et.linearised_bytes(bigger, params) > 1.5 * size
    fits = et.hessian_operator(fn, params, max_bytes=size)
    too_big = et.hessian_operator(fn, params, max_bytes=size - 1)
    assert isinstance(fits, et.LinearisedProducts)
    assert isinstance(too_big, et.FreshProducts)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"products": "cached"}, "`products`"),
        ({"max_bytes": -1}, "`max_bytes`"),
        ({"max_bytes": 1.5}, "`max_bytes`"),
    ],
)
def test_bad_operator_arguments_raise_errors_that_name_them(x64, kwargs, match):
    model, x, y = mlp_problem()
    fn, params = et.objective_fn(model, x, y)
    with pytest.raises(ValueError, match=match):
        et.hessian_operator(fn, params, **kwargs)


def test_an_operator_that_is_not_one_is_refused(x64):
    model, x, y = mlp_problem()
    fn, params = et.objective_fn(model, x, y)
    with pytest.raises(ValueError, match="`operator`"):
        et.sharpness(fn, params, operator=lambda v: v)


@pytest.mark.parametrize("method", ["power", "lanczos", "lobpcg"])
def test_estimators_on_a_shared_operator_match_fresh_products(x64, method):
    model, x, y = mlp_problem()
    fn, params = et.objective_fn(model, x, y, chunk_size=16)
    top = np.linalg.eigvalsh(dense_hessian(fn, params))[-1]

    @eqx.filter_jit
    def both(fn, params):
        operator = et.hessian_operator(fn, params, products="linearised")
        return (
            et.sharpness(fn, params, method=method, tol=1e-10, operator=operator),
            et.sharpness(fn, params, method=method, tol=1e-10),
        )

    (shared, shared_info), (fresh, fresh_info) = both(fn, params)
    assert float(shared) == pytest.approx(top, rel=1e-6)
    assert float(fresh) == pytest.approx(top, rel=1e-6)
    # Two programs: the same iterations, to float rounding.
    assert abs(int(shared_info["num_hvps"]) - int(fresh_info["num_hvps"])) <= 1


def test_the_trace_and_the_directional_curvature_take_the_operator(x64):
    model, x, y = mlp_problem()
    fn, params = et.objective_fn(model, x, y, chunk_size=16)
    operator = et.hessian_operator(fn, params, products="linearised")
    key = jax.random.key(0)
    trace, _ = et.hessian_trace(fn, params, num_samples=5, key=key, operator=operator)
    fresh_trace, _ = et.hessian_trace(fn, params, num_samples=5, key=key)
    assert float(trace) == pytest.approx(float(fresh_trace), rel=1e-12)
    grad = jax.grad(fn)(params)
    curvature, _ = et.directional_curvature(fn, params, grad, operator=operator)
    flat_grad = ravel_pytree(grad)[0]
    exact = flat_grad @ dense_hessian(fn, params) @ flat_grad / (flat_grad @ flat_grad)
    assert float(curvature) == pytest.approx(float(exact), rel=1e-12)


def test_measurements_linearised_and_fresh_agree():
    """Two programs (the products summed in another order): the same history up to
    float32 rounding over a few steps of a chunked, mini-batch run."""
    x, y = small_data(96)
    model = et.MLP(64, 10, (16, 16), key=jax.random.key(0))

    def run(products):
        measure = et.Measurements(
            2,
            estimator=et.Lanczos(max_steps=30),
            batch_sharpness=True,
            batch_top_eigenvalue=True,
            batches=2,
            hessian_trace=3,
            products=products,
        )
        return et.train(
            model,
            et.Polyak(),
            (x, y),
            4,
            key=jax.random.key(1),
            batch_size=32,
            chunk_size=20,
            measure=measure,
            progress=False,
        ).history

    linearised, fresh = run("linearised"), run("fresh")
    for key in ("sharpness", "directional_curvature", "batch_sharpness", "loss"):
        a, b = np.asarray(linearised[key]), np.asarray(fresh[key])
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
        np.testing.assert_allclose(a, b, rtol=1e-4, equal_nan=True)
    with pytest.raises(ValueError, match="`products`"):
        et.Measurements(products="cached")
    with pytest.raises(ValueError, match="`max_linearised_bytes`"):
        et.Measurements(max_linearised_bytes=-1)


def test_linearised_products_sharded_over_four_host_devices_equal_the_dense_hessian():
    errors = on_four_host_devices("sharded_operator.py")
    assert set(errors) == {
        f"{name}/{chunk}" for name in ("mlp", "conv") for chunk in (None, 4)
    }
    for case, error in errors.items():
        # The residuals are split over the four devices, chunked or not.
        assert error["devices"] == 4 and error["sharded"], case
        # float64: the sums over examples reduced in another order.
        assert error["linearised"] < 1e-11, case
        assert error["fresh"] < 1e-11, case
