"""The interface shared by all step-size tuners.

A tuner chooses the step size of one gradient step, `w <- w - stepsize * grad`. It is
a pure `eqx.Module` whose hyperparameters are array leaves, so a stack of tuners can
be `eqx.filter_vmap`ped and a new hyperparameter value does not recompile anything.
Its state is a small pytree whose structure, shapes and dtypes are fixed by `init`.
"""

import abc
from collections.abc import Callable

import equinox as eqx
from jaxtyping import Array, PyTree, Scalar

TunerInfo = dict[str, Array]


class AbstractTuner(eqx.Module):
    """A step-size tuner: `init(params) -> state` then, every step,
    `step(fn, params, value, grad, state) -> (stepsize, state, info)`.
    """

    @abc.abstractmethod
    def init(self, params: PyTree[Array]) -> PyTree[Array]:
        """Returns the initial state.

        **Arguments:**

        - `params`: the parameters the tuner will step (only their structure and
          dtypes are used).

        **Returns:** a pytree whose structure, shapes and dtypes `step` preserves.
        """

    @abc.abstractmethod
    def step(
        self,
        fn: Callable[[PyTree[Array]], Scalar],
        params: PyTree[Array],
        value: Scalar,
        grad: PyTree[Array],
        state: PyTree[Array],
    ) -> tuple[Scalar, PyTree[Array], TunerInfo]:
        """Chooses the step size at `params`.

        **Arguments:**

        - `fn`: the objective on the same batch as `value` and `grad`.
        - `params`: the current parameters.
        - `value`: `fn(params)`.
        - `grad`: the gradient of `fn` at `params`.
        - `state`: the state returned by `init` or by the previous `step`.

        **Returns:** `(stepsize, state, info)`, where `info` is a dict of scalars with
        the same keys at every step.
        """
