"""The script `benchmarks/analysis_models.py`, at a tiny size."""

import json

import jax.numpy as jnp

from benchmarks import analysis_models


def test_analysis_models_script_writes_its_files(tmp_path):
    summaries = analysis_models.main(
        ["--out", str(tmp_path), "--steps", "12", "--num-params", "8"]
    )
    runs = ["gd_0.25", "gd_0.5", "armijo", "polyak"]
    models = ["regression", "regression_overdetermined", "self_stabilisation"]
    assert json.loads((tmp_path / "summary.json").read_text()) == summaries
    assert sorted(summaries) == sorted(models)
    for model in models:
        assert sorted(summaries[model]) == sorted(runs)
        for figure in ("four_panels.png", "phase_portrait.png"):
            assert (tmp_path / model / figure).stat().st_size > 0
        for run in runs:
            lines = (tmp_path / model / run / "history.csv").read_text().splitlines()
            assert len(lines) == 1 + 12
            meta = json.loads((tmp_path / model / run / "meta.json").read_text())
            assert meta["status"] == "completed"
            assert summaries[model][run]["steps"] == 12
    # Float64 was only switched on inside the script.
    assert jnp.zeros(1).dtype == jnp.float32
