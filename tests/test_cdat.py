"""CDAT: the formula on quadratics, its edge cases, the moving average, and the
training loop's curvature (no Hessian-vector product)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, strategies as st

import eqtuners as et
from eqtuners import _setup
from eqtuners._loop import run_call
from eqtuners.internal import value_grad_and_curvature

from .helpers import (
    assert_resumes_bit_identically,
    quadratic,
    random_quadratic,
    small_data,
    small_mlp,
    small_run,
)


@eqx.filter_jit
def cdat_step(tuner, matrix, vector, w, curvature=None):
    fn = quadratic(matrix, vector)
    value, grad = jax.value_and_grad(fn)(w)
    known = {} if curvature is None else {"curvature": curvature}
    return tuner.step(fn, w, value, grad, tuner.init(w), **known)


@given(
    seed=st.integers(0, 2**16),
    log_scale=st.floats(-2, 3),
    negative=st.integers(0, 6),
    sigma=st.floats(0.1, 3.0),
    given_curvature=st.booleans(),
)
def test_cdat_on_quadratics_is_sigma_gsq_over_abs_gag(
    seed, log_scale, negative, sigma, given_curvature
):
    rng = np.random.default_rng(seed)
    eigenvalues = 10**log_scale * rng.uniform(0.01, 1.0, 6)
    eigenvalues[:negative] *= -1  # from convex to concave
    with jax.enable_x64(True):
        matrix, vector = random_quadratic(seed, 6, eigenvalues)
        w = jnp.asarray(rng.normal(size=6))
        grad = np.asarray(matrix @ w + vector)
        gag = float(grad @ np.asarray(matrix) @ grad)
        gsq = float(grad @ grad)
        curvature = jnp.asarray(gag / gsq) if given_curvature else None
        stepsize, state, info = cdat_step(et.CDAT(sigma), matrix, vector, w, curvature)
    expected = sigma * gsq / abs(gag)
    assert float(stepsize) == pytest.approx(expected, rel=1e-9)
    assert float(info["curvature"]) == pytest.approx(gag / gsq, rel=1e-9, abs=1e-12)
    assert float(info["numerator"]) == pytest.approx(gsq, rel=1e-12)
    assert float(info["denominator"]) == pytest.approx(abs(gag), rel=1e-9)
    assert not info["capped"] and not info["nonfinite_input"]
    assert float(state.numerator) == float(info["numerator"])


def test_negative_curvature_takes_the_step_of_its_absolute_value():
    fn = lambda w: -3.0 * w @ w  # noqa: E731  (curvature -6 along every direction)
    w = jnp.array([1.0, 2.0])
    value, grad = jax.value_and_grad(fn)(w)
    tuner = et.CDAT(sigma=2.0)
    stepsize, _, info = tuner.step(fn, w, value, grad, tuner.init(w))
    assert float(info["curvature"]) == pytest.approx(-6.0)
    assert float(stepsize) == pytest.approx(2.0 / 6.0)


@pytest.mark.parametrize("ema", [0.0, 0.9])
def test_a_zero_gradient_gives_no_step_and_no_nan(ema):
    w = jnp.array([1.0, -1.0])
    zero = jnp.zeros(2)
    tuner = et.CDAT(ema=ema)
    # From the loop (the curvature of a zero gradient is NaN, by convention) and
    # computed by `step` itself.
    for known in ({"curvature": jnp.nan}, {}):
        stepsize, state, info = tuner.step(
            lambda v: jnp.sum(v**2) * 0 + 1.0, w, 1.0, zero, tuner.init(w), **known
        )
        assert stepsize == 0 and not info["nonfinite_input"]
        assert jnp.isnan(info["curvature"]) and info["numerator"] == 0
        assert jnp.all(jnp.isfinite(w - stepsize * zero))
        assert jnp.isfinite(state.numerator) and jnp.isfinite(state.denominator)


def test_a_zero_denominator_gives_the_cap_or_no_step():
    linear = lambda w: jnp.sum(w)  # noqa: E731  (no curvature at all)
    w = jnp.ones(3)
    value, grad = jax.value_and_grad(linear)(w)
    for tuner, expected, capped in [
        (et.CDAT(), 0.0, False),
        (et.CDAT(max_stepsize=0.5), 0.5, True),
        (et.CDAT(sigma=1.0, eps=6.0), 0.5, False),  # ||g||^2 = 3
    ]:
        stepsize, _, info = tuner.step(linear, w, value, grad, tuner.init(w))
        assert float(stepsize) == pytest.approx(expected)
        assert bool(info["capped"]) == capped


def test_the_cap_caps():
    fn = lambda w: 0.5 * w @ w  # noqa: E731  (curvature 1: CDAT's step is sigma)
    w = jnp.ones(2)
    tuner = et.CDAT(sigma=2.0, max_stepsize=1.5)
    stepsize, _, info = tuner.step(fn, w, fn(w), w, tuner.init(w))
    assert float(stepsize) == 1.5 and info["capped"]


def test_a_nan_curvature_at_a_nonzero_gradient_gives_no_step():
    w = jnp.ones(2)
    tuner = et.CDAT(ema=0.5)
    state = et.CDATState(jnp.float32(2.0), jnp.float32(3.0))
    for curvature in (jnp.nan, jnp.inf):
        stepsize, new_state, info = tuner.step(
            None, w, 1.0, w, state, curvature=curvature
        )
        assert stepsize == 0 and info["nonfinite_input"]
        assert new_state.numerator == 2.0 and new_state.denominator == 3.0


def test_without_curvature_or_objective_it_says_what_it_needs():
    w = jnp.ones(2)
    with pytest.raises(ValueError, match="curvature=.*`fn`"):
        et.CDAT().step(None, w, 1.0, w, et.CDAT().init(w))


def test_the_moving_average_follows_a_hand_written_loop():
    rng = np.random.default_rng(0)
    ema, sigma, eps = 0.7, 1.8, 1e-3
    with jax.enable_x64(True):
        tuner = et.CDAT(sigma=sigma, eps=eps, ema=ema)
        w = jnp.zeros(3)
        state = tuner.init(w)
        numerator = denominator = 0.0
        for t in range(8):
            grad = rng.normal(size=3) * 10 ** rng.uniform(-2, 1)
            curvature = rng.normal() * 10  # either sign
            stepsize, state, info = tuner.step(
                None, w, 1.0, jnp.asarray(grad), state, curvature=curvature
            )
            gsq = float(grad @ grad)
            numerator = ema * numerator + (1 - ema) * gsq
            denominator = ema * denominator + (1 - ema) * (abs(curvature) * gsq + eps)
            assert float(info["numerator"]) == pytest.approx(numerator, rel=1e-12)
            assert float(info["denominator"]) == pytest.approx(denominator, rel=1e-12)
            assert float(stepsize) == pytest.approx(
                sigma * numerator / denominator, rel=1e-12
            )
            if t == 0:  # no bias correction needed: it cancels in the ratio
                assert float(stepsize) == pytest.approx(
                    sigma * gsq / (abs(curvature) * gsq + eps), rel=1e-12
                )


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda: et.CDAT(sigma=0.0), "sigma"),
        (lambda: et.CDAT(sigma=jnp.array([1.0, 2.0])), "sigma"),
        (lambda: et.CDAT(eps=-1.0), "eps"),
        (lambda: et.CDAT(ema=1.0), "ema"),
        (lambda: et.CDAT(ema=-0.1), "ema"),
        (lambda: et.CDAT(max_stepsize=0.0), "max_stepsize"),
    ],
)
def test_constructor_rejects_invalid_values(make, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        make()


# --- In the training loop ---------------------------------------------------------

MEASURE = et.Measurements(3, estimator=et.PowerIteration(max_iters=200))


def train(tuner, num_steps=10, **kwargs):
    return small_run(
        tuner, num_steps, **({"measure": MEASURE, "steps_per_call": 5} | kwargs)
    )


def test_the_history_holds_the_curvature_the_loop_measures_and_one_compile():
    result = train(et.CDAT())
    history = result.history
    measured = np.isfinite(history["directional_curvature"])
    assert measured.sum() >= 3
    # The tuner's curvature (from the step's own pass, on the full batch) and the
    # measurement's (a separate product on the measurement set, here the same
    # examples): the same quantity, to rounding.
    np.testing.assert_allclose(
        history["curvature"][measured],
        history["directional_curvature"][measured],
        rtol=1e-4,
    )
    np.testing.assert_allclose(
        history["stepsize"],
        2 * history["grad_sq_norm"] / history["denominator"],
        rtol=1e-5,
    )
    before = eqx.debug.get_num_traces(run_call)
    train(et.CDAT(sigma=1.5, ema=0.5, eps=1e-6), num_steps=7)
    assert eqx.debug.get_num_traces(run_call) == before


def flops(compiled) -> float:
    """XLA's count of the floating-point operations of a compiled program."""
    cost = compiled.cost_analysis()
    return (cost[0] if isinstance(cost, list) else cost)["flops"]


