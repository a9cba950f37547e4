"""The interface shared by all step-size tuners.

A tuner chooses the step size of one gradient step, `w <- w - stepsize * grad`. It is
a pure `eqx.Module` whose hyperparameters are scalar array leaves, so a stack of
tuners (`eqtuners.stack`) can be `eqx.filter_vmap`ped and a new hyperparameter value
does not recompile anything. Its state is a small pytree whose structure, shapes and
dtypes are fixed by `init`.

A concrete tuner implements three methods: `init`, `propose` (its rule) and
`validated` (its constructor's checks, run again on its current fields). Users call
`step`, which is shared by every tuner and guards the rule:

- `params` must hold only floating-point leaves (a `ValueError` names the leaf);
- a non-finite input (`value`, or any entry of `grad`, NaN or infinite) never becomes
  a step: the step size is 0, the state is left as it was, and
  `info["nonfinite_input"]` is true. The rule is still called, with `value = NaN` and
  a zero gradient, so that its `info` has the same keys and says what the rule does
  with an unusable objective (Armijo: a failed search with no evaluation).

**Tuners that read the curvature.** A tuner whose rule needs the curvature along the
gradient, `g^T H g / ||g||^2` (CDAT), subclasses `AbstractCurvatureTuner` instead:
its `propose` takes that curvature as a keyword argument. `step` passes it on: the
`curvature` given to `step` (the training loop computes it with the value and the
gradient, sharing their forward pass), or, when none is given (the optax adaptor,
the analysis simulators), computed from `fn` along the gradient (`_curvature.py`:
forward-over-forward differentiation, cheaper than a Hessian-vector product). A
curvature that is NaN or infinite at a nonzero gradient is a non-finite input like
the others; at a zero gradient the curvature is undefined (NaN) and is no error.
"""

import abc
import functools
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Bool, PyTree, Scalar, ScalarLike

from .._tree import tree_dot, tree_dtype
from .._validation import checked_params
from ._curvature import curvature_along

TunerInfo = dict[str, Array]

# The key that `AbstractTuner.step` adds to every tuner's `info`.
NONFINITE_INPUT = "nonfinite_input"


