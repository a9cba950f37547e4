import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from ._init import lecun_linear

PAPER_WIDTHS = (128, 128, 64, 64, 32, 32)


class MLP(eqx.Module):
    """The paper's multilayer perceptron.

    The input is flattened, then goes through one fully connected layer per hidden
    width with a ReLU after each, then a linear head to `num_classes` outputs. There is
    no normalisation and no dropout. Weights are LeCun-normal (a normal truncated at
    two standard deviations with variance `1/fan_in`, the Flax and Haiku default);
    biases start at zero.

    **Arguments:**

    - `in_size`: the number of input features (the product of an example's shape).
    - `num_classes`: outputs of the head (10 for digits and CIFAR10).
    - `widths`: the hidden widths; the paper's are (128, 128, 64, 64, 32, 32).
    - `key`: a JAX PRNG key.

    With the paper's widths, 64 inputs (digits) give 40,714 parameters and 3072
    inputs (CIFAR10) 425,738.
    """

    layers: tuple[eqx.nn.Linear, ...]

    def __init__(
        self,
        in_size: int,
        num_classes: int = 10,
        widths: tuple[int, ...] = PAPER_WIDTHS,
        *,
        key: PRNGKeyArray,
    ):
        sizes = (in_size, *widths, num_classes)
        keys = jax.random.split(key, len(sizes) - 1)
        self.layers = tuple(
            lecun_linear(a, b, key=k) for a, b, k in zip(sizes[:-1], sizes[1:], keys)
        )

    def __call__(self, x: Float[Array, "..."]) -> Float[Array, " classes"]:
        if x.size != self.layers[0].in_features:
            raise ValueError(
                f"This MLP takes inputs of {self.layers[0].in_features} numbers, got "
                f"an input of shape {x.shape}."
            )
        x = jnp.ravel(x)
        for layer in self.layers[:-1]:
            x = jax.nn.relu(layer(x))
        return self.layers[-1](x)
