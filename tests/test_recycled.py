"""The recycled-subspace estimator, RecycledRitz: against dense float64 eigenvalues,
a top pair that swaps between measurements, a repeated top eigenvalue, and its
product count from the operator's own calls."""

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
def on_quadratic(estimator, matrix, key):
    params = jnp.zeros(matrix.shape[0], matrix.dtype)
    fn = quadratic(matrix, params)
    return et.sharpness(fn, params, method=estimator, key=key)


@pytest.mark.parametrize("name", sorted(SPECTRA))
@pytest.mark.parametrize("block_size, k", [(1, 1), (2, 1), (3, 3)])
def test_recycled_ritz_finds_the_top_eigenvalues_of_known_spectra(
    x64, name, block_size, k
):
    eigenvalues = SPECTRA[name]
    matrix, _ = random_quadratic(3, DIM, eigenvalues)
    top = np.sort(eigenvalues)[::-1][:k]
    for seed in range(2):
        key = jax.random.key(seed)
        tight = et.RecycledRitz(block_size, tol=1e-10, k=k)
        estimate, info = on_quadratic(tight, matrix, key)
        np.testing.assert_allclose(info["top_k"], top, rtol=1e-8)
        assert info["converged"] and float(estimate) == info["top_k"][0]
        # The default tolerance: the residual rule, checked on the returned pair.
        estimate, info = on_quadratic(et.RecycledRitz(block_size, k=k), matrix, key)
        assert info["converged"]
        assert np.all(np.asarray(info["top_k"]) <= top + 1e-12)  # Ritz values
        v = np.asarray(info["eigenvector"])
        assert np.linalg.norm(v) == pytest.approx(1.0)
        explicit = np.linalg.norm(matrix @ v - float(estimate) * v)
        assert explicit <= 1e-3 * abs(float(estimate)) + 1e-12
        np.testing.assert_allclose(info["residual"], explicit, rtol=1e-6, atol=1e-12)
        # Some eigenvalue lies within the residual of the estimate.
        nearest = np.min(np.abs(eigenvalues - float(estimate)))
        assert nearest <= 1e-3 * abs(float(estimate))


def test_a_repeated_top_eigenvalue_is_seen_with_its_multiplicity(x64):
    matrix, vector = random_quadratic(0, 6, np.array([5.0, 5.0, 2.0, 1.0, 0.5, 0.1]))
    fn = quadratic(matrix, vector)
    for estimator in (et.RecycledRitz(2, k=2), et.RecycledRitz(3, k=2, tol=1e-8)):
        _, info = et.sharpness(fn, jnp.zeros(6), method=estimator)
        assert info["converged"]
        np.testing.assert_allclose(info["top_k"], [5.0, 5.0], rtol=1e-6)
    _, info = et.sharpness(fn, jnp.zeros(6), method="recycled", k=2)
    np.testing.assert_allclose(info["top_k"], [5.0, 5.0], rtol=1e-6)


@eqx.filter_jit
def track_with_gradient(estimator, matrices, gradients, key):
    """`update` at each Hessian in turn with the step's gradient, as `train` does."""
    params = jnp.zeros(matrices.shape[-1], matrices.dtype)

    def measure(state, inputs):
        matrix, grad, key = inputs
        fn = quadratic(matrix, jnp.zeros_like(params))
        estimate, state, info = estimator.update(fn, params, state, key, grad=grad)
        return state, (estimate, info)

    keys = jax.random.split(key, matrices.shape[0])
    return jax.lax.scan(measure, estimator.init(params), (matrices, gradients, keys))[1]


