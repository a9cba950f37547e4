"""`train`: set up, loop over calls of the compiled loop, result.

Each step draws a batch, computes the objective and its gradient on it, asks the
tuner for a step size (the tuner's `fn` is the objective on the *same* batch), moves
the parameters, and records one row. On the schedule of a `Measurements` (under
`lax.cond`), it also measures the full training objective, the sharpness and the
curvature along the gradient, at the parameters *before* the step, so `stepsize *
sharpness` on a row pairs the step size with the curvature it was applied to. The
sharpness estimator's state (e.g. the last eigenvector) is part of the scan's carry,
so a warm-started estimator needs only a few Hessian-vector products.

**Calls and resuming.** The run is cut into calls of `steps_per_call` steps to the
same compiled `lax.scan`. Between calls the host collects the rows, reports
progress and hands the rows and the loop's whole state (`TrainState`) to
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

The parts live by concern: `_setup.py` checks a configuration once per call of
`train`, `_loop.py` is the compiled loop (the recompile boundary), `_rows.py` turns
its rows into the history and the warnings on the host, `_progress_meter.py`
reports progress, and `_records.py` holds what `train` returns.
"""

import warnings
from collections.abc import Callable

import equinox as eqx
from jaxtyping import ArrayLike

from ._data import Dataset
from ._loop import run_call
from ._measurements import Measurements
from ._progress_meter import AbstractProgressMeter, progress_meter
from ._records import History, TrainResult, TrainState
from ._rows import Rows
from ._setup import setup
from ._stack import Stack
from ._tuners import AbstractTuner


def init_train_state(
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
    return setup(
        model, tuner, data, key=key, batch_size=batch_size, measure=measure
    ).initial_state()


def init_state(*args, **kwargs) -> TrainState:
    """Deprecated: `init_train_state` (the same arguments)."""
    warnings.warn(
        "`eqtuners.init_state` is deprecated and will be removed in the next "
        "release: use `eqtuners.init_train_state` (the same arguments).",
        DeprecationWarning,
        stacklevel=2,
    )
    return init_train_state(*args, **kwargs)


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
    progress: bool | AbstractProgressMeter | None = None,
    vmap_runs: bool | None = None,
    mesh=None,
) -> TrainResult:
    """Trains `model` with gradient descent whose step size comes from `tuner`.

    **Arguments:**

    - `model`: an Equinox module mapping one example to logits; its floating-point
      arrays are the parameters. A `Stack` of models runs them all at once.
    - `tuner`: an `AbstractTuner`, e.g. `Armijo()`, `Polyak()`, `Constant(0.1)`, or a
      `Stack` of tuners of one type (`eqtuners.stack([...])`). Its hyperparameters
      are single numbers (in each member of a stack).
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
      the progress meter and `callback` after each call.
    - `callback`: called after each call with that call's rows (a `History`) and the
      loop's state after them (a `TrainState`, for checkpoints).
    - `resume`: a `TrainState` handed to `callback` by an earlier run with the same
      arguments: the run continues from it, and the rows from its step on are those
      of an uninterrupted run.
    - `progress`: `None` (the default): a progress bar with the time left when
      stderr is a terminal, otherwise log lines (at most one per call and, but for
      the first and the last, one a minute: `TextProgressMeter`), so that a batch
      job's log shows how far it is; `True`: the bar; `False`: nothing; or an
      `AbstractProgressMeter`. A resumed run says at which step it resumes.
    - `vmap_runs`: for stacked runs, `True` runs them in parallel under `vmap`,
      `False` one after the other inside each compiled step (`lax.map`); `None`
      (the default) vmaps on GPU and TPU, where small models leave the device
      idle, and loops on CPU, where vmapped products of small models can run
      slower per run than separate ones (compare with
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
    data and model, stacks of different sizes, or a tuner whose hyperparameter is
    not a single number (a tuner vmapped by hand: use `eqtuners.stack`);
    `TypeError` for a tuner that is not an `AbstractTuner`.
    """
    checked = setup(
        model,
        tuner,
        data,
        key=key,
        batch_size=batch_size,
        measure=measure,
        num_steps=num_steps,
        weight_decay=weight_decay,
        chunk_size=chunk_size,
        steps_per_call=steps_per_call,
        vmap_runs=vmap_runs,
        mesh=mesh,
    )
    if resume is None:
        state = checked.initial_state()
    else:
        state = checked.resumed(resume, num_steps)
    loop = checked.loop
    rows = Rows(loop.probe, loop.static.runs, state.step, num_steps)
    meter = progress_meter(progress)
    meter_state = meter.init(num_steps, rows.step, loop.static.runs)
    try:
        while not rows.done:
            state, raw = run_call(loop, state)
            call_rows = rows.add(raw)
            meter_state = meter.update(meter_state, rows.step, call_rows)
            if callback is not None:
                callback(call_rows, state)
    finally:
        meter.close(meter_state)
    rows.warn(stacklevel=2)
    return _result(loop, rows, state)


def _result(loop, rows: Rows, state: TrainState) -> TrainResult:
    model = eqx.combine(state.params, loop.model_static)
    runs = loop.static.runs
    if runs is None:
        return TrainResult(
            model, rows.history(), state, rows.diverged_at[0], rows.nonfinite[0]
        )
    return TrainResult(
        Stack(model, runs), rows.history(), state, rows.diverged_at, rows.nonfinite
    )
