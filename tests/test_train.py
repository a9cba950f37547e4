import dataclasses
import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import eqtuners as et
from eqtuners._loop import Static, next_batch, run_call
from eqtuners._records import LOOP_KEYS

from .helpers import small_data, small_mlp

# One configuration shared by most tests, so the loop compiles once for all of them.
POWER = et.PowerIteration(max_iters=50)
SETTINGS = dict(steps_per_call=8, measure=et.Measurements(4, estimator=POWER))


def run(tuner, num_steps=12, key=0, **kwargs):
    return et.train(
        small_mlp(),
        tuner,
        small_data(64),
        num_steps,
        key=jax.random.key(key),
        **(SETTINGS | kwargs),
    )


def measure(every=4, **kwargs):
    return et.Measurements(every, **{"estimator": POWER} | kwargs)


def traces():
    return eqx.debug.get_num_traces(run_call)


@pytest.mark.parametrize("batch_size", [None, 16])
def test_a_configuration_compiles_once(batch_size):
    run(et.Armijo(), batch_size=batch_size)
    before = traces()
    # New hyperparameter values, keys, step counts and weight decay: no new trace.
    run(et.Armijo(c=0.3, max_stepsize=2.0), num_steps=5, key=1, batch_size=batch_size)
    run(
        et.Armijo(decrease_factor=0.5),
        num_steps=20,
        key=2,
        batch_size=batch_size,
        weight_decay=1e-3,
    )
    # NumPy and JAX float32 scalars are the same abstract value as Python floats.
    run(
        et.Armijo(c=np.float32(0.3), max_stepsize=jnp.float32(1.5)),
        num_steps=3,
        batch_size=batch_size,
        weight_decay=np.float32(1e-3),
    )
    assert traces() == before


def test_history_has_one_row_per_step_and_measures_on_schedule():
    history = run(et.Polyak(), num_steps=13).history
    tuner_keys = {"unclipped_stepsize", "capped", "nonfinite_input"}
    assert set(LOOP_KEYS) | tuner_keys == set(history)
    assert all(len(v) == 13 for v in history.values())
    np.testing.assert_array_equal(history["step"], np.arange(13))
    measured = ~np.isnan(history["sharpness"])
    np.testing.assert_array_equal(measured, np.arange(13) % 4 == 0)
    assert np.all(history["sharpness"][measured] > 0)
    np.testing.assert_allclose(
        history["stepsize_x_sharpness"][measured],
        history["stepsize"][measured] * history["sharpness"][measured],
        rtol=1e-6,
    )
    # Full batch: the per-step loss is the training objective.
    np.testing.assert_array_equal(
        history["train_loss"][measured], history["loss"][measured]
    )


def test_the_loss_and_the_model_follow_gradient_descent():
    x, y = small_data(64)
    model = small_mlp()
    result = run(et.Constant(0.1), num_steps=2)
    value, grad = eqx.filter_value_and_grad(et.objective)(model, x, y)
    assert result.history["loss"][0] == pytest.approx(float(value), rel=1e-6)
    stepped = jax.tree.map(lambda p, g: p - 0.1 * g, model, grad)
    second = et.objective(stepped, x, y)
    assert result.history["loss"][1] == pytest.approx(float(second), rel=1e-5)


def test_same_key_gives_the_same_history_and_another_key_another_order():
    a = run(et.Armijo(), batch_size=16).history
    b = run(et.Armijo(), batch_size=16).history
    c = run(et.Armijo(), batch_size=16, key=5).history
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a["loss"], c["loss"])


def test_call_boundaries_do_not_change_the_history():
    a = run(et.Armijo(), num_steps=11, batch_size=16).history
    b = run(et.Armijo(), num_steps=11, batch_size=16, steps_per_call=3).history
    for k in a:
        # Another scan length is another program: rounding, grown along 11 steps (a
        # 1-ulp change of the start moves these columns by up to 2e-6).
        np.testing.assert_allclose(a[k], b[k], rtol=1e-4)


