"""Channels-last layers for the convolutional models.

The models take one image `(height, width, channels)` and keep that layout all the
way through. A convolution is computed in one of two ways, equal up to float
rounding:

- on **GPU and TPU**, `lax.conv_general_dilated` with `NHWC` x `HWIO` -> `NHWC`
  (cuDNN or the TPU's convolution units);
- on **CPU**, as patches times a matrix: the `kh * kw` shifted (and strided) views
  of the padded image are concatenated along the channels and multiplied by the
  kernel reshaped to `(kh * kw * in, out)`. Inside a `lax.scan` or `while_loop` (the
  training loop, the chunked objective, power iteration) XLA:CPU cannot choose the
  layouts of a convolution's weight gradient and falls back to a path that is
  much slower (jax-ml/jax#12868); as patches times a matrix the gradients are
  matrix products and slices, which keep their speed inside loops. Outside loops
  the two are on par.

The choice is made when the model is traced, from `jax.default_backend()`.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, Float, PRNGKeyArray

from ._init import variance_scaling


class Conv2d(eqx.Module):
    """A 2-d convolution on one channels-last image, with a bias.

    Square kernel, "same" padding (`kernel_size // 2` on each side, so a stride-1
    convolution keeps the size), weights `(kh, kw, in, out)` drawn with variance
    `gain / fan_in` (a normal truncated at two standard deviations; fan-in =
    `in_channels * kernel_size**2`; `gain=1`, the default, is LeCun normal and
    `gain=2` He normal), zero bias.

    **Arguments:**

    - `in_channels`, `out_channels`: channels of the input and the output.
    - `kernel_size`: the side of the square kernel (odd).
    - `stride`: the stride in both directions.
    - `gain`: the variance-scaling gain of the initialisation.
    - `key`: a JAX PRNG key.
    """

    weight: Float[Array, "kh kw cin cout"]
    bias: Float[Array, " cout"]
    stride: int = eqx.field(static=True)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        stride: int = 1,
        gain: float = 1.0,
        key: PRNGKeyArray,
    ):
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"`kernel_size` must be odd and >= 1, got {kernel_size}.")
        shape = (kernel_size, kernel_size, in_channels, out_channels)
        fan_in = in_channels * kernel_size * kernel_size
        self.weight = variance_scaling(key, shape, fan_in, gain)
        self.bias = jnp.zeros((out_channels,))
        self.stride = stride

    def __call__(self, x: Float[Array, "h w cin"]) -> Float[Array, "h2 w2 cout"]:
        if jax.default_backend() == "cpu":
            out = conv_as_matmul(x, self.weight, self.stride)
        else:
            out = conv_xla(x, self.weight, self.stride)
        return out + self.bias


def conv_xla(x: Array, weight: Array, stride: int) -> Array:
    """A "same"-padded convolution of one channels-last image, by XLA."""
    pad = weight.shape[0] // 2
    return lax.conv_general_dilated(
        x[None],
        weight,
        window_strides=(stride, stride),
        padding=((pad, pad), (pad, pad)),
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )[0]


def conv_as_matmul(x: Array, weight: Array, stride: int) -> Array:
    """The same convolution as `conv_xla`, as patches times a matrix."""
    kh, kw, cin, cout = weight.shape
    height, width = x.shape[0], x.shape[1]
    out_h, out_w = (height - 1) // stride + 1, (width - 1) // stride + 1
    padded = jnp.pad(x, ((kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
    views = [
        lax.slice(
            padded,
            (i, j, 0),
            (i + (out_h - 1) * stride + 1, j + (out_w - 1) * stride + 1, cin),
            (stride, stride, 1),
        )
        for i in range(kh)
        for j in range(kw)
    ]
    patches = views[0] if len(views) == 1 else jnp.concatenate(views, axis=-1)
    return patches @ weight.reshape(kh * kw * cin, cout)


def max_pool(x: Float[Array, "h w c"]) -> Float[Array, "h2 w2 c"]:
    """2x2 max-pooling of stride 2 in ceil mode: an odd side rounds up (7 -> 4)."""
    pad_h, pad_w = x.shape[0] % 2, x.shape[1] % 2
    return lax.reduce_window(
        x,
        -jnp.inf,
        lax.max,
        window_dimensions=(2, 2, 1),
        window_strides=(2, 2, 1),
        padding=((0, pad_h), (0, pad_w), (0, 0)),
    )


def global_average_pool(x: Float[Array, "h w c"]) -> Float[Array, " c"]:
    """The mean over the spatial positions."""
    return jnp.mean(x, axis=(0, 1))
