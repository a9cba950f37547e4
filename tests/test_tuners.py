import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import assume, given, strategies as st

import eqtuners as et

from .helpers import quadratic, random_quadratic


@eqx.filter_jit
def armijo_on_quadratic(tuner, matrix, vector, w):
    """One Armijo step on `1/2 w^T A w + b^T w`, and the Armijo condition evaluated
    independently at every point of the tuner's grid."""
    fn = quadratic(matrix, vector)
    value, grad = jax.value_and_grad(fn)(w)
    stepsize, _, info = tuner.step(fn, w, value, grad, tuner.init(w))
    grid = tuner.max_stepsize * tuner.decrease_factor ** jnp.arange(
        tuner.max_backtracks + 1
    )
    trial_values = jax.vmap(lambda s: fn(w - s * grad))(grid)
    holds = trial_values <= value - tuner.c * grid * (grad @ grad)
    return stepsize, info, grid, holds, fn(w - stepsize * grad), value, grad @ grad


@given(
    seed=st.integers(0, 2**16),
    log_scale=st.floats(-2, 3),
    negative=st.booleans(),
    c=st.floats(1e-4, 0.9),
    max_stepsize=st.floats(1e-2, 10),
    decrease_factor=st.floats(0.1, 0.95),
)
def test_armijo_accepts_the_largest_grid_step_that_satisfies_the_condition(
    seed, log_scale, negative, c, max_stepsize, decrease_factor
):
    rng = np.random.default_rng(seed)
    eigenvalues = 10**log_scale * rng.uniform(0.01, 1.0, 6)
    if negative:  # a non-convex quadratic
        eigenvalues[0] *= -1
    with jax.enable_x64(True):
        matrix, vector = random_quadratic(seed, 6, eigenvalues)
        w = jnp.asarray(rng.normal(size=6))
        tuner = et.Armijo(c, max_stepsize, decrease_factor, max_backtracks=60)
        outputs = jax.tree.map(
            np.asarray, armijo_on_quadratic(tuner, matrix, vector, w)
        )
    stepsize, info, grid, holds, new_value, value, gsq = outputs
    if holds.any():
        first = int(np.argmax(holds))
        assert not info["failed"]
        assert int(info["num_evals"]) == first + 1
        assert stepsize == info["accepted_stepsize"]
        # The test's grid is its own vectorised formula: the same point to rounding.
        assert stepsize == pytest.approx(grid[first], rel=1e-12)
        assert new_value <= value - c * stepsize * gsq
    else:
        assert info["failed"]
        assert stepsize == 0
        assert int(info["num_evals"]) == tuner.max_backtracks + 1


def nan_outside_ball(radius):
    """`||w||^2`, but NaN outside the ball of the given radius."""
    return lambda w: jnp.where(w @ w <= radius**2, w @ w, jnp.nan)


def test_armijo_rejects_nan_trials_and_recovers_at_the_next_step():
    fn = nan_outside_ball(1.5)
    tuner = et.Armijo(max_stepsize=2.0)
    w = jnp.array([1.0, 0.0])
    state = tuner.init(w)
    value, grad = jax.value_and_grad(fn)(w)
    # The trials 2, 1.6 and 1.28 land outside the ball (NaN), 1.024 does not decrease
    # enough, 0.8192 is accepted.
    stepsize, state, info = tuner.step(fn, w, value, grad, state)
    assert not info["failed"] and int(info["num_evals"]) == 5
    assert 0 < stepsize < 2.0 and jnp.isfinite(fn(w - stepsize * grad))
    w = w - stepsize * grad
    value, grad = jax.value_and_grad(fn)(w)
    stepsize, state, info = tuner.step(fn, w, value, grad, state)
    assert info["initial_stepsize"] == 2.0  # the NaN did not shrink the next search
    assert not info["failed"]


@pytest.mark.parametrize("increase_factor", [None, 2.0])
def test_armijo_failure_is_flagged_and_the_next_step_starts_afresh(increase_factor):
    tuner = et.Armijo(max_backtracks=5, increase_factor=increase_factor)
    w = jnp.array([1.0, -2.0])
    state = tuner.init(w)
    always_nan = lambda v: jnp.where(jnp.all(v == w), 1.0, jnp.nan)  # noqa: E731
    stepsize, state, info = tuner.step(always_nan, w, 1.0, w, state)
    assert info["failed"] and stepsize == 0 and int(info["num_evals"]) == 6
    assert info["accepted_stepsize"] == 0
    fn = lambda v: v @ v  # noqa: E731
    value, grad = jax.value_and_grad(fn)(w)
    stepsize, state, info = tuner.step(fn, w, value, grad, state)
    assert not info["failed"] and info["initial_stepsize"] == 1.0
    assert fn(w - stepsize * grad) < value


