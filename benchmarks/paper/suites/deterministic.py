"""Deterministic regime (the paper's Figures 1 and 2): full-batch GD at the two
largest stable step sizes, Armijo-GD and Polyak-GD at the paper's defaults.

    python -m benchmarks.paper deterministic --scale cpu    # 4.4 minutes, 2 CPU cores
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
Checked as claims C1, C2 and C3.
"""

import numpy as np

from analysis.plots import Curve, plot_panels

from .._config import DataSpec, TunerSpec
from .._report import Claim, all_known, final, median_second_half
from .._suite import Suite, Workload

TUNERS = (TunerSpec("armijo"), TunerSpec("polyak"))

DIGITS = DataSpec("digits")
CIFAR = DataSpec("cifar10", subset=4096)
FASHION = DataSpec("fashion_mnist", subset=4096, pad_to=32)

SCALES = {
    "paper": tuple(
        Workload(m, CIFAR, steps=s, every=50, sweep_steps=500)
        for m, s in (("mlp", 10000), ("vgg11", 5000), ("resnet34", 5000))
    ),
    "offline": tuple(
        Workload(m, FASHION, steps=s, every=50, sweep_steps=500)
        for m, s in (("mlp", 10000), ("vgg11", 5000), ("resnet34", 5000))
    ),
    "cpu": (
        Workload("mlp", DIGITS, steps=2000, every=20, sweep_steps=500),
        Workload(
            "mlp",
            DataSpec("fashion_mnist", subset=1024),
            steps=1000,
            every=25,
            sweep_steps=300,
        ),
    ),
    "smoke": (
        Workload(
            "mlp",
            DataSpec("digits", subset=256),
            steps=8,
            width=0.5,
            every=4,
            sweep_steps=4,
            steps_per_call=4,
        ),
    ),
}


def plan(workload, stepsizes, num_examples):
    tuners = [TunerSpec("constant", s) for s in stepsizes] + list(TUNERS)
    return [
        workload.run("deterministic", t, None, seed, num_examples)
        for seed in workload.seeds
        for t in tuners
    ]


def _by_kind(runs):
    return {r.config.tuner.kind: r for r in runs}, [
        r for r in runs if r.config.tuner.kind == "constant"
    ]


def check_full_batch_claims(results, suite_runs=None) -> list[Claim]:
    """C1 (fixed-step GD at the edge), C2 (Armijo-GD) and C3 (Polyak-GD against
    Armijo-GD) on every workload and seed; `suite_runs` picks the runs compared for
    "the highest sharpness" (default: all of the workload's)."""
    claims = []
    for result in results:
        for seed in result.workload.seeds:
            runs = [r for r in result.runs if r.config.seed == seed]
            where = result.workload.label + (f", seed {seed}" if seed else "")
            kinds, constant = _by_kind(runs)
            for r in constant:
                m = median_second_half(r.history)
                claims.append(
                    Claim(
                        "C1",
                        "fixed-step GD: median step size x sharpness over the second "
                        "half in [1.5, 2.5]",
                        f"{where}, {r.config.tuner.label}",
                        {"median": m},
                        None if m is None else 1.5 <= m <= 2.5,
                    )
                )
            armijo, polyak = kinds.get("armijo"), kinds.get("polyak")
            if armijo is not None:
                claims += _armijo_claims(armijo, runs, where)
            if armijo is not None and polyak is not None:
                claims.append(_polyak_against_armijo(polyak, armijo, where))
    return claims


def _armijo_claims(armijo, runs, where) -> list[Claim]:
    loss = armijo.history["loss"]
    increases = int(np.sum(np.diff(loss) > 0))
    sharp = {r.config.tuner.label: final(r.history, "sharpness") for r in runs}
    own = sharp[armijo.config.tuner.label]
    others = [v for k, v in sharp.items() if k != armijo.config.tuner.label]
    highest = None if own is None or None in others else all(own > v for v in others)
    m = median_second_half(armijo.history)
    return [
        Claim(
            "C2a",
            "Armijo-GD: the training loss never increases",
            where,
            {"increases": increases, "steps": len(loss)},
            increases == 0,
        ),
        Claim(
            "C2b",
            "Armijo-GD: its final sharpness is the highest of the runs",
            where,
            {k: v for k, v in sharp.items()},
            highest,
        ),
        Claim(
            "C2c",
            "Armijo-GD: median step size x sharpness over the second half <= 2",
            where,
            {"median": m},
            None if m is None else m <= 2,
        ),
    ]


def _polyak_against_armijo(polyak, armijo, where) -> Claim:
    loss_p, loss_a = (
        final(polyak.history, "train_loss"),
        final(armijo.history, "train_loss"),
    )
    sharp_p, sharp_a = (
        final(polyak.history, "sharpness"),
        final(armijo.history, "sharpness"),
    )
    known = all_known(loss_p, loss_a, sharp_p, sharp_a)
    return Claim(
        "C3",
        "Polyak-GD: final training loss below Armijo-GD's, at a lower final sharpness",
        where,
        {
            "Polyak loss": loss_p,
            "Armijo loss": loss_a,
            "Polyak sharpness": sharp_p,
            "Armijo sharpness": sharp_a,
        },
        (loss_p < loss_a and sharp_p < sharp_a) if known else None,
    )


def curve(run, steps_per_epoch=None):
    tuner = run.config.tuner
    fixed = tuner.value if tuner.kind == "constant" else None
    return Curve(tuner.label, run.history, fixed, steps_per_epoch)


def figures(results, directory):
    paths = []
    for result in results:
        for seed in result.workload.seeds:
            runs = [r for r in result.runs if r.config.seed == seed]
            name = result.workload.figure_name(seed)
            paths.append(
                plot_panels(
                    [curve(r) for r in runs],
                    directory / f"{name}.png",
                    title=f"{result.workload.label}, full batch (seed {seed})",
                )
            )
    return paths


SUITE = Suite(
    name="deterministic",
    doc=__doc__,
    figures_of_paper="Figures 1 and 2 (deterministic regime)",
    scales=SCALES,
    plan=plan,
    needs_sweep=True,
    claims=check_full_batch_claims,
    figures=figures,
    minutes={"cpu": (4.4, None)},
)
