"""The compiled loop: one call of `steps_per_call` steps, as one `lax.scan`.

Everything under `jax.jit` lives here, so this file is the recompile boundary: what
`Static` holds (and the structure of the model, tuner and estimator) compiles a new
program when it changes; the values of `Traced`, of the data, of the tuner's
hyperparameters and of the carry never do.

Each step draws a batch, computes the objective and its gradient on it (and, for a
tuner that reads it, an `AbstractCurvatureTuner`, the curvature along the gradient,
by forward-over-forward differentiation that shares the gradient's forward pass),
asks the tuner for a step size (the tuner's `fn` is the objective on the *same*
batch), moves the parameters, and records one row. On the measurement schedule (under
`lax.cond`) it also measures, at the parameters *before* the step (see
`Measurements`). Stacked runs are mapped over inside the step (`over_runs`); a
single run has no run axis.
"""

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, ArrayLike, PyTree

from ._measurements import UNMEASURED_KEYS, WITH_STEPSIZE, Probe, is_scheduled
from ._objective import objective_fn
from ._records import RunState, TrainState
from ._tree import tree_axpy, tree_dot
from ._tuners import AbstractCurvatureTuner
from ._tuners._curvature import value_grad_and_curvature_along_grad


class Data(NamedTuple):
    """The examples, on their devices: the training set and the measurement set."""

    x: Array
    y: Array
    measure_x: Array
    measure_y: Array


class Static(eqx.Module):
    """The static part of a configuration: changing any of these recompiles."""

    batch_size: int | None = eqx.field(static=True)
    chunk_size: int | None = eqx.field(static=True)
    steps_per_call: int = eqx.field(static=True)
    runs: int | None = eqx.field(static=True)  # None for a single run
    tuner_axis: int | None = eqx.field(static=True)  # 0 for a stack of tuners
    # Stacked runs in parallel under vmap, or one after the other.
    vmap_runs: bool = eqx.field(static=True)
    # How examples are sharded (with a mesh), or None.
    examples: jax.sharding.NamedSharding | None = eqx.field(static=True)


class Traced(eqx.Module):
    """The traced scalars of a configuration: new values never recompile."""

    weight_decay: ArrayLike
    every: ArrayLike  # 0: only the zoom window and the last step
    zoom_start: ArrayLike
    zoom_stop: ArrayLike
    num_steps: ArrayLike


class Loop(eqx.Module):
    """What a call of the compiled loop takes besides its carry."""

    static: Static
    traced: Traced
    model_static: PyTree  # the model without its floating-point arrays
    probe: Probe | None  # what is measured; None: nothing
    data: Data
    tuner: PyTree  # a tuner, or the stacked tree of a `Stack` of tuners


def next_batch(static: Static, x, y, order, key):
    """The next batch, and the data-order state `(permutation, batch index)`."""
    if static.batch_size is None:
        return (x, y), order
    permutation, index = order
    batches_per_epoch = x.shape[0] // static.batch_size
    new_epoch = index == batches_per_epoch
    permutation = lax.cond(
        new_epoch,
        lambda: jax.random.permutation(key, x.shape[0]),
        lambda: permutation,
    )
    index = jnp.where(new_epoch, 0, index)
    chosen = lax.dynamic_slice_in_dim(
        permutation, index * static.batch_size, static.batch_size
    )
    batch = (x[chosen], y[chosen])
    if static.examples is not None:  # keep the batch's examples on every device
        batch = lax.with_sharding_constraint(batch, static.examples)
    return batch, (permutation, index + 1)


def objective_on(loop: Loop, params):
    """`(x, y) -> (params -> the objective on those examples)`."""
    model = eqx.combine(params, loop.model_static)

    def on(x, y):
        return objective_fn(
            model,
            x,
            y,
            weight_decay=loop.traced.weight_decay,
            chunk_size=loop.static.chunk_size,
        )[0]

    return on


