"""On the host, after each call of the compiled loop: the call's rows in the
history's column order, where each run stopped, and the warnings at the end.

Rows are kept with a leading run axis (one run for a single run), so a single run
and a stack take one path; a single run's history drops that axis at the end.
A single run's rows end at the step where it stopped; a stack's rows of a run
after it stopped are NaN (in floating point, as every column is then) but for
`step`.
"""

import warnings

import numpy as np

from ._measurements import WITH_STEPSIZE, Probe
from ._records import LOOP_KEYS, History
from ._sharpness import DirectionalCurvature


class Rows:
    """The rows of a run (or of stacked runs), gathered call by call.

    **Arguments:**

    - `probe`: what is measured (`None`: nothing), for the column order.
    - `runs`: the number of stacked runs, `None` for a single run.
    - `first`: the step the run starts (or resumes) at.
    - `num_steps`: the step it ends at.
    """

    def __init__(self, probe: Probe | None, runs: int | None, first, num_steps):
        self.probe = probe
        self.single = runs is None
        self.step = int(first)  # the next step to run
        self.num_steps = int(num_steps)
        self.diverged_at: list[int | None] = [None] * (runs or 1)
        self.nonfinite: list[str | None] = [None] * (runs or 1)
        self._chunks: list[History] = []

    @property
    def done(self) -> bool:
        """Whether every step is run or every run has stopped."""
        stopped = all(d is not None for d in self.diverged_at)
        return self.step >= self.num_steps or stopped

    def add(self, raw) -> History:
        """Takes one call's rows from the device (`{column: (steps, runs)}`, or
        `(steps,)` for a single run); returns them as `callback` gets them."""
        first = self.step
        count = min(len(raw["loss"]), self.num_steps - first)
        rows = {}
        for k in column_order(raw, self.probe):
            v = np.asarray(raw[k])[:count]
            # (steps, runs) -> (runs, steps), in floating point for the NaN rows.
            rows[k] = v[None] if self.single else v.T.astype(np.float64)
        for run, (index, what) in enumerate(first_nonfinite(rows)):
            if index >= 0 and self.diverged_at[run] is None:
                self.diverged_at[run], self.nonfinite[run] = first + index, what
        end = count
        for run, stop in enumerate(self.diverged_at):
            if stop is None:
                continue
            if self.single:
                end = stop + 1 - first
            else:
                for v in rows.values():
                    v[run, max(stop + 1 - first, 0) :] = np.nan
        steps = np.repeat((first + np.arange(count))[None], len(self.diverged_at), 0)
        rows = {k: v[:, :end] for k, v in {"step": steps, **rows}.items()}
        self._chunks.append(rows)
        self.step += count
        return self._as_given(rows)

    def history(self) -> History:
        """Every row so far, as `TrainResult.history`."""
        return self._as_given(self._concatenated())

    def _concatenated(self) -> History:
        chunks = self._chunks
        return {k: np.concatenate([c[k] for c in chunks], -1) for k in chunks[0]}

    def _as_given(self, rows: History) -> History:
        return {k: v[0] for k, v in rows.items()} if self.single else rows

    def warn(self, stacklevel: int) -> None:
        """One warning per run that stopped on a non-finite value, and one for the
        measurements that did not converge; `stacklevel` as for `warnings.warn`,
        counted from the caller of this method."""
        history = self._concatenated()
        first_step = int(history["step"][0, 0])
        for run, (stop, what) in enumerate(zip(self.diverged_at, self.nonfinite)):
            if stop is not None:
                rows = {k: v[run] for k, v in history.items()}
                name = "" if self.single else f"Run {run}: "
                warnings.warn(
                    name + nonfinite_message(rows, stop, what, first_step),
                    RuntimeWarning,
                    stacklevel=stacklevel + 1,
                )
        estimator = None if self.probe is None else self.probe.estimator
        warn_unconverged(history, estimator, stacklevel + 1)


def column_order(rows, probe) -> list[str]:
    """The loop's columns, then the other measurements and their products with the
    step size, then the tuner's `info`."""
    first = [*LOOP_KEYS, *([] if probe is None else probe.keys())]
    first += [f"stepsize_x_{k}" for k in WITH_STEPSIZE]
    columns = list(dict.fromkeys(k for k in first if k in rows))
    return columns + sorted(set(rows) - {*columns})


def first_nonfinite(rows) -> list[tuple[int, str | None]]:
    """Per run, the index of the first row with a non-finite loss or gradient
    (or -1), and what was not finite there; `rows` has a leading run axis."""
    bad_loss = ~np.isfinite(rows["loss"])
    bad = bad_loss | ~np.isfinite(rows["grad_sq_norm"])
    found = []
    for run_bad, run_loss in zip(bad, bad_loss):
        if run_bad.any():
            i = int(np.argmax(run_bad))
            found.append((i, "loss" if run_loss[i] else "gradient"))
        else:
            found.append((-1, None))
    return found


def nonfinite_message(rows, step, what, first_step) -> str:
    """The warning for a run stopped by a non-finite loss or gradient (`rows`: that
    run's history, from `first_step` on)."""
    where = step - first_step
    if what == "gradient":
        return (
            f"the gradient is not finite at step {step} while the loss is "
            f"finite ({rows['loss'][where]:.6g}): the objective is not "
            "differentiable at these parameters (a square root or a norm at zero, "
            "a log at zero, ...). The run stopped there with the parameters "
            "unchanged; change the model or where it starts."
        )
    if where == 0:
        return (
            f"the loss is {rows['loss'][where]} at step {step}, the first step "
            "run: check the model's initialisation and the data for NaN or "
            "infinite values. The run stopped there."
        )
    return (
        f"the loss became {rows['loss'][where]} at step {step} after a step "
        f"of size {rows['stepsize'][where - 1]:.4g}; the run stopped there, with the "
        "parameters at which the loss was not finite. The step size is too large "
        "for this model and data: lower it, or use a tuner that checks the loss "
        "(Armijo)."
    )


def warn_unconverged(history, estimator, stacklevel: int) -> None:
    """One warning for the measurements whose estimate did not converge (not for
    the curvature along the gradient, which is no eigenvalue estimate)."""
    if estimator is None or isinstance(estimator, DirectionalCurvature):
        return
    converged = np.asarray(history["sharpness_converged"], float)
    measured = np.isfinite(converged)
    failed = int(np.sum(measured & (converged == 0)))
    if failed:
        warnings.warn(
            f"{failed} of {int(measured.sum())} sharpness measurements did not "
            f"converge ({estimator}): their estimates may be far from the top "
            "eigenvalue (see the `sharpness_residual` column). Allow more "
            "Hessian-vector products (PowerIteration(max_iters=...), "
            "Lanczos(max_steps=...)) or a looser tolerance.",
            RuntimeWarning,
            stacklevel=stacklevel + 1,
        )
