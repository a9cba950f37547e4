import functools
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, Bool, Float, Int

from .._tree import tree_dtype
from .._validation import checked_float, checked_int, checked_params
from ._base import AbstractVectorEstimator
from ._hvp import flat_hessian, random_direction
from ._operator import as_operator


class LanczosResult(NamedTuple):
    """What `lanczos` returns (flat vectors; `k` Ritz pairs, largest first)."""

    eigenvalues: Float[Array, " k"]  # NaN past the dimension of the Krylov space
    eigenvector: Float[Array, " n"]  # the top Ritz vector, unit norm
    residuals: Float[Array, " k"]  # |beta_m s_m|: ||H y - theta y|| of each pair
    num_steps: Int[Array, ""]  # Lanczos steps taken = Hessian-vector products
    converged: Bool[Array, ""]  # the rule was met, or an invariant subspace found
    alphas: Float[Array, " steps"]  # the tridiagonal matrix (zeros past num_steps)
    betas: Float[Array, " steps"]


def _by_block(size, steps: int, fn):
    """`fn(block)` for the smallest of the block sizes 8, 16, 32, 64, `steps` (those
    below `steps`) that holds `size`, chosen at run time by `lax.switch`.

    The Lanczos basis and tridiagonal matrix have a fixed size, `steps`, but at step
    `m` only the leading `m` rows are in use: working on a leading block keeps the
    shapes fixed while the early steps (and the whole of a warm-started run) cost in
    proportion to what is in use rather than to `steps`.
    """
    blocks = [b for b in (8, 16, 32, 64) if b < steps] + [steps]
    which = jnp.searchsorted(jnp.array(blocks), size)  # the first block >= size
    return lax.switch(which, [functools.partial(fn, b) for b in blocks])


def _ritz_pairs(alphas, betas, size):
    """Eigenpairs of the leading `size` x `size` block of the tridiagonal matrix,
    largest first, padded to the shape of the whole matrix.

    `eigh` runs on a leading block that holds `size` (`_by_block`). In the block, the
    unused diagonal entries are set below every eigenvalue of the leading `size` x
    `size` part (below its Gershgorin bound) and decoupled, so the first `size`
    eigenpairs are that part's, with zero components past `size`.
    """
    steps = alphas.shape[0]
    index = jnp.arange(steps)
    diagonal = jnp.where(index < size, alphas, 0)
    off = jnp.where(index < size - 1, betas, 0)
    low = -2 * (jnp.max(jnp.abs(diagonal)) + 2 * jnp.max(off)) - 1
    diagonal = jnp.where(index < size, alphas, low)

    def ritz(block):
        d, e = diagonal[:block], off[: block - 1]
        values, vectors = jnp.linalg.eigh(
            jnp.diag(d) + jnp.diag(e, 1) + jnp.diag(e, -1)
        )
        padded_values = jnp.full(steps, low, values.dtype).at[:block].set(values[::-1])
        padded_vectors = jnp.zeros((steps, steps), vectors.dtype)
        return padded_values, padded_vectors.at[:block, :block].set(vectors[:, ::-1])

    return _by_block(size, steps, ritz)


