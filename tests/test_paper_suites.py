"""The paper's suites end to end at `smoke` scale: run directories, figures, report;
resuming after an interruption; the command line's errors."""

import dataclasses
import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
from matplotlib.colors import to_hex

import eqtuners
import eqtuners as et
import eqtuners.internal
from benchmarks._rundir import RunDirectory, read_history
from benchmarks.paper import cli, figures
from benchmarks.paper._measure import MeasureSpec
from benchmarks.paper._plan import plan_workload
from benchmarks.paper._report import Claim, by_claim, spread
from benchmarks.paper._suite import RunResult
from benchmarks.paper._tuners import (
    SPARE_COLORS,
    TUNERS,
    Registered,
    TunerError,
    TunerSpec,
    parse_tuner,
)
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
        ([], "name a suite"),
        (["deterministic", "--tuners", "nosuch"], "unknown tuner 'nosuch'"),
        (["polyak_zoom", "--tuners", "armijo:foo=1"], "takes no argument 'foo'"),
        (["polyak_zoom", "--tuners", "armijo:c=2"], "`c`"),
        (["polyak_zoom", "--tuners", "polyak:max_stepsize=-1"], "`max_stepsize`"),
        (["polyak_zoom", "--tuners", "armijo:c"], "is not ARG=VALUE"),
        (["polyak_zoom", "--tuners", "tests.no_such_module:T"], "cannot import"),
        (["polyak_zoom", "--tuners", "tests.paper_tuners:Missing"], "has no 'Missing'"),
        (
            ["polyak_zoom", "--tuners", "tests.paper_tuners:NOT_A_TUNER"],
            "is not an eqtuners.AbstractTuner",
        ),
        (
            ["polyak_zoom", "--tuners", "tests.paper_tuners:ScaledPolyak:scale=-1"],
            "`scale`",
        ),
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
    if "--tuners" in argv:  # every mistake in a tuner lists the known ones
        known = "armijo, cdat, constant, polyak, ponos, zhang_hager, or an import path"
        assert known in err


def test_a_missing_dataset_prints_the_loaders_message_whole(capsys, tmp_path):
    """The loader's message (what is missing and where it looked, then the steps
    on lines of their own) as it is, and where to give the folder here."""
    import eqtuners as et

    with pytest.raises(et.DatasetNotFoundError) as error:
        et.load_dataset("fashion_mnist", data_dir="/nonexistent")
    argv = ["stochastic", "--dataset", "fashion_mnist", "--data-dir", "/nonexistent"]
    assert run_cli(*argv, "--out", tmp_path) == 2
    err = capsys.readouterr().err
    assert err == (
        f"{cli.PROG}: error: {error.value}\n"
        "On this command line, give the folder with --data-dir.\n"
    )
    assert len(err.splitlines()) > 2 and "Traceback" not in err
    assert not any(tmp_path.iterdir())  # nothing was run


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
    """The README's main job, `deterministic --scale cpu --dataset digits`, with
    overrides that make it the smoke configuration."""
    main_job = ["deterministic", "--scale", "cpu", "--dataset", "digits"]
    smoke = ["--width", 0.5, "--subset", 256, "--steps", 8, "--every", 4]
    smoke += ["--sweep-steps", 4, "--steps-per-call", 4, "--seeds", 0, "--no-progress"]
    assert run_cli(*main_job, *smoke, "--out", tmp_path) == 0
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


@pytest.mark.parametrize("suite", ["deterministic", "polyak_cap"])
def test_an_out_that_cannot_be_written_stops_before_any_work(capsys, tmp_path, suite):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    out = blocker / "results"
    assert run_cli(suite, "--scale", "smoke", "--out", out) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and str(blocker) in err
    assert list(tmp_path.iterdir()) == [blocker]  # no sweep, no run


def test_status_gives_one_line_per_run_already_in_out(out, capsys, tmp_path):
    assert run_cli("polyak_zoom", "--status", "--out", out) == 0
    lines = capsys.readouterr().out.splitlines()
    names = [r.name for r in run_dirs(out, "polyak_zoom")]
    assert len(lines) == len(names) > 0
    for name, line in zip(sorted(names), lines):
        assert line.startswith(f"{name}: completed, ")
        steps = json.loads(
            (out / "polyak_zoom" / "runs" / name / "config.json").read_text()
        )["steps"]
        assert f"{steps} of {steps} steps, last written " in line
    assert run_cli("stochastic", "--status", "--out", tmp_path) == 0
    assert "no runs of stochastic" in capsys.readouterr().out


