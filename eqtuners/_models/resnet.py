import equinox as eqx
import jax
from jaxtyping import Array, Float, PRNGKeyArray

from ._init import check_image_shape, check_width, lecun_linear, scaled_width
from ._layers import Conv2d, global_average_pool

# Basic blocks per stage; the stages have 64, 128, 256 and 512 channels.
RESNET34_STAGES = (3, 4, 6, 3)
STAGE_CHANNELS = (64, 128, 256, 512)


class BasicBlock(eqx.Module):
    """A residual basic block without normalisation.

    `relu(conv2(relu(conv1(x))) + shortcut(x))`: two 3x3 convolutions, the first with
    stride `stride`; the shortcut is the identity, or a 1x1 convolution of stride
    `stride` where the shape changes (a projection, "option B").
    """

    conv1: Conv2d
    conv2: Conv2d
    shortcut: Conv2d | None

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        stride: int,
        gain: float,
        residual_gain: float,
        key: PRNGKeyArray,
    ):
        k1, k2, k3 = jax.random.split(key, 3)
        self.conv1 = Conv2d(
            in_channels, out_channels, 3, stride=stride, gain=gain, key=k1
        )
        self.conv2 = Conv2d(out_channels, out_channels, 3, gain=residual_gain, key=k2)
        if stride != 1 or in_channels != out_channels:
            self.shortcut = Conv2d(
                in_channels, out_channels, 1, stride=stride, gain=gain, key=k3
            )
        else:
            self.shortcut = None

    def __call__(self, x: Float[Array, "h w c"]) -> Float[Array, "h2 w2 c2"]:
        out = self.conv2(jax.nn.relu(self.conv1(x)))
        shortcut = x if self.shortcut is None else self.shortcut(x)
        return jax.nn.relu(out + shortcut)


class ResNet(eqx.Module):
    """A ResNet of basic blocks without batch norm (ResNet34 by default), CIFAR style.

    **Architecture.** A 3x3 convolution stem (stride 1, 64 channels, ReLU, **no
    max-pool**, as is usual for 32x32 images); four stages of `BasicBlock`s with
    64, 128, 256 and 512 channels and `stage_sizes` blocks each (3, 4, 6, 3 for
    ResNet34), the first block of stages 2 to 4 halving the resolution with stride 2
    and a 1x1 projection shortcut; the **head** is a global average pool and one
    linear layer to `num_classes` logits. Every convolution **carries a bias** (they
    take over the shift that batch norm would provide). No normalisation layer.

    **Initialisation.** Every convolution is LeCun normal (a normal truncated at two
    standard deviations with variance `1/fan_in`, the default of Flax and Haiku, as
    for the MLP and VGG), except the second convolution of each residual branch,
    whose variance is further divided by the number of blocks (`1/(16 fan_in)` for
    ResNet34). Biases start at zero; the head is LeCun normal. Without
    normalisation, each block adds its branch to the running sum, so the branch's
    scale decides how the activations grow with depth: the factor `1/16` makes each
    block add about 1/32 of its input's second moment, instead of compounding over
    16 blocks into features, logits and a sharpness that grow by orders of magnitude
    (with He normal and the same scaling the network trains only at step sizes
    orders of magnitude below the paper's). With this initialisation the initial
    loss is near 1/2 (the logits are small) and the initial sharpness is in the
    tens, so GD, Armijo (which starts every step at 1) and Polyak (capped at 1)
    train it at the paper's settings.
    Unlike a zero initialisation of the residual branches (Fixup, "zero-init
    residual"), every weight has a non-zero gradient at initialisation.

    **Size.** With `RESNET34_STAGES`, `width=1`, 3 input channels and 10 classes:
    21,273,610 parameters (21,268,480 in the convolutions, 5,130 in the head).

    **Arguments:**

    - `in_channels`: channels of the input images.
    - `num_classes`: outputs of the head.
    - `stage_sizes`: basic blocks per stage, e.g. `RESNET34_STAGES`.
    - `width`: a multiplier of every convolution's channels (rounded, at least 1).
    - `key`: a JAX PRNG key.

    The model is called on **one** image, channels last: `(height, width,
    channels)` -> `(num_classes,)` logits.
    """

    stem: Conv2d
    blocks: tuple[BasicBlock, ...]
    head: eqx.nn.Linear

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 10,
        stage_sizes: tuple[int, ...] = RESNET34_STAGES,
        *,
        width: float | int = 1.0,
        key: PRNGKeyArray,
    ):
        width = check_width(width)
        if len(stage_sizes) != len(STAGE_CHANNELS) or any(
            isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in stage_sizes
        ):
            raise ValueError(
                f"`stage_sizes` must be {len(STAGE_CHANNELS)} positive ints, got "
                f"{stage_sizes!r}."
            )
        num_blocks = sum(stage_sizes)
        keys = iter(jax.random.split(key, num_blocks + 2))
        channels = scaled_width(STAGE_CHANNELS[0], width)
        self.stem = Conv2d(in_channels, channels, 3, gain=1.0, key=next(keys))
        blocks = []
        for stage, (size, base) in enumerate(zip(stage_sizes, STAGE_CHANNELS)):
            out = scaled_width(base, width)
            for index in range(size):
                stride = 2 if stage > 0 and index == 0 else 1
                blocks.append(
                    BasicBlock(
                        channels,
                        out,
                        stride=stride,
                        gain=1.0,
                        residual_gain=1.0 / num_blocks,
                        key=next(keys),
                    )
                )
                channels = out
        self.blocks = tuple(blocks)
        self.head = lecun_linear(channels, num_classes, key=next(keys))

    def __call__(self, x: Float[Array, "height width channels"]) -> Float[Array, " c"]:
        check_image_shape(x.shape, "ResNet", self.stem.weight.shape[2])
        x = jax.nn.relu(self.stem(x))
        for block in self.blocks:
            x = block(x)
        return self.head(global_average_pool(x))
