import abc
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, Bool, Float, Int

from .._tree import tree_dtype, tree_norm
from .._validation import checked_float, checked_int, checked_params
from ._base import AbstractSharpnessEstimator, SharpnessState
from ._hvp import flat_hessian, random_direction
from ._operator import as_operator

_HIGHEST = lax.Precision.HIGHEST


def _mm(a, b):
    """A matrix product at full precision (no TF32 or bfloat16 passes on GPUs)."""
    return jnp.matmul(a, b, precision=_HIGHEST)


class LOBPCGResult(NamedTuple):
    """What `lobpcg` returns (flat vectors; `b` Ritz pairs, largest first)."""

    eigenvalues: Float[Array, " b"]  # NaN where the block has no direction left
    vectors: Float[Array, "n b"]  # orthonormal Ritz vectors (zero columns: none)
    residuals: Float[Array, " b"]  # ||A x_i - theta_i x_i||
    num_iters: Int[Array, ""]  # iterations after the first Rayleigh-Ritz step
    num_products: Int[Array, ""]  # columns given to `matmat`
    converged: Bool[Array, ""]  # the top k residuals are small
    history: Float[Array, " max_iters+1"]  # the top Ritz value after each iteration


def _rayleigh_ritz(basis, image):
    """The Ritz pairs of `A` on the span of `basis` (`n x m`), given `image = A
    basis`.

    The columns need not be orthonormal: zero and (numerically) dependent columns
    are dropped through the eigendecomposition of the Gram matrix `basis^T basis`
    (SVQB, Stathopoulos and Wu 2002), so shapes stay fixed whatever the rank.
    `transform` maps to an orthonormal basis of the kept directions, `basis @
    transform` (zero columns for the dropped ones); dropping the Gram eigenvalues
    below `sqrt(eps)` of the largest bounds the amplification of rounding in `image`
    by `eps^(-1/4)`. The dropped directions get Ritz values below every other (and
    `valid` false), so they come last.

    **Returns:** `(theta, vectors, transform, valid, gram)`, largest first: the Ritz
    vectors are `basis @ transform @ vectors`.
    """
    gram = _mm(basis.T, basis)
    gram = (gram + gram.T) / 2
    projected = _mm(basis.T, image)
    projected = (projected + projected.T) / 2
    mu, u = jnp.linalg.eigh(gram)
    keep = mu > jnp.sqrt(jnp.finfo(basis.dtype).eps) * jnp.max(mu)
    transform = u * jnp.where(keep, 1 / jnp.sqrt(jnp.where(keep, mu, 1)), 0)
    reduced = _mm(transform.T, _mm(projected, transform))
    bound = jnp.max(jnp.sum(jnp.abs(reduced), axis=1))  # Gershgorin
    reduced = reduced + jnp.diag(jnp.where(keep, 0, -2 * bound - 1))
    theta, vectors = jnp.linalg.eigh(reduced)
    valid = jnp.arange(theta.shape[0]) < jnp.sum(keep)
    return theta[::-1], vectors[:, ::-1], transform, valid, gram


def _project_out(vectors, basis):
    """`vectors` without their components along the orthonormal (or zero) columns
    of `basis`, twice ("twice is enough"), then at unit norm (zero stays zero)."""
    for _ in range(2):
        vectors = vectors - _mm(basis, _mm(basis.T, vectors))
    norms = jnp.linalg.norm(vectors, axis=0)
    return vectors / jnp.where(norms > 0, norms, 1)


