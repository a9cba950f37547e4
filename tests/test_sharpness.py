import equinox as eqx
import hypothesis
import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import eqtuners as et
from eqtuners._tree import tree_dot, tree_dtype

from .helpers import quadratic, random_quadratic, tree_allclose


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


def tiny_problem(chunk_size=None):
    """A one-hidden-layer MLP on 8 random features (162 parameters), in float64 under
    the `x64` fixture."""
    model = et.MLP(8, 10, (8,), key=jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (32, 8))
    y = jax.random.randint(jax.random.key(2), (32,), 0, 10)
    fn, params = et.objective_fn(model, x, y, chunk_size=chunk_size)
    return params, fn


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


# --- The paper's estimator, step for step -------------------------------------------


def papers_power_iteration(fn, params, key, tol=1e-3, max_iters=1000):
    """`et.sharpness` as first written (commit 8ba3bbe), kept to check that the
    default estimator still computes exactly the same numbers."""

    def normalise(vector):
        norm = jnp.sqrt(tree_dot(vector, vector))
        return jax.tree.map(lambda x: x / jnp.where(norm > 0, norm, 1), vector)

    zero = jnp.zeros((), tree_dtype(params))

    def not_converged(estimate, previous):
        return ~(jnp.abs(estimate - previous) <= tol * jnp.abs(estimate))

    def keep_going(carry):
        k, _, estimate, previous = carry
        return (k == 0) | ((k < max_iters) & not_converged(estimate, previous))

    def iterate(carry):
        k, vector, estimate, _ = carry
        product = et.hessian_vector_product(fn, params, vector)
        return k + 1, normalise(product), tree_dot(vector, product), estimate

    # The random start, uniform on the sphere, is one draw for the flattened
    # parameters (it was one draw per leaf, which compiled slowly).
    flat, unravel = ravel_pytree(params)
    noise = unravel(jax.random.normal(key, flat.shape, flat.dtype))
    init = (jnp.array(0), normalise(noise), zero, zero)
    num_hvps, _, estimate, _ = jax.lax.while_loop(keep_going, iterate, init)
    return estimate, num_hvps


def test_the_default_is_the_papers_power_iteration():
    params, fn = tiny_problem()  # float32, as in training
    key = jax.random.key(3)
    estimate, info = et.sharpness(fn, params, key=key)
    expected, num_hvps = papers_power_iteration(fn, params, key)
    # Two programs (ours and the reference): the same iterations, the estimate to
    # float32 rounding (bit for bit on the machine where it was written).
    assert float(estimate) == pytest.approx(float(expected), rel=1e-5)
    assert int(info["num_hvps"]) == int(num_hvps) > 2


# --- Lanczos on random symmetric matrices with known spectra ------------------------

DIM = 40


def spectrum(top, low, high):
    """`top` followed by eigenvalues uniform in [low, high], DIM in all."""
    rest = np.random.default_rng(0).uniform(low, high, DIM - len(top))
    return np.concatenate([top, rest])


SPECTRA = {
    "separated": spectrum([10.0, 5.0, 3.0], 0.0, 1.0),
    "large_scale": spectrum([1e3, 2.0, 1.5], 0.0, 1.0),
    "clustered_top": spectrum([100.0, 99.9, 99.8], -1.0, 1.0),
    # Negative eigenvalues larger in magnitude than the top positive one.
    "negative_dominant": spectrum([3.0, 1.0, 0.9, -8.0, -20.0], -0.5, 0.5),
    "indefinite": spectrum([4.0, 3.0, -3.5, -3.9], -2.0, 2.0),
}


@jax.jit
def lanczos_on_quadratic(matrix, key, tol):
    """Lanczos (k = 3, one compile for all the tests) on `1/2 w^T A w`."""
    fn = quadratic(matrix, jnp.zeros(DIM, matrix.dtype))
    method = et.Lanczos(max_steps=DIM, tol=tol, k=3)
    return et.sharpness(fn, jnp.zeros(DIM, matrix.dtype), method=method, key=key)


