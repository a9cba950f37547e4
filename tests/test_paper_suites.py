"""The paper's suites end to end at `smoke` scale: run directories, figures, report;
resuming after an interruption; the command line's errors."""

import json
import os
import signal

import numpy as np
import pytest

from benchmarks import compare_tuners
from benchmarks._rundir import RunDirectory, read_history
from benchmarks.paper import cli
from benchmarks.paper.suites import SUITES


def run_cli(*argv) -> int:
    previous = signal.getsignal(signal.SIGTERM)
    try:
        return cli.main([str(a) for a in argv])
    finally:
        signal.signal(signal.SIGTERM, previous)


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    """Every suite at smoke scale, once, in one results directory."""
    root = tmp_path_factory.mktemp("paper")
    for name in SUITES:
        assert run_cli(name, "--scale", "smoke", "--out", root, "--no-progress") == 0
    return root


def run_dirs(out, suite):
    return sorted((out / suite / "runs").iterdir())


@pytest.mark.parametrize("suite", sorted(SUITES))
def test_every_suite_writes_its_runs_figures_and_report(out, suite):
    runs = run_dirs(out, suite)
    assert runs
    for run in runs:
        config = json.loads((run / "config.json").read_text())
        meta = json.loads((run / "meta.json").read_text())
        history = read_history(run / "history.csv")
        assert config["suite"] == suite
        assert meta["status"] == "completed" or meta["status"].startswith("diverged")
        assert {"jax", "equinox", "python"} <= set(meta["versions"])
        assert meta["git_revision"] and meta["device"]["platform"] == "cpu"
        assert "digits" in meta["dataset_source"]
        summary = meta["summary"]
        assert 0 <= summary["test_accuracy"] <= 1
        steps = history["step"]
        np.testing.assert_array_equal(steps, np.arange(len(steps)))
        if meta["status"] == "completed":
            assert len(steps) == config["steps"]
            # The full training loss and the sharpness at the last step.
            assert np.isfinite(history["train_loss"][-1])
            assert np.isfinite(history["sharpness"][-1])
            assert summary["final_train_loss"] == pytest.approx(
                history["train_loss"][-1]
            )
        assert (run / "checkpoint.eqx").exists()
        if config.get("spectrum"):
            with np.load(run / "spectrum.npz") as spectra:
                weights = spectra["start_weights"]
                np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-4)
                assert np.isfinite(spectra["start_nodes"]).all()
                assert ("end_nodes" in spectra) == (meta["status"] == "completed")
    figures = sorted((out / suite / "figures").glob("*.png"))
    assert figures and all(f.stat().st_size > 10_000 for f in figures)
    report = json.loads((out / suite / "report.json").read_text())
    assert report["suite"] == suite and report["claims"]
    assert all(c["holds"] in (True, False, None) for c in report["claims"])
    text = (out / suite / "report.md").read_text()
    assert all(f"| {c['id']}:" in text for c in report["claims"])


def test_names_differ_by_configuration_and_stacks_split_per_run(out):
    runs = run_dirs(out, "polyak_cap")
    assert len({r.name for r in runs}) == 10  # 5 caps, 5 GD steps: two stacks
    for run in runs:
        tuner = json.loads((run / "config.json").read_text())["tuner"]
        history = read_history(run / "history.csv")
        stepsize = history["stepsize"][np.isfinite(history["loss"])]
        if tuner["kind"] == "constant":
            np.testing.assert_allclose(stepsize, tuner["value"], rtol=1e-6)
        else:
            assert np.all(stepsize <= tuner["value"] * (1 + 1e-6))
    statuses = {
        (t["kind"], t["value"]): json.loads((r / "meta.json").read_text())["status"]
        for r in runs
        for t in [json.loads((r / "config.json").read_text())["tuner"]]
    }
    # GD at 10 diverges; Polyak with that cap does not, in the same stacked call.
    assert statuses["constant", 10.0].startswith("diverged at step")
    diverged = next(r for r in runs if "constant10-" in r.name)
    loss = read_history(diverged / "history.csv")["loss"]
    stop = int(statuses["constant", 10.0].split()[-1])
    assert len(loss) == stop + 1 and not np.isfinite(loss[-1])
    assert statuses["polyak", 10.0] == "completed"


def test_the_stochastic_suite_runs_each_batch_size_on_the_sweeps_steps(out):
    sweeps = list((out / "sweeps").glob("*.json"))
    chosen = {tuple(json.loads(p.read_text())["chosen"]) for p in sweeps}
    configs = [
        json.loads((r / "config.json").read_text()) for r in run_dirs(out, "stochastic")
    ]
    assert {c["batch_size"] for c in configs} == {64}
    gd = {c["tuner"]["value"] for c in configs if c["tuner"]["kind"] == "constant"}
    assert tuple(sorted(gd, reverse=True)) in chosen


