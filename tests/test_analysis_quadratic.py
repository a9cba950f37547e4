"""The top-eigenmode quadratic model: its closed forms against the library's tuners."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import eqtuners as et
from analysis import (
    TopEigenmodeQuadratic,
    armijo_acceptance_bound,
    armijo_grid_stepsize,
    edge_of_stability,
    largest_armijo_stepsize,
    polyak_stepsize,
    simulate,
)


def x64_settings(**kwargs):
    """The profile's settings; the x64 fixture is entered once per test, not per
    example, which is what these tests want."""
    return settings(
        suppress_health_check=[HealthCheck.function_scoped_fixture], **kwargs
    )


# Strategies: eigenvalues over six orders of magnitude, coordinates over five.
eigenvalue = st.floats(-3, 3).map(lambda e: 10.0**e)
relative_eigenvalue = st.floats(-3, 0).map(lambda e: 10.0**e)
coordinate = st.tuples(st.floats(-3, 2), st.sampled_from([-1.0, 1.0])).map(
    lambda t: t[1] * 10.0 ** t[0]
)
armijo_c = st.floats(1e-4, 0.9)
max_stepsize = st.floats(-2, 1).map(lambda e: 10.0**e)
decrease_factor = st.floats(0.1, 0.95)
NUM_MODES = 3
further_ratios = st.lists(
    relative_eigenvalue, min_size=NUM_MODES - 1, max_size=NUM_MODES - 1
)
mode_coordinates = st.lists(coordinate, min_size=NUM_MODES, max_size=NUM_MODES)
# Round-off in the tuner's test `f(w - s g) <= f(w) - c s ||g||^2` can flip its answer
# only when the bound lies this close (relatively) to a trial step.
BOUNDARY = 1e-9


@eqx.filter_jit
def tuner_step(model, tuner, params):
    """The step `tuner` takes at `params` on `model` (one compile per tuner class)."""
    value, grad = jax.value_and_grad(model.loss)(params)
    stepsize, _, _ = tuner.step(model.loss, params, value, grad, tuner.init(params))
    return stepsize


def several_modes(top, ratios):
    return TopEigenmodeQuadratic(np.array([top, *(top * r for r in ratios)]))


def assert_is_grid_step(step, expected, bound, factor):
    """`step == expected` (up to round-off in `max_stepsize * factor**k`), or a
    neighbour on the grid when the bound sits on a trial step up to round-off."""
    if np.isclose(step, expected, rtol=1e-12, atol=0):
        return
    at_boundary = min(abs(step / bound - 1), abs(expected / bound - 1)) < BOUNDARY
    neighbours = np.isclose(step, expected * factor, rtol=1e-12) or np.isclose(
        step * factor, expected, rtol=1e-12
    )
    assert at_boundary and neighbours, (step, expected, bound)


def test_loss_and_gradient_match_autodiff(x64):
    vectors = np.linalg.qr(np.random.default_rng(0).normal(size=(5, 5)))[0][:3]
    model = TopEigenmodeQuadratic(np.array([4.0, 1.0, 0.5]), vectors)
    w = jnp.asarray(np.random.default_rng(1).normal(size=5))

    @jax.jit
    def computed(model, w):
        return (
            model.loss(w),
            (model.grad(w), jax.grad(model.loss)(w)),
            jax.hessian(model.loss)(w),
            model.curvature_along_gradient(w),
        )

    loss, (grad, reference), hessian, kappa = computed(model, w)
    a = vectors @ w
    assert np.isclose(loss, 0.5 * (4 * a[0] ** 2 + a[1] ** 2 + 0.5 * a[2] ** 2))
    assert np.allclose(grad, reference, rtol=1e-12)
    assert np.isclose(model.sharpness(w), np.linalg.eigvalsh(hessian)[-1], rtol=1e-12)
    assert np.isclose(kappa, grad @ hessian @ grad / (grad @ grad), rtol=1e-12)


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda: TopEigenmodeQuadratic(0.0), "eigenvalues"),
        (lambda: TopEigenmodeQuadratic([1.0, -1.0]), "eigenvalues"),
        (lambda: TopEigenmodeQuadratic([1.0, 2.0]), "eigenvalues"),
        (lambda: TopEigenmodeQuadratic([1.0, 0.5], np.ones((2, 3))), "eigenvectors"),
        (lambda: TopEigenmodeQuadratic([1.0, 0.5], np.eye(3)), "eigenvectors"),
        (lambda: edge_of_stability(0.0), "sharpness"),
        (lambda: armijo_acceptance_bound(1.0, c=1.0), "c"),
        (lambda: armijo_acceptance_bound(1.0, c=0.0), "c"),
        (lambda: armijo_acceptance_bound(-2.0), "sharpness"),
        (lambda: polyak_stepsize(1.0, max_stepsize=0.0), "max_stepsize"),
        (lambda: armijo_grid_stepsize(0.0), "acceptance_bound"),
        (lambda: armijo_grid_stepsize(1.0, decrease_factor=1.0), "decrease_factor"),
        (lambda: armijo_grid_stepsize(1.0, max_backtracks=-1), "max_backtracks"),
        (lambda: largest_armijo_stepsize(jnp.sum, jnp.ones(2), c=2.0), "c"),
    ],
)
def test_invalid_arguments_raise(make, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        make()


@x64_settings()
@given(eigenvalue, armijo_c, max_stepsize, decrease_factor, coordinate)
def test_armijo_step_on_one_mode_is_the_grid_step_under_the_bound(
    x64, lam, c, gamma_max, factor, a
):
    model = TopEigenmodeQuadratic(np.array([lam]))
    tuner = et.Armijo(c=c, max_stepsize=gamma_max, decrease_factor=factor)
    step = float(tuner_step(model, tuner, jnp.array([a])))
    bound = float(armijo_acceptance_bound(lam, c))
    expected = float(armijo_grid_stepsize(bound, gamma_max, factor))
    assert_is_grid_step(step, expected, bound, factor)
    assert step <= bound * (1 + BOUNDARY)
    if step > 0:  # within one decrease factor of the largest step it may take
        assert step > factor * min(bound, gamma_max) * (1 - BOUNDARY)
    assert bound < edge_of_stability(lam)


@x64_settings(max_examples=10)
@given(
    st.integers(0, 60),
    armijo_c,
    max_stepsize,
    decrease_factor,
    coordinate,
    st.sampled_from([-1, 0, 1]),
)
def test_armijo_at_a_grid_point_bound_is_off_by_at_most_one_trial(
    x64, k, c, gamma_max, factor, a, ulps
):
    # Choose the sharpness so that the bound falls on the k-th trial step (+- ulps).
    grid_point = gamma_max * factor**k
    lam = 2 * (1 - c) / np.nextafter(grid_point, np.inf if ulps > 0 else 0, dtype=float)
    lam = lam if ulps else 2 * (1 - c) / grid_point
    model = TopEigenmodeQuadratic(np.array([lam]))
    tuner = et.Armijo(c=c, max_stepsize=gamma_max, decrease_factor=factor)
    step = float(tuner_step(model, tuner, jnp.array([a])))
    assert np.isclose(step, grid_point, rtol=1e-12) or np.isclose(
        step, grid_point * factor, rtol=1e-12
    )


@x64_settings()
@given(
    eigenvalue,
    further_ratios,
    mode_coordinates,
    armijo_c,
    max_stepsize,
    decrease_factor,
)
def test_armijo_step_on_several_modes_is_under_the_bound_along_the_gradient(
    x64, top, ratios, coordinates, c, gamma_max, factor
):
    model = several_modes(top, ratios)
    w = jnp.array(coordinates)
    tuner = et.Armijo(c=c, max_stepsize=gamma_max, decrease_factor=factor)
    step = float(tuner_step(model, tuner, w))
    kappa = float(model.curvature_along_gradient(w))
    bound = float(armijo_acceptance_bound(kappa, c))
    assert_is_grid_step(
        step, float(armijo_grid_stepsize(bound, gamma_max, factor)), bound, factor
    )
    # The bound with the top eigenvalue accepts a subset of these steps:
    top_bound = float(armijo_acceptance_bound(top, c))
    assert bound >= top_bound * (1 - 1e-12)
    if step > 0:
        assert step > factor * min(top_bound, gamma_max) * (1 - BOUNDARY)


def test_armijo_on_several_modes_can_exceed_the_top_eigenvalue_bound(x64):
    # A gradient mostly along a flat mode: the bound 2(1-c)/lambda_0 does not hold.
    model = TopEigenmodeQuadratic(np.array([10.0, 0.1]))
    w = jnp.array([1e-3, 1.0])
    step = float(tuner_step(model, et.Armijo(), w))
    assert step > float(armijo_acceptance_bound(10.0, 1e-4))
    assert step * 10.0 > 2  # above the edge of stability of the top mode


@x64_settings()
@given(eigenvalue, max_stepsize, coordinate)
def test_polyak_step_on_one_mode(x64, lam, gamma_max, a):
    model = TopEigenmodeQuadratic(np.array([lam]))
    step = tuner_step(model, et.Polyak(max_stepsize=gamma_max), jnp.array([a]))
    expected = polyak_stepsize(lam, gamma_max)
    assert np.isclose(step, expected, rtol=1e-12, atol=0)
    assert expected < edge_of_stability(lam)


@x64_settings()
@given(
    eigenvalue,
    further_ratios,
    mode_coordinates,
    max_stepsize,
)
def test_polyak_step_on_several_modes_lies_between_the_extreme_modes(
    x64, top, ratios, coordinates, gamma_max
):
    model = several_modes(top, ratios)
    step = float(
        tuner_step(model, et.Polyak(max_stepsize=gamma_max), jnp.array(coordinates))
    )
    smallest = top * min(ratios)
    assert float(polyak_stepsize(top, gamma_max)) * (1 - 1e-12) <= step
    assert step <= float(polyak_stepsize(smallest, gamma_max)) * (1 + 1e-12)


@x64_settings(max_examples=15)
@given(
    eigenvalue,
    further_ratios,
    mode_coordinates,
    st.one_of(st.floats(0.05, 0.9), st.floats(1.1, 3.0)),
)
def test_gd_converges_below_the_edge_and_diverges_above(
    x64, top, ratios, coordinates, ratio
):
    model = several_modes(top, ratios)
    gamma = ratio * float(edge_of_stability(top))
    num_steps = 100
    loss = np.asarray(
        simulate(model, et.Constant(gamma), jnp.array(coordinates), num_steps).history[
            "loss"
        ]
    )
    # Each coordinate is multiplied by 1 - gamma lambda_i at every step.
    lams, a0 = np.asarray(model.eigenvalues), np.array(coordinates)
    t = np.arange(num_steps)[:, None]
    exact = 0.5 * np.sum(lams * a0**2 * (1 - gamma * lams) ** (2 * t), axis=1)
    assert np.allclose(loss, exact, rtol=1e-9, atol=0)
    if ratio < 1:
        assert np.all(np.diff(loss) < 0)
    else:
        assert loss[-1] > 1e6 * loss[0]


class ConvexFunction(eqx.Module):
    """`sum_j s_j softplus(A_j w + b_j) + mu/2 ||w||^2 + q/4 sum_i w_i^4`."""

    weights: jax.Array
    offsets: jax.Array
    scales: jax.Array
    ridge: jax.Array
    quartic: jax.Array

    def __call__(self, w):
        softplus = jnp.logaddexp(0, self.weights @ w + self.offsets)
        return (
            self.scales @ softplus
            + self.ridge / 2 * w @ w
            + self.quartic / 4 * jnp.sum(w**4)
        )


@eqx.filter_jit
def largest_and_tuner_steps(fn, w, tuner):
    value, grad = jax.value_and_grad(fn)(w)
    step, _, _ = tuner.step(fn, w, value, grad, tuner.init(w))
    return largest_armijo_stepsize(fn, w, tuner.c), step


@eqx.filter_jit
def armijo_holds(fn, w, c, steps):
    """Whether the Armijo condition holds at each of `steps`."""
    value, grad = jax.value_and_grad(fn)(w)
    trials = jax.vmap(lambda s: fn(w - s * grad))(steps)
    return trials <= value - c * steps * (grad @ grad)


@x64_settings(max_examples=15)
@given(
    eigenvalue,
    further_ratios,
    mode_coordinates,
    armijo_c,
)
def test_root_finder_recovers_the_closed_form_bound(x64, top, ratios, coordinates, c):
    model = several_modes(top, ratios)
    w = jnp.array(coordinates)
    largest, _ = largest_and_tuner_steps(model.loss, w, et.Armijo(c=c))
    kappa = model.curvature_along_gradient(w)
    assert np.isclose(largest, armijo_acceptance_bound(kappa, c), rtol=1e-10)


@x64_settings(max_examples=15)
@given(
    st.integers(0, 2**31 - 1),
    st.floats(-2, 1).map(lambda e: 10.0**e),
    st.floats(0.0, 1.0),
    st.floats(0.0, 1.0),
    armijo_c,
    max_stepsize,
    decrease_factor,
)
def test_armijo_on_convex_slices_returns_the_grid_step_under_the_root(
    x64, seed, scale, ridge, quartic, c, gamma_max, factor
):
    keys = jax.random.split(jax.random.key(seed), 4)
    fn = ConvexFunction(
        weights=scale * jax.random.normal(keys[0], (5, 3)),
        offsets=jax.random.normal(keys[1], (5,)),
        scales=jax.random.uniform(keys[2], (5,), minval=0.1, maxval=2.0),
        ridge=jnp.asarray(ridge),
        quartic=jnp.asarray(quartic),
    )
    w = jax.random.normal(keys[3], (3,))
    tuner = et.Armijo(c=c, max_stepsize=gamma_max, decrease_factor=factor)
    largest, step = largest_and_tuner_steps(fn, w, tuner)
    largest, step = float(largest), float(step)
    # The root is where the Armijo condition stops holding...
    around = largest * jnp.array([1 - 1e-6, 1 + 1e-6])
    assert np.array_equal(armijo_holds(fn, w, c, around), [True, False])
    # ...and the tuner returns the largest trial step below it.
    expected = float(armijo_grid_stepsize(largest, gamma_max, factor))
    assert_is_grid_step(step, expected, largest, factor)


def test_largest_armijo_stepsize_is_the_first_failure_where_it_holds_again(x64):
    # Along -grad at w = 0 the step is s = w. The Armijo margin of
    # f(w) = -w + 0.1 w^2 + bump(w) fails where the bump rises above (1 - c) w, on
    # an interval around 0.7, and holds again past it up to w ~ 10.
    c = 1e-4

    def fn(w):
        w = w[0]
        return -w + 0.1 * w**2 + jnp.exp(-(((w - 0.7) / 0.05) ** 2))

    w = jnp.zeros(1)
    grid = jnp.linspace(0.3, 12.0, 200_001)
    holds = armijo_holds(fn, w, c, grid)
    first_failure = float(grid[np.argmin(holds)])
    assert 0.6 < first_failure < 0.7 and holds[grid > 1.0][0]  # it holds again
    found = float(largest_armijo_stepsize(fn, w, c))
    assert found == pytest.approx(first_failure, abs=1e-4)
