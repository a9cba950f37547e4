"""The spectrum past its top: trace, density, most negative eigenvalue, blocks,
against dense float64 Hessians."""

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import eqtuners as et

from .helpers import quadratic, random_quadratic


def mlp_problem(dtype):
    """A one-hidden-layer MLP on 32 random examples of 8 features (162 parameters),
    in `dtype`: `(params, fn)`, with `fn(params, chunk_size=None)`."""
    model = et.MLP(8, 10, (8,), key=jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (32, 8), dtype)
    y = jax.random.randint(jax.random.key(2), (32,), 0, 10)
    params = jax.tree.map(
        lambda a: a.astype(dtype), eqx.filter(model, eqx.is_inexact_array)
    )

    def fn(p, chunk_size=None):
        return et.objective_fn(model, x, y, chunk_size=chunk_size)[0](p)

    return params, fn


@functools.cache
def tiny_mlp():
    """The MLP problem in float64, with its dense Hessian."""
    with jax.enable_x64(True):
        params, fn = mlp_problem(jnp.float64)
        flat, unravel = ravel_pytree(params)
        hessian = np.asarray(jax.hessian(lambda v: fn(unravel(v)))(flat))
    return params, fn, hessian


def leaf_slices(params):
    """The slice of each leaf in the flattened parameters, in leaf order."""
    sizes = [leaf.size for leaf in jax.tree.leaves(params)]
    ends = np.cumsum(sizes)
    return [slice(end - size, end) for size, end in zip(sizes, ends)]


# --- Trace -------------------------------------------------------------------------


def test_trace_is_exact_for_a_diagonal_hessian(x64):
    diagonal = {"a": jnp.array([3.0, -1.0, 0.5]), "b": jnp.array([[2.0, 7.0]])}
    params = jax.tree.map(jnp.zeros_like, diagonal)

    def fn(p):
        return 0.5 * sum(
            jnp.sum(d * w**2) for d, w in zip(*map(jax.tree.leaves, (diagonal, p)))
        )

    trace, info = et.hessian_trace(fn, params, num_samples=5, key=jax.random.key(4))
    assert float(trace) == pytest.approx(11.5, abs=1e-12)
    np.testing.assert_allclose(info["samples"], 11.5, atol=1e-12)
    assert float(info["stderr"]) == pytest.approx(0.0, abs=1e-12)
    assert int(info["num_hvps"]) == 5


def test_trace_of_a_tiny_mlp_is_within_its_standard_error(x64):
    params, fn, hessian = tiny_mlp()
    num_samples = 200
    trace, info = et.hessian_trace(fn, params, num_samples=num_samples)
    exact = np.trace(hessian)
    assert abs(float(trace) - exact) <= 3 * float(info["stderr"])
    # The standard error is that of Rademacher probes: the variance of one is
    # 2 (||H||_F^2 - sum_i H_ii^2).
    variance = 2 * (np.sum(hessian**2) - np.sum(np.diag(hessian) ** 2))
    expected = np.sqrt(variance / num_samples)
    assert 0.7 < float(info["stderr"]) / expected < 1.4
    assert info["samples"].shape == (num_samples,)
    # Chunked evaluation gives the same probes and products.
    chunked, _ = et.hessian_trace(
        functools.partial(fn, chunk_size=8), params, num_samples=num_samples
    )
    assert float(chunked) == pytest.approx(float(trace), rel=1e-10)


# --- Spectral density --------------------------------------------------------------


def test_density_of_a_diagonal_hessian_is_exact(x64):
    # A Krylov space of dimension 3 (three distinct eigenvalues): Lanczos stops
    # there, and with unit Rademacher probes every weight is the multiplicity / n.
    eigenvalues = jnp.array([1.0, 1.0, 2.0, 3.0, 3.0, 3.0])
    fn = quadratic(jnp.diag(eigenvalues), jnp.zeros(6))
    (nodes, weights), info = et.spectral_density(
        fn, jnp.zeros(6), num_samples=3, lanczos_steps=10
    )
    assert nodes.shape == weights.shape == (3, 6)  # min(lanczos_steps, n) columns
    np.testing.assert_array_equal(info["num_steps"], [3, 3, 3])
    assert int(info["num_hvps"]) == 9
    np.testing.assert_allclose(nodes[:, :3], [[3.0, 2.0, 1.0]] * 3, atol=1e-12)
    np.testing.assert_allclose(weights[:, :3], [[0.5, 1 / 6, 1 / 3]] * 3, atol=1e-12)
    # Past the steps taken: copies of the smallest node, with weight zero.
    np.testing.assert_allclose(nodes[:, 3:], 1.0, atol=1e-12)
    np.testing.assert_array_equal(weights[:, 3:], 0.0)
    assert float(info["trace"]) == pytest.approx(13.0, rel=1e-12)


