"""Rayleigh-Ritz on a recycled subspace: tracking the top of the Hessian spectrum
from the vectors a training run already has."""

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, Bool, Float, Int

from .._tree import tree_dtype
from .._validation import checked_float, checked_int
from ._hvp import flat_hessian, small_residual
from .lanczos import _by_block
from .lobpcg import AbstractBlockEstimator

_HIGHEST = lax.Precision.HIGHEST


def _mm(a, b):
    """A matrix product at full precision (no TF32 or bfloat16 passes on GPUs)."""
    return jnp.matmul(a, b, precision=_HIGHEST)


class RecycledResult(NamedTuple):
    """What `recycled_ritz` returns (flat vectors; `b` Ritz pairs, largest first)."""

    eigenvalues: Float[Array, " b"]  # NaN past the dimension of the subspace
    vectors: Float[Array, "b n"]  # orthonormal Ritz vectors (zero rows: none)
    residuals: Float[Array, " b"]  # ||A y_i - theta_i y_i||
    num_products: Int[Array, ""]  # vectors given to `matvec` = the basis' size
    converged: Bool[Array, ""]  # the top k residuals are small
    history: Float[Array, " m"]  # the top Ritz value after each product (NaN: none)


def _orthogonalised(vector, basis):
    """`vector` without its components along the orthonormal (or zero) rows of
    `basis`, twice ("twice is enough"), and its norm before and after."""
    before = jnp.linalg.norm(vector)
    for _ in range(2):
        vector = vector - _mm(basis.T, _mm(basis, vector))
    return vector, before, jnp.linalg.norm(vector)


def _ritz(projected, size, width):
    """The Ritz values (largest first) and coordinate vectors (columns) of the
    leading `size` x `size` block of the projected matrix `V^T A V`, at least
    `width` of them.

    The unused rows and columns are zeroed and their diagonal entries set below
    every eigenvalue of the leading block (below its Gershgorin bound), so they
    come last and never mix with the others; their values are NaN. Past the
    matrix' size (fewer parameters than `width`): NaN values, zero vectors.
    """
    m = projected.shape[0]
    used = jnp.arange(m) < size
    block = jnp.where(used[:, None] & used[None, :], projected, 0)
    block = (block + block.T) / 2
    low = -2 * jnp.max(jnp.sum(jnp.abs(block), axis=1)) - 1
    theta, s = jnp.linalg.eigh(block + jnp.diag(jnp.where(used, 0, low)))
    theta, s = jnp.where(used, theta[::-1], jnp.nan), s[:, ::-1]
    if width > m:
        theta = jnp.pad(theta, (0, width - m), constant_values=jnp.nan)
        s = jnp.pad(s, ((0, 0), (0, width - m)))
    return theta, s


