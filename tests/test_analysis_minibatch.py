"""Mini-batch training on per-example quadratics: the simulator against dense float64
references, and its closed forms."""

import itertools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import eqtuners as et
from analysis import (
    PerExampleQuadratics,
    TopEigenmodeQuadratic,
    armijo_acceptance_bound,
    armijo_grid_stepsize,
    batch_top_eigenvalue_bounds,
    expected_batch_curvature,
    random_per_example_quadratics,
    simulate,
    simulate_minibatch,
)
from analysis._minibatch import _scan

TUNERS = {  # built inside each test, so that under x64 their values are float64
    "sgd": lambda: et.Constant(0.1),
    "armijo": et.Armijo,
    "polyak": et.Polyak,
}
# One small shape and one run length shared by the tests, so that each tuner class
# compiles once per batch size.
N, K, D = 12, 2, 4
STEPS = 8
# Round-off in the tuner's test can flip its answer only this close (relatively) to
# the bound.
BOUNDARY = 1e-9


def x64_settings(**kwargs):
    return settings(
        suppress_health_check=[HealthCheck.function_scoped_fixture], **kwargs
    )


def small_model(seed=0, noise_scale=0.3, rank=K, sharpness=3.0):
    return random_per_example_quadratics(
        jax.random.key(seed),
        N,
        D,
        rank,
        sharpness=sharpness,
        noise_scale=noise_scale,
    )


def start(seed=1):
    return jax.random.normal(jax.random.key(seed), (D,))


def dense_batch(model, batch, w):
    """Batch loss, gradient and Hessian in float64 NumPy, from the definition."""
    jac = np.asarray(model.jacobians, float)[batch]
    y = np.asarray(model.targets, float)[batch]
    residuals = np.einsum("bkd,d->bk", jac, w) - y
    loss = np.sum(residuals**2) / (2 * len(batch))
    grad = np.einsum("bkd,bk->d", jac, residuals) / len(batch)
    hessian = np.einsum("bki,bkj->ij", jac, jac) / len(batch)
    return loss, grad, hessian


@eqx.filter_jit
def model_quantities(model, w, batch):
    """What the model computes, and autodiff's view of it, in one compile."""
    return {
        "loss": model.loss(w),
        "hessian": model.hessian,
        "autodiff_hessian": jax.hessian(model.loss)(w),
        "sharpness": model.sharpness(),
        "batch_loss": model.batch_loss(w, batch),
        "batch_grad": jax.grad(model.batch_loss)(w, batch),
        "batch_hessian": model.batch_hessian(batch),
        "example_gradients": model.example_gradients(w),
    }


def test_model_matches_its_definition_and_autodiff(x64):
    model = small_model()
    w = np.asarray(start(), float)
    batch = np.array([3, 7, 8])
    q = model_quantities(model, jnp.asarray(w), jnp.asarray(batch))
    everyone = np.arange(N)
    loss, grad, hessian = dense_batch(model, everyone, w)
    assert np.isclose(q["loss"], loss, rtol=1e-12)
    assert np.allclose(q["hessian"], hessian, rtol=1e-12)
    assert np.allclose(q["autodiff_hessian"], hessian, rtol=1e-10)
    assert np.isclose(q["sharpness"], np.linalg.eigvalsh(hessian)[-1], rtol=1e-12)
    assert np.isclose(q["sharpness"], 3.0, rtol=1e-12)  # as requested
    # The minimiser: zero gradient, and the minimum is the loss there.
    w_star = np.asarray(model.minimiser)
    assert np.allclose(dense_batch(model, everyone, w_star)[1], 0, atol=1e-12)
    assert np.isclose(model.minimum, dense_batch(model, everyone, w_star)[0])
    b_loss, b_grad, b_hessian = dense_batch(model, batch, w)
    assert np.isclose(q["batch_loss"], b_loss, rtol=1e-12)
    assert np.allclose(q["batch_grad"], b_grad, rtol=1e-10)
    assert np.allclose(q["batch_hessian"], b_hessian, rtol=1e-12)
    per_example = np.stack([dense_batch(model, [i], w)[1] for i in range(N)])
    assert np.allclose(q["example_gradients"], per_example, rtol=1e-10)
    # Without label noise every batch loss is 0 at the teacher.
    clean = small_model(noise_scale=0.0)
    assert clean.minimum < 1e-20
    assert dense_batch(clean, batch, np.asarray(clean.minimiser))[0] < 1e-20