def test_density_nodes_are_eigenvalues_when_lanczos_spans_the_space(x64):
    eigenvalues = np.array([4.0, 3.0, -0.5, -1.0, 0.2, 0.1])
    matrix, vector = random_quadratic(5, 6, eigenvalues)
    (nodes, weights), info = et.spectral_density(
        quadratic(matrix, vector), jnp.zeros(6), num_samples=4, lanczos_steps=6
    )
    np.testing.assert_allclose(
        nodes, np.sort(eigenvalues)[::-1][None].repeat(4, 0), atol=1e-9
    )
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-12)
    assert np.all(weights >= 0)


def test_density_of_a_tiny_mlp_matches_the_dense_spectrum(x64):
    params, fn, hessian = tiny_mlp()
    eigenvalues = np.linalg.eigvalsh(hessian)
    n = eigenvalues.size
    num_samples, steps = 20, 30
    key = jax.random.key(7)
    quadrature, info = et.spectral_density(
        fn, params, num_samples=num_samples, lanczos_steps=steps, key=key
    )
    nodes, weights = map(np.asarray, quadrature)
    assert nodes.shape == (num_samples, steps)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(info["num_steps"], steps)
    assert int(info["num_hvps"]) == num_samples * steps
    # Lanczos finds the extreme eigenvalues first: every probe has them as nodes.
    # Ritz values lie inside the spectrum.
    assert np.all(nodes <= eigenvalues[-1] + 1e-12)
    assert np.all(nodes >= eigenvalues[0] - 1e-12)
    np.testing.assert_allclose(nodes[:, 0], eigenvalues[-1], rtol=1e-4)
    np.testing.assert_allclose(nodes[:, -1], eigenvalues[0], rtol=1e-4)
    # The first two moments of each probe's rule are exact (degree <= 2m - 1), so
    # their means over probes estimate those of the spectrum, tr H / n and
    # ||H||_F^2 / n, within their standard errors.
    for power, exact in [(1, eigenvalues.mean()), (2, np.mean(eigenvalues**2))]:
        moments = np.sum(weights * nodes**power, axis=1)
        stderr = moments.std(ddof=1) / np.sqrt(num_samples)
        assert abs(moments.mean() - exact) <= 3 * stderr
    # Its trace is Hutchinson's on the same probes.
    trace, _ = et.hessian_trace(fn, params, num_samples=num_samples, key=key)
    assert float(info["trace"]) == pytest.approx(float(trace), rel=1e-9)
    first = np.sum(weights * nodes, axis=1)
    assert float(info["trace"]) == pytest.approx(n * first.mean(), rel=1e-12)

    # On a grid: a density that integrates to one, with the rule's mean and its
    # variance plus the kernel's.
    width = 0.05
    grid, density = et.spectral_density_on_grid(quadrature, width=width)
    grid, density = np.asarray(grid), np.asarray(density)
    assert grid.shape == density.shape == (1000,) and np.all(density >= 0)
    assert np.trapezoid(density, grid) == pytest.approx(1.0, abs=1e-6)
    mean = np.sum(weights * nodes) / num_samples
    second = np.sum(weights * nodes**2) / num_samples
    assert np.trapezoid(grid * density, grid) == pytest.approx(mean, abs=1e-6)
    assert np.trapezoid(grid**2 * density, grid) == pytest.approx(
        second + width**2, rel=1e-6
    )
    # A grid of one's own, and the default width.
    points = jnp.linspace(-3.0, 8.0, 7)
    same, on_points = et.spectral_density_on_grid(quadrature, grid=points, width=width)
    np.testing.assert_allclose(same, points)
    np.testing.assert_allclose(
        on_points, np.interp(points, grid, density), rtol=1e-2, atol=1e-3
    )
    grid, density = et.spectral_density_on_grid(quadrature)
    assert np.trapezoid(density, grid) == pytest.approx(1.0, abs=1e-5)


# --- Most negative eigenvalue --------------------------------------------------------


