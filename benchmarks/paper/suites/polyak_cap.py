"""The cap of Polyak's step size (the paper's Figure 7): Polyak-GD with maximal
step sizes 0.1, 0.3, 1, 3 and 10, and constant-step GD at the same values.

    python -m benchmarks.paper polyak_cap --scale cpu      # 5.0 minutes, 2 CPU cores
    python -m benchmarks.paper polyak_cap --scale paper    # CIFAR10, one GPU

Scales: the deterministic suite's workloads (`paper`: MLP, VGG11, ResNet34 on the
4096-example CIFAR10 subset; `offline`: Fashion-MNIST padded to 32x32; `smoke`: a
narrow MLP, a few steps), but at `cpu` the MLP on digits only. Full batch; the
five Polyak runs are one stacked run, and so are the five GD runs. The figure
colours runs by their cap (GD dashed in the colour of its cap), as the paper's.

The paper reports: with a small cap Polyak-GD is GD at that step (the cap is hit at
every step); with a large cap (3, 10), where GD diverges, Polyak-GD still converges,
its step size set by the loss and the gradient. Checked as claim C8, on each seed.
"""

from .._paper import FULL_BATCH
from .._suite import Suite
from .._tuners import TunerSpec

CAPS = (0.1, 0.3, 1.0, 3.0, 10.0)

SUITE = Suite(
    name="polyak_cap",
    doc=__doc__,
    figures_of_paper="Figure 7 (the cap of Polyak's step size)",
    scales=FULL_BATCH | {"cpu": FULL_BATCH["cpu"][:1]},
    tuners=tuple(TunerSpec("polyak", c) for c in CAPS)
    + tuple(TunerSpec("constant", c) for c in CAPS),
    claims=("C8",),
    minutes={"cpu": (5.0, None)},
    figures=("cap_sweep",),
)
