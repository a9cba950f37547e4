"""The training loop: gradient descent with a tuned step size, as one compiled scan.

Each step draws a batch, computes the objective and its gradient on it, asks the tuner
for a step size (the tuner's `fn` is the objective on the *same* batch), moves the
parameters, and records one row. On the schedule of a `Measurements` (under
`lax.cond`), it also measures the full training objective, the sharpness and the
curvature along the gradient, at the parameters *before* the step, so `stepsize *
sharpness` on a row pairs the step size with the curvature it was applied to. The
sharpness estimator's state (e.g. the last eigenvector) is part of the scan's carry,
so a warm-started estimator needs only a few Hessian-vector products.

**Calls and resuming.** The run is cut into calls of `steps_per_call` steps to the
same compiled `lax.scan`. Between calls the host collects the rows, updates the
progress bar and hands the rows and the loop's whole state (`TrainState`) to
`callback`, which may write them to disk; `train(..., resume=state)` continues from
such a state and produces, on the same device, exactly the history an uninterrupted
run would have. Steps past `num_steps` in the last call are skipped, so every call
has the same shapes and a configuration compiles once, whatever `num_steps`, the
key, the schedule or the tuner's hyperparameter values.

**Many runs in one compile.** `model` and `tuner` may each be a `Stack` (from
`eqtuners.stack`) and `key` a batch of keys: the runs then go through one compiled
scan under `vmap`, and the history gains a leading run axis. The measurement
schedule does not depend on the runs, so measuring stays one `lax.cond` for all of
them; a `while_loop` (Armijo's search, the estimators) runs until every run is done.

**Non-finite values.** A step whose loss or gradient is NaN or infinite ends its
run: the parameters stay exactly where they were, the row of that step is the last
one, and a warning names what was not finite.
"""

import dataclasses
import warnings
from collections.abc import Callable
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jaxtyping import Array, ArrayLike, PyTree

from ._data import Dataset
from ._measurements import (
    UNMEASURED_KEYS,
    WITH_STEPSIZE,
    Measurements,
    Probe,
    is_scheduled,
    measurement_set,
    schedule_arrays,
)
from ._objective import objective
from ._sharpness import DirectionalCurvature
from ._stack import Stack
from ._tree import tree_axpy, tree_dot
from ._tuners import AbstractTuner
from ._validation import checked_float, checked_int, checked_key

History = dict[str, np.ndarray]

# The loop's own columns, in order; the estimator's and the tuner's follow.
LOOP_KEYS = (
    "step",
    "loss",
    "grad_sq_norm",
    "stepsize",
    "train_loss",
    "sharpness",
    "stepsize_x_sharpness",
    "sharpness_num_hvps",
    "sharpness_residual",
    "sharpness_converged",
    "directional_curvature",
)


