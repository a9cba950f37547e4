"""Stochastic regime (the paper's Figures 3 to 5): mini-batches of 256, 1024 and
4096 on the whole training set; SGD at the two step sizes of the deterministic
sweep, Armijo-SGD and Polyak-SGD whose check uses the step's own mini-batch.

    python -m benchmarks.paper stochastic --scale cpu      # 17 minutes on 2 CPU cores
    python -m benchmarks.paper stochastic --scale paper    # CIFAR10, one GPU

Scales:

- `paper`: MLP, VGG11 and ResNet34 on all 50,000 CIFAR10 training images.
- `offline`: the same on the 60,000 Fashion-MNIST images padded to 32x32.
- `cpu`: the paper's MLP on all 60,000 Fashion-MNIST images (needs its files),
  three seeds, 5 epochs but at least 300 steps: 1170 steps at batch 256, 300 at
  1024 and 4096 (5 epochs at 4096 are 73 steps, too few to judge a claim on), and
  30 measurements a run instead of 60, to pay for the seeds.
- `smoke`: a narrow MLP on 512 digits, batch 64 (the tests).

Every run gets the same number of epochs (or the same least number of steps); the
full training loss and the sharpness (on a fixed random subset of the training set)
are measured about 60 times per run and at the last step. The figures' x axis is
epochs, and per-step quantities are averaged over windows of 20 steps (the figure
says so).

The paper reports: the picture depends on the batch size. At batch 4096 Armijo-SGD
behaves like Armijo-GD (its step shrinks while the sharpness rises); at batch 256
it takes steps near its cap and runs above the edge of stability (step size x
sharpness > 2). Polyak-SGD is the best or close to it at every batch size, at or
above the edge. Checked as claims C5 and C6, on each seed.
"""

from .._paper import MINI_BATCH
from .._suite import Suite
from .._tuners import TunerSpec

SUITE = Suite(
    name="stochastic",
    doc=__doc__,
    figures_of_paper="Figures 3 to 5 (stochastic regime)",
    scales=MINI_BATCH,
    tuners=(TunerSpec("armijo"), TunerSpec("polyak")),
    gd_at_sweep=2,
    claims=("C5", "C6"),
    figures=("batch_size_grid",),
    minutes={"cpu": (16.8, None)},
)
