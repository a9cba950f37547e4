"""Polyak-GD step by step (the paper's Figure 6): the first 200 steps, with the loss,
the step size and the sharpness measured at every step.

    python -m benchmarks.paper polyak_zoom --scale cpu      # 2.4 minutes, 2 CPU cores
    python -m benchmarks.paper polyak_zoom --scale paper    # CIFAR10, one GPU

Scales: `paper` (MLP, VGG11, ResNet34 on the 4096-example CIFAR10 subset),
`offline` (Fashion-MNIST padded to 32x32), `cpu` (the MLP on digits and on a
1024-example Fashion-MNIST subset), `smoke` (a narrow MLP, 12 steps). The sharpness
is measured at every step by Lanczos warm-started from the previous step's
eigenvector (a few Hessian-vector products each; the paper's power iteration from
a random start would cost hundreds per step).

The paper reports: Polyak's step size oscillates, taking capped steps while the
sharpness is low and short ones when it is high, so the step size moves against
the sharpness and step size x sharpness hovers around 2. Checked as claim C4, on
each seed.
"""

from .._measure import MeasureSpec
from .._paper import (
    CIFAR10_4096,
    CPU_SEEDS,
    DIGITS,
    FASHION_32_4096,
    FASHION_1024,
    MODELS,
    SMOKE_DIGITS,
)
from .._suite import Suite, Workload
from .._tuners import TunerSpec

STEPS = 200


def _zoom(model, data, steps=STEPS, **options):
    every_step = MeasureSpec(every=None, zoom=(0, steps), estimator="lanczos")
    return Workload(model, data, steps=steps, measure=every_step, **options)


SUITE = Suite(
    name="polyak_zoom",
    doc=__doc__,
    figures_of_paper="Figure 6 (Polyak-GD step by step)",
    scales={
        "paper": tuple(_zoom(m, CIFAR10_4096) for m in MODELS),
        "offline": tuple(_zoom(m, FASHION_32_4096) for m in MODELS),
        "cpu": tuple(
            _zoom("mlp", data, seeds=CPU_SEEDS) for data in (DIGITS, FASHION_1024)
        ),
        "smoke": (_zoom("mlp", SMOKE_DIGITS, 12, width=0.5, steps_per_call=4),),
    },
    tuners=(TunerSpec("polyak"),),
    claims=("C4",),
    minutes={"cpu": (2.4, None)},
    figures=("polyak_zoom",),
)
