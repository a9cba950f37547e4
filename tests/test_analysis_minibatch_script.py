"""The script `benchmarks/analysis_minibatch.py`, at a tiny size."""

import json

import jax.numpy as jnp

from benchmarks import analysis_minibatch


def test_analysis_minibatch_script_writes_its_files(tmp_path):
    summary = analysis_minibatch.main(
        [
            "--out",
            str(tmp_path),
            "--steps",
            "12",
            "--num-examples",
            "16",
            "--dim",
            "4",
            "--batch-sizes",
            "4",
            "16",
            "--sharpness",
            "3",
            "--shapes",
            "least_squares",
        ]
    )
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    runs = summary["sharpness 3"]["least_squares"]
    for figure in ("summary_sharpness3.png", "armijo_least_squares_sharpness3.png"):
        assert (tmp_path / figure).stat().st_size > 0
    for tuner in ("SGD", "Armijo", "Polyak"):
        assert sorted(runs[tuner]) == ["16", "4"]
    armijo = runs["Armijo"]["4"]
    assert armijo["steps_used"] > 0
    # The bound holds in the script's numbers too.
    assert armijo["max_stepsize_x_batch_curvature"] <= 2 * (1 - 1e-4) * (1 + 1e-9)
    assert runs["SGD"]["4"]["fraction_at_cap"] == 1.0  # the constant step, always
    lower, upper = runs["closed_forms"]["16"][
        "batch_top_eigenvalue_bounds_over_sharpness"
    ]
    assert lower == 1.0 and upper >= 1.0
    # Float64 was only switched on inside the script.
    assert jnp.zeros(1).dtype == jnp.float32