class EchoTuner(et.AbstractTuner):
    """A fixed step that reports what its `fn` sees, to check which batch it is on."""

    def init(self, params):
        return None

    def validated(self):
        return self

    def propose(self, fn, params, value, grad, state):
        fn_value, fn_grad = jax.value_and_grad(fn)(params)
        gap = jax.tree.map(lambda a, b: jnp.max(jnp.abs(a - b)), fn_grad, grad)
        info = {
            "fn_value": fn_value,
            "grad_gap": jnp.max(jnp.stack(jax.tree.leaves(gap))),
        }
        return jnp.asarray(0.05), state, info


def test_mini_batch_regime_checks_on_the_same_batch_as_the_gradient():
    history = run(EchoTuner(), num_steps=12, batch_size=16).history
    # The tuner evaluates the batch again (another site of the program, which XLA
    # may compile differently): equal to rounding; another batch is 1e-2 away.
    np.testing.assert_allclose(history["fn_value"], history["loss"], rtol=1e-6)
    assert np.all(history["grad_gap"] <= 1e-5 * np.sqrt(history["grad_sq_norm"]))
    # Different batches have different losses, and the full objective differs too.
    assert len(np.unique(history["loss"])) == 12
    measured = ~np.isnan(history["train_loss"])
    assert not np.allclose(history["train_loss"][measured], history["loss"][measured])


def test_mini_batches_cover_the_data_without_replacement_each_epoch():
    static = Static(
        batch_size=4,
        chunk_size=None,
        steps_per_call=1,
        runs=None,
        tuner_axis=None,
        vmap_runs=False,
        examples=None,
    )
    x = jnp.arange(18.0)  # the examples are their own indices; 18 % 4 == 2 left out
    order = (jnp.arange(18), jnp.asarray(4))
    draw = jax.jit(lambda order, key: next_batch(static, x, x, order, key))
    keys = iter(jax.random.split(jax.random.key(0), 12))
    epochs = []
    for _ in range(3):
        seen = []
        for _ in range(4):
            (batch, _), order = draw(order, next(keys))
            seen.extend(int(i) for i in batch)
        assert len(set(seen)) == 16
        epochs.append(seen)
    assert epochs[0] != epochs[1] != epochs[2]


def test_divergence_stops_the_run_with_a_warning():
    with pytest.warns(RuntimeWarning, match="too large"):
        result = run(et.Constant(1e4), num_steps=40, measure=None)
    assert result.diverged_at is not None and result.diverged_at < 40
    history = result.history
    assert len(history["loss"]) == result.diverged_at + 1
    assert not np.isfinite(history["loss"][-1])
    assert np.all(np.isfinite(history["loss"][:-1]))
    # The steps after it were skipped: the model is the one of a run that ends there.
    stopped = run(et.Constant(1e4), num_steps=result.diverged_at, measure=None)
    assert not np.isfinite(et.objective(result.model, *small_data(64)))
    assert jax.tree.all(
        jax.tree.map(
            np.array_equal,
            eqx.filter(result.model, eqx.is_inexact_array),
            eqx.filter(stopped.model, eqx.is_inexact_array),
        )
    )


def test_wrong_labels_or_outputs_are_named():
    x, y = small_data(64)
    data = et.load_dataset("digits")
    cases = [
        ((x, y + 10), small_mlp(), "Labels must lie in \\[0, 10\\)"),
        ((x, y - 1), small_mlp(), "Labels must lie in"),
        ((x, y.astype(jnp.float32)), small_mlp(), "Labels must be integers"),
        (data, et.MLP(64, 5, (8,), key=jax.random.key(0)), "5 outputs but the"),
        ((x, y), et.MLP(64, 5, (8,), key=jax.random.key(0)), "Labels must lie in"),
        ((x, y), et.MLP(49, 10, (8,), key=jax.random.key(0)), "cannot be applied"),
    ]
    for data, model, message in cases:
        with pytest.raises(ValueError, match=message):
            et.train(model, et.Constant(0.1), data, 3, key=jax.random.key(0))
    with pytest.raises(TypeError, match="data"):  # ours, or jaxtyping's when enabled
        et.train(small_mlp(), et.Constant(0.1), (x, y, y), 3, key=jax.random.key(0))


