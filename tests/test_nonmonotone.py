"""The Armijo family past the paper: non-monotone references, PoNoS's first trial
and memory, forward tracking, and the curvature bracket of every search."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, strategies as st

import eqtuners as et

from .helpers import (
    assert_resumes_bit_identically,
    random_quadratic,
    scaled_eigenvalues,
    small_data,
    small_mlp,
    small_run,
)

# Objectives on the quadratic: plain, or NaN outside a ball through a point beyond w.
PLAIN, NAN_BALL = 0, 1


def quadratic_with_nans(matrix, vector, kind, radius):
    def fn(v):
        value = 0.5 * v @ matrix @ v + vector @ v
        return jnp.where((kind == NAN_BALL) & (v @ v > radius**2), jnp.nan, value)

    return fn


@eqx.filter_jit
def steps_on_quadratic(tuner, matrix, vector, w, kind, radius, num_steps=3):
    """`num_steps` steps of `tuner` from `w` (so the reference has a past): the step
    sizes, the final state and each step's `info`."""
    fn = quadratic_with_nans(matrix, vector, kind, radius)
    state = tuner.init(w)
    stepsizes, infos = [], []
    for _ in range(num_steps):
        value, grad = jax.value_and_grad(fn)(w)
        stepsize, state, info = tuner.step(fn, w, value, grad, state)
        w = w - stepsize * grad
        stepsizes.append(stepsize)
        infos.append(info)
    return jnp.stack(stepsizes), state, infos


def assert_same_bits(a, b):
    jax.tree.map(lambda x, y: np.testing.assert_array_equal(x, y), a, b)


@given(
    seed=st.integers(0, 2**16),
    log_scale=st.floats(-2, 4),
    negative=st.booleans(),
    kind=st.sampled_from([PLAIN, NAN_BALL]),
    margin=st.floats(1e-6, 2.0),
    c=st.floats(1e-4, 0.9),
    max_stepsize=st.floats(1e-2, 100),
    decrease_factor=st.floats(0.05, 0.95),
    block_size=st.sampled_from([1, 3]),
    x64=st.booleans(),
)
def test_the_monotone_limits_are_armijo_bit_for_bit_on_quadratics(
    seed, log_scale, negative, kind, margin, c, max_stepsize, decrease_factor,
    block_size, x64,
):  # fmt: skip
    rng = np.random.default_rng(seed)
    eigenvalues = scaled_eigenvalues(rng, log_scale, negative)
    with jax.enable_x64(x64):
        matrix, vector = random_quadratic(seed, 6, eigenvalues)
        dtype = jnp.float64 if x64 else jnp.float32
        matrix, vector = matrix.astype(dtype), vector.astype(dtype)
        w = jnp.asarray(rng.normal(size=6), dtype)
        radius = jnp.sqrt(w @ w) * (1 + margin)
        options = dict(
            c=c,
            max_stepsize=max_stepsize,
            decrease_factor=decrease_factor,
            max_backtracks=40,
            block_size=block_size,
        )
        runs = [
            steps_on_quadratic(
                et.Armijo(**options, reference=reference),
                matrix,
                vector,
                w,
                jnp.asarray(kind),
                radius,
            )
            for reference in (
                None,
                et.ZhangHagerReference(0.0),
                et.GrippoReference(1),
            )
        ]
    (monotone_steps, monotone_state, monotone_infos), *others = runs
    for steps, state, infos in others:
        assert_same_bits(steps, monotone_steps)
        assert_same_bits(state.previous, monotone_state.previous)
        assert_same_bits(infos, monotone_infos)


@eqx.filter_jit
def step_on_mlp(tuner, model, x, y):
    fn, params = et.objective_fn(model, x, y)
    value, grad = jax.value_and_grad(fn)(params)
    return tuner.step(fn, params, value, grad, tuner.init(params))