def loop_flops(tuner):
    """One step of the training loop, full batch, nothing measured."""
    jax.clear_caches()  # a new trace of the loop, not one cached for another test
    setup = _setup.setup(
        small_mlp(),
        tuner,
        small_data(64),
        key=jax.random.key(0),
        batch_size=None,
        measure=None,
    )
    return flops(run_call.lower(setup.loop, setup.initial_state()).compile().compiled)


def test_the_curvature_costs_less_than_a_hessian_vector_product():
    # The loop takes the curvature from two forward tangent passes that share the
    # gradient's forward pass: under twice a Constant step, where a gradient and a
    # Hessian-vector product (even from the gradient's own linearisation) cost
    # more than twice a gradient. Counted by XLA: the same on every machine.
    fn, params = et.objective_fn(small_mlp(), *small_data(64))

    def compiled(f):
        return flops(jax.jit(f).lower(params).compile())

    gradient = compiled(jax.value_and_grad(fn))
    with_product = compiled(lambda p: value_grad_and_curvature(fn, p)[:3])
    assert with_product > 2.0 * gradient
    assert loop_flops(et.CDAT()) < 2.0 * loop_flops(et.Constant(0.1))


@pytest.mark.parametrize("vmap_runs", [False, True])
def test_a_stack_gives_the_histories_of_separate_runs(vmap_runs):
    tuners = [
        et.CDAT(max_stepsize=10.0),
        et.CDAT(sigma=1.0, ema=0.5, max_stepsize=10.0),
        et.CDAT(max_stepsize=0.05),
    ]
    stacked = train(et.stack(tuners), measure=None, vmap_runs=vmap_runs)
    for one, tuner in zip(stacked.unstack(), tuners):
        alone = train(tuner, measure=None)
        for k, v in alone.history.items():
            # Two programs: equal to rounding grown along the run.
            np.testing.assert_allclose(one.history[k], v, rtol=1e-4, err_msg=k)
    assert np.ptp(stacked.history["stepsize"][:, -1]) > 0


def test_a_resumed_run_is_bit_identical_to_an_uninterrupted_one():
    # The state carries the moving averages.
    whole = assert_resumes_bit_identically(train, et.CDAT(ema=0.8), 12)
    assert np.ptp(whole.history["numerator"]) > 0


def test_through_optax_it_computes_the_curvature_itself():
    optax = pytest.importorskip("optax")
    fn = lambda w: 0.5 * w @ jnp.diag(jnp.array([1.0, 4.0])) @ w  # noqa: E731
    w = jnp.array([1.0, 1.0])
    solver = optax.chain(optax.sgd(1.0), et.scale_by_tuner(et.CDAT(sigma=1.0)))
    value, grad = jax.value_and_grad(fn)(w)
    updates, state = solver.update(
        grad, solver.init(w), w, value=value, grad=grad, value_fn=fn
    )
    gsq, gag = grad @ grad, grad @ jnp.diag(jnp.array([1.0, 4.0])) @ grad
    assert float(optax.tree.get(state, "learning_rate")) == pytest.approx(gsq / gag)
    np.testing.assert_allclose(updates, -gsq / gag * grad, rtol=1e-6)
