"""The benchmark scripts run end to end at a tiny size and write their files."""

import json

from benchmarks import step_time
from benchmarks.sharpness import cli as sharpness_benchmark


def test_step_time_times_ours_and_optax_and_writes_its_files(tmp_path):
    tiny = ["--models", "mlp", "--examples", "64", "--steps", "1"]
    rows = step_time.main(
        [*tiny, "--stack-of-one", "--repeats", "1", "--out", str(tmp_path)]
    )
    assert [(r["model"], r["tuner"]) for r in rows] == [("mlp", "constant")]
    assert rows[0]["ours_s_per_step"] > 0 and rows[0]["optax_s_per_step"] > 0
    # The stack of one is another program: timed, and compared, not assumed equal.
    assert rows[0]["stack_of_one_over_single"] > 0
    assert isinstance(rows[0]["stack_of_one_bit_identical"], bool)
    meta = json.loads((tmp_path / "step_time.json").read_text())
    assert meta["rows"] == rows and meta["git_revision"]
    assert (tmp_path / "step_time.csv").read_text().startswith("model,")


def test_the_tracking_overhead_part_runs_every_kind_of_estimator(tmp_path):
    summary = sharpness_benchmark.main(
        [
            "--parts",
            "overhead",
            "--overhead-steps",
            "10",
            "--repeats",
            "1",
            "--overhead-configs",
            "jax_lobpcg_b2",
            "lobpcg_b2",
            "--out",
            str(tmp_path),
        ]
    )
    lines = summary["overhead"]["tuners"]["polyak"]
    assert {"none", "jax_lobpcg_b2", "lobpcg_b2"} <= set(lines)
    assert lines["lobpcg_b2"]["measurements"] == 2  # steps 0 and 9 (the last)
    assert lines["lobpcg_b2"]["hvps_per_measurement"] > 0
    assert (tmp_path / "overhead.json").exists()


def test_the_memory_part_measures_the_linearised_operator(tmp_path):
    summary = sharpness_benchmark.main(
        [
            "--parts",
            "memory",
            "--memory-models",
            "mlp",
            "--memory-examples",
            "64",
            "--memory-steps",
            "2",
            "--out",
            str(tmp_path),
        ]
    )
    row = summary["memory"]["models"]["mlp"]
    # The linearisation keeps at least the activations of the 64 examples.
    assert row["linearised_bytes"] > 64 * 128 * 4
    assert row["fresh_temp_bytes"] > 0 and row["linearised_temp_bytes"] > 0
    assert (tmp_path / "memory.json").exists()
