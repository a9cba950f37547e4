"""`scale_by_tuner`: our tuners inside an optax chain, against our own loops, and the
peers' failures replayed through it."""

import subprocess
import sys
import textwrap
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, strategies as st

import eqtuners as et

from .helpers import quadratic, random_quadratic, small_data, small_mlp, tree_allclose

ROOT = Path(__file__).parent.parent


def run_chain(transform, value_fn, params, batches, *, first=None):
    """A plain optax loop, `optax.chain(first, transform)` (`first` defaults to
    `optax.sgd(1.0)`), one step per batch (a dict of `value_fn`'s extra arguments),
    jitted once.

    Returns the final parameters, the loss before each step, the `learning_rate`
    and `info` read from the state after each step, and the number of traces.
    """
    first = optax.sgd(learning_rate=1.0) if first is None else first
    solver = optax.chain(first, transform)
    traces = []

    @jax.jit
    def step(params, state, batch):
        traces.append(None)
        value, grad = jax.value_and_grad(value_fn)(params, **batch)
        updates, state = solver.update(
            grad, state, params, value=value, grad=grad, value_fn=value_fn, **batch
        )
        return optax.apply_updates(params, updates), state, value

    state = solver.init(params)
    values, rates, infos = [], [], []
    for batch in batches:
        params, state, value = step(params, state, batch)
        values.append(value)
        rates.append(optax.tree.get(state, "learning_rate"))
        infos.append(optax.tree.get(state, "info"))
    infos = jax.tree.map(lambda *leaves: np.stack(leaves), *infos)
    return params, np.asarray(values), np.asarray(rates), infos, len(traces)


def run_by_hand(tuner, value_fn, params, batches):
    """The tuner stepped by hand: `w <- w - stepsize * grad`, as `train` does."""

    @jax.jit
    def step(params, state, batch):
        def fn(p):
            return value_fn(p, **batch)

        value, grad = jax.value_and_grad(fn)(params)
        stepsize, state, info = tuner.step(fn, params, value, grad, state)
        params = jax.tree.map(lambda p, g: p - stepsize * g, params, grad)
        return params, state, value, stepsize, info

    state = tuner.init(params)
    values, rates, infos = [], [], []
    for batch in batches:
        params, state, value, stepsize, info = step(params, state, batch)
        values.append(value)
        rates.append(stepsize)
        infos.append(info)
    infos = jax.tree.map(lambda *leaves: np.stack(leaves), *infos)
    return params, np.asarray(values), np.asarray(rates), infos


def quadratic_problem(seed=0, dim=6):
    """`value_fn(w, matrix, vector)` (the data as extra arguments), its batch, a
    starting point and the minimal value."""
    matrix, vector = random_quadratic(seed, dim)

    def value_fn(w, matrix, vector):
        return quadratic(matrix, vector)(w)

    f_min = float(-0.5 * vector @ jnp.linalg.solve(matrix, vector))
    w0 = jnp.asarray(np.random.default_rng(seed).normal(size=dim), jnp.float32)
    batch = {"matrix": matrix.astype(jnp.float32), "vector": vector.astype(w0.dtype)}
    return value_fn, batch, w0, f_min


QUADRATIC_TUNERS = {
    "constant": lambda f_min: et.Constant(0.05),
    "armijo": lambda f_min: et.Armijo(),
    "armijo_increase": lambda f_min: et.Armijo(max_stepsize=2.0, increase_factor=1.5),
    "polyak": lambda f_min: et.Polyak(f_min=f_min),
    "cdat": lambda f_min: et.CDAT(sigma=1.5, ema=0.5),
    "ponos": lambda f_min: et.PoNoS(),
}


