"""Run by `test_sharding.py` in a process of its own with four CPU devices
(`XLA_FLAGS=--xla_force_host_platform_device_count=4`): the same training runs on one
device and with their examples sharded over the four, and the largest relative
differences between the histories, as JSON on stdout."""

import json
import sys

import jax
import numpy as np

import eqtuners as et

TUNERS = {
    "constant": lambda: et.Constant(0.3),
    "armijo": lambda: et.Armijo(),
    "polyak": lambda: et.Polyak(),
}


def main() -> dict:
    assert jax.device_count() == 4, jax.devices()
    data = et.load_dataset("digits", subset=128)
    model = et.make_model("mlp", data.input_shape, 10, key=jax.random.key(0), width=0.5)
    measure = et.Measurements(3, estimator=et.Lanczos(max_steps=30))
    gaps = {}
    for name, tuner in TUNERS.items():
        for batch_size in (None, 32):
            runs = [
                et.train(
                    model,
                    tuner(),
                    data,
                    7,
                    key=jax.random.key(1),
                    batch_size=batch_size,
                    measure=measure,
                    mesh=mesh,
                    progress=False,
                )
                for mesh in (None, "all")
            ]
            one, four = (r.history for r in runs)
            assert set(one) == set(four)
            gap = {}
            for k in one:
                a, b = np.asarray(one[k], float), np.asarray(four[k], float)
                same_nan = np.array_equal(np.isnan(a), np.isnan(b))
                scale = np.maximum(np.abs(a), 1e-6)
                gap[k] = float(np.nanmax(np.abs(a - b) / scale)) if same_nan else 1e9
            gaps[f"{name}/{batch_size}"] = gap
            leaf = jax.tree.leaves(runs[1].state.params)[0]
            gaps[f"{name}/{batch_size}"]["_devices"] = len(leaf.sharding.device_set)
    return gaps


if __name__ == "__main__":
    json.dump(main(), sys.stdout)
