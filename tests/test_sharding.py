"""Data parallelism: one device and four (host) devices give the same histories."""

import jax
import numpy as np
import pytest

import eqtuners as et

from .helpers import on_four_host_devices, small_data, small_mlp


def test_four_host_devices_give_the_histories_of_one():
    gaps = on_four_host_devices("sharded_histories.py")
    assert len(gaps) == 6  # three tuners, full batch and mini-batches
    for run, gap in gaps.items():
        assert gap.pop("_devices") == 4, run  # replicated on the four devices
        # Sums over examples are reduced in another order: float32 rounding,
        # amplified along a chaotic trajectory but still small after 7 steps.
        worst = max(gap.values())
        assert worst < 1e-3, (run, {k: v for k, v in gap.items() if v >= 1e-3})


def test_a_mesh_needs_examples_that_divide_evenly():
    mesh = jax.make_mesh((1,), ("data",))
    x, y = small_data(64)
    result = et.train(
        small_mlp(),
        et.Constant(0.1),
        (x, y),
        2,
        key=jax.random.key(0),
        mesh=mesh,
        measure=None,
        progress=False,
    )
    assert np.isfinite(result.history["loss"]).all()
    with pytest.raises(ValueError, match="`mesh`"):
        et.train(
            small_mlp(),
            et.Constant(0.1),
            (x, y),
            2,
            key=jax.random.key(0),
            mesh="some devices",
        )
