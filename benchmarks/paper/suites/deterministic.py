"""Deterministic regime (the paper's Figures 1 and 2): full-batch GD at the two
largest stable step sizes, Armijo-GD and Polyak-GD at the paper's defaults.

    python -m benchmarks.paper deterministic --scale cpu    # 8.5 min, 2 CPU cores
    python -m benchmarks.paper deterministic --scale paper  # CIFAR10, one GPU

Scales:

- `paper`: MLP, VGG11 and ResNet34 on the paper's class-balanced 4096-example subset
  of CIFAR10, full batch, sharpness by the paper's power iteration every 50 steps.
- `offline`: the same on Fashion-MNIST padded to 32x32 (the real data of machines
  without CIFAR10).
- `cpu`: the paper's MLP on scikit-learn's digits (1437 images, embedded) and on a
  1024-example subset of Fashion-MNIST (needs its files).
- `smoke`: a narrow MLP on 256 digits for a few steps (the tests).

Every scale first sweeps fixed step sizes 1/16 to 4 (ratio sqrt 2, one stacked run)
for the two largest that do not diverge.

The paper reports: GD settles at the edge of stability (step size x sharpness ~ 2);
Armijo-GD never increases the loss but keeps sharpening, so its step shrinks and it
ends with the highest sharpness, below the edge, and a higher loss; Polyak-GD runs
at or above the edge and reaches the lowest loss at a lower sharpness than Armijo.
Checked as claims C1, C2 and C3, on each seed.
"""

from .._paper import FULL_BATCH
from .._suite import Suite
from .._tuners import TunerSpec

SUITE = Suite(
    name="deterministic",
    doc=__doc__,
    figures_of_paper="Figures 1 and 2 (deterministic regime)",
    scales=FULL_BATCH,
    tuners=(TunerSpec("armijo"), TunerSpec("polyak")),
    gd_at_sweep=2,
    minutes={"cpu": (8.5, None)},
    claims=("C1", "C2", "C3"),
    figures=("panels",),
)
