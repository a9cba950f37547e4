"""Our tuners inside optax: a line-search transformation for `optax.chain`.

`scale_by_tuner(tuner)` is an `optax.GradientTransformationExtraArgs` with the calling
convention of optax's own line searches (`optax.scale_by_backtracking_linesearch`,
`optax.scale_by_zoom_linesearch`) and of `optax.scale_by_polyak`, so it goes where
they go, after a transformation that turns the gradient into a descent direction:

    solver = optax.chain(optax.sgd(learning_rate=1.0), scale_by_tuner(Armijo()))
    updates, state = solver.update(
        grad, state, params, value=value, grad=grad, value_fn=loss, x=x, y=y
    )
    params = optax.apply_updates(params, updates)

As in optax, the incoming `updates` are the search direction `u` (`-grad` after
`optax.sgd(1.0)`) and the outgoing updates are `stepsize * u`, with a step size >= 0;
`value_fn(params, **kwargs)` is the objective, called with the extra keyword arguments
of `update` that its signature names (the batch), so Armijo's trials use the same
batch as the gradient; any other extra argument raises, as in optax.

The tuner sees `-u` as its gradient: its trials are the points `params + s * u` that
the chain moves to, and its formulas read `||u||^2` where they read `||grad||^2` (as
`optax.scale_by_polyak` does). After `optax.sgd(1.0)`, `-u` is the gradient and every
step size is the tuner's own (`train`'s, to float rounding). After other transforms
(clipping, preconditioning) it is the tuner's rule along that direction.

Where our tuners differ from the peers' (and the tests replay each case):

- after a search whose last trial was NaN (on one bad batch, say), optax's
  backtracking stores a learning rate of 0, and its next guess,
  `increase_factor * 0`, keeps it at 0 for good; `Armijo` returns 0 for that step
  only and starts the next search from `max_stepsize`;
- `Armijo` never accepts a trial whose objective is NaN or infinite (jaxopt's
  `ArmijoSGD` does, since `NaN > x` is false);
- `Polyak` gives a finite step at a zero gradient (jaxopt's `PolyakSGD` computes
  `0 / 0` at a minimiser with loss 0 and makes the parameters NaN).

A step size of 0 gives updates that are exactly 0, so a failed search leaves the
parameters where they are even when the direction holds NaN.

optax is imported by `scale_by_tuner` only; the rest of eqtuners works without it
(install it with `pip install 'eqtuners[optax]'`).
"""

import inspect
from collections.abc import Callable
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PyTree, Scalar

from ._tree import tree_dot, tree_dtype, tree_scale
from ._tuners import AbstractTuner, TunerInfo
from ._validation import checked_params


class ScaleByTunerState(NamedTuple):
    """The state of `scale_by_tuner`, a NamedTuple like optax's line-search states.

    Each field is readable by name with `optax.tree.get(state, name)` anywhere in a
    chain's state, after `jax.jit` as well, and so is each key of `info` (for
    `Armijo`: `"num_evals"`, `"failed"`, `"accepted_stepsize"`, `"initial_stepsize"`;
    for `Polyak`: `"unclipped_stepsize"`, `"capped"`).

    - `learning_rate`: the step size of the last update, a scalar in the parameters'
      dtype; 0 before the first update. (optax's name, so code that reads optax's
      line-search state reads this one unchanged.)
    - `tuner_state`: the tuner's own state.
    - `info`: the tuner's `info` at the last update (zeros before the first), a dict
      with the same keys and dtypes at every step.
    - `value`, `grad`: with `store_grad=True`, the objective and its gradient at the
      parameters after the last update (`inf` and zeros before the first), which
      `optax.value_and_grad_from_state` reuses; `None` otherwise.
    """

    learning_rate: Scalar
    tuner_state: PyTree[Array]
    info: TunerInfo
    value: Scalar | None
    grad: PyTree[Array] | None


def _value_fn_kwargs(value_fn: Callable, extra_args: dict[str, Any]) -> dict:
    """The extra arguments that `value_fn`'s signature names (all of them when it
    takes `**kwargs`); raises `TypeError` for the others, as optax's line searches
    do."""
    parameters = inspect.signature(value_fn).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return dict(extra_args)
    names = {p.name for p in parameters}
    unused = sorted(k for k in extra_args if k not in names)
    if unused:
        raise TypeError(
            f"Unexpected keyword arguments passed to the update of `scale_by_tuner`: "
            f"{unused} are not arguments of `value_fn`. Pass only the extra "
            "arguments that `value_fn` takes (the batch), by the names it uses."
        )
    return {k: v for k, v in extra_args.items() if k in names}


def _zeros_like_shapes(shapes):
    return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)


def _cast_like(new, old):
    """`new` in the dtypes of `old` (also drops weak types), so the state keeps the
    same abstract value at every step and a jitted loop compiles once."""
    return jax.tree.map(lambda n, o: jnp.asarray(n).astype(o.dtype), new, old)