def lanczos(matvec, start, *, max_steps: int, tol, k: int = 1) -> LanczosResult:
    """Lanczos with full reorthogonalisation for the `k` largest eigenvalues of the
    symmetric operator `matvec` on flat vectors.

    Stops after the first step `m` at which each of the top `k` Ritz pairs has
    `|beta_m s_{m,i}| <= tol * |theta_i|`, at an invariant subspace (`beta_m` at
    rounding level), or after `min(max_steps, n)` steps. The basis is a fixed
    `(min(max_steps, n), n)` array, so the function compiles once for any stop.
    """
    n = start.shape[0]
    steps = min(max_steps, n)
    dtype = start.dtype
    tol = jnp.asarray(tol, dtype)
    index = jnp.arange(steps)
    basis = jnp.zeros((steps, n), dtype).at[0].set(start / jnp.linalg.norm(start))
    zeros = jnp.zeros(steps, dtype)

    def body(carry):
        j, basis, alphas, betas, _ = carry
        q = basis[j]
        w = matvec(q)
        alpha = jnp.dot(q, w)
        # Classical Gram-Schmidt against the basis, twice ("twice is enough"); rows
        # past j are zero. This also removes alpha q_j and beta_{j-1} q_{j-1}.

        def orthogonalise(block, w):
            used = basis[:block]
            w = w - used.T @ (used @ w)
            return w - used.T @ (used @ w)

        w = _by_block(j + 1, steps, lambda block: orthogonalise(block, w))
        beta = jnp.linalg.norm(w)
        alphas, betas = alphas.at[j].set(alpha), betas.at[j].set(beta)
        size = j + 1
        values, vectors = _ritz_pairs(alphas, betas, size)
        residuals = beta * jnp.abs(vectors[j, :k])
        scale = jnp.max(jnp.where(index < size, jnp.abs(values), 0))
        small = jnp.all(residuals <= tol * jnp.abs(values[:k])) & (size >= k)
        breakdown = beta <= 10 * jnp.finfo(dtype).eps * scale
        done = small | breakdown | (size == steps) | ~jnp.isfinite(beta)
        following = jnp.minimum(size, steps - 1)
        unit = w / jnp.where(beta > 0, beta, 1)
        basis = basis.at[following].set(jnp.where(done, basis[following], unit))
        return size, basis, alphas, betas, (done, small | breakdown)

    init = (jnp.array(0), basis, zeros, zeros, (jnp.array(False), jnp.array(False)))
    size, basis, alphas, betas, (_, converged) = lax.while_loop(
        lambda carry: ~carry[-1][0], body, init
    )
    values, vectors = _ritz_pairs(alphas, betas, size)
    exists = jnp.arange(k) < size
    ritz_vector = basis.T @ vectors[:, 0]
    residuals = betas[size - 1] * jnp.abs(vectors[size - 1, :k])
    return LanczosResult(
        eigenvalues=jnp.where(exists, values[:k], jnp.nan),
        eigenvector=ritz_vector / jnp.linalg.norm(ritz_vector),
        residuals=jnp.where(exists, residuals, jnp.nan),
        num_steps=size,
        converged=converged,
        alphas=alphas,
        betas=betas,
    )


