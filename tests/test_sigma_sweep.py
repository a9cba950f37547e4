"""The edge tuners in the joint-dynamics simulators, and CDAT's sigma swept in the
self-stabilisation model: what the quadratic model along the gradient guarantees."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import eqtuners as et
from analysis import (
    SelfStabilisation,
    SigmaSweep,
    random_second_order_regression,
    sigma_sweep,
    simulate,
)

EDGE_TUNERS = {
    "cdat": et.CDAT(1.8),
    "cdat_ema": et.CDAT(2.0, ema=0.9),
    "zhang_hager_forward": et.Armijo(
        max_stepsize=10.0,
        decrease_factor=0.5,
        reference=et.ZhangHagerReference(1.0),
        first_trial=et.ForwardTracking(2.0),
    ),
    "grippo": et.Armijo(reference=et.GrippoReference(5)),
    "ponos": et.PoNoS(),
}
STEPS = 12


@eqx.filter_jit
def reference_step(model, tuner, params, state):
    """One step written out, the tuner given only the objective (CDAT computes the
    curvature along the gradient from it: its own fallback)."""
    value, grad = jax.value_and_grad(model.loss)(params)
    stepsize, state, _ = tuner.step(model.loss, params, value, grad, state)
    hessian = jax.hessian(model.loss)(params)
    curvature = grad @ hessian @ grad / (grad @ grad)
    return params - stepsize * grad, state, (value, stepsize, curvature)


@pytest.mark.parametrize("name", sorted(EDGE_TUNERS))
def test_simulate_runs_the_edge_tuners_like_a_python_loop(x64, name):
    """CDAT gets the curvature from the simulator as `train` gives it, which equals
    its own fallback; the non-monotone searches carry their reference and memory
    in the scan as in a loop; the recorded curvature along the gradient is the
    dense Hessian's."""
    model = random_second_order_regression(jax.random.key(0), 3, 6, target_scale=2.0)
    tuner = EDGE_TUNERS[name]
    params = jnp.zeros(6)
    h = simulate(model, tuner, params, STEPS).history
    state = tuner.init(params)
    for t in range(STEPS):
        params, state, (value, stepsize, curvature) = reference_step(
            model, tuner, params, state
        )
        assert np.isclose(h["loss"][t], value, rtol=1e-11)
        assert np.isclose(h["stepsize"][t], stepsize, rtol=1e-9)
        assert np.isclose(h["directional_curvature"][t], curvature, rtol=1e-9)
    assert np.all(h["stepsize"] > 0)


def test_a_stack_of_tuners_runs_as_separate_runs(x64):
    model = SelfStabilisation(0.05, 2.0, 10.0, misalignment=1e-4)
    start = model.params_at(0.05, 1.5)
    sigmas = (1.0, 1.7, 2.0)
    stacked = simulate(model, et.stack([et.CDAT(s) for s in sigmas]), start, 60)
    assert stacked.history["loss"].shape == (3, 60)
    for i, sigma in enumerate(sigmas):
        alone = simulate(model, et.CDAT(sigma), start, 60)
        # Two programs (vmapped or not): equal to rounding, not bit for bit.
        for key in ("loss", "stepsize", "sharpness"):
            np.testing.assert_allclose(
                stacked.history[key][i], alone.history[key], rtol=1e-9
            )


def test_simulate_rejects_a_stack_of_models():
    model = SelfStabilisation(0.05, 2.0, 10.0)
    with pytest.raises(ValueError, match="`tuner`"):
        simulate(model, et.stack([model, model]), model.params_at(0.1, 1.0), 3)