def test_armijo_increase_factor_starts_from_the_previous_step():
    fn = lambda v: 5.0 * v @ v  # noqa: E731  (only steps <= 0.2 (1 - c) pass)
    tuner = et.Armijo(increase_factor=1.5)
    w = jnp.array([1.0, 2.0])
    state = tuner.init(w)
    initials, accepted = [], []
    for _ in range(3):
        value, grad = jax.value_and_grad(fn)(w)
        stepsize, state, info = tuner.step(fn, w, value, grad, state)
        initials.append(float(info["initial_stepsize"]))
        accepted.append(float(stepsize))
        w = w - stepsize * grad
    assert initials[0] == 1.0
    for previous, initial in zip(accepted[:-1], initials[1:]):
        assert initial == pytest.approx(min(1.5 * previous, 1.0))
    assert all(s <= 0.2 for s in accepted)


def test_armijo_fails_at_once_where_the_objective_is_nan():
    w = jnp.ones(2)
    tuner = et.Armijo()
    stepsize, _, info = tuner.step(lambda v: v @ v, w, jnp.nan, w, tuner.init(w))
    assert stepsize == 0 and info["failed"] and int(info["num_evals"]) == 0


def test_armijo_accepts_the_first_trial_at_a_zero_gradient():
    w = jnp.zeros(3)
    tuner = et.Armijo()
    stepsize, _, info = tuner.step(lambda v: v @ v, w, 0.0, w, tuner.init(w))
    assert stepsize == 1.0 and int(info["num_evals"]) == 1 and not info["failed"]


@given(
    value=st.floats(0, 100),
    gsq=st.floats(0, 100),
    f_min=st.floats(-1, 1),
    max_stepsize=st.floats(1e-3, 10),
    eps=st.sampled_from([0.0, 1e-8, 1.0]),
)
def test_polyak_matches_the_formula(value, gsq, f_min, max_stepsize, eps):
    with jax.enable_x64(True):
        tuner = et.Polyak(max_stepsize, f_min, eps)
        grad = jnp.array([np.sqrt(gsq), 0.0])
        stepsize, _, info = jax.tree.map(
            np.asarray, tuner.step(None, grad, value, grad, None)
        )
    denominator = gsq + eps
    unclipped = (value - f_min) / denominator if denominator > 0 else np.inf
    expected = min(max(unclipped, 0.0), max_stepsize)
    assert float(stepsize) == pytest.approx(expected, rel=1e-12)
    assert bool(info["capped"]) == (unclipped >= max_stepsize)
    if np.isfinite(unclipped):
        assert float(info["unclipped_stepsize"]) == pytest.approx(unclipped, rel=1e-12)


def test_polyak_zero_gradient_gives_a_finite_step_and_finite_parameters():
    w = jnp.array([1.0, 2.0])
    zero = jnp.zeros(2)
    for value in (0.0, 1.0):
        stepsize, _, info = et.Polyak().step(None, w, value, zero, None)
        assert stepsize == 1.0 and info["capped"]
        assert jnp.all(w - stepsize * zero == w)


