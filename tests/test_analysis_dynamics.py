"""The joint-dynamics models and the shared simulator."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import eqtuners as et
from analysis import (
    AbstractDynamicsModel,
    SecondOrderRegression,
    SelfStabilisation,
    TopEigenmodeQuadratic,
    random_second_order_regression,
    simulate,
)
from analysis._simulate import _scan

TUNERS = {
    "gd": et.Constant(0.3),
    "armijo": et.Armijo(),
    "polyak": et.Polyak(),
}


def x64_settings(**kwargs):
    return settings(
        suppress_health_check=[HealthCheck.function_scoped_fixture], **kwargs
    )


@eqx.filter_jit
def reference_step(model, tuner, params, state):
    """One step written out: the tuner's step size, then the gradient step."""
    value, grad = jax.value_and_grad(model.loss)(params)
    stepsize, state, _ = tuner.step(model.loss, params, value, grad, state)
    sharpness = jnp.linalg.eigvalsh(jax.hessian(model.loss)(params))[-1]
    return params - stepsize * grad, state, (value, stepsize, sharpness)


SMALL_STEPS = 8  # shared by the tests on the small regression, to compile once


@pytest.mark.parametrize("name", sorted(TUNERS))
def test_simulate_matches_a_python_loop_over_the_tuner(x64, name):
    model = random_second_order_regression(jax.random.key(0), 3, 6, target_scale=2.0)
    tuner = TUNERS[name]
    params = jnp.zeros(6)
    trajectory = simulate(model, tuner, params, SMALL_STEPS)
    state = tuner.init(params)
    for t in range(SMALL_STEPS):
        h = {k: v[t] for k, v in trajectory.history.items()}
        assert np.allclose(trajectory.params[t], params, rtol=1e-12)
        params, state, (value, stepsize, sharpness) = reference_step(
            model, tuner, params, state
        )
        assert np.isclose(h["loss"], value, rtol=1e-12)
        assert np.isclose(h["stepsize"], stepsize, rtol=1e-12)
        assert np.isclose(h["sharpness"], sharpness, rtol=1e-10)
        assert np.isclose(h["stepsize_x_sharpness"], stepsize * sharpness)
    assert np.allclose(trajectory.final_params, params, rtol=1e-12)


def test_new_hyperparameter_values_do_not_recompile(x64):
    model = random_second_order_regression(jax.random.key(0), 3, 6)
    simulate(model, et.Armijo(c=0.1), jnp.zeros(6), SMALL_STEPS)
    before = eqx.debug.get_num_traces(_scan)
    other = random_second_order_regression(jax.random.key(1), 3, 6)
    simulate(other, et.Armijo(c=0.3, max_stepsize=2.0), jnp.ones(6), SMALL_STEPS)
    assert eqx.debug.get_num_traces(_scan) == before


def test_simulate_rejects_bad_arguments():
    model = TopEigenmodeQuadratic(1.0)
    with pytest.raises(ValueError, match="`tuner`"):
        simulate(model, "armijo", jnp.ones(1), 3)
    with pytest.raises(ValueError, match="`model`"):
        simulate(jnp.sum, et.Armijo(), jnp.ones(1), 3)
    with pytest.raises(ValueError, match="`num_steps`"):
        simulate(model, et.Armijo(), jnp.ones(1), 0)


# --- The second-order regression model ---------------------------------------------


def test_regression_hessian_and_sharpness_match_autodiff(x64):
    model = random_second_order_regression(jax.random.key(2), 4, 7, target_scale=3.0)
    theta = jax.random.normal(jax.random.key(3), (7,))

    @jax.jit
    def computed(model, theta):
        return (
            (model.hessian(theta), jax.hessian(model.loss)(theta)),
            (model.output_jacobian(theta), jax.jacfwd(model.outputs)(theta)),
            model.sharpness(theta),
            model.ntk_top_eigenvalue(theta),
        )

    (hessian, reference), (jac, jac_reference), sharpness, ntk = computed(model, theta)
    assert np.allclose(hessian, reference, rtol=1e-10, atol=1e-12)
    assert np.isclose(sharpness, np.linalg.eigvalsh(reference)[-1])
    assert np.allclose(jac, jac_reference, rtol=1e-12)
    ntk_reference = np.linalg.eigvalsh(jac_reference @ jac_reference.T / 4)[-1]
    assert np.isclose(ntk, ntk_reference, rtol=1e-10)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"jacobian": np.ones(3)}, "jacobian"),
        ({"offsets": np.ones(2)}, "offsets"),
        ({"curvatures": np.ones((3, 4, 5))}, "curvatures"),
        ({"targets": np.ones(4)}, "targets"),
    ],
)
def test_regression_rejects_mismatched_shapes(kwargs, name):
    arrays = {
        "offsets": np.zeros(3),
        "jacobian": np.ones((3, 4)),
        "curvatures": np.zeros((3, 4, 4)),
        "targets": np.ones(3),
    }
    with pytest.raises(ValueError, match=f"`{name}`"):
        SecondOrderRegression(**(arrays | kwargs))


