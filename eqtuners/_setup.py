"""Once per `train` call: check the configuration and split it into what the
compiled loop takes (`Loop`) and the state it starts from.

Every check here raises before anything compiles, with an error that names the
argument and says what to do.
"""

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PyTree

from ._data import Dataset
from ._loop import Data, Loop, Static, Traced
from ._measurements import Measurements, measurement_set, schedule_arrays
from ._records import RunState, TrainState
from ._stack import Stack
from ._tuners import AbstractTuner
from ._validation import checked_float, checked_int, checked_key


class Setup(NamedTuple):
    """A configuration, checked: what `train` and `init_train_state` share."""

    loop: Loop
    params: PyTree[Array]  # the model's (stacked models': with a run axis)
    key: Array
    model_axis: int | None  # 0 for a stack of models
    replicated: jax.sharding.NamedSharding | None  # with a mesh: the state's

    def place(self, state: TrainState) -> TrainState:
        """`state` on the devices of the mesh (replicated), if any."""
        if self.replicated is None:
            return state
        return jax.device_put(state, self.replicated)

    def initial_state(self) -> TrainState:
        """The state before the first step (with a leading run axis for stacks)."""
        loop = self.loop
        static, probe = loop.static, loop.probe
        num_examples = loop.data.x.shape[0]

        def one_run(params, tuner, key):
            if static.batch_size is None:
                order = None
            else:  # an epoch that has just ended, so the first step shuffles
                order = (
                    jnp.arange(num_examples),
                    jnp.asarray(num_examples // static.batch_size),
                )
            return RunState(
                params=params,
                tuner_state=tuner.init(params),
                sharpness_state=None if probe is None else probe.estimator.init(params),
                order=order,
                key=key,
                finite=jnp.asarray(True),
            )

        key = self.key
        if static.runs is None:
            runs = one_run(self.params, loop.tuner, key)
        else:
            if key.ndim == 0:  # one key for all runs: the same batches for each
                key = jnp.broadcast_to(key, (static.runs,))
            in_axes = (self.model_axis, static.tuner_axis, 0)
            runs = eqx.filter_vmap(one_run, in_axes=in_axes, axis_size=static.runs)(
                self.params, loop.tuner, key
            )
        return self.place(TrainState.of(runs, jnp.asarray(0)))

    def resumed(self, resume, num_steps: int) -> TrainState:
        """`resume`, checked against this configuration and placed."""
        state = self.place(checked_resume(resume, jax.eval_shape(self.initial_state)))
        if int(state.step) >= num_steps:
            raise ValueError(
                f"`resume` is at step {int(state.step)}, and the run has "
                f"{num_steps} steps: there is nothing left to run."
            )
        return state


def setup(
    model,
    tuner,
    data,
    *,
    key,
    batch_size,
    measure,
    num_steps=1,
    weight_decay=1e-4,
    chunk_size=None,
    steps_per_call=1,
    vmap_runs=None,
    mesh=None,
) -> Setup:
    """Checks a configuration (raising errors that name the argument, see `train`)
    and splits it into what the compiled loop takes."""
    checked_int("num_steps", num_steps)
    checked_int("steps_per_call", steps_per_call)
    weight_decay = checked_float(
        "weight_decay", weight_decay, lower=0.0, lower_open=False
    )
    x, y = training_arrays(data)
    key = checked_key("key", key, batched=True)
    runs = num_runs(model, tuner, key)
    check_tuner(tuner)
    (model, model_axis), (tuner, tuner_axis) = map(tree_and_axis, (model, tuner))
    member_model = model if model_axis is None else Stack(model, runs)[0]
    check_data_and_model(member_model, data, x, y)
    checked_int("batch_size", batch_size, upper=x.shape[0], allow_none=True)
    checked_int("chunk_size", chunk_size, allow_none=True)
    if measure is not None and not isinstance(measure, Measurements):
        raise TypeError(
            f"`measure` must be a Measurements or None, got {type(measure)}."
        )
    arrays, examples, replicated = on_devices(x, y, measure, mesh, batch_size)
    static = Static(
        batch_size=batch_size,
        chunk_size=chunk_size,
        steps_per_call=steps_per_call,
        runs=runs,
        tuner_axis=tuner_axis,
        vmap_runs=jax.default_backend() != "cpu" if vmap_runs is None else vmap_runs,
        examples=examples,
    )
    every, zoom_start, zoom_stop = schedule_arrays(measure)
    traced = Traced(weight_decay, every, zoom_start, zoom_stop, jnp.asarray(num_steps))
    params, model_static = eqx.partition(model, eqx.is_inexact_array)
    if replicated is not None:
        params, tuner, key = jax.device_put((params, tuner, key), replicated)
    loop = Loop(
        static=static,
        traced=traced,
        model_static=model_static,
        probe=None if measure is None else measure.probe(),
        data=arrays,
        tuner=tuner,
    )
    return Setup(loop, params, key, model_axis, replicated)


def on_devices(x, y, measure, mesh, batch_size):
    """`(data, examples, replicated)`: the training set and the measurement set
    (`Data`), sharded over the examples when there is a `mesh`, and the shardings
    (see `shardings`)."""
    sharp_x, sharp_y = (x, y) if measure is None else measurement_set(measure, x, y)
    examples, replicated = shardings(mesh, x.shape[0], batch_size, sharp_x.shape[0])
    data = Data(x, y, sharp_x, sharp_y)
    if examples is not None:
        data = jax.device_put(data, examples)
    return data, examples, replicated


def tree_and_axis(item) -> tuple[PyTree, int | None]:
    """A `Stack`'s stacked tree and its run axis 0, or an item as it is and
    `None` (no run axis)."""
    return (item.tree, 0) if isinstance(item, Stack) else (item, None)


def training_arrays(data):
    if isinstance(data, Dataset):
        return data.train_x, data.train_y
    if isinstance(data, tuple | list) and len(data) == 2:
        return jnp.asarray(data[0]), jnp.asarray(data[1])  # on the device once
    raise TypeError(f"`data` must be a Dataset or a pair (x, y), got {data!r}.")


def num_runs(model, tuner, key) -> int | None:
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


def check_tuner(tuner) -> None:
    """`tuner` is an `AbstractTuner` (or a `Stack` of them) whose hyperparameters,
    its array leaves, are single numbers (in each member, for a stack).

    A tuner vmapped over values (`eqx.filter_vmap(lambda v: Polyak(v))(values)`)
    passes its constructor's checks, which see one value at a time, and holds
    arrays; without this check it fails deep inside the loop. Every array leaf is
    looked at, so the check holds for any tuner, whatever its fields.

    **Raises:** `TypeError` for a tuner that is not an `AbstractTuner`;
    `ValueError` naming the tuner, the hyperparameter and its shape, and pointing
    to `eqtuners.stack`, for a non-scalar hyperparameter.
    """
    stacked = isinstance(tuner, Stack)
    member = tuner[0] if stacked else tuner
    if not isinstance(member, AbstractTuner):
        raise TypeError(f"`tuner` must be an AbstractTuner, got {type(tuner)}.")
    tree = tuner.tree if stacked else tuner
    found = []
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        shape = np.shape(leaf)[1 if stacked else 0 :]
        if eqx.is_array(leaf) and shape != ():
            field = jax.tree_util.keystr(path).lstrip(".")
            found.append(f"`{field}` has shape {shape}")
    if found:
        name = type(member).__name__
        where = " in each member of the stack" if stacked else ""
        raise ValueError(
            f"`tuner`: a tuner's hyperparameters are single numbers, but {name}'s "
            f"{', '.join(found)}{where}. A tuner built under `eqx.filter_vmap` over "
            "several values holds arrays; instead, build one tuner per value and "
            f"stack them, `eqtuners.stack([{name}(...) for ...])`, which `train` "
            "runs in one compile."
        )


def check_data_and_model(model, data, x, y) -> None:
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


def shardings(mesh, num_examples, batch_size, num_measured):
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


def checked_resume(resume, fresh) -> TrainState:
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