@pytest.mark.parametrize("method", ["lanczos", "lobpcg"])
def test_most_negative_eigenvalue_of_a_quadratic(x64, method):
    eigenvalues = np.array([4.0, 3.0, -0.5, -1.0, 0.2, 0.1])
    matrix, vector = random_quadratic(6, 6, eigenvalues)
    fn = quadratic(matrix, vector)
    estimate, info = et.most_negative_eigenvalue(
        fn, jnp.zeros(6), method=method, tol=1e-10, k=2
    )
    assert float(estimate) == pytest.approx(-1.0, rel=1e-8)
    np.testing.assert_allclose(info["bottom_k"], [-1.0, -0.5], rtol=1e-8)
    assert info["converged"] and float(info["residual"]) <= 1e-9
    v = np.asarray(info["eigenvector"])
    np.testing.assert_allclose(matrix @ v, -v, atol=1e-8)
    # Positive definite: the smallest eigenvalue, positive.
    matrix, vector = random_quadratic(6, 6, np.array([4.0, 3.0, 2.0, 1.0, 0.5, 0.25]))
    estimate, _ = et.most_negative_eigenvalue(
        quadratic(matrix, vector), jnp.zeros(6), method=method, tol=1e-10
    )
    assert float(estimate) == pytest.approx(0.25, rel=1e-8)


def test_most_negative_eigenvalue_of_a_tiny_mlp(x64):
    params, fn, hessian = tiny_mlp()
    smallest = np.linalg.eigvalsh(hessian)[0]
    assert smallest < 0
    estimate, info = et.most_negative_eigenvalue(fn, params, key=jax.random.key(1))
    assert info["converged"] and int(info["num_hvps"]) < 100
    # A relative residual of 1e-3 bounds the relative error by 1e-3.
    assert float(estimate) == pytest.approx(smallest, rel=1e-3)
    assert float(info["residual"]) <= 1e-3 * abs(float(estimate))
    assert info["bottom_k"].shape == (1,)


# --- Per-block sharpness --------------------------------------------------------------


def test_blockwise_sharpness_of_each_leaf_matches_the_dense_blocks(x64):
    params, fn, hessian = tiny_mlp()
    estimates, info = et.blockwise_sharpness(fn, params, tol=1e-8)
    paths = [
        jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(params)
    ]
    assert (
        list(estimates)
        == paths
        == [
            ".layers[0].weight",
            ".layers[0].bias",
            ".layers[1].weight",
            ".layers[1].bias",
        ]
    )
    vectors = jax.tree.leaves(info["eigenvectors"])
    for name, where, vector in zip(paths, leaf_slices(params), vectors):
        block = hessian[where, where]
        top = np.linalg.eigvalsh(block)[-1]
        assert float(estimates[name]) == pytest.approx(top, rel=1e-7), name
        assert info["converged"][name] and float(info["residual"][name]) < 1e-6
        v = np.asarray(vector).ravel()
        assert np.linalg.norm(v) == pytest.approx(1.0)
        np.testing.assert_allclose(block @ v, top * v, atol=1e-6)
    # The last bias's block is (1 + weight decay) I: one product finds it.
    assert int(info["num_hvps"][".layers[1].bias"]) == 1


def test_blockwise_sharpness_by_layer_and_by_labels(x64):
    params, fn, hessian = tiny_mlp()
    where = leaf_slices(params)
    layers = [np.r_[where[0], where[1]], np.r_[where[2], where[3]]]
    estimates, info = et.blockwise_sharpness(fn, params, blocks="layer", tol=1e-8)
    assert list(estimates) == [".layers[0]", ".layers[1]"]
    for name, index in zip(estimates, layers):
        top = np.linalg.eigvalsh(hessian[np.ix_(index, index)])[-1]
        assert float(estimates[name]) == pytest.approx(top, rel=1e-7)
    # All weights in one block, all biases in another; power iteration.
    labels = jax.tree_util.tree_map_with_path(
        lambda path, _: jax.tree_util.keystr(path[-1:]), params
    )
    estimates, info = et.blockwise_sharpness(
        fn, params, blocks=labels, method=et.PowerIteration(tol=1e-12, max_iters=5000)
    )
    assert list(estimates) == [".weight", ".bias"]
    for name, index in zip(
        estimates, [np.r_[where[0], where[2]], np.r_[where[1], where[3]]]
    ):
        eigenvalues = np.linalg.eigvalsh(hessian[np.ix_(index, index)])
        largest = eigenvalues[np.argmax(np.abs(eigenvalues))]
        assert float(estimates[name]) == pytest.approx(largest, rel=1e-6)
        assert info["converged"][name]


# --- Compiled, chunked, low precision ----------------------------------------------


def test_the_spectrum_functions_compile_once_and_work_in_float32():
    params, fn = mlp_problem(jnp.float32)
    fn32 = functools.partial(fn, chunk_size=16)

    @eqx.filter_jit
    @eqx.debug.assert_max_traces(max_traces=1)
    def everything(params, key):
        trace, _ = et.hessian_trace(fn32, params, num_samples=4, key=key)
        quadrature, _ = et.spectral_density(
            fn32, params, num_samples=2, lanczos_steps=8, key=key
        )
        bottom, _ = et.most_negative_eigenvalue(fn32, params, key=key)
        blocks, _ = et.blockwise_sharpness(fn32, params, key=key)
        grid, density = et.spectral_density_on_grid(quadrature, num_points=64)
        return trace, quadrature, bottom, blocks, density

    for seed in range(2):
        trace, quadrature, bottom, blocks, density = everything(
            params, jax.random.key(seed)
        )
        assert trace.dtype == quadrature.nodes.dtype == bottom.dtype == jnp.float32
        assert all(b.dtype == jnp.float32 for b in blocks.values())
        assert np.all(np.isfinite(density)) and density.shape == (64,)