# ---------------------------------------------------------------------------
# One place per option: names, plans, measurements.

NAMES_OF_MAIN = Path(__file__).parent / "paper_run_names.json"
FULL_SIZES = {"digits": 1437, "fashion_mnist": 60000, "cifar10": 50000}


def test_every_run_keeps_the_name_main_gave_it(tmp_path):
    """The run and sweep names of every suite at every scale, as `main`'s code
    (before the measurement spec and the tuner registry) planned them
    (`paper_run_names.json`, with GD at sqrt 2 and 1 where a sweep chooses), so
    run directories made before are found and resumed. The `cpu` scales' entries
    are those of their new configurations (three seeds, the paper's schedule of
    a measurement every 50 steps on digits, at least 300 mini-batch steps, 30
    measurements per stochastic run; stochastic_curvature 15 on 512 examples and at
    least 150 steps): the runs those configurations share with
    the old ones (seed 0 of unchanged workloads) kept their names."""
    main = json.loads(NAMES_OF_MAIN.read_text())
    stepsizes = (2**0.5, 1.0)
    for name, suite in SUITES.items():
        for scale, workloads in suite.scales.items():
            runs, sweeps = [], []
            for w in workloads:
                if suite.needs_sweep:
                    sweeps.append(w.sweep().name)
                    w = dataclasses.replace(w, stepsizes=stepsizes)
                examples = w.data.subset or FULL_SIZES[w.data.name]
                plan = plan_workload(suite, w, examples, tmp_path)
                runs += [c.name for c in plan.configs]
            assert runs == main[f"{name}/{scale}"]["runs"], (name, scale)
            assert sweeps == main[f"{name}/{scale}"]["sweeps"], (name, scale)


def test_new_options_at_their_defaults_leave_a_configuration_as_it_was():
    (workload,) = SUITES["polyak_zoom"].scales["smoke"]
    config = workload.run("polyak_zoom", TunerSpec("polyak"), None, 0, 256)
    assert set(config.to_json()) == {
        "suite", "model", "data", "tuner", "steps", "batch_size", "width", "seed",
        "every", "zoom", "estimator", "examples", "chunk_size", "weight_decay",
        "steps_per_call",
    }  # fmt: skip
    assert config.to_json()["tuner"] == {"kind": "polyak", "value": 1.0}
    on = dataclasses.replace(config.measure, batch_measurements=True, spectrum=True)
    changed = dataclasses.replace(config, measure=on).to_json()
    assert changed["batch_measurements"] is True and changed["spectrum"] is True
    assert TunerSpec("polyak", options=(("max_stepsize", 3),)) == TunerSpec(
        "polyak", 3.0
    )  # one tuner, one configuration


def test_the_measurement_spec_builds_the_runs_measurements():
    spec = MeasureSpec(every=None, examples=64, estimator="lanczos")
    spec = dataclasses.replace(spec, batch_measurements=True).for_steps(120)
    measure = spec.build(seed=3)
    assert measure.every == 2 and measure.examples == 64 and measure.seed == 3
    assert isinstance(measure.sharpness, et.Lanczos)
    assert measure.batch_curvature and measure.batch_sharpness
    assert measure.batch_top_eigenvalue
    zoom = MeasureSpec(every=None, zoom=(0, 10), measurements=4).for_steps(30)
    # every 7 steps (0, 7, ..., 28), every step of the window, and the last step
    assert zoom.count(30) == len({*range(0, 30, 7), *range(10), 29})


def test_every_run_measures_as_often_as_its_spec_says(out):
    for suite in SUITES:
        for run in run_dirs(out, suite):
            config = json.loads((run / "config.json").read_text())
            meta = json.loads((run / "meta.json").read_text())
            if meta["status"] != "completed":
                continue
            spec = MeasureSpec(
                every=config["every"],
                zoom=None if config["zoom"] is None else tuple(config["zoom"]),
            )
            sharpness = read_history(run / "history.csv")["sharpness"]
            assert np.isfinite(sharpness).sum() == spec.count(config["steps"]), run


