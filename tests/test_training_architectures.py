"""A few training steps of every architecture (narrow, on a small synthetic batch)
with every tuner, through the same compiled loop as the MLP."""

import functools

import jax
import numpy as np
import pytest

import eqtuners as et

TUNERS = {
    "constant": lambda: et.Constant(0.01),
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
        batch_size=8 if tuner == "constant" else None,  # mini-batches, then full
        measure=None,
        steps_per_call=3,
    )
    history = result.history
    assert result.diverged_at is None
    assert len(history["loss"]) == 3 and np.all(np.isfinite(history["loss"]))
    assert np.all(history["stepsize"] > 0)
    if tuner == "armijo":  # sufficient decrease on the full batch, every step
        assert np.all(np.diff(history["loss"]) < 0)


def test_sharpness_is_tracked_on_a_convolutional_model_in_chunks():
    """The loop's sharpness measurement (power iteration on HVPs) and the chunked
    objective, through a convolutional model."""
    dataset = data()
    model = et.VGG(3, 10, (8, "M", 16, "M", 16), key=jax.random.key(0))
    result = et.train(
        model,
        et.Polyak(),
        dataset,
        3,
        key=jax.random.key(1),
        measure=et.Measurements(2, estimator=et.PowerIteration(max_iters=3)),
        chunk_size=6,
        steps_per_call=3,
    )
    sharpness = result.history["sharpness"]
    assert np.isfinite(sharpness[[0, 2]]).all() and np.isnan(sharpness[1])
    assert np.all(sharpness[[0, 2]] > 0)
