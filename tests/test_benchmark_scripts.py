"""The benchmark scripts run end to end at a tiny size and write their files."""

import json

from benchmarks import step_time


def test_step_time_times_ours_and_optax_and_writes_its_files(tmp_path):
    rows = step_time.main(
        ["--models", "mlp", "--examples", "64", "--steps", "1", "--out", str(tmp_path)]
    )
    assert [(r["model"], r["tuner"]) for r in rows] == [("mlp", "constant")]
    assert rows[0]["ours_s_per_step"] > 0 and rows[0]["optax_s_per_step"] > 0
    meta = json.loads((tmp_path / "step_time.json").read_text())
    assert meta["rows"] == rows and meta["git_revision"]
    assert (tmp_path / "step_time.csv").read_text().startswith("model,")
