"""Run directories that survive: damaged histories and checkpoints on resume, atomic
replacement, one process per run (the lock), `--status` lines, unwritable folders."""

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import eqtuners as et
from benchmarks._files import (
    NotWritableError,
    check_writable,
    read_rows,
    replace_atomically,
    write_json,
)
from benchmarks._rundir import (
    COMPLETED,
    INTERRUPTED,
    RUNNING,
    RunDirectory,
    RunLockedError,
    hold,
    read_history,
)

from .helpers import small_data, small_mlp

ROOT = Path(__file__).parent.parent
STEPS, PER_CALL = 12, 4


@pytest.fixture(scope="module")
def calls():
    """The `(rows, state)` pairs a 12-step run hands its callback, 4 steps each."""
    handed = []
    et.train(
        small_mlp(),
        et.Polyak(),
        small_data(64),
        STEPS,
        key=jax.random.key(0),
        measure=None,
        steps_per_call=PER_CALL,
        callback=lambda rows, state: handed.append((rows, state)),
        progress=False,
    )
    return handed


def written(path, calls, upto=len(range(0, STEPS, PER_CALL))):
    """A run directory as the runner leaves it after `upto` calls: rows appended,
    then the checkpoint replaced; status running (as when killed)."""
    d = RunDirectory(path, {"steps": STEPS})
    d.start({"seed": 0})
    for rows, state in calls[:upto]:
        d.append(rows)
        d.save_checkpoint(state)
    return d


def reopened(path):
    """The directory as the next process sees it (the last one's lock released)."""
    return RunDirectory(path, {"steps": STEPS})


def csv_lines(path):
    return path.read_bytes().split(b"\r\n")


# --- history.csv: partial and malformed lines ---------------------------------------


@pytest.mark.parametrize(
    "damage, checkpoint",
    [
        # A kill while appending the rows after the checkpoint: the last cut short.
        (lambda text: text[:-7], 1),
        # Rows complete up to the checkpoint, then damage.
        (lambda text: text + b"12,0.5,", 2),  # a partial row
        (lambda text: text + b"12,0.5,not-a-number\r\n", 2),  # a malformed cell
        (lambda text: text + b"12,0.5\r\n", 2),  # another width than the header's
        (lambda text: text + text.split(b"\r\n", 1)[1], 2),  # rows written twice
    ],
    ids=["cut-row", "partial-row", "malformed-cell", "short-row", "twice"],
)
def test_resume_cuts_the_history_to_the_checkpoints_complete_rows(
    tmp_path, calls, damage, checkpoint
):
    d = written(tmp_path, calls, upto=3)  # 12 rows
    reference = read_history(d.csv)
    d.csv.write_bytes(damage(d.csv.read_bytes()))
    d.save_checkpoint(calls[checkpoint][1])  # the state after 8 or 12 steps
    d.unlock()
    again = reopened(tmp_path)
    resume = again.resume(calls[0][1])
    step = PER_CALL * (checkpoint + 1)
    assert resume.state is not None and resume.step == step
    assert resume.problem is None
    _, rows = read_rows(again.csv)
    assert [int(r[0]) for r in rows] == list(range(step))
    history = read_history(again.csv)
    for k, v in history.items():
        np.testing.assert_array_equal(v, reference[k][:step], err_msg=k)
    assert again.csv.read_bytes().endswith(b"\r\n")  # ready for the next append
    if step == 8:
        again.append(calls[2][0])
        np.testing.assert_array_equal(read_history(again.csv)["step"], np.arange(12))


def test_a_damaged_row_before_the_checkpoints_step_restarts_the_run(tmp_path, calls):
    d = written(tmp_path, calls, upto=3)
    lines = csv_lines(d.csv)
    lines[5] = lines[5][:3]  # row of step 4 cut: steps 4 to 11 cannot be read
    d.csv.write_bytes(b"\r\n".join(lines))
    d.unlock()
    again = reopened(tmp_path)
    resume = again.resume(calls[0][1])
    assert resume.state is None and resume.step == 0
    assert f"{again.csv} has 4 complete rows" in resume.problem
    assert resume.message.endswith("starting over from step 0")
    assert not again.csv.exists() and not again.checkpoint.exists()


