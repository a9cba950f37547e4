"""Data parallelism: one device and four (host) devices give the same histories."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

import eqtuners as et

from .helpers import small_data, small_mlp

ROOT = Path(__file__).parent.parent


def test_four_host_devices_give_the_histories_of_one():
    env = dict(os.environ)
    env["XLA_FLAGS"] = (
        env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
    )
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    result = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "sharded_histories.py")],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    gaps = json.loads(result.stdout)
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
