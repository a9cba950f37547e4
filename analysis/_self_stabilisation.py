"""The reduced dynamics of self-stabilisation (Damian, Nichani and Lee, 2022), with the
step size chosen by a tuner.

Damian et al. follow gradient descent near a point `theta*` of sharpness `S*`, with
top eigenvector `u`, and define the *progressive sharpening* rate and the
*self-stabilisation* strength

    alpha = -grad L . grad S,        beta = ||grad S||^2,

where `S(theta)` is the sharpness. In the two variables `x = u . (theta - theta*)`
(the displacement along the top eigenvector) and the sharpness
`S = S* + grad S . (theta - theta*)`, the cubic Taylor expansion of the loss gives

    L = L* + 1/2 S x^2 + (the loss along grad S),

because `nabla^3 L[u, u, .] = grad S` (the derivative of `S = u^T H u`): for the
part `d` of `theta - theta*` off `u`, the cubic Taylor term holds
`3 * 1/6 nabla^3 L[x u, x u, d] = 1/2 x^2 grad S . d`, which turns the curvature
`S*` of `1/2 S* x^2` into `S`. A gradient step of size `eta` then moves

    x <- x - eta S x = (1 - eta S) x,
    S <- S - eta grad S . grad L = S + eta (alpha - 1/2 beta x^2),

the second because `grad S . grad(1/2 S x^2) = 1/2 x^2 ||grad S||^2`. With a fixed
step and `y = S - 2 / eta` this is their system `x <- -(1 + eta y) x`,
`y <- y + eta (alpha - beta x^2 / 2)`: when `S > 2 / eta` the displacement grows,
and its square pulls the sharpness back down.

**The extension.** A tuner needs a loss to evaluate trial steps. We make the loss
along `grad S` explicit, with a floor at 0 so that the Polyak step (`f* = 0`) makes
sense: the parameters are `w = (x, z)` with `S = sqrt(beta) z` (so that
`||grad S||^2 = beta` in these coordinates), and

    L(x, z) = (S x + eps)^2 / (2 S) + alpha / (2 beta S_max) (S_max - S)^2.

The second term is the loss that training removes by sharpening: it decreases as
`S` grows towards `S_max` and vanishes there. At `x = 0`, `grad S . grad L =
-alpha (1 - S / S_max)` (for `eps = 0`), so the sharpening rate is
`alpha (1 - S / S_max)`: Damian's constant `alpha` while `S << S_max`, tapering as
the loss runs out. The first term is `1/2 S x^2 + eps x + eps^2 / (2 S)`: with
`eps = 0` it is Damian's; a small *misalignment* `eps > 0` (a gradient component
along `u`) keeps re-seeding the displacement, whose minimum moves to `-eps / S`.
Without it, `x` is multiplied by `|1 - eta S|`, close to 0 when `eta S` crosses 1
on the way to the edge, and underflows to exactly 0 on long runs; in a network the
motion of `theta*` and of `u` plays that role. Gradient descent with any step
`eta_t` on `L` is exactly

    x <- (1 - eta_t S) x - eta_t eps,
    S <- S + eta_t (alpha (1 - S / S_max) - 1/2 beta (x^2 - eps^2 / S^2)),

and `simulate` runs it with `eta_t` from any `eqtuners` tuner, which sees the value
and gradient of `L` like those of any loss. The recorded sharpness is `S`, the
variable of the reduced dynamics (the curvature along `u`); `S` must stay > 0.
"""

import jax.numpy as jnp
from jaxtyping import Array, Float, Scalar

from eqtuners.internal import checked_float

from ._simulate import AbstractDynamicsModel


class SelfStabilisation(AbstractDynamicsModel):
    """The two-variable model above: parameters `w = (x, z)`, sharpness
    `S = sqrt(beta) z`, loss
    `(S x + eps)^2 / (2 S) + alpha / (2 beta S_max) (S_max - S)^2`.

    **Arguments:**

    - `sharpening_rate`: `alpha` > 0, the sharpness gained per unit of step size
      while `S << S_max` and `x = 0`.
    - `stabilisation_strength`: `beta = ||grad S||^2` > 0; the sharpness lost per
      unit of step size is `beta x^2 / 2`.
    - `max_sharpness`: `S_max` > 0, where sharpening stops as the loss runs out.
    - `misalignment`: `eps` >= 0, the gradient along `u` at `x = 0` (0: Damian's
      dynamics exactly).
    """

    sharpening_rate: Array
    stabilisation_strength: Array
    max_sharpness: Array
    misalignment: Array

    def __init__(
        self, sharpening_rate, stabilisation_strength, max_sharpness, misalignment=0.0
    ):
        self.sharpening_rate = checked_float(
            "sharpening_rate", sharpening_rate, lower=0.0
        )
        self.stabilisation_strength = checked_float(
            "stabilisation_strength", stabilisation_strength, lower=0.0
        )
        self.max_sharpness = checked_float("max_sharpness", max_sharpness, lower=0.0)
        self.misalignment = checked_float(
            "misalignment", misalignment, lower=0.0, lower_open=False
        )

    def params_at(self, displacement, sharpness) -> Float[Array, "2"]:
        """The parameters `(x, z)` for a displacement `x` and a sharpness `S`."""
        z = jnp.asarray(sharpness) / jnp.sqrt(self.stabilisation_strength)
        return jnp.stack(jnp.broadcast_arrays(jnp.asarray(displacement), z))

    def displacement(self, params: Float[Array, "2"]) -> Scalar:
        """`x`, along the top eigenvector."""
        return params[0]

    def sharpness(self, params: Float[Array, "2"]) -> Scalar:
        """`S = sqrt(beta) z`."""
        return jnp.sqrt(self.stabilisation_strength) * params[1]

    def residual_loss(self, sharpness) -> Array:
        """The loss along `grad S`, `alpha / (2 beta S_max) (S_max - S)^2`."""
        scale = self.sharpening_rate / (
            2 * self.stabilisation_strength * self.max_sharpness
        )
        return scale * (self.max_sharpness - sharpness) ** 2

    def loss(self, params: Float[Array, "2"]) -> Scalar:
        x, sharpness = self.displacement(params), self.sharpness(params)
        top_mode = (sharpness * x + self.misalignment) ** 2 / (2 * sharpness)
        return top_mode + self.residual_loss(sharpness)