def tree_all_finite(tree: PyTree[Array]) -> Bool[Array, ""]:
    """Whether every entry of every leaf of `tree` is finite."""
    leaves = [jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


class AbstractTuner(eqx.Module):
    """A step-size tuner: `init(params) -> state` then, every step,
    `step(fn, params, value, grad, state) -> (stepsize, state, info)`.

    Subclasses implement `init`, `propose` and `validated`; `step` is shared.
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
    def propose(
        self,
        fn: Callable[[PyTree[Array]], ScalarLike] | None,
        params: PyTree[ArrayLike],
        value: ScalarLike,
        grad: PyTree[ArrayLike],
        state: PyTree[Array],
    ) -> tuple[Scalar, PyTree[Array], TunerInfo]:
        """The tuner's rule, called by `step` (arguments and returns as for `step`).

        `step` passes a finite gradient; on a non-finite input it passes
        `value = NaN` and a zero gradient and discards the returned step size and
        state, so a rule must not evaluate `fn` when `value` is not finite. `info`
        must have the same keys, shapes and dtypes whatever the inputs and options.
        """

    @abc.abstractmethod
    def validated(self) -> "AbstractTuner":
        """Returns the tuner rebuilt by its constructor from its current fields.

        A tuner built by its constructor is checked there; one built otherwise (under
        a transform, where values are tracers, or by `eqx.tree_at`) is checked only
        by this. `eqtuners.stack` calls it on every member.

        **Raises:** the constructor's `ValueError`, naming the argument.
        """

    def step(
        self,
        fn: Callable[[PyTree[Array]], ScalarLike] | None,
        params: PyTree[ArrayLike],
        value: ScalarLike,
        grad: PyTree[ArrayLike],
        state: PyTree[Array],
        *,
        curvature: ScalarLike | None = None,
    ) -> tuple[Scalar, PyTree[Array], TunerInfo]:
        """Chooses the step size at `params`.

        **Arguments:**

        - `fn`: the objective on the same batch as `value` and `grad` (may be `None`
          for tuners that never evaluate it: `Constant`, `Polyak`, and an
          `AbstractCurvatureTuner` given `curvature`).
        - `params`: the current parameters (floating-point leaves only).
        - `value`: `fn(params)`.
        - `grad`: the gradient of `fn` at `params`.
        - `state`: the state returned by `init` or by the previous `step`.
        - `curvature`: for an `AbstractCurvatureTuner`, the curvature of `fn` along
          `grad`, `g^T H g / ||g||^2` (a scalar, in units of the objective per
          squared parameter unit; NaN at a zero gradient), if already known;
          `None` computes it from `fn` (two forward tangent passes). Other tuners
          ignore it.

        **Returns:** `(stepsize, state, info)`: the step size in the parameters'
        dtype, the new state, and a dict of scalars whose keys depend only on the
        tuner's type: the rule's keys and `"nonfinite_input"` (whether `value`,
        `grad` or, for a curvature tuner, the curvature at a nonzero gradient was
        NaN or infinite; then the step size is 0 and the state is unchanged).

        **Raises:** `ValueError` if a leaf of `params` is not floating-point, or if
        an `AbstractCurvatureTuner` is given neither `curvature` nor `fn`.
        """
        checked_params("params", params)
        dtype = tree_dtype(params)
        value = jnp.asarray(value)
        finite = jnp.isfinite(value) & tree_all_finite(grad)
        rule = self.propose
        if isinstance(self, AbstractCurvatureTuner):
            if curvature is None:
                if fn is None:
                    raise ValueError(
                        f"{type(self).__name__} needs the curvature along the "
                        "gradient: pass `curvature=` to `step`, or the objective "
                        "`fn` to compute it from."
                    )
                along = jax.tree.map(lambda g: jnp.where(finite, g, 0), grad)
                curvature = curvature_along(fn, params, along)
            curvature = jnp.asarray(curvature)
            nonzero = tree_dot(grad, grad) > 0
            finite = finite & (jnp.isfinite(curvature) | ~nonzero)
            rule = functools.partial(
                self.propose, curvature=jnp.where(finite, curvature, jnp.nan)
            )
        safe_value = jnp.where(finite, value, jnp.nan)
        safe_grad = jax.tree.map(lambda g: jnp.where(finite, g, 0), grad)
        stepsize, new_state, info = rule(fn, params, safe_value, safe_grad, state)
        stepsize = jnp.where(finite, stepsize, 0).astype(dtype)
        new_state = jax.tree.map(
            lambda new, old: jnp.where(finite, new, old), new_state, state
        )
        return stepsize, new_state, {**info, NONFINITE_INPUT: ~finite}


class AbstractCurvatureTuner(AbstractTuner):
    """A tuner whose rule reads the curvature of the objective along the gradient,
    `kappa = g^T H g / ||g||^2`: subclassing this class is the declaration.

    Its `propose` takes that curvature as the keyword argument `curvature` (a
    scalar; NaN only at a zero gradient), which `step` supplies (see the module
    docstring). `eqtuners.train` sees the declaration and computes the curvature
    with the value and the gradient, by forward-over-forward differentiation along
    the gradient that shares their forward pass: cheaper than a Hessian-vector
    product, even one from the gradient's own linearisation.
    """

    @abc.abstractmethod
    def propose(
        self,
        fn: Callable[[PyTree[Array]], ScalarLike] | None,
        params: PyTree[ArrayLike],
        value: ScalarLike,
        grad: PyTree[ArrayLike],
        state: PyTree[Array],
        *,
        curvature: Scalar,
    ) -> tuple[Scalar, PyTree[Array], TunerInfo]:
        """The tuner's rule (as `AbstractTuner.propose`), given the curvature along
        `grad`."""
