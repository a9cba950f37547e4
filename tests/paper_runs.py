"""Hand-built runs of the paper's suites, for claims and figures checked without
training: each run's history shaped as a run directory gives it back."""

from pathlib import Path

import numpy as np

from benchmarks.paper._suite import RunResult
from benchmarks.paper._tuners import TunerSpec
from benchmarks.paper.suites import SUITES

EDGE = SUITES["edge_tuners"]
FULL_BATCH, MINI_BATCH = EDGE.scales["smoke"]
STEPS, EVERY = 100, 10


def history(
    *,
    stepsize=0.1,
    sharpness=10.0,
    final_loss=0.1,
    curvature=None,
    lower=None,
    upper=None,
    steps=STEPS,
):
    """A history: a loss falling to `final_loss`, a constant `stepsize`, and every
    `EVERY` steps (and at the last) the sharpness, the training loss and the
    curvature along the gradient (`curvature`, default half the sharpness); the
    search's bracket columns when `lower` and `upper` are given (every step)."""
    step = np.arange(steps)
    on = (step % EVERY == 0) | (step == steps - 1)
    loss = final_loss + 0.5 * (1 - step / (steps - 1))
    kappa = sharpness / 2 if curvature is None else curvature
    h = {
        "step": step,
        "loss": loss,
        "stepsize": np.full(steps, float(stepsize)),
        "train_loss": np.where(on, loss, np.nan),
        "sharpness": np.where(on, float(sharpness), np.nan),
        "stepsize_x_sharpness": np.where(on, stepsize * sharpness, np.nan),
        "directional_curvature": np.where(on, float(kappa), np.nan),
    }
    if lower is not None:
        h["directional_curvature_lower"] = np.full(steps, float(lower))
        h["directional_curvature_upper"] = np.full(steps, float(upper))
    return h


def run(tuner: TunerSpec, history, *, workload=FULL_BATCH, batch_size=None, seed=0):
    """A completed run of `tuner` with `history`, on `workload`."""
    config = workload.run("edge_tuners", tuner, batch_size, seed, 256)
    meta = {"status": "completed", "num_examples": 512}
    return RunResult(config, history, meta, Path("/nonexistent"))
