"""One simulator for every model of the joint step-size/sharpness dynamics.

A model is a loss on a small parameter pytree and a way to read its sharpness there.
`simulate` runs gradient descent on it with the step size of any `eqtuners` tuner,

    stepsize_t, state = tuner.step(model.loss, w_t, f(w_t), grad f(w_t), state)
    w_{t+1} = w_t - stepsize_t * grad f(w_t),

as one jitted `lax.scan`, and records per step the loss, the sharpness and the step
size at `w_t`. Both the second-order regression model (exact in parameter space) and
the reduced self-stabilisation dynamics (whose two variables are its parameters) go
through this loop; so does the top-eigenmode quadratic.
"""

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, PyTree, Scalar

from eqtuners import AbstractTuner
from eqtuners.internal import checked_int, tree_axpy, tree_dot


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
      `grad_sq_norm`, `sharpness`, `stepsize`, `stepsize_x_sharpness`, all measured
      at the parameters *before* the step, and the tuner's `info` keys.
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


@eqx.filter_jit
@eqx.debug.assert_max_traces(max_traces=None)  # counts compiles; tests read the count
def _scan(model, tuner, params, num_steps):
    def body(carry, _):
        params, state, step = carry
        value, grad = jax.value_and_grad(model.loss)(params)
        stepsize, state, info = tuner.step(model.loss, params, value, grad, state)
        sharpness = model.sharpness(params)
        row = {
            "step": step,
            "loss": value,
            "grad_sq_norm": tree_dot(grad, grad),
            "sharpness": sharpness,
            "stepsize": stepsize,
            "stepsize_x_sharpness": stepsize * sharpness,
            **info,
        }
        new_params = tree_axpy(-stepsize, grad, params)
        return (new_params, state, step + 1), (row, params)

    carry = (params, tuner.init(params), jnp.asarray(0))
    (final_params, _, _), (history, path) = lax.scan(body, carry, length=num_steps)
    return Trajectory(history=history, params=path, final_params=final_params)


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
    - `tuner`: any `eqtuners.AbstractTuner` (`Constant`, `Armijo`, `Polyak`, ...).
    - `params`: the starting parameters.
    - `num_steps`: the number of steps, >= 1.

    **Returns:** a `Trajectory`.
    """
    if not isinstance(model, AbstractDynamicsModel):
        raise ValueError(
            f"`model` must be an AbstractDynamicsModel, got {type(model)}."
        )
    if not isinstance(tuner, AbstractTuner):
        raise ValueError(f"`tuner` must be an eqtuners AbstractTuner, got {tuner!r}.")
    num_steps = checked_int("num_steps", num_steps)
    return _scan(model, tuner, params, num_steps)
