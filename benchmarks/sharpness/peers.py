"""The peer of the estimator benchmark: JAX's LOBPCG, as is, behind the estimator
interface."""

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.experimental.sparse.linalg import lobpcg_standard

import eqtuners as et
from eqtuners.internal import flat_hessian, random_block, start_block

from .problems import TARGET


class JaxLOBPCG(et.AbstractSharpnessEstimator):
    """`jax.experimental.sparse.linalg.lobpcg_standard` as an estimator, warm-started
    from the previous block as `et.LOBPCG` is (the library's `start_block`).

    Its rule stops when every one of the `block_size` pairs has `||A v - theta v|| <
    tol * 10 n (theta + ||A v||)`; `tol = target / (20 n)` makes that a relative
    residual of about `target` (`||A v|| ~ theta` near convergence). Its products: `b`
    for the first block, then `4 b` per iteration (`A` applied to the whole basis
    `[X, P, R]`, then to the new `X`). It returns no residual (NaN here) and stops
    without saying whether it converged (`converged` here: it stopped before `m`
    iterations).
    """

    block_size: int = eqx.field(static=True)
    target: float = eqx.field(static=True)
    max_iters: int = eqx.field(static=True)
    warm_start: bool = eqx.field(static=True)
    k: int = eqx.field(static=True)  # 1: `top_k` holds the estimate alone

    def __init__(self, block_size=2, target=TARGET, max_iters=100):
        self.block_size = block_size
        self.target = target
        self.max_iters = max_iters
        self.warm_start = True
        self.k = 1

    def _solve(self, operator, block):
        matvec, to_tree, from_tree = flat_hessian(operator)
        start = jax.vmap(from_tree)(block).T
        n = start.shape[0]

        def matmat(vectors):  # one product after another, as et.LOBPCG on CPU
            return jax.lax.map(matvec, vectors.T).T

        theta, vectors, iters = lobpcg_standard(
            matmat, start, m=self.max_iters, tol=self.target / (20 * n)
        )
        info = {
            "num_hvps": self.block_size * (1 + 4 * iters),
            "converged": iters < self.max_iters,
            "residual": jnp.full((), jnp.nan, theta.dtype),
            "top_k": theta[:1],
        }
        return theta[0], jax.vmap(to_tree)(vectors.T), info

    def run(self, fn, params, start=None, *, key=None, operator=None):
        key = jax.random.key(0) if key is None else key
        block = random_block(key, params, self.block_size)
        if start is not None:
            block = jax.tree.map(lambda b, s: b.at[0].set(s), block, start)
        operator = et.FreshProducts(fn, params) if operator is None else operator
        estimate, block, info = self._solve(operator, block)
        return estimate, jax.tree.map(lambda v: v[0], block), info

    def init(self, params):
        return et.LOBPCG(self.block_size).init(params)

    def update(self, fn, params, state, key, *, operator=None, grad=None):
        operator = et.FreshProducts(fn, params) if operator is None else operator
        estimate, block, info = self._solve(operator, start_block(params, state, key))
        top = jax.tree.map(lambda v: v[0], block)
        others = jax.tree.map(lambda v: v[1:], block)
        return estimate, et.SharpnessState(top, estimate, others), info
