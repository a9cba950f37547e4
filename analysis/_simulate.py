"""One simulator for every model of the joint step-size/sharpness dynamics.

A model is a loss on a small parameter pytree and a way to read its sharpness there.
`simulate` runs gradient descent on it with the step size of any `eqtuners` tuner,

    stepsize_t, state = tuner.step(model.loss, w_t, f(w_t), grad f(w_t), state)
    w_{t+1} = w_t - stepsize_t * grad f(w_t),

as one jitted `lax.scan`, and records per step the loss, the sharpness, the curvature
along the gradient and the step size at `w_t`. Both the second-order regression
model (exact in parameter space) and the reduced self-stabilisation dynamics (whose
two variables are its parameters) go through this loop; so does the top-eigenmode
quadratic.

A tuner that reads the curvature along the gradient (`eqtuners.CDAT`, an
`AbstractCurvatureTuner`) gets it as `eqtuners.train` gives it: computed with the
value and the gradient (`value_grad_and_curvature_along_grad`) and passed to
`step`. A `Stack` of tuners (`eqtuners.stack`) runs every member in one compile.
"""

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, PyTree, Scalar

from eqtuners import AbstractCurvatureTuner, AbstractTuner, Stack
from eqtuners.internal import (
    checked_int,
    curvature_along,
    tree_axpy,
    tree_dot,
    value_grad_and_curvature_along_grad,
)


class AbstractDynamicsModel(eqx.Module):
    """A loss whose gradient-descent dynamics `simulate` can run.

    The loss must be differentiable with `jax.grad`; the sharpness is whatever the
    model defines as its exact top curvature (a dense Hessian eigenvalue for small
    parameter spaces, or a state variable for reduced models).
    """

    @abc.abstractmethod
    def loss(self, params: PyTree[Array]) -> Scalar:
        """The loss at `params`."""

    @abc.abstractmethod
    def sharpness(self, params: PyTree[Array]) -> Scalar:
        """The sharpness (largest Hessian eigenvalue, or the model's proxy) at
        `params`."""


class Trajectory(eqx.Module):
    """What `simulate` returns.

    - `history`: a dict of arrays with one row per step: `step`, `loss`,
      `grad_sq_norm`, `sharpness`, `directional_curvature` (`g^T H g / ||g||^2`
      along the step's gradient `g`, exact; NaN at a zero gradient), `stepsize`,
      `stepsize_x_sharpness`, `stepsize_x_directional_curvature`, all at the
      parameters *before* the step, and the tuner's `info` keys.
    - `params`: the parameters before each step, stacked along a leading axis.
    - `final_params`: the parameters after the last step.
    - `batches`: `None` for `simulate`; for `simulate_minibatch`, the example
      indices of each step's mini-batch, shape `(num_steps, batch_size)` (its
      `history` has further keys, listed there).
    """

    history: dict[str, Array]
    params: PyTree[Array]
    final_params: PyTree[Array]
    batches: Array | None = None


def tuner_step(tuner: AbstractTuner, fn, params, state):
    """One tuner step on `fn` at `params`, as `eqtuners.train` takes it: the value
    and the gradient, and for an `AbstractCurvatureTuner` the curvature along the
    gradient from the same pass, given to `step`. Returns `(value, grad,
    curvature, stepsize, state, info)`, `curvature` the exact `g^T H g / ||g||^2`
    (by forward-over-forward differentiation; NaN at a zero gradient)."""
    if isinstance(tuner, AbstractCurvatureTuner):
        value, grad, curvature = value_grad_and_curvature_along_grad(fn, params)
        known = {"curvature": curvature}
    else:
        value, grad = jax.value_and_grad(fn)(params)
        curvature = curvature_along(fn, params, grad)
        known = {}
    stepsize, state, info = tuner.step(fn, params, value, grad, state, **known)
    return value, grad, curvature, stepsize, state, info


def _run(model, tuner, params, num_steps):
    def body(carry, _):
        params, state, step = carry
        value, grad, curvature, stepsize, state, info = tuner_step(
            tuner, model.loss, params, state
        )
        sharpness = model.sharpness(params)
        row = {
            "step": step,
            "loss": value,
            "grad_sq_norm": tree_dot(grad, grad),
            "sharpness": sharpness,
            "directional_curvature": curvature,
            "stepsize": stepsize,
            "stepsize_x_sharpness": stepsize * sharpness,
            "stepsize_x_directional_curvature": stepsize * curvature,
            **info,
        }
        new_params = tree_axpy(-stepsize, grad, params)
        return (new_params, state, step + 1), (row, params)

    carry = (params, tuner.init(params), jnp.asarray(0))
    (final_params, _, _), (history, path) = lax.scan(body, carry, length=num_steps)
    return Trajectory(history=history, params=path, final_params=final_params)


_scan = eqx.filter_jit(
    eqx.debug.assert_max_traces(_run, max_traces=None)  # tests read the count
)


@eqx.filter_jit
@eqx.debug.assert_max_traces(max_traces=None)
def _scan_stacked(model, tuners, params, num_steps):
    def one(tuner):
        return _run(model, tuner, params, num_steps)

    return eqx.filter_vmap(one)(tuners)


def simulate(
    model: AbstractDynamicsModel,
    tuner: AbstractTuner,
    params: PyTree[Array],
    num_steps: int,
) -> Trajectory:
    """Runs `num_steps` steps of gradient descent on `model` with `tuner`'s steps.

    The whole run is one compiled `lax.scan`. Model and tuner hyperparameters are
    traced, so new values of them (or of `params`) reuse the compiled loop; a new
    model or tuner class, new shapes or a new `num_steps` recompile. Nothing stops
    a diverging run: its losses become infinite or NaN.

    **Arguments:**

    - `model`: an `AbstractDynamicsModel`.
    - `tuner`: any `eqtuners.AbstractTuner` (`Constant`, `Armijo`, `Polyak`,
      `CDAT`, the non-monotone searches, ...), or an `eqtuners.Stack` of `R`
      tuners of one type (`eqtuners.stack`), all run from `params` in one compile
      (`vmap`).
    - `params`: the starting parameters.
    - `num_steps`: the number of steps, >= 1.

    **Returns:** a `Trajectory`; for a stack, every array of it has a leading axis
    of size `R`, one entry per tuner.
    """
    if not isinstance(model, AbstractDynamicsModel):
        raise ValueError(
            f"`model` must be an AbstractDynamicsModel, got {type(model)}."
        )
    stacked = isinstance(tuner, Stack) and isinstance(tuner.tree, AbstractTuner)
    if not (stacked or isinstance(tuner, AbstractTuner)):
        raise ValueError(
            "`tuner` must be an eqtuners AbstractTuner or a Stack of them, got "
            f"{tuner!r}."
        )
    num_steps = checked_int("num_steps", num_steps)
    if stacked:
        return _scan_stacked(model, tuner.tree, params, num_steps)
    return _scan(model, tuner, params, num_steps)