def test_zoom_alone_measures_only_in_its_window():
    history = run(
        et.Constant(0.1),
        num_steps=8,
        measure=measure(None, zoom=(np.int64(2), 5)),
    ).history
    measured = ~np.isnan(history["sharpness"])
    # The window, and the last step (always measured).
    np.testing.assert_array_equal(np.flatnonzero(measured), [2, 3, 4, 7])


def test_callback_receives_every_row_once_in_order():
    calls = []
    result = run(
        et.Constant(0.1), num_steps=19, callback=lambda rows, state: calls.append(rows)
    )
    assert [len(c["step"]) for c in calls] == [8, 8, 3]
    np.testing.assert_array_equal(
        np.concatenate([c["step"] for c in calls]), result.history["step"]
    )


def test_sharpness_on_a_subset_and_never():
    history = run(et.Constant(0.1), measure=measure(examples=16)).history
    full = run(et.Constant(0.1)).history
    measured = ~np.isnan(full["sharpness"])
    assert not np.allclose(history["sharpness"][measured], full["sharpness"][measured])
    never = run(et.Constant(0.1), measure=None).history
    assert np.all(np.isnan(never["sharpness"])) and np.all(
        np.isnan(never["train_loss"])
    )


# Warm-started Lanczos with two eigenvalues, shared by the tracking tests.
LANCZOS = et.Lanczos(max_steps=20, k=2)


def test_lanczos_tracking_compiles_once_and_fills_its_columns():
    first = run(et.Polyak(), num_steps=13, measure=measure(estimator=LANCZOS))
    before = traces()
    # New keys, step counts, tolerance, and a zoom window: no new trace.
    method = et.Lanczos(max_steps=20, k=2, tol=1e-2)
    run(
        et.Polyak(),
        5,
        3,
        measure=measure(estimator=method, zoom=(1, 3)),
    )
    assert traces() == before
    history = first.history
    assert set(history) == set(LOOP_KEYS) | {
        "eigenvalue_2",
        "unclipped_stepsize",
        "capped",
        "nonfinite_input",
    }
    measured = ~np.isnan(history["sharpness"])
    np.testing.assert_array_equal(measured, np.arange(13) % 4 == 0)
    for key in (
        "sharpness_residual",
        "sharpness_num_hvps",
        "directional_curvature",
        "eigenvalue_2",
    ):
        assert np.all(np.isfinite(history[key][measured]))
        assert np.all(np.isnan(history[key][~measured]))
    sharp = history["sharpness"][measured]
    assert np.all(history["sharpness_residual"][measured] <= 1e-3 * np.abs(sharp))
    assert np.all(history["eigenvalue_2"][measured] <= sharp)
    # The curvature along the gradient lies below the top eigenvalue.
    assert np.all(history["directional_curvature"][measured] <= sharp * (1 + 1e-3))
    np.testing.assert_allclose(
        history["stepsize_x_sharpness"][measured],
        history["stepsize"][measured] * sharp,
        rtol=1e-6,
    )
    # The tracker state holds the last measurement.
    assert float(first.sharpness_state.estimate) == sharp[-1]


def test_lanczos_and_power_iteration_agree_along_the_same_run():
    # Sharpness does not change the trajectory, so both measure the same points.
    lanczos = run(et.Polyak(), measure=measure(estimator=LANCZOS)).history
    precise = et.PowerIteration(tol=1e-6, max_iters=400)
    power = run(et.Polyak(), measure=measure(estimator=precise)).history
    # Two programs (their measurement branches differ): rounding along 12 steps.
    np.testing.assert_allclose(lanczos["loss"], power["loss"], rtol=1e-4)
    measured = ~np.isnan(power["sharpness"])
    np.testing.assert_allclose(
        lanczos["sharpness"][measured], power["sharpness"][measured], rtol=2e-3
    )