def test_the_estimator_choices_are_the_librarys():
    (action,) = [a for a in cli.parser()._actions if "--estimator" in a.option_strings]
    assert tuple(action.choices) == tuple(eqtuners.internal.METHODS)


def test_a_dry_run_shows_the_runs_the_suite_runs(out, capsys):
    """`--dry-run` and the run plan with one function: the dry run after the
    suite lists exactly the run directories the suite wrote."""
    for suite in ("stochastic", "polyak_cap"):
        capsys.readouterr()
        assert run_cli(suite, "--scale", "smoke", "--dry-run", "--out", out) == 0
        shown = capsys.readouterr().out
        listed = {line.split(":")[0].strip() for line in shown.splitlines()}
        assert {str(r) for r in run_dirs(out, suite)} <= listed


def test_the_estimate_times_the_real_training_call(tmp_path, monkeypatch, capsys):
    """The estimate trains each group as the run will: the same stack of tuners and
    the same measurements (the batch measurements included)."""
    calls = []
    train = eqtuners.train

    def recording(model, tuner, data, num_steps, **kwargs):
        calls.append((tuner, kwargs.get("measure")))
        return train(model, tuner, data, num_steps, **kwargs)

    monkeypatch.setattr("eqtuners.train", recording)
    args = ["stochastic_curvature", "--scale", "smoke", "--dry-run"]
    assert run_cli(*args, "--stepsizes", 1.0, 0.5, "--out", tmp_path) == 0
    assert "3 runs, 3 to run or resume, about" in capsys.readouterr().out
    measured = [m for _, m in calls if m is not None]
    assert measured and all(m.batch_sharpness and m.batch_curvature for m in measured)
    kinds = {type(t).__name__ for t, _ in calls}
    assert kinds == {"Constant", "Armijo", "Polyak"}
    assert not (tmp_path / "stochastic_curvature").exists()


# ---------------------------------------------------------------------------
# Claims per seed.


def test_a_report_counts_seeds(tmp_path, monkeypatch):
    """Two seeds stacked in one compiled call; every claim says in how many of
    them it holds, with each seed's numbers."""
    calls = []
    train = eqtuners.train

    def counting(*args, **kwargs):
        calls.append(kwargs["key"].shape)
        return train(*args, **kwargs)

    monkeypatch.setattr("eqtuners.train", counting)
    args = ("polyak_zoom", "--scale", "smoke", "--out", tmp_path, "--no-progress")
    assert run_cli(*args, "--seeds", 0, 1) == 0
    assert calls == [(2,)]  # both seeds in one call
    runs = run_dirs(tmp_path, "polyak_zoom")
    first, second = (read_history(r / "history.csv")["loss"] for r in runs)
    assert not np.array_equal(first, second)
    report = json.loads((tmp_path / "polyak_zoom" / "report.json").read_text())
    (claim,) = report["claims"]
    assert claim["of"] == 2 and [s["seed"] for s in claim["seeds"]] == [0, 1]
    assert claim["held"] == sum(s["holds"] is True for s in claim["seeds"])
    assert all("correlation" in s["numbers"] for s in claim["seeds"])
    text = (tmp_path / "polyak_zoom" / "report.md").read_text()
    assert f"holds in {claim['held']} of 2 seeds" in text
    assert "seed 0: correlation" in text and "seed 1: correlation" in text
    # The runs table: each run's summary over its seeds, and per seed.
    (row,) = report["runs"]
    assert sorted(row["seeds"]) == ["0", "1"]  # JSON keys
    losses = [row["seeds"][s]["final_train_loss"] for s in ("0", "1")]
    assert all(np.isfinite(losses))
    assert f"| {spread(losses)} |" in text
    assert text.count(f"| {row['tuner']} | 0 | completed |") == 1


