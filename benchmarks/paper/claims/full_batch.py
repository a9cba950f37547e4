"""The deterministic regime's claims (the paper's Figures 1 and 2): fixed-step GD
at the edge of stability (C1), Armijo-GD's monotone loss and progressive
sharpening (C2), Polyak-GD against Armijo-GD (C3)."""

import numpy as np

from .._report import Claim
from .._stats import all_known, final, median_second_half
from ._runs import fixed_steps, paper_run


def fixed_step_edge(workload, runs) -> list[Claim]:
    """C1: each fixed-step GD run's median step size x sharpness over the second
    half lies in [1.5, 2.5]."""
    claims = []
    for r in fixed_steps(runs):
        m = median_second_half(r.history)
        claims.append(
            Claim(
                "C1",
                "fixed-step GD: median step size x sharpness over the second half "
                "in [1.5, 2.5]",
                f"{workload.label}, {r.config.tuner.label}",
                {"median": m},
                None if m is None else 1.5 <= m <= 2.5,
            )
        )
    return claims


def armijo_gd(workload, runs) -> list[Claim]:
    """C2a: Armijo-GD's loss never increases; C2b: its final sharpness is the
    highest of the runs; C2c: its median step size x sharpness over the second
    half is at most 2."""
    armijo = paper_run(runs, "armijo")
    if armijo is None:
        return []
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
            workload.label,
            {"increases": increases, "steps": len(loss)},
            increases == 0,
        ),
        Claim(
            "C2b",
            "Armijo-GD: its final sharpness is the highest of the runs",
            workload.label,
            dict(sharp),
            highest,
        ),
        Claim(
            "C2c",
            "Armijo-GD: median step size x sharpness over the second half <= 2",
            workload.label,
            {"median": m},
            None if m is None else m <= 2,
        ),
    ]


def polyak_below_armijo(workload, runs) -> list[Claim]:
    """C3: Polyak-GD ends at a lower training loss than Armijo-GD, at a lower
    sharpness."""
    polyak, armijo = paper_run(runs, "polyak"), paper_run(runs, "armijo")
    if polyak is None or armijo is None:
        return []
    numbers = {
        "Polyak loss": final(polyak.history, "train_loss"),
        "Armijo loss": final(armijo.history, "train_loss"),
        "Polyak sharpness": final(polyak.history, "sharpness"),
        "Armijo sharpness": final(armijo.history, "sharpness"),
    }
    loss_p, loss_a, sharp_p, sharp_a = numbers.values()
    return [
        Claim(
            "C3",
            "Polyak-GD: final training loss below Armijo-GD's, at a lower final "
            "sharpness",
            workload.label,
            numbers,
            (loss_p < loss_a and sharp_p < sharp_a)
            if all_known(*numbers.values())
            else None,
        )
    ]