@pytest.mark.parametrize("name", sorted(SPECTRA))
def test_lanczos_finds_the_top_eigenvalues_of_known_spectra(x64, name):
    eigenvalues = SPECTRA[name]
    matrix, _ = random_quadratic(3, DIM, eigenvalues)
    top3 = np.sort(eigenvalues)[::-1][:3]
    for seed in range(2):
        key = jax.random.key(seed)
        # Tight: the three largest (algebraic) eigenvalues.
        estimate, info = lanczos_on_quadratic(matrix, key, 1e-10)
        np.testing.assert_allclose(info["top_k"], top3, rtol=1e-8, atol=1e-10)
        assert float(estimate) == info["top_k"][0] and info["converged"]
        # The default tolerance on the residual bounds the relative error.
        estimate, info = lanczos_on_quadratic(matrix, key, 1e-3)
        assert info["converged"] and int(info["num_hvps"]) < DIM
        assert float(estimate) <= top3[0] + 1e-12  # a Ritz value
        assert top3[0] - float(estimate) <= 1e-3 * abs(top3[0])
        # The free residual |beta_m s_m| is the explicit ||Hv - lambda v||.
        v = np.asarray(info["eigenvector"])
        assert np.all(np.isfinite(v)) and np.linalg.norm(v) == pytest.approx(1.0)
        explicit = np.linalg.norm(matrix @ v - float(estimate) * v)
        assert float(info["residual"]) <= 1e-3 * abs(float(estimate))
        np.testing.assert_allclose(info["residual"], explicit, rtol=1e-6, atol=1e-12)


def test_lanczos_finds_the_largest_and_power_iteration_the_largest_magnitude(x64):
    matrix, vector = random_quadratic(3, DIM, SPECTRA["negative_dominant"])
    power, _ = et.sharpness(quadratic(matrix, vector), jnp.zeros(DIM), tol=1e-10)
    lanczos, _ = lanczos_on_quadratic(matrix, jax.random.key(0), 1e-3)
    assert float(power) == pytest.approx(-20.0, rel=1e-6)
    assert float(lanczos) == pytest.approx(3.0, rel=1e-3)


def test_lanczos_breaks_down_on_an_invariant_subspace_without_nans(x64):
    # Rank one: the Krylov space is invariant after two products.
    matrix, _ = random_quadratic(3, DIM, np.array([7.0] + [0.0] * (DIM - 1)))
    estimate, info = lanczos_on_quadratic(matrix, jax.random.key(0), 0.0)
    assert float(estimate) == pytest.approx(7.0, rel=1e-12)
    assert int(info["num_hvps"]) == 2 and info["converged"]
    assert info["top_k"][1] == pytest.approx(0.0, abs=1e-10)
    assert np.isnan(info["top_k"][2])  # no third eigenvalue in an invariant plane
    assert np.all(np.isfinite(info["eigenvector"])) and np.isfinite(info["residual"])
    # A zero Hessian: one product.
    estimate, info = lanczos_on_quadratic(jnp.zeros((DIM, DIM)), jax.random.key(0), 0.0)
    assert float(estimate) == 0.0 and info["converged"]
    assert int(info["num_hvps"]) == 1 and np.isnan(info["top_k"][1])
    assert np.all(np.isfinite(info["eigenvector"])) and info["residual"] == 0
    # Fewer parameters than steps: the basis has one vector per parameter.
    matrix, vector = random_quadratic(1, 6, np.array([4.0, 3.0, 2.0, 1.0, 0.0, -1.0]))
    fn = quadratic(matrix, vector)
    _, info = et.sharpness(fn, jnp.zeros(6), method="lanczos", k=6, tol=0.0)
    np.testing.assert_allclose(info["top_k"], [4, 3, 2, 1, 0, -1], atol=1e-10)
    assert int(info["num_hvps"]) == 6


