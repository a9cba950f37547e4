import json

import numpy as np
import pytest

from benchmarks import compare_tuners
from benchmarks._rundir import read_history


def test_main_job_runs_end_to_end_and_writes_its_files(tmp_path):
    out = tmp_path / "job"
    summaries = compare_tuners.main(
        [
            "--steps",
            "6",
            "--sweep-steps",
            "3",
            "--sharpness-every",
            "3",
            "--out",
            str(out),
        ]
    )
    sweep = json.loads((out / "sweep.json").read_text())
    assert len(sweep["outcomes"]) == len(compare_tuners.SWEEP_GRID)
    stable = [o["stepsize"] for o in sweep["outcomes"] if o["stable"]]
    assert sweep["chosen"] == sorted(stable)[-2:][::-1]
    names = [f"gd_{s:.4g}" for s in sweep["chosen"]] + ["armijo", "polyak"]
    assert list(summaries) == names
    for name in names:
        run = out / name
        config = json.loads((run / "config.json").read_text())
        meta = json.loads((run / "meta.json").read_text())
        history = read_history(run / "history.csv")
        assert config["dataset"] == "digits" and config["steps"] == 6
        assert meta["status"] == "completed" and meta["seed"] == 0
        assert {"jax", "equinox", "python"} <= set(meta["versions"])
        assert meta["device"]["platform"] == "cpu" and meta["git_revision"]
        np.testing.assert_array_equal(history["step"], np.arange(6))
        assert np.isfinite(history["sharpness"][[0, 3, 5]]).all()  # and the last
        assert summaries[name]["last_sharpness"] == pytest.approx(
            history["sharpness"][5]
        )
    assert json.loads((out / "summary.json").read_text()) == summaries
    assert (out / "four_panels.png").stat().st_size > 10_000