@x64_settings(max_examples=10)
@given(
    st.integers(0, 2**31 - 1),
    st.sampled_from(sorted(TUNERS)),
    st.floats(0.2, 3.0),
)
def test_regression_without_curvature_is_the_quadratic_model(x64, seed, name, scale):
    # Q = 0: the loss is 1/2 (r0 + J theta)^T (r0 + J theta) / n, a quadratic with
    # Hessian J^T J / n; in its eigenbasis it is TopEigenmodeQuadratic.
    n, p = 3, 6
    keys = jax.random.split(jax.random.key(seed), 3)
    jacobian = scale * jax.random.normal(keys[0], (n, p))
    regression = SecondOrderRegression(
        jnp.zeros(n), jacobian, jnp.zeros((n, p, p)), jax.random.normal(keys[1], (n,))
    )
    theta0 = jax.random.normal(keys[2], (p,))
    lams, vectors = np.linalg.eigh(np.asarray(jacobian.T @ jacobian / n))
    lams, vectors = lams[::-1][:n], vectors[:, ::-1][:, :n]  # the n nonzero modes
    # The minimiser closest to theta0 and the displacement from it:
    theta_star = theta0 - np.linalg.pinv(np.asarray(jacobian)) @ np.asarray(
        regression.outputs(theta0) - regression.targets
    )
    quadratic = TopEigenmodeQuadratic(lams, vectors.T)
    tuner = TUNERS[name]
    a = simulate(regression, tuner, theta0, SMALL_STEPS).history
    b = simulate(quadratic, tuner, jnp.asarray(theta0 - theta_star), SMALL_STEPS)
    b = b.history
    for key in ("loss", "stepsize", "grad_sq_norm"):
        assert np.allclose(a[key], b[key], rtol=1e-7, atol=1e-12), key
    assert np.allclose(a["sharpness"], lams[0], rtol=1e-10)


def test_regression_sharpens_progressively_to_the_edge_under_gd(x64):
    model = random_second_order_regression(
        jax.random.key(0), 20, 40, target_scale=7.0, spectrum_decay=1.0
    )
    stepsize = 0.5
    h = simulate(model, et.Constant(stepsize), jnp.zeros(40), 600).history
    sharpness, loss = np.asarray(h["sharpness"]), np.asarray(h["loss"])
    edge = 2 / stepsize
    assert sharpness[0] < 0.6 * edge  # starts well below the edge...
    crossed = np.argmax(sharpness > edge)
    assert crossed > 0 and sharpness[:crossed].max() <= edge  # ...climbs to it...
    # ...and hovers there while the loss keeps decreasing.
    assert np.isclose(np.mean(sharpness[-100:]), edge, rtol=0.01)
    assert np.allclose(sharpness[-100:], edge, rtol=0.05)
    assert loss[-1] < 1e-3 * loss[crossed]


# --- The self-stabilisation model ----------------------------------------------------


TWO_VARIABLE_STEPS = 100  # shared, to compile each tuner once


def damian_recursion(x, y, stepsize, alpha, beta, num_steps):
    """Damian et al.'s map with a fixed step, `y = S - 2 / stepsize`, and their
    constant alpha replaced by the model's alpha (1 - S / S_max)."""
    xs, ys = [x], [y]
    for _ in range(num_steps - 1):
        x, y = -(1 + stepsize * y) * x, y + stepsize * (alpha(y) - beta * x**2 / 2)
        xs.append(x)
        ys.append(y)
    return np.array(xs), np.array(ys)