class NanFar(eqx.Module):
    """An MLP whose output is NaN once its first layer moved far from where it
    started: long trial steps give NaN objectives."""

    model: et.MLP
    start: jax.Array
    radius: jax.Array

    def __call__(self, x):
        moved = jnp.sum((self.model.layers[0].weight - self.start) ** 2)
        return jnp.where(moved > self.radius**2, jnp.nan, 1.0) * self.model(x)


@given(seed=st.integers(0, 2**16), radius=st.floats(0.01, 10.0))
def test_the_monotone_limits_are_armijo_bit_for_bit_on_an_mlp_with_nan_trials(
    seed, radius
):
    x, y = small_data(32)
    mlp = small_mlp(seed % 4)
    model = NanFar(mlp, mlp.layers[0].weight, jnp.asarray(radius))
    results = [
        step_on_mlp(et.Armijo(max_stepsize=20.0, reference=reference), model, x, y)
        for reference in (None, et.ZhangHagerReference(0.0), et.GrippoReference(1))
    ]
    (step, state, info), *others = results
    for other_step, other_state, other_info in others:
        assert_same_bits(other_step, step)
        assert_same_bits(other_state.previous, state.previous)
        assert_same_bits(other_info, info)


def test_the_monotone_limits_train_as_armijo_bit_for_bit():
    histories = [
        et.train(
            small_mlp(0),
            et.Armijo(max_stepsize=8.0, reference=reference),
            small_data(64),
            12,
            key=jax.random.key(0),
            measure=None,
        ).history
        for reference in (None, et.ZhangHagerReference(0.0), et.GrippoReference(1))
    ]
    assert np.all(histories[0]["num_evals"] > 1)  # the searches backtrack
    for other in histories[1:]:
        assert set(other) == set(histories[0])
        for key, value in histories[0].items():
            np.testing.assert_array_equal(other[key], value, err_msg=key)


# --- Non-monotone references against a direct computation ------------------------

# Step k's objective is f_k(w) = offset_k + 1/2 a_k ||w||^2 at the fixed point W: a
# hand-built sequence of losses whose references can be computed by hand.
W = np.array([1.0, -2.0])
OFFSETS = [5.0, 0.2, 3.0, 0.1, 1.0, 0.05]
CURVATURES = [1.0, 4.0, 0.5, 8.0, 2.0, 6.0]
C, RHO, S0 = 0.3, 0.5, 4.0
LOSSES = [o + 0.5 * a * W @ W for o, a in zip(OFFSETS, CURVATURES)]


def losses_and_steps(tuner):
    """The tuner's `reference_value` and step at each of the steps above."""
    with jax.enable_x64(True):
        state = tuner.init(jnp.asarray(W))
        references, steps = [], []
        for offset, a in zip(OFFSETS, CURVATURES):

            def fn(v, offset=offset, a=a):
                return offset + 0.5 * a * v @ v

            w = jnp.asarray(W)
            value, grad = jax.value_and_grad(fn)(w)
            stepsize, state, info = tuner.step(fn, w, value, grad, state)
            references.append(float(info["reference_value"]))
            steps.append(float(stepsize))
    return references, steps


def accepted_by_hand(reference, offset, a):
    """The first of `S0 RHO^j` that passes `f(W - s g) <= R - C s ||g||^2`."""
    f = lambda v: offset + 0.5 * a * v @ v  # noqa: E731
    grad = a * W
    for j in range(60):
        s = S0 * RHO**j
        if f(W - s * grad) <= reference - C * s * (grad @ grad):
            return s
    raise AssertionError("no step passes")


def by_hand(references):
    """The steps accepted against each reference."""
    return [
        accepted_by_hand(r, o, a) for r, o, a in zip(references, OFFSETS, CURVATURES)
    ]


