"""Sharpness: the top of the objective's Hessian spectrum, from Hessian-vector products.

Hessian-vector products are computed forward over reverse (`jax.jvp` of `jax.grad`),
about two or three gradients each, without forming the Hessian; an objective
evaluated in chunks of examples gives products in the same chunks (or they come from
an `operator`, `hessian_operator`, that linearises the gradient once for many
products). Five estimators work on them, all behind `sharpness(fn, params,
method=...)` and, by the same names, `train(..., measure=Measurements(estimator=...))`:

- `"power"` (the default): the paper's power iteration, `PowerIteration`: the
  eigenvalue of largest *magnitude*, stopped when the estimate changes by less than
  1e-3 relative, or after 1000 products.
- `"lanczos"`: `Lanczos` with full reorthogonalisation: the *largest algebraic*
  eigenvalue, its eigenvector and the next `k - 1` eigenvalues, stopped on the
  residual `||Hv - lambda v|| <= tol * |lambda|`. It needs a small fraction of
  the products of power iteration, fewer again when warm-started from the previous
  eigenvector (`init`).
- `"lobpcg"`: `LOBPCG`, a block of vectors (2 by default): the largest algebraic
  eigenvalues, stopped on the same residual rule, warm-started from the whole
  previous block, so that two top eigenvalues that trade places between
  measurements are told apart, and a repeated eigenvalue is seen with its
  multiplicity. It costs `block_size` products per iteration: on the paper's MLP
  it needs more products than warm-started Lanczos (see `LOBPCG`).
- `"recycled"`: `RecycledRitz`, Rayleigh-Ritz on the previous measurement's Ritz
  vectors and the training step's gradient (in `train`), expanded by residuals
  until the same residual rule holds: tracking from the vectors a run already has,
  telling swapped top eigenvalues apart as LOBPCG does, one product per new
  vector.
- `"directional"`: `DirectionalCurvature`, the curvature along one direction,
  `d^T H d / ||d||^2` (one product); by default along the gradient of `fn`.

The two eigenvalue estimators differ when a negative eigenvalue is larger in
magnitude than the largest positive one: power iteration then returns the negative
one. Gradient descent's stability is about the largest algebraic eigenvalue.

Every estimator's `info["converged"]` is true only when the returned pair has a
small residual relative to the estimate (see `AbstractSharpnessEstimator`); power
iteration keeps the paper's stopping rule, and reports a stop with a large
residual as not converged.

Inside `train`, an estimator is run on a schedule, and its state (`init(params)`:
the last eigenvector and estimate, or block) lives in the loop's carry for warm
starts.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray, PyTree, Scalar

from .._tree import tree_norm
from .._validation import checked_float, checked_int, checked_params
from ._base import AbstractSharpnessEstimator, SharpnessInfo
from ._hvp import normalise
from ._operator import as_operator
from .directional import DirectionalCurvature
from .lanczos import Lanczos
from .lobpcg import LOBPCG
from .power import PowerIteration
from .recycled import RecycledRitz

METHODS = ("power", "lanczos", "lobpcg", "recycled", "directional")


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
    operator=None,  # checked by `as_operator`, whose message names it
) -> tuple[Scalar, SharpnessInfo]:
    """The top Hessian eigenvalue of `fn` at `params` (see the module docstring).

    **Arguments:**

    - `fn`: the objective, `params -> scalar`.
    - `params`: where to measure: a pytree of floating-point arrays (e.g. `params`
      of `eqx.partition(model, eqx.is_inexact_array)`), in any floating dtype.
    - `method`: `"power"` (the paper's power iteration; the default), `"lanczos"`,
      `"lobpcg"`, `"recycled"`, `"directional"`, or an estimator
      (`PowerIteration(...)`, `Lanczos(...)`, `LOBPCG(...)`, `RecycledRitz(...)`,
      `DirectionalCurvature(...)`), which then carries its own `tol`, `max_iters`
      and `k`.
    - `key`: draws the starting vector(s) not given by `init` (default
      `jax.random.key(0)`).
    - `init`: a nonzero starting vector shaped like `params`, e.g. the eigenvector of
      a previous measurement (a warm start; for `"lobpcg"`, the first vector of the
      block). For `"directional"`, the direction (default: the gradient of `fn` at
      `params`).
    - `tol`: `"power"`: the relative change in the estimate below which iteration
      stops (default 1e-3); `"lanczos"`, `"lobpcg"`, `"recycled"`: the relative
      residual (default 1e-3).
    - `max_iters`: `"power"`, `"lanczos"`: the most Hessian-vector products
      (default 1000 for `"power"`, 100 for `"lanczos"`, whose basis holds that many
      vectors); `"lobpcg"`: the most iterations (default 100), each one product per
      vector of the block; `"recycled"`: the most products (default 40, the size
      of its basis).
    - `k`: `"lanczos"`, `"lobpcg"`, `"recycled"`: the number of top eigenvalues
      (default 1; the block holds `max(k, 2)` vectors for `"lobpcg"`, `max(k, 3)`
      for `"recycled"`).
    - `operator`: the Hessian of `fn` at `params` to take the products from, e.g.
      `hessian_operator(fn, params)` (one linearisation of the gradient, shared
      with other measurements at the same point); `None` (the default): fresh
      products (forward over reverse) of `fn`.

    **Returns:** `(estimate, info)`. `info` has `num_hvps` (the products used),
    `converged` (whether the returned pair has a small relative residual),
    `residual` (`||Hv - estimate v||`), `top_k` (the `k` largest eigenvalues,
    largest first; for `"power"` and `"directional"`, the estimate alone) and
    `eigenvector` (`v`, a unit vector shaped like `params`).

    **Raises:** `ValueError` for an unknown method, a setting that does not apply to
    it or is out of range, an `init` that is zero or not shaped like `params`, an
    `operator` that is not an `AbstractHessianOperator`, or `params` holding a leaf
    that is not a floating-point array.
    """
    checked_params("params", params)
    estimator = make_estimator(method, tol=tol, max_iters=max_iters, k=k)
    start = None if init is None else normalise(_checked_init(init, params))
    key = jax.random.key(0) if key is None else key
    if operator is not None:
        as_operator(fn, params, operator)  # checks its type
    estimate, eigenvector, info = estimator.run(
        fn, params, start, key=key, operator=operator
    )
    return estimate, info | {"eigenvector": eigenvector}


def make_estimator(
    method: str | AbstractSharpnessEstimator,
    *,
    tol=None,
    max_iters: int | None = None,
    k: int | None = None,
    prefix: str = "",
) -> AbstractSharpnessEstimator:
    """The estimator named `method` (one of `METHODS`) with the stopping rule given
    (`None`: the defaults of `sharpness`), or `method` itself when it is an
    estimator and nothing else is given. Error messages name the arguments with
    `prefix` (`train` uses `sharpness_`).

    **Raises:** `ValueError` naming the argument for an unknown method, a setting
    that does not apply to the method, or a value out of range.
    """
    given = {"tol": tol, "max_iters": max_iters, "k": k}
    if isinstance(method, AbstractSharpnessEstimator):
        extra = [name for name, value in given.items() if value is not None]
        if extra:
            raise ValueError(
                f"`{prefix}{extra[0]}` cannot be given with an estimator as "
                f"`{prefix}method`; set it on the estimator."
            )
        return method
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(
            f"`{prefix}method` must be one of {METHODS} or an estimator "
            f"(PowerIteration, Lanczos, LOBPCG, RecycledRitz, DirectionalCurvature), "
            "got "
            f"{method!r}."
        )
    if method == "directional":
        extra = [name for name, value in given.items() if value is not None]
        if extra:
            raise ValueError(
                f"`{prefix}{extra[0]}` does not apply to method='directional'."
            )
        return DirectionalCurvature()
    # Checked here, so that errors name the caller's arguments.
    tol = checked_float(
        f"{prefix}tol", 1e-3 if tol is None else tol, lower=0.0, lower_open=False
    )
    if method == "power":
        if k is not None:
            raise ValueError(
                f"`{prefix}k` is for method='lanczos', 'lobpcg' or 'recycled' only."
            )
        max_iters = checked_int(
            f"{prefix}max_iters", 1000 if max_iters is None else max_iters
        )
        return PowerIteration(tol, max_iters)
    if method == "lobpcg":
        max_iters = checked_int(
            f"{prefix}max_iters", 100 if max_iters is None else max_iters, lower=0
        )
        k = checked_int(f"{prefix}k", 1 if k is None else k)
        return LOBPCG(max(k, 2), tol, max_iters, k)
    if method == "recycled":
        k = checked_int(f"{prefix}k", 1 if k is None else k)
        block_size = max(k, 3)
        max_iters = checked_int(
            f"{prefix}max_iters",
            40 if max_iters is None else max_iters,
            lower=block_size + 1,
        )
        return RecycledRitz(block_size, tol, max_iters, k)
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