def test_a_suite_logs_its_progress_when_stderr_is_not_a_terminal(tmp_path, capsys):
    """A batch job's log shows how far each run is (no bar: stderr is a file)."""
    args = ("polyak_zoom", "--scale", "smoke", "--out", tmp_path)
    assert run_cli(*args) == 0
    err = capsys.readouterr().err
    assert "train: 4 of 12 steps" in err and "train: 12 of 12 steps" in err
    assert "\r" not in err  # no bar
    assert run_cli(*args, "--no-progress", "--out", tmp_path / "quiet") == 0
    assert "of 12 steps" not in capsys.readouterr().err


def test_the_spread_over_seeds_is_the_median_and_range():
    assert spread([0.3, 0.1, 0.2]) == "0.2 (0.1 to 0.3)"
    assert spread([0.5]) == "0.5"
    assert spread([0.25, None]) == "0.25, 1 not measured"
    assert spread([None]) == "-"


def test_claims_are_gathered_per_seed():
    def claim(holds, where="w", number=1.0):
        return Claim("C1", "statement", where, {"x": number}, holds)

    seeds = (0, 1, 2)
    gathered = by_claim(
        [
            (seeds, 0, claim(True)),
            (seeds, 0, claim(True, "v")),
            (seeds, 1, claim(False, number=2.0)),
            (seeds, 2, claim(True)),
            (seeds, 1, claim(None, "v")),
        ]
    )
    first, second = gathered
    assert (first.where, first.held, first.holds) == ("w", 2, False)
    assert first.verdict() == "**holds in 2 of 3 seeds**"
    assert first.to_json()["seeds"][1] == {
        "seed": 1,
        "holds": False,
        "numbers": {"x": 2.0},
    }
    # Seed 2 never checked it: not checked, not a failure.
    assert (second.held, second.holds) == (1, None)
    assert second.verdict() == "**holds in 1 of 3 seeds (2 not checked)**"
    assert claim(True).holds and by_claim([((0,), 0, claim(True))])[0].holds is True


# ---------------------------------------------------------------------------
# Any tuner.


def test_tuners_by_name_with_hyperparameters_and_by_import_path(
    tmp_path, capsys, monkeypatch
):
    tuners = ["polyak", "polyak:max_stepsize=0.5", "armijo:c=0.1,decrease_factor=0.5"]
    tuners.append("tests.paper_tuners:ScaledPolyak:scale=0.5")
    args = ["polyak_zoom", "--scale", "smoke", "--out", tmp_path, "--no-progress"]
    assert run_cli(*args, "--tuners", *tuners) == 0
    configs = {
        r.name: json.loads((r / "config.json").read_text())["tuner"]
        for r in run_dirs(tmp_path, "polyak_zoom")
    }
    assert sorted(configs.values(), key=str) == sorted(
        [
            {"kind": "polyak", "value": 1.0},
            {"kind": "polyak", "value": 0.5},
            {
                "kind": "armijo",
                "value": 1.0,
                "options": {"c": 0.1, "decrease_factor": 0.5},
            },
            {
                "kind": "tests.paper_tuners:ScaledPolyak",
                "value": None,
                "options": {"scale": 0.5},
            },
        ],
        key=str,
    )
    # The paper's Polyak keeps its name; the others are told apart by theirs.
    (workload,) = SUITES["polyak_zoom"].scales["smoke"]
    paper = workload.run("polyak_zoom", TunerSpec("polyak"), None, 0, 256)
    assert paper.name in configs
    assert any(
        name.startswith("mlp-w0.5-digits-n256-full-scaledpolyak-scale0.5")
        for name in configs
    )
    for run in run_dirs(tmp_path, "polyak_zoom"):
        meta = json.loads((run / "meta.json").read_text())
        assert meta["status"] == "completed"
    capsys.readouterr()

    def no_training(*args, **kwargs):
        raise AssertionError("a completed run was trained again")

    monkeypatch.setattr("eqtuners.train", no_training)
    assert run_cli(*args, "--tuners", *tuners) == 0  # found again: nothing to run
    assert capsys.readouterr().out.count("completed before, skipped") == 4


def test_the_paper_tuners_keep_their_labels():
    assert TunerSpec("constant", 2**0.5).label == "GD 1.41"
    assert TunerSpec("armijo").label == "Armijo"
    assert TunerSpec("polyak", 3.0).label == "Polyak (cap 3)"
    assert parse_tuner("armijo:c=0.1").label == "Armijo, c=0.1"
    assert parse_tuner("tests.paper_tuners:ScaledPolyak").label == "ScaledPolyak"