def test_lanczos_stops_at_max_steps(x64):
    matrix, vector = random_quadratic(3, DIM, SPECTRA["clustered_top"])
    fn = quadratic(matrix, vector)
    _, info = et.sharpness(fn, jnp.zeros(DIM), method="lanczos", max_iters=3, tol=0.0)
    assert int(info["num_hvps"]) == 3 and not info["converged"]


# --- Lanczos on a small model, against the dense Hessian ----------------------------


@eqx.filter_jit
def lanczos_on_tiny_problem(init, tol, chunk_size=None):
    params, fn = tiny_problem(chunk_size)
    method = et.Lanczos(max_steps=40, tol=tol, k=3)
    return et.sharpness(fn, params, method=method, init=init)


def test_lanczos_of_a_tiny_mlp_matches_the_dense_hessian(x64):
    params, fn = tiny_problem()
    flat, unravel = ravel_pytree(params)
    hessian = dense_hessian(fn, unravel, flat)
    eigenvalues = np.linalg.eigvalsh(hessian)[::-1]
    start = jax.tree.map(jnp.ones_like, params)
    _, info = lanczos_on_tiny_problem(start, 1e-9)
    np.testing.assert_allclose(info["top_k"], eigenvalues[:3], rtol=1e-7)
    estimate, info = lanczos_on_tiny_problem(start, 1e-3)
    assert info["converged"] and int(info["num_hvps"]) < 40
    assert abs(float(estimate) - eigenvalues[0]) <= 1e-3 * eigenvalues[0]
    v, _ = ravel_pytree(info["eigenvector"])
    explicit = np.linalg.norm(hessian @ v - float(estimate) * v)
    np.testing.assert_allclose(info["residual"], explicit, rtol=1e-5)


def test_warm_start_from_the_exact_eigenvector_converges_at_once(x64):
    params, fn = tiny_problem()
    flat, unravel = ravel_pytree(params)
    values, vectors = np.linalg.eigh(dense_hessian(fn, unravel, flat))
    top = unravel(jnp.asarray(vectors[:, -1]))
    estimate, info = lanczos_on_tiny_problem(top, 1e-3)
    assert int(info["num_hvps"]) == 1
    assert float(estimate) == pytest.approx(values[-1], rel=1e-10)
    # A nearby start (the eigenvector, slightly perturbed) beats a random one.
    other = unravel(jnp.asarray(vectors[:, 0] + vectors[:, 1]))
    near = jax.tree.map(lambda a, b: a + 1e-3 * b, top, other)
    _, warm = lanczos_on_tiny_problem(near, 1e-6)
    _, cold = lanczos_on_tiny_problem(
        et.hessian_vector_product(fn, params, params), 1e-6
    )
    assert int(warm["num_hvps"]) < int(cold["num_hvps"])
    # Power iteration from the eigenvector: two products, the first change it sees.
    _, info = et.sharpness(fn, params, init=top)
    assert int(info["num_hvps"]) == 2


def test_chunked_and_unchunked_products_agree(x64):
    params, whole = tiny_problem()
    _, chunked = tiny_problem(chunk_size=5)  # 32 = 6 * 5 + 2 examples
    a = et.hessian_vector_product(whole, params, params)
    b = et.hessian_vector_product(chunked, params, params)
    assert tree_allclose(a, b, rtol=1e-10, atol=1e-12)
    start = jax.tree.map(jnp.ones_like, params)
    estimate, _ = lanczos_on_tiny_problem(start, 1e-6)
    estimate_chunked, _ = lanczos_on_tiny_problem(start, 1e-6, 5)
    assert float(estimate_chunked) == pytest.approx(float(estimate), rel=1e-10)