def assert_reference_and_steps(tuner, expected_references):
    """The tuner's references are `expected_references`, its steps those that the
    test against them accepts, and some step is longer than the monotone
    search's (the case is one where the reference matters)."""
    references, steps = losses_and_steps(tuner)
    np.testing.assert_allclose(references, expected_references, rtol=1e-12)
    expected_steps = by_hand(expected_references)
    np.testing.assert_allclose(steps, expected_steps, rtol=1e-12)
    monotone_steps = by_hand(LOSSES)
    assert any(s > m for s, m in zip(steps, monotone_steps))


@pytest.mark.parametrize("xi", [1.0, 0.5])
def test_the_zhang_hager_reference_and_step_equal_a_direct_computation(xi):
    with jax.enable_x64(True):
        tuner = et.Armijo(C, S0, RHO, reference=et.ZhangHagerReference(xi))
    q = mean = 0.0
    expected = []
    for f in LOSSES:
        q, mean = xi * q + 1, (xi * q * mean + f) / (xi * q + 1)
        expected.append(max(mean, f))
    assert_reference_and_steps(tuner, expected)


def test_the_grippo_reference_and_step_equal_a_direct_computation():
    with jax.enable_x64(True):
        tuner = et.Armijo(C, S0, RHO, reference=et.GrippoReference(3))
    expected = [max(LOSSES[max(k - 2, 0) : k + 1]) for k in range(len(LOSSES))]
    assert_reference_and_steps(tuner, expected)


# --- PoNoS ---------------------------------------------------------------------


def test_ponos_has_the_papers_defaults():
    tuner = et.PoNoS()
    assert float(tuner.c) == 0.5 and float(tuner.decrease_factor) == 0.5
    assert float(tuner.max_stepsize) == 10.0 and tuner.max_backtracks == 99
    assert float(tuner.min_grad_norm) == pytest.approx(1e-8)
    assert isinstance(tuner.reference, et.ZhangHagerReference)
    assert float(tuner.reference.xi) == 1.0
    assert isinstance(tuner.first_trial, et.PolyakTrial)
    assert float(tuner.first_trial.c_p) == pytest.approx(0.1)
    assert float(tuner.first_trial.min_stepsize) == pytest.approx(1e-6)


def test_ponos_first_trials_and_memory_follow_a_hand_written_trace():
    history = et.train(
        small_mlp(0),
        et.PoNoS(),
        small_data(64),
        30,
        key=jax.random.key(0),
        measure=None,
    ).history
    memory, q, mean = 0, 0.0, 0.0
    memories = []
    for k in range(30):
        f = float(history["loss"][k])
        gsq = float(history["grad_sq_norm"][k])
        first = np.clip(f / (0.1 * gsq + 1e-8) * 0.5**memory, 1e-6, 10.0)
        assert float(history["initial_stepsize"][k]) == pytest.approx(first, rel=1e-5)
        q, mean = q + 1, (q * mean + f) / (q + 1)
        assert float(history["reference_value"][k]) == pytest.approx(
            max(mean, f), rel=1e-5
        )
        assert not history["failed"][k]
        backtracks = int(history["num_evals"][k]) - 1
        assert float(history["stepsize"][k]) == pytest.approx(
            first * 0.5**backtracks, rel=1e-5
        )
        memories.append(memory)
        memory = max(memory + backtracks - 1, 0)
    assert max(memories) >= 2  # the memory did shrink some first trials


def test_a_failure_restarts_the_memory_and_a_skip_keeps_it():
    tuner = et.PoNoS(max_trials=3)
    w = jnp.array([1.0, -2.0])
    state = et.ArmijoState(
        jnp.float32(10.0), tuner.reference.init(w.dtype), jnp.int32(5)
    )
    always_nan = lambda v: jnp.where(jnp.all(v == w), 1.0, jnp.nan)  # noqa: E731
    stepsize, failed_state, info = tuner.step(always_nan, w, 1.0, w, state)
    assert info["failed"] and stepsize == 0 and int(info["num_evals"]) == 3
    assert int(failed_state.memory) == 0 and failed_state.previous == 10.0
    # A gradient below 1e-8: no evaluation, no failure, the memory as it was, and
    # the loss still enters the reference.
    tiny = jnp.array([1e-9, 0.0])
    stepsize, skipped_state, info = tuner.step(always_nan, w, 1.0, tiny, state)
    assert stepsize == 0 and not info["failed"] and int(info["num_evals"]) == 0
    assert int(skipped_state.memory) == 5
    assert float(skipped_state.reference[0]) == float(state.reference[0]) + 1