@pytest.mark.parametrize("content", [b"", b"step,lo", b"LOOP"], ids=str)
def test_an_empty_or_header_only_history_resumes_a_checkpoint_at_step_0(
    tmp_path, calls, content
):
    d = written(tmp_path, calls, upto=0)
    if content == b"LOOP":  # the header alone
        content = ",".join(calls[0][0]).encode() + b"\r\n"
    d.csv.write_bytes(content)
    first = dataclasses.replace(calls[0][1], step=jnp.asarray(0))
    d.save_checkpoint(first)
    d.unlock()
    again = reopened(tmp_path)
    resume = again.resume(calls[0][1])
    assert resume.step == 0 and resume.problem is None and resume.state is not None
    again.append(calls[0][0])  # the header is written (again) once
    assert read_rows(again.csv)[0] == list(calls[0][0])
    np.testing.assert_array_equal(read_history(again.csv)["step"], np.arange(4))


def test_a_run_that_stopped_keeps_its_fewer_rows(tmp_path, calls):
    """A stacked run that diverged stops writing rows while the shared step goes
    on: its checkpoint is past its last row, and that is not damage."""
    d = written(tmp_path, calls, upto=1)  # rows 0 to 3
    stopped = dataclasses.replace(calls[2][1], finite=jnp.asarray(False))
    d.save_checkpoint(stopped)
    d.unlock()
    resume = reopened(tmp_path).resume(calls[0][1])
    assert resume.step == 12 and resume.problem is None
    np.testing.assert_array_equal(read_history(d.csv)["step"], np.arange(4))


def test_append_refuses_other_columns(tmp_path, calls):
    d = written(tmp_path, calls, upto=1)
    rows = dict(calls[1][0])
    rows["extra"] = rows["loss"]
    with pytest.raises(ValueError, match="has the columns"):
        d.append(rows)


def test_read_history_reads_only_complete_rows(tmp_path, calls):
    d = written(tmp_path, calls, upto=1)
    # A row of the header's width whose end of line was not written: its last
    # cell may be cut short ("0.12" of "0.1234"), so it does not count.
    last = csv_lines(d.csv)[-2]
    d.csv.write_bytes(d.csv.read_bytes() + b"4" + last[1:])
    assert len(read_history(d.csv)["step"]) == 4
    d.csv.write_bytes(d.csv.read_bytes() + b"\r\n")
    assert len(read_history(d.csv)["step"]) == 5
    d.csv.write_bytes(b"step,lo")
    assert read_history(d.csv) == {}


# --- checkpoints that cannot be read ------------------------------------------------


def other_structure(calls):
    """A state of another configuration: a narrower model."""
    handed = []
    et.train(
        small_mlp(widths=(8,)),
        et.Polyak(),
        small_data(64),
        2,
        key=jax.random.key(0),
        measure=None,
        callback=lambda rows, state: handed.append(state),
        progress=False,
    )
    return handed[0]


@pytest.mark.parametrize("kind", ["truncated", "empty", "other", "longer"])
def test_an_unreadable_checkpoint_is_named_in_one_line_and_the_run_starts_over(
    tmp_path, calls, kind
):
    d = written(tmp_path, calls, upto=2)
    if kind == "truncated":  # a kill while writing, a full disk
        d.checkpoint.write_bytes(d.checkpoint.read_bytes()[:100])
    elif kind == "empty":
        d.checkpoint.write_bytes(b"")
    elif kind == "other":  # another structure, e.g. from an older version
        d.save_checkpoint(other_structure(calls))
    else:  # this state followed by more: a structure that begins like this one
        d.save_checkpoint((calls[1][1], jnp.zeros(3)))
    d.unlock()
    again = reopened(tmp_path)
    resume = again.resume(calls[0][1])
    assert resume.state is None and resume.step == 0
    message = resume.message
    assert len(message.splitlines()) == 1
    assert message.startswith(f"{again.checkpoint} cannot be read (")
    assert message.endswith("; starting over from step 0")
    assert not again.csv.exists() and not again.checkpoint.exists()
    assert resume.killed  # its meta said running


