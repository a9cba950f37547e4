"""`benchmarks.device` end to end at its CPU size, on Fashion-MNIST files the test
writes; its budget logic; its one-line error for missing data."""

import json
import math

import numpy as np
import pytest

from benchmarks.device import cli
from benchmarks.device._budget import Budget, StepEstimate, plan_timing
from benchmarks.device._common import Bench
from benchmarks.device._deterministic import reserve
from benchmarks.device._sizes import CPU

from .helpers import write_fashion_idx

PARTS = ["speed_mlp", "stack", "tracking", "resnet34", "deterministic"]


def positive(value) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


@pytest.fixture(scope="module")
def fashion(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fashion")
    write_fashion_idx(folder, np.random.default_rng(0), n_train=300, n_test=20)
    return folder


def test_every_part_runs_at_cpu_size_and_the_table_prints(fashion, tmp_path, capsys):
    # A budget no CPU reaches: every part runs at its largest CPU size.
    argv = ["--cpu", "--budget", "100000", "--data-dir", fashion, "--out", tmp_path]
    assert cli.main([str(a) for a in argv]) == 0
    results = json.loads((tmp_path / "device.json").read_text())
    parts = results["parts"]
    assert list(parts) == PARTS
    for name, part in parts.items():
        assert "error" not in part and "skipped" not in part, name
        assert positive(part["seconds"]) and positive(part["budget_s"]), name
    for name, row in parts["speed_mlp"]["tuners"].items():
        assert row["finite"], name
        for key in ("ours_ms_per_step", "optax_ms_per_step", "ratio_ours_over_optax"):
            assert positive(row[key]), (name, key)
    assert set(parts["speed_mlp"]["tuners"]) == {
        "constant",
        "armijo",
        *(f"armijo_block{k}" for k in CPU.blocks),
        "polyak",
    }
    assert parts["speed_mlp"]["tuners"]["armijo"]["evals_per_step"] >= 1
    for kind in ("constant", "polyak"):
        stack = parts["stack"][kind]
        for key in ("sequential_runs_per_s", "stacked_runs_per_s", "throughput_ratio"):
            assert positive(stack[key]), (kind, key)
    tracking = parts["tracking"]
    steps, every = tracking["steps"], tracking["every"]
    # Every `every` steps from step 0, and at the last step.
    assert tracking["measurements"] == len(range(0, steps, every)) + (
        (steps - 1) % every != 0
    )
    assert positive(tracking["products_per_measurement"])
    assert positive(tracking["overhead"])  # measuring is never free
    for key in ("step_ms", "product_ms", "product_over_step", "last_product_norm"):
        assert positive(parts["resnet34"][key]), key
    suite = parts["deterministic"]
    assert CPU.suite_steps[0] <= suite["steps"] <= CPU.suite_steps[1]
    assert suite["claims_checked"] > 0 and len(suite["runs"]) == 4
    assert {r["status"] for r in suite["runs"]} <= {"completed"} | {
        r["status"] for r in suite["runs"] if r["status"].startswith("diverged")
    }
    assert "C1" in (tmp_path / "paper" / "deterministic" / "report.md").read_text()
    verdicts = {t["target"].split(" (")[-1]: t["met"] for t in results["targets"]}
    assert isinstance(verdicts["mlp)"], bool) and verdicts["vgg11)"] is None
    out = capsys.readouterr().out
    for text in [*PARTS, "claims hold", "Armijo block search", "NOT MET", "Wrote"]:
        assert text in out, text


def test_a_part_that_does_not_fit_its_budget_is_skipped(tmp_path, capsys):
    argv = ["--cpu", "--budget", "0.01", "--parts", "stack", "--out", tmp_path]
    assert cli.main([str(a) for a in argv]) == 0
    stack = json.loads((tmp_path / "device.json").read_text())["parts"]["stack"]
    assert stack["skipped"].startswith("needs about")
    assert "skipped" in capsys.readouterr().out


def test_a_missing_dataset_is_one_line_and_exit_status_2(tmp_path, capsys):
    argv = ["--cpu", "--data-dir", tmp_path / "nowhere", "--out", tmp_path / "out"]
    assert cli.main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Fashion-MNIST" in err and "--data-dir" in err
    assert not (tmp_path / "out" / "device.json").exists()


def test_the_plan_takes_the_most_steps_and_rounds_that_fit():
    # 10 s: 1 s of compiling, then 3 calls (2 rounds) of 1.5 s a step.
    assert plan_timing(10.0, 1.0, 1.5, (1, 100), 2)[:2] == (2, 2)
    assert plan_timing(10.0, 1.0, 0.01, (1, 100), 2)[:2] == (100, 2)  # capped
    assert plan_timing(10.0, 1.0, 4.0, (1, 100), 2)[:2] == (1, 1)  # fewer rounds
    assert plan_timing(10.0, 1.0, 5.0, (1, 100), 2).steps is None
    # Run at its smallest size where that fits in the time left to the whole run.
    assert plan_timing(10.0, 1.0, 5.0, (1, 100), 2, left=11.0)[:2] == (1, 1)
    assert plan_timing(10.0, 11.0, 0.0, (1, 100), 2).steps is None  # compiling
    budget = Budget(100.0, {"a": 1.0, "b": 3.0})
    assert budget.allocate("a", ["b"]) == pytest.approx(25.0, abs=0.1)
    assert budget.allocate("b", []) == pytest.approx(100.0, abs=0.1)
    budget.reserved = 60.0  # kept for a later part
    assert budget.allocate("a", ["b"]) == pytest.approx(10.0, abs=0.1)


def test_the_suites_smallest_size_is_kept_for_it_when_it_will_run():
    def kept(total, step_s):
        bench = Bench(CPU, Budget(total, {}))
        bench._estimates["mlp"] = StepEstimate(compile_s=1.0, step_s=step_s)
        return reserve(bench, "lanczos")

    assert 0 < kept(1000.0, 0.5) < kept(1000.0, 1.0) < 1000.0
    # A suite longer than the budget and its slack will not run: nothing is kept.
    assert kept(100.0, 1.0) == 0.0