# --- Forward tracking ------------------------------------------------------------


def forward_steps(tuner, curvatures):
    """The steps and infos of `tuner` on `1/2 kappa_k ||w||^2` at w = (1, -2)."""
    with jax.enable_x64(True):
        w = jnp.asarray(W)
        state = tuner.init(w)
        out = []
        for kappa in curvatures:

            def fn(v, kappa=kappa):
                return 0.5 * kappa * v @ v

            value, grad = jax.value_and_grad(fn)(w)
            stepsize, state, info = tuner.step(fn, w, value, grad, state)
            out.append((float(stepsize), jax.tree.map(np.asarray, info)))
    return out


@pytest.mark.parametrize("block_size", [1, 3])
def test_forward_tracking_doubles_while_the_trial_passes_up_to_the_cap(block_size):
    c = 1e-4
    with jax.enable_x64(True):
        tuner = et.Armijo(
            c,
            64.0,
            0.5,
            block_size=block_size,
            first_trial=et.ForwardTracking(2.0),
        )
    # Steps pass iff s <= 2 (1 - c) / kappa.
    steps = forward_steps(tuner, [10.0, 0.1, 0.001])
    (s1, i1), (s2, i2), (s3, i3) = steps
    # 1: from the cap 64, backtracking to the largest 64 / 2^j <= 0.19998.
    assert s1 == 0.125 and int(i1["num_evals"]) == 10
    # 2: from 0.125, which passes, forward to 16 (32 > 19.998 fails).
    assert float(i2["initial_stepsize"]) == 0.125
    assert s2 == 16.0 and int(i2["num_evals"]) == 1 + 8
    assert float(i2["directional_curvature_lower"]) == pytest.approx(2 * (1 - c) / 32)
    assert float(i2["directional_curvature_upper"]) == pytest.approx(2 * (1 - c) / 16)
    # 3: from 16 forward to the cap: 32, 64, then 128 is never tried.
    assert s3 == 64.0 and int(i3["num_evals"]) == 3
    assert i3["directional_curvature_lower"] == -np.inf  # nothing was rejected
    if block_size > 1:
        assert int(i2["num_rounds"]) == 1 + 3  # the backtracking round, then 3


def test_forward_tracking_stops_after_max_increases():
    with jax.enable_x64(True):
        tuner = et.Armijo(
            1e-4, 64.0, 0.5, first_trial=et.ForwardTracking(2.0, max_increases=2)
        )
    (s1, _), (s2, i2) = forward_steps(tuner, [10.0, 0.001])
    assert s1 == 0.125 and s2 == 0.5 and int(i2["num_evals"]) == 3


# --- The curvature bracket ---------------------------------------------------------


@eqx.filter_jit
def bracket_steps(tuner, matrix, vector, w, num_steps=4):
    """Steps of `tuner` on the quadratic, each with its bracket and the exact
    curvature along its gradient."""
    fn = quadratic_with_nans(matrix, vector, PLAIN, 1.0)
    state = tuner.init(w)
    rows = []
    for _ in range(num_steps):
        value, grad = jax.value_and_grad(fn)(w)
        stepsize, state, info = tuner.step(fn, w, value, grad, state)
        kappa = grad @ matrix @ grad / (grad @ grad)
        rows.append(
            (
                info["directional_curvature_lower"],
                kappa,
                info["directional_curvature_upper"],
                info["num_evals"],
                info["failed"],
            )
        )
        w = w - stepsize * grad
    return [jnp.stack(column) for column in zip(*rows)]