# --- Errors --------------------------------------------------------------------------


def integer_leaf_params():
    return {"w": jnp.ones(3), "count": jnp.array(2)}


FUNCTIONS = {
    "hessian_trace": et.hessian_trace,
    "spectral_density": et.spectral_density,
    "most_negative_eigenvalue": et.most_negative_eigenvalue,
    "blockwise_sharpness": et.blockwise_sharpness,
}


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_integer_leaves_raise_the_params_error(name):
    with pytest.raises(
        ValueError, match=r"`params` must hold only floating-point.*\['count'\]"
    ):
        FUNCTIONS[name](lambda p: jnp.sum(p["w"] ** 2), integer_leaf_params())


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_a_bad_key_raises(name):
    with pytest.raises(ValueError, match="`key` must be a JAX PRNG key"):
        FUNCTIONS[name](lambda w: jnp.sum(w**2), jnp.ones(3), key=3)


@pytest.mark.parametrize(
    "call, match",
    [
        (
            lambda f, w: et.hessian_trace(f, w, num_samples=1),
            "`num_samples` must be >= 2",
        ),
        (
            lambda f, w: et.spectral_density(f, w, num_samples=0),
            "`num_samples` must be >= 1",
        ),
        (
            lambda f, w: et.spectral_density(f, w, lanczos_steps=0),
            "`lanczos_steps` must be >= 1",
        ),
        (
            lambda f, w: et.most_negative_eigenvalue(f, w, method="power"),
            "`method` must be 'lanczos', 'lobpcg'",
        ),
        (
            lambda f, w: et.most_negative_eigenvalue(f, w, method=et.PowerIteration()),
            "`method` must be 'lanczos', 'lobpcg'",
        ),
        (
            lambda f, w: et.most_negative_eigenvalue(f, w, method="newton"),
            "`method` must be one of",
        ),
        (
            lambda f, w: et.most_negative_eigenvalue(f, w, tol=-1.0),
            "`tol` must be finite",
        ),
        (
            lambda f, w: et.most_negative_eigenvalue(f, w, init=jnp.zeros(3)),
            "`init` must be a nonzero",
        ),
        (
            lambda f, w: et.blockwise_sharpness(f, w, method="lobpcg"),
            "`method` must be 'lanczos', 'power'",
        ),
        (
            lambda f, w: et.blockwise_sharpness(f, w, max_iters=0),
            "`max_iters` must be >= 1",
        ),
        (
            lambda f, w: et.blockwise_sharpness(f, w, blocks="layers"),
            "`blocks` must be 'leaf', 'layer'",
        ),
        (
            lambda f, w: et.blockwise_sharpness(f, w, blocks=["a", "b"]),
            "`blocks` must be 'leaf', 'layer'",
        ),
        (
            lambda f, w: et.blockwise_sharpness(f, w, blocks=1),
            "`blocks` must be 'leaf', 'layer'",
        ),
    ],
)
def test_bad_arguments_raise_errors_that_name_them(call, match):
    with pytest.raises(ValueError, match=match):
        call(lambda w: jnp.sum(w**2), jnp.ones(3))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"width": 0.0}, "`width` must be finite and in"),
        ({"width": np.nan}, "`width` must be finite and in"),
        ({"num_points": 1}, "`num_points` must be >= 2"),
        ({"grid": jnp.zeros((2, 2))}, "`grid` must be a 1-D array"),
    ],
)
def test_bad_grid_arguments_raise_errors_that_name_them(kwargs, match):
    quadrature = (jnp.array([[1.0, 0.0]]), jnp.array([[0.5, 0.5]]))
    with pytest.raises(ValueError, match=match):
        et.spectral_density_on_grid(quadrature, **kwargs)


@pytest.mark.parametrize(
    "quadrature",
    [
        jnp.ones((2, 3)),
        (jnp.ones((2, 3)), jnp.ones((2, 4))),
        (jnp.ones((1, 2, 3)), jnp.ones((1, 2, 3))),
    ],
)
def test_a_bad_quadrature_raises(quadrature):
    with pytest.raises(ValueError, match="`quadrature` must"):
        et.spectral_density_on_grid(quadrature)
