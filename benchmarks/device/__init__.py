"""One command for everything a GPU should show (issue 19): speed against optax,
the largest model's step and product, runs in one compile, the cost of tracking
the sharpness, and the paper's claims on a convolutional network.

    python -m benchmarks.device --data-dir data/fashion-mnist   # one GPU: 8 minutes
    python -m benchmarks.device --cpu --data-dir DIR           # a CPU: a few minutes

Parts, in the order they run (`--parts` picks some):

- `speed_mlp`, `speed_vgg11` (`--parts speed`): per-step time of `Constant`,
  `Armijo` (sequential and block search) and `Polyak` against their optax peers on
  4096 synthetic CIFAR-shaped examples, full batch, side by side (`_speed`).
- `stack`: 8 runs of the MLP in one compiled, vmapped call against the same 8 runs
  one by one, for Constant and Polyak: throughput ratio (`_stack`).
- `tracking`: Polyak-GD on the MLP with the sharpness measured every 10 steps
  (`--estimator`, default warm-started Lanczos at `--tol` 1e-3) against training
  alone, side by side: the overhead (`_tracking`).
- `resnet34`: ResNet34's step and Hessian-vector product times (`_products`).
- `deterministic`: the paper's deterministic suite on the MLP and VGG11 on 4096
  Fashion-MNIST images padded to 32x32 (`--data-dir`), as many steps as fit, at
  least 1000, with its `report.md` (`_deterministic`).

The whole run keeps to a time budget (`--budget`, 480 s; 300 s with `--cpu`): each
model's step time is measured first (`_budget.probe`), and each part takes its
share of the time left and sizes its steps and rounds from it; a part whose
smallest size does not fit in the time left to the whole run is skipped (rerun it
alone with `--parts`; the suite resumes its runs). Progress goes to stderr, each
part's time with it; `OUT/device.json` (default `results/device/`) is rewritten as
each part finishes, so a killed run keeps what it measured; at the end one table
gives every part's numbers and the targets met or not: Armijo's block search at
most 0.6x optax's backtracking per step on the MLP and VGG11, and 8 runs in one
compile at least 6x the throughput of 8 one by one on the MLP (both for one GPU).
The suite writes under `OUT/paper/` (its runs, figures and report). The sizes are
in `_sizes`.

A missing Fashion-MNIST is one line on stderr and exit status 2, before any work;
a part that fails is reported in the table and the others still run (exit status
1).
"""