def lobpcg(
    matmat, start, *, k: int, tol, max_iters: int, active: int | None = None
) -> LOBPCGResult:
    """LOBPCG (Knyazev 2001) for the largest algebraic eigenvalues of the symmetric
    operator `matmat` on blocks of flat vectors, `(n, c) -> (n, c)`.

    From the block `X` (the `b` Ritz vectors of the span of `start`), each iteration
    applies `matmat` once, to the residuals `W = A X - X Theta` of the first `active`
    columns of `X` (default: all `b`), and takes the top `b` Ritz pairs of `A` on
    `span(X, P, W)`, where `span(X, P)` is that of the current and the previous
    `X`. The images `A X` and `A P` are linear combinations of the stored images,
    so an iteration costs `active` products and no more. `P` is chosen in the
    coordinates of an orthonormal basis of `span(X, P, W)`, orthogonal to the new
    `X` (Hetmaniuk and Lehoucq 2006, "Basis selection in LOBPCG", J. Comput. Phys.
    218), so no cancellation enters `P` or `A P` once the iteration converges.
    Stops when each of the top `k` pairs has `||A x_i - theta_i x_i|| <= tol *
    |theta_i|` (checked first on the Ritz pairs of `span(start)`, at the cost of
    `b` products), at a non-finite value, or after `max_iters` iterations; compiles
    once for any stop.
    """
    b = start.shape[1]
    active = b if active is None else active
    tol = jnp.asarray(tol, start.dtype)

    def status(theta, valid, residuals):
        small = residuals[:k] <= tol * jnp.abs(theta[:k])
        converged = jnp.all(small & valid[:k])
        finite = jnp.all(jnp.isfinite(theta[:k]) & jnp.isfinite(residuals[:k]))
        return converged, converged | ~finite

    # Every vector of the block enters the first Rayleigh-Ritz step: a warm-start
    # top vector can be an exact eigenvector of the *second* eigenvalue (when two
    # swap), with a zero residual; only the guards reveal the new top one.
    image = matmat(start)
    theta, vectors, transform, valid, _ = _rayleigh_ritz(start, image)
    top = _mm(transform, vectors[:, :b])
    x, ax = _mm(start, top), _mm(image, top)
    theta, valid = theta[:b], valid[:b]
    r = jnp.where(valid, ax - x * theta, 0)
    converged, done = status(theta, valid, jnp.linalg.norm(r, axis=0))
    p = jnp.zeros_like(x)
    history = jnp.full(max_iters + 1, jnp.nan, theta.dtype).at[0].set(theta[0])

    def body(carry):
        i, x, ax, p, ap, _, _, r, _, _, history = carry
        w = _project_out(r[:, :active], jnp.concatenate([x, p], axis=1))
        basis = jnp.concatenate([x, p, w], axis=1)
        image = jnp.concatenate([ax, ap, matmat(w)], axis=1)
        theta, vectors, transform, valid, gram = _rayleigh_ritz(basis, image)
        top = vectors[:, :b]
        # In the orthonormal coordinates: the old X, less its part along the new
        # X, spans P; a QR of [new X, that] keeps P orthogonal to X even when the
        # difference is at rounding level (then P is any orthogonal direction).
        old = _mm(transform.T, gram[:, :b])
        difference = old - _mm(top, _mm(top.T, old))
        q = jnp.linalg.qr(jnp.concatenate([top, difference], axis=1))[0][:, b:]
        to_x, to_p = _mm(transform, top), _mm(transform, q)
        x, ax = _mm(basis, to_x), _mm(image, to_x)
        p, ap = _mm(basis, to_p), _mm(image, to_p)
        theta, valid = theta[:b], valid[:b]
        r = ax - x * theta
        converged, done = status(theta, valid, jnp.linalg.norm(r, axis=0))
        history = history.at[i + 1].set(theta[0])
        return i + 1, x, ax, p, ap, theta, valid, r, converged, done, history

    def keep_going(carry):
        i, *_, done, _ = carry
        return ~done & (i < max_iters)

    init = (jnp.array(0), x, ax, p, p, theta, valid, r, converged, done, history)
    i, x, _, _, _, theta, valid, r, converged, _, history = lax.while_loop(
        keep_going, body, init
    )
    num_products = b + active * i
    residuals = jnp.linalg.norm(r, axis=0)
    return LOBPCGResult(
        eigenvalues=jnp.where(valid, theta, jnp.nan),
        vectors=x,
        residuals=jnp.where(valid, residuals, jnp.nan),
        num_iters=i,
        num_products=num_products,
        converged=converged,
        history=history,
    )


def random_block(key, params, size: int):
    """`size` random unit vectors shaped like `params`, stacked on a leading axis
    (`random_direction` with keys split from `key`)."""
    keys = jax.random.split(key, size)
    return jax.vmap(lambda key: random_direction(key, params))(keys)


def start_block(params, state: SharpnessState, key):
    """The block a warm-started block estimator starts from: the carried block
    (`state.eigenvector` then `state.others`) when the state holds a finite
    estimate and nonzero vectors, else as many random directions drawn with
    `key` (the first measurement, or one after a non-finite estimate).

    **Returns:** a pytree like `params` with a leading axis of `1 +
    len(state.others)`.
    """
    previous = jax.tree.map(
        lambda v, o: jnp.concatenate([v[None], o]), state.eigenvector, state.others
    )
    size = jax.tree.leaves(previous)[0].shape[0]
    norms = jax.vmap(tree_norm)(previous)
    warm = jnp.isfinite(state.estimate) & jnp.all(norms > 0)
    block = random_block(key, params, size)
    return jax.tree.map(lambda a, b: jnp.where(warm, a, b), previous, block)