def test_directional_curvature_matches_the_dense_hessian(x64):
    params, fn = tiny_problem()
    flat, unravel = ravel_pytree(params)
    hessian = dense_hessian(fn, unravel, flat)
    grad, _ = ravel_pytree(jax.grad(fn)(params))
    curvature, info = et.sharpness(fn, params, method="directional")
    assert float(curvature) == pytest.approx(grad @ hessian @ grad / (grad @ grad))
    assert int(info["num_hvps"]) == 1
    ones = jax.tree.map(jnp.ones_like, params)
    along_ones, _ = et.sharpness(fn, params, method="directional", init=ones)
    flat_ones = np.ones_like(flat)
    expected = flat_ones @ hessian @ flat_ones / flat_ones.size
    assert float(along_ones) == pytest.approx(expected)
    zeros = jax.tree.map(jnp.zeros_like, params)
    with pytest.raises(ValueError, match="`init` must be a nonzero"):
        et.sharpness(fn, params, method="directional", init=zeros)


@pytest.mark.parametrize(
    "method, k",
    [
        (et.PowerIteration(max_iters=20), 1),
        (et.Lanczos(10, k=2), 2),
        (et.LOBPCG(3, k=2), 2),
        (et.RecycledRitz(3, k=2), 2),
        (et.DirectionalCurvature(), 1),
    ],
)
def test_estimators_have_fixed_shapes(method, k):
    params, fn = tiny_problem()
    estimate, info = jax.eval_shape(
        lambda key: et.sharpness(fn, params, method=method, key=key),
        jax.random.key(0),
    )
    assert estimate.shape == () and info["top_k"].shape == (k,)
    assert set(info) == {"num_hvps", "converged", "residual", "top_k", "eigenvector"}
    assert jax.tree.structure(info["eigenvector"]) == jax.tree.structure(params)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(method="newton"), "method"),
        (dict(method="power", k=2), "k"),
        (dict(method="lanczos", k=0), "k"),
        (dict(method="lanczos", max_iters=0), "max_iters"),
        (dict(method="power", tol=-1.0), "tol"),
        (dict(method=et.Lanczos(), tol=1e-2), "tol"),
        (dict(method="directional", max_iters=3), "max_iters"),
        (dict(method="directional", tol=1e-2), "tol"),
        (dict(method="lobpcg", max_iters=-1), "max_iters"),
        (dict(method="lobpcg", k=0), "k"),
        (dict(method="recycled", k=0), "k"),
        (dict(method="recycled", max_iters=2), "max_iters"),
    ],
)
def test_sharpness_rejects_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        et.sharpness(lambda w: jnp.sum(w**2), jnp.ones(3), **kwargs)


@pytest.mark.parametrize("method", ["power", "lanczos", "lobpcg", "recycled"])
def test_sharpness_rejects_a_zero_or_misshapen_start(method):
    fn = lambda w: jnp.sum(w**2)  # noqa: E731
    with pytest.raises(ValueError, match="`init` must be a nonzero"):
        et.sharpness(fn, jnp.ones(3), method=method, init=jnp.zeros(3))
    with pytest.raises(ValueError, match="`init` must have the structure and shapes"):
        et.sharpness(fn, jnp.ones(3), method=method, init=jnp.ones(2))


@pytest.mark.parametrize("method", ["power", "lanczos", "lobpcg", "recycled"])
def test_estimators_stop_at_once_on_a_nan_objective(method):
    estimate, info = et.sharpness(
        lambda w: jnp.nan * jnp.sum(w**2), jnp.ones(3), method=method
    )
    assert np.isnan(estimate) and not info["converged"]
    assert int(info["num_hvps"]) == (2 if method == "lobpcg" else 1)


def test_estimators_work_under_plain_jit():
    fn = lambda w: 2.0 * jnp.sum(w**2)  # noqa: E731  (Hessian 4 I)
    estimators = (et.PowerIteration(), et.Lanczos(10), et.LOBPCG(), et.RecycledRitz())
    for estimator in estimators:
        estimate, _ = jax.jit(
            lambda e, w: et.sharpness(fn, w, method=e, key=jax.random.key(0))
        )(estimator, jnp.ones(3))
        assert float(estimate) == pytest.approx(4.0)


# --- `converged` means a small residual, for every estimator ------------------------