def test_no_checkpoint_starts_the_run_afresh(tmp_path, calls):
    resume = RunDirectory(tmp_path / "new", {}).resume(calls[0][1])
    assert resume.state is None and resume.message is None and not resume.killed


# --- killed, interrupted, resumed ---------------------------------------------------


def test_a_running_run_whose_lock_is_free_was_killed_at_the_checkpoints_step(
    tmp_path, calls
):
    written(tmp_path, calls, upto=2).unlock()
    again = reopened(tmp_path)
    assert again.try_lock() and again.killed
    resume = again.resume(calls[0][1])
    assert resume.message == "resuming a run that was killed at step 8"
    np.testing.assert_array_equal(
        jax.tree.leaves(resume.state.params)[0], jax.tree.leaves(calls[1][1].params)[0]
    )


def test_an_interrupted_run_says_from_which_step_it_resumed(tmp_path, calls):
    d = written(tmp_path, calls, upto=1)
    d.set_status(INTERRUPTED)
    d.unlock()
    again = reopened(tmp_path)
    resume = again.resume(calls[0][1])
    assert not again.killed and resume.message == "resumed from step 4"


# --- atomic replacement -------------------------------------------------------------


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "meta.json"
    path.write_text("old")

    def half_then_fail(file):
        file.write(b"ne")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        replace_atomically(path, half_then_fail)
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["meta.json"]


def test_replaced_files_get_the_permissions_of_a_plain_open(tmp_path):
    write_json(tmp_path / "new.json", {"a": 1})
    (tmp_path / "plain.json").write_text("{}")
    modes = [(tmp_path / n).stat().st_mode & 0o777 for n in ("new.json", "plain.json")]
    assert modes[0] == modes[1]


def run_python(code, **kwargs):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def test_a_kill_during_a_write_leaves_the_old_file(tmp_path):
    path = tmp_path / "checkpoint.eqx"
    path.write_bytes(b"old state")
    writer = run_python(f"""
        import time
        from benchmarks._files import replace_atomically
        def slow(file):
            file.write(b"new st")
            file.flush()
            print("writing", flush=True)
            time.sleep(60)
        replace_atomically({str(path)!r}, slow)
    """)
    try:
        assert writer.stdout.readline().strip() == "writing"
        writer.send_signal(signal.SIGKILL)
    finally:
        writer.wait(timeout=30)
    assert path.read_bytes() == b"old state"


# --- one process at a time ----------------------------------------------------------

HOLDER = """
    import time
    from benchmarks._rundir import RunDirectory
    d = RunDirectory({path!r}, {{}})
    assert d.try_lock()
    d.set_status("running")
    print("held", flush=True)
    time.sleep(120)
"""


def test_a_run_held_by_another_process_is_refused_until_that_process_is_killed(
    tmp_path,
):
    holder = run_python(HOLDER.format(path=str(tmp_path)))
    try:
        assert holder.stdout.readline().strip() == "held"
        d = RunDirectory(tmp_path, {})
        assert not d.try_lock() and not d.held
        with pytest.raises(RunLockedError, match="another process"):
            d.set_status(COMPLETED)
        with hold([RunDirectory(tmp_path / "free", {}), d]) as held:
            assert not held
        assert not RunDirectory(tmp_path / "free", {}).held
        assert d.status_line().startswith(f"{tmp_path.name}: running, 0 steps")
        # Killed (SIGKILL: no clean-up at all), its lock dies with it.
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        assert d.try_lock() and d.killed
        assert json.loads((tmp_path / "meta.json").read_text())["status"] == RUNNING
    finally:
        holder.kill()
        holder.wait(timeout=30)


WORKER = """
    import sys, time
    import numpy as np
    from benchmarks._rundir import COMPLETED, RunDirectory, hold
    out = {out!r}
    print("ready", flush=True)
    sys.stdin.readline()  # both go at once
    for name in ["a", "b", "c", "d"]:
        group = [RunDirectory(f"{{out}}/{{name}}{{i}}", {{}}) for i in (1, 2)]
        with hold(group) as held:
            if not held:
                print("skipped", name, flush=True)
                continue
            todo = [d for d in group if not d.done]
            for d in todo:
                d.start({{}})
            for step in range(6):
                time.sleep(0.1)
                for d in todo:
                    d.append({{"step": np.array([step]), "loss": np.array([0.5])}})
            for d in todo:
                d.set_status(COMPLETED)
            print("ran" if todo else "found-done", name, flush=True)
"""