def test_a_rerun_of_a_completed_suite_runs_nothing(out, monkeypatch):
    before = {p: p.stat().st_mtime_ns for p in (out / "polyak_zoom").rglob("*.csv")}

    def no_training(*args, **kwargs):
        raise AssertionError("a completed run was trained again")

    monkeypatch.setattr("eqtuners.train", no_training)
    assert (
        run_cli("polyak_zoom", "--scale", "smoke", "--out", out, "--no-progress") == 0
    )
    after = {p: p.stat().st_mtime_ns for p in (out / "polyak_zoom").rglob("*.csv")}
    assert before == after


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_marks_runs_interrupted_and_the_rerun_is_bit_identical(
    out, tmp_path, monkeypatch, signum
):
    """A signal at a call boundary of the compiled scan (after the first
    checkpoint) stops the suite; the rerun resumes from the checkpoint and writes
    exactly the history of the uninterrupted run."""
    save = RunDirectory.save_checkpoint
    sent = []

    def save_then_signal(self, state):
        save(self, state)
        if not sent:
            sent.append(self.path.name)
            os.kill(os.getpid(), signum)

    monkeypatch.setattr(RunDirectory, "save_checkpoint", save_then_signal)
    args = ("polyak_zoom", "--scale", "smoke", "--out", tmp_path, "--no-progress")
    assert run_cli(*args) == 130
    run = tmp_path / "polyak_zoom" / "runs" / sent[0]
    meta = json.loads((run / "meta.json").read_text())
    assert meta["status"] == "interrupted"
    written = read_history(run / "history.csv")["step"]
    assert 0 < len(written) < json.loads((run / "config.json").read_text())["steps"]

    monkeypatch.setattr(RunDirectory, "save_checkpoint", save)
    assert run_cli(*args) == 0
    meta = json.loads((run / "meta.json").read_text())
    assert meta["status"] == "completed" and len(meta["resumed"]) == 1
    uninterrupted = out / "polyak_zoom" / "runs" / sent[0] / "history.csv"
    assert (run / "history.csv").read_bytes() == uninterrupted.read_bytes()


def test_rows_written_after_the_last_checkpoint_are_cut_on_resume(
    out, tmp_path, monkeypatch
):
    """A kill between appending rows and replacing the checkpoint leaves rows past
    the checkpoint: the resumed run drops them and still matches the uninterrupted
    one."""
    save = RunDirectory.save_checkpoint
    first = tmp_path / "first-checkpoint.eqx"

    def save_and_keep_the_first(self, state):
        save(self, state)
        if not first.exists():
            first.write_bytes(self.checkpoint.read_bytes())

    monkeypatch.setattr(RunDirectory, "save_checkpoint", save_and_keep_the_first)
    args = ("polyak_zoom", "--scale", "smoke", "--out", tmp_path, "--no-progress")
    assert run_cli(*args) == 0
    run = run_dirs(tmp_path, "polyak_zoom")[0]
    reference = (run / "history.csv").read_bytes()
    # As if killed after the first call's rows and the last call's rows were
    # written, but before the checkpoint was replaced: all 12 rows, the checkpoint
    # of step 4, status running.
    (run / "checkpoint.eqx").write_bytes(first.read_bytes())
    RunDirectory(run, {}).set_status("running")
    assert run_cli(*args) == 0
    assert (run / "history.csv").read_bytes() == reference
    assert json.loads((run / "meta.json").read_text())["status"] == "completed"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["nosuch"], "invalid choice: 'nosuch'"),
        (["deterministic", "--scale", "huge"], "invalid choice: 'huge'"),
        (["deterministic", "--stepsizes", "0.3", "0.3"], "two different step sizes"),
        (["deterministic", "--steps", "-3"], "must be > 0"),
        (["stochastic", "--scale", "smoke", "--batch-sizes", "100000"], "larger than"),
        (["deterministic", "--seeds", "1", "1"], "duplicates"),
        (
            ["stochastic", "--dataset", "fashion_mnist", "--data-dir", "/nonexistent"],
            "Fashion-MNIST dataset is not on this machine",
        ),
        ([], "name a suite"),
    ],
)
def test_bad_command_lines_give_one_line_and_status_2(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        if run_cli(*argv, "--out", tmp_path) == 2:
            raise SystemExit(2)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err
    assert "Traceback" not in err


def test_list_and_dry_run_change_nothing(capsys, tmp_path):
    assert run_cli("--list") == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in SUITES)
    assert "--scale cpu" in listing
    assert (
        run_cli("polyak_cap", "--scale", "smoke", "--dry-run", "--out", tmp_path) == 0
    )
    shown = capsys.readouterr().out
    assert "10 runs, 10 to run or resume, about" in shown and "to run" in shown
    assert not (tmp_path / "polyak_cap").exists()


def test_a_dry_run_after_the_suite_shows_its_sweep_and_completed_runs(out, capsys):
    capsys.readouterr()
    assert run_cli("deterministic", "--scale", "smoke", "--dry-run", "--out", out) == 0
    shown = capsys.readouterr().out
    assert "from the sweep already run" in shown and "placeholders" not in shown
    assert "completed, skipped" in shown and ": to run" not in shown
    assert "0 to run or resume, nothing to do" in shown


def test_the_main_job_is_the_deterministic_suite_on_digits(out, tmp_path):
    """`python -m benchmarks.compare_tuners` (the README's main job) passes its
    arguments to `deterministic --scale cpu --dataset digits`."""
    smoke = ["--width", 0.5, "--subset", 256, "--steps", 8, "--every", 4]
    smoke += ["--sweep-steps", 4, "--steps-per-call", 4, "--no-progress"]
    code = compare_tuners.main([*map(str, smoke), "--out", str(tmp_path)])
    assert code == 0
    # The same configuration as the smoke scale, hence the same run names.
    assert [r.name for r in run_dirs(tmp_path, "deterministic")] == [
        r.name for r in run_dirs(out, "deterministic")
    ]


def test_a_missing_optional_dependency_stops_before_any_work(
    monkeypatch, capsys, tmp_path
):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "matplotlib" else find_spec(name, *a),
    )
    assert run_cli("deterministic", "--scale", "smoke", "--out", tmp_path) == 2
    err = capsys.readouterr().err
    assert "pip install 'eqtuners[plot]'" in err and len(err.splitlines()) == 1
    assert not any(tmp_path.iterdir())  # nothing was run
