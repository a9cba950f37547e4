"""How `train` reports progress: a bar on a terminal, log lines elsewhere (a batch
job's log), nothing on request; a resumed run says where it resumes."""

import jax
import numpy as np
import pytest

import eqtuners as et
from eqtuners import _progress_meter

from .helpers import small_data, small_mlp


def run(tuner, num_steps, **kwargs):
    options = dict(steps_per_call=8, measure=None) | kwargs
    return et.train(
        small_mlp(), tuner, small_data(64), num_steps, key=jax.random.key(0), **options
    )


def test_the_progress_bar_shows_on_request_and_stays_off_otherwise(capsys):
    run(et.Constant(0.1), num_steps=3, progress=True)
    assert "train:" in capsys.readouterr().err  # tqdm's bar, on stderr
    run(et.Constant(0.1), num_steps=3, progress=False)
    assert capsys.readouterr().err == ""


def test_off_a_terminal_progress_is_log_lines_at_most_one_per_call(capsys):
    capsys.readouterr()
    run(et.Constant(0.1), num_steps=19)  # stderr is captured: not a terminal
    lines = capsys.readouterr().err.splitlines()
    # Three calls, well within a minute: the first call's line and the last.
    assert len(lines) == 2
    assert lines[0].startswith("train: 8 of 19 steps, loss ") and "left" in lines[0]
    assert lines[1].startswith("train: 19 of 19 steps") and "done in" in lines[1]
    tuners = et.stack([et.Constant(0.1), et.Constant(0.2)])
    run(tuners, num_steps=19, progress=et.TextProgressMeter(interval=0))
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(",")[0] for line in lines] == [
        f"train (2 runs): {n} of 19 steps" for n in (8, 16, 19)
    ]
    # A run that stops early says so, after its last call's line.
    with pytest.warns(RuntimeWarning):
        run(et.Constant(1e4), num_steps=40)
    assert capsys.readouterr().err.splitlines()[-1].endswith("stopped")


def test_log_lines_come_a_minute_apart_with_the_time_left(monkeypatch, capsys):
    clock = iter([0.0, 30.0, 50.0, 70.0, 100.0, 135.0])  # init, then 5 calls
    monkeypatch.setattr(_progress_meter.time, "monotonic", lambda: next(clock))
    meter = et.TextProgressMeter()
    state = meter.init(500, 0, None)
    for step in (100, 200, 300, 400, 500):
        rows = {"loss": np.full(100, 0.5), "stepsize": np.ones(100)}
        state = meter.update(state, step, rows)
    meter.close(state)
    lines = capsys.readouterr().err.splitlines()
    # The first call (at 30 s), the first a minute after it (at 100 s), the last.
    assert [line.split(",")[0] for line in lines] == [
        "train: 100 of 500 steps",
        "train: 400 of 500 steps",
        "train: 500 of 500 steps",
    ]
    assert lines[0].endswith("about 2m00s left")  # the first call: compile included
    # From the steps after the first call: 300 steps in 70 s, 100 steps left.
    assert lines[1] == "train: 400 of 500 steps, loss 0.5, step size 1, about 23s left"
    assert lines[2].endswith("done in 2m15s")


def test_a_resumed_run_says_at_which_step_it_resumes(capsys):
    states = []
    run(et.Constant(0.1), 21, callback=lambda rows, s: states.append(s), progress=False)
    capsys.readouterr()
    run(et.Constant(0.1), 21, resume=states[0])
    assert capsys.readouterr().err.splitlines()[0] == "train: resuming at step 8 of 21"
    run(et.Constant(0.1), 21, resume=states[0], progress=True)
    assert "train: resuming at step 8 of 21" in capsys.readouterr().err


def test_progress_rejects_what_it_cannot_show():
    with pytest.raises(TypeError, match="progress"):  # ours, or jaxtyping's
        run(et.Constant(0.1), 3, progress="yes")
    for interval in (-1.0, float("nan")):
        with pytest.raises(ValueError, match="`interval`"):
            et.TextProgressMeter(interval=interval)