@pytest.mark.parametrize("name", sorted(TUNERS))
def test_recorded_curvatures_match_dense_references(x64, name):
    model, w0, batch_size = small_model(), start(), 5
    trajectory = simulate_minibatch(
        model, TUNERS[name](), w0, STEPS, batch_size, jax.random.key(2)
    )
    h = {k: np.asarray(v) for k, v in trajectory.history.items()}
    batches = np.asarray(trajectory.batches)
    sharpness = np.linalg.eigvalsh(dense_batch(model, np.arange(N), w0)[2])[-1]
    for t in range(STEPS):
        w = np.asarray(trajectory.params[t])
        loss, grad, hessian = dense_batch(model, batches[t], w)
        kappa = grad @ hessian @ grad / (grad @ grad)
        top = np.linalg.eigvalsh(hessian)[-1]
        step = h["stepsize"][t]
        assert np.isclose(h["loss"][t], dense_batch(model, np.arange(N), w)[0])
        assert np.isclose(h["batch_loss"][t], loss, rtol=1e-12)
        assert np.isclose(h["grad_sq_norm"][t], grad @ grad, rtol=1e-10)
        assert np.isclose(h["sharpness"][t], sharpness, rtol=1e-12)
        assert np.isclose(h["batch_curvature"][t], kappa, rtol=1e-10)
        assert np.isclose(h["batch_top_eigenvalue"][t], top, rtol=1e-10)
        assert np.isclose(h["stepsize_x_sharpness"][t], step * sharpness)
        assert np.isclose(h["stepsize_x_batch_curvature"][t], step * kappa)
        assert np.isclose(h["stepsize_x_batch_top_eigenvalue"][t], step * top)
        following = (
            trajectory.params[t + 1] if t + 1 < STEPS else trajectory.final_params
        )
        assert np.allclose(following, w - step * grad, rtol=1e-12, atol=1e-14)
    # Without replacement within an epoch (2 batches of 5; 2 examples left out),
    # reshuffled between epochs.
    assert np.array_equal(h["epoch"], np.arange(STEPS) // 2)
    for epoch in range(STEPS // 2):
        seen = batches[2 * epoch : 2 * epoch + 2].ravel()
        assert len(set(seen)) == 10 and seen.min() >= 0 and seen.max() < N
    assert len({tuple(np.sort(b)) for b in batches}) > 2


def reference_grid_step(kappa, tuner):
    bound = armijo_acceptance_bound(kappa, tuner.c)
    grid = armijo_grid_stepsize(bound, tuner.max_stepsize, tuner.decrease_factor)
    return np.asarray(bound), np.asarray(grid)


@x64_settings()
@given(
    st.integers(0, 2**31 - 1),
    st.sampled_from([1, 5, N]),
    st.floats(1e-4, 0.9),
    st.floats(-1, 1).map(lambda e: 10.0**e),
    st.floats(0.2, 0.95),
    st.floats(-1, 2).map(lambda e: 10.0**e),
)
def test_armijo_sgd_steps_are_the_grid_steps_under_the_batch_bound(
    x64, seed, batch_size, c, max_stepsize, factor, sharpness
):
    # The Armijo condition on a quadratic batch loss holds exactly for steps up to
    # 2 (1 - c) / kappa_B, so the tuner returns the largest grid step below it.
    model = small_model(seed, sharpness=sharpness)
    tuner = et.Armijo(c=c, max_stepsize=max_stepsize, decrease_factor=factor)
    trajectory = simulate_minibatch(
        model, tuner, start(seed + 1), STEPS, batch_size, jax.random.key(seed)
    )
    h = {k: np.asarray(v) for k, v in trajectory.history.items()}
    step, kappa = h["stepsize"], h["batch_curvature"]
    bound, expected = reference_grid_step(kappa, tuner)
    assert np.all(step * kappa <= 2 * (1 - c) * (1 + BOUNDARY))
    on_grid = np.isclose(step, expected, rtol=1e-12, atol=0)
    at_boundary = np.minimum(abs(step / bound - 1), abs(expected / bound - 1))
    assert np.all(on_grid | (at_boundary < BOUNDARY)), (step, expected, bound)
    # Hence step x kappa_B lies within one decrease factor of 2 (1 - c) unless capped.
    capped = step == max_stepsize
    assert np.all(capped | (step * kappa > 2 * factor * (1 - c) * (1 - BOUNDARY)))
    assert np.all(~capped | (kappa <= 2 * (1 - c) / max_stepsize * (1 + BOUNDARY)))


@x64_settings()
@given(
    st.integers(0, 2**31 - 1),
    st.sampled_from([1, 5, N]),
    st.floats(-1, 1).map(lambda e: 10.0**e),
    st.floats(0.0, 1.0),
)
def test_polyak_sgd_steps_respect_the_batch_bounds(
    x64, seed, batch_size, max_stepsize, noise_scale
):
    # gamma_P kappa_B >= 1/2 and gamma_P lambda_max(H_B) >= 1/2 (Lyapunov's
    # inequality), so the capped step is at least min(1 / (2 kappa_B), cap).
    model = small_model(seed, noise_scale=noise_scale)
    tuner = et.Polyak(max_stepsize=max_stepsize)
    trajectory = simulate_minibatch(
        model, tuner, start(seed + 1), STEPS, batch_size, jax.random.key(seed)
    )
    h = {k: np.asarray(v) for k, v in trajectory.history.items()}
    step = h["stepsize"]
    for curvature in (h["batch_curvature"], h["batch_top_eigenvalue"]):
        floor = np.minimum(1 / (2 * curvature), max_stepsize)
        assert np.all(step >= floor * (1 - BOUNDARY))
    assert np.all(step <= max_stepsize)


def test_polyak_on_one_example_of_rank_one_is_half_kaczmarz(x64):
    # H_i = x_i x_i^T and f_i* = 0: the Polyak step is 1 / (2 ||x_i||^2) =
    # 1 / (2 kappa_B) exactly, and kappa_B = lambda_max(H_B) = ||x_i||^2.
    model = small_model(3, noise_scale=0.0, rank=1, sharpness=0.5)
    tuner = et.Polyak(max_stepsize=100.0)
    trajectory = simulate_minibatch(model, tuner, start(), STEPS, 1, jax.random.key(0))
    h = {k: np.asarray(v) for k, v in trajectory.history.items()}
    norms = np.sum(np.asarray(model.jacobians)[:, 0] ** 2, axis=1)
    picked = norms[np.asarray(trajectory.batches)[:, 0]]
    assert np.allclose(h["batch_curvature"], picked, rtol=1e-10)
    assert np.allclose(h["batch_top_eigenvalue"], picked, rtol=1e-10)
    assert np.allclose(h["stepsize"], 1 / (2 * picked), rtol=1e-10)


@pytest.mark.parametrize("name", sorted(TUNERS))
def test_full_batch_is_the_deterministic_quadratic(x64, name):
    model, w0, tuner = small_model(noise_scale=0.0), start(), TUNERS[name]()
    full = simulate_minibatch(model, tuner, w0, STEPS, N, jax.random.key(0)).history
    deterministic = simulate(model, tuner, w0, STEPS).history
    for key in ("loss", "stepsize", "grad_sq_norm", "sharpness"):
        assert np.allclose(full[key], deterministic[key], rtol=1e-9), key
    assert np.allclose(full["batch_loss"], full["loss"], rtol=1e-9)
    assert np.allclose(full["batch_top_eigenvalue"], full["sharpness"], rtol=1e-12)
    # The top-eigenmode quadratic in the eigenbasis of H, started at w0 - w*.
    lams, vectors = np.linalg.eigh(np.asarray(model.hessian))
    quadratic = TopEigenmodeQuadratic(lams[::-1], vectors[:, ::-1].T)
    error = jnp.asarray(w0 - model.minimiser)
    reduced = simulate(quadratic, tuner, error, STEPS)
    for key in ("loss", "stepsize", "grad_sq_norm", "sharpness"):
        assert np.allclose(full[key], reduced.history[key], rtol=1e-8), key
    kappa = jax.vmap(quadratic.curvature_along_gradient)(reduced.params)
    assert np.allclose(full["batch_curvature"], kappa, rtol=1e-8)
    if name == "armijo":
        _, expected = reference_grid_step(kappa, tuner)
        assert np.allclose(full["stepsize"], expected, rtol=1e-12)


def all_batches(model, batch_size):
    return [
        np.array(b)
        for b in itertools.combinations(range(model.num_examples), batch_size)
    ]


def test_batch_statistics_over_all_batches_match_the_closed_forms(x64):
    # Exact expectations by enumerating every batch of a 7-example problem.
    model = random_per_example_quadratics(
        jax.random.key(4), 7, 3, 2, noise_scale=0.5, spectrum_decay=0.0
    )
    w = np.asarray(start()[:3], float)
    sharpness = float(model.sharpness())
    tops = []
    for b in range(1, 8):
        batches = all_batches(model, b)
        dense = [dense_batch(model, batch, w) for batch in batches]
        top = np.mean([np.linalg.eigvalsh(h)[-1] for _, _, h in dense])
        numerator = np.mean([g @ h @ g for _, g, h in dense])
        denominator = np.mean([g @ g for _, g, _ in dense])
        closed = expected_batch_curvature(model, jnp.asarray(w), b)
        assert np.isclose(closed, numerator / denominator, rtol=1e-10), b
        lower, upper = batch_top_eigenvalue_bounds(model, b)
        assert np.isclose(lower, sharpness, rtol=1e-12)
        assert lower * (1 - 1e-12) <= top <= upper * (1 + 1e-12), b
        tops.append(top)
    # Jensen: E lambda_max(H_B) decreases with b, from the mean per-example top
    # eigenvalue to lambda_max(H).
    assert np.all(np.diff(tops) <= 1e-12) and tops[0] > tops[-1]
    per_example = np.mean(
        [np.linalg.eigvalsh(dense_batch(model, [i], w)[2])[-1] for i in range(7)]
    )
    assert np.isclose(tops[0], per_example) and np.isclose(tops[-1], sharpness)
    # The upper bound at b = 1 is the per-example mean, and it is tight there.
    assert np.isclose(batch_top_eigenvalue_bounds(model, 1)[1], per_example)


def test_batch_size_moves_the_simulated_statistics_as_predicted(x64):
    model = random_per_example_quadratics(
        jax.random.key(5), 256, 8, 1, sharpness=4.0, noise_scale=0.5
    )
    tops = []
    for b in (4, 32, 256):
        h = simulate_minibatch(
            model, et.Constant(0.1), jnp.zeros(8), 64, b, jax.random.key(6)
        ).history
        tops.append(float(np.mean(h["batch_top_eigenvalue"])))
    sharpness = float(model.sharpness())
    assert np.all(np.diff(tops) < 0) and np.isclose(tops[-1], sharpness)
    assert tops[0] > 1.5 * sharpness
    # At the noisy minimiser the gradient is all noise: the expected batch curvature
    # falls with b from the per-example curvature (||x_i||^2 for rank 1) toward
    # that of the noise under H, below lambda_max(H) (at b = n it is 0 / 0).
    curvatures = [
        float(expected_batch_curvature(model, model.minimiser, b))
        for b in (1, 4, 16, 64, 255)
    ]
    assert np.all(np.diff(curvatures) < 0)
    squared_norms = np.sum(np.asarray(model.jacobians)[:, 0] ** 2, axis=1)
    assert curvatures[0] > np.min(squared_norms) and curvatures[-1] < sharpness


def test_new_values_do_not_recompile(x64):
    simulate_minibatch(
        small_model(0), et.Armijo(), start(), STEPS, 5, jax.random.key(0)
    )
    before = eqx.debug.get_num_traces(_scan)
    simulate_minibatch(
        small_model(7, noise_scale=0.0, sharpness=20.0),
        et.Armijo(c=0.3, max_stepsize=2.0, decrease_factor=0.5),
        start(8),
        STEPS,
        5,
        jax.random.key(9),
    )
    assert eqx.debug.get_num_traces(_scan) == before


def test_trajectory_of_simulate_has_no_batches():
    assert (
        simulate(TopEigenmodeQuadratic(1.0), et.Armijo(), jnp.ones(1), 2).batches
        is None
    )


@pytest.mark.parametrize(
    "call, name",
    [
        (
            lambda m: simulate_minibatch(m, "armijo", start(), 3, 2, jax.random.key(0)),
            "tuner",
        ),
        (
            lambda m: simulate_minibatch(
                None, et.Armijo(), start(), 3, 2, jax.random.key(0)
            ),
            "model",
        ),
        (
            lambda m: simulate_minibatch(
                m, et.Armijo(), jnp.ones(3), 3, 2, jax.random.key(0)
            ),
            "params",
        ),
        (
            lambda m: simulate_minibatch(
                m, et.Armijo(), start(), 0, 2, jax.random.key(0)
            ),
            "num_steps",
        ),
        (
            lambda m: simulate_minibatch(
                m, et.Armijo(), start(), 3, N + 1, jax.random.key(0)
            ),
            "batch_size",
        ),
        (lambda m: simulate_minibatch(m, et.Armijo(), start(), 3, 2, 0), "key"),
        (lambda m: expected_batch_curvature(m, start(), 0), "batch_size"),
        (lambda m: batch_top_eigenvalue_bounds(m, N + 1), "batch_size"),
        (lambda m: PerExampleQuadratics(np.ones((3, 4)), np.ones(3)), "jacobians"),
        (lambda m: PerExampleQuadratics(np.ones((3, 2, 4)), np.ones(3)), "targets"),
        (lambda m: random_per_example_quadratics(jax.random.key(0), 4, 3, 4), "rank"),
        (
            lambda m: random_per_example_quadratics(
                jax.random.key(0), 4, 3, sharpness=0.0
            ),
            "sharpness",
        ),
        (
            lambda m: random_per_example_quadratics(
                jax.random.key(0), 4, 3, num_classes=5
            ),
            "num_classes",
        ),
        (
            lambda m: random_per_example_quadratics(
                jax.random.key(0), 4, 3, noise_scale=-1.0
            ),
            "noise_scale",
        ),
    ],
)
def test_bad_arguments_raise(call, name):
    model = small_model()
    with pytest.raises(ValueError, match=f"`{name}`"):
        call(model)
