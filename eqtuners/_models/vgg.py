import equinox as eqx
import jax
from jaxtyping import Array, Float, PRNGKeyArray

from ._init import check_image_shape, check_width, lecun_linear, scaled_width
from ._layers import Conv2d, global_average_pool, max_pool

# Output channels of each 3x3 convolution; "M" is a 2x2 max-pool of stride 2.
VGG11_CONFIG = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


class VGG(eqx.Module):
    """VGG without batch norm and without dropout (VGG11 by default), for small images.

    **Architecture.** Each number of `config` is a 3x3 convolution (stride 1, padding
    1, **with a bias**) followed by a ReLU; each `"M"` is a 2x2 max-pool of stride 2
    in *ceil mode* (an odd size rounds up, so 28x28 and 8x8 inputs work too; on
    32x32 inputs it is the usual pool). The **head** is a global average pool over
    the remaining positions (1x1 for 32x32 inputs after five pools, so it equals the
    usual flatten) and one linear layer to `num_classes` logits. There is no
    normalisation layer and no dropout. Layers are channels last (see `Conv2d`).

    **Initialisation.** Convolutions and head are LeCun normal (a normal truncated at
    two standard deviations with variance `1/fan_in`, fan-in = input channels x 9;
    the default of Flax and Haiku, as for the MLP) with zero biases. Without
    normalisation the scale of the network at initialisation is set by this choice
    alone, and it sets the initial sharpness: He normal (variance `2/fan_in`, which
    keeps the activations' second moment through each ReLU) makes the pooled
    features large and positive, so the logits carry large example-independent
    offsets: the initial loss and sharpness are orders of magnitude above LeCun
    normal's (on Fashion-MNIST, GD diverges at step size 0.1 and Armijo's steps
    collapse), while with LeCun normal GD at 0.1, Armijo (starting every step at
    1) and Polyak (capped at 1) all train it. LeCun normal halves the activations'
    second moment at each ReLU, which keeps the initial logits small (loss near
    1/2) without making gradients vanish over eight layers.

    **Size.** With `VGG11_CONFIG`, `width=1`, 3 input channels and 10 classes:
    9,225,610 parameters (9,220,480 in the convolutions, 5,130 in the head).

    **Arguments:**

    - `in_channels`: channels of the input images (3 for CIFAR10, 1 for
      Fashion-MNIST).
    - `num_classes`: outputs of the head.
    - `config`: the convolutions and pools, e.g. `VGG11_CONFIG`.
    - `width`: a multiplier of every convolution's channels (rounded, at least 1);
      `width=1/8` gives a narrow network of the same depth for tests.
    - `key`: a JAX PRNG key.

    The model is called on **one** image, channels last: `(height, width,
    channels)` -> `(num_classes,)` logits.
    """

    convs: tuple[Conv2d, ...]
    pool_after: tuple[bool, ...] = eqx.field(static=True)
    head: eqx.nn.Linear

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 10,
        config: tuple[int | str, ...] = VGG11_CONFIG,
        *,
        width: float | int = 1.0,
        key: PRNGKeyArray,
    ):
        width = check_width(width)
        if not config or config[0] == "M":
            raise ValueError(f"`config` must start with a convolution, got {config}.")
        keys = iter(jax.random.split(key, len(config) + 1))
        convs, pool_after = [], []
        channels = in_channels
        for item in config:
            if item == "M":
                if pool_after[-1]:
                    raise ValueError(f"`config` has two 'M' in a row: {config}.")
                pool_after[-1] = True
            elif isinstance(item, int) and not isinstance(item, bool) and item > 0:
                out = scaled_width(item, width)
                convs.append(Conv2d(channels, out, 3, gain=1.0, key=next(keys)))
                pool_after.append(False)
                channels = out
            else:
                raise ValueError(
                    f"`config` holds positive channel counts and 'M', got {item!r}."
                )
        self.convs = tuple(convs)
        self.pool_after = tuple(pool_after)
        self.head = lecun_linear(channels, num_classes, key=next(keys))

    def __call__(self, x: Float[Array, "height width channels"]) -> Float[Array, " c"]:
        check_image_shape(x.shape, "VGG", self.convs[0].weight.shape[2])
        for conv, pool in zip(self.convs, self.pool_after):
            x = jax.nn.relu(conv(x))
            if pool:
                x = max_pool(x)
        return self.head(global_average_pool(x))
