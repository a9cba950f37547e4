"""What the training loop measures besides the step itself, and when.

The columns each measurement writes are listed in `Measurements`.
"""

import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ._sharpness import (
    PRODUCTS,
    AbstractSharpnessEstimator,
    directional_curvature,
    hessian_operator,
    hessian_trace,
    make_estimator,
)
from ._validation import checked_int

# The columns a row has when nothing is measured (`train(..., measure=None)`).
UNMEASURED_KEYS = (
    "train_loss",
    "sharpness",
    "sharpness_num_hvps",
    "sharpness_residual",
    "sharpness_converged",
    "directional_curvature",
)
# The measured quantities whose product with the step size is a column too.
WITH_STEPSIZE = (
    "sharpness",
    "batch_curvature",
    "batch_sharpness",
    "batch_top_eigenvalue",
)


class Measurements(eqx.Module):
    """The measurement schedule and what is measured on it: the history's columns.

    `Measurements` groups every option about measuring, as diffrax's `SaveAt` groups
    the output times of a solve: a new kind of measurement is a new field here,
    never a new argument of `train`. On the schedule (every `every` steps from step
    0, every step of the `zoom` window, and always at the last step), the loop
    measures, at the parameters *before* the step:

    - `train_loss`: the full training objective (chunked; for a full-batch run it is
      the step's own loss);
    - `sharpness`: the top Hessian eigenvalue of the objective on the measurement
      set, by the chosen estimator, with its `sharpness_residual` (`||Hv - lambda
      v||`), `sharpness_num_hvps` (Hessian-vector products used) and
      `sharpness_converged` (1 when the returned pair has a small residual, 0 when
      not);
    - `stepsize_x_sharpness`: the step size times the sharpness (the edge of
      stability is 2);
    - `directional_curvature`: `g^T H g / ||g||^2` along the step's gradient `g`,
      for the Hessian `H` of the measurement set (one more product).

    And, to study what mini-batch tuners see (off by default):

    - `batch_curvature`: the curvature of the step's own mini-batch objective `f_B`
      along its own gradient `g_B`, `g_B^T H_B g_B / ||g_B||^2` (one product on the
      batch). An Armijo search on `f_B` along `-g_B` accepts at most `2(1-c) /
      batch_curvature` on a quadratic, whatever the full-batch sharpness.
    - `batch_sharpness` (and `batch_sharpness_stderr`): the mean of that curvature
      over `batches` fresh mini-batches of the run's batch size, with its standard
      error: the "batch sharpness" of Andreyev and Beneventano ("Edge of Stochastic
      Stability", 2024), the quantity that mini-batch SGD keeps near `2 / step
      size`.
    - `batch_top_eigenvalue` (and its `_stderr`): the mean top eigenvalue of the
      Hessians of `batches` fresh mini-batches, each by the sharpness estimator,
      warm-started from this measurement's full-batch estimate.

    And the spectrum past its top (off by default):

    - `hessian_trace` (and its `_stderr`): the trace of the Hessian on the
      measurement set by Hutchinson's estimator (`eqtuners.hessian_trace`), one
      product per probe.

    Each of `sharpness`, `batch_curvature`, `batch_sharpness` and
    `batch_top_eigenvalue` has its product with the step size beside it
    (`stepsize_x_...`). For a full-batch run the "mini-batch" is the training set,
    so the batch quantities are measured once on it.

    **Products at one point.** A measurement linearises the gradient of the
    measurement set's objective once (`eqtuners.hessian_operator`) and takes every
    product at that point from it: the estimator's, the curvature along the
    gradient's and the trace's; each fresh mini-batch of `batch_sharpness` and
    `batch_top_eigenvalue` is linearised once for both (its gradient is the
    linearisation's primal output). The linearisation keeps the activations of
    every example (`eqtuners.linearised_bytes` gives its size); `products`
    chooses (see below). The products are the same as fresh ones up to float
    rounding.

    The measurement set is the whole training set, or a random subset of `examples`
    examples drawn once with `seed` (never the first ones: a dataset stored in any
    order gives a representative set).

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
    - `estimator`: the sharpness estimator: `"power"` (the paper's power
      iteration: relative change below 1e-3 or 1000 products, from a random
      direction every time; the default), `"lanczos"` (warm-started from the
      previous eigenvector), another name accepted by `eqtuners.sharpness`, or an
      estimator such as `Lanczos(tol=1e-2)`.
    - `sharpness`: deprecated, the former name of `estimator` (a
      `DeprecationWarning`; removed in the next release).
    - `directional_curvature`: whether to measure the curvature along the gradient.
    - `batch_curvature`, `batch_sharpness`, `batch_top_eigenvalue`: whether to
      measure these (see above).
    - `batches`: the fresh mini-batches of `batch_sharpness` and
      `batch_top_eigenvalue`, >= 2.
    - `hessian_trace`: the probes of the Hutchinson trace estimate (0: the trace is
      not measured; otherwise >= 2).
    - `products`: how the products of a measurement are made: `"auto"` (the
      default: linearised when the linearisation keeps at most
      `max_linearised_bytes`, fresh otherwise; decided from shapes when the loop
      is compiled), `"linearised"` or `"fresh"` (forward over reverse at every
      product, no memory kept: the choice before linearisation existed).
    - `max_linearised_bytes`: the limit of `"auto"`, in bytes (`None`: a quarter
      of the device's memory where it reports one, else 1 GiB; see
      `eqtuners.hessian_operator`).

    **Raises:** `ValueError` naming the argument for a value out of range, or
    for both `estimator` and `sharpness` given.
    """

    every: int | None = eqx.field(static=True)
    zoom: tuple[int, int] | None = eqx.field(static=True)
    examples: int | None = eqx.field(static=True)
    seed: int = eqx.field(static=True)
    estimator: AbstractSharpnessEstimator
    directional_curvature: bool = eqx.field(static=True)
    batch_curvature: bool = eqx.field(static=True)
    batch_sharpness: bool = eqx.field(static=True)
    batch_top_eigenvalue: bool = eqx.field(static=True)
    batches: int = eqx.field(static=True)
    hessian_trace: int = eqx.field(static=True)
    products: str = eqx.field(static=True)
    max_linearised_bytes: int | None = eqx.field(static=True)

    def __init__(
        self,
        every: int | np.integer | None = 50,
        *,
        zoom=None,  # checked below, with a message that names it
        examples: int | np.integer | None = None,
        seed: int | np.integer = 0,
        estimator: str | AbstractSharpnessEstimator | None = None,
        directional_curvature: bool = True,
        batch_curvature: bool = False,
        batch_sharpness: bool = False,
        batch_top_eigenvalue: bool = False,
        batches: int | np.integer = 8,
        hessian_trace: int | np.integer = 0,
        products: str = "auto",
        max_linearised_bytes: int | np.integer | None = None,
        sharpness: str | AbstractSharpnessEstimator | None = None,
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
        name = "estimator"
        if sharpness is not None:
            if estimator is not None:
                raise ValueError(
                    "Give `estimator` only: `sharpness` is its deprecated name."
                )
            warnings.warn(
                "`Measurements(sharpness=...)` is deprecated and will be removed in "
                "the next release: use `Measurements(estimator=...)`.",
                DeprecationWarning,
                stacklevel=2,
            )
            name, estimator = "sharpness", sharpness
        try:
            self.estimator = make_estimator("power" if estimator is None else estimator)
        except ValueError as error:
            raise ValueError(f"`{name}`: {error}") from None
        self.directional_curvature = bool(directional_curvature)
        self.batch_curvature = bool(batch_curvature)
        self.batch_sharpness = bool(batch_sharpness)
        self.batch_top_eigenvalue = bool(batch_top_eigenvalue)
        self.batches = checked_int("batches", batches, lower=2)
        self.hessian_trace = checked_int("hessian_trace", hessian_trace, lower=0)
        if self.hessian_trace == 1:
            raise ValueError(
                "`hessian_trace` must be 0 (not measured) or at least 2 probes (the "
                "standard error needs two), got 1."
            )
        if products not in PRODUCTS:
            raise ValueError(f"`products` must be one of {PRODUCTS}, got {products!r}.")
        self.products = products
        self.max_linearised_bytes = checked_int(
            "max_linearised_bytes", max_linearised_bytes, lower=0, allow_none=True
        )

    @property
    def sharpness(self) -> AbstractSharpnessEstimator:
        """Deprecated: `estimator`."""
        warnings.warn(
            "`Measurements.sharpness` is deprecated and will be removed in the next "
            "release: use `Measurements.estimator`.",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.estimator

    def probe(self) -> "Probe":
        """What is measured, without the schedule: the part the compiled loop
        takes (a new schedule does not recompile it)."""
        return Probe(
            self.estimator,
            self.directional_curvature,
            self.batch_curvature,
            self.batch_sharpness,
            self.batch_top_eigenvalue,
            self.batches,
            self.hessian_trace,
            self.products,
            self.max_linearised_bytes,
        )


class Probe(eqx.Module):
    """What one measurement computes (see `Measurements`)."""

    estimator: AbstractSharpnessEstimator
    directional_curvature: bool = eqx.field(static=True)
    batch_curvature: bool = eqx.field(static=True)
    batch_sharpness: bool = eqx.field(static=True)
    batch_top_eigenvalue: bool = eqx.field(static=True)
    batches: int = eqx.field(static=True)
    hessian_trace: int = eqx.field(static=True)
    products: str = eqx.field(static=True)
    max_linearised_bytes: int | None = eqx.field(static=True)

    def operator(self, fn, params):
        """The Hessian of `fn` at `params` that a measurement shares."""
        return hessian_operator(
            fn, params, products=self.products, max_bytes=self.max_linearised_bytes
        )

    def keys(self) -> list[str]:
        """The measured columns, without the products with the step size."""
        keys = list(UNMEASURED_KEYS[:5])
        if self.directional_curvature:
            keys.append("directional_curvature")
        keys += [
            f"eigenvalue_{i + 2}" for i in range(getattr(self.estimator, "k", 1) - 1)
        ]
        if self.batch_curvature:
            keys.append("batch_curvature")
        for name, on in (
            ("batch_sharpness", self.batch_sharpness),
            ("batch_top_eigenvalue", self.batch_top_eigenvalue),
        ):
            keys += [name, f"{name}_stderr"] if on else []
        if self.hessian_trace:
            keys += ["hessian_trace", "hessian_trace_stderr"]
        return keys

    def measure(
        self,
        objective_on,
        data,
        batch_size,
        params,
        value,
        grad,
        batch_fn,
        tracker,
        key,
    ):
        """One measurement at `params` (see `Measurements`).

        **Arguments:**

        - `objective_on`: `(x, y) -> (params -> objective on those examples)`.
        - `data`: `(x, y, measurement x, measurement y)`.
        - `batch_size`: the run's, `None` for full batch.
        - `value`, `grad`, `batch_fn`: the step's objective value, gradient and
          objective on its batch.
        - `tracker`, `key`: the estimator's state and a PRNG key.

        **Returns:** `(measured, tracker)`, `measured` a dict of scalars in the
        dtype of `value`, keyed by `keys()`.
        """
        x, y, sharp_x, sharp_y = data
        key, batches_key = jax.random.split(key)
        sharp_fn = objective_on(sharp_x, sharp_y)
        operator = self.operator(sharp_fn, params)
        estimate, tracker, info = self.estimator.update(
            sharp_fn, params, tracker, key, operator=operator, grad=grad
        )
        measured = {
            "train_loss": value if batch_size is None else objective_on(x, y)(params),
            "sharpness": estimate,
            "sharpness_num_hvps": info["num_hvps"],
            "sharpness_residual": info["residual"],
            "sharpness_converged": info["converged"],
        }
        if self.directional_curvature:
            measured["directional_curvature"] = directional_curvature(
                sharp_fn, params, grad, operator=operator
            )[0]
        for i, eigenvalue in enumerate(info["top_k"][1:]):
            measured[f"eigenvalue_{i + 2}"] = eigenvalue
        if self.batch_curvature:
            measured["batch_curvature"] = directional_curvature(batch_fn, params, grad)[
                0
            ]
        if self.batch_sharpness or self.batch_top_eigenvalue:
            measured |= self._fresh_batches(
                objective_on, x, y, batch_size, params, tracker, batches_key
            )
        if self.hessian_trace:
            trace, trace_info = hessian_trace(
                sharp_fn,
                params,
                num_samples=self.hessian_trace,
                key=jax.random.fold_in(batches_key, 1),  # leaves the others' keys
                operator=operator,
            )
            measured["hessian_trace"] = trace
            measured["hessian_trace_stderr"] = trace_info["stderr"]
        return {k: jnp.asarray(v, value.dtype) for k, v in measured.items()}, tracker

    def _fresh_batches(self, objective_on, x, y, batch_size, params, tracker, key):
        """Means and standard errors over fresh mini-batches of the curvature along
        their own gradients and of their top eigenvalues."""
        n = x.shape[0]
        size = n if batch_size is None else batch_size
        count = 1 if batch_size is None else self.batches

        def one(key):
            pick, start = jax.random.split(key)
            chosen = jax.random.permutation(pick, n)[:size]
            fn = objective_on(x[chosen], y[chosen])
            operator = self.operator(fn, params)  # one linearisation for both
            values = {}
            if self.batch_sharpness:
                values["batch_sharpness"] = directional_curvature(
                    fn, params, operator.value_and_grad()[1], operator=operator
                )[0]
            if self.batch_top_eigenvalue:  # warm: this measurement's eigenvector
                values["batch_top_eigenvalue"] = self.estimator.update(
                    fn, params, tracker, start, operator=operator
                )[0]
            return values

        values = lax.map(one, jax.random.split(key, count))
        out = {}
        for name, v in values.items():
            out[name] = jnp.mean(v)
            spread = jnp.std(v, ddof=1) / jnp.sqrt(count) if count > 1 else 0.0
            out[f"{name}_stderr"] = spread
        return out

    def unmeasured(self, dtype) -> dict:
        """The measured columns of a row not measured: NaN."""
        return dict.fromkeys(self.keys(), jnp.full((), jnp.nan, dtype))


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