class TrainState(eqx.Module):
    """The loop's whole state between two steps: enough to resume a run exactly.

    - `params`: the model's floating-point arrays.
    - `tuner_state`: the tuner's state.
    - `tracker`: the sharpness estimator's state (e.g. the last eigenvector).
    - `order`: `(permutation, batch index)` of the mini-batch order; `None` for
      full-batch runs.
    - `key`: the PRNG key of the next step.
    - `step`: the number of steps taken (a scalar, shared by stacked runs).
    - `finite`: false once a run met a non-finite loss or gradient.

    For stacked runs every field but `step` has a leading run axis.
    """

    params: PyTree[Array]
    tuner_state: PyTree[Array]
    tracker: PyTree[Array]
    order: tuple[Array, Array] | None
    key: Array  # a PRNG key array: one key, or one per run
    step: Array | None  # None only inside the loop, for the per-run part
    finite: Array

    def take(self, i: int) -> "TrainState":
        """Run `i` of a stacked state, with the shared step counter: the state a
        single run would have (what `train(..., resume=...)` of that run takes)."""
        state = jax.tree.map(lambda a: a[i], _runs_part(self))
        return dataclasses.replace(state, step=self.step)

    @staticmethod
    def stack(states: "list[TrainState]") -> "TrainState":
        """The stacked state of single runs at the same step (the inverse of
        `take`); one state is returned as it is.

        **Raises:** `ValueError` when the states are at different steps.
        """
        states = list(states)
        steps = {int(s.step) for s in states}
        if len(steps) != 1:
            raise ValueError(
                f"Only states at the same step stack, got steps {sorted(steps)}."
            )
        if len(states) == 1:
            return states[0]
        runs = [_runs_part(s) for s in states]
        stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *runs)
        return dataclasses.replace(stacked, step=states[0].step)


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """What `train` returns.

    - `model`: the model after the last step run (a `Stack` for stacked runs).
    - `history`: one row per step, a dict of NumPy arrays keyed by `LOOP_KEYS` and
      the tuner's `info` keys (see `train`); for stacked runs each array has a
      leading run axis, and the rows of a run after it stopped are NaN in every
      column but `step`.
    - `state`: the final `TrainState` (`train(..., resume=state)` continues).
    - `diverged_at`: the step whose loss or gradient was not finite, or `None`; a
      list of those, one per run, for stacked runs.
    - `nonfinite`: what was not finite at that step (`"loss"`, `"gradient"`), or
      `None` (a list for stacked runs).
    """

    model: eqx.Module
    history: History
    state: TrainState
    diverged_at: int | None | list[int | None]
    nonfinite: str | None | list[str | None]

    @property
    def tuner_state(self):
        return self.state.tuner_state

    @property
    def sharpness_state(self):
        return self.state.tracker

    def unstack(self) -> list["TrainResult"]:
        """The runs of a stacked result as separate results, each history cut at its
        run's last step (as a single run's would be)."""
        if not isinstance(self.model, Stack):
            return [self]
        results = []
        for i in range(len(self.model)):
            end = len(self.history["step"][i])
            if self.diverged_at[i] is not None:
                end = self.diverged_at[i] + 1 - int(self.history["step"][i][0])
            history = {k: v[i][:end] for k, v in self.history.items()}
            results.append(
                TrainResult(
                    self.model[i],
                    history,
                    self.state.take(i),
                    self.diverged_at[i],
                    self.nonfinite[i],
                )
            )
        return results


def _runs_part(state: TrainState) -> TrainState:
    """`state` without its shared step counter, for mapping over runs."""
    return dataclasses.replace(state, step=None)


class _Settings(eqx.Module):
    """The static part of a configuration: changing any of these recompiles."""

    batch_size: int | None
    chunk_size: int | None
    steps_per_call: int
    tuner_axis: int | None  # 0 for a stack of tuners
    stacked: bool
    vmap_runs: bool  # stacked runs in parallel under vmap, or one after the other
    examples: jax.sharding.NamedSharding | None  # how examples are sharded


def _next_batch(settings, x, y, order, key):
    """The next batch, and the data-order state `(permutation, batch index)`."""
    if settings.batch_size is None:
        return (x, y), order
    permutation, index = order
    batches_per_epoch = x.shape[0] // settings.batch_size
    new_epoch = index == batches_per_epoch
    permutation = lax.cond(
        new_epoch,
        lambda: jax.random.permutation(key, x.shape[0]),
        lambda: permutation,
    )
    index = jnp.where(new_epoch, 0, index)
    chosen = lax.dynamic_slice_in_dim(
        permutation, index * settings.batch_size, settings.batch_size
    )
    batch = (x[chosen], y[chosen])
    if settings.examples is not None:  # keep the batch's examples on every device
        batch = lax.with_sharding_constraint(batch, settings.examples)
    return batch, (permutation, index + 1)


def _objective_on(settings, static, weight_decay, x, y):
    return lambda p: objective(
        eqx.combine(p, static),
        x,
        y,
        weight_decay=weight_decay,
        chunk_size=settings.chunk_size,
    )