class Lanczos(AbstractVectorEstimator):
    """Lanczos for the largest algebraic Hessian eigenvalue (and the next `k - 1`).

    From a unit vector `q_1`, `m` Hessian-vector products build an orthonormal basis
    `Q_m` of the Krylov space `span(q_1, H q_1, ..., H^{m-1} q_1)` in which `H` is the
    tridiagonal matrix `T_m = Q_m^T H Q_m`; the eigenpairs `(theta_i, s_i)` of `T_m`
    give the Ritz pairs `(theta_i, y_i = Q_m s_i)`. The top Ritz value converges to
    the top eigenvalue at a rate set by the square root of the relative gap, much
    faster than power iteration, and the `k` largest come from the same run.
    Every new basis vector is reorthogonalised against the whole stored basis twice,
    so no spurious copies of converged eigenvalues appear (the basis costs
    `max_steps * num_params` numbers of memory during a measurement).

    **Stopping rule.** After every product, the residual of each of the top `k`
    Ritz pairs is `||H y_i - theta_i y_i|| = |beta_m s_{m,i}|` (the last component of
    `s_i` times the last off-diagonal coupling; exact up to rounding with a
    reorthogonalised basis, and free). The run stops when every one of them is at
    most `tol * |theta_i|`. A residual `r` bounds the error of the Ritz value: some
    eigenvalue lies within `r` of `theta`, and within `r^2 / gap` when the top
    eigenvalue is separated by `gap` from the rest of the spectrum, so `tol` on the
    residual is a guaranteed relative accuracy and usually a pessimistic one. It also
    stops at an invariant subspace (`beta_m` at rounding level: the Ritz values are
    then exact) or after `max_steps` products.

    **Largest algebraic, not largest magnitude.** Lanczos returns the *largest*
    eigenvalue; power iteration (the paper's estimator) returns the one of largest
    magnitude. They differ when a negative eigenvalue is larger in magnitude than the
    top positive one, which happens early in training or after a spike; for the
    stability of gradient descent with step size `s` what matters is `s * lambda_max
    < 2`, the largest algebraic eigenvalue.

    **One vector cannot see multiplicity.** The Krylov space of one starting vector
    holds a single direction of each eigenspace (the start's component there), so a
    repeated eigenvalue shows up once: with `k=2` on the spectrum `{5, 5, 2, 1, 0.5,
    0.1}`, Lanczos returns `top_k = [5, 2]`, correctly converged as Ritz pairs. The
    same holds for power iteration. `LOBPCG` with `block_size` at least the
    multiplicity returns `[5, 5]`.

    **Precision.** The products run in the parameters' dtype; the basis, the
    orthogonalisation and the tridiagonal eigenproblem run in float32 when the
    parameters are in bfloat16 or float16 (in their own dtype when wider). The
    residual then cannot fall below the products' rounding (about 1e-2 relative in
    bfloat16), so a tolerance below it ends at `max_steps`, not converged.

    **Arguments:**

    - `max_steps`: the most Hessian-vector products (also the size of the basis),
      >= 1.
    - `tol`: the relative residual at which to stop, >= 0.
    - `k`: the number of top eigenvalues to return (and to converge), 1 <= k <=
      `max_steps`.
    - `warm_start`: whether `update` starts from the previous top eigenvector. When
      the Hessian changes little between measurements, the previous eigenvector is
      already close and a few products suffice. If the top eigenvalue crosses another
      whose eigenvector barely rotates, the previous eigenvector is an accurate
      eigenvector of the *second* one, and a warm start can stop there.

    `info` holds `num_hvps`, `converged`, `residual` (of the top pair) and `top_k`,
    the `k` largest Ritz values (largest first; NaN past the dimension of an
    invariant subspace smaller than `k`).
    """

    max_steps: int = eqx.field(static=True)
    tol: Array
    k: int = eqx.field(static=True)
    warm_start: bool = eqx.field(static=True)

    def __init__(
        self,
        max_steps: int = 100,
        tol=1e-3,
        k: int = 1,
        *,
        warm_start: bool = True,
    ):
        self.max_steps = checked_int("max_steps", max_steps)
        self.tol = checked_float("tol", tol, lower=0.0, lower_open=False)
        self.k = checked_int("k", k, upper=self.max_steps)
        self.warm_start = bool(warm_start)

    def run(self, fn, params, start=None, *, key=None, operator=None):
        checked_params("params", params)
        if start is None:
            start = random_direction(jax.random.key(0) if key is None else key, params)
        matvec, to_tree, from_tree = flat_hessian(as_operator(fn, params, operator))
        flat_start = from_tree(start)
        k = min(self.k, flat_start.shape[0])
        result = lanczos(
            matvec, flat_start, max_steps=self.max_steps, tol=self.tol, k=k
        )
        dtype = tree_dtype(params)
        top_k = result.eigenvalues.astype(dtype)
        if k < self.k:  # fewer parameters than k: pad, keeping the shape fixed
            top_k = jnp.concatenate([top_k, jnp.full(self.k - k, jnp.nan, dtype)])
        info = {
            "num_hvps": result.num_steps,
            "converged": result.converged,
            "residual": result.residuals[0].astype(dtype),
            "top_k": top_k,
        }
        return top_k[0], to_tree(result.eigenvector), info
