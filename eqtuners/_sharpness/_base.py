"""The interface shared by the sharpness estimators, and the tracker states.

An estimator finds the top of the Hessian spectrum of an objective from
Hessian-vector products alone. `run(fn, params, start, key=...)` measures once, from
a unit vector `start` (or a random direction drawn with `key`). To follow the
sharpness along a training run, the loop keeps the estimator's state (`init(params)`)
in its carry and calls `update(fn, params, state, key)`, which starts from what the
state holds when the estimator is warm-started and from random directions otherwise
(and always the first time, or after a measurement that was not finite). A state has
the structure, shapes and dtypes of `init(params)` forever, so tracking never
recompiles the loop.

Both take the products from `operator`, an `AbstractHessianOperator` of `fn` at
`params` (`hessian_operator`: one linearisation that the loop shares between every
measurement at a point), or make them afresh when it is `None`. `update` also
takes `grad`, the training step's gradient at `params`: a direction an estimator
may add to its start (`RecycledRitz` does; the others ignore it).

**What `converged` means.** Every estimator reports, beside its estimate `lambda`
and unit eigenvector `v`, the residual `||H v - lambda v||`, and `converged` is true
only when that residual is small relative to the estimate:

    ||H v - lambda v|| <= rtol * |lambda|

(with `rtol` the estimator's `tol` for Lanczos and LOBPCG, whose stopping rule is
this test, and its `residual_tol` for power iteration and the directional
curvature). A small relative residual `rho` guarantees that some eigenvalue lies
within `rho |lambda|` of `lambda` (and within `rho^2 |lambda|^2 / gap` when the
others are `gap` away), so `converged` certifies the returned pair as an
eigenpair. It does not certify that the eigenvalue is the *top* one: no method that
sees `H` through a few products can (a start orthogonal to the top eigenvector never
finds it).
"""

import abc
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray, PyTree, Scalar

from .._tree import tree_dot, tree_dtype
from .._validation import checked_params
from ._hvp import random_direction
from ._operator import AbstractHessianOperator

SharpnessInfo = dict[str, Array]


class SharpnessState(eqx.Module):
    """What a sharpness tracker carries from one measurement to the next.

    - `eigenvector`: the last estimate's unit eigenvector, shaped like the
      parameters (zeros before the first measurement).
    - `estimate`: the last estimate (NaN before the first measurement).
    - `others`: for a block estimator (`LOBPCG`), the other vectors of the last
      block, next to the top eigenvector: a pytree like the parameters with a
      leading axis of `block_size - 1` (zeros before the first measurement);
      `None` for the single-vector estimators.
    """

    eigenvector: PyTree[Array]
    estimate: Scalar
    others: PyTree[Array] | None = None


class AbstractSharpnessEstimator(eqx.Module):
    """An estimator of the top Hessian eigenvalue from Hessian-vector products.

    Concrete estimators implement `run` (one measurement) and `init` and `update`
    (tracking along a run, with a warm start when `warm_start` is true).
    """

    warm_start: eqx.AbstractVar[bool]
    k: eqx.AbstractVar[int]  # the eigenvalues in `info["top_k"]`

    @abc.abstractmethod
    def run(
        self,
        fn: Callable[[PyTree[Array]], Scalar],
        params: PyTree[Array],
        start: PyTree[Array] | None = None,
        *,
        key: PRNGKeyArray | None = None,
        operator: AbstractHessianOperator | None = None,
    ) -> tuple[Scalar, PyTree[Array], SharpnessInfo]:
        """Estimates the top eigenvalue of the Hessian of `fn` at `params`.

        **Arguments:**

        - `fn`: the objective, `params -> scalar`.
        - `params`: where to measure: a pytree of floating-point arrays.
        - `start`: the starting vector, a unit vector shaped like `params`; `None`
          draws a random one with `key`.
        - `key`: a JAX PRNG key for what is drawn at random (default
          `jax.random.key(0)`).
        - `operator`: the Hessian of `fn` at `params` to take the products from
          (`hessian_operator`); `None`: fresh products of `fn`.

        **Returns:** `(estimate, eigenvector, info)`, where `eigenvector` is a unit
        vector shaped like `params` and `info` is a dict of arrays with fixed keys,
        `num_hvps` (the Hessian-vector products used), `converged` (whether the
        returned pair has a small relative residual; see the module docstring),
        `residual` (`||H v - estimate v||` for the returned eigenvector `v`) and
        `top_k` (the `k` top eigenvalues found, largest first, with `top_k[0] ==
        estimate`; `k` is fixed by the estimator).

        **Raises:** `ValueError` when `params` holds a leaf that is not a
        floating-point array.
        """

    @abc.abstractmethod
    def init(self, params: PyTree[Array]) -> PyTree[Array]:
        """The tracker state before the first measurement: a pytree whose structure,
        shapes and dtypes `update` keeps."""

    @abc.abstractmethod
    def update(
        self,
        fn: Callable[[PyTree[Array]], Scalar],
        params: PyTree[Array],
        state: PyTree[Array],
        key: PRNGKeyArray,
        *,
        operator: AbstractHessianOperator | None = None,
        grad: PyTree[Array] | None = None,
    ) -> tuple[Scalar, PyTree[Array], SharpnessInfo]:
        """One measurement along a run, from the state's warm start or from random
        directions drawn with `key`.

        **Arguments:** `fn`, `params`, `key` and `operator` as for `run`; `state`
        from `init` or the previous `update`; `grad`: the training step's gradient
        at `params` (or `None`), which an estimator may use as a starting
        direction.

        **Returns:** `(estimate, state, info)`, the state holding this measurement
        and `info` as for `run`.
        """


def vector_state(params: PyTree[Array]) -> SharpnessState:
    """The `SharpnessState` before the first measurement: a zero eigenvector shaped
    like `params` and a NaN estimate."""
    return SharpnessState(
        eigenvector=jax.tree.map(jnp.zeros_like, params),
        estimate=jnp.full((), jnp.nan, tree_dtype(params)),
    )


class AbstractVectorEstimator(AbstractSharpnessEstimator):
    """An estimator that starts from one vector: its tracker state is a
    `SharpnessState`, and a warm start is the previous eigenvector."""

    def init(self, params: PyTree[Array]) -> SharpnessState:
        checked_params("params", params)
        return vector_state(params)

    def update(
        self, fn, params, state: SharpnessState, key, *, operator=None, grad=None
    ):
        checked_params("params", params)
        start = random_direction(key, params)
        if self.warm_start:
            previous = state.eigenvector
            warm = jnp.isfinite(state.estimate) & (tree_dot(previous, previous) > 0)
            start = jax.tree.map(lambda a, b: jnp.where(warm, a, b), previous, start)
        estimate, eigenvector, info = self.run(fn, params, start, operator=operator)
        estimate = estimate.astype(state.estimate.dtype)
        return estimate, SharpnessState(eigenvector, estimate), info