class AbstractBlockEstimator(AbstractSharpnessEstimator):
    """A sharpness estimator on a block of `block_size` vectors, warm-started from
    the block of the previous measurement (`start_block`): `init`, `update` and
    `run` shared by `LOBPCG` and `RecycledRitz`, which implement `_measure`."""

    block_size: eqx.AbstractVar[int]
    warm_start: eqx.AbstractVar[bool]

    @abc.abstractmethod
    def _measure(self, operator, block, grad):
        """From `block` (a pytree like `params` with a leading block axis) and the
        step's gradient (or `None`): `(estimate, block, info)`."""

    def run(self, fn, params, start=None, *, key=None, operator=None):
        """As `AbstractSharpnessEstimator.run`; the block is `start` (or a random
        direction) followed by `block_size - 1` random directions drawn with
        `key`."""
        checked_params("params", params)
        key = jax.random.key(0) if key is None else key
        block = random_block(key, params, self.block_size)
        if start is not None:
            block = jax.tree.map(lambda b, s: b.at[0].set(s), block, start)
        operator = as_operator(fn, params, operator)
        estimate, block, info = self._measure(operator, block, None)
        return estimate, jax.tree.map(lambda v: v[0], block), info

    def init(self, params) -> SharpnessState:
        checked_params("params", params)
        return SharpnessState(
            eigenvector=jax.tree.map(jnp.zeros_like, params),
            estimate=jnp.full((), jnp.nan, tree_dtype(params)),
            others=jax.tree.map(
                lambda p: jnp.zeros((self.block_size - 1, *p.shape), p.dtype), params
            ),
        )

    def update(
        self, fn, params, state: SharpnessState, key, *, operator=None, grad=None
    ):
        checked_params("params", params)
        if self.warm_start:
            block = start_block(params, state, key)
        else:
            block = random_block(key, params, self.block_size)
        operator = as_operator(fn, params, operator)
        estimate, block, info = self._measure(operator, block, grad)
        estimate = estimate.astype(state.estimate.dtype)
        top = jax.tree.map(lambda v: v[0], block)
        others = jax.tree.map(lambda v: v[1:], block)
        return estimate, SharpnessState(top, estimate, others), info


