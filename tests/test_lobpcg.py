"""The block estimator, LOBPCG: against dense float64 eigenvalues, with a repeated
top eigenvalue, and tracking a top eigenvector that rotates between measurements."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import eqtuners as et

from .helpers import (
    DIM,
    SPECTRA,
    quadratic,
    random_quadratic,
    swapped_pair,
    track,
    tracked_block_on_a_quartic,
)


@eqx.filter_jit
def lobpcg_on_quadratic(estimator, matrix, key):
    fn = quadratic(matrix, jnp.zeros(matrix.shape[0], matrix.dtype))
    return et.sharpness(
        fn, jnp.zeros(matrix.shape[0], matrix.dtype), method=estimator, key=key
    )


@pytest.mark.parametrize("name", sorted(SPECTRA))
@pytest.mark.parametrize(
    "block_size, k, guards", [(2, 1, True), (2, 1, False), (3, 3, True)]
)
def test_lobpcg_finds_the_top_eigenvalues_of_known_spectra(
    x64, name, block_size, k, guards
):
    eigenvalues = SPECTRA[name]
    matrix, _ = random_quadratic(3, DIM, eigenvalues)
    top = np.sort(eigenvalues)[::-1][:k]
    for seed in range(2):
        key = jax.random.key(seed)
        if guards:  # (without, the clustered top takes ~1000 iterations to 1e-10)
            tight = et.LOBPCG(block_size, tol=1e-10, max_iters=200, k=k)
            estimate, info = lobpcg_on_quadratic(tight, matrix, key)
            np.testing.assert_allclose(info["top_k"], top, rtol=1e-8)
            assert info["converged"] and float(estimate) == info["top_k"][0]
        # The default tolerance on the residual bounds the relative error.
        estimator = et.LOBPCG(block_size, k=k, iterate_guards=guards)
        estimate, info = lobpcg_on_quadratic(estimator, matrix, key)
        assert info["converged"]
        per_iteration = block_size if guards else k
        assert (int(info["num_hvps"]) - block_size) % per_iteration == 0
        assert np.all(np.asarray(info["top_k"]) <= top + 1e-12)  # Ritz values
        # The residual rule guarantees an eigenvalue within tol |theta|; with every
        # vector iterated, the top ones were found.
        nearest = np.min(np.abs(eigenvalues - float(estimate)))
        assert nearest <= 1e-3 * abs(float(estimate))
        if guards:
            np.testing.assert_allclose(info["top_k"], top, rtol=1e-3)
        v = np.asarray(info["eigenvector"])
        assert np.linalg.norm(v) == pytest.approx(1.0)
        explicit = np.linalg.norm(matrix @ v - float(estimate) * v)
        assert explicit <= 1e-3 * abs(float(estimate)) + 1e-12
        np.testing.assert_allclose(info["residual"], explicit, rtol=1e-6, atol=1e-12)


def test_lobpcg_on_a_tiny_mlp_matches_the_dense_hessian(x64):
    model = et.MLP(8, 10, (8,), key=jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (32, 8))
    y = jax.random.randint(jax.random.key(2), (32,), 0, 10)
    fn, params = et.objective_fn(model, x, y)
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    hessian = jax.hessian(lambda v: fn(unravel(v)))(flat)
    eigenvalues = np.linalg.eigvalsh(np.asarray(hessian))[::-1]
    estimator = et.LOBPCG(block_size=3, tol=1e-9, max_iters=300, k=2)
    _, info = et.sharpness(fn, params, method=estimator)
    np.testing.assert_allclose(info["top_k"], eigenvalues[:2], rtol=1e-7)


def test_a_repeated_top_eigenvalue_needs_a_block(x64):
    matrix, vector = random_quadratic(0, 6, np.array([5.0, 5.0, 2.0, 1.0, 0.5, 0.1]))
    fn = quadratic(matrix, vector)
    # One starting vector holds one direction of the eigenspace of 5: Lanczos sees
    # the eigenvalue once (documented), with an accurate pair.
    _, info = et.sharpness(fn, jnp.zeros(6), method="lanczos", k=2, tol=1e-10)
    np.testing.assert_allclose(info["top_k"], [5.0, 2.0], rtol=1e-8)
    # A block of two sees it twice.
    for method in (et.LOBPCG(block_size=2, k=2), et.LOBPCG(block_size=3, k=2)):
        _, info = et.sharpness(fn, jnp.zeros(6), method=method)
        assert info["converged"]
        np.testing.assert_allclose(info["top_k"], [5.0, 5.0], rtol=1e-6)
    _, info = et.sharpness(fn, jnp.zeros(6), method="lobpcg", k=2)
    np.testing.assert_allclose(info["top_k"], [5.0, 5.0], rtol=1e-6)


def test_warm_lobpcg_follows_a_top_eigenvector_that_rotates(x64):
    first, after = swapped_pair()
    matrices = jnp.stack([first, after])
    # A single warm-start vector is an exact eigenvector of the new Hessian, for
    # the second eigenvalue: Lanczos stops there at once, "converged".
    estimates, info = track(et.Lanczos(), matrices, jax.random.key(0))
    assert float(estimates[0]) == pytest.approx(1.0, rel=1e-3)
    assert float(estimates[1]) == pytest.approx(0.99, rel=1e-4)
    assert bool(info["converged"][1]) and int(info["num_hvps"][1]) <= 2
    # The block held both eigenvectors: the first Rayleigh-Ritz step finds the new
    # top one.
    for estimator in (et.LOBPCG(), et.LOBPCG(block_size=3)):
        estimates, info = track(estimator, matrices, jax.random.key(0))
        np.testing.assert_allclose(estimates, [1.0, 1.0], rtol=1e-3)
        assert np.all(info["converged"])
        assert int(info["num_hvps"][1]) < int(info["num_hvps"][0])
    # Cold starts find it too, at the full price.
    cold = et.LOBPCG(warm_start=False)
    estimates, info = track(cold, matrices, jax.random.key(0))
    np.testing.assert_allclose(estimates, [1.0, 1.0], rtol=1e-3)


def test_lobpcg_tracking_keeps_the_state_shapes_and_compiles_once():
    estimator = et.LOBPCG(block_size=3, k=2)
    state, estimate, info = tracked_block_on_a_quartic(estimator)
    assert state.eigenvector["a"].shape == (3, 4)
    assert state.others["a"].shape == (2, 3, 4)
    assert state.others["b"].dtype == jnp.bfloat16
    assert float(estimate) == pytest.approx(12.0, rel=1e-3)  # 12 a^2 at a = 1
    assert int(info["num_hvps"]) == 3  # the warm block is already exact


def test_lobpcg_with_fewer_parameters_than_vectors_pads_with_nan():
    fn = lambda w: 2.0 * jnp.sum(w**2)  # noqa: E731  (Hessian 4 I, 2 dimensions)
    _, info = et.sharpness(fn, jnp.ones(2), method=et.LOBPCG(block_size=3, k=3))
    np.testing.assert_allclose(info["top_k"][:2], [4.0, 4.0], rtol=1e-6)
    assert np.isnan(info["top_k"][2]) and not info["converged"]


def test_lobpcg_stops_on_a_nan_objective_and_at_max_iters(x64):
    _, info = et.sharpness(
        lambda w: jnp.nan * jnp.sum(w**2), jnp.ones(8), method="lobpcg"
    )
    assert int(info["num_hvps"]) == 2 and not info["converged"]
    matrix, _ = random_quadratic(3, DIM, SPECTRA["clustered_top"])
    # Two products for the block, then two per iteration, or one (the top
    # vector's) without the guards.
    estimator = et.LOBPCG(tol=0.0, max_iters=3)
    _, info = lobpcg_on_quadratic(estimator, matrix, jax.random.key(0))
    assert int(info["num_hvps"]) == 8 and not info["converged"]
    estimator = et.LOBPCG(tol=0.0, max_iters=3, iterate_guards=False)
    _, info = lobpcg_on_quadratic(estimator, matrix, jax.random.key(0))
    assert int(info["num_hvps"]) == 5 and not info["converged"]


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(block_size=0), "block_size"),
        (dict(block_size=2, k=3), "k"),
        (dict(tol=-1.0), "tol"),
        (dict(max_iters=-1), "max_iters"),
    ],
)
def test_lobpcg_rejects_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        et.LOBPCG(**kwargs)


@pytest.mark.parametrize("iterate_guards", [False, True])
def test_lobpcg_counts_the_products_it_makes(x64, iterate_guards):
    """`num_products` against the columns actually handed to the operator,
    counted on the host, for a cold start, a warm start that passes at once and one
    that does not."""
    from eqtuners._sharpness.lobpcg import lobpcg

    matrix, _ = random_quadratic(3, DIM, SPECTRA["separated"])
    counted = []

    def matmat(vectors):
        jax.debug.callback(lambda: counted.append(vectors.shape[1]))
        return matrix @ vectors

    @jax.jit
    def run(start, tol):
        active = 3 if iterate_guards else 1
        return lobpcg(matmat, start, k=1, tol=tol, max_iters=50, active=active)

    cold = jax.random.normal(jax.random.key(0), (DIM, 3), jnp.float64)
    warm = jnp.asarray(np.linalg.eigh(np.asarray(matrix))[1][:, ::-1][:, :3])
    nudged = warm + 1e-2 * cold
    for start, at_once in ((cold, False), (warm, True), (nudged, False)):
        counted.clear()
        result = run(start, 1e-6)
        jax.effects_barrier()
        assert int(result.num_products) == sum(counted)
        assert bool(result.converged)
        assert result.eigenvalues[0] == pytest.approx(10.0, rel=1e-6)
        assert counted[0] == 3  # the whole block first
        if at_once:
            assert len(counted) == 1 and int(result.num_iters) == 0
        else:
            per_iteration = 3 if iterate_guards else 1
            assert len(counted) > 1 and set(counted[1:]) == {per_iteration}