def test_warm_start_cuts_the_products_of_every_step_tracking():
    # Small steps: the Hessian changes little from one step to the next.
    def track(warm_start):
        method = et.Lanczos(max_steps=20, warm_start=warm_start)
        return run(
            et.Constant(1e-3),
            num_steps=8,
            measure=measure(1, estimator=method),
        ).history

    warm, cold = track(True), track(False)
    assert np.all(~np.isnan(warm["sharpness"]))
    np.testing.assert_allclose(warm["sharpness"], cold["sharpness"], rtol=2e-3)
    # The first measurement starts from a random direction in both runs.
    assert warm["sharpness_num_hvps"][0] == cold["sharpness_num_hvps"][0]
    warm_cost, cold_cost = (
        warm["sharpness_num_hvps"][1:],
        cold["sharpness_num_hvps"][1:],
    )
    assert warm_cost.mean() < 0.5 * cold_cost.mean()


def test_zoom_window_measures_every_step():
    history = run(et.Constant(0.1), num_steps=13, measure=measure(zoom=(5, 8))).history
    measured = np.flatnonzero(~np.isnan(history["sharpness"]))
    np.testing.assert_array_equal(measured, [0, 4, 5, 6, 7, 8, 12])


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(num_steps=0), "num_steps"),
        (dict(batch_size=65), "batch_size"),
        (dict(batch_size=0), "batch_size"),
        (dict(measure=measure(examples=100)), "examples"),
        (dict(weight_decay=-1.0), "weight_decay"),
        (dict(steps_per_call=0), "steps_per_call"),
        (dict(chunk_size=-1), "chunk_size"),
    ],
)
def test_train_rejects_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        run(et.Constant(0.1), **kwargs)


def test_train_rejects_mismatched_labels_and_non_tuners():
    x, y = small_data(64)
    with pytest.raises(ValueError, match="Labels must have shape"):
        et.train(small_mlp(), et.Constant(0.1), (x, y[:10]), 3, key=jax.random.key(0))
    with pytest.raises(TypeError, match="tuner"):
        et.train(small_mlp(), 0.1, (x, y), 3, key=jax.random.key(0))


def test_the_last_step_is_always_measured():
    history = run(et.Polyak(), num_steps=10, measure=measure(4)).history
    measured = np.flatnonzero(~np.isnan(history["sharpness"]))
    np.testing.assert_array_equal(measured, [0, 4, 8, 9])
    assert np.isfinite(history["train_loss"][-1])


def test_the_measurement_set_is_a_seeded_random_subset():
    from eqtuners._measurements import measurement_set

    x, y = small_data(64)
    chosen_x, chosen_y = measurement_set(measure(examples=16, seed=3), x, y)
    again = measurement_set(measure(examples=16, seed=3), x, y)[0]
    other = measurement_set(measure(examples=16, seed=4), x, y)[0]
    np.testing.assert_array_equal(chosen_x, again)
    assert not np.array_equal(chosen_x, other)
    assert not np.array_equal(chosen_x, x[:16])  # not the first examples
    # The loop measures on exactly that set.
    result = run(et.Constant(0.1), num_steps=1, measure=measure(examples=16, seed=3))
    fn, params = et.objective_fn(small_mlp(), chosen_x, chosen_y)
    expected, _ = et.sharpness(fn, params, method=POWER, key=jax.random.key(0))
    assert result.history["sharpness"][0] == pytest.approx(float(expected), rel=0.05)


def checkpoints_of(tuner, num_steps, **kwargs):
    """The rows and states that `callback` receives along a run."""
    states, chunks = [], []

    def keep(rows, state):
        chunks.append(rows)
        states.append(state)

    result = run(tuner, num_steps=num_steps, callback=keep, **kwargs)
    return result, states, chunks