def scale_by_tuner(tuner: AbstractTuner, *, store_grad: bool = False):
    """Turns a tuner into an optax transformation that scales the updates by the
    tuner's step size, following optax's line-search conventions (see the module
    docstring).

    **Arguments:**

    - `tuner`: any `AbstractTuner` (`Constant`, `Armijo`, `Polyak`, ...).
    - `store_grad`: whether each update also computes the objective and its gradient
      at the new parameters `params + updates` (one more forward and backward pass)
      and stores them as `value` and `grad` in the state, for
      `optax.value_and_grad_from_state` to reuse at the next step (deterministic
      objectives only, and only if no later transformation in the chain changes the
      updates), as `optax.scale_by_backtracking_linesearch(store_grad=True)` does.

    **Returns:** an `optax.GradientTransformationExtraArgs`. `init(params)` returns a
    `ScaleByTunerState`; `update(updates, state, params, *, value, grad, value_fn,
    **extra_args)` takes

    - `updates`: the search direction `u`, a pytree like `params` (`-grad` after
      `optax.sgd(1.0)`);
    - `params`: the current parameters (floating-point arrays);
    - `value`: the objective at `params`, `value_fn(params, **extra_args)`;
    - `grad`: its gradient; accepted for optax's convention and unused (the tuner
      reads its direction from `updates`);
    - `value_fn`: the objective, `value_fn(params, **kwargs) -> scalar`;
    - `extra_args`: passed on to `value_fn` (the batch),

    and returns `(stepsize * u, new_state)`, with updates exactly 0 when the step
    size is 0.

    **Raises:** `TypeError` when `tuner` is not an `AbstractTuner` or `store_grad` not
    a bool; `ImportError` when optax is not installed. The
    update raises `ValueError` when `params`, `value` or `value_fn` is missing, and
    `TypeError` for an extra argument that `value_fn` does not take.
    """
    try:
        import optax
    except ImportError as error:
        raise ImportError(
            "`scale_by_tuner` needs optax: install it with "
            "`pip install 'eqtuners[optax]'` (or `pip install optax`)."
        ) from error
    if not isinstance(tuner, AbstractTuner):
        raise TypeError(f"`tuner` must be an AbstractTuner, got {type(tuner)}.")
    if not isinstance(store_grad, bool):
        raise TypeError(f"`store_grad` must be True or False, got {store_grad!r}.")

    def init(params) -> ScaleByTunerState:
        checked_params("params", params)
        dtype = tree_dtype(params)
        tuner_state = tuner.init(params)

        def probe_info(params, tuner_state):
            def fn(p):
                return 0.5 * tree_dot(p, p)

            value = jnp.zeros((), dtype)
            return tuner.step(fn, params, value, params, tuner_state)[2]

        info_shapes = eqx.filter_eval_shape(probe_info, params, tuner_state)
        return ScaleByTunerState(
            learning_rate=jnp.zeros((), dtype),
            tuner_state=tuner_state,
            info=_zeros_like_shapes(info_shapes),
            value=jnp.full((), jnp.inf, dtype) if store_grad else None,
            grad=jax.tree.map(jnp.zeros_like, params) if store_grad else None,
        )

    def update(
        updates,
        state: ScaleByTunerState,
        params=None,
        *,
        value=None,
        grad=None,
        value_fn=None,
        **extra_args,
    ):
        del grad  # the tuner's direction is -updates
        for name, given in (("params", params), ("value", value)):
            if given is None:
                raise ValueError(
                    f"The update of `scale_by_tuner` needs `{name}`: call "
                    "`update(updates, state, params, value=value, grad=grad, "
                    "value_fn=loss, **batch)`, as for optax's line searches."
                )
        if not callable(value_fn):
            raise ValueError(
                "The update of `scale_by_tuner` needs `value_fn`, the objective "
                f"`value_fn(params, **batch) -> scalar`, got {value_fn!r}."
            )
        kwargs = _value_fn_kwargs(value_fn, extra_args)

        def fn(p):
            return value_fn(p, **kwargs)

        stepsize, tuner_state, info = tuner.step(
            fn, params, value, tree_scale(-1, updates), state.tuner_state
        )
        new_updates = jax.tree.map(
            lambda u: jnp.where(stepsize == 0, 0, stepsize * u).astype(u.dtype),
            updates,
        )
        if store_grad:
            new_value, new_grad = jax.value_and_grad(fn)(
                optax.apply_updates(params, new_updates)
            )
        else:
            new_value = new_grad = None
        new_state = ScaleByTunerState(
            learning_rate=stepsize,
            tuner_state=tuner_state,
            info=info,
            value=new_value,
            grad=new_grad,
        )
        return new_updates, _cast_like(new_state, state)

    return optax.GradientTransformationExtraArgs(init, update)