def run_step(loop: Loop, tuner, run: RunState, step):
    """One step of one run: returns the run's new state and the step's row."""
    x, y, _, _ = loop.data
    key, batch_key, measure_key = jax.random.split(run.key, 3)
    (bx, by), order = next_batch(loop.static, x, y, run.order, batch_key)
    fn = objective_on(loop, run.params)(bx, by)
    if isinstance(tuner, AbstractCurvatureTuner):  # no Hessian-vector product
        value, grad, curvature = value_grad_and_curvature_along_grad(fn, run.params)
        known = {"curvature": curvature}
    else:
        value, grad = jax.value_and_grad(fn)(run.params)
        known = {}
    grad_sq_norm = tree_dot(grad, grad)
    stepsize, tuner_state, info = tuner.step(
        fn, run.params, value, grad, run.tuner_state, **known
    )
    measured, sharpness_state = measure(loop, run, step, value, grad, fn, measure_key)
    products = {
        f"stepsize_x_{k}": stepsize * measured[k]
        for k in WITH_STEPSIZE
        if k in measured
    }
    row = {
        "loss": value,
        "grad_sq_norm": grad_sq_norm,
        "stepsize": stepsize,
        **measured,
        **products,
        **info,
    }
    # A non-finite loss or gradient ends the run where it was met.
    finite = jnp.isfinite(value) & jnp.isfinite(grad_sq_norm)

    def keep(new, old):
        return jax.tree.map(lambda a, b: jnp.where(finite, a, b), new, old)

    new = RunState(
        params=keep(tree_axpy(-stepsize, grad, run.params), run.params),
        tuner_state=keep(tuner_state, run.tuner_state),
        sharpness_state=sharpness_state,
        order=order,
        key=key,
        finite=finite,
    )
    return new, row


def measure(loop: Loop, run: RunState, step, value, grad, fn, key):
    """The step's measurements at `run.params` when the schedule says so (NaN
    otherwise, and without a probe), and the estimator's new state."""
    probe, traced = loop.probe, loop.traced
    if probe is None:
        nan = jnp.full((), jnp.nan, value.dtype)
        return dict.fromkeys(UNMEASURED_KEYS, nan), run.sharpness_state
    scheduled = is_scheduled(
        step, traced.num_steps, traced.every, traced.zoom_start, traced.zoom_stop
    )
    return lax.cond(
        scheduled,
        lambda: probe.measure(
            objective_on(loop, run.params),
            loop.data,
            loop.static.batch_size,
            run.params,
            value,
            grad,
            fn,
            run.sharpness_state,
            key,
        ),
        lambda: (probe.unmeasured(value.dtype), run.sharpness_state),
    )


def empty_row(row_shapes):
    """The row of a step not taken: NaN, or zero for integers and booleans."""

    def fill(s):
        value = jnp.nan if jnp.issubdtype(s.dtype, jnp.inexact) else 0
        return jnp.full(s.shape, value, s.dtype)

    return jax.tree.map(fill, row_shapes)


def over_runs(static: Static, fn):
    """`fn(tuner, run, step)` over the runs of a stack: under `vmap` (the runs in
    parallel), or one after the other inside the compiled step (`lax.map`); a
    single run as it is."""
    if static.runs is None:
        return fn
    if static.vmap_runs:
        return eqx.filter_vmap(fn, in_axes=(static.tuner_axis, 0, None))

    def mapped(tuner, run, step):
        if static.tuner_axis is None:
            return lax.map(lambda run: fn(tuner, run, step), run)
        return lax.map(lambda pair: fn(*pair, step), (tuner, run))

    return mapped


@eqx.filter_jit
@eqx.debug.assert_max_traces(max_traces=None)  # counts compiles; tests read the count
def run_call(loop: Loop, state: TrainState):
    """`loop.static.steps_per_call` steps from `state`: the state after them and
    their rows (with a run axis after the step axis for stacked runs). Steps past
    `num_steps`, and the steps of a run after it stopped, give empty rows."""
    static = loop.static

    def taken(tuner, run, step):
        return run_step(loop, tuner, run, step)

    # The rows' structure, from one trace of the step.
    row_shapes = eqx.filter_eval_shape(
        over_runs(static, taken), loop.tuner, state.runs(), state.step
    )[1]
    run_row_shapes = row_shapes
    if static.runs is not None:
        run_row_shapes = jax.tree.map(
            lambda s: jax.ShapeDtypeStruct(s.shape[1:], s.dtype), row_shapes
        )

    def one_run(tuner, run, step):
        # A real `cond` for one run; under `vmap` a select between the two.
        return lax.cond(
            run.finite,
            lambda run: taken(tuner, run, step),
            lambda run: (run, empty_row(run_row_shapes)),
            run,
        )

    one_run = over_runs(static, one_run)

    def active(state):
        runs, row = one_run(loop.tuner, state.runs(), state.step)
        return TrainState.of(runs, state.step + 1), row

    def body(state, _):
        return lax.cond(
            state.step < loop.traced.num_steps,
            active,
            lambda state: (state, empty_row(row_shapes)),
            state,
        )

    return lax.scan(body, state, length=static.steps_per_call)