@pytest.mark.parametrize("second", [-3.0, -2.97])
def test_power_iteration_reports_a_stop_with_a_large_residual_as_not_converged(
    x64, second
):
    # Two eigenvalues of (nearly) equal magnitude and opposite signs: the iterate
    # swings between their eigenvectors and the paper's rule stops on a small change
    # of the estimate, far from the top eigenvalue 3.
    matrix, vector = random_quadratic(0, 4, np.array([3.0, second, 0.5, 0.1]))
    fn = quadratic(matrix, vector)
    params = jnp.zeros(4)
    for seed in range(4):
        key = jax.random.key(seed)
        estimate, info = et.sharpness(fn, params, key=key)
        # The stopping rule is the paper's: the same iterations, and the estimate
        # to float64 rounding (ours and the reference are two programs).
        expected, num_hvps = papers_power_iteration(fn, params, key)
        assert float(estimate) == pytest.approx(float(expected), rel=1e-12)
        assert int(info["num_hvps"]) == int(num_hvps)
        # Far from the top eigenvalue: 1.19 to 2.86 with the random
        # starts, -2.68 to 2.92 with today's (drawn for the flat vector).
        assert abs(float(estimate)) < 0.98 * 3.0
        v = np.asarray(info["eigenvector"])
        explicit = np.linalg.norm(matrix @ v - float(estimate) * v)
        np.testing.assert_allclose(info["residual"], explicit, rtol=1e-8)
        # A residual of a fifth of the estimate or more (0.7 to 1.8 here), twice
        # the tolerance of `converged`.
        assert explicit > 0.2 * abs(float(estimate)) and not info["converged"]
    # The estimators that stop on the residual find the top eigenvalue.
    for method in ("lanczos", "lobpcg"):
        estimate, info = et.sharpness(fn, params, method=method)
        assert info["converged"] and float(estimate) == pytest.approx(3.0, rel=1e-3)


def test_power_iterations_residual_tolerance_changes_only_the_flag():
    params, fn = tiny_problem()  # float32, as in training
    key = jax.random.key(3)
    estimate, info = et.sharpness(fn, params, key=key)
    assert info["converged"]
    assert float(info["residual"]) <= 0.1 * abs(float(estimate))
    strict = et.PowerIteration(residual_tol=0.0)
    again, strict_info = et.sharpness(fn, params, method=strict, key=key)
    # `residual_tol` is an array leaf read after the loop: the same compiled loop on
    # the same inputs, so bit for bit.
    assert np.asarray(again).tobytes() == np.asarray(estimate).tobytes()
    assert int(strict_info["num_hvps"]) == int(info["num_hvps"])
    assert not strict_info["converged"]
    with pytest.raises(ValueError, match="`residual_tol`"):
        et.PowerIteration(residual_tol=-1.0)


ESTIMATORS_ON_8 = {
    "power": (et.PowerIteration(), 0.1),
    "lanczos": (et.Lanczos(8), 1e-3),
    "lobpcg": (et.LOBPCG(), 1e-3),
    "recycled": (et.RecycledRitz(), 1e-3),
    "directional": (et.DirectionalCurvature(), 0.1),
}


@eqx.filter_jit
def estimate_on_8(estimator, matrix, vector, key):
    fn = quadratic(matrix, vector)
    return et.sharpness(fn, jnp.ones(8, matrix.dtype), method=estimator, key=key)


@hypothesis.given(
    eigenvalues=hnp.arrays(
        np.float64,
        8,
        elements=st.floats(-10, 10).filter(lambda v: abs(v) > 1e-3),
    ),
    seed=st.integers(0, 2**16),
    flip=st.booleans(),
)
def test_converged_means_a_small_relative_residual(eigenvalues, seed, flip):
    if flip:  # a pair of opposite top eigenvalues, the power iteration's failure
        eigenvalues[1] = -0.99 * eigenvalues[0]
    with jax.enable_x64(True):
        matrix, vector = random_quadratic(seed % 97, 8, eigenvalues)
        for estimator, rtol in ESTIMATORS_ON_8.values():
            estimate, info = estimate_on_8(
                estimator, matrix, vector, jax.random.key(seed)
            )
            v = np.asarray(info["eigenvector"])
            explicit = np.linalg.norm(matrix @ v - float(estimate) * v)
            np.testing.assert_allclose(info["residual"], explicit, atol=1e-9)
            if info["converged"]:
                assert explicit <= rtol * abs(float(estimate)) * (1 + 1e-6) + 1e-9