@pytest.mark.parametrize("batch_size", [None, 16])
def test_a_resumed_run_is_bit_identical_to_an_uninterrupted_one(batch_size):
    tuner = et.Armijo()
    whole, states, _ = checkpoints_of(tuner, 21, batch_size=batch_size)
    # "Killed" after the first call: resume from the state handed to the callback.
    resumed = run(tuner, num_steps=21, batch_size=batch_size, resume=states[0])
    assert resumed.history["step"][0] == 8
    for k, v in whole.history.items():
        np.testing.assert_array_equal(v[8:], resumed.history[k], err_msg=k)
    assert jax.tree.all(
        jax.tree.map(np.array_equal, whole.state.params, resumed.state.params)
    )


def test_resume_refuses_a_state_of_another_configuration():
    _, states, _ = checkpoints_of(et.Constant(0.1), 9)
    with pytest.raises(ValueError, match="`resume` does not match"):
        run(et.Constant(0.1), num_steps=9, batch_size=16, resume=states[0])
    with pytest.raises(TypeError, match="resume"):  # ours, or jaxtyping's
        run(et.Constant(0.1), num_steps=9, resume={"step": 3})


class SquareRootOfNorm(eqx.Module):
    """`sqrt(||w||^2)` added to the logits: finite at `w = 0`, its gradient is NaN."""

    w: jax.Array
    bias: jax.Array

    def __call__(self, x):
        return self.bias + jnp.sqrt(jnp.sum(self.w**2)) + 0 * jnp.ravel(x)[:10]


@pytest.mark.parametrize("tuner", [et.Armijo(), et.Polyak(), et.Constant(0.1)])
def test_a_nan_gradient_stops_the_run_with_the_parameters_untouched(tuner):
    x, y = small_data(64)
    model = SquareRootOfNorm(jnp.zeros(3), jnp.full(10, 0.1))
    with pytest.warns(RuntimeWarning, match="gradient is not finite at step 0"):
        result = et.train(model, tuner, (x, y), 5, key=jax.random.key(0), measure=None)
    assert result.diverged_at == 0 and result.nonfinite == "gradient"
    assert len(result.history["loss"]) == 1
    assert np.isfinite(result.history["loss"][0])
    np.testing.assert_array_equal(result.model.w, model.w)
    np.testing.assert_array_equal(result.model.bias, model.bias)


@jax.custom_jvp
def identity_with_infinite_slope_below_zero(w):
    return w


@identity_with_infinite_slope_below_zero.defjvp
def _(primals, tangents):
    (w,), (t,) = primals, tangents
    return w, jnp.where(w < 0, jnp.inf, 1.0) * t


class FirstLogit(eqx.Module):
    """Logits `(-w, 0, ..., 0)`: the loss pulls `w` below zero, where its gradient
    is infinite (and the loss finite)."""

    w: jax.Array

    def __call__(self, x):
        logit = -identity_with_infinite_slope_below_zero(self.w[0])
        return jnp.zeros(10).at[0].set(logit) + 0 * jnp.ravel(x)[:10]


def test_an_infinite_gradient_at_a_later_step_is_named_too():
    x, y = small_data(64)
    with pytest.warns(RuntimeWarning, match="gradient is not finite at step 3"):
        result = et.train(
            FirstLogit(jnp.array([0.5])),
            et.Constant(0.5),
            (x, y),
            10,
            key=jax.random.key(0),
            measure=None,
        )
    assert result.nonfinite == "gradient" and result.diverged_at == 3
    history = result.history
    assert len(history["loss"]) == 4 and np.isfinite(history["loss"]).all()
    assert np.isinf(history["grad_sq_norm"][3])
    # The parameters are those before step 3: three steps of plain GD.
    w = 0.5
    for g in np.sqrt(history["grad_sq_norm"][:3]):
        w -= 0.5 * g
    assert float(result.model.w[0]) == pytest.approx(w, rel=1e-5) and w < 0