def _run_step(settings, static, probe, data, hyper, tuner, run, step):
    """One step of one run: returns the run's new state (a `TrainState` without its
    step counter) and the step's row."""
    x, y, _, _ = data
    weight_decay, every, start, stop, num_steps = hyper
    key, batch_key, measure_key = jax.random.split(run.key, 3)
    (bx, by), order = _next_batch(settings, x, y, run.order, batch_key)

    def objective_on(x, y):
        return _objective_on(settings, static, weight_decay, x, y)

    fn = objective_on(bx, by)
    value, grad = jax.value_and_grad(fn)(run.params)
    grad_sq_norm = tree_dot(grad, grad)
    stepsize, tuner_state, info = tuner.step(
        fn, run.params, value, grad, run.tuner_state
    )
    if probe is None:
        nan = jnp.full((), jnp.nan, value.dtype)
        measured, tracker = dict.fromkeys(UNMEASURED_KEYS, nan), run.tracker
    else:
        measured, tracker = lax.cond(
            is_scheduled(step, num_steps, every, start, stop),
            lambda: probe.measure(
                objective_on,
                data,
                settings.batch_size,
                run.params,
                value,
                grad,
                fn,
                run.tracker,
                measure_key,
            ),
            lambda: (probe.unmeasured(value.dtype), run.tracker),
        )
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

    new = TrainState(
        params=keep(tree_axpy(-stepsize, grad, run.params), run.params),
        tuner_state=keep(tuner_state, run.tuner_state),
        tracker=tracker,
        order=order,
        key=key,
        step=None,
        finite=finite,
    )
    return new, row


def _empty_row(row_shapes):
    """The row of a step not taken: NaN, or zero for integers and booleans."""

    def fill(s):
        value = jnp.nan if jnp.issubdtype(s.dtype, jnp.inexact) else 0
        return jnp.full(s.shape, value, s.dtype)

    return jax.tree.map(fill, row_shapes)


def _over_runs(settings, fn):
    """`fn(tuner, run, step)` over the runs of a stack: under `vmap` (the runs in
    parallel), or one after the other inside the compiled step (`lax.map`)."""
    if not settings.stacked:
        return fn
    if settings.vmap_runs:
        return eqx.filter_vmap(fn, in_axes=(settings.tuner_axis, 0, None))

    def mapped(tuner, run, step):
        if settings.tuner_axis is None:
            return lax.map(lambda run: fn(tuner, run, step), run)
        return lax.map(lambda pair: fn(*pair, step), (tuner, run))

    return mapped


@eqx.filter_jit
@eqx.debug.assert_max_traces(max_traces=None)  # counts compiles; tests read the count
def _run_call(settings, static, tuner, probe, data, hyper, state):
    num_steps = hyper[-1]

    def taken(tuner, run, step):
        return _run_step(settings, static, probe, data, hyper, tuner, run, step)

    # The rows' structure, from one trace of the step; a run that has stopped and a
    # step past `num_steps` fill it with NaN.
    row_shapes = eqx.filter_eval_shape(
        _over_runs(settings, taken), tuner, _runs_part(state), state.step
    )[1]
    run_row_shapes = row_shapes
    if settings.stacked:
        run_row_shapes = jax.tree.map(
            lambda s: jax.ShapeDtypeStruct(s.shape[1:], s.dtype), row_shapes
        )

    def one_run(tuner, run, step):
        # A real `cond` for one run; under `vmap` a select between the two.
        return lax.cond(
            run.finite,
            lambda run: taken(tuner, run, step),
            lambda run: (run, _empty_row(run_row_shapes)),
            run,
        )

    one_run = _over_runs(settings, one_run)

    def active(state):
        run, row = one_run(tuner, _runs_part(state), state.step)
        return dataclasses.replace(run, step=state.step + 1), row

    def body(state, _):
        return lax.cond(
            state.step < num_steps,
            active,
            lambda state: (state, _empty_row(row_shapes)),
            state,
        )

    return lax.scan(body, state, length=settings.steps_per_call)


