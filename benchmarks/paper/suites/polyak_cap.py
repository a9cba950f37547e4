"""The cap of Polyak's step size (the paper's Figure 7): Polyak-GD with maximal
step sizes 0.1, 0.3, 1, 3 and 10, and constant-step GD at the same values.

    python -m benchmarks.paper polyak_cap --scale cpu      # 2.8 minutes on 2 CPU cores
    python -m benchmarks.paper polyak_cap --scale paper    # CIFAR10, one GPU

Scales: `paper` (MLP, VGG11, ResNet34 on the 4096-example CIFAR10 subset),
`offline` (Fashion-MNIST padded to 32x32), `cpu` (the MLP on digits), `smoke` (a
narrow MLP, a few steps). Full batch; the five Polyak runs are one stacked run, and
so are the five GD runs.

The paper reports: with a small cap Polyak-GD is GD at that step (the cap is hit at
every step); with a large cap (3, 10), where GD diverges, Polyak-GD still converges,
its step size set by the loss and the gradient. Checked as claim C8.
"""

from analysis.plots import plot_cap_sweep

from .._config import DataSpec, TunerSpec
from .._report import Claim, final, first
from .._suite import Suite, Workload

CAPS = (0.1, 0.3, 1.0, 3.0, 10.0)
CIFAR = DataSpec("cifar10", subset=4096)
FASHION = DataSpec("fashion_mnist", subset=4096, pad_to=32)

SCALES = {
    "paper": tuple(
        Workload(m, CIFAR, steps=s, every=50)
        for m, s in (("mlp", 10000), ("vgg11", 5000), ("resnet34", 5000))
    ),
    "offline": tuple(
        Workload(m, FASHION, steps=s, every=50)
        for m, s in (("mlp", 10000), ("vgg11", 5000), ("resnet34", 5000))
    ),
    "cpu": (Workload("mlp", DataSpec("digits"), steps=2000, every=20),),
    "smoke": (
        Workload(
            "mlp",
            DataSpec("digits", subset=256),
            steps=8,
            width=0.5,
            every=4,
            steps_per_call=4,
        ),
    ),
}


def plan(workload, stepsizes, num_examples):
    tuners = [TunerSpec("polyak", c) for c in CAPS]
    tuners += [TunerSpec("constant", c) for c in CAPS]
    return [
        workload.run("polyak_cap", t, None, seed, num_examples)
        for seed in workload.seeds
        for t in tuners
    ]


def _histories(runs, kind):
    return {r.config.tuner.value: r for r in runs if r.config.tuner.kind == kind}


def check_cap_claims(results) -> list[Claim]:
    claims = []
    for result in results:
        for seed in result.workload.seeds:
            runs = [r for r in result.runs if r.config.seed == seed]
            polyak, constant = _histories(runs, "polyak"), _histories(runs, "constant")
            where = result.workload.label
            for cap in (0.1, 0.3):
                p, g = polyak.get(cap), constant.get(cap)
                lp = None if p is None else final(p.history, "train_loss")
                lg = None if g is None else final(g.history, "train_loss")
                gap = None if None in (lp, lg) else abs(lp - lg) / lg
                claims.append(
                    Claim(
                        "C8a",
                        "Polyak-GD with a small cap ends within 5% of GD at that step",
                        f"{where}, cap {cap}",
                        {"Polyak loss": lp, "GD loss": lg, "relative gap": gap},
                        None if gap is None else gap <= 0.05,
                    )
                )
            for cap in (3.0, 10.0):
                p = polyak.get(cap)
                if p is None:
                    continue
                start, end = first(p.history, "loss"), final(p.history, "train_loss")
                diverged = p.meta.get("status", "").startswith("diverged")
                gd = constant.get(cap)
                claims.append(
                    Claim(
                        "C8b",
                        "Polyak-GD with a large cap still converges: no divergence, "
                        "final training loss below a tenth of the initial loss",
                        f"{where}, cap {cap}",
                        {
                            "initial loss": start,
                            "final loss": end,
                            "GD at that step": None
                            if gd is None
                            else gd.meta.get("status"),
                        },
                        None
                        if None in (start, end)
                        else not diverged and end < 0.1 * start,
                    )
                )
    return claims


def figures(results, directory):
    paths = []
    for result in results:
        for seed in result.workload.seeds:
            runs = [r for r in result.runs if r.config.seed == seed]
            polyak = {c: r.history for c, r in _histories(runs, "polyak").items()}
            constant = {c: r.history for c, r in _histories(runs, "constant").items()}
            name = result.workload.figure_name(seed)
            paths.append(
                plot_cap_sweep(
                    polyak,
                    directory / f"{name}.png",
                    constant=constant,
                    title=f"Polyak-GD caps and GD, {result.workload.label}",
                )
            )
    return paths


SUITE = Suite(
    name="polyak_cap",
    doc=__doc__,
    figures_of_paper="Figure 7 (the cap of Polyak's step size)",
    scales=SCALES,
    plan=plan,
    needs_sweep=False,
    claims=check_cap_claims,
    figures=figures,
    minutes={"cpu": (2.8, None)},
)