def recycled_ritz(
    matvec, candidates, *, k: int, b: int, tol, max_size: int
) -> RecycledResult:
    """The top eigenpairs of the symmetric operator `matvec` on flat vectors, by
    Rayleigh-Ritz on the span of `candidates` (rows), expanded by residuals.

    The basis grows by one vector per product: first the candidates in order
    (each orthogonalised against the basis, and dropped without a product when
    nothing of it is left: a zero row, or one in the span of the others), then the
    residual `A y - theta y` of the top-`k` Ritz pair with the largest relative
    residual (an unpreconditioned Davidson step, which on a single start vector
    spans the same Krylov space as Lanczos). After every product the top `k`
    Ritz pairs of the basis are computed from the stored images; the run stops
    once every candidate has entered and each of them has `||A y_i - theta_i
    y_i|| <= tol * |theta_i|`, at an invariant subspace (a residual with nothing
    left after orthogonalisation) or the whole space (the Ritz pairs are exact),
    at a non-finite value, or when the basis holds `max_size` vectors. The basis
    and the images are fixed `(max_size, n)` arrays, so the function compiles
    once for any stop; the algebra of a step runs on the leading rows in use
    (`_by_block`), so it costs in proportion to the basis' size, not to
    `max_size`. `history` holds the top Ritz value after each product.
    """
    num_candidates, n = candidates.shape
    m = min(max_size, n)
    dtype = candidates.dtype
    tol = jnp.asarray(tol, dtype)
    eps = jnp.finfo(dtype).eps

    def orthogonalise(size, basis, vector):
        return _by_block(size, m, lambda rows: _orthogonalised(vector, basis[:rows]))

    def insert(size, basis, images, projected, unit, image):
        """`unit` and its image as row `size`, and the projected matrix's new
        row and column."""
        basis = basis.at[size].set(unit)
        images = images.at[size].set(image)

        def column_of(rows):  # padded, so that every block gives one shape
            return jnp.zeros(m, dtype).at[:rows].set(_mm(basis[:rows], image))

        column = _by_block(size + 1, m, column_of)
        return basis, images, projected.at[:, size].set(column).at[size].set(column)

    def top_residuals(size, basis, images, projected):
        """The top `k` Ritz values, their residual norms, and the residual vector
        of the pair with the largest relative residual."""
        theta, s = _ritz(projected, size, k)
        theta, s = theta[:k], s[:, :k]

        def residuals(rows):
            coordinates = s[:rows]
            return _mm(coordinates.T, images[:rows]) - theta[:, None] * _mm(
                coordinates.T, basis[:rows]
            )

        vectors = _by_block(size, m, residuals)
        norms = jnp.linalg.norm(vectors, axis=1)
        worst = jnp.argmax(jnp.where(jnp.isfinite(theta), norms / jnp.abs(theta), 0))
        return theta, norms, vectors[worst]

    def body(carry):
        """One step: the next vector enters the basis (one product), or is
        dropped; then Rayleigh-Ritz on the basis."""
        taken, size, basis, images, projected, residual, history, _ = carry
        from_candidates = taken < num_candidates
        vector = jnp.where(
            from_candidates,
            candidates[jnp.minimum(taken, num_candidates - 1)],
            residual,
        )
        vector, before, after = orthogonalise(size, basis, vector)
        # Nothing new: a zero or dependent candidate, or an exhausted space.
        empty = after <= jnp.sqrt(eps) * before
        unit = vector / jnp.where(after > 0, after, 1)

        def grow(state):
            size, basis, images, projected = state
            basis, images, projected = insert(
                size, basis, images, projected, unit, matvec(unit)
            )
            return size + 1, basis, images, projected

        size, basis, images, projected = lax.cond(
            empty, lambda state: state, grow, (size, basis, images, projected)
        )
        taken = taken + from_candidates
        theta, norms, residual = top_residuals(size, basis, images, projected)
        history = history.at[jnp.maximum(size - 1, 0)].set(theta[0])
        exists = jnp.arange(k) < size  # values past the subspace's size are NaN
        small = jnp.all(small_residual(norms, theta, tol))
        converged = small & (taken >= num_candidates)
        failed = ~jnp.all((jnp.isfinite(theta) & jnp.isfinite(norms)) | ~exists)
        # An invariant subspace, or the whole space: the pairs are exact.
        exhausted = (empty & ~from_candidates) | (size == n)
        converged = converged | (exhausted & jnp.all(exists))
        done = converged | exhausted | failed | (size == m)
        status = (done, converged)
        return taken, size, basis, images, projected, residual, history, status

    zeros = jnp.zeros((m, n), dtype)
    init = (
        jnp.array(0),
        jnp.array(0),
        zeros,
        zeros,
        jnp.zeros((m, m), dtype),
        jnp.zeros(n, dtype),
        jnp.full(m, jnp.nan, dtype),
        (jnp.array(False), jnp.array(False)),
    )
    _, size, basis, images, projected, _, history, (_, converged) = lax.while_loop(
        lambda carry: ~carry[-1][0], body, init
    )
    theta, s = _ritz(projected, size, b)
    theta, s = theta[:b], s[:, :b]
    vectors = _mm(s.T, basis)
    norms = jnp.linalg.norm(_mm(s.T, images) - theta[:, None] * vectors, axis=1)
    return RecycledResult(
        eigenvalues=theta,
        vectors=vectors,
        residuals=norms,
        num_products=size,
        converged=converged,
        history=history,
    )


