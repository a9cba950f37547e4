"""Sharpness estimators along training runs, side by side at the same accuracy, and
the cost of tracking the sharpness inside `train`.

    python -m benchmarks.sharpness                     # all parts
    python -m benchmarks.sharpness --parts estimators --snapshots 10
    python -m benchmarks.sharpness --parts overhead reuse

Five parts (`--parts`), one module each, each writing its own files under `--out`:

- `estimators` (`benchmarks.sharpness.estimators`): problems (`mlp_digits`: the
  paper's MLP, 40,714 parameters, on the 1437 digits images; `vgg_synthetic`:
  VGG11 without normalisation, widths divided by `--vgg-width-divisor`, on
  `--vgg-examples` synthetic CIFAR-shaped images), trained full batch by Polyak-GD
  and Armijo-GD (`--tuners`, the paper's defaults, weight decay 1e-4), with the
  parameters kept every `--every` steps after `--burn-in` steps: the tracking
  schedule. At every kept point the reference is the top eigenvalue from float64
  Lanczos run to a relative residual of 1e-10 (or the dense Hessian up to
  `--dense-max-params` parameters). Then, in float32 as in training, each
  estimator of `--estimators` measures the sharpness through its `update`,
  carrying its state from point to point as `train` does: the products and the
  wall time of its own stopping rule, the relative error reached, and the
  products it needs to first come within 1e-3 of the reference. Writes
  `estimators.csv` (one row per point and estimator) and `table.csv` (one line per
  problem, tuner and estimator; the first point, a cold start for every estimator,
  is left out).
- `overhead` (`benchmarks.sharpness.overhead`): the wall time of `train` on
  `mlp_digits` (`--overhead-tuners`, Polyak-GD by default; `--overhead-steps`
  steps) with the sharpness every 10 steps by each configuration of
  `--overhead-configs`, against no tracking, in interleaved rounds. Writes
  `overhead.json`.
- `reuse` (`benchmarks.sharpness.reuse`): at a point of the Polyak-GD run on
  `mlp_digits`, the costs of the pieces of a measurement step in gradients: a
  product fresh and linearised, the gradient from a product's primal output, the
  curvature along the gradient from one linearised pass. Writes `reuse.json`.
- `power_residuals` (`benchmarks.sharpness.power_residuals`): the relative
  residuals `||Hv - lambda v|| / |lambda|` of the paper's power iteration (random
  starts) along Polyak-GD and Armijo-GD on `mlp_digits` against the float64
  reference, and on the quadratics with spectra {3, -3, 0.5, 0.1} and {3, -2.97,
  0.5, 0.1}: the measurements behind `PowerIteration`'s `residual_tol`. Writes
  `power_residuals.json`.

- `memory` (`benchmarks.sharpness.memory`): what the linearised Hessian operator
  keeps per model (MLP, VGG11, ResNet34 at 4096 CIFAR-shaped examples and their
  default chunk sizes), from shapes and from XLA's memory analysis of a compiled
  measurement, fresh and linearised. Writes `memory.json`.

The peer, JAX's `lobpcg_standard` behind the estimator interface, is in
`benchmarks.sharpness.peers`; the problems, trajectories and float64 references
that the parts share in `benchmarks.sharpness.problems`; the command line in
`benchmarks.sharpness.cli`. Every part records the run's meta (versions, device,
git revision) in `OUT/meta.json`; `OUT/summary.json` gathers the tables.
"""