def test_directional_curvature_is_converged_along_an_eigenvector(x64):
    matrix, _ = random_quadratic(2, 6, np.array([4.0, 3.0, 2.0, 1.0, 0.5, -1.0]))
    fn = quadratic(matrix, jnp.zeros(6))
    eigenvectors = np.linalg.eigh(np.asarray(matrix))[1]
    # The gradient at an eigenvector of 3 is along it.
    curvature, info = et.sharpness(
        fn, jnp.asarray(eigenvectors[:, -2]), method="directional"
    )
    assert float(curvature) == pytest.approx(3.0) and info["converged"]
    curvature, info = et.sharpness(fn, jnp.ones(6), method="directional")
    assert not info["converged"] and float(info["residual"]) > 0.1 * abs(curvature)


# --- One estimator per name, in `sharpness` and in the loop -------------------------


@pytest.mark.parametrize(
    "name, kind",
    [
        ("power", et.PowerIteration),
        ("lanczos", et.Lanczos),
        ("lobpcg", et.LOBPCG),
        ("recycled", et.RecycledRitz),
        ("directional", et.DirectionalCurvature),
    ],
)
def test_every_method_name_makes_an_estimator(name, kind):
    from eqtuners._sharpness import METHODS, make_estimator

    assert name in METHODS
    estimator = make_estimator(name, prefix="sharpness_")
    assert isinstance(estimator, kind)
    params, fn = tiny_problem()
    state = estimator.init(params)

    @eqx.filter_jit
    def track(estimator, state):
        def measure(state, key):
            estimate, state, info = estimator.update(fn, params, state, key)
            return state, (estimate, info)

        return jax.lax.scan(measure, state, jax.random.split(jax.random.key(0), 3))

    final, (estimates, info) = track(estimator, state)
    assert jax.tree.structure(final) == jax.tree.structure(state)
    for a, b in zip(jax.tree.leaves(final), jax.tree.leaves(state)):
        assert a.shape == b.shape and a.dtype == b.dtype
    assert set(info) == {"num_hvps", "converged", "residual", "top_k"}
    assert estimates.shape == (3,) and np.all(np.isfinite(estimates))
    one, _ = et.sharpness(fn, params, method=name)
    if name == "directional":  # the same gradient every time
        np.testing.assert_allclose(estimates, float(one), rtol=1e-5)
    else:
        np.testing.assert_allclose(estimates[-1], float(one), rtol=2e-2)


def test_directional_curvature_gives_the_gradient_from_the_same_pass(x64):
    from eqtuners._sharpness import value_grad_and_curvature

    params, fn = tiny_problem()
    value, grad, curvature, info = value_grad_and_curvature(fn, params)
    assert float(value) == pytest.approx(float(fn(params)), rel=1e-14)
    assert tree_allclose(grad, jax.grad(fn)(params), rtol=1e-12, atol=1e-14)
    expected, _ = et.directional_curvature(fn, params, jax.grad(fn)(params))
    assert float(curvature) == pytest.approx(float(expected), rel=1e-12)
    assert int(info["num_hvps"]) == 1


@pytest.mark.parametrize("method", ["lobpcg", "directional"])
def test_new_method_names_work_in_train(method):
    data = (jnp.asarray(tiny_data()[0]), jnp.asarray(tiny_data()[1]))
    model = et.MLP(8, 10, (8,), key=jax.random.key(0))
    result = et.train(
        model,
        et.Polyak(),
        data,
        4,
        key=jax.random.key(1),
        measure=et.Measurements(2, estimator=method),
        steps_per_call=4,
    )
    sharpness = result.history["sharpness"]
    assert np.all(np.isfinite(sharpness[[0, 2, 3]]))  # the last step, always
    assert np.isnan(sharpness[1])