@settings(max_examples=10, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.floats(0.01, 0.2),
    st.floats(0.5, 5.0),
    st.floats(5.0, 20.0),
    st.floats(0.01, 0.2),
    st.lists(st.floats(0.3, 3.0), min_size=3, max_size=3),
)
def test_cdat_steps_sigma_over_the_curvature_along_the_gradient(
    x64, alpha, beta, max_sharpness, x0, sigmas
):
    """The identity behind the threshold: CDAT's step times the exact curvature
    along the gradient is `sigma` at every step (eps = 0; `-sigma` where the
    curvature is negative), so where it is positive the quadratic model of the
    loss along the gradient changes by `-sigma (1 - sigma / 2) G / kappa`: down
    below 2, not at all at 2, up above."""
    model = SelfStabilisation(alpha, beta, max_sharpness, misalignment=1e-4)
    sweep = sigma_sweep(model, model.params_at(x0, 1.5), sigmas, 30)
    h = sweep.trajectory.history
    product = np.asarray(h["stepsize_x_directional_curvature"])
    for row, sigma in zip(product, sigmas):
        finite = np.isfinite(row)
        assert finite[0]
        np.testing.assert_allclose(np.abs(row[finite]), sigma, rtol=1e-9)


# The model of the figure: sharpening at rate 0.05 towards S_max = 10, from S = 1.5.
ALPHA, BETA, S_MAX = 0.05, 2.0, 10.0
START_SHARPNESS = 1.5


@pytest.fixture(scope="module")
def swept():
    with jax.enable_x64(True):
        model = SelfStabilisation(ALPHA, BETA, S_MAX, misalignment=1e-4)
        start = model.params_at(0.05, START_SHARPNESS)
        sweep = sigma_sweep(model, start, (0.5, 1.0, 1.5, 2.0, 2.5), 2000)
    return model, sweep


def test_below_two_the_loss_falls_and_forces_the_sharpness_up(x64, swept):
    """Below 2 each step lowers the quadratic model of the loss; the loss is at
    least its residual `alpha / (2 beta S_max) (S_max - S)^2`, so a loss below the
    residual at a sharpness `S*` forces `S >= S*`."""
    model, sweep = swept
    midway = (START_SHARPNESS + S_MAX) / 2
    for i in np.flatnonzero(sweep.sigmas < 2):
        loss, sharp = sweep.final_loss[i], sweep.final_sharpness[i]
        assert not sweep.diverged[i]
        assert loss < float(model.residual_loss(midway))  # the loss fell below...
        assert sharp >= S_MAX - np.sqrt(2 * BETA * S_MAX * loss / ALPHA) - 1e-9
        assert sharp >= midway  # ...so the sharpness rose past midway


def test_at_two_the_sharpness_is_held_and_above_the_loss_cannot_fall(swept):
    """At 2 the quadratic model of the loss is unchanged by every step: nothing
    drives the sharpness up, and it stays below where every run below 2 ended.
    Above 2 the quadratic model rises at every step: the run diverges or ends
    above its initial loss."""
    _, sweep = swept
    at_two = int(np.flatnonzero(sweep.sigmas == 2.0)[0])
    below = sweep.sigmas < 2
    assert not sweep.diverged[at_two]
    assert sweep.final_sharpness[at_two] < np.min(sweep.final_sharpness[below])
    assert sweep.final_sharpness[at_two] < (START_SHARPNESS + S_MAX) / 2
    for i in np.flatnonzero(sweep.sigmas > 2):
        assert sweep.diverged[i] or sweep.final_loss[i] > sweep.initial_loss[i]
        if sweep.diverged[i]:
            assert np.isnan(sweep.final_sharpness[i])


def test_the_sweep_summaries_are_those_of_its_runs(swept):
    _, sweep = swept
    assert isinstance(sweep, SigmaSweep)
    h = sweep.trajectory.history
    i = 1  # sigma 1
    assert sweep.final_sharpness[i] == h["sharpness"][i, -1]
    assert sweep.median_stepsize_x_sharpness[i] == pytest.approx(
        np.median(h["stepsize_x_sharpness"][i, 1000:])
    )
    np.testing.assert_allclose(sweep.initial_sharpness, START_SHARPNESS)


@pytest.mark.parametrize(
    "sigmas, steps, match",
    [((), 10, "`sigmas`"), ((1.0,), 1, "`num_steps`"), ((-1.0,), 10, "`sigma`")],
)
def test_the_sweep_rejects_bad_arguments(sigmas, steps, match):
    model = SelfStabilisation(ALPHA, BETA, S_MAX)
    with pytest.raises(ValueError, match=match):
        sigma_sweep(model, model.params_at(0.05, 1.5), sigmas, steps)