@pytest.mark.parametrize("name", QUADRATIC_TUNERS)
def test_the_chain_takes_the_tuners_step_sizes_on_a_quadratic(name):
    value_fn, batch, w0, f_min = quadratic_problem()
    tuner = QUADRATIC_TUNERS[name](f_min)
    batches = [batch] * 10
    params, values, rates, infos, _ = run_chain(
        et.scale_by_tuner(tuner), value_fn, w0, batches
    )
    hand_params, hand_values, hand_rates, hand_infos = run_by_hand(
        tuner, value_fn, w0, batches
    )
    np.testing.assert_allclose(rates, hand_rates, rtol=1e-5)
    np.testing.assert_allclose(values, hand_values, rtol=1e-5, atol=1e-6)
    assert tree_allclose(params, hand_params, rtol=1e-5, atol=1e-6)
    assert infos.keys() == hand_infos.keys()
    for key in infos:
        np.testing.assert_allclose(infos[key], hand_infos[key], rtol=1e-5)
    assert values[-1] < values[0]
    if name != "constant":  # the step sizes are the tuner's, not a constant
        assert np.ptp(rates) > 0


def optax_and_train_histories(tuner, num_steps):
    """The `loss` and `stepsize` columns of `train` (full batch, no sharpness) and of
    a plain optax loop with `scale_by_tuner` on the same model and data, and both
    final parameters."""
    model = small_mlp()
    x, y = small_data(64)
    result = et.train(
        model, tuner, (x, y), num_steps, key=jax.random.key(0), measure=None
    )
    params, static = eqx.partition(model, eqx.is_inexact_array)

    def value_fn(params, x, y):
        return et.objective(eqx.combine(params, static), x, y)

    final, values, rates, _, _ = run_chain(
        et.scale_by_tuner(tuner), value_fn, params, [{"x": x, "y": y}] * num_steps
    )
    train_columns = {k: result.history[k] for k in ("loss", "stepsize")}
    optax_columns = {"loss": values, "stepsize": rates}
    train_params = eqx.filter(result.model, eqx.is_inexact_array)
    return train_columns, optax_columns, train_params, final


@pytest.mark.parametrize(
    "tuner",
    [et.Constant(0.3), et.Armijo(), et.Polyak(), et.CDAT(), et.PoNoS()],
    ids=["Constant", "Armijo", "Polyak", "CDAT", "PoNoS"],
)
def test_an_optax_loop_follows_train_step_for_step(tuner):
    train_columns, optax_columns, train_params, optax_params = (
        optax_and_train_histories(tuner, num_steps=6)
    )
    for key in ("loss", "stepsize"):
        np.testing.assert_allclose(
            optax_columns[key], train_columns[key], rtol=1e-5, err_msg=key
        )
    assert tree_allclose(optax_params, train_params, rtol=1e-4, atol=1e-6)
    assert train_columns["loss"][-1] < train_columns["loss"][0]


def test_armijo_drops_in_where_optax_backtracking_goes():
    """Where nothing fails, Armijo with optax's settings takes optax's steps."""
    value_fn, batch, w0, _ = quadratic_problem(seed=3)
    ours = run_chain(
        et.scale_by_tuner(et.Armijo(increase_factor=1.5)), value_fn, w0, [batch] * 10
    )
    theirs = run_chain(
        optax.scale_by_backtracking_linesearch(
            max_backtracking_steps=100, increase_factor=1.5
        ),
        value_fn,
        w0,
        [batch] * 10,
    )
    np.testing.assert_allclose(ours[2], theirs[2], rtol=1e-5)  # the step sizes
    np.testing.assert_allclose(ours[1], theirs[1], rtol=1e-5, atol=1e-5 * ours[1][0])


def test_the_tuner_reads_its_direction_from_the_updates_as_optax_polyak_does():
    """After `optax.sgd(0.5)` the direction is `-0.5 grad`; our Polyak then takes
    optax's Polyak steps (`optax.polyak_sgd(scaling=0.5)`), which read `||u||^2`."""
    value_fn, batch, w0, f_min = quadratic_problem(seed=4)
    first = optax.sgd(learning_rate=0.5)
    ours = run_chain(
        et.scale_by_tuner(et.Polyak(f_min=f_min)),
        value_fn,
        w0,
        [batch] * 6,
        first=first,
    )
    theirs = run_chain(
        optax.scale_by_polyak(f_min=f_min), value_fn, w0, [batch] * 6, first=first
    )
    np.testing.assert_allclose(ours[1], theirs[1], rtol=1e-5)
    assert tree_allclose(ours[0], theirs[0], rtol=1e-5, atol=1e-6)
    value, grad = jax.value_and_grad(value_fn)(w0, **batch)
    # (f - f_min) / ||u||^2 with u = -0.5 grad, not (f - f_min) / ||grad||^2
    assert ours[2][0] == pytest.approx(
        float(4 * (value - f_min) / (grad @ grad)), rel=1e-5
    )


