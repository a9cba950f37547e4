"""The interface shared by the sharpness estimators, and the tracker state.

An estimator finds the top of the Hessian spectrum of an objective from
Hessian-vector products alone, starting from a unit vector: `run(fn, params, start)
-> (estimate, eigenvector, info)`. To follow the sharpness along a training run, the
loop keeps a `SharpnessState` (the last eigenvector and estimate) in its carry and
calls `update`, which starts from that eigenvector when the estimator is warm-started
and from a fresh random direction otherwise (and always the first time, or after a
measurement that was not finite). The state has the structure, shapes and dtypes of
`init(params)` forever, so tracking never recompiles the loop.
"""

import abc
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray, PyTree, Scalar

from .._tree import tree_dot, tree_dtype
from ._hvp import random_direction

SharpnessInfo = dict[str, Array]


class SharpnessState(eqx.Module):
    """What a sharpness tracker carries from one measurement to the next.

    - `eigenvector`: the last estimate's unit eigenvector, shaped like the
      parameters (zeros before the first measurement).
    - `estimate`: the last estimate (NaN before the first measurement).
    """

    eigenvector: PyTree[Array]
    estimate: Scalar


class AbstractSharpnessEstimator(eqx.Module):
    """An estimator of the top Hessian eigenvalue from Hessian-vector products.

    Concrete estimators implement `run`; `init` and `update` carry a warm start
    between measurements.
    """

    warm_start: eqx.AbstractVar[bool]

    @abc.abstractmethod
    def run(
        self,
        fn: Callable[[PyTree[Array]], Scalar],
        params: PyTree[Array],
        start: PyTree[Array],
    ) -> tuple[Scalar, PyTree[Array], SharpnessInfo]:
        """Estimates the top eigenvalue of the Hessian of `fn` at `params`.

        **Arguments:**

        - `fn`: the objective, `params -> scalar`.
        - `params`: where to measure.
        - `start`: the starting vector, a unit vector shaped like `params`.

        **Returns:** `(estimate, eigenvector, info)`, where `eigenvector` is a unit
        vector shaped like `params` and `info` is a dict of arrays with fixed keys,
        `num_hvps` (the Hessian-vector products used), `converged` (whether the
        stopping rule was met), `residual` (`||H v - estimate v||` for the returned
        eigenvector `v`) and `top_k` (the `k` top eigenvalues found, largest first,
        with `top_k[0] == estimate`; `k` is fixed by the estimator).
        """

    def init(self, params: PyTree[Array]) -> SharpnessState:
        """The tracker state before the first measurement."""
        return SharpnessState(
            eigenvector=jax.tree.map(jnp.zeros_like, params),
            estimate=jnp.full((), jnp.nan, tree_dtype(params)),
        )

    def update(
        self,
        fn: Callable[[PyTree[Array]], Scalar],
        params: PyTree[Array],
        state: SharpnessState,
        key: PRNGKeyArray,
    ) -> tuple[Scalar, SharpnessState, SharpnessInfo]:
        """One measurement along a run: `run` from the warm start or from a random
        direction drawn with `key`.

        **Returns:** `(estimate, state, info)`, the state holding this measurement.
        """
        start = random_direction(key, params)
        if self.warm_start:
            previous = state.eigenvector
            warm = jnp.isfinite(state.estimate) & (tree_dot(previous, previous) > 0)
            start = jax.tree.map(lambda a, b: jnp.where(warm, a, b), previous, start)
        estimate, eigenvector, info = self.run(fn, params, start)
        return estimate, SharpnessState(eigenvector, estimate), info
