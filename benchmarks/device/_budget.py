"""The run's time: a budget shared by the parts, and the step times it is planned
from.

Each part gets a share of the time still left when it starts (`Budget.allocate`:
what an earlier part did not use goes to the later ones), and sizes its work from
the compile and step times measured once per model (`probe`: the training loop
compiled and run over one chunk of examples, scaled to the whole set, so that a
full-width network on a CPU costs one chunk to probe, not one step). A part whose
smallest size does not fit its share still runs at that size when it fits in the
time left to the whole run, and is skipped (saying so) when it does not: the last
part, the elastic one, absorbs the difference.
"""

import math
import sys
import time
from typing import NamedTuple

import jax

import eqtuners as et

# Planning factors over a probe's compile time (a `Constant` loop): a loop with a
# line search (the objective compiled again inside the search), and one with
# measurements (Hessian-vector products compiled too).
SEARCH_COMPILE = 1.5
MEASURE_COMPILE = 2.0
# The whole run may overrun its budget by this fraction of it to give the suite its
# smallest size (480 s and 20%: 576 s, inside a 10-minute command).
SLACK = 0.2
# A probe step longer than this is timed once; a shorter one over `PROBE_STEPS`.
LONG_STEP_S = 1.0
PROBE_STEPS = 10


class Budget:
    """`total` seconds from now, shared by the parts in `shares` (name: weight);
    `reserved` seconds of the time left are kept for a later part."""

    def __init__(self, total: float, shares: dict[str, float]):
        self.total = float(total)
        self.shares = dict(shares)
        self.start = time.perf_counter()
        self.reserved = 0.0

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def left(self) -> float:
        return self.total - self.elapsed()

    def available(self) -> float:
        """The time left, less what is reserved."""
        return self.left() - self.reserved

    def allocate(self, part: str, remaining: list[str]) -> float:
        """The seconds of `part`: its share of the time available, among itself
        and the `remaining` parts after it (the last part gets all that is left)."""
        weight = self.shares[part]
        together = weight + sum(self.shares[p] for p in remaining)
        return max(0.0, self.available()) * weight / together

    def log(self, message: str) -> None:
        """A progress line on stderr, with the time since the start."""
        print(
            f"[device {self.elapsed():5.0f} s] {message}", file=sys.stderr, flush=True
        )


class StepEstimate(NamedTuple):
    """A model's measured costs: `compile_s` to compile its training loop (with
    `Constant`), `step_s` for one step over all examples."""

    compile_s: float
    step_s: float


def until(deadline: float) -> float:
    """The seconds from now to `deadline` (a `time.perf_counter()` value)."""
    return deadline - time.perf_counter()


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def probe(model, x, y, chunk_size: int | None) -> StepEstimate:
    """Compiles `eqtuners.train` with `Constant` over one chunk of `(x, y)` (all
    of it without chunks) and times its steps there (a call of one step, and,
    when that is short, one of `PROBE_STEPS` steps less it), scaled to the whole
    set."""
    n = x.shape[0]
    chunk = n if chunk_size is None else min(chunk_size, n)

    def run(steps):
        et.train(
            model,
            et.Constant(0.01),
            (x[:chunk], y[:chunk]),
            steps,
            key=jax.random.key(0),
            measure=None,
            steps_per_call=PROBE_STEPS,
            progress=False,
        )

    first = _seconds(lambda: run(1))
    one = _seconds(lambda: run(1))  # a step and the call's own cost
    step = one
    if one < LONG_STEP_S:  # the call's own cost cancels (if lost in noise: a bound)
        more = _seconds(lambda: run(PROBE_STEPS)) - one
        step = more / (PROBE_STEPS - 1) if more > 0 else one / PROBE_STEPS
    return StepEstimate(max(first - one, 0.0), step * math.ceil(n / chunk))


class Plan(NamedTuple):
    """Steps per timed call (`None`: not even the smallest fits), timed rounds, the
    seconds planned for them, and the seconds `left` to the whole run then."""

    steps: int | None
    repeats: int
    seconds: float
    left: float | None = None

    def skipped(self) -> dict:
        """A skipped part's entry in the results."""
        left = max(self.left or 0.0, 0.0)
        return {"skipped": f"needs about {self.seconds:.0f} s, {left:.0f} s left"}

    def fields(self) -> dict:
        """A timed part's entries in the results."""
        return {
            "steps": self.steps,
            "repeats": self.repeats,
            "planned_s": round(self.seconds, 1),
        }


def plan_timing(
    seconds: float,
    compile_s: float,
    step_s: float,
    steps: tuple[int, int],
    repeats: int,
    left: float | None = None,
) -> Plan:
    """The most steps per call in the range `steps`, with as many of `repeats`
    rounds as fit, such that compiling (`compile_s`), the compiling call and the
    rounds (`step_s`: one step of every function timed together) fit in
    `seconds`; when none does, the smallest size (one round) if it fits in `left`,
    the whole budget's time left."""
    smallest, largest = steps
    for rounds in range(repeats, 0, -1):
        per_step = (1 + rounds) * step_s  # the compiling call runs its steps too
        count = fit(seconds - compile_s, per_step, smallest, largest)
        if count is not None:
            return Plan(count, rounds, compile_s + per_step * count, left)
    planned = compile_s + 2 * step_s * smallest
    fits = left is not None and planned <= left
    return Plan(smallest if fits else None, 1, planned, left)


def fit(seconds: float, per_unit: float, smallest: int, largest: int) -> int | None:
    """The largest count in `[smallest, largest]` of units costing `per_unit`
    seconds that fits in `seconds`; `None` when not even `smallest` does."""
    if seconds < 0:
        return None
    count = int(seconds // per_unit) if per_unit > 0 else largest
    if count < smallest:
        return None
    return min(count, largest)