def test_unconverged_measurements_are_counted_and_warned_once():
    for estimator in (et.PowerIteration(max_iters=3), et.Lanczos(max_steps=3)):
        with pytest.warns(RuntimeWarning, match="did not converge") as caught:
            history = run(et.Polyak(), measure=measure(estimator=estimator)).history
        assert len([w for w in caught if "did not converge" in str(w.message)]) == 1
        measured = ~np.isnan(history["sharpness"])
        assert np.all(history["sharpness_converged"][measured] == 0)
        assert np.all(np.isnan(history["sharpness_converged"][~measured]))


def test_a_plain_int_key_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="jax.random.key\\(seed\\)"):
        et.train(small_mlp(), et.Constant(0.1), small_data(64), 3, key=0)


STACKS = {
    "constant": [et.Constant(0.05), et.Constant(0.2), et.Constant(1e4)],
    "armijo": [et.Armijo(), et.Armijo(max_stepsize=0.5), et.Armijo(c=0.3)],
    "polyak": [et.Polyak(), et.Polyak(max_stepsize=0.3), et.Polyak(max_stepsize=3.0)],
}


@pytest.mark.parametrize(
    "kind, vmap_runs",
    [("constant", False), ("armijo", False), ("polyak", False), ("armijo", True)],
)
def test_a_stack_of_tuners_gives_the_histories_of_separate_runs(kind, vmap_runs):
    tuners = STACKS[kind]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # GD at 1e4 diverges
        stacked = run(et.stack(tuners), batch_size=16, vmap_runs=vmap_runs)
        separate = [run(t, batch_size=16) for t in tuners]
    assert stacked.history["loss"].shape == (3, 12)
    for one, alone in zip(stacked.unstack(), separate):
        assert one.diverged_at == alone.diverged_at
        for k, v in alone.history.items():
            # Stacked (under vmap or lax.map) and alone are two programs: rounding,
            # grown along 12 steps (a 1-ulp change of the start moves them by 3e-6).
            np.testing.assert_allclose(one.history[k], v, rtol=1e-4, err_msg=k)
    if kind == "constant":  # GD at 1e4 stopped; its later rows are NaN
        assert stacked.diverged_at[2] is not None
        assert np.all(
            np.isnan(stacked.history["loss"][2, stacked.diverged_at[2] + 1 :])
        )


def test_stacked_models_and_keys_and_one_compile():
    models = et.stack([small_mlp(key=k) for k in range(3)])
    keys = jax.random.split(jax.random.key(4), 3)
    before = traces()
    result = et.train(
        models, et.Polyak(), small_data(64), 12, key=keys, batch_size=16, **SETTINGS
    )
    again = et.train(
        models,
        et.Polyak(max_stepsize=2.0),
        small_data(64),
        7,
        key=jax.random.split(jax.random.key(5), 3),
        batch_size=16,
        **SETTINGS,
    )
    assert traces() == before + 1  # the stacked configuration compiled once
    assert again.history["loss"].shape == (3, 7)
    for i, one in enumerate(result.unstack()):
        alone = et.train(
            small_mlp(key=i),
            et.Polyak(),
            small_data(64),
            12,
            key=keys[i],
            batch_size=16,
            **SETTINGS,
        )
        # Stacked and alone are two programs: rounding, grown along 12 steps.
        np.testing.assert_allclose(
            one.history["loss"], alone.history["loss"], rtol=1e-4
        )


def test_stacks_of_different_sizes_are_refused():
    with pytest.raises(ValueError, match="as many runs each"):
        et.train(
            et.stack([small_mlp(key=k) for k in range(2)]),
            et.stack([et.Constant(0.1)] * 3),
            small_data(64),
            3,
            key=jax.random.key(0),
        )
    with pytest.raises(ValueError, match="as many runs each"):
        et.train(
            small_mlp(),
            et.stack([et.Constant(0.1)] * 2),
            small_data(64),
            3,
            key=jax.random.split(jax.random.key(0), 3),
        )