@x64_settings(max_examples=10)
@given(  # where the map stays bounded for 100 steps (it blows up when sharpening
    # overshoots the edge by far before the displacement has grown)
    st.floats(1e-3, 1e-2),
    st.floats(0.1, 10.0),
    st.floats(5.0, 20.0),
    st.floats(0.2, 1.0),
    st.floats(0.5, 1.2),
    st.floats(1e-3, 1e-2),
)
def test_self_stabilisation_under_gd_is_damians_recursion(
    x64, alpha, beta, max_sharpness, stepsize, start_ratio, x0
):
    model = SelfStabilisation(alpha, beta, max_sharpness)
    sharpness0 = start_ratio * 2 / stepsize
    w0 = model.params_at(x0, sharpness0)
    trajectory = simulate(model, et.Constant(stepsize), w0, TWO_VARIABLE_STEPS)
    x = np.asarray(trajectory.params[:, 0])
    y = np.asarray(trajectory.history["sharpness"]) - 2 / stepsize
    x_ref, y_ref = damian_recursion(
        x0,
        sharpness0 - 2 / stepsize,
        stepsize,
        lambda y: alpha * (1 - (y + 2 / stepsize) / max_sharpness),
        beta,
        TWO_VARIABLE_STEPS,
    )
    assert np.allclose(x, x_ref, rtol=1e-8, atol=1e-12)
    assert np.allclose(y, y_ref, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("name", ["armijo", "polyak"])
def test_self_stabilisation_under_a_tuner_follows_the_reduced_map(x64, name):
    alpha, beta, s_max, eps = 0.05, 2.0, 10.0, 1e-4
    model = SelfStabilisation(alpha, beta, s_max, misalignment=eps)
    trajectory = simulate(
        model, TUNERS[name], model.params_at(0.05, 1.5), TWO_VARIABLE_STEPS
    )
    x = np.asarray(trajectory.params[:, 0])
    s = np.asarray(trajectory.history["sharpness"])
    eta = np.asarray(trajectory.history["stepsize"])
    assert np.ptp(eta) > 0  # the tuner did vary the step
    x_next = (1 - eta * s) * x - eta * eps
    s_next = s + eta * (alpha * (1 - s / s_max) - beta / 2 * (x**2 - (eps / s) ** 2))
    assert np.allclose(x[1:], x_next[:-1], rtol=1e-9, atol=1e-12)
    assert np.allclose(s[1:], s_next[:-1], rtol=1e-9)


def test_self_stabilisation_parameters_match_their_definitions(x64):
    # alpha = -grad L . grad S and beta = ||grad S||^2 at x = 0, with S the top
    # eigenvalue of the loss's Hessian, all by autodiff.
    alpha, beta, s_max = 0.3, 2.5, 8.0
    model = SelfStabilisation(alpha, beta, s_max)

    def top_eigenvalue(w):
        return jnp.linalg.eigvalsh(jax.hessian(model.loss)(w))[-1]

    @jax.jit
    def measured(w):
        top, grad_s = jax.value_and_grad(top_eigenvalue)(w)
        return top, grad_s @ grad_s, -jax.grad(model.loss)(w) @ grad_s

    for sharpness in (1.0, 4.0):
        top, beta_measured, rate = measured(model.params_at(0.0, sharpness))
        assert np.isclose(top, sharpness, rtol=1e-12)
        assert np.isclose(beta_measured, beta, rtol=1e-10)
        assert np.isclose(rate, alpha * (1 - sharpness / s_max), rtol=1e-10)


class LiftedSelfStabilisation(AbstractDynamicsModel):
    """The same loss in a `p`-dimensional parameter space: `x = u . theta` and
    `S = sqrt(beta) e . theta` for orthonormal `u`, `e`; other directions are free."""

    model: SelfStabilisation
    basis: jax.Array  # rows u, e

    def loss(self, params):
        return self.model.loss(self.basis @ params)

    def sharpness(self, params):
        return self.model.sharpness(self.basis @ params)


@pytest.mark.parametrize("name", sorted(TUNERS))
def test_parameter_space_dynamics_reduce_to_the_two_variables(x64, name):
    model = SelfStabilisation(0.05, 2.0, 10.0, misalignment=1e-4)
    basis = jnp.linalg.qr(jax.random.normal(jax.random.key(4), (6, 2)))[0].T
    lifted = LiftedSelfStabilisation(model, basis)
    w0 = model.params_at(0.05, 1.5)
    theta0 = basis.T @ w0 + 0.3 * jax.random.normal(jax.random.key(5), (6,))
    theta0 = theta0 - basis.T @ (basis @ theta0 - w0)  # projects to w0
    full = simulate(lifted, TUNERS[name], theta0, TWO_VARIABLE_STEPS)
    reduced = simulate(model, TUNERS[name], w0, TWO_VARIABLE_STEPS)
    # Under Polyak the dynamics are chaotic here (round-off differences grow about
    # tenfold every 5 steps from step 30 on), so compare the first 40 steps.
    horizon = slice(0, 40)
    projected = (full.params @ basis.T)[horizon]
    assert np.allclose(projected, reduced.params[horizon], rtol=1e-8, atol=1e-12)
    for key in ("loss", "sharpness", "stepsize"):
        a, b = full.history[key][horizon], reduced.history[key][horizon]
        assert np.allclose(a, b, rtol=1e-8), key


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"sharpening_rate": 0.0}, "sharpening_rate"),
        ({"stabilisation_strength": -1.0}, "stabilisation_strength"),
        ({"max_sharpness": 0.0}, "max_sharpness"),
        ({"misalignment": -1e-3}, "misalignment"),
    ],
)
def test_self_stabilisation_rejects_bad_values(kwargs, name):
    values = {"sharpening_rate": 0.1, "stabilisation_strength": 1.0}
    with pytest.raises(ValueError, match=f"`{name}`"):
        SelfStabilisation(**(values | {"max_sharpness": 5.0} | kwargs))