def _check_data_and_model(model, data, x, y):
    """Labels are integers in range and the model maps one input to one logit per
    class; raises a `ValueError` naming what is wrong otherwise."""
    num_examples = x.shape[0]
    if y.shape != (num_examples,):
        raise ValueError(
            f"Labels must have shape ({num_examples},) to match the inputs "
            f"{x.shape}, got {y.shape}."
        )
    if not jnp.issubdtype(y.dtype, jnp.integer):
        raise ValueError(f"Labels must be integers, got dtype {y.dtype}.")
    low, high = int(jnp.min(y)), int(jnp.max(y))
    try:
        output = jax.eval_shape(model, x[0])
    except Exception as error:
        raise ValueError(
            f"`model` cannot be applied to one input of shape {x.shape[1:]}: {error}"
        ) from error
    if not hasattr(output, "shape") or len(output.shape) != 1:
        raise ValueError(
            f"`model` must map one input to a vector of logits, got {output}."
        )
    classes = output.shape[0]
    if isinstance(data, Dataset) and classes != data.num_classes:
        raise ValueError(
            f"`model` has {classes} outputs but the dataset {data.name!r} has "
            f"{data.num_classes} classes."
        )
    if low < 0 or high >= classes:
        raise ValueError(
            f"Labels must lie in [0, {classes}) for a model with {classes} outputs, "
            f"got labels from {low} to {high}."
        )


def _training_arrays(data):
    if isinstance(data, Dataset):
        return data.train_x, data.train_y
    if isinstance(data, tuple | list) and len(data) == 2:
        return jnp.asarray(data[0]), jnp.asarray(data[1])  # on the device once
    raise TypeError(f"`data` must be a Dataset or a pair (x, y), got {data!r}.")


def _num_runs(model, tuner, key) -> int | None:
    """The number of stacked runs, or `None` for a single run; raises a
    `ValueError` when the stacks and the batch of keys disagree."""
    sizes = {}
    if isinstance(model, Stack):
        sizes["model"] = len(model)
    if isinstance(tuner, Stack):
        sizes["tuner"] = len(tuner)
    if key.ndim == 1:
        sizes["key"] = key.shape[0]
    if len(set(sizes.values())) > 1:
        given = ", ".join(f"`{name}` has {size}" for name, size in sizes.items())
        raise ValueError(f"Stacked arguments must hold as many runs each: {given}.")
    return next(iter(sizes.values()), None)


