"""Sharpness: the top of the objective's Hessian spectrum, from Hessian-vector products.

Hessian-vector products are computed forward over reverse (`jax.jvp` of `jax.grad`),
about two or three gradients each, without forming the Hessian; an objective
evaluated in chunks of examples gives products in the same chunks. Three estimators
work on them, all behind `sharpness(fn, params, method=...)`:

- `"power"` (the default): the paper's power iteration, `PowerIteration`: the
  eigenvalue of largest *magnitude*, stopped when the estimate changes by less than
  1e-3 relative, or after 1000 products.
- `"lanczos"`: `Lanczos` with full reorthogonalisation: the *largest algebraic*
  eigenvalue, its eigenvector and the next `k - 1` eigenvalues, stopped on the
  residual `||Hv - lambda v|| <= tol * |lambda|`. It needs a small fraction of
  the products of power iteration, fewer again when warm-started from the previous
  eigenvector (`init`).
- `"directional"`: the curvature along one direction, `d^T H d / ||d||^2` (one
  product); by default along the gradient of `fn`.

The two eigenvalue estimators differ when a negative eigenvalue is larger in
magnitude than the largest positive one: power iteration then returns the negative
one. Gradient descent's stability is about the largest algebraic eigenvalue.

Inside `train`, an estimator (`PowerIteration(...)` or `Lanczos(...)`) is run on a
schedule, and its state (the last eigenvector and estimate, `SharpnessState`) lives
in the loop's carry for warm starts.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray, PyTree, Scalar

from .._tree import tree_norm
from .._validation import checked_float, checked_int
from ._base import AbstractSharpnessEstimator, SharpnessInfo
from ._hvp import directional_curvature, normalise, random_direction
from .lanczos import Lanczos
from .power import PowerIteration

METHODS = ("power", "lanczos", "directional")


def sharpness(
    fn: Callable[[PyTree[Array]], Scalar],
    params: PyTree[Array],
    *,
    method: str | AbstractSharpnessEstimator = "power",
    key: PRNGKeyArray | None = None,
    init: PyTree[Array] | None = None,
    tol: float | None = None,
    max_iters: int | None = None,
    k: int | None = None,
) -> tuple[Scalar, SharpnessInfo]:
    """The top Hessian eigenvalue of `fn` at `params` (see the module docstring).

    **Arguments:**

    - `fn`: the objective, `params -> scalar`.
    - `params`: where to measure.
    - `method`: `"power"` (the paper's power iteration; the default), `"lanczos"`,
      `"directional"`, or an estimator (`PowerIteration(...)`, `Lanczos(...)`),
      which then carries its own `tol`, `max_iters` and `k`.
    - `key`: draws the starting vector when `init` is not given (default
      `jax.random.key(0)`).
    - `init`: a nonzero starting vector shaped like `params`, e.g. the eigenvector of
      a previous measurement (a warm start). For `"directional"`, the direction
      (default: the gradient of `fn` at `params`).
    - `tol`: `"power"`: the relative change in the estimate below which iteration
      stops (default 1e-3); `"lanczos"`: the relative residual (default 1e-3).
    - `max_iters`: the most Hessian-vector products (default 1000 for `"power"`, 100
      for `"lanczos"`, whose basis holds that many vectors).
    - `k`: `"lanczos"` only: the number of top eigenvalues (default 1).

    **Returns:** `(estimate, info)`. `info` has `num_hvps` (the products used),
    `converged` (whether the stopping rule was met), `residual` (`||Hv - estimate
    v||`) and `eigenvector` (`v`, a unit vector shaped like `params`); the
    estimators add `top_k`: for `"lanczos"`, the `k` largest eigenvalues, largest
    first; for `"power"`, the estimate alone.
    """
    if isinstance(method, str) and method not in METHODS:
        raise ValueError(
            f"`method` must be one of {METHODS} or an estimator, got {method!r}."
        )
    if isinstance(method, str) and method == "directional":
        if tol is not None or max_iters is not None or k is not None:
            raise ValueError(
                "`tol`, `max_iters` and `k` do not apply to method='directional'."
            )
        if init is None:
            return directional_curvature(fn, params, jax.grad(fn)(params))
        return directional_curvature(fn, params, _checked_init(init, params))
    estimator = make_estimator(method, tol=tol, max_iters=max_iters, k=k)
    if init is None:
        start = random_direction(jax.random.key(0) if key is None else key, params)
    else:
        start = normalise(_checked_init(init, params))
    estimate, eigenvector, info = estimator.run(fn, params, start)
    return estimate, info | {"eigenvector": eigenvector}


def make_estimator(
    method: str | AbstractSharpnessEstimator,
    *,
    tol=None,
    max_iters: int | None = None,
    k: int | None = None,
    prefix: str = "",
) -> AbstractSharpnessEstimator:
    """The estimator `"power"` or `"lanczos"` with the stopping rule given (`None`:
    the defaults), or `method` itself when it is an estimator and nothing else is
    given. Error messages name the arguments with `prefix` (`train` uses
    `sharpness_`)."""
    if isinstance(method, AbstractSharpnessEstimator):
        given = {"tol": tol, "max_iters": max_iters, "k": k}
        extra = [name for name, value in given.items() if value is not None]
        if extra:
            raise ValueError(
                f"`{prefix}{extra[0]}` cannot be given with an estimator as "
                f"`{prefix}method`; set it on the estimator."
            )
        return method
    if method not in ("power", "lanczos"):
        raise ValueError(
            f"`{prefix}method` must be 'power', 'lanczos' or an estimator "
            f"(PowerIteration, Lanczos), got {method!r}."
        )
    # Checked here, so that errors name the caller's arguments.
    tol = checked_float(
        f"{prefix}tol", 1e-3 if tol is None else tol, lower=0.0, lower_open=False
    )
    if method == "power":
        if k is not None:
            raise ValueError(f"`{prefix}k` is for method='lanczos' only.")
        max_iters = checked_int(
            f"{prefix}max_iters", 1000 if max_iters is None else max_iters
        )
        return PowerIteration(tol, max_iters)
    max_iters = checked_int(
        f"{prefix}max_iters", 100 if max_iters is None else max_iters
    )
    k = checked_int(f"{prefix}k", 1 if k is None else k, upper=max_iters)
    return Lanczos(max_iters, tol, k)


def _checked_init(init, params):
    """`init`, after checking it is a nonzero vector shaped like `params`."""
    same = jax.tree.structure(init) == jax.tree.structure(params) and all(
        jnp.shape(a) == jnp.shape(b)
        for a, b in zip(jax.tree.leaves(init), jax.tree.leaves(params))
    )
    if not same:
        raise ValueError("`init` must have the structure and shapes of `params`.")
    norm = tree_norm(init)
    if not isinstance(norm, jax.core.Tracer) and not norm > 0:
        raise ValueError(
            f"`init` must be a nonzero, finite vector; its norm is {norm}."
        )
    return init