def test_a_top_pair_whose_order_swaps_between_measurements(x64):
    first, after = swapped_pair()
    matrices = jnp.stack([first, after])
    # Warm Lanczos stops on the old top eigenvector, now the second eigenvalue's.
    estimates, _ = track(et.Lanczos(), matrices, jax.random.key(0))
    assert float(estimates[1]) == pytest.approx(0.99, rel=1e-4)
    # The recycled block holds both eigenvectors: Rayleigh-Ritz on it finds the new
    # top at once, without a gradient and with one.
    for estimator in (et.RecycledRitz(), et.RecycledRitz(3)):
        estimates, info = track(estimator, matrices, jax.random.key(0))
        np.testing.assert_allclose(estimates, [1.0, 1.0], rtol=1e-3)
        assert np.all(info["converged"])
        assert int(info["num_hvps"][1]) < int(info["num_hvps"][0])
        gradients = jax.random.normal(jax.random.key(1), (2, DIM))
        estimates, info = track_with_gradient(
            estimator, matrices, gradients, jax.random.key(0)
        )
        np.testing.assert_allclose(estimates, [1.0, 1.0], rtol=1e-3)
        assert np.all(info["converged"])


def test_the_gradient_enters_the_subspace(x64):
    """A gradient along the new top eigenvector: the first Rayleigh-Ritz step on
    the warm block and the gradient is exact, at `block_size + 1` products; without
    the gradient the swap is invisible to a block of one."""
    first, after = swapped_pair()
    values, vectors = np.linalg.eigh(np.asarray(after))
    top = jnp.asarray(vectors[:, -1])
    matrices = jnp.stack([first, after])
    # (At the first measurement, a random gradient: an exact eigenvector of a lower
    # eigenvalue in a cold start would have a zero residual, as for any estimator.)
    gradients = jnp.stack([jax.random.normal(jax.random.key(1), (DIM,)), top])
    estimator = et.RecycledRitz(1, tol=1e-8)
    estimates, info = track_with_gradient(
        estimator, matrices, gradients, jax.random.key(0)
    )
    np.testing.assert_allclose(estimates, [values[-1]] * 2, rtol=1e-8)
    assert int(info["num_hvps"][1]) == 2
    no_grad = et.RecycledRitz(1, tol=1e-8, use_grad=False)
    estimates, _ = track_with_gradient(no_grad, matrices, gradients, jax.random.key(0))
    assert float(estimates[1]) == pytest.approx(values[-2], rel=1e-8)


class CountingProducts(et.AbstractHessianOperator):
    """Fresh products that count themselves on the host, whatever the loops and
    branches they run in."""

    inner: et.FreshProducts
    params: jax.Array

    def mv(self, vector):
        jax.debug.callback(COUNT.append, 1)
        return self.inner.mv(vector)

    def value_and_grad(self):
        return self.inner.value_and_grad()


COUNT: list = []


@pytest.mark.parametrize("grad", ["none", "zero", "random", "in_the_block"])
def test_products_are_counted_by_the_operators_own_calls(x64, grad):
    matrix, _ = random_quadratic(1, DIM, SPECTRA["clustered_top"])
    params = jnp.zeros(DIM)
    fn = quadratic(matrix, params)
    operator = CountingProducts(et.FreshProducts(fn, params), params)
    estimator = et.RecycledRitz(2, tol=1e-6)
    state = estimator.init(params)

    @eqx.filter_jit
    def update(estimator, state, grad, key):
        return estimator.update(fn, params, state, key, operator=operator, grad=grad)

    for i in range(3):
        previous = state
        vector = {
            "none": None,
            "zero": jnp.zeros(DIM),  # nothing to multiply: no product
            "random": jax.random.normal(jax.random.key(10 + i), (DIM,)),
            # In the span of the block: dropped without a product.
            "in_the_block": previous.eigenvector + 0.5 * previous.others[0],
        }[grad]
        if grad == "in_the_block" and i == 0:
            vector = None  # the first block is random: nothing to lie in yet
        COUNT.clear()
        _, state, info = update(estimator, state, vector, jax.random.key(i))
        jax.effects_barrier()
        assert int(info["num_hvps"]) == len(COUNT) > 0, (grad, i)
        assert info["converged"]