class RecycledRitz(AbstractBlockEstimator):
    """Tracks the top Hessian eigenvalues from the vectors a run already has:
    Rayleigh-Ritz on the previous eigenvectors and the step's gradient, expanded by
    residuals until the residual rule holds.

    A measurement starts from a subspace of vectors that cost nothing to find: the
    `block_size` Ritz vectors of the previous measurement (what its products
    found: the top eigenvector and the next ones) and the training step's
    gradient `g` (which the loop passes as `grad`; at the edge of stability,
    where gradient descent oscillates along the top eigenvector, `g` leans on the
    new top eigenvector). Each enters the basis at the cost of one product, and
    Rayleigh-Ritz on their span (the best approximations to the top eigenpairs
    from that span; Parlett, *The Symmetric Eigenvalue Problem*, ch. 11) gives the
    new top pair. While its residual is too large, the residual itself is
    multiplied and added (an unpreconditioned Davidson step: Davidson 1975;
    Morgan and Scott 1986), one product at a time. The basis restarts at every
    measurement from the few Ritz vectors kept, as in thick-restart Lanczos (Wu
    and Simon 2000, SIAM J. Matrix Anal. Appl. 22(2)), so a top eigenvector that
    rotates between measurements is found from where it was, and one that
    rotates towards the gradient's direction is found at once.

    **Stopping rule.** As for `Lanczos` and `LOBPCG`: each of the top `k` Ritz
    pairs has `||H y_i - theta_i y_i|| <= tol * |theta_i|` (some eigenvalue within
    `tol |theta_i|`, and within `tol^2 |theta_i| / gap` when the others are `gap`
    away), computed exactly from the stored products. It is checked only once
    every starting vector has entered the basis: a previous top eigenvector can
    be an exact eigenvector of the new *second* eigenvalue (two eigenvalues that
    trade places while their eigenvectors stay put), with a zero residual, and
    only the other vectors reveal the new top one. So a measurement costs at
    least `block_size` products, plus one for the gradient. Like LOBPCG, the
    block sees multiplicity: on `{5, 5, 2, ...}`, `block_size=2, k=2` returns
    `[5, 5]`.

    **What it costs.** Along Polyak-GD at the edge of stability, where the top
    eigenvector turns far between measurements, the recycled block needs fewer
    products than warm `Lanczos` (which restarts from one vector) and `LOBPCG`
    (`block_size` products per iteration); along Armijo-GD, where it hardly
    turns, warm Lanczos needs a product or two less than the `block_size + 1`
    that the start alone costs here. The gradient is one product per
    measurement; `use_grad=False` saves it where it does not lean on the top
    eigenvector. The estimator benchmark (`benchmarks/sharpness/`) measures
    these costs.

    **Shapes and units.** The estimate and `info["top_k"]` (shape `(k,)`) are
    eigenvalues of the Hessian of `fn`: units of `fn` per squared unit of the
    parameters, in the parameters' dtype. The state (`init`) is a
    `SharpnessState`: `eigenvector` shaped like `params`, `estimate` a scalar
    (NaN before the first measurement), `others` like `params` with a leading
    axis of `block_size - 1`. `grad`, when given to `update`, is shaped like
    `params`; a zero one, or one already in the span of the block, costs no
    product.

    **Memory.** The basis and its products are two `(max_size, num_params)`
    arrays during a measurement, in float32 or wider (as the other estimators'
    dense algebra: `work_dtype`); the state carries `block_size` vectors.

    **Raises:** `ValueError` naming the argument for a hyperparameter out of its
    range (below), and from `run`, `init` and `update` when `params` holds a
    leaf that is not a floating-point array.

    **Arguments:**

    - `block_size`: the Ritz vectors carried from one measurement to the next,
      >= `k`.
    - `tol`: the relative residual at which to stop, >= 0.
    - `max_size`: the most products of a measurement (the basis' capacity), >=
      `block_size + 1`.
    - `k`: the number of top eigenvalues to return and converge, 1 <= `k` <=
      `block_size`.
    - `warm_start`: whether `update` starts from the previous Ritz vectors (from
      random directions otherwise, as on the first measurement).
    - `use_grad`: whether `update` adds the gradient it is given to the start.

    `info` holds `num_hvps` (the products: the size of the final basis),
    `converged`, `residual` (of the top pair) and `top_k` (NaN past the
    dimension of the subspace).
    """

    block_size: int = eqx.field(static=True)
    tol: Array
    max_size: int = eqx.field(static=True)
    k: int = eqx.field(static=True)
    warm_start: bool = eqx.field(static=True)
    use_grad: bool = eqx.field(static=True)

    def __init__(
        self,
        block_size: int = 3,
        tol=1e-3,
        max_size: int = 40,
        k: int = 1,
        *,
        warm_start: bool = True,
        use_grad: bool = True,
    ):
        self.block_size = checked_int("block_size", block_size)
        self.tol = checked_float("tol", tol, lower=0.0, lower_open=False)
        self.max_size = checked_int("max_size", max_size, lower=self.block_size + 1)
        self.k = checked_int("k", k, upper=self.block_size)
        self.warm_start = bool(warm_start)
        self.use_grad = bool(use_grad)

    def _run_block(self, operator, block, grad):
        """From the rows of `block` (a pytree like `params` with a leading axis)
        and `grad` (or None): `(estimate, block, info)`."""
        matvec, to_tree, from_tree = flat_hessian(operator)
        candidates = jax.vmap(from_tree)(block)
        if grad is not None:
            candidates = jnp.concatenate([candidates, from_tree(grad)[None]])
        result = recycled_ritz(
            matvec,
            candidates,
            k=self.k,
            b=self.block_size,
            tol=self.tol,
            max_size=self.max_size,
        )
        dtype = tree_dtype(operator.params)
        top_k = result.eigenvalues[: self.k].astype(dtype)
        info = {
            "num_hvps": result.num_products,
            "converged": result.converged,
            "residual": result.residuals[0].astype(dtype),
            "top_k": top_k,
        }
        return top_k[0], jax.vmap(to_tree)(result.vectors), info

    def _measure(self, operator, block, grad):
        return self._run_block(operator, block, grad if self.use_grad else None)