def test_constant_returns_its_stepsize():
    stepsize, state, info = et.Constant(0.3).step(None, jnp.ones(2), 1.0, None, None)
    assert stepsize == pytest.approx(0.3) and state is None
    assert info == {"nonfinite_input": False}


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda: et.Armijo(c=0.0), "c"),
        (lambda: et.Armijo(c=1.0), "c"),
        (lambda: et.Armijo(c=float("nan")), "c"),
        (lambda: et.Armijo(decrease_factor=1.0), "decrease_factor"),
        (lambda: et.Armijo(decrease_factor=0.0), "decrease_factor"),
        (lambda: et.Armijo(max_stepsize=0.0), "max_stepsize"),
        (lambda: et.Armijo(max_stepsize=-1.0), "max_stepsize"),
        (lambda: et.Armijo(max_backtracks=-1), "max_backtracks"),
        (lambda: et.Armijo(max_backtracks=2.5), "max_backtracks"),
        (lambda: et.Armijo(increase_factor=0.5), "increase_factor"),
        (lambda: et.Polyak(max_stepsize=0.0), "max_stepsize"),
        (lambda: et.Polyak(eps=-1e-3), "eps"),
        (lambda: et.Polyak(f_min=float("inf")), "f_min"),
        (lambda: et.Constant(0.0), "stepsize"),
        (lambda: et.Constant(-0.1), "stepsize"),
        (lambda: et.Constant(jnp.array([0.1, -0.1])), "stepsize"),
        (lambda: et.Constant("0.1"), "stepsize"),
    ],
)
def test_constructors_reject_invalid_values(make, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        make()


@pytest.mark.parametrize(
    "tuners",
    [
        [et.Armijo(c, s, d) for c, s, d in [(1e-4, 1.0, 0.8), (0.3, 2.0, 0.5)]],
        [et.Armijo(increase_factor=f) for f in (1.0, 3.0)],
        [et.Polyak(s, f) for s, f in [(1.0, 0.0), (0.05, 0.5)]],
        [et.Constant(s) for s in (0.1, 0.7)],
    ],
)
def test_vmap_over_a_stack_of_tuners_matches_each_tuner_alone(tuners):
    matrix, vector = random_quadratic(0, 4)
    fn = quadratic(matrix, vector)
    w = jnp.ones(4)
    value, grad = jax.value_and_grad(fn)(w)

    def two_steps(tuner):
        state = tuner.init(w)
        _, state, _ = tuner.step(fn, w, value, grad, state)
        return tuner.step(fn, w, value, grad, state)

    stacked = eqx.filter_vmap(two_steps)(et.stack(tuners).tree)
    for i, tuner in enumerate(tuners):
        alone = two_steps(tuner)
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a[i], b, rtol=1e-6), stacked, alone
        )


def test_new_hyperparameter_values_do_not_recompile():
    @eqx.filter_jit
    @eqx.debug.assert_max_traces(max_traces=1)
    def step(tuner, w):
        fn = lambda v: v @ v  # noqa: E731
        value, grad = jax.value_and_grad(fn)(w)
        return tuner.step(fn, w, value, grad, tuner.init(w))

    for c, s, d in [(1e-4, 1.0, 0.8), (0.5, 0.3, 0.5), (1e-2, 2.0, 0.9)]:
        step(et.Armijo(c, s, d), jnp.ones(3))


# --- Guards shared by every tuner (AbstractTuner.step) ---------------------------

ALL_TUNERS = {
    "constant": et.Constant(0.1),
    "armijo": et.Armijo(),
    "armijo_increase": et.Armijo(increase_factor=2.0),
    "armijo_block": et.Armijo(block_size=4),
    "armijo_ponos": et.PoNoS(),
    "armijo_forward": et.Armijo(
        reference=et.ZhangHagerReference(), first_trial=et.ForwardTracking()
    ),
    "armijo_grippo": et.Armijo(reference=et.GrippoReference(3), block_size=2),
    "polyak": et.Polyak(),
    "cdat": et.CDAT(),
    "cdat_options": et.CDAT(1.5, eps=1e-6, ema=0.9, max_stepsize=2.0),
}


def weight_normalised(params):
    """`||v|| + ||w||^2`: finite everywhere, but the gradient of `||v||` at `v = 0`
    is 0/0, as in weight normalisation."""
    return jnp.sqrt(jnp.sum(params["v"] ** 2)) + jnp.sum(params["w"] ** 2)


def expect_no_step(tuner, fn, params, value, grad):
    state = tuner.init(params)
    stepsize, new_state, info = eqx.filter_jit(tuner.step)(
        fn, params, value, grad, state
    )
    assert stepsize == 0 and stepsize.dtype == jnp.float32
    assert info["nonfinite_input"]
    jax.tree.map(np.testing.assert_array_equal, new_state, state)
    if isinstance(tuner, et.Armijo):
        assert info["failed"] and not info["stalled"]
        assert int(info["num_evals"]) == 0 and int(info["num_rounds"]) == 0
        assert info["accepted_stepsize"] == 0
    if isinstance(tuner, et.Polyak):
        assert not info["capped"]  # a NaN never reaches the cap
    return info


@pytest.mark.parametrize("name", ALL_TUNERS)
def test_a_finite_loss_with_a_nan_gradient_gives_no_step(name):
    params = {"v": jnp.zeros(3), "w": jnp.ones(2)}
    value, grad = jax.value_and_grad(weight_normalised)(params)
    assert jnp.isfinite(value) and jnp.all(jnp.isnan(grad["v"]))  # the instance
    expect_no_step(ALL_TUNERS[name], weight_normalised, params, value, grad)