def test_value_and_grad_from_state_reuses_what_the_update_stored():
    value_fn, batch, w0, _ = quadratic_problem(seed=1)

    def fn(w):
        return value_fn(w, **batch)

    tuner = et.Armijo()
    solver = optax.chain(optax.sgd(1.0), et.scale_by_tuner(tuner, store_grad=True))
    value_and_grad = optax.value_and_grad_from_state(fn)

    @jax.jit
    def step(params, state):
        value, grad = value_and_grad(params, state=state)
        updates, state = solver.update(
            grad, state, params, value=value, grad=grad, value_fn=fn
        )
        return optax.apply_updates(params, updates), state

    params, state = w0, solver.init(w0)
    rates = []
    for _ in range(6):
        params, state = step(params, state)
        rates.append(optax.tree.get(state, "learning_rate"))
        # what the next step reuses: the objective and gradient at the new params
        value, grad = jax.value_and_grad(fn)(params)
        np.testing.assert_allclose(optax.tree.get(state, "value"), value, rtol=1e-5)
        np.testing.assert_allclose(
            optax.tree.get(state, "grad"), grad, rtol=1e-4, atol=1e-5
        )
    hand = run_by_hand(tuner, value_fn, w0, [batch] * 6)
    np.testing.assert_allclose(rates, hand[2], rtol=1e-5)

    plain = optax.chain(optax.sgd(1.0), et.scale_by_tuner(tuner))
    with pytest.raises(ValueError, match="not found in the state"):
        value_and_grad(w0, state=plain.init(w0))


def test_the_state_is_readable_after_jit_and_compiles_once():
    value_fn, batch, w0, _ = quadratic_problem(seed=2)
    tuner = et.Armijo()
    _, _, rates, infos, num_traces = run_chain(
        et.scale_by_tuner(tuner), value_fn, w0, [batch] * 4
    )
    _, _, hand_rates, hand_infos = run_by_hand(tuner, value_fn, w0, [batch] * 4)
    assert num_traces == 1
    assert set(infos) == {
        "num_evals",
        "num_rounds",
        "failed",
        "stalled",
        "nonfinite_input",
        "accepted_stepsize",
        "initial_stepsize",
        "reference_value",
        "directional_curvature_lower",
        "directional_curvature_upper",
    }
    np.testing.assert_array_equal(infos["num_evals"], hand_infos["num_evals"])
    assert (infos["num_evals"] >= 1).all() and not infos["failed"].any()
    np.testing.assert_allclose(infos["accepted_stepsize"], rates)

    solver = optax.chain(optax.sgd(1.0), et.scale_by_tuner(tuner))
    state = solver.init(w0)
    assert optax.tree.get(state, "learning_rate") == 0
    assert optax.tree.get(state, "num_evals") == 0
    value, grad = jax.value_and_grad(value_fn)(w0, **batch)
    update = jax.jit(solver.update, static_argnames="value_fn")
    _, new_state = update(
        grad, state, w0, value=value, grad=grad, value_fn=value_fn, **batch
    )
    # the same structure, shapes and dtypes as `init`'s, so a jitted loop reuses it
    assert jax.tree.structure(new_state) == jax.tree.structure(state)
    assert jax.tree.map(lambda a: (a.shape, a.dtype), new_state) == jax.tree.map(
        lambda a: (a.shape, a.dtype), state
    )
    # The chain and the loop by hand are two programs: the same step to rounding.
    assert optax.tree.get(new_state, "learning_rate") == pytest.approx(
        hand_rates[0], rel=1e-6
    )
    assert optax.tree.get(new_state, "num_evals") == hand_infos["num_evals"][0]


# The peers' failures, replayed on 1/2 ||w - c||^2, which is NaN outside a box.
CENTRE = jnp.array([4.0, 4.0])


def nan_outside(w, bound):
    """`1/2 ||w - c||^2` where `max |w_i| <= bound`, NaN elsewhere: a batch on which
    large steps overflow."""
    inside = jnp.max(jnp.abs(w)) <= bound
    return jnp.where(inside, 0.5 * jnp.sum((w - CENTRE) ** 2), jnp.nan)