def test_two_processes_on_one_folder_split_the_runs_and_do_each_once(tmp_path):
    """Two processes on one results folder (a job array), started together: each
    group of runs (those of one stacked call) is run by one of them, once, and
    the other skips it (held) or finds it done."""
    workers = [
        run_python(WORKER.format(out=str(tmp_path)), stdin=subprocess.PIPE)
        for _ in range(2)
    ]
    try:
        for worker in workers:
            assert worker.stdout.readline().strip() == "ready"
        for worker in workers:
            worker.stdin.write("go\n")
            worker.stdin.flush()
        said = []
        for worker in workers:
            stdout, _ = worker.communicate(timeout=120)
            assert worker.returncode == 0
            said.append(dict(line.split()[::-1] for line in stdout.splitlines()))
    finally:
        for worker in workers:
            worker.kill()
            worker.wait(timeout=30)
    for name in "abcd":
        verbs = sorted(s[name] for s in said)
        assert verbs in (["ran", "skipped"], ["found-done", "ran"]), (name, said)
    for run in sorted(tmp_path.iterdir()):
        d = RunDirectory(run, {})
        assert d.status == COMPLETED
        np.testing.assert_array_equal(d.history()["step"], np.arange(6))  # once
        assert d.status_line().startswith(f"{run.name}: completed, 6 steps")


# --- one line per run for --status --------------------------------------------------


def test_status_lines_say_status_steps_and_when(tmp_path, calls):
    done = written(tmp_path / "done", calls)
    done.set_status(COMPLETED)
    killed = written(tmp_path / "killed", calls, upto=2)
    killed.unlock()
    line = RunDirectory(tmp_path / "done", {"steps": STEPS}).status_line()
    assert line.startswith("done: completed, 12 of 12 steps, last written 20")
    assert line.endswith("+00:00")
    line = RunDirectory(tmp_path / "killed", {"steps": STEPS}).status_line()
    assert line.startswith("killed: killed (resumes when the suite runs again), 8 of")
    assert RunDirectory(tmp_path / "none", {"steps": 5}).status_line() == (
        "none: not started, 0 of 5 steps"
    )


# --- results folders that cannot be written -----------------------------------------


def test_a_writable_folder_is_created_and_left_empty(tmp_path):
    check_writable(tmp_path / "a" / "b")
    assert list((tmp_path / "a" / "b").iterdir()) == []


@pytest.mark.parametrize("where", ["itself", "parent"])
def test_a_file_in_the_way_is_named(tmp_path, where):
    blocker = tmp_path / "results"
    blocker.write_text("not a folder")
    out = blocker if where == "itself" else blocker / "paper"
    with pytest.raises(NotWritableError) as error:
        check_writable(out)
    message = str(error.value)
    assert len(message.splitlines()) == 1
    assert f"{blocker} is a file, not a folder" in message


def test_a_read_only_folder_is_refused():
    """Permission bits do not stop root (as tests often run): the check then runs
    in a process that has dropped to an unprivileged user, for whom they hold."""
    top = Path(tempfile.mkdtemp())  # under /tmp, which every user can reach
    try:
        top.chmod(0o755)
        folder = top / "read-only"
        folder.mkdir(mode=0o555)
        code = f"""
            import os
            from benchmarks._files import NotWritableError, check_writable
            if os.geteuid() == 0:
                os.setgid(65534)
                os.setuid(65534)  # nobody
            try:
                check_writable({str(folder / "paper")!r})
            except NotWritableError as error:
                print(error)
        """
        checker = run_python(code)
        stdout, _ = checker.communicate(timeout=60)
        assert checker.returncode == 0
        line = stdout.strip()
        assert line.startswith(f"cannot write to the results folder {folder}/paper")
        assert "Permission denied" in line and len(line.splitlines()) == 1
        assert not (folder / "paper").exists()
    finally:
        shutil.rmtree(top)