SEARCHES = {
    "monotone": lambda c, s, d: et.Armijo(c, s, d),
    "zhang_hager": lambda c, s, d: et.Armijo(
        c, s, d, reference=et.ZhangHagerReference(1.0)
    ),
    "grippo": lambda c, s, d: et.Armijo(c, s, d, reference=et.GrippoReference(3)),
    "forward": lambda c, s, d: et.Armijo(
        c, s, d, reference=et.ZhangHagerReference(0.7), first_trial=et.ForwardTracking()
    ),
    "ponos": lambda c, s, d: et.PoNoS(c=c, max_stepsize=s, decrease_factor=d),
}


@given(
    seed=st.integers(0, 2**16),
    log_scale=st.floats(-2, 3),
    negative=st.booleans(),
    c=st.floats(1e-4, 0.9),
    max_stepsize=st.floats(1e-2, 100),
    decrease_factor=st.floats(0.1, 0.9),
    search=st.sampled_from(sorted(SEARCHES)),
)
def test_the_bracket_contains_the_exact_curvature_on_quadratics(
    seed, log_scale, negative, c, max_stepsize, decrease_factor, search
):
    rng = np.random.default_rng(seed)
    eigenvalues = scaled_eigenvalues(rng, log_scale, negative)
    with jax.enable_x64(True):
        matrix, vector = random_quadratic(seed, 6, eigenvalues)
        w = jnp.asarray(rng.normal(size=6))
        tuner = SEARCHES[search](c, max_stepsize, decrease_factor)
        lower, kappa, upper, _, _ = map(
            np.asarray, bracket_steps(tuner, matrix, vector, w)
        )
    # The test's decisions are exact but for the rounding of f (a few ulps of f,
    # relative to the terms of the bound).
    tol = 1e-7 * (np.abs(kappa) + np.abs(np.where(np.isfinite(upper), upper, 0)))
    assert np.all(lower <= kappa + tol), (lower, kappa)
    assert np.all(kappa <= upper + tol), (kappa, upper)


def test_the_bracket_cases_cover_both_sides_and_an_open_side():
    """The property above meets finite brackets, a first trial accepted (`lower =
    -inf`) and a failure (`upper = inf`)."""
    with jax.enable_x64(True):
        matrix, vector = random_quadratic(0, 6, np.array([50.0, 1, 1, 1, 1, 2]))
        w = jnp.ones(6)
        found = set()
        for tuner in [
            et.Armijo(),
            et.Armijo(max_stepsize=1e-3),
            et.Armijo(max_backtracks=0),
            et.Armijo(first_trial=et.ForwardTracking()),
        ]:
            lower, kappa, upper, evals, failed = map(
                np.asarray, bracket_steps(tuner, matrix, vector, w)
            )
            for lo, k, hi, n, f in zip(lower, kappa, upper, evals, failed):
                if f:
                    assert hi == np.inf
                    found.add("failed")
                elif lo == -np.inf:
                    assert n == 1 or np.isfinite(hi)
                    found.add("first accepted")
                else:
                    assert lo < k <= hi
                    found.add("both")
    assert found == {"failed", "first accepted", "both"}


def test_the_paper_search_bracket_is_the_issue_formula():
    """After a backtrack by rho, `2 (1 - c) rho / s < kappa <= 2 (1 - c) / s`."""
    with jax.enable_x64(True):
        fn = lambda v: 2.5 * v @ v  # noqa: E731  (kappa = 5)
        w = jnp.array([1.0, -2.0])
        tuner = et.Armijo()
        value, grad = jax.value_and_grad(fn)(w)
        stepsize, _, info = tuner.step(fn, w, value, grad, tuner.init(w))
    s, c, rho = float(stepsize), 1e-4, 0.8
    assert int(info["num_evals"]) > 1
    lower = float(info["directional_curvature_lower"])
    upper = float(info["directional_curvature_upper"])
    assert lower == pytest.approx(2 * (1 - c) * rho / s, rel=1e-6)
    assert upper == pytest.approx(2 * (1 - c) / s, rel=1e-12)
    assert lower < 5.0 <= upper


