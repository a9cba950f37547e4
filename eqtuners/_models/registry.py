import math
from collections.abc import Callable

import equinox as eqx
import jax
import numpy as np

from .._validation import checked_int, checked_key
from ._init import check_image_shape, check_width, scaled_width
from .mlp import MLP, PAPER_WIDTHS
from .resnet import RESNET34_STAGES, ResNet
from .vgg import VGG, VGG11_CONFIG


def _mlp(input_shape, num_classes, *, width, key):
    widths = tuple(scaled_width(w, width) for w in PAPER_WIDTHS)
    return MLP(math.prod(input_shape), num_classes, widths, key=key)


def _vgg11(input_shape, num_classes, *, width, key):
    check_image_shape(input_shape, "vgg11")
    return VGG(input_shape[-1], num_classes, VGG11_CONFIG, width=width, key=key)


def _resnet34(input_shape, num_classes, *, width, key):
    check_image_shape(input_shape, "resnet34")
    return ResNet(input_shape[-1], num_classes, RESNET34_STAGES, width=width, key=key)


MODELS: dict[str, Callable[..., eqx.Module]] = {
    "mlp": _mlp,
    "vgg11": _vgg11,
    "resnet34": _resnet34,
}

# Examples per chunk when evaluating the full-batch objective and Hessian-vector
# products (`train(..., chunk_size=...)`), chosen so that the paper's 4096-example
# full batch fits in memory: for the full-width convolutional models, 256 examples
# keep the temporary buffers of a gradient or an HVP to a few GiB (measured with
# XLA's memory analysis on CPU, where they grow linearly with the chunk), and a
# chunk of 256 32x32 images still feeds large matrix products to a GPU. The MLP is
# small enough to evaluate at once.
DEFAULT_CHUNK_SIZES: dict[str, int | None] = {
    "mlp": None,
    "vgg11": 256,
    "resnet34": 256,
}


def make_model(
    name: str,
    input_shape: tuple[int, ...],
    num_classes: int,
    *,
    key,  # checked by `checked_key`, whose message says what to pass
    width: float | int = 1.0,
) -> eqx.Module:
    """Builds a model by name for examples of `input_shape` (channels last).

    **Arguments:**

    - `name`: one of `MODELS`: `"mlp"` (the paper's 6-layer MLP), `"vgg11"` (VGG11
      without batch norm and dropout) or `"resnet34"` (ResNet34 without batch norm).
    - `input_shape`: the shape of one example, e.g. `(32, 32, 3)`; the convolutional
      models need `(height, width, channels)`.
    - `num_classes`: the number of outputs.
    - `key`: a JAX PRNG key for the initialisation.
    - `width`: a multiplier of every hidden width / channel count (1: the paper's
      sizes); tests use narrow versions of the same architectures, e.g. 1/8.

    **Returns:** an Equinox module called on one example.
    """
    try:
        builder = MODELS[name]
    except KeyError:
        raise ValueError(
            f"Unknown model {name!r}; choose one of {sorted(MODELS)}."
        ) from None
    width = check_width(width)
    num_classes = checked_int("num_classes", num_classes)
    key = checked_key("key", key)
    return builder(tuple(input_shape), num_classes, width=width, key=key)


def num_parameters(model) -> int:
    """The number of floating-point parameters of `model`.

    Works on a model and on the output of `jax.eval_shape` of its constructor (whose
    leaves are `jax.ShapeDtypeStruct`s), so full-size models can be counted without
    allocating them.
    """
    leaves = jax.tree.leaves(model)
    return int(
        sum(
            math.prod(leaf.shape)
            for leaf in leaves
            if hasattr(leaf, "shape")
            and hasattr(leaf, "dtype")
            and np.issubdtype(leaf.dtype, np.inexact)
        )
    )