def test_recycled_ritz_stops_at_the_basis_capacity_and_on_a_nan(x64):
    matrix, _ = random_quadratic(2, DIM, SPECTRA["clustered_top"])
    estimator = et.RecycledRitz(2, tol=1e-14, max_size=5)
    _, info = on_quadratic(estimator, matrix, jax.random.key(0))
    assert int(info["num_hvps"]) == 5 and not info["converged"]
    estimate, info = et.sharpness(
        lambda w: jnp.nan * jnp.sum(w**2), jnp.ones(3), method="recycled"
    )
    assert np.isnan(estimate) and not info["converged"]
    assert int(info["num_hvps"]) == 1


def test_recycled_ritz_tracking_keeps_the_state_shapes_and_compiles_once():
    estimator = et.RecycledRitz(block_size=3, k=2)
    state, estimate, _ = tracked_block_on_a_quartic(estimator, grad="grad")
    assert state.others["a"].shape == (2, 3, 4)
    assert state.others["b"].dtype == jnp.bfloat16
    assert float(estimate) == pytest.approx(12.0, rel=1e-3)  # 12 a^2 at a = 1


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"block_size": 0}, "block_size"),
        ({"k": 4}, "k"),
        ({"tol": -1.0}, "tol"),
        ({"max_size": 2}, "max_size"),
    ],
)
def test_recycled_ritz_rejects_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        et.RecycledRitz(**kwargs)


def test_recycled_ritz_in_train_with_a_shared_linearised_operator():
    from .helpers import small_data

    x, y = small_data(64)
    model = et.MLP(64, 10, (16, 16), key=jax.random.key(0))
    measure = et.Measurements(2, estimator="recycled", hessian_trace=2)
    states = []

    def go(**kwargs):
        return et.train(
            model,
            et.Polyak(),
            (x, y),
            5,
            key=jax.random.key(1),
            measure=measure,
            steps_per_call=3,
            progress=False,
            **kwargs,
        )

    result = go(callback=lambda rows, state: states.append(state))
    # Resumed after the first call, from the carried Ritz vectors: bit-identical.
    resumed = go(resume=states[0])
    for name, column in result.history.items():
        np.testing.assert_array_equal(column[3:], resumed.history[name], name)
    h = result.history
    measured = np.isfinite(h["sharpness"])
    assert measured.tolist() == [True, False, True, False, True]
    assert np.all(h["sharpness_converged"][measured] == 1)
    # At least the warm block (2 vectors) and the step's gradient, from the
    # second measurement on.
    assert np.all(h["sharpness_num_hvps"][measured][1:] >= 3)


def test_fewer_parameters_than_the_block_keeps_the_state_shapes(x64):
    """Two parameters, a block of three: the third Ritz value is NaN and its vector
    zero, and the state keeps the shapes of `init`."""
    matrix = jnp.array([[2.0, 0.5], [0.5, 1.0]])
    estimator = et.RecycledRitz(3, k=1)
    estimates, info = track(estimator, jnp.stack([matrix, matrix]), jax.random.key(0))
    np.testing.assert_allclose(estimates, np.linalg.eigvalsh(matrix)[-1], rtol=1e-10)
    assert np.all(info["converged"])


def test_a_stack_of_tolerances_runs_under_vmap(x64):
    """`tol` is a traced leaf: a stack of estimators measures as each alone."""
    matrix, _ = random_quadratic(4, DIM, SPECTRA["separated"])
    estimators = [et.RecycledRitz(2, tol=tol) for tol in (1e-1, 1e-8)]
    stacked = et.stack(estimators)
    key = jax.random.key(0)
    together = eqx.filter_vmap(lambda e: on_quadratic(e, matrix, key))(stacked.tree)
    for i, estimator in enumerate(estimators):
        estimate, info = on_quadratic(estimator, matrix, key)
        np.testing.assert_allclose(together[0][i], estimate, rtol=1e-10)
        assert int(together[1]["num_hvps"][i]) == int(info["num_hvps"])
    assert int(together[1]["num_hvps"][0]) < int(together[1]["num_hvps"][1])