def _initial_state(settings, params, tuner, probe, key, num_examples, runs, model_axis):
    """The state before the first step (with a leading run axis for stacks)."""

    def one_run(params, tuner, key):
        if settings.batch_size is None:
            order = None
        else:  # an epoch that has just ended, so the first step shuffles
            order = (
                jnp.arange(num_examples),
                jnp.asarray(num_examples // settings.batch_size),
            )
        return TrainState(
            params=params,
            tuner_state=tuner.init(params),
            tracker=None if probe is None else probe.estimator.init(params),
            order=order,
            key=key,
            step=None,
            finite=jnp.asarray(True),
        )

    if runs is None:
        state = one_run(params, tuner, key)
    else:
        if key.ndim == 0:  # one key for all runs: the same batches for each
            key = jnp.broadcast_to(key, (runs,))
        state = eqx.filter_vmap(
            one_run, in_axes=(model_axis, settings.tuner_axis, 0), axis_size=runs
        )(params, tuner, key)
    return dataclasses.replace(state, step=jnp.asarray(0))


def _checked_resume(resume, fresh):
    """`resume`, after checking it has the structure, shapes and dtypes of the
    state this configuration starts from."""
    if not isinstance(resume, TrainState):
        raise TypeError(f"`resume` must be a TrainState, got {type(resume)}.")

    def signature(state):
        leaves, treedef = jax.tree.flatten(state)
        return treedef, [(jnp.shape(a), jnp.result_type(a)) for a in leaves]

    if signature(resume) != signature(fresh):
        raise ValueError(
            "`resume` does not match this configuration (model, tuner, batch size, "
            "measurements, number of runs): resume a run with the arguments that "
            "started it."
        )
    return resume


def _column_order(rows, probe) -> list[str]:
    """The loop's columns, then the other measurements and their products with the
    step size, then the tuner's `info`."""
    first = [*LOOP_KEYS, *([] if probe is None else probe.keys())]
    first += [f"stepsize_x_{k}" for k in WITH_STEPSIZE]
    columns = list(dict.fromkeys(k for k in first if k in rows))
    return columns + sorted(set(rows) - {*columns})


def _first_nonfinite(rows, axis_runs: bool):
    """Per run, the index of the first row with a non-finite loss or gradient
    (or -1), and what was not finite there."""
    bad_loss = ~np.isfinite(rows["loss"])
    bad = bad_loss | ~np.isfinite(rows["grad_sq_norm"])
    bad = bad if axis_runs else bad[None]
    bad_loss = bad_loss if axis_runs else bad_loss[None]
    found = []
    for run_bad, run_loss in zip(bad, bad_loss):
        if run_bad.any():
            i = int(np.argmax(run_bad))
            found.append((i, "loss" if run_loss[i] else "gradient"))
        else:
            found.append((-1, None))
    return found


def _nonfinite_message(history, run, step, what, first_step):
    """The warning for a run stopped by a non-finite loss or gradient."""
    rows = {k: (v[run] if run is not None else v) for k, v in history.items()}
    where = step - first_step
    name = "" if run is None else f"Run {run}: "
    if what == "gradient":
        return (
            f"{name}the gradient is not finite at step {step} while the loss is "
            f"finite ({rows['loss'][where]:.6g}): the objective is not "
            "differentiable at these parameters (a square root or a norm at zero, "
            "a log at zero, ...). The run stopped there with the parameters "
            "unchanged; change the model or where it starts."
        )
    if where == 0:
        return (
            f"{name}the loss is {rows['loss'][where]} at step {step}, the first step "
            "run: check the model's initialisation and the data for NaN or "
            "infinite values. The run stopped there."
        )
    return (
        f"{name}the loss became {rows['loss'][where]} at step {step} after a step "
        f"of size {rows['stepsize'][where - 1]:.4g}; the run stopped there, with the "
        "parameters at which the loss was not finite. The step size is too large "
        "for this model and data: lower it, or use a tuner that checks the loss "
        "(Armijo)."
    )


def _progress_bar(num_steps, first, progress, runs):
    from tqdm.auto import tqdm

    return tqdm(
        total=num_steps,
        initial=first,
        unit="step",
        desc="train" if runs is None else f"train ({runs} runs)",
        disable=None if progress is None else not progress,
        leave=False,
        dynamic_ncols=True,
    )


def _postfix(rows) -> dict[str, str]:
    def last(key):
        values = np.asarray(rows[key], float).ravel()
        values = values[np.isfinite(values)]
        return f"{values[-1]:.4g}" if values.size else None

    postfix = {"loss": last("loss"), "step size": last("stepsize")}
    if "sharpness" in rows:
        postfix["sharpness"] = last("sharpness")
    return {k: v for k, v in postfix.items() if v is not None}


class _Setup(NamedTuple):
    """A configuration, checked: what `train` and `init_state` share."""

    data: tuple[Array, Array, Array, Array]  # (x, y, measurement x, measurement y)
    runs: int | None
    settings: _Settings
    params: PyTree[Array]
    static: PyTree
    tuner: AbstractTuner
    probe: Probe | None
    key: Array
    model_axis: int | None
    replicated: jax.sharding.NamedSharding | None  # with a mesh: the state's

    def place(self, state: TrainState) -> TrainState:
        """`state` on the devices of the mesh (replicated), if any."""
        if self.replicated is None:
            return state
        return jax.device_put(state, self.replicated)

    def initial_state(self) -> TrainState:
        return self.place(
            _initial_state(
                self.settings,
                self.params,
                self.tuner,
                self.probe,
                self.key,
                self.data[0].shape[0],
                self.runs,
                self.model_axis,
            )
        )


def _shardings(mesh, num_examples, batch_size, num_measured):
    """`(examples, replicated)` shardings for `train(..., mesh=...)`, or `(None,
    None)`; raises a `ValueError` naming `mesh` when the examples do not divide
    evenly over its devices."""
    if mesh is None:
        return None, None
    if isinstance(mesh, str) and mesh == "all":
        mesh = jax.sharding.Mesh(np.array(jax.local_devices()), ("data",))
    if not isinstance(mesh, jax.sharding.Mesh):
        raise ValueError(
            f"`mesh` must be a jax.sharding.Mesh, 'all' or None, got {mesh!r}."
        )
    # The same devices with XLA choosing the shardings inside the loop (the
    # mini-batch gathers), whatever axis types the mesh was made with.
    mesh = jax.sharding.Mesh(mesh.devices, mesh.axis_names)
    axis = mesh.axis_names[0]
    devices = mesh.shape[axis]
    for what, count in (
        ("training examples", num_examples),
        ("examples per mini-batch", batch_size),
        ("examples of the measurement set", num_measured),
    ):
        if count is not None and count % devices:
            raise ValueError(
                f"With `mesh` over {devices} devices, the {count} {what} must "
                f"divide evenly: choose a multiple of {devices} (a `subset` of the "
                "data, the batch size, `Measurements(examples=...)`)."
            )
    spec = jax.sharding.PartitionSpec
    return (
        jax.sharding.NamedSharding(mesh, spec(axis)),
        jax.sharding.NamedSharding(mesh, spec()),
    )


def _setup(
    model,
    tuner,
    data,
    key,
    batch_size,
    measure,
    chunk_size,
    steps_per_call,
    vmap_runs=None,
    mesh=None,
):
    """Checks a configuration (raising errors that name the argument) and splits it
    into what the compiled loop takes."""
    x, y = _training_arrays(data)
    key = checked_key("key", key, batched=True)
    runs = _num_runs(model, tuner, key)
    member_tuner = tuner[0] if isinstance(tuner, Stack) else tuner
    if not isinstance(member_tuner, AbstractTuner):
        raise TypeError(f"`tuner` must be an AbstractTuner, got {type(tuner)}.")
    member_model = model[0] if isinstance(model, Stack) else model
    _check_data_and_model(member_model, data, x, y)
    checked_int("batch_size", batch_size, upper=x.shape[0], allow_none=True)
    checked_int("chunk_size", chunk_size, allow_none=True)
    if measure is not None and not isinstance(measure, Measurements):
        raise TypeError(
            f"`measure` must be a Measurements or None, got {type(measure)}."
        )
    sharp_x, sharp_y = (x, y) if measure is None else measurement_set(measure, x, y)
    examples, replicated = _shardings(mesh, x.shape[0], batch_size, sharp_x.shape[0])
    if examples is not None:
        x, y, sharp_x, sharp_y = jax.device_put((x, y, sharp_x, sharp_y), examples)
    settings = _Settings(
        batch_size=batch_size,
        chunk_size=chunk_size,
        steps_per_call=steps_per_call,
        tuner_axis=0 if isinstance(tuner, Stack) else None,
        stacked=runs is not None,
        vmap_runs=jax.default_backend() != "cpu" if vmap_runs is None else vmap_runs,
        examples=examples,
    )
    params, static = eqx.partition(
        model.tree if isinstance(model, Stack) else model, eqx.is_inexact_array
    )
    tuner = tuner.tree if isinstance(tuner, Stack) else tuner
    if replicated is not None:
        params, tuner, key = jax.device_put((params, tuner, key), replicated)
    return _Setup(
        data=(x, y, sharp_x, sharp_y),
        runs=runs,
        settings=settings,
        params=params,
        static=static,
        tuner=tuner,
        probe=None if measure is None else measure.probe(),
        key=key,
        model_axis=0 if isinstance(model, Stack) else None,
        replicated=replicated,
    )


def init_state(
    model: eqx.Module | Stack,
    tuner: AbstractTuner | Stack,
    data: Dataset | tuple[ArrayLike, ArrayLike],
    *,
    key,
    batch_size: int | None = None,
    measure: Measurements | None = Measurements(),
) -> TrainState:
    """The `TrainState` that `train` starts from with these arguments (see
    `train`): for instance the structure to read a checkpoint into.

    **Raises:** as `train`.
    """
    return _setup(model, tuner, data, key, batch_size, measure, None, 1).initial_state()


def train(
    model: eqx.Module | Stack,
    tuner: AbstractTuner | Stack,
    data: Dataset | tuple[ArrayLike, ArrayLike],
    num_steps: int,
    *,
    key,  # checked by `checked_key`, whose message says what to pass
    batch_size: int | None = None,
    measure: Measurements | None = Measurements(),
    weight_decay=1e-4,
    chunk_size: int | None = None,
    steps_per_call: int = 100,
    callback: Callable[[History, TrainState], None] | None = None,
    resume: TrainState | None = None,
    progress: bool | None = None,
    vmap_runs: bool | None = None,
    mesh=None,
) -> TrainResult:
    """Trains `model` with gradient descent whose step size comes from `tuner`.

    **Arguments:**

    - `model`: an Equinox module mapping one example to logits; its floating-point
      arrays are the parameters. A `Stack` of models runs them all at once.
    - `tuner`: an `AbstractTuner`, e.g. `Armijo()`, `Polyak()`, `Constant(0.1)`, or a
      `Stack` of tuners of one type (`eqtuners.stack([...])`).
    - `data`: a `Dataset` (its training split is used) or a tuple `(x, y)`.
    - `num_steps`: the number of steps.
    - `key`: a PRNG key from `jax.random.key(seed)`; it fixes the batch order and
      the estimators' random starts, so the same key gives the same history. A
      batch of keys (`jax.random.split(key, R)`) runs R runs; one key for stacked
      runs gives them all the same batches.
    - `batch_size`: `None` for the deterministic regime (the whole training set every
      step), or the mini-batch size: batches are drawn without replacement within an
      epoch (the last `n % batch_size` examples of each shuffle are left out) and the
      order is reshuffled every epoch.
    - `measure`: what to measure and when, a `Measurements` (default: the sharpness
      by the paper's power iteration every 50 steps and at the last step); `None`
      measures nothing.
    - `weight_decay`: the objective's weight decay, >= 0 (the paper: 1e-4).
    - `chunk_size`: evaluate the objective over this many examples at a time, to bound
      memory (`None`: all at once).
    - `steps_per_call`: steps per call of the compiled scan; rows reach the host,
      the progress bar and `callback` after each call.
    - `callback`: called after each call with that call's rows (a `History`) and the
      loop's state after them (a `TrainState`, for checkpoints).
    - `resume`: a `TrainState` handed to `callback` by an earlier run with the same
      arguments: the run continues from it, and the rows from its step on are those
      of an uninterrupted run.
    - `progress`: show a progress bar with the time left (`None`: only on a
      terminal).
    - `vmap_runs`: for stacked runs, `True` runs them in parallel under `vmap`,
      `False` one after the other inside each compiled step (`lax.map`); `None`
      (the default) vmaps on GPU and TPU, where small models leave the device
      idle, and loops on CPU, where the vmapped MLP's products ran 2 to 3 times
      slower per run than separate ones (measured with
      `benchmarks.runs_in_one_compile`). Both give the same history up to float
      rounding; a `while_loop` (Armijo's search) under `vmap` runs until every
      run is done.
    - `mesh`: data parallelism: a `jax.sharding.Mesh` whose first axis the
      examples are sharded over (of the training set, of every mini-batch and of
      the measurement set), with the parameters, the tuner and the loop's state
      replicated; `"all"` for a one-axis mesh of all local devices; `None` (the
      default) for the default device. Sums over examples are then reduced across
      the devices by XLA, so histories agree with one device's up to float
      rounding. Several hosts: see the README.

    **Returns:** a `TrainResult`. The history has one row per step run, with the
    columns `step`, `loss` (the objective on the step's batch, before the step),
    `grad_sq_norm`, `stepsize`, the measurements (`train_loss`, `sharpness`,
    `stepsize_x_sharpness`, `sharpness_num_hvps`, `sharpness_residual`,
    `sharpness_converged`, `directional_curvature`; NaN on rows not measured; an
    estimator with `k > 1` adds `eigenvalue_2`, ...) and the tuner's `info`.

    **Warns:** `RuntimeWarning` when a run stops on a non-finite loss or gradient
    (naming which), and once at the end when some sharpness measurements did not
    converge.

    **Raises:** `ValueError` naming the argument for invalid values, mismatched
    data and model, or stacks of different sizes; `TypeError` for a tuner that is
    not an `AbstractTuner`.
    """
    checked_int("num_steps", num_steps)
    checked_int("steps_per_call", steps_per_call)
    weight_decay = checked_float(
        "weight_decay", weight_decay, lower=0.0, lower_open=False
    )
    setup = _setup(
        model,
        tuner,
        data,
        key,
        batch_size,
        measure,
        chunk_size,
        steps_per_call,
        vmap_runs,
        mesh,
    )
    settings, runs, probe = setup.settings, setup.runs, setup.probe
    static, tuner_tree = setup.static, setup.tuner
    if resume is None:
        state = setup.initial_state()
    else:
        state = setup.place(
            _checked_resume(resume, jax.eval_shape(setup.initial_state))
        )
        if int(state.step) >= num_steps:
            raise ValueError(
                f"`resume` is at step {int(state.step)}, and the run has "
                f"{num_steps} steps: there is nothing left to run."
            )
    hyper = (weight_decay, *schedule_arrays(measure), jnp.asarray(num_steps))

    first = int(state.step)
    chunks = []
    diverged_at = [None] * (runs or 1)
    nonfinite = [None] * (runs or 1)
    with _progress_bar(num_steps, first, progress, runs) as bar:
        while first < num_steps:
            state, rows = _run_call(
                settings, static, tuner_tree, probe, setup.data, hyper, state
            )
            count = min(steps_per_call, num_steps - first)
            rows = {k: np.asarray(rows[k])[:count] for k in _column_order(rows, probe)}
            steps = first + np.arange(count)
            if runs is not None:  # (steps, runs) -> (runs, steps), NaN once stopped
                rows = {k: v.T.astype(np.float64) for k, v in rows.items()}
            for run, (index, what) in enumerate(
                _first_nonfinite(rows, runs is not None)
            ):
                if index < 0 or diverged_at[run] is not None:
                    continue
                diverged_at[run], nonfinite[run] = first + index, what
                if runs is None:
                    rows = {k: v[: index + 1] for k, v in rows.items()}
                    steps = steps[: index + 1]
            if runs is not None:
                for run, stop in enumerate(diverged_at):
                    if stop is not None:
                        for v in rows.values():
                            v[run, max(stop + 1 - first, 0) :] = np.nan
                steps = np.broadcast_to(steps, (runs, count))
            rows = {"step": steps, **rows}
            chunks.append(rows)
            bar.update(rows["step"].shape[-1])
            bar.set_postfix(_postfix(rows), refresh=False)
            if callback is not None:
                callback(rows, state)
            first += count
            if all(d is not None for d in diverged_at):
                break

    history = {k: np.concatenate([c[k] for c in chunks], axis=-1) for k in chunks[0]}
    for run, (stop, what) in enumerate(zip(diverged_at, nonfinite)):
        if stop is not None:
            warnings.warn(
                _nonfinite_message(
                    history,
                    None if runs is None else run,
                    stop,
                    what,
                    int(np.asarray(history["step"]).ravel()[0]),
                ),
                RuntimeWarning,
                stacklevel=2,
            )
    _warn_unconverged(history, None if probe is None else probe.estimator)
    final_model = eqx.combine(state.params, static)
    if runs is None:
        return TrainResult(final_model, history, state, diverged_at[0], nonfinite[0])
    return TrainResult(Stack(final_model, runs), history, state, diverged_at, nonfinite)


def _warn_unconverged(history, estimator):
    """One warning for the measurements whose estimate did not converge (not for
    the curvature along the gradient, which is no eigenvalue estimate)."""
    if estimator is None or isinstance(estimator, DirectionalCurvature):
        return
    converged = np.asarray(history["sharpness_converged"], float)
    measured = np.isfinite(converged)
    failed = int(np.sum(measured & (converged == 0)))
    if failed:
        warnings.warn(
            f"{failed} of {int(measured.sum())} sharpness measurements did not "
            f"converge ({estimator}): their estimates may be far from the top "
            "eigenvalue (see the `sharpness_residual` column). Allow more "
            "Hessian-vector products (PowerIteration(max_iters=...), "
            "Lanczos(max_steps=...)) or a looser tolerance.",
            RuntimeWarning,
            stacklevel=3,
        )