def tiny_data():
    x = jax.random.normal(jax.random.key(1), (32, 8))
    y = jax.random.randint(jax.random.key(2), (32,), 0, 10)
    return x, y


# --- Low precision ------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
@pytest.mark.parametrize("method", ["lanczos", "lobpcg", "directional"])
def test_estimators_work_in_low_precision(dtype, method):
    params, fn = tiny_problem()
    x, y = tiny_data()
    model = et.MLP(8, 10, (8,), key=jax.random.key(0))
    low_fn, _ = et.objective_fn(model, x.astype(dtype), y)
    low = jax.tree.map(lambda a: a.astype(dtype), params)

    reference, _ = et.sharpness(fn, params, method=method, **_tight(method))
    estimate, info = et.sharpness(low_fn, low, method=method)
    assert estimate.dtype == dtype and info["top_k"].dtype == dtype
    assert jax.tree.map(lambda a: a.dtype, info["eigenvector"]) == jax.tree.map(
        lambda a: a.dtype, low
    )
    assert float(estimate) == pytest.approx(float(reference), rel=5e-2)
    # Tracking: the state keeps its dtypes.
    from eqtuners._sharpness import make_estimator

    estimator = make_estimator(method)
    state = estimator.init(low)
    estimate, new_state, _ = eqx.filter_jit(
        lambda e, p, s: e.update(low_fn, p, s, jax.random.key(0))
    )(estimator, low, state)
    assert jax.tree.map(lambda a: a.dtype, new_state) == jax.tree.map(
        lambda a: a.dtype, state
    )
    assert float(estimate) == pytest.approx(float(reference), rel=5e-2)


def _tight(method):
    return {} if method == "directional" else {"tol": 1e-6}


# --- Parameters that are not all floating point -------------------------------------


class WithCounter(eqx.Module):
    linear: eqx.nn.Linear
    count: jax.Array


@pytest.mark.parametrize(
    "call",
    [
        lambda fn, p: et.sharpness(fn, p),
        lambda fn, p: et.sharpness(fn, p, method="lanczos"),
        lambda fn, p: et.sharpness(fn, p, method="lobpcg"),
        lambda fn, p: et.sharpness(fn, p, method="directional"),
        lambda fn, p: et.hessian_vector_product(fn, p, p),
        lambda fn, p: et.directional_curvature(fn, p, p),
        lambda fn, p: et.PowerIteration().run(fn, p),
        lambda fn, p: et.Lanczos().run(fn, p),
        lambda fn, p: et.LOBPCG().run(fn, p),
        lambda fn, p: et.RecycledRitz().run(fn, p),
        lambda fn, p: et.DirectionalCurvature().run(fn, p),
        lambda fn, p: et.Lanczos().init(p),
        lambda fn, p: et.LOBPCG().init(p),
        lambda fn, p: _update(et.PowerIteration(), fn, p),
        lambda fn, p: _update(et.Lanczos(), fn, p),
        lambda fn, p: _update(et.LOBPCG(), fn, p),
        lambda fn, p: _update(et.RecycledRitz(), fn, p),
        lambda fn, p: _update(et.DirectionalCurvature(), fn, p),
    ],
)
def test_integer_leaves_in_params_are_a_clear_error(call):
    model = WithCounter(eqx.nn.Linear(3, 2, key=jax.random.key(0)), jnp.array(0))
    params, static = eqx.partition(model, eqx.is_array)

    def fn(p):
        return jnp.sum(eqx.combine(p, static).linear(jnp.ones(3)) ** 2)

    with pytest.raises(ValueError, match=r"\.count.*is_inexact_array"):
        call(fn, params)


def _update(estimator, fn, params):
    """`update` from a state made for the floating-point part of `params`."""
    state = estimator.init(eqx.filter(params, eqx.is_inexact_array))
    return estimator.update(fn, params, state, jax.random.key(0))
