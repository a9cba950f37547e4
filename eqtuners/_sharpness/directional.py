import equinox as eqx
import jax
from jaxtyping import Array

from .._validation import checked_float, checked_params
from ._base import AbstractSharpnessEstimator, SharpnessState, vector_state
from ._hvp import RESIDUAL_TOL, curvature_and_info, directional_curvature, normalise


def value_grad_and_curvature(fn, params, *, residual_tol=RESIDUAL_TOL):
    """The value and gradient `g` of `fn` at `params`, and the curvature along the
    gradient, `g^T H g / ||g||^2`, from one forward-over-reverse pass.

    `jax.linearize` of `jax.value_and_grad(fn)` evaluates the value and the gradient
    once (the primal of the forward-over-reverse product) and returns the product as
    a linear function, which is then applied to `g / ||g||`: the cost of one
    Hessian-vector product instead of a gradient plus one product. A training step
    that measures the curvature along its own gradient gets its gradient here.

    **Returns:** `(value, gradient, curvature, info)`, `info` as for
    `directional_curvature`.
    """
    (value, grad), product_of = jax.linearize(jax.value_and_grad(fn), params)
    unit = normalise(grad)
    _, product = product_of(unit)
    curvature, info = curvature_and_info(unit, product, grad, residual_tol)
    return value, grad, curvature, info


class DirectionalCurvature(AbstractSharpnessEstimator):
    """The curvature along the gradient, `g^T H g / ||g||^2`, as an estimator.

    This is the curvature a gradient step sees: the quadratic model of the step `w -
    s g` is `f - s ||g||^2 + s^2/2 g^T H g`, and the Armijo condition on a quadratic
    bounds the accepted step by `2(1 - c) / (g^T H g / ||g||^2)`. It lies between the
    smallest and the largest Hessian eigenvalue, so it is a lower bound of the
    sharpness, equal to it when the gradient is a top eigenvector. `run` and
    `update` compute the gradient of `fn` and the product along it in one
    forward-over-reverse pass (`jax.linearize`), one product in all; nothing is
    carried between measurements (`warm_start` is false).

    **Arguments:**

    - `residual_tol`: `converged` holds when the unit gradient `u` is an
      eigenvector at this relative residual, `||H u - kappa u|| <= residual_tol *
      |kappa|` (so that the curvature is also an eigenvalue), >= 0. The curvature
      itself is exact whatever `converged` says.

    `info` holds `num_hvps` (1), `converged`, `residual` (`||H u - kappa u||`) and
    `top_k` (the curvature, as an array of one). A zero gradient gives NaN.
    """

    residual_tol: Array
    warm_start: bool = eqx.field(static=True)
    k: int = eqx.field(static=True)  # always 1: the estimate alone

    def __init__(self, *, residual_tol=RESIDUAL_TOL):
        self.residual_tol = checked_float(
            "residual_tol", residual_tol, lower=0.0, lower_open=False
        )
        self.warm_start = False
        self.k = 1

    def run(self, fn, params, start=None, *, key=None, operator=None):
        """The curvature along `start` when given, else along the gradient of `fn`
        at `params` (`key` is not used). Without `operator`, the gradient and the
        product along it come from one linearised pass; with one, the gradient is
        the operator's (`value_and_grad`)."""
        checked_params("params", params)
        if start is None and operator is None:
            *_, curvature, info = value_grad_and_curvature(
                fn, params, residual_tol=self.residual_tol
            )
        else:
            if start is None:
                start = operator.value_and_grad()[1]
            curvature, info = directional_curvature(
                fn, params, start, residual_tol=self.residual_tol, operator=operator
            )
        info = dict(info)
        return curvature, info.pop("eigenvector"), info

    def init(self, params) -> SharpnessState:
        checked_params("params", params)
        return vector_state(params)

    def update(
        self, fn, params, state: SharpnessState, key, *, operator=None, grad=None
    ):
        checked_params("params", params)
        curvature, direction, info = self.run(fn, params, operator=operator)
        curvature = curvature.astype(state.estimate.dtype)
        return curvature, SharpnessState(direction, curvature), info
