"""The paper's architectures: VGG11 (no batch norm, no dropout) and ResNet34 (no
batch norm), beside the MLP. Full-width models are only traced (`eval_shape`); the
computations run on narrow versions of the same architectures."""

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import eqtuners as et
from eqtuners._models._layers import conv_as_matmul, conv_xla, max_pool

# Stated in the docstrings of VGG, ResNet and MLP (32x32x3 inputs, 10 classes).
FULL_WIDTH_PARAMETERS = {"mlp": 425_738, "vgg11": 9_225_610, "resnet34": 21_273_610}
NORMALISATION = (
    eqx.nn.BatchNorm,
    eqx.nn.LayerNorm,
    eqx.nn.GroupNorm,
    eqx.nn.RMSNorm,
    eqx.nn.Dropout,
)
NARROW = 1 / 16


@functools.cache
def narrow_model(name, shape=(32, 32, 3)):
    return et.make_model(name, shape, 10, width=NARROW, key=jax.random.key(0))


@functools.cache
def batch(shape=(32, 32, 3), n=8):
    x = jax.random.normal(jax.random.key(1), (n, *shape))
    return x, jnp.arange(n) % 10


def submodules(model):
    return [
        leaf
        for leaf in jax.tree.leaves(model, is_leaf=lambda x: isinstance(x, eqx.Module))
        if isinstance(leaf, eqx.Module)
    ]


@pytest.mark.parametrize("name", sorted(FULL_WIDTH_PARAMETERS))
def test_full_width_models_have_the_stated_size_and_output(name):
    model = eqx.filter_eval_shape(
        et.make_model, name, (32, 32, 3), 10, key=jax.random.key(0)
    )
    assert et.num_parameters(model) == FULL_WIDTH_PARAMETERS[name]
    logits = eqx.filter_eval_shape(
        lambda m, x: m(x), model, jax.ShapeDtypeStruct((32, 32, 3), jnp.float32)
    )
    assert logits.shape == (10,) and logits.dtype == jnp.float32
    assert f"{FULL_WIDTH_PARAMETERS[name]:,}" in type(model).__doc__
    # No normalisation (and no dropout) anywhere in the model.
    full = eqx.filter_eval_shape(
        et.make_model, name, (32, 32, 3), 10, key=jax.random.key(0)
    )
    assert not any(isinstance(m, NORMALISATION) for m in submodules(full))


def test_architectures_are_the_papers():
    vgg = eqx.filter_eval_shape(et.VGG, 3, 10, key=jax.random.key(0))
    assert [c.weight.shape[-1] for c in vgg.convs] == [64, 128, 256, 256] + [512] * 4
    assert vgg.pool_after == (True, True, False, True, False, True, False, True)
    assert all(c.weight.shape[:2] == (3, 3) and c.bias is not None for c in vgg.convs)
    resnet = eqx.filter_eval_shape(et.ResNet, 3, 10, key=jax.random.key(0))
    assert resnet.stem.weight.shape == (3, 3, 3, 64) and resnet.stem.stride == 1
    assert len(resnet.blocks) == 16  # 3 + 4 + 6 + 3 basic blocks
    widths = [b.conv2.weight.shape[-1] for b in resnet.blocks]
    assert widths == [64] * 3 + [128] * 4 + [256] * 6 + [512] * 3
    strides = [b.conv1.stride for b in resnet.blocks]
    assert strides == [1, 1, 1, 2, 1, 1, 1, 2, 1, 1, 1, 1, 1, 2, 1, 1]
    assert [b.shortcut is not None for b in resnet.blocks].count(True) == 3
    assert resnet.head.weight.shape == (10, 512)


@pytest.mark.parametrize("name", ["vgg11", "resnet34", "mlp"])
@pytest.mark.parametrize("shape", [(32, 32, 3), (28, 28, 1), (8, 8, 1)])
def test_models_map_any_image_size_to_logits(name, shape):
    model = eqx.filter_eval_shape(
        et.make_model, name, shape, 10, width=NARROW, key=jax.random.key(0)
    )
    logits = eqx.filter_eval_shape(
        jax.vmap(lambda m, x: m(x), in_axes=(None, 0)),
        model,
        jax.ShapeDtypeStruct((2, *shape), jnp.float32),
    )
    assert logits.shape == (2, 10) and logits.dtype == jnp.float32