def test_a_new_tuner_is_one_entry_of_the_registry(monkeypatch):
    monkeypatch.setitem(
        TUNERS,
        "halfpolyak",
        Registered(et.Polyak, "Half-Polyak", None, None, "#000000"),
    )
    spec = parse_tuner("halfpolyak:max_stepsize=0.5")
    assert spec.build().max_stepsize == 0.5 and spec.color == "#000000"
    assert spec.label == "Half-Polyak, max_stepsize=0.5"
    assert "halfpolyak" in str(pytest.raises(TunerError, parse_tuner, "nosuch").value)


def test_the_edge_tuners_by_name_with_flat_keywords():
    cdat = parse_tuner("cdat:sigma=1.8,ema=0.9")
    assert cdat.label == "CDAT (sigma 1.8), ema=0.9"
    tuner = cdat.build()
    assert isinstance(tuner, et.CDAT) and float(tuner.sigma) == pytest.approx(1.8)
    assert float(tuner.ema) == pytest.approx(0.9)
    ponos = parse_tuner("ponos").build()
    assert isinstance(ponos.first_trial, et.PolyakTrial)
    assert float(ponos.c) == 0.5 and float(ponos.max_stepsize) == 10.0
    forward = parse_tuner("zhang_hager:xi=0.5,increase_factor=3").build()
    assert isinstance(forward.first_trial, et.ForwardTracking)
    assert float(forward.reference.xi) == 0.5
    assert float(forward.first_trial.increase_factor) == 3.0
    with pytest.raises(TunerError, match="`xi`"):
        parse_tuner("zhang_hager:xi=2")


def test_registered_tuners_have_distinct_colours_none_of_them_spare():
    colors = [to_hex(entry.color) for entry in TUNERS.values()]
    assert len(set(colors)) == len(colors)
    assert not set(colors) & {to_hex(c) for c in SPARE_COLORS}


def test_each_tuner_has_one_colour_in_every_figure():
    """Armijo's colour does not depend on how many GD runs come before it (the
    stochastic suite runs GD at two steps, stochastic_curvature at one)."""
    colors = {}
    for name in ("stochastic", "stochastic_curvature", "deterministic"):
        suite = SUITES[name]
        (workload,) = suite.scales["smoke"]
        plan = plan_workload(suite, workload, 512, Path("/nonexistent"))
        runs = [RunResult(c, {}, {}, Path()) for c in plan.configs]
        for label, color in figures.run_colors(runs).items():
            colors.setdefault(label, set()).add(to_hex(color))
    assert colors["Armijo"] == {TUNERS["armijo"].color}
    assert colors["Polyak"] == {TUNERS["polyak"].color}
    gd = [label for label in colors if label.startswith("GD")]
    assert len(gd) == 2 and colors[gd[0]] != colors[gd[1]]  # shades of one colour