def test_one_nan_batch_stalls_optax_backtracking_for_good_but_not_armijo():
    """optax's backtracking stores a learning rate of 0 after a step whose trials
    were all NaN, and its next guess, `increase_factor * 0`, is accepted at once:
    it never moves again. Ours fails that step only."""
    bad, good = {"bound": jnp.asarray(0.5)}, {"bound": jnp.asarray(jnp.inf)}
    batches = [bad] + [good] * 4
    w0 = jnp.zeros(2)
    optax_params, optax_values, optax_rates, _, _ = run_chain(
        optax.scale_by_backtracking_linesearch(max_backtracking_steps=2),
        nan_outside,
        w0,
        batches,
    )
    np.testing.assert_array_equal(optax_rates, 0.0)  # stuck at 0 after the bad batch
    np.testing.assert_array_equal(optax_params, w0)
    np.testing.assert_array_equal(optax_values, 16.0)

    for tuner in (
        et.Armijo(max_backtracks=2),
        et.Armijo(max_backtracks=2, increase_factor=1.5),
    ):
        params, values, rates, infos, _ = run_chain(
            et.scale_by_tuner(tuner), nan_outside, w0, batches
        )
        assert rates[0] == 0 and infos["failed"][0]
        assert rates[1] == 1.0 and not infos["failed"][1:].any()
        np.testing.assert_array_equal(values[:2], 16.0)
        assert values[2] == 0.0
        np.testing.assert_array_equal(params, CENTRE)


def jaxopt_armijo_sgd_line_search(fn, w, stepsize, aggressiveness=0.9, maxls=15):
    """jaxopt's `ArmijoSGD` line search (jaxopt/_src/armijo_sgd.py,
    `armijo_line_search` with `wolfe_cond_violated`), replayed: shrink by 0.8 while
    `stepsize * coef * ||g||^2 > f(w) - f(w - stepsize * g) + eps`. Returns the
    accepted step size and the objective there."""
    coef = 1 - aggressiveness
    value, grad = jax.value_and_grad(fn)(w)
    eps = jnp.finfo(value.dtype).eps
    for _ in range(maxls):
        new_value = fn(w - stepsize * grad)
        if not stepsize * coef * (grad @ grad) > value - new_value + eps:
            break
        stepsize *= 0.8
    return stepsize, new_value


def test_jaxopt_armijo_accepts_a_nan_trial_ours_never_does():
    w0 = jnp.zeros(2)
    batch = {"bound": jnp.asarray(2.0)}  # the first trial, w = c, is outside the box
    their_stepsize, their_value = jaxopt_armijo_sgd_line_search(
        lambda w: nan_outside(w, **batch), w0, stepsize=1.0
    )
    assert their_stepsize == 1.0 and jnp.isnan(their_value)  # accepted a NaN trial

    params, _, rates, infos, _ = run_chain(
        et.scale_by_tuner(et.Armijo()), nan_outside, w0, [batch]
    )
    assert rates[0] == pytest.approx(0.8**4)  # the largest grid step inside the box
    assert int(infos["num_evals"][0]) == 5 and not infos["failed"][0]
    assert jnp.isfinite(nan_outside(params, **batch))


@jax.jit
def armijo_chain_step(params, bound):
    solver = optax.chain(optax.sgd(1.0), et.scale_by_tuner(et.Armijo()))
    value, grad = jax.value_and_grad(nan_outside)(params, bound)
    updates, state = solver.update(
        grad,
        solver.init(params),
        params,
        value=value,
        grad=grad,
        value_fn=nan_outside,
        bound=bound,
    )
    new_params = optax.apply_updates(params, updates)
    return value, grad, new_params, optax.tree.get(state, "learning_rate")