@pytest.mark.parametrize("name", ["vgg11", "resnet34"])
def test_every_layer_has_a_finite_nonzero_gradient_at_initialisation(name):
    model = narrow_model(name)
    x, y = batch()
    params, static = eqx.partition(model, eqx.is_inexact_array)
    value, grad = eqx.filter_jit(
        jax.value_and_grad(lambda p: et.data_loss(eqx.combine(p, static), x, y))
    )(params)
    # Initial scale: logits O(1) or smaller, so the loss is near 1/2 (predicting 0).
    assert 0.3 < float(value) < 2.0
    leaves = jax.tree_util.tree_leaves_with_path(grad)
    assert len(leaves) == len(jax.tree.leaves(params))
    for path, leaf in leaves:
        norm = float(jnp.linalg.norm(leaf))
        assert np.isfinite(norm) and norm > 0, jax.tree_util.keystr(path)


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("kernel, size", [(3, 7), (3, 8), (1, 5)])
def test_convolution_as_patches_equals_xla_convolution(stride, kernel, size):
    x = jax.random.normal(jax.random.key(0), (size, size, 3))
    w = jax.random.normal(jax.random.key(1), (kernel, kernel, 3, 4))
    np.testing.assert_allclose(
        conv_as_matmul(x, w, stride), conv_xla(x, w, stride), rtol=1e-5, atol=1e-5
    )


def test_max_pool_is_2x2_stride_2_in_ceil_mode():
    x = jnp.arange(5 * 5 * 2, dtype=jnp.float32).reshape(5, 5, 2)
    out = max_pool(x)
    assert out.shape == (3, 3, 2)
    assert float(out[0, 0, 0]) == float(x[:2, :2, 0].max())
    assert float(out[2, 2, 1]) == float(x[4, 4, 1])


def test_invalid_arguments_are_named():
    with pytest.raises(ValueError, match="width"):
        et.make_model("vgg11", (32, 32, 3), 10, width=0, key=jax.random.key(0))
    with pytest.raises(ValueError, match="height, width, channels"):
        et.make_model("resnet34", (3072,), 10, key=jax.random.key(0))
    with pytest.raises(ValueError, match="Unknown model"):
        et.make_model("resnet50", (32, 32, 3), 10, key=jax.random.key(0))
    with pytest.raises(ValueError, match="stage_sizes"):
        et.ResNet(3, 10, (3, 4), key=jax.random.key(0))
    with pytest.raises(ValueError, match="config"):
        et.VGG(3, 10, ("M", 64), key=jax.random.key(0))
    with pytest.raises(ValueError, match="two 'M' in a row"):
        et.VGG(3, 10, (8, "M", "M"), key=jax.random.key(0))
    with pytest.raises(ValueError, match="`num_classes`"):
        et.make_model("mlp", (8, 8, 1), 0, key=jax.random.key(0))


@pytest.mark.parametrize("name", ["vgg11", "resnet34"])
def test_convolutional_models_name_a_wrong_number_of_channels(name):
    model = et.make_model(name, (8, 8, 3), 10, width=1 / 16, key=jax.random.key(0))
    with pytest.raises(ValueError, match="built for images with 3 channels"):
        jax.eval_shape(model, jnp.zeros((8, 8, 1)))


def test_mlp_names_a_wrong_input_size():
    model = et.make_model("mlp", (8, 8, 1), 10, key=jax.random.key(0))
    with pytest.raises(ValueError, match="takes inputs of 64 numbers"):
        jax.eval_shape(model, jnp.zeros((7, 7, 1)))


def test_a_plain_int_key_is_refused_with_the_fix():
    with pytest.raises(ValueError, match=r"jax\.random\.key\(seed\)"):
        et.make_model("mlp", (8, 8, 1), 10, key=0)