@pytest.mark.parametrize("name", ALL_TUNERS)
def test_an_infinite_gradient_or_loss_gives_no_step(name):
    fn = lambda v: v @ v  # noqa: E731
    w = jnp.array([1.0, -2.0])
    expect_no_step(ALL_TUNERS[name], fn, w, fn(w), jnp.array([jnp.inf, 1.0]))
    expect_no_step(ALL_TUNERS[name], fn, w, jnp.inf, 2 * w)
    expect_no_step(ALL_TUNERS[name], fn, w, jnp.nan, 2 * w)


@pytest.mark.parametrize("name", ALL_TUNERS)
def test_finite_inputs_are_not_flagged(name):
    fn = lambda v: v @ v  # noqa: E731
    w = jnp.array([1.0, -2.0])
    stepsize, _, info = ALL_TUNERS[name].step(
        fn, w, fn(w), 2 * w, ALL_TUNERS[name].init(w)
    )
    assert stepsize > 0 and not info["nonfinite_input"]


@pytest.mark.parametrize("name", ALL_TUNERS)
def test_info_keys_and_shapes_depend_only_on_the_tuner_type(name):
    variants = {
        "constant": [et.Constant(0.1), et.Constant(3.0)],
        "armijo": [
            et.Armijo(),
            et.Armijo(increase_factor=2.0),
            et.Armijo(max_backtracks=0),
            et.Armijo(block_size=8),
            et.PoNoS(),
            et.Armijo(
                reference=et.ZhangHagerReference(0.5),
                first_trial=et.ForwardTracking(),
                block_size=3,
            ),
            et.Armijo(reference=et.GrippoReference(4), min_grad_norm=1e-3),
        ],
        "polyak": [et.Polyak(), et.Polyak(2.0, -1.0, 1e-3)],
        "cdat": [et.CDAT(), et.CDAT(1.0, eps=1e-3, ema=0.5, max_stepsize=1.0)],
    }[name.split("_")[0]]
    fn = lambda v: v @ v  # noqa: E731
    w = jnp.ones(3)
    shapes = [
        jax.eval_shape(lambda t, g: t.step(fn, w, fn(w), g, t.init(w))[2], t, g)
        for t in variants
        for g in (2 * w, jnp.full(3, jnp.nan))
    ]
    for other in shapes[1:]:
        assert other == shapes[0]
    assert all(s.shape == () for s in shapes[0].values())
    assert "nonfinite_input" in shapes[0]


@pytest.mark.parametrize("name", ALL_TUNERS)
def test_step_rejects_integer_parameters_naming_the_leaf(name):
    params = {"w": jnp.ones(2), "count": jnp.array(3)}
    grad = {"w": jnp.ones(2), "count": jnp.array(0.0)}
    tuner = ALL_TUNERS[name]
    with pytest.raises(ValueError, match=r"\['count'\].*eqx.is_inexact_array"):
        tuner.step(lambda p: jnp.sum(p["w"]), params, 1.0, grad, None)


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda v: et.Constant(v), "stepsize"),
        (lambda v: et.Armijo(c=v), "c"),
        (lambda v: et.Armijo(max_stepsize=v), "max_stepsize"),
        (lambda v: et.Armijo(decrease_factor=v), "decrease_factor"),
        (lambda v: et.Armijo(increase_factor=1 + v), "increase_factor"),
        (lambda v: et.Polyak(max_stepsize=v), "max_stepsize"),
        (lambda v: et.Polyak(f_min=v), "f_min"),
        (lambda v: et.Polyak(eps=v), "eps"),
        (lambda v: et.CDAT(sigma=v), "sigma"),
        (lambda v: et.CDAT(ema=v), "ema"),
        (lambda v: et.CDAT(max_stepsize=v), "max_stepsize"),
        (lambda v: et.Armijo(reference=et.ZhangHagerReference(v)), "xi"),
        (lambda v: et.Armijo(first_trial=et.PolyakTrial(c_p=v)), "c_p"),
        (lambda v: et.Armijo(first_trial=et.ForwardTracking(1 + v)), "increase_factor"),
        (lambda v: et.PoNoS(min_stepsize=v), "min_stepsize"),
    ],
)
def test_hyperparameters_are_single_numbers_even_under_a_transform(make, name):
    values = jnp.array([0.1, 0.2])
    message = f"`{name}` must be a single number.*eqtuners.stack"
    with pytest.raises(ValueError, match=message):
        make(values)
    with pytest.raises(ValueError, match=message):
        jax.jit(make)(values)
    # A scalar tracer passes, so a batch of tuners can be built under vmap.
    batch = eqx.filter_vmap(make)(values)
    assert all(leaf.shape == (2,) for leaf in jax.tree.leaves(batch))


