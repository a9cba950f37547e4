"""Initialisations shared by the models.

All weights are drawn from a normal truncated at two standard deviations, rescaled so
that the variance is `gain / fan_in` (a "variance scaling" initialiser): `gain = 1` is
LeCun normal (the default of Flax and Haiku), `gain = 2` is He (Kaiming) normal, the
choice that keeps the second moment of the activations constant through a layer
followed by a ReLU. Biases start at zero.
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PRNGKeyArray

# The truncated standard normal on [-2, 2] has standard deviation 0.87962566.
_TRUNCATED_STD = 0.87962566103423978


def variance_scaling(
    key: PRNGKeyArray, shape: tuple[int, ...], fan_in: int, gain: float = 1.0
) -> Array:
    """A normal truncated at two standard deviations, with variance `gain/fan_in`."""
    stddev = np.sqrt(gain / fan_in) / _TRUNCATED_STD
    return stddev * jax.random.truncated_normal(key, -2.0, 2.0, shape)


def lecun_normal(key: PRNGKeyArray, shape: tuple[int, ...], fan_in: int) -> Array:
    """A normal truncated at two standard deviations, scaled to variance `1/fan_in`."""
    return variance_scaling(key, shape, fan_in, 1.0)


def lecun_linear(in_features: int, out_features: int, *, key: PRNGKeyArray):
    """An `eqx.nn.Linear` with LeCun-normal weights and zero biases."""
    layer = eqx.nn.Linear(in_features, out_features, key=key)
    weight = lecun_normal(key, layer.weight.shape, in_features)
    return eqx.tree_at(
        lambda lin: (lin.weight, lin.bias), layer, (weight, jnp.zeros_like(layer.bias))
    )


def scaled_width(channels: int, width: float) -> int:
    """`channels * width`, rounded, and at least 1."""
    return max(1, int(round(channels * width)))


def check_width(width) -> float:
    """Checks a width multiplier (a positive, finite number)."""
    if (
        isinstance(width, bool)
        or not isinstance(width, int | float)
        or not math.isfinite(width)
        or width <= 0
    ):
        raise ValueError(f"`width` must be a positive number, got {width!r}.")
    return float(width)


def check_image_shape(
    shape: tuple[int, ...], name: str, channels: int | None = None
) -> None:
    """Raises a ValueError unless `shape` is one channels-last image `(H, W, C)`,
    with `C == channels` when given."""
    if len(shape) != 3:
        raise ValueError(
            f"{name} takes one image of shape (height, width, channels), channels "
            f"last, got an input of shape {shape}."
        )
    if channels is not None and shape[-1] != channels:
        raise ValueError(
            f"{name} was built for images with {channels} channels, got an input of "
            f"shape {shape}."
        )
