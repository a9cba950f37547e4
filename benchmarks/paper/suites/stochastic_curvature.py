"""Beyond the paper: the curvature that mini-batch tuners see. SGD, Armijo-SGD and
Polyak-SGD at batch sizes 256, 1024 and 4096, measuring the full-batch sharpness,
the batch sharpness (the mean curvature of fresh mini-batch objectives along their
own gradients, Andreyev and Beneventano's "Edge of Stochastic Stability") and the
mean top eigenvalue of mini-batch Hessians.

    python -m benchmarks.paper stochastic_curvature --scale cpu  # 8.5 min, 2 cores

Scales: the stochastic suite's workloads (`paper`: MLP, VGG11, ResNet34 on CIFAR10;
`offline`: Fashion-MNIST padded to 32x32; `cpu`: the paper's MLP on all 60,000
Fashion-MNIST images, here 3 epochs; `smoke`: a narrow MLP on 512 digits, the
tests), measured 25 times per run on 1024 random training examples, the sharpness by
warm-started Lanczos. SGD runs at the largest stable step of the deterministic
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
"""

import dataclasses

from analysis.plots import plot_batch_size_grid, plot_spectral_densities

from .._report import Claim, median_second_half
from .._spectrum import LANCZOS_STEPS, PROBES, read_spectra
from .._suite import Suite
from . import stochastic
from .stochastic import batch_size_groups, mini_batch_runs

MEASURE = dict(
    every=None,
    measurements=25,
    examples=1024,
    estimator="lanczos",
    batch_measurements=True,
    spectrum=True,
)


def _with_curvature(workloads, **changes):
    """The stochastic suite's workloads, measuring the curvature of mini-batches."""
    return tuple(dataclasses.replace(w, **(MEASURE | changes)) for w in workloads)


# The stochastic suite's workloads; on CPU 3 epochs instead of 5.
SCALES = {
    "paper": _with_curvature(stochastic.SCALES["paper"]),
    "offline": _with_curvature(stochastic.SCALES["offline"]),
    "cpu": _with_curvature(stochastic.SCALES["cpu"], epochs=3),
    "smoke": _with_curvature(stochastic.SCALES["smoke"], every=4, examples=64),
}


def plan(workload, stepsizes, num_examples):
    # SGD at the largest stable step only.
    return mini_batch_runs(
        "stochastic_curvature", workload, stepsizes[:1], num_examples
    )


def _medians(run):
    return (
        median_second_half(run.history, "stepsize_x_sharpness"),
        median_second_half(run.history, "stepsize_x_batch_sharpness"),
    )


def _claim(claim_id, text, label, medians, holds, reported=False) -> Claim:
    measured = {
        f"batch {b}": f"full {f:.3g}, batch {g:.3g}"
        for b, (f, g) in medians.items()
        if None not in (f, g)
    }
    return Claim(claim_id, text, label, measured, holds, reported=reported)


def check_curvature_claims(results) -> list[Claim]:
    claims = []
    for result in results:
        batches = sorted(result.workload.batch_sizes)
        label = result.workload.label
        for seed in result.workload.seeds:
            by = {
                (r.config.tuner.kind, r.config.batch_size): r
                for r in result.runs
                if r.config.seed == seed
            }
            armijo, sgd, polyak = (
                {b: _medians(by[(kind, b)]) for b in batches}
                for kind in ("armijo", "constant", "polyak")
            )
            known = all(None not in v for v in armijo.values())
            claims += [
                _claim(
                    "S1",
                    "Armijo-SGD keeps step x batch sharpness at or below 2 at every "
                    "batch size while step x full-batch sharpness exceeds 2 at the "
                    "smallest batch (medians over the second half)",
                    label,
                    armijo,
                    (
                        all(g <= 2 for _, g in armijo.values())
                        and armijo[batches[0]][0] > 2
                    )
                    if known
                    else None,
                ),
                _claim(
                    "S2",
                    "SGD: step x batch sharpness in [1.5, 2.5] at every batch size "
                    "(the edge of stochastic stability), medians over the second half",
                    label,
                    sgd,
                    all(None not in v and 1.5 <= v[1] <= 2.5 for v in sgd.values()),
                ),
                _claim(
                    "S3",
                    "Polyak-SGD: step x full-batch and step x batch sharpness",
                    label,
                    polyak,
                    None,
                    reported=True,
                ),
            ]
    return claims


def figures(results, directory):
    paths = []
    for result in results:
        for seed in result.workload.seeds:
            groups = batch_size_groups(result.runs, seed)
            name = result.workload.figure_name(seed)
            for key, what in (
                ("sharpness", "full-batch sharpness"),
                ("batch_sharpness", "batch sharpness"),
                ("batch_top_eigenvalue", "batch top eigenvalue"),
            ):
                paths.append(
                    plot_batch_size_grid(
                        groups,
                        directory / f"{name}-{key}.png",
                        title=f"{result.workload.label}: {what} (seed {seed})",
                        sharpness_key=key,
                    )
                )
            paths.append(
                _spectra_figure(result, seed, directory / f"{name}-spectrum.png")
            )
    return paths


def _spectra_figure(result, seed, path):
    """The spectral density at the start (the same model for every run of a seed)
    and at the end of each run, a panel per batch size."""
    panels = {}
    for r in result.runs:
        if r.config.seed != seed:
            continue
        spectra = read_spectra(r.path)
        panel = panels.setdefault(f"batch size {r.config.batch_size}", {})
        if "start" in spectra:
            panel.setdefault("start", spectra["start"])
        if "end" in spectra:
            panel[f"end: {r.config.tuner.label}"] = spectra["end"]
    return plot_spectral_densities(
        {name: curves for name, curves in panels.items() if curves},
        path,
        title=f"{result.workload.label}: Hessian spectral density on the measurement "
        f"set (stochastic Lanczos quadrature, {PROBES} probes x {LANCZOS_STEPS} "
        f"steps), seed {seed}",
    )


SUITE = Suite(
    name="stochastic_curvature",
    doc=__doc__,
    figures_of_paper="stochastic regime (Figures 3 to 5), with the curvature of "
    "the mini-batch objectives",
    scales=SCALES,
    plan=plan,
    needs_sweep=True,
    claims=check_curvature_claims,
    figures=figures,
    minutes={"cpu": (8.5, None)},
)