@given(
    bound=st.floats(1e-3, 10.0),
    start=st.lists(st.floats(-1.0, 1.0), min_size=2, max_size=2),
)
def test_armijo_through_the_chain_never_steps_to_a_non_finite_loss(bound, start):
    w0 = jnp.asarray(start, jnp.float32) * bound
    value, grad, params, rate = armijo_chain_step(w0, jnp.asarray(bound, jnp.float32))
    new_value = nan_outside(params, bound)
    assert jnp.isfinite(new_value)
    if rate > 0:  # accepted: the Armijo condition holds at the accepted point
        assert new_value <= value - 1e-4 * rate * (grad @ grad)
    else:
        np.testing.assert_array_equal(params, w0)


def jaxopt_polyak_sgd_step(fn, w, max_stepsize=1.0, delta=0.0):
    """jaxopt's `PolyakSGD.update` (jaxopt/_src/polyak_sgd.py), replayed:
    `stepsize = min(f(w) / (||g||^2 + delta), max_stepsize)`, then `w - stepsize g`.
    """
    value, grad = jax.value_and_grad(fn)(w)
    stepsize = jnp.minimum(value / (grad @ grad + delta), max_stepsize)
    return stepsize, w - stepsize * grad


def test_jaxopt_polyak_makes_nan_parameters_at_a_zero_gradient_ours_does_not():
    def fn(w):
        return 0.5 * jnp.sum((w - CENTRE) ** 2)

    # At the minimiser, where the loss is 0 (interpolation) and the gradient 0.
    their_stepsize, their_params = jaxopt_polyak_sgd_step(fn, CENTRE)
    assert jnp.isnan(their_stepsize) and jnp.isnan(their_params).all()

    params, values, rates, infos, _ = run_chain(
        et.scale_by_tuner(et.Polyak()), lambda w: fn(w), CENTRE, [{}] * 2
    )
    np.testing.assert_array_equal(params, CENTRE)
    np.testing.assert_array_equal(rates, 1.0)  # the cap: the step is 1 * 0
    assert infos["capped"].all()


def test_a_failed_step_does_not_move_the_parameters_even_along_nan():
    def loss(w):
        return jnp.sum(w**2)

    solver = optax.chain(et.scale_by_tuner(et.Armijo(max_backtracks=3)))
    w0 = jnp.ones(3)
    direction = jnp.array([jnp.nan, -1.0, -1.0])  # every trial is NaN
    updates, state = solver.update(
        direction, solver.init(w0), w0, value=loss(w0), grad=-direction, value_fn=loss
    )
    assert (
        optax.tree.get(state, "failed") and optax.tree.get(state, "learning_rate") == 0
    )
    np.testing.assert_array_equal(updates, 0.0)


def test_misuse_raises_clear_errors():
    with pytest.raises(TypeError, match="tuner"):  # ours, or jaxtyping's when enabled
        et.scale_by_tuner(optax.sgd(0.1))
    with pytest.raises(TypeError, match="store_grad"):
        et.scale_by_tuner(et.Armijo(), store_grad=1)
    transform = et.scale_by_tuner(et.Armijo())
    w = jnp.ones(2)
    state = transform.init(w)

    def loss(w, x):
        return jnp.sum((w - x) ** 2)

    with pytest.raises(ValueError, match="needs `value`"):
        transform.update(-w, state, w, grad=w, value_fn=loss, x=w)
    with pytest.raises(ValueError, match="needs `params`"):
        transform.update(-w, state, value=1.0, grad=w, value_fn=loss, x=w)
    with pytest.raises(ValueError, match="needs `value_fn`"):
        transform.update(-w, state, w, value=1.0, grad=w)
    with pytest.raises(TypeError, match=r"\['label'\] are not arguments of"):
        transform.update(-w, state, w, value=1.0, grad=w, value_fn=loss, x=w, label=1)
    with pytest.raises(ValueError, match="floating-point"):
        transform.init(jnp.arange(3))


def test_eqtuners_imports_and_explains_without_optax():
    script = textwrap.dedent(
        """
        import sys

        sys.modules["optax"] = None  # `import optax` now fails, as if not installed
        import eqtuners as et

        print(et.__file__)
        et.Armijo().init(et.Constant(0.1).stepsize)
        try:
            et.scale_by_tuner(et.Armijo())
        except ImportError as error:
            print(error)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    path, message = result.stdout.strip().splitlines()
    assert Path(path).is_relative_to(ROOT)  # this checkout's eqtuners
    assert "pip install 'eqtuners[optax]'" in message