# --- Armijo: a trial that does not move the parameters is not an acceptance -------


def finite_only_at(w):
    return lambda v: jnp.where(jnp.all(v == w), jnp.asarray(1.0, w.dtype), jnp.nan)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float16])
@pytest.mark.parametrize("block_size", [1, 4])
def test_armijo_stalls_where_the_trial_step_rounds_to_the_current_point(
    dtype, block_size
):
    # The instance (float32, decrease 0.1, 60 backtracks) accepted 1e-8 with
    # failed=False, although w - 1e-8 g == w bit for bit.
    w = jnp.array([1.0, -2.0], dtype)
    tuner = et.Armijo(decrease_factor=0.1, max_backtracks=60, block_size=block_size)
    stepsize, state, info = tuner.step(
        finite_only_at(w), w, jnp.asarray(1.0, dtype), w, tuner.init(w)
    )
    # The first grid point where the trial rounds to w, computed independently.
    grid = [np.float32(0.1) ** k for k in range(61)]
    first = next(
        k for k, s in enumerate(grid) if np.all(w - (s * w).astype(dtype) == w)
    )
    assert 0 < first < 60
    assert stepsize == 0 and info["failed"] and info["stalled"]
    assert info["accepted_stepsize"] == 0 and not info["nonfinite_input"]
    assert int(info["num_evals"]) == first + 1  # the search stopped at the stall
    assert int(info["num_rounds"]) == -(-(first + 1) // block_size)
    assert state.previous == tuner.max_stepsize  # the next step starts afresh


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float16])
@pytest.mark.parametrize("block_size", [1, 8])
def test_armijo_stalls_along_an_ascent_direction_at_the_paper_defaults(
    dtype, block_size
):
    # A direction along which f only increases (here the negated gradient; in
    # practice a gradient that disagrees with `fn`): no trial decreases f, but once
    # s g is below the rounding of w the trial is w itself and f(w) <= f(w) - c s
    # ||g||^2 holds in rounding. It must not be an acceptance.
    fn = lambda v: v @ v  # noqa: E731
    w = jnp.array([1.0, -2.0], dtype)
    uphill = -2 * w
    tuner = et.Armijo(block_size=block_size)
    stepsize, _, info = tuner.step(fn, w, fn(w), uphill, tuner.init(w))
    grid = [np.float32(0.8) ** k for k in range(101)]
    first = next(
        k for k, s in enumerate(grid) if np.all(w - (s * uphill).astype(dtype) == w)
    )
    assert first <= 100
    assert stepsize == 0 and info["failed"] and info["stalled"]
    assert int(info["num_evals"]) == first + 1


@given(
    dtype=st.sampled_from(["float16", "bfloat16", "float32", "float64"]),
    seed=st.integers(0, 2**16),
    w_exponent=st.integers(-45, 30),
    g_exponent=st.integers(-45, 30),
    margin=st.floats(2.0, 64.0),
)
def test_the_step_above_which_a_trial_surely_moves_is_a_true_bound(
    dtype, seed, w_exponent, g_exponent, margin
):
    from eqtuners._tuners.armijo import moves_above

    rng = np.random.default_rng(seed)
    with jax.enable_x64(True):
        # Entries spanning decades, with zeros, of the dtype's range or beyond.
        w = rng.normal(size=(2, 7)) * 10.0 ** rng.uniform(w_exponent - 5, w_exponent, 1)
        w[0, :2] = 0.0
        g = rng.normal(size=(2, 7)) * 10.0 ** rng.uniform(g_exponent - 5, g_exponent, 1)
        g[1, :3] = 0.0
        largest = float(jnp.finfo(dtype).max) / 2  # finite entries only
        w, g = np.clip(w, -largest, largest), np.clip(g, -largest, largest)
        params = {"a": jnp.asarray(w[0], dtype), "b": jnp.asarray(w[1], dtype)}
        grad = {"a": jnp.asarray(g[0], dtype), "b": jnp.asarray(g[1], dtype)}
        bound = float(moves_above(params, grad))
        assume(np.isfinite(bound))  # else nothing is certified: the search compares
        stepsize = jnp.asarray(bound * margin, jnp.result_type(dtype))
        assume(stepsize > 2 * bound)  # else the step rounds below the certified range
        moved = [jnp.any(-stepsize * grad[k] + params[k] != params[k]) for k in params]
    assert any(moved)
