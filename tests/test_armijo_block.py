"""Armijo's block search returns what the sequential search returns (the same grid
point and outcome; the two are different programs, so to rounding)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, strategies as st

import eqtuners as et

from .helpers import random_quadratic, small_data, small_mlp

# Objectives on the quadratic: plain, NaN outside a ball through a point beyond w,
# and finite only at w (every trial is NaN until the trial rounds to w: a stall).
PLAIN, NAN_BALL, ONLY_HERE = 0, 1, 2
# The steps in `info` and what is computed from them: equal to rounding.
FLOAT_KEYS = (
    "accepted_stepsize",
    "initial_stepsize",
    "reference_value",
    "directional_curvature_lower",
    "directional_curvature_upper",
)


@eqx.filter_jit
def armijo_both_ways(sequential, block, matrix, vector, w, kind, radius):
    def fn(v):
        value = 0.5 * v @ matrix @ v + vector @ v
        nan = jnp.where(
            kind == NAN_BALL,
            v @ v > radius**2,
            (kind == ONLY_HERE) & jnp.any(v != w),
        )
        return jnp.where(nan, jnp.nan, value)

    value, grad = jax.value_and_grad(fn)(w)
    return [
        tuner.step(fn, w, value, grad, tuner.init(w)) for tuner in (sequential, block)
    ]


def assert_same_search(sequential, block, block_size):
    (s_step, s_state, s_info), (b_step, b_state, b_info) = jax.tree.map(
        np.asarray, (sequential, block)
    )
    # Two programs (one trial per round, or a vmapped block): the same grid point
    # to rounding (a few ulps; the next grid point is a decrease factor away), and
    # the same discrete outcome (they differ only if a trial's value lay within
    # rounding of Armijo's threshold).
    np.testing.assert_allclose(s_step, b_step, rtol=1e-6)
    jax.tree.map(
        lambda s, b: np.testing.assert_allclose(s, b, rtol=1e-6), s_state, b_state
    )
    assert set(s_info) == set(b_info)
    for key in s_info:
        if key in FLOAT_KEYS:
            np.testing.assert_allclose(s_info[key], b_info[key], rtol=1e-6)
        elif key != "num_rounds":
            assert s_info[key] == b_info[key], key
    num_evals = int(s_info["num_evals"])
    assert int(s_info["num_rounds"]) == num_evals
    assert int(b_info["num_rounds"]) == -(-num_evals // block_size)


@given(
    seed=st.integers(0, 2**16),
    log_scale=st.floats(-2, 4),
    negative=st.booleans(),
    kind=st.sampled_from([PLAIN, NAN_BALL, ONLY_HERE]),
    margin=st.floats(1e-6, 2.0),
    c=st.floats(1e-4, 0.9),
    max_stepsize=st.floats(1e-2, 100),
    decrease_factor=st.floats(0.05, 0.95),
    max_backtracks=st.sampled_from([0, 20, 60]),
    block_size=st.sampled_from([2, 3, 8]),
)
def test_block_search_equals_sequential_search_on_quadratics(
    seed,
    log_scale,
    negative,
    kind,
    margin,
    c,
    max_stepsize,
    decrease_factor,
    max_backtracks,
    block_size,
):
    rng = np.random.default_rng(seed)
    eigenvalues = 10**log_scale * rng.uniform(0.01, 1.0, 6)
    if negative:  # a non-convex quadratic
        eigenvalues[0] *= -1
    with jax.enable_x64(True):
        matrix, vector = random_quadratic(seed, 6, eigenvalues)
        w = jnp.asarray(rng.normal(size=6))
        radius = jnp.sqrt(w @ w) * (1 + margin)  # w inside, long steps outside
        options = dict(
            c=c,
            max_stepsize=max_stepsize,
            decrease_factor=decrease_factor,
            max_backtracks=max_backtracks,
        )
        sequential, block = armijo_both_ways(
            et.Armijo(**options),
            et.Armijo(**options, block_size=block_size),
            matrix,
            vector,
            w,
            jnp.asarray(kind),
            radius,
        )
    assert_same_search(sequential, block, block_size)


def test_the_quadratic_cases_cover_acceptance_failure_and_stall():
    """The property above meets every outcome: a check that its cases are not all
    of one kind."""
    outcomes = set()
    with jax.enable_x64(True):
        matrix, vector = random_quadratic(0, 6, np.array([50.0, 1, 1, 1, 1, -1]))
        w = jnp.ones(6)
        for kind, max_backtracks, decrease in [
            (PLAIN, 60, 0.8),
            (PLAIN, 0, 0.8),
            (ONLY_HERE, 60, 0.1),
        ]:
            options = dict(max_backtracks=max_backtracks, decrease_factor=decrease)
            sequential, block = armijo_both_ways(
                et.Armijo(**options),
                et.Armijo(**options, block_size=4),
                matrix,
                vector,
                w,
                jnp.asarray(kind),
                jnp.asarray(10.0),
            )
            assert_same_search(sequential, block, 4)
            info = sequential[2]
            outcomes.add(
                ("stalled" if info["stalled"] else "failed")
                if info["failed"]
                else "accepted"
            )
    assert outcomes == {"accepted", "failed", "stalled"}


@eqx.filter_jit
def armijo_on_mlp_both_ways(sequential, block, model, x, y):
    fn, params = et.objective_fn(model, x, y)
    value, grad = jax.value_and_grad(fn)(params)
    return [
        tuner.step(fn, params, value, grad, tuner.init(params))
        for tuner in (sequential, block)
    ]


@given(
    seed=st.integers(0, 2**16),
    c=st.floats(1e-4, 0.9),
    max_stepsize=st.floats(0.1, 1000),
    decrease_factor=st.floats(0.3, 0.95),
    block_size=st.sampled_from([3, 8]),
)
def test_block_search_equals_sequential_search_on_an_mlp(
    seed, c, max_stepsize, decrease_factor, block_size
):
    x, y = small_data(32)
    params, static = eqx.partition(small_mlp(seed % 4), eqx.is_inexact_array)
    # Move away from the initialisation so every seed gives a new point.
    params = jax.tree.map(
        lambda p: p * (1 + 0.5 * jax.random.normal(jax.random.key(seed), p.shape)),
        params,
    )
    options = dict(c=c, max_stepsize=max_stepsize, decrease_factor=decrease_factor)
    sequential, block = armijo_on_mlp_both_ways(
        et.Armijo(**options),
        et.Armijo(**options, block_size=block_size),
        eqx.combine(params, static),
        x,
        y,
    )
    assert_same_search(sequential, block, block_size)


def test_training_with_the_block_search_follows_the_sequential_search():
    data = small_data(64)
    histories = [
        et.train(
            small_mlp(0),
            et.Armijo(max_stepsize=8.0, block_size=k),
            data,
            12,
            key=jax.random.key(0),
            measure=None,
        ).history
        for k in (1, 4)
    ]
    sequential, block = histories
    assert set(sequential) == set(block)
    # Two programs: the same searches (discrete outcomes), and the same losses and
    # steps to rounding grown along 12 steps (a 1-ulp start moves them by 1e-6).
    for key in ("num_evals", "failed", "stalled"):
        np.testing.assert_array_equal(sequential[key], block[key], err_msg=key)
    for key in ("loss", "stepsize"):
        np.testing.assert_allclose(sequential[key], block[key], rtol=1e-4, err_msg=key)
    assert np.all(sequential["num_evals"] > 1)  # the searches did backtrack
    np.testing.assert_array_equal(block["num_rounds"], -(-sequential["num_evals"] // 4))
