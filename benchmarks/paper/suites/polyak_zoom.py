"""Polyak-GD step by step (the paper's Figure 6): the first 200 steps, with the loss,
the step size and the sharpness measured at every step.

    python -m benchmarks.paper polyak_zoom --scale cpu      # 0.9 minutes on 2 CPU cores
    python -m benchmarks.paper polyak_zoom --scale paper    # CIFAR10, one GPU

Scales: `paper` (MLP, VGG11, ResNet34 on the 4096-example CIFAR10 subset),
`offline` (Fashion-MNIST padded to 32x32), `cpu` (the MLP on digits and on a
1024-example Fashion-MNIST subset), `smoke` (a narrow MLP, 12 steps). The sharpness
is measured at every step by Lanczos warm-started from the previous step's
eigenvector (a few Hessian-vector products each; the paper's power iteration from
a random start would cost hundreds per step).

The paper reports: Polyak's step size oscillates, taking capped steps while the
sharpness is low and short ones when it is high, so the step size moves against
the sharpness and step size x sharpness hovers around 2. Checked as claim C4.
"""

import numpy as np

from analysis.plots import plot_polyak_zoom

from .._config import DataSpec, TunerSpec
from .._report import Claim
from .._suite import Suite, Workload
from .deterministic import curve

STEPS = 200
CIFAR = DataSpec("cifar10", subset=4096)
FASHION = DataSpec("fashion_mnist", subset=4096, pad_to=32)


def _zoom(model, data, steps=STEPS, **kwargs):
    return Workload(
        model,
        data,
        steps=steps,
        every=None,
        zoom=(0, steps),
        estimator="lanczos",
        **kwargs,
    )


SCALES = {
    "paper": tuple(_zoom(m, CIFAR) for m in ("mlp", "vgg11", "resnet34")),
    "offline": tuple(_zoom(m, FASHION) for m in ("mlp", "vgg11", "resnet34")),
    "cpu": (
        _zoom("mlp", DataSpec("digits")),
        _zoom("mlp", DataSpec("fashion_mnist", subset=1024)),
    ),
    "smoke": (
        _zoom(
            "mlp",
            DataSpec("digits", subset=256),
            steps=12,
            width=0.5,
            steps_per_call=4,
        ),
    ),
}


def plan(workload, stepsizes, num_examples):
    return [
        workload.run("polyak_zoom", TunerSpec("polyak"), None, seed, num_examples)
        for seed in workload.seeds
    ]


def check_zoom_claims(results) -> list[Claim]:
    claims = []
    for result in results:
        for run in result.runs:
            h = run.history
            rows = (h["step"] < STEPS) & np.isfinite(h["sharpness"])
            step, sharp = h["stepsize"][rows], h["sharpness"][rows]
            capped = h["capped"][rows] > 0
            where = result.workload.label
            if step.size < 3 or np.ptp(step) == 0 or np.ptp(sharp) == 0:
                claims.append(
                    Claim(
                        "C4",
                        "Polyak-GD: too few distinct measurements to correlate",
                        where,
                        {"measured steps": step.size},
                        None,
                    )
                )
                continue
            correlation = float(np.corrcoef(step, sharp)[0, 1])
            first = min(STEPS, int(h["step"][-1]) + 1)
            low = sharp < np.median(sharp)
            share = float(np.mean(low[capped])) if capped.any() else None
            claims.append(
                Claim(
                    "C4",
                    f"Polyak-GD over the first {first} steps: step size negatively "
                    "correlated with sharpness, and capped steps mostly where the "
                    "sharpness is below its median",
                    where,
                    {
                        "correlation": correlation,
                        "capped steps": int(capped.sum()),
                        "share of capped steps at low sharpness": share,
                    },
                    correlation < 0 and share is not None and share > 0.5,
                )
            )
    return claims


def figures(results, directory):
    paths = []
    for result in results:
        for run in result.runs:
            name = result.workload.figure_name(run.config.seed)
            paths.append(
                plot_polyak_zoom(
                    curve(run),
                    directory / f"{name}.png",
                    stop=run.config.steps,
                    title=f"Polyak-GD, {result.workload.label}, every step",
                )
            )
    return paths


SUITE = Suite(
    name="polyak_zoom",
    doc=__doc__,
    figures_of_paper="Figure 6 (Polyak-GD step by step)",
    scales=SCALES,
    plan=plan,
    needs_sweep=False,
    claims=check_zoom_claims,
    figures=figures,
    minutes={"cpu": (0.9, None)},
)