# --- Stacks, checkpoints and the constructors ----------------------------------------

FAMILY = {
    "ponos": [et.PoNoS(), et.PoNoS(c=0.1, decrease_factor=0.7)],
    "zhang_hager_forward": [
        et.Armijo(
            1e-4,
            10.0,
            0.5,
            reference=et.ZhangHagerReference(xi),
            first_trial=et.ForwardTracking(),
        )
        for xi in (1.0, 0.3)
    ],
    "grippo": [et.Armijo(c, 4.0, reference=et.GrippoReference(4)) for c in (1e-4, 0.2)],
}


def train(tuner, num_steps=10, **kwargs):
    defaults = {"measure": None, "steps_per_call": 4, "batch_size": 16}
    return small_run(tuner, num_steps, **(defaults | kwargs))


@pytest.mark.parametrize("kind", FAMILY)
def test_a_stack_gives_the_histories_of_separate_runs(kind):
    tuners = FAMILY[kind]
    stacked = train(et.stack(tuners))
    for one, tuner in zip(stacked.unstack(), tuners):
        alone = train(tuner)
        for k, v in alone.history.items():
            # Two programs (a stack and a single run): equal to rounding grown
            # along the run.
            np.testing.assert_allclose(one.history[k], v, rtol=1e-4, err_msg=k)
    assert np.ptp(stacked.history["stepsize"]) > 0


@pytest.mark.parametrize("kind", FAMILY)
def test_a_resumed_run_is_bit_identical_to_an_uninterrupted_one(kind):
    # The state carries the reference's and the first trial's memories.
    whole = assert_resumes_bit_identically(train, FAMILY[kind][0], 11)
    assert np.any(whole.history["reference_value"] > whole.history["loss"]) or (
        kind == "grippo"
    )


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda: et.ZhangHagerReference(-0.1), "xi"),
        (lambda: et.ZhangHagerReference(1.5), "xi"),
        (lambda: et.GrippoReference(0), "window"),
        (lambda: et.GrippoReference(2.5), "window"),
        (lambda: et.PolyakTrial(c_p=0.0), "c_p"),
        (lambda: et.PolyakTrial(min_stepsize=-1.0), "min_stepsize"),
        (lambda: et.IncreasingTrial(0.5), "increase_factor"),
        (lambda: et.ForwardTracking(1.0), "increase_factor"),
        (lambda: et.ForwardTracking(max_increases=0), "max_increases"),
        (lambda: et.Armijo(min_grad_norm=0.0), "min_grad_norm"),
        (lambda: et.Armijo(reference=0.5), "reference"),
        (lambda: et.Armijo(first_trial="polyak"), "first_trial"),
        (
            lambda: et.Armijo(increase_factor=2.0, first_trial=et.ForwardTracking()),
            "increase_factor",
        ),
        (lambda: et.PoNoS(max_trials=0), "max_trials"),
        (lambda: et.PoNoS(xi=2.0), "xi"),
        (lambda: et.PoNoS(c_p=jnp.array([0.1, 0.2])), "c_p"),
    ],
)
def test_constructors_reject_invalid_values(make, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        make()


def test_a_stack_revalidates_the_modules_of_its_members():
    bad = eqx.tree_at(
        lambda t: t.reference.xi, et.PoNoS(), jnp.asarray(3.0)
    )  # built by hand past the constructor
    with pytest.raises(ValueError, match=r"Member 1 .*`xi`"):
        et.stack([et.PoNoS(), bad])
