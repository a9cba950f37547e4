import equinox as eqx
import jax
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array

from .._tree import tree_axpy, tree_dot, tree_dtype, tree_norm
from .._validation import checked_float, checked_int, checked_params
from ._base import AbstractVectorEstimator
from ._hvp import RESIDUAL_TOL, normalise, random_direction, small_residual
from ._operator import as_operator


class PowerIteration(AbstractVectorEstimator):
    """The paper's estimator: power iteration on Hessian-vector products.

    `v <- Hv / ||Hv||`, with the estimate the Rayleigh quotient `v^T H v`, stopped
    when

        |lambda_k - lambda_{k-1}| <= tol * |lambda_k|      (tol = 1e-3)

    or after `max_iters` (1000) products. The tolerance is **relative** because
    sharpness spans orders of magnitude along a run (about 2 at step size 1,
    thousands at small steps): a relative rule gives every measurement the same
    number of significant digits.

    Power iteration converges to the eigenvalue of largest **magnitude**, signed, so
    a dominant negative eigenvalue shows as a negative sharpness (Lanczos finds the
    largest algebraic eigenvalue instead). It converges at the rate
    `|lambda_2 / lambda_1|` per product, and its rule stops on a small *change*,
    which comes early (with the estimate still low) when the top eigenvalues are
    clustered.

    **Convergence is checked on the residual.** A small change does not make an
    eigenpair: when two eigenvalues of nearly equal magnitude and opposite signs lead
    the spectrum (`{3, -2.97, ...}`), the iterate swings between their eigenvectors,
    the Rayleigh quotient settles at a weighted mean of the two (2.86 there), and the
    rule stops with a residual `||Hv - lambda v||` of a third of the estimate. So
    the run stops on the paper's rule, unchanged, but `converged` is true only when
    also

        ||H v - lambda v|| <= residual_tol * |lambda|      (residual_tol = 0.1)

    for the returned pair. Why 0.1: if `v` has weight `s_i` on the eigenvector of
    `lambda_i`, the rule's change is about `sum_i s_i (lambda_1 - lambda_i)^2 (1 +
    r_i) / lambda_1` with `r_i = lambda_i / lambda_1`, and the squared residual is
    `sum_i s_i (lambda_1 - lambda_i)^2`; a stop at relative change `tol` therefore
    leaves a relative residual of at most about `sqrt(tol / (1 + r_min))`: 0.032
    for a positive semi-definite Hessian, 0.045 with `r_min = -1/2`, and unbounded as
    `r_min -> -1`. The threshold sits a factor 3 above the bound for `r_min >= 0`
    and below the residuals of the swinging runs above (a large fraction of the
    estimate), and certifies that some eigenvalue lies within 10% of the estimate.
    It does not certify the *top* one: on clustered tops the paper's rule stops
    early, with the estimate low, on a pair that is a fair eigenpair of a lower
    eigenvalue, and `converged` is then true. (The `power_residuals` part of the
    estimator benchmark, `python -m benchmarks.sharpness --parts power_residuals`,
    measures these residuals along real runs.)

    **Arguments:**

    - `tol`: the relative change in the estimate below which iteration stops, >= 0.
    - `max_iters`: the most Hessian-vector products, >= 1.
    - `warm_start`: whether `update` starts from the previous eigenvector (the paper
      starts every measurement from a random direction).
    - `residual_tol`: the relative residual below which a stopped run counts as
      converged, >= 0 (it never changes when the run stops).

    `info` holds `num_hvps`, `converged` (the rule was met *and* the relative
    residual is at most `residual_tol`), `residual`, `||Hv - lambda v||` for the
    last iterate `v` (computed from the last product, at no extra cost), and
    `top_k`, the estimate as an array of one.
    """

    tol: Array
    max_iters: int = eqx.field(static=True)
    warm_start: bool = eqx.field(static=True)
    k: int = eqx.field(static=True)  # always 1: the estimate alone
    residual_tol: Array

    def __init__(
        self,
        tol=1e-3,
        max_iters: int = 1000,
        *,
        warm_start: bool = False,
        residual_tol=RESIDUAL_TOL,
    ):
        self.tol = checked_float("tol", tol, lower=0.0, lower_open=False)
        self.max_iters = checked_int("max_iters", max_iters)
        self.warm_start = bool(warm_start)
        self.k = 1
        self.residual_tol = checked_float(
            "residual_tol", residual_tol, lower=0.0, lower_open=False
        )

    def run(self, fn, params, start=None, *, key=None, operator=None):
        checked_params("params", params)
        operator = as_operator(fn, params, operator)
        if start is None:
            start = random_direction(jax.random.key(0) if key is None else key, params)
        dtype = tree_dtype(params)
        zero = jnp.zeros((), dtype)
        tol = jnp.asarray(self.tol, dtype)

        def not_converged(estimate, previous):
            return ~(jnp.abs(estimate - previous) <= tol * jnp.abs(estimate))

        def keep_going(carry):
            k, _, estimate, previous, _, _ = carry
            going = (k < self.max_iters) & not_converged(estimate, previous)
            return (k == 0) | (going & jnp.isfinite(estimate))  # stop at a NaN

        def iterate(carry):
            k, vector, estimate, _, _, _ = carry
            product = operator.mv(vector)
            estimate, previous = tree_dot(vector, product), estimate
            return k + 1, normalise(product), estimate, previous, vector, product

        init = (jnp.array(0), start, zero, zero, start, start)
        num_hvps, _, estimate, previous, vector, product = lax.while_loop(
            keep_going, iterate, init
        )
        residual = tree_norm(tree_axpy(-estimate, vector, product))
        info = {
            "num_hvps": num_hvps,
            "converged": ~not_converged(estimate, previous)
            & small_residual(residual, estimate, self.residual_tol),
            "residual": residual,
            "top_k": estimate[None],
        }
        return estimate, vector, info
