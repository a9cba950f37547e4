"""The training loop: gradient descent with a tuned step size, as one compiled scan.

Each step draws a batch, computes the objective and its gradient on it, asks the tuner
for a step size (the tuner's `fn` is the objective on the *same* batch), moves the
parameters, and records one row of measurements. Every `sharpness_every` steps (and
every step inside an optional window, `sharpness_zoom`), under `lax.cond`, it also
measures the full-batch training objective, the sharpness with the chosen estimator
and the curvature along the step's gradient, at the parameters *before* the step, so
`stepsize * sharpness` on a row pairs the step size with the curvature it was
applied to. The estimator's state (the last top eigenvector and estimate) is part of
the scan's carry, so a warm-started estimator starts each measurement from the
previous eigenvector and needs only a few Hessian-vector products.

The run is cut into calls of `steps_per_call` steps to the same compiled `lax.scan`.
Between calls the host collects the rows (and hands them to `callback`), so a long run
shows progress and writes results as it goes; nothing crosses to the host inside a
call. Steps past `num_steps` in the last call are skipped, so every call has the
same shapes and a configuration compiles once, whatever `num_steps`, the key, or the
tuner's hyperparameter values.
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
from jaxtyping import Array, ArrayLike, PRNGKeyArray, PyTree

from ._data import Dataset
from ._objective import objective
from ._sharpness import (
    AbstractSharpnessEstimator,
    SharpnessState,
    directional_curvature,
    make_estimator,
)
from ._tree import tree_axpy, tree_dot
from ._tuners import AbstractTuner
from ._validation import checked_float, checked_int

History = dict[str, np.ndarray]

# Keys of the rows the loop writes itself; a tuner's `info` keys are added beside them.
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
    "directional_curvature",
)


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """What `train` returns.

    - `model`: the model after the last step run.
    - `history`: one row per step, as a dict of NumPy arrays keyed by `LOOP_KEYS` and
      the tuner's `info` keys. `loss` is the objective on the step's batch at the
      parameters before the step; `train_loss`, `sharpness`, `stepsize_x_sharpness`,
      `sharpness_num_hvps` (the estimator's Hessian-vector products),
      `sharpness_residual` (`||Hv - sharpness v||` for the estimated eigenvector
      `v`) and `directional_curvature` (`g^T H g / ||g||^2` for the step's gradient
      `g` and the Hessian `H` of the sharpness measurement set; one more product) are
      NaN on rows where they were not measured. An estimator with `k > 1` adds
      `eigenvalue_2`, ..., `eigenvalue_k`.
    - `tuner_state`: the tuner's state after the last step.
    - `sharpness_state`: the sharpness tracker's state after the last step (the last
      eigenvector and estimate).
    - `diverged_at`: the first step whose loss was NaN or infinite, or `None`. The run
      stops there: the steps after it are skipped, `history` ends at that step, and
      `model` holds the parameters at which the loss was not finite.
    """

    model: eqx.Module
    history: History
    tuner_state: PyTree
    sharpness_state: SharpnessState
    diverged_at: int | None


class _Carry(NamedTuple):
    """What one step hands to the next."""

    params: PyTree[Array]
    tuner_state: PyTree[Array]
    tracker: SharpnessState
    order: tuple[Array, Array] | None  # (permutation, batch index); None: full batch
    key: PRNGKeyArray
    step: Array
    finite: Array  # false from the first step whose loss is NaN or infinite on


class _Settings(eqx.Module):
    """The static part of a configuration: changing any of these recompiles."""

    batch_size: int | None
    track_sharpness: bool
    track_directional: bool
    chunk_size: int | None
    steps_per_call: int


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
    return (x[chosen], y[chosen]), (permutation, index + 1)


def _step_rows_and_carry(settings, static, tuner, estimator, data, hyper, carry):
    """One step of the loop: returns the new carry and the step's row."""
    x, y, sharp_x, sharp_y = data
    weight_decay, sharpness_every, zoom, _ = hyper
    params, tuner_state, tracker, order, key, step, _ = carry
    key, batch_key, sharpness_key = jax.random.split(key, 3)

    def objective_on(bx, by):
        return lambda p: objective(
            eqx.combine(p, static),
            bx,
            by,
            weight_decay=weight_decay,
            chunk_size=settings.chunk_size,
        )

    (bx, by), order = _next_batch(settings, x, y, order, batch_key)
    fn = objective_on(bx, by)
    value, grad = jax.value_and_grad(fn)(params)
    stepsize, tuner_state, info = tuner.step(fn, params, value, grad, tuner_state)
    nan = jnp.full((), jnp.nan, value.dtype)

    def measure():
        if settings.batch_size is None:
            train_loss = value
        else:
            train_loss = objective_on(x, y)(params)
        sharp_fn = objective_on(sharp_x, sharp_y)
        estimate, new_tracker, sharpness_info = estimator.update(
            sharp_fn, params, tracker, sharpness_key
        )
        if settings.track_directional:
            curvature = directional_curvature(sharp_fn, params, grad)[0]
        else:
            curvature = nan
        measured = {
            "train_loss": train_loss,
            "sharpness": estimate,
            "sharpness_num_hvps": sharpness_info["num_hvps"],
            "sharpness_residual": sharpness_info["residual"],
            "directional_curvature": curvature,
        }
        for i, eigenvalue in enumerate(sharpness_info["top_k"][1:]):
            measured[f"eigenvalue_{i + 2}"] = eigenvalue
        return jax.tree.map(lambda v: v.astype(value.dtype), measured), new_tracker

    def skip_measure():
        return jax.tree.map(lambda _: nan, jax.eval_shape(measure)[0]), tracker

    if settings.track_sharpness:
        start, stop = zoom
        every = (sharpness_every > 0) & (step % jnp.maximum(sharpness_every, 1) == 0)
        scheduled = (every | ((start <= step) & (step < stop))) & jnp.isfinite(value)
        measured, tracker = lax.cond(scheduled, measure, skip_measure)
    else:
        measured, tracker = skip_measure()
    row = {
        "step": step,
        "loss": value,
        "grad_sq_norm": tree_dot(grad, grad),
        "stepsize": stepsize,
        **measured,
        "stepsize_x_sharpness": stepsize * measured["sharpness"],
        **info,
    }
    # A non-finite loss ends the run: the parameters stay where it was measured.
    finite = jnp.isfinite(value)
    params = jax.tree.map(
        lambda new, old: jnp.where(finite, new, old),
        tree_axpy(-stepsize, grad, params),
        params,
    )
    return _Carry(params, tuner_state, tracker, order, key, step + 1, finite), row