def test_every_registered_tuner_keeps_its_colour_in_every_figure(tmp_path, monkeypatch):
    """Hand-built runs of every registered tuner (CDAT at the edge suite's five
    sigmas, with and without its average; GD at two steps), drawn by every figure
    that shows tuners: in each legend a tuner's label has the colour `run_colors`
    gives it, which for a kind with one run is the registry's. (Figure 7,
    `cap_sweep`, colours the caps instead, as the paper does.)"""
    from matplotlib.figure import Figure

    from benchmarks.paper._suite import WorkloadResult
    from benchmarks.paper.suites.edge_tuners import (
        FULL_BATCH_TUNERS,
        MINI_BATCH_TUNERS,
    )
    from tests.paper_runs import FULL_BATCH, MINI_BATCH, history, run

    drawn = []
    monkeypatch.setattr(Figure, "savefig", lambda fig, *a, **k: drawn.append(fig))
    monkeypatch.setattr(figures, "model_sweep", _tiny_model_sweep)
    gd = [TunerSpec("constant", 1.0), TunerSpec("constant", 0.5)]
    full = [run(t, history()) for t in gd + list(FULL_BATCH_TUNERS)]
    mini = [
        run(t, history(), workload=MINI_BATCH, batch_size=64)
        for t in gd + list(FULL_BATCH_TUNERS) + list(MINI_BATCH_TUNERS)
    ]
    assert {r.config.tuner.kind for r in full} == set(TUNERS)
    results = {
        "full": WorkloadResult(FULL_BATCH, full, None),
        "mini": WorkloadResult(MINI_BATCH, mini, None),
    }
    shown = {
        "full": ("panels", "four_panels", "curvature_bracket", "sigma_sweep"),
        "mini": ("four_panels", "batch_size_grid", "curvature_grids"),
    }
    for kind, names in shown.items():
        runs = results[kind].runs
        expected = {k: to_hex(c) for k, c in figures.run_colors(runs).items()}
        for name in names:
            drawn.clear()
            assert figures.FIGURES[name](results[kind], 0, tmp_path), name
            for fig in drawn:
                legend = fig.legends[0]
                for text, h in zip(legend.get_texts(), legend.legend_handles):
                    label = text.get_text()
                    if label in expected:
                        assert to_hex(h.get_color()) == expected[label], (name, label)
                for ax in fig.axes:  # the bracket figure names its runs in titles
                    if ax.get_title() in expected:
                        assert to_hex(ax.title.get_color()) == expected[ax.get_title()]
        single = [r.config.tuner for r in runs if r.config.tuner.kind != "constant"]
        for tuner in single:
            if sum(t.kind == tuner.kind for t in single) == 1:
                assert expected[tuner.label] == TUNERS[tuner.kind].color
    # The sigma sweep draws CDAT in CDAT's colour and Armijo's line in Armijo's.
    drawn.clear()
    figures.sigma_sweep(results["full"], 0, tmp_path)
    (legend,) = drawn[0].legends
    colors = {
        t.get_text(): to_hex(h.get_color())
        for t, h in zip(legend.get_texts(), legend.legend_handles)
    }
    assert colors["network: one seed"] == TUNERS["cdat"].color
    assert colors["Armijo-GD at the end (median over seeds)"] == TUNERS["armijo"].color


def _tiny_model_sweep():
    import analysis

    model = analysis.SelfStabilisation(0.05, 2.0, 10.0, misalignment=1e-4)
    return analysis.sigma_sweep(model, model.params_at(0.05, 1.5), (1.0, 2.0), 4)


def test_the_edge_suite_runs_every_tuner_and_draws_its_figures(out):
    """At smoke scale: the full-batch part runs GD at the sweep's step and the
    edge tuners, the mini-batch part CDAT's sigmas with and without the moving
    average (on the same sweep); E1 to E5 are in the report, and the bracket and
    sigma-sweep figures are drawn."""
    configs = [
        json.loads((r / "config.json").read_text())
        for r in run_dirs(out, "edge_tuners")
    ]
    full = {
        (c["tuner"]["kind"], c["tuner"]["value"])
        for c in configs
        if c["batch_size"] is None
    }
    assert {k for k, _ in full} == {
        "constant",
        "armijo",
        "cdat",
        "zhang_hager",
        "ponos",
    }
    assert sorted(v for k, v in full if k == "cdat") == [1.0, 1.5, 1.8, 2.0, 2.06]
    mini = [c["tuner"] for c in configs if c["batch_size"] == 64]
    emas = {t.get("options", {}).get("ema", 0.0) for t in mini if t["kind"] == "cdat"}
    assert emas == {0.0, 0.9} and len(mini) == 11  # SGD and 10 CDATs
    history = read_history(
        next(r for r in run_dirs(out, "edge_tuners")) / "history.csv"
    )
    assert np.isfinite(history["directional_curvature"]).sum() >= 2
    report = json.loads((out / "edge_tuners" / "report.json").read_text())
    assert {c["id"] for c in report["claims"]} == {"E1", "E2a", "E2b", "E3", "E4", "E5"}
    names = " ".join(report["figures"])
    assert "-bracket.png" in names and "-sigma-sweep.png" in names
    assert len(list((out / "sweeps").glob("sweep-mlp-w0.5-digits-n256-*"))) == 1
