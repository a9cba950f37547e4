"""LeCun-normal initialisation shared by the models (the default of Flax and Haiku)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PRNGKeyArray


def lecun_normal(key: PRNGKeyArray, shape: tuple[int, ...], fan_in: int) -> Array:
    """A normal truncated at two standard deviations, scaled to variance `1/fan_in`."""
    # The truncated standard normal on [-2, 2] has standard deviation 0.87962566.
    stddev = np.sqrt(1.0 / fan_in) / 0.87962566103423978
    return stddev * jax.random.truncated_normal(key, -2.0, 2.0, shape)


def lecun_linear(in_features: int, out_features: int, *, key: PRNGKeyArray):
    """An `eqx.nn.Linear` with LeCun-normal weights and zero biases."""
    layer = eqx.nn.Linear(in_features, out_features, key=key)
    weight = lecun_normal(key, layer.weight.shape, in_features)
    return eqx.tree_at(
        lambda lin: (lin.weight, lin.bias), layer, (weight, jnp.zeros_like(layer.bias))
    )
