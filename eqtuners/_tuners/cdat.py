"""CDAT: the step size that puts gradient descent on the edge of stability.

Roulet, Agarwala, Grill, Swirszcz, Blondel and Pedregosa, "Stepping on the Edge:
Curvature Aware Learning Rate Tuners" (NeurIPS 2024, arXiv 2407.06183), Curvature
Dynamics Aware Tuning: along the update direction `u`,

    stepsize = sigma * n / d,   n = max(-g^T u, 0),   d = |u^T H u| + eps.

For gradient descent `u = -g`, so `n = ||g||^2`, `d = |g^T H g| + eps = |kappa| ||g||^2
+ eps` with `kappa` the curvature along the gradient, and the step is
`sigma / |kappa|` (for `eps = 0`). On the quadratic model along `g`, `sigma = 1` is the
greedy step (the exact line minimiser, the Cauchy step) and `sigma = 2` the largest
step that does not increase the model: the edge of stability. The paper finds that
tuners aiming below the edge (greedy steps, line searches) let the sharpness keep
rising, and that `sigma` near 2 stabilises it.
"""

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array

from .._tree import tree_dot, tree_dtype
from .._validation import checked_float
from ._base import AbstractCurvatureTuner


class CDATState(eqx.Module):
    """The moving averages of the numerator and the denominator (0 before the
    first step), in the parameters' dtype."""

    numerator: Array
    denominator: Array


class CDAT(AbstractCurvatureTuner):
    """Curvature Dynamics Aware Tuning for gradient descent (Roulet et al., 2024):

        stepsize = sigma * n_t / d_t,   n_t = ||g||^2,   d_t = |g^T H g| + eps,

    optionally with exponential moving averages of `n_t` and `d_t`,

        N_t = ema N_{t-1} + (1 - ema) n_t,   D_t = ema D_{t-1} + (1 - ema) d_t,
        stepsize = sigma * N_t / D_t,   N_0 = D_0 = 0,

    and capped at `max_stepsize` when given. With `ema = 0` (the default) `N_t = n_t`
    and `D_t = d_t` exactly. (The paper's `n_t = max(-g^T u, 0)` and `d_t = |u^T H u|
    + eps` along an update `u`; here `u = -g`. The only public implementation,
    Flatland's `eos_line_search/optimizers/CDAT.py`, is this rule without the
    averages; its experiments use `sigma = 2.06`.)

    **The averages are not bias-corrected.** Started at 0, both averages are short
    by the same factor `1 - ema^t`, which cancels in their ratio: a correction would
    change `N_t` and `D_t` (the `info`) but not the step. The first step is the rule
    without averages, `sigma * n_1 / d_1`.

    The curvature along the gradient, `kappa = g^T H g / ||g||^2`, comes from
    `step`'s `curvature` argument, which `eqtuners.train` computes with the value
    and the gradient (sharing their forward pass, no Hessian-vector product);
    without it, `step` computes it from `fn`. Then `g^T H g = kappa ||g||^2`.

    Edge cases, chosen so that the parameters never become NaN through the step:

    - negative curvature gives the step of its absolute value (the paper's `|.|`);
    - a zero gradient (`kappa` NaN, undefined) counts as `g^T H g = 0`: `n_t = 0`,
      and a step of 0 unless the averages still hold earlier steps;
    - a zero denominator (`eps = 0` and `g^T H g = 0` exactly, with `N_t > 0`) gives
      an unbounded step: `max_stepsize`, or 0 without a cap;
    - a NaN or infinite value, gradient or curvature (at a nonzero gradient) gives a
      step of 0 and leaves the averages unchanged (`info["nonfinite_input"]`, see
      `AbstractTuner.step`).

    **Arguments:**

    - `sigma`: the scale, a number > 0 (2: on the edge, the default; 1: greedy).
    - `eps`: added to `|g^T H g|`, a number >= 0 (in units of the objective per
      squared parameter unit times `||g||^2`; default 0).
    - `ema`: the weight of the past in the moving averages, a number in [0, 1)
      (default 0: no averaging).
    - `max_stepsize`: `None` (the default: no cap) or a number > 0.

    `info` holds `curvature` (`kappa`, NaN at a zero gradient), `numerator` and
    `denominator` (`N_t` and `D_t`, the values in the step), `capped` (whether the
    cap was hit; false without a cap) and `nonfinite_input`.

    **Raises:** `ValueError` naming the argument for a value out of range or not a
    single number.
    """

    sigma: Array
    eps: Array
    ema: Array
    max_stepsize: Array | None

    def __init__(self, sigma=2.0, eps=0.0, ema=0.0, max_stepsize=None):
        self.sigma = checked_float("sigma", sigma, lower=0.0, scalar=True)
        self.eps = checked_float("eps", eps, lower=0.0, lower_open=False, scalar=True)
        self.ema = checked_float(
            "ema", ema, lower=0.0, upper=1.0, lower_open=False, scalar=True
        )
        if max_stepsize is not None:
            max_stepsize = checked_float(
                "max_stepsize", max_stepsize, lower=0.0, scalar=True
            )
        self.max_stepsize = max_stepsize

    def validated(self):
        return CDAT(self.sigma, self.eps, self.ema, self.max_stepsize)

    def init(self, params):
        zero = jnp.zeros((), tree_dtype(params))
        return CDATState(zero, zero)

    def propose(self, fn, params, value, grad, state, *, curvature):
        dtype = tree_dtype(params)
        grad_sq_norm = tree_dot(grad, grad)
        moving = grad_sq_norm > 0
        along = jnp.where(moving, curvature * grad_sq_norm, 0)  # g^T H g
        numerator = self.ema * state.numerator + (1 - self.ema) * grad_sq_norm
        denominator = self.ema * state.denominator + (1 - self.ema) * (
            jnp.abs(along) + self.eps
        )
        numerator, denominator = numerator.astype(dtype), denominator.astype(dtype)
        positive = numerator > 0
        unclipped = jnp.where(
            denominator > 0,
            self.sigma * numerator / jnp.where(denominator > 0, denominator, 1),
            jnp.inf,
        )
        unclipped = jnp.where(positive, unclipped, 0)
        if self.max_stepsize is None:
            capped = jnp.asarray(False)
            stepsize = jnp.where(jnp.isfinite(unclipped), unclipped, 0)
        else:
            capped = unclipped >= self.max_stepsize
            stepsize = jnp.minimum(unclipped, self.max_stepsize)
        info = {
            "curvature": jnp.asarray(curvature, dtype),
            "numerator": numerator,
            "denominator": denominator,
            "capped": capped,
        }
        return stepsize.astype(dtype), CDATState(numerator, denominator), info
