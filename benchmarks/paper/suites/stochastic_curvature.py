"""Beyond the paper: the curvature that mini-batch tuners see. SGD, Armijo-SGD and
Polyak-SGD at batch sizes 256, 1024 and 4096, measuring the full-batch sharpness,
the batch sharpness (the mean curvature of fresh mini-batch objectives along their
own gradients, Andreyev and Beneventano's "Edge of Stochastic Stability") and the
mean top eigenvalue of mini-batch Hessians.

    python -m benchmarks.paper stochastic_curvature --scale cpu  # 17 min, 2 CPU cores

Scales: the stochastic suite's workloads (`paper`: MLP, VGG11, ResNet34 on CIFAR10;
`offline`: Fashion-MNIST padded to 32x32; `cpu`: the paper's MLP on all 60,000
Fashion-MNIST images, three seeds, here 3 epochs but at least 150 steps (703 steps
at batch 256, 176 at 1024, 150 at 4096: the claims are medians over the run's
measurements, and 150 steps at batch 4096 are 10 epochs); `smoke`: a narrow MLP on
512 digits, the tests), measured 25 times per run on 1024 random training examples
(on CPU 15 times on 512, to pay for the seeds), the sharpness by warm-started
Lanczos. SGD runs at the largest stable step of the deterministic
sweep. At the start and the end of every run the Hessian's spectral density on the
same examples is estimated by stochastic Lanczos quadrature and drawn, a panel per
batch size.

The question (the paper's open one): at batch 256 Armijo-SGD runs "above the edge
of stability" (step x full-batch sharpness > 2), at 4096 it behaves like Armijo-GD.
Armijo's test on the batch objective bounds `step x batch curvature` by `2(1-c)` on
a quadratic, so if the batch curvature is what the search sees, Armijo-SGD keeps
step x batch sharpness at or below about 2 at every batch size, and "above the
edge" at small batch is the gap between batch and full-batch curvature. Checked as
claim S1 for Armijo-SGD; S2 checks the Edge of Stochastic Stability's prediction
for SGD (step x batch sharpness near 2); Polyak-SGD's two numbers are reported.
Each on each seed.
"""

import dataclasses

from .._paper import MINI_BATCH
from .._suite import Suite
from .._tuners import TunerSpec

CURVATURE = dict(
    every=None,
    measurements=25,
    examples=1024,
    estimator="lanczos",
    batch_measurements=True,
    spectrum=True,
)


def _with_curvature(workloads, measure=(), **changes):
    """The stochastic suite's workloads, measuring the curvature of mini-batches."""
    return tuple(
        dataclasses.replace(
            w,
            measure=dataclasses.replace(w.measure, **(CURVATURE | dict(measure))),
            **changes,
        )
        for w in workloads
    )


# The stochastic suite's workloads; on CPU 3 epochs instead of 5.
SUITE = Suite(
    name="stochastic_curvature",
    doc=__doc__,
    figures_of_paper="stochastic regime (Figures 3 to 5), with the curvature of "
    "the mini-batch objectives",
    scales={
        "paper": _with_curvature(MINI_BATCH["paper"]),
        "offline": _with_curvature(MINI_BATCH["offline"]),
        "cpu": _with_curvature(
            MINI_BATCH["cpu"],
            measure={"measurements": 15, "examples": 512},
            epochs=3,
            min_steps=150,
        ),
        "smoke": _with_curvature(
            MINI_BATCH["smoke"], measure={"every": 4, "examples": 64}
        ),
    },
    tuners=(TunerSpec("armijo"), TunerSpec("polyak")),
    gd_at_sweep=1,  # SGD at the largest stable step only
    claims=("S1", "S2", "S3"),
    figures=("curvature_grids", "spectra"),
    minutes={"cpu": (17.1, None)},
)