@eqx.filter_jit
@eqx.debug.assert_max_traces(max_traces=None)  # counts compiles; tests read the count
def _run_call(settings, static, tuner, estimator, data, hyper, carry):
    num_steps = hyper[-1]

    def active(carry):
        return _step_rows_and_carry(
            settings, static, tuner, estimator, data, hyper, carry
        )

    row_shapes = jax.eval_shape(active, carry)[1]

    def skipped(carry):
        return carry, jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), row_shapes)

    def body(carry, _):
        return lax.cond(carry.finite & (carry.step < num_steps), active, skipped, carry)

    return lax.scan(body, carry, length=settings.steps_per_call)


def _zoom(zoom):
    """`sharpness_zoom` as arrays `(start, stop)`; `(0, 0)` (no window) for `None`."""
    if zoom is None:
        return jnp.asarray(0), jnp.asarray(0)
    if not isinstance(zoom, tuple | list) or len(zoom) != 2:
        raise ValueError(
            f"`sharpness_zoom` must be a pair (start, stop), got {zoom!r}."
        )
    start = checked_int("sharpness_zoom[0]", zoom[0], lower=0)
    stop = checked_int("sharpness_zoom[1]", zoom[1], lower=start)
    return jnp.asarray(start), jnp.asarray(stop)


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