class LOBPCG(AbstractBlockEstimator):
    """LOBPCG on a block of vectors: the top `k` Hessian eigenvalues (largest
    algebraic), warm-started from a whole block.

    LOBPCG (Locally Optimal Block Preconditioned Conjugate Gradient; Knyazev 2001,
    "Toward the optimal preconditioned eigensolver", SIAM J. Sci. Comput. 23(2)) keeps
    a block `X` of `block_size` orthonormal vectors. Each iteration computes the
    Hessian-vector products of the block of residuals `W = H X - X Theta` and
    replaces `X` by the top `block_size` Ritz vectors of `H` on `span(X, P, W)`, `P`
    the previous update directions: `block_size` products per iteration, a Krylov
    rate of convergence (set by the square root of the relative gap), and a state
    of fixed size whatever the number of iterations. No preconditioner is used.

    **Why a block.** Tracking the sharpness along a run, the estimator starts from
    the previous measurement. When two top eigenvalues trade places while their
    eigenvectors stay put, the previous top eigenvector is an exact eigenvector of
    the new *second* eigenvalue, with a zero residual: a single warm-start vector
    (`Lanczos`, `PowerIteration`) stops there, converged. A block that holds both
    eigenvectors finds the new top one at its first Rayleigh-Ritz step. A block also
    sees multiplicity: on the spectrum `{5, 5, 2, 1, 0.5, 0.1}`,
    `LOBPCG(block_size=2, k=2)` returns `[5, 5]` where Lanczos returns `[5, 2]`.

    **What it costs.** Along Polyak-GD at the edge of stability (a small relative
    gap to the second eigenvalue, and a top eigenvector that turns between
    measurements) a warm block of two needs more products per measurement than
    warm Lanczos: the rotations leave the span of the previous top two, and
    Lanczos' growing Krylov space follows them with one product per step where
    LOBPCG spends `block_size`. Along Armijo-GD (larger gaps, hardly any rotation)
    the block's first step alone costs `block_size` products, more than warm
    Lanczos needs in all. So the block is the robust choice (swaps, multiplicity)
    and warm `Lanczos` the cheap one on the paper's MLP; `iterate_guards=False`
    cuts the block's cost, with the weakness described below. The estimator
    benchmark measures these costs.

    **Stopping rule.** As for `Lanczos`: each of the top `k` Ritz pairs has
    `||H x_i - theta_i x_i|| <= tol * |theta_i|` (a guaranteed relative accuracy of
    `tol` on some eigenvalue; `tol^2 |theta| / gap` when the others are `gap`
    away). It is checked first on the warm-start block alone, so a measurement costs
    at least `block_size` products. The other `block_size - k` vectors are guards:
    carried, improved by every iteration, but not waited for. With `iterate_guards=
    False` only the top `k` residuals enter an iteration (`k` products each); the
    guards then follow only through the Rayleigh-Ritz steps, and on a clustered top
    a cold start can stop on the second eigenvalue with a small residual (as on
    the swapped pair of `tests/test_lobpcg.py`).

    **Products.** The products of an iteration run in the parameters' dtype, either
    batched (`jax.vmap`: one pass over the data with wider matrices, best where a
    product is latency-bound, on GPUs and TPUs) or one after another (`lax.map`,
    cheaper on a CPU, where vmapped products of a small model can take longer
    than the same products in turn). The block, its Gram and
    Rayleigh-Ritz matrices and their eigendecompositions run in float32 or wider, at
    full matmul precision.

    **Arguments:**

    - `block_size`: the number of vectors, >= `k` (2 to 4 for tracking).
    - `tol`: the relative residual at which to stop, >= 0.
    - `max_iters`: the most iterations after the first Rayleigh-Ritz step, >= 0.
    - `k`: the number of top eigenvalues to return and converge, 1 <= `k` <=
      `block_size`.
    - `warm_start`: whether `update` starts from the previous block.
    - `batch_products`: whether the products of a block run batched (`True`) or one
      after another (`False`); `None` (the default) batches them except on CPU.
    - `iterate_guards`: whether every vector's residual enters each iteration (the
      default, standard LOBPCG) or only the top `k` ones.

    `info` holds `num_hvps`, `converged` (the top `k` relative residuals are at most
    `tol`), `residual` (of the top pair) and `top_k` (NaN where the space has fewer
    than `k` dimensions).

    **JAX's `jax.experimental.sparse.linalg.lobpcg_standard`** was evaluated first
    and is not wrapped: it applies the operator to the whole basis `[X, P, R]` and
    then to `X` at every iteration (`4 block_size` products where this one needs
    `block_size`), stops only when every vector of the block has
    converged (guards included), scales its tolerance by `10 n`, requires `5
    block_size < n` (so not the 6-dimensional repeated-eigenvalue case) and fails
    in bfloat16 (`Unsupported dtype bfloat16` from its eigendecomposition). It does
    accept a warm-start block and runs inside `lax.scan` with fixed shapes.
    """

    block_size: int = eqx.field(static=True)
    tol: Array
    max_iters: int = eqx.field(static=True)
    k: int = eqx.field(static=True)
    warm_start: bool = eqx.field(static=True)
    batch_products: bool | None = eqx.field(static=True)
    iterate_guards: bool = eqx.field(static=True)

    def __init__(
        self,
        block_size: int = 2,
        tol=1e-3,
        max_iters: int = 100,
        k: int = 1,
        *,
        warm_start: bool = True,
        batch_products: bool | None = None,
        iterate_guards: bool = True,
    ):
        self.block_size = checked_int("block_size", block_size)
        self.tol = checked_float("tol", tol, lower=0.0, lower_open=False)
        self.max_iters = checked_int("max_iters", max_iters, lower=0)
        self.k = checked_int("k", k, upper=self.block_size)
        self.warm_start = bool(warm_start)
        if batch_products not in (None, True, False):
            raise ValueError(
                f"`batch_products` must be True, False or None, got {batch_products!r}."
            )
        self.batch_products = batch_products
        self.iterate_guards = bool(iterate_guards)

    def _run_block(self, operator, block):
        """LOBPCG from `block` (a pytree like `params` with a leading block axis):
        `(estimate, block, info)`."""
        matvec, to_tree, from_tree = flat_hessian(operator)
        start = jax.vmap(from_tree)(block).T  # (n, block_size)

        batched = self.batch_products
        if batched is None:
            batched = jax.default_backend() != "cpu"

        def matmat(vectors):
            if batched:
                return jax.vmap(matvec, in_axes=1, out_axes=1)(vectors)
            return lax.map(matvec, vectors.T).T

        result = lobpcg(
            matmat,
            start,
            k=self.k,
            tol=self.tol,
            max_iters=self.max_iters,
            active=self.block_size if self.iterate_guards else self.k,
        )
        dtype = tree_dtype(operator.params)
        top_k = result.eigenvalues[: self.k].astype(dtype)
        info = {
            "num_hvps": result.num_products,
            "converged": result.converged,
            "residual": result.residuals[0].astype(dtype),
            "top_k": top_k,
        }
        return top_k[0], jax.vmap(to_tree)(result.vectors.T), info

    def _measure(self, operator, block, grad):
        del grad  # LOBPCG starts from the block alone
        return self._run_block(operator, block)
