"""Stochastic regime (the paper's Figures 3 to 5): mini-batches of 256, 1024 and
4096 on the whole training set; SGD at the two step sizes of the deterministic
sweep, Armijo-SGD and Polyak-SGD whose check uses the step's own mini-batch.

    python -m benchmarks.paper stochastic --scale cpu      # 4.1 minutes on 2 CPU cores
    python -m benchmarks.paper stochastic --scale paper    # CIFAR10, one GPU

Scales:

- `paper`: MLP, VGG11 and ResNet34 on all 50,000 CIFAR10 training images.
- `offline`: the same on the 60,000 Fashion-MNIST images padded to 32x32.
- `cpu`: the paper's MLP on all 60,000 Fashion-MNIST images (needs its files).
- `smoke`: a narrow MLP on 512 digits, batch 64 (the tests).

Every run gets the same number of epochs; the full training loss and the sharpness
(on a fixed random subset of the training set) are measured about 60 times per run
and at the last step. The figures' x axis is epochs, and per-step quantities are
averaged over windows of 20 steps (the figure says so).

The paper reports: the picture depends on the batch size. At batch 4096 Armijo-SGD
behaves like Armijo-GD (its step shrinks while the sharpness rises); at batch 256
it takes steps near its cap and runs above the edge of stability (step size x
sharpness > 2). Polyak-SGD is the best or close to it at every batch size, at or
above the edge. Checked as claims C5 and C6.
"""

import numpy as np

from analysis.plots import plot_batch_size_grid

from .._config import DataSpec, TunerSpec
from .._report import Claim, final, measured, median_second_half
from .._suite import Suite, Workload
from .deterministic import curve

BATCHES = (256, 1024, 4096)
TUNERS = (TunerSpec("armijo"), TunerSpec("polyak"))


def _workload(model, data, sweep_data, epochs, **kwargs):
    options = dict(batch_sizes=BATCHES, every=None, examples=4096) | kwargs
    return Workload(model, data, epochs=epochs, sweep_data=sweep_data, **options)


SCALES = {
    "paper": tuple(
        _workload(
            m,
            DataSpec("cifar10"),
            DataSpec("cifar10", subset=4096),
            20,
            sweep_steps=500,
        )
        for m in ("mlp", "vgg11", "resnet34")
    ),
    "offline": tuple(
        _workload(
            m,
            DataSpec("fashion_mnist", pad_to=32),
            DataSpec("fashion_mnist", subset=4096, pad_to=32),
            20,
            sweep_steps=500,
        )
        for m in ("mlp", "vgg11", "resnet34")
    ),
    "cpu": (
        _workload(
            "mlp",
            DataSpec("fashion_mnist"),
            DataSpec("fashion_mnist", subset=1024),
            5,
            sweep_steps=300,
            examples=1024,
            estimator="lanczos",
        ),
    ),
    "smoke": (
        Workload(
            "mlp",
            DataSpec("digits", subset=512),
            width=0.5,
            batch_sizes=(64,),
            epochs=1,
            every=2,
            examples=64,
            sweep_steps=4,
            steps_per_call=4,
        ),
    ),
}


def mini_batch_runs(suite, workload, stepsizes, num_examples):
    """SGD at each of `stepsizes`, Armijo-SGD and Polyak-SGD, at every batch size
    and seed of `workload`."""
    tuners = [TunerSpec("constant", s) for s in stepsizes] + list(TUNERS)
    return [
        workload.run(suite, t, b, seed, num_examples)
        for seed in workload.seeds
        for b in workload.batch_sizes
        for t in tuners
    ]


def plan(workload, stepsizes, num_examples):
    return mini_batch_runs("stochastic", workload, stepsizes, num_examples)