def train(
    model: eqx.Module,
    tuner: AbstractTuner,
    data: Dataset | tuple[ArrayLike, ArrayLike],
    num_steps: int,
    *,
    key: PRNGKeyArray,
    batch_size: int | None = None,
    sharpness_every: int | None = 50,
    sharpness_examples: int | None = None,
    sharpness_method: str | AbstractSharpnessEstimator = "power",
    sharpness_zoom: tuple[int | np.integer, int | np.integer] | None = None,
    sharpness_tol: float | None = None,
    sharpness_max_iters: int | None = None,
    track_directional_curvature: bool = True,
    weight_decay=1e-4,
    chunk_size: int | None = None,
    steps_per_call: int = 100,
    callback: Callable[[History], None] | None = None,
) -> TrainResult:
    """Trains `model` with gradient descent whose step size comes from `tuner`.

    **Arguments:**

    - `model`: an Equinox module mapping one example to logits; its floating-point
      arrays are the parameters.
    - `tuner`: an `AbstractTuner`, e.g. `Armijo()`, `Polyak()`, `Constant(0.1)`.
    - `data`: a `Dataset` (its training split is used) or a tuple `(x, y)`.
    - `num_steps`: the number of steps.
    - `key`: a JAX PRNG key; it fixes the batch order and the sharpness starting
      vectors, so the same key gives the same history.
    - `batch_size`: `None` for the deterministic regime (the whole training set every
      step), or the mini-batch size: batches are drawn without replacement within an
      epoch (the last `n % batch_size` examples of each shuffle are left out) and the
      order is reshuffled every epoch.
    - `sharpness_every`: measure the sharpness, the directional curvature and the
      full-batch training objective every this many steps (from step 0); `None`
      measures only in the `sharpness_zoom` window, if any.
    - `sharpness_examples`: measure the sharpness on the first this many training
      examples (`None`: all of them).
    - `sharpness_method`: the estimator: `"power"` (the paper's power iteration,
      from a random direction at every measurement; the default), `"lanczos"`
      (`Lanczos()`: warm-started from the previous eigenvector, relative residual
      1e-3, at most 100 products), or an estimator such as `PowerIteration(...)` or
      `Lanczos(max_steps=..., tol=..., k=..., warm_start=...)`.
    - `sharpness_zoom`: `(start, stop)`: also measure at every step in `[start,
      stop)`, to follow the sharpness closely over a short stretch (the paper's
      Figure 6); with a warm-started estimator each such measurement costs a few
      products.
    - `sharpness_tol`, `sharpness_max_iters`: the stopping rule of a method given by
      name (for `"power"`, the paper's 1e-3 relative change and 1000 products; for
      `"lanczos"`, 1e-3 relative residual and 100 products).
    - `track_directional_curvature`: whether measurements include the curvature
      along the step's gradient (one Hessian-vector product each).
    - `weight_decay`: the objective's weight decay, >= 0 (the paper: 1e-4).
    - `chunk_size`: evaluate the objective over this many examples at a time, to bound
      memory (`None`: all at once).
    - `steps_per_call`: steps per call of the compiled scan; rows reach the host and
      `callback` after each call.
    - `callback`: called after each call with that call's rows (a `History`).

    **Returns:** a `TrainResult`. A loss that becomes NaN or infinite stops the run
    with a warning and sets `TrainResult.diverged_at`.
    """
    if not isinstance(tuner, AbstractTuner):
        raise TypeError(f"`tuner` must be an AbstractTuner, got {type(tuner)}.")
    if isinstance(data, Dataset):
        x, y = data.train_x, data.train_y
    elif isinstance(data, tuple | list) and len(data) == 2:
        x, y = jnp.asarray(data[0]), jnp.asarray(data[1])  # on the device once
    else:
        raise TypeError(f"`data` must be a Dataset or a pair (x, y), got {data!r}.")
    _check_data_and_model(model, data, x, y)
    num_examples = x.shape[0]
    checked_int("num_steps", num_steps)
    checked_int("batch_size", batch_size, upper=num_examples, allow_none=True)
    checked_int("sharpness_every", sharpness_every, allow_none=True)
    checked_int(
        "sharpness_examples", sharpness_examples, upper=num_examples, allow_none=True
    )
    checked_int("chunk_size", chunk_size, allow_none=True)
    checked_int("steps_per_call", steps_per_call)
    estimator = make_estimator(
        sharpness_method,
        tol=sharpness_tol,
        max_iters=sharpness_max_iters,
        prefix="sharpness_",
    )
    zoom = _zoom(sharpness_zoom)
    weight_decay = checked_float(
        "weight_decay", weight_decay, lower=0.0, lower_open=False
    )

    settings = _Settings(
        batch_size=batch_size,
        track_sharpness=sharpness_every is not None or sharpness_zoom is not None,
        track_directional=bool(track_directional_curvature),
        chunk_size=chunk_size,
        steps_per_call=steps_per_call,
    )
    params, static = eqx.partition(model, eqx.is_inexact_array)
    sharp_x, sharp_y = x[:sharpness_examples], y[:sharpness_examples]
    hyper = (
        weight_decay,
        jnp.asarray(sharpness_every or 0),  # 0: only the zoom window
        zoom,
        jnp.asarray(num_steps),
    )
    if batch_size is None:
        order = None
    else:  # an epoch that has just ended, so the first step shuffles
        order = (jnp.arange(num_examples), jnp.asarray(num_examples // batch_size))
    tracker = estimator.init(params)
    carry = _Carry(
        params,
        tuner.init(params),
        tracker,
        order,
        key,
        step=jnp.asarray(0),
        finite=jnp.asarray(True),
    )

    chunks = []
    diverged_at = None
    for first in range(0, num_steps, steps_per_call):
        data = (x, y, sharp_x, sharp_y)
        carry, rows = _run_call(settings, static, tuner, estimator, data, hyper, carry)
        # The loop's columns first, in their order, then the estimator's and tuner's.
        columns = [k for k in LOOP_KEYS if k in rows]
        columns += sorted(set(rows) - {*LOOP_KEYS})
        rows = {k: np.asarray(rows[k]) for k in columns}
        done = first + np.arange(steps_per_call) < num_steps
        bad = np.flatnonzero(done & ~np.isfinite(rows["loss"]))
        if bad.size:
            done &= np.arange(steps_per_call) <= bad[0]
            diverged_at = int(rows["step"][bad[0]])
        rows = {k: v[done] for k, v in rows.items()}
        chunks.append(rows)
        if callback is not None:
            callback(rows)
        if diverged_at is not None:
            warnings.warn(
                f"The loss became {rows['loss'][-1]} at step {diverged_at} (step size "
                f"{rows['stepsize'][-1]:.4g}); the run stopped there. The step size is "
                "too large for this model and data: lower it, or use a tuner that "
                "checks the loss (Armijo).",
                RuntimeWarning,
                stacklevel=2,
            )
            break
    history = {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}
    return TrainResult(
        model=eqx.combine(carry.params, static),
        history=history,
        tuner_state=carry.tuner_state,
        sharpness_state=carry.tracker,
        diverged_at=diverged_at,
    )
