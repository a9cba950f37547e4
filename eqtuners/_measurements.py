"""What the training loop measures besides the step itself, and when.

`Measurements` groups every option about measuring, as diffrax's `SaveAt` groups
the output times of a solve: a new kind of measurement is a new field here, never a
new argument of `train`. On the schedule (every `every` steps from step 0, every step
of the `zoom` window, and always at the last step), the loop measures, at the
parameters *before* the step:

- `train_loss`: the full training objective (chunked; for a full-batch run it is the
  step's own loss);
- `sharpness`: the top Hessian eigenvalue of the objective on the measurement set,
  by the chosen estimator, with its `sharpness_residual` (`||Hv - lambda v||`),
  `sharpness_num_hvps` (Hessian-vector products used) and `sharpness_converged`
  (1 when the returned pair has a small residual, 0 when not);
- `stepsize_x_sharpness`: the step size times the sharpness (the edge of stability
  is 2);
- `directional_curvature`: `g^T H g / ||g||^2` along the step's gradient `g`, for the
  Hessian `H` of the measurement set (one more product).

The measurement set is the whole training set, or a random subset of `examples`
examples drawn once with `seed` (never the first ones: a dataset stored in any order
gives a representative set).
"""

import equinox as eqx
import jax
import numpy as np

from ._sharpness import AbstractSharpnessEstimator, make_estimator
from ._validation import checked_int


class Measurements(eqx.Module):
    """The measurement schedule and what is measured on it (see the module docstring).

    **Arguments:**

    - `every`: measure every this many steps (from step 0, and at the last step);
      `None` measures only in the `zoom` window and at the last step.
    - `zoom`: `(start, stop)`: also measure at every step in `[start, stop)`, to
      follow the sharpness closely over a stretch (the paper's Figure 6).
    - `examples`: the size of the measurement set for the sharpness and the
      directional curvature, a random subset of the training set drawn with `seed`
      (`None`: the whole training set, the paper's choice for its 4096-example full
      batch).
    - `seed`: fixes that subset.
    - `sharpness`: the estimator: `"power"` (the paper's power iteration: relative
      change below 1e-3 or 1000 products, from a random direction every time; the
      default), `"lanczos"` (warm-started from the previous eigenvector), another
      name accepted by `eqtuners.sharpness`, or an estimator such as
      `Lanczos(tol=1e-2)`.
    - `directional_curvature`: whether to measure the curvature along the gradient.

    **Raises:** `ValueError` naming the argument for a value out of range.
    """

    every: int | None = eqx.field(static=True)
    zoom: tuple[int, int] | None = eqx.field(static=True)
    examples: int | None = eqx.field(static=True)
    seed: int = eqx.field(static=True)
    sharpness: AbstractSharpnessEstimator
    directional_curvature: bool = eqx.field(static=True)

    def __init__(
        self,
        every: int | np.integer | None = 50,
        *,
        zoom: tuple | None = None,
        examples: int | np.integer | None = None,
        seed: int | np.integer = 0,
        sharpness: str | AbstractSharpnessEstimator = "power",
        directional_curvature: bool = True,
    ):
        self.every = checked_int("every", every, allow_none=True)
        if zoom is not None:
            if not isinstance(zoom, tuple | list) or len(zoom) != 2:
                raise ValueError(f"`zoom` must be a pair (start, stop), got {zoom!r}.")
            start = checked_int("zoom[0]", zoom[0], lower=0)
            zoom = (start, checked_int("zoom[1]", zoom[1], lower=start))
        self.zoom = zoom
        self.examples = checked_int("examples", examples, allow_none=True)
        self.seed = checked_int("seed", seed, lower=0)
        try:
            self.sharpness = make_estimator(sharpness)
        except ValueError as error:
            raise ValueError(f"`sharpness`: {error}") from None
        self.directional_curvature = bool(directional_curvature)


def measurement_set(measure: Measurements, x, y):
    """The examples the sharpness is measured on: all of `(x, y)`, or a random
    subset of `measure.examples` drawn with `measure.seed`.

    **Raises:** `ValueError` when `examples` exceeds the training set.
    """
    if measure.examples is None:
        return x, y
    checked_int("examples", measure.examples, upper=x.shape[0])
    rng = np.random.default_rng(measure.seed)
    chosen = np.sort(rng.choice(x.shape[0], measure.examples, replace=False))
    return x[chosen], y[chosen]


def schedule_arrays(measure: Measurements | None):
    """`(every, zoom_start, zoom_stop)` as integers for the compiled loop, where
    `every = 0` means "only the zoom window" (and the last step)."""
    if measure is None:
        return np.int32(0), np.int32(0), np.int32(0)
    start, stop = measure.zoom or (0, 0)
    return np.int32(measure.every or 0), np.int32(start), np.int32(stop)


def is_scheduled(step, num_steps, every, start, stop):
    """Whether `step` is a measurement step (traced values; no data dependence, so
    under `vmap` over runs the measurement stays one `lax.cond`)."""
    periodic = (every > 0) & (step % jax.numpy.maximum(every, 1) == 0)
    return periodic | ((start <= step) & (step < stop)) | (step == num_steps - 1)