def test_a_stacked_state_splits_into_runs_and_stacks_back():
    tuners = et.stack([et.Polyak(), et.Polyak(max_stepsize=0.3)])
    keys = jax.random.split(jax.random.key(6), 2)
    stacked = et.init_train_state(small_mlp(), tuners, small_data(64), key=keys)
    runs = [stacked.take(i) for i in range(2)]
    alone = et.init_train_state(small_mlp(), et.Polyak(), small_data(64), key=keys[1])
    assert jax.tree.structure(runs[1]) == jax.tree.structure(alone)
    assert int(runs[1].step) == 0
    np.testing.assert_array_equal(
        jax.random.key_data(runs[1].key), jax.random.key_data(alone.key)
    )
    again = et.TrainState.stack(runs)
    jax.tree.map(
        np.testing.assert_array_equal,  # NaN (the estimate before any) equals NaN
        jax.tree.map(_raw, again),
        jax.tree.map(_raw, stacked),
    )
    assert et.TrainState.stack(runs[:1]) is runs[0]
    later = dataclasses.replace(runs[1], step=jnp.asarray(3))
    with pytest.raises(ValueError, match="same step"):
        et.TrainState.stack([runs[0], later])


def _raw(a):
    if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
        return jax.random.key_data(a)
    return a


@pytest.mark.parametrize(
    "make, field",
    [
        (lambda v: et.Polyak(max_stepsize=v), "max_stepsize"),
        (lambda v: et.Armijo(c=v), "c"),
    ],
)
def test_a_tuner_vmapped_by_hand_is_refused_naming_the_fix(make, field):
    tuner = eqx.filter_vmap(make)(jnp.array([0.5, 0.7]))
    name = type(tuner).__name__
    calls = [
        lambda: run(tuner),
        lambda: et.init_train_state(
            small_mlp(), tuner, small_data(64), key=jax.random.key(0)
        ),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="`tuner`") as caught:
            call()
        message = str(caught.value)
        assert f"{name}'s " in message and f"`{field}` has shape (2,)" in message
        assert f"eqtuners.stack([{name}(" in message


def test_a_stack_built_by_hand_with_array_members_is_refused():
    # Each member's stepsize is a vector of 3: the leading axis (2 runs) is right.
    tree = eqx.tree_at(lambda t: t.stepsize, et.Constant(0.1), jnp.ones((2, 3)))
    with pytest.raises(ValueError, match="`stepsize` has shape \\(3,\\) in each"):
        run(et.Stack(tree, 2))
    # A stack whose members are single numbers is fine, even built by hand.
    by_hand = et.Stack(eqx.filter_vmap(et.Constant)(jnp.array([0.05, 0.1])), 2)
    assert run(by_hand, num_steps=2).history["loss"].shape == (2, 2)


def test_the_old_names_still_work_with_a_deprecation_warning():
    keys = dict(key=jax.random.key(0))
    with pytest.warns(DeprecationWarning, match="init_train_state"):
        old = et.init_state(small_mlp(), et.Polyak(), small_data(64), **keys)
    new = et.init_train_state(small_mlp(), et.Polyak(), small_data(64), **keys)
    assert jax.tree.structure(old) == jax.tree.structure(new)
    with pytest.warns(DeprecationWarning, match="sharpness_state"):
        assert old.tracker is old.sharpness_state
    with pytest.warns(DeprecationWarning, match="estimator="):
        measure = et.Measurements(4, sharpness=POWER)
    assert measure.estimator is POWER
    with pytest.warns(DeprecationWarning, match="Measurements.estimator"):
        assert measure.sharpness is POWER
    with pytest.raises(ValueError, match="`estimator` only"):
        et.Measurements(4, estimator=POWER, sharpness=POWER)


def test_the_state_keeps_its_leaf_order_so_old_checkpoints_resume():
    # Checkpoints are read by leaf order (equinox serialisation): a field may be
    # renamed (`tracker` became `sharpness_state`) but not moved.
    assert [f.name for f in dataclasses.fields(et.TrainState)] == [
        "params",
        "tuner_state",
        "sharpness_state",
        "order",
        "key",
        "step",
        "finite",
    ]