def _split(values):
    """The mean of the first and of the last fifth of `values`."""
    n = max(1, len(values) // 5)
    return float(np.mean(values[:n])), float(np.mean(values[-n:]))


# The first tenth of a run is left out of "over the run": from the initialisation
# every run's sharpness first drops (all tuners, every batch size), and progressive
# sharpening is what follows.
TRANSIENT = 0.1


def check_minibatch_claims(results) -> list[Claim]:
    claims = []
    for result in results:
        batches = sorted(result.workload.batch_sizes)
        for seed in result.workload.seeds:
            runs = [r for r in result.runs if r.config.seed == seed]
            for b in batches:
                at = [r for r in runs if r.config.batch_size == b]
                where = f"{result.workload.label}, batch {b}"
                claims += _armijo(at, b, batches, where)
                claims += _polyak(at, where)
    return claims


def _armijo(runs, batch, batches, where) -> list[Claim]:
    armijo = next((r for r in runs if r.config.tuner.kind == "armijo"), None)
    if armijo is None:
        return []
    h = armijo.history
    if batch == batches[-1]:
        after = TRANSIENT * armijo.config.steps
        late = np.isfinite(h["stepsize"]) & (h["step"] >= after)
        steps = h["stepsize"][late]
        sharp = measured(h, "sharpness", start=after)
        if steps.size < 2 or sharp.size < 2:
            return [Claim("C5a", "", where, {}, None)]
        step_first, step_last = _split(steps)
        sharp_first, sharp_last = _split(sharp)
        return [
            Claim(
                "C5a",
                "Armijo-SGD at the largest batch: its step shrinks and its sharpness "
                "rises over the run (first vs last fifth, after the first tenth)",
                where,
                {
                    "step": f"{step_first:.3g} -> {step_last:.3g}",
                    "sharpness": f"{sharp_first:.3g} -> {sharp_last:.3g}",
                },
                step_last < step_first and sharp_last > sharp_first,
            )
        ]
    if batch == batches[0]:
        cap = armijo.config.tuner.value
        median_step = float(np.median(h["stepsize"][np.isfinite(h["stepsize"])]))
        m = median_second_half(h)
        return [
            Claim(
                "C5b",
                "Armijo-SGD at the smallest batch: median step near the cap (>= 0.8 "
                "cap) and median step size x sharpness above 2",
                where,
                {"median step": median_step, "cap": cap, "median step x sharpness": m},
                None if m is None else median_step >= 0.8 * cap and m > 2,
            )
        ]
    return []


def _polyak(runs, where) -> list[Claim]:
    polyak = next((r for r in runs if r.config.tuner.kind == "polyak"), None)
    if polyak is None:
        return []
    losses = {r.config.tuner.label: final(r.history, "train_loss") for r in runs}
    known = [v for v in losses.values() if v is not None]
    own = losses[polyak.config.tuner.label]
    m = median_second_half(polyak.history)
    holds = (
        None
        if own is None or m is None or not known
        else own <= 1.1 * min(known) and m >= 2
    )
    return [
        Claim(
            "C6",
            "Polyak-SGD: final training loss the best or within 10% of the best, "
            "at a median step size x sharpness >= 2",
            where,
            {**{f"{k} loss": v for k, v in losses.items()}, "Polyak median": m},
            holds,
        )
    ]


def batch_size_groups(runs, seed) -> dict[int, list]:
    """Batch size -> the `Curve`s of the runs of `seed` at that batch size, in
    epochs."""
    groups = {}
    for r in runs:
        if r.config.seed == seed:
            per_epoch = r.meta["num_examples"] // r.config.batch_size
            groups.setdefault(r.config.batch_size, []).append(curve(r, per_epoch))
    return groups


def figures(results, directory):
    paths = []
    for result in results:
        for seed in result.workload.seeds:
            groups = batch_size_groups(result.runs, seed)
            name = result.workload.figure_name(seed)
            paths.append(
                plot_batch_size_grid(
                    groups,
                    directory / f"{name}.png",
                    title=f"{result.workload.label}, mini-batches (seed {seed})",
                )
            )
    return paths


SUITE = Suite(
    name="stochastic",
    doc=__doc__,
    figures_of_paper="Figures 3 to 5 (stochastic regime)",
    scales=SCALES,
    plan=plan,
    needs_sweep=True,
    claims=check_minibatch_claims,
    figures=figures,
    minutes={"cpu": (4.1, None)},
)
