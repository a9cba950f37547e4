"""CDAT's scale `sigma` swept in a model of the joint step-size/sharpness dynamics:
where the sharpness stops rising.

CDAT (Roulet, Agarwala, Grill, Swirszcz, Blondel and Pedregosa, NeurIPS 2024,
`eqtuners.CDAT`) takes the step `eta = sigma / kappa` along the gradient `g`, with
`kappa = g^T H g / ||g||^2` the curvature along it (`eps = 0`, `kappa > 0`). On the
quadratic model of the loss along `g` (`G = ||g||^2`), a step `eta` changes the loss
by

    -eta G + eta^2 / 2 kappa G = -sigma (1 - sigma / 2) G / kappa,

a decrease for `0 < sigma < 2`, none at `sigma = 2` (the step that the quadratic
model returns to the same loss: the edge of stability along `g`), an increase
above. So below 2 the loss falls step after step, to second order, and a model
whose loss can only fall by sharpening (`SelfStabilisation`: its loss is at least
its residual `alpha / (2 beta S_max) (S_max - S)^2`, so `S >= S_max - sqrt(2 beta
S_max L / alpha)`) sharpens towards `S_max`; at 2 the loss is held to second order,
and nothing drives the sharpness up. This is the threshold that `sigma_sweep`
measures, many `sigma` in one compile (`eqtuners.stack` of CDATs through
`simulate`), to set beside a network's (the `edge_tuners` suite).
"""

from collections.abc import Sequence
from typing import NamedTuple

import jax
import numpy as np
from jaxtyping import Array, PyTree

import eqtuners as et

from ._simulate import AbstractDynamicsModel, Trajectory, simulate


class SigmaSweep(NamedTuple):
    """What `sigma_sweep` returns; arrays of shape `(R,)`, one entry per `sigma`
    (NaN where the run diverged), in the units of the model's loss and sharpness.

    - `sigmas`: the scales, as given.
    - `initial_sharpness`, `initial_loss`: at the start (the same for every run).
    - `final_sharpness`, `final_loss`: at the last step's parameters (before it).
    - `median_stepsize_x_sharpness`: the median of step size x sharpness over the
      second half of the steps (from step `num_steps // 2` on).
    - `diverged`: whether the run's loss or sharpness stopped being finite, or its
      sharpness left `(0, inf)` (where `SelfStabilisation` is defined).
    - `trajectory`: the runs (`simulate`'s `Trajectory`, a leading axis of size
      `R`).
    """

    sigmas: np.ndarray
    initial_sharpness: np.ndarray
    initial_loss: np.ndarray
    final_sharpness: np.ndarray
    final_loss: np.ndarray
    median_stepsize_x_sharpness: np.ndarray
    diverged: np.ndarray
    trajectory: Trajectory


def sigma_sweep(
    model: AbstractDynamicsModel,
    params: PyTree[Array],
    sigmas: Sequence[float],
    num_steps: int,
    *,
    ema: float = 0.0,
    eps: float = 0.0,
) -> SigmaSweep:
    """Runs `eqtuners.CDAT(sigma, eps, ema)` on `model` from `params` for every
    `sigma` of `sigmas`, in one compile, and summarises each run (see the module
    docstring for what the sweep shows and why).

    **Arguments:**

    - `model`: an `AbstractDynamicsModel` (`SelfStabilisation`,
      `SecondOrderRegression`, ...).
    - `params`: the starting parameters, shared by every run.
    - `sigmas`: the scales, each > 0 (a sequence of numbers, at least one).
    - `num_steps`: steps per run, >= 2.
    - `ema`, `eps`: CDAT's moving-average weight and denominator offset, shared.

    **Returns:** a `SigmaSweep`.

    **Raises:** `ValueError` if `sigmas` is empty, a `sigma`, `ema` or `eps` is out
    of CDAT's range (naming it), or `num_steps` is not an int >= 2.
    """
    sigmas = np.asarray(sigmas, float).reshape(-1)
    if sigmas.size == 0:
        raise ValueError("`sigmas` is empty: give at least one scale.")
    if isinstance(num_steps, bool) or not isinstance(num_steps, int | np.integer):
        raise ValueError(f"`num_steps` must be an int >= 2, got {num_steps!r}.")
    if num_steps < 2:
        raise ValueError(f"`num_steps` must be >= 2 (a second half), got {num_steps}.")
    tuners = et.stack([et.CDAT(float(s), eps=eps, ema=ema) for s in sigmas])
    trajectory = simulate(model, tuners, params, int(num_steps))
    h = jax.tree.map(np.asarray, trajectory.history)
    loss, sharpness, product = h["loss"], h["sharpness"], h["stepsize_x_sharpness"]
    diverged = ~np.all(np.isfinite(loss) & np.isfinite(sharpness) & (sharpness > 0), 1)
    late = slice(int(num_steps) // 2, None)
    median = np.median(product[:, late], axis=1)

    def unless_diverged(values):
        return np.where(diverged, np.nan, values)

    return SigmaSweep(
        sigmas=sigmas,
        initial_sharpness=sharpness[:, 0],
        initial_loss=loss[:, 0],
        final_sharpness=unless_diverged(sharpness[:, -1]),
        final_loss=unless_diverged(loss[:, -1]),
        median_stepsize_x_sharpness=unless_diverged(median),
        diverged=diverged,
        trajectory=trajectory,
    )
