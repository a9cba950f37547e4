"""How `train` reports its progress, between two calls of the compiled loop.

As diffrax's `AbstractProgressMeter`, a meter is a small immutable object with
`init`, `update` and `close`, threading its own state; unlike diffrax's, it runs on
the host (nothing crosses to the host inside a call), so it sees each call's rows.
`train(progress=None)` (the default) shows a bar (`TqdmProgressMeter`) when stderr
is a terminal and writes log lines (`TextProgressMeter`) otherwise, so that the log
of a batch job shows how far a run is; `True` always shows the bar, `False`
nothing.
"""

import abc
import sys
import time
from typing import Any, NamedTuple

import equinox as eqx
import numpy as np

from ._records import History


class AbstractProgressMeter(eqx.Module):
    """Reports the progress of `train` after each call of the compiled loop."""

    @abc.abstractmethod
    def init(self, num_steps: int, first: int, runs: int | None) -> Any:
        """Called once before the first call.

        **Arguments:**

        - `num_steps`: the run's number of steps.
        - `first`: the step it starts at (more than 0 when resumed).
        - `runs`: the number of stacked runs, `None` for a single run.

        **Returns:** the meter's state, passed to `update` and `close`.
        """

    @abc.abstractmethod
    def update(self, state: Any, step: int, rows: History) -> Any:
        """Called after each call: `step` steps are done, and `rows` are that
        call's rows (as `train`'s `callback` gets them). Returns the new state."""

    @abc.abstractmethod
    def close(self, state: Any) -> None:
        """Called once at the end (also when the run raises)."""


def summary(rows: History) -> dict[str, str]:
    """The last finite loss, step size and sharpness of `rows` (for stacked runs,
    the median over the runs of each run's last finite value)."""

    def last(key):
        values = np.atleast_2d(np.asarray(rows[key], float))
        lasts = [v[np.isfinite(v)][-1] for v in values if np.isfinite(v).any()]
        return f"{np.median(lasts):.4g}" if lasts else None

    shown = {"loss": "loss", "step size": "stepsize", "sharpness": "sharpness"}
    found = {name: last(key) for name, key in shown.items() if key in rows}
    return {k: v for k, v in found.items() if v is not None}


def _label(runs: int | None) -> str:
    return "train" if runs is None else f"train ({runs} runs)"


class NoProgressMeter(AbstractProgressMeter):
    """Reports nothing (`train(progress=False)`)."""

    def init(self, num_steps, first, runs):
        return None

    def update(self, state, step, rows):
        return None

    def close(self, state):
        pass


class TqdmProgressMeter(AbstractProgressMeter):
    """A tqdm bar on stderr with the time left and the last loss, step size and
    sharpness; a resumed run first writes the step it resumes at."""

    def init(self, num_steps, first, runs):
        from tqdm.auto import tqdm

        if first:
            tqdm.write(
                f"{_label(runs)}: resuming at step {first} of {num_steps}",
                file=sys.stderr,
            )
        return tqdm(
            total=num_steps,
            initial=first,
            unit="step",
            desc=_label(runs),
            leave=False,
            dynamic_ncols=True,
        )

    def update(self, state, step, rows):
        state.update(step - state.n)
        state.set_postfix(summary(rows), refresh=False)
        return state

    def close(self, state):
        state.close()


class _TextState(NamedTuple):
    label: str
    num_steps: int
    first: int
    started: float  # time.monotonic() at `init`
    # After the first call (which includes compiling): its end and step, from
    # which the time left is estimated.
    timed_from: tuple[float, int] | None
    last_line: float | None  # when the last line was written
    step: int  # the steps done


class TextProgressMeter(AbstractProgressMeter):
    """Log lines on stderr: after the first call, then after a call only when
    `interval` seconds have passed since the last line, and after the last call,
    so at most one line per call (and one more when a run stops early). Each line gives
    the steps done of the total, the last loss, step size and sharpness (medians
    over stacked runs) and the time left, estimated from the steps after the first
    call (which includes compiling). A resumed run first writes the step it
    resumes at.

    **Arguments:**

    - `interval`: the least number of seconds between two lines but the first and
      the last, >= 0 (default: a minute).

    **Raises:** `ValueError` naming `interval` for a negative or non-finite value.
    """

    interval: float = eqx.field(static=True)

    def __init__(self, interval: float | int = 60.0):
        if isinstance(interval, bool) or not np.isfinite(interval) or interval < 0:
            raise ValueError(
                f"`interval` must be a finite number of seconds >= 0, got {interval!r}."
            )
        self.interval = float(interval)

    def init(self, num_steps, first, runs):
        label = _label(runs)
        if first:
            _write(f"{label}: resuming at step {first} of {num_steps}")
        now = time.monotonic()
        return _TextState(label, num_steps, first, now, None, None, first)

    def update(self, state, step, rows):
        now = time.monotonic()
        due = (
            state.last_line is None
            or step >= state.num_steps
            or now - state.last_line >= self.interval
        )
        timed_from = state.timed_from or (now, step)
        state = state._replace(timed_from=timed_from, step=step)
        if due:
            _write(_line(state, now, summary(rows)))
            state = state._replace(last_line=now)
        return state

    def close(self, state):
        if state.step < state.num_steps:  # stopped early (or interrupted)
            _write(_line(state, time.monotonic(), {}, stopped=True))


def _line(state: _TextState, now: float, values: dict, stopped=False) -> str:
    parts = [f"{state.step} of {state.num_steps} steps"]
    parts += [f"{name} {value}" for name, value in values.items()]
    if stopped:
        parts.append("stopped")
    elif state.step < state.num_steps:
        parts.append(f"{_time_left(state, now)} left")
    else:
        parts.append(f"done in {_duration(now - state.started)}")
    return f"{state.label}: " + ", ".join(parts)


def _time_left(state: _TextState, now: float) -> str:
    since, from_step = state.timed_from
    if state.step > from_step and now > since:
        rate = (state.step - from_step) / (now - since)
    elif now > state.started:  # only the first call: with its compile
        rate = (state.step - state.first) / (now - state.started)
    else:
        return "unknown time"
    if rate <= 0:
        return "unknown time"
    return "about " + _duration((state.num_steps - state.step) / rate)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _write(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def progress_meter(progress) -> AbstractProgressMeter:
    """The meter for `train(..., progress=...)`: `None` a bar on a terminal and
    log lines otherwise, `True` a bar, `False` nothing, or a meter as given.

    **Raises:** `TypeError` naming `progress` for anything else.
    """
    if isinstance(progress, AbstractProgressMeter):
        return progress
    if progress is None:
        on_terminal = getattr(sys.stderr, "isatty", lambda: False)()
        return TqdmProgressMeter() if on_terminal else TextProgressMeter()
    if progress is True:
        return TqdmProgressMeter()
    if progress is False:
        return NoProgressMeter()
    raise TypeError(
        "`progress` must be True, False, None or an AbstractProgressMeter "
        f"(e.g. TextProgressMeter(interval=10)), got {progress!r}."
    )
