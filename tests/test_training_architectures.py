"""A few training steps of every architecture (narrow, on a small synthetic batch)
with every tuner, through the same compiled loop as the MLP."""

import functools

import jax
import numpy as np
import pytest

import eqtuners as et

TUNERS = {
    "constant": lambda: et.Constant(0.05),
    "armijo": lambda: et.Armijo(),
    "polyak": lambda: et.Polyak(),
}


@functools.cache
def data():
    return et.load_synthetic_cifar10(num_train=16, num_test=4, image_shape=(8, 8, 3))


@pytest.mark.parametrize("tuner", sorted(TUNERS))
@pytest.mark.parametrize("name", ["mlp", "vgg11", "resnet34"])
def test_each_architecture_trains_with_each_tuner(name, tuner):
    dataset = data()
    model = et.make_model(
        name, dataset.input_shape, 10, width=1 / 16, key=jax.random.key(0)
    )
    result = et.train(
        model,
        TUNERS[tuner](),
        dataset,
        3,
        key=jax.random.key(1),
        sharpness_every=2 if tuner == "polyak" else None,
        sharpness_max_iters=5,
        chunk_size=6,
        steps_per_call=3,
    )
    history = result.history
    assert result.diverged_at is None
    assert len(history["loss"]) == 3 and np.all(np.isfinite(history["loss"]))
    assert np.all(history["stepsize"] > 0)
    assert history["loss"][-1] < history["loss"][0]
    if tuner == "polyak":  # sharpness measured at steps 0 and 2, through HVPs
        assert np.isfinite(history["sharpness"][[0, 2]]).all()


def test_a_convolutional_model_trains_on_minibatches():
    dataset = data()
    model = et.make_model("vgg11", (8, 8, 3), 10, width=1 / 16, key=jax.random.key(0))
    result = et.train(
        model,
        et.Armijo(),
        dataset,
        4,
        key=jax.random.key(1),
        batch_size=8,
        sharpness_every=None,
        steps_per_call=4,
    )
    assert len(result.history["loss"]) == 4
    assert np.all(np.isfinite(result.history["loss"]))
