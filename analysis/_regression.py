"""The second-order regression model (Agarwala, Pedregosa and Pennington, ICML 2023).

Each of `n` data points has an output that is quadratic in the `p` parameters,

    f_i(theta) = f0_i + g_i^T theta + 1/2 theta^T Q_i theta,      (Q_i symmetric)

and the loss is the mean squared error `L = 1/(2n) sum_i r_i^2` with residuals
`r_i = f_i(theta) - y_i`. The output Jacobian `J(theta)` has rows
`g_i + Q_i theta`, so

    grad L = J^T r / n,        H = (J^T J + sum_i r_i Q_i) / n.

Its first term is the Gauss-Newton matrix (the NTK `J J^T / n` has the same nonzero
eigenvalues). With all `Q_i = 0` the model is linear regression: `H` is constant and
gradient descent is the top-eigenmode quadratic of `TopEigenmodeQuadratic` with
several modes. With `Q_i != 0` the Jacobian moves with `theta`: a gradient step
changes it by `-gamma sum_i (grad L)_j Q_i`, which is what lets the NTK, and hence
the sharpness, grow during training (progressive sharpening) until gradient descent
hits `2 / gamma`, and then hold it there (edge of stability).

Here the dynamics are exact in parameter space: `simulate` steps `theta`, and the
sharpness is the top eigenvalue of the dense `p x p` Hessian at every step.
"""

import functools

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray, Scalar

from eqtuners.internal import checked_float, checked_int

from ._simulate import AbstractDynamicsModel


class SecondOrderRegression(AbstractDynamicsModel):
    """Squared loss of outputs quadratic in the parameters (see the module).

    **Arguments:**

    - `offsets`: `f0`, shape `(n,)`.
    - `jacobian`: the rows `g_i`, shape `(n, p)`.
    - `curvatures`: the matrices `Q_i`, shape `(n, p, p)`; their symmetric parts
      are kept.
    - `targets`: `y`, shape `(n,)`.
    """

    offsets: Float[Array, " n"]
    jacobian: Float[Array, "n p"]
    curvatures: Float[Array, "n p p"]
    targets: Float[Array, " n"]

    def __init__(self, offsets, jacobian, curvatures, targets):
        jacobian = jnp.asarray(jacobian)
        if jacobian.ndim != 2:
            raise ValueError(f"`jacobian` must be (n, p), got {jacobian.shape}.")
        n, p = jacobian.shape
        offsets, targets = jnp.asarray(offsets), jnp.asarray(targets)
        curvatures = jnp.asarray(curvatures)
        for name, array, shape in [
            ("offsets", offsets, (n,)),
            ("curvatures", curvatures, (n, p, p)),
            ("targets", targets, (n,)),
        ]:
            if array.shape != shape:
                raise ValueError(
                    f"`{name}` must have shape {shape} to match `jacobian` "
                    f"{jacobian.shape}, got {array.shape}."
                )
        self.offsets = offsets
        self.jacobian = jacobian
        self.curvatures = (curvatures + jnp.swapaxes(curvatures, 1, 2)) / 2
        self.targets = targets

    def outputs(self, params: Float[Array, " p"]) -> Float[Array, " n"]:
        """`f(theta)`, one output per data point."""
        quadratic = jnp.einsum("ijk,j,k->i", self.curvatures, params, params)
        return self.offsets + self.jacobian @ params + quadratic / 2

    def output_jacobian(self, params: Float[Array, " p"]) -> Float[Array, "n p"]:
        """`J(theta)`, with rows `g_i + Q_i theta`."""
        return self.jacobian + self.curvatures @ params

    def loss(self, params: Float[Array, " p"]) -> Scalar:
        return jnp.mean((self.outputs(params) - self.targets) ** 2) / 2

    def hessian(self, params: Float[Array, " p"]) -> Float[Array, "p p"]:
        """The dense Hessian, `(J^T J + sum_i r_i Q_i) / n`."""
        jac = self.output_jacobian(params)
        residuals = self.outputs(params) - self.targets
        n = self.targets.shape[0]
        return (jac.T @ jac + jnp.einsum("i,ijk->jk", residuals, self.curvatures)) / n

    def sharpness(self, params: Float[Array, " p"]) -> Scalar:
        """The largest eigenvalue of the dense Hessian."""
        return jnp.linalg.eigvalsh(self.hessian(params))[-1]

    def ntk_top_eigenvalue(self, params: Float[Array, " p"]) -> Scalar:
        """The largest eigenvalue of the Gauss-Newton matrix `J^T J / n` (that of the
        NTK `J J^T / n`): the sharpness once the residuals vanish."""
        jac = self.output_jacobian(params)
        return jnp.linalg.eigvalsh(jac.T @ jac / self.targets.shape[0])[-1]


def random_second_order_regression(
    key: PRNGKeyArray,
    num_data: int = 20,
    num_params: int = 40,
    *,
    curvature_scale=1.0,
    target_scale=1.0,
    spectrum_decay=0.0,
    dtype=None,
) -> SecondOrderRegression:
    """A random instance: Gaussian `g_i`, `Q_i` and targets, zero `f0`.

    Entries of `g_i` have variance `(i + 1)^(-spectrum_decay) / p` and those of `Q_i`
    variance `curvature_scale^2 / p`: at `theta = 0` the NTK has eigenvalues of order
    `(i + 1)^(-spectrum_decay)` (a power law, as for real data, when the decay is
    positive), and moving `theta` by O(1) changes the Jacobian by
    O(`curvature_scale`). With `num_data < num_params` the targets can be fitted
    exactly (the minimum is 0); with more data than parameters, generically not.

    **Arguments:**

    - `key`: a JAX PRNG key.
    - `num_data`, `num_params`: `n` and `p`.
    - `curvature_scale`: the scale of the `Q_i`, >= 0 (0: linear regression).
    - `target_scale`: the standard deviation of the targets, > 0.
    - `spectrum_decay`: the power-law decay of the initial NTK spectrum, >= 0.
    - `dtype`: the floating dtype (default: JAX's default).
    """
    checked_int("num_data", num_data)
    checked_int("num_params", num_params)
    curvature_scale = checked_float(
        "curvature_scale", curvature_scale, lower=0.0, lower_open=False
    )
    target_scale = checked_float("target_scale", target_scale, lower=0.0)
    spectrum_decay = checked_float(
        "spectrum_decay", spectrum_decay, lower=0.0, lower_open=False
    )
    dtype = jnp.result_type(float) if dtype is None else dtype
    arrays = _random_arrays(
        key, curvature_scale, target_scale, spectrum_decay, num_data, num_params, dtype
    )
    return SecondOrderRegression(*arrays)


@functools.partial(jax.jit, static_argnums=(4, 5, 6))
def _random_arrays(
    key, curvature_scale, target_scale, spectrum_decay, num_data, num_params, dtype
):
    g_key, q_key, y_key = jax.random.split(key, 3)
    row_scales = jnp.arange(1, num_data + 1, dtype=dtype) ** (-spectrum_decay / 2)
    scale = 1 / jnp.sqrt(num_params)
    jacobian = jax.random.normal(g_key, (num_data, num_params), dtype)
    jacobian = scale * row_scales[:, None] * jacobian
    curvatures = jax.random.normal(q_key, (num_data, num_params, num_params), dtype)
    curvatures = curvature_scale * scale * curvatures
    targets = target_scale * jax.random.normal(y_key, (num_data,), dtype)
    return jnp.zeros(num_data, dtype), jacobian, curvatures, targets
