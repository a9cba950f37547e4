"""The stochastic regime's claims (the paper's Figures 3 to 5): Armijo-SGD against
the batch size (C5), Polyak-SGD the best or close to it (C6)."""

import numpy as np

from .._report import Claim
from .._stats import final, measured, median_second_half
from ._runs import paper_run

# The first tenth of a run is left out of "over the run": from the initialisation
# every run's sharpness first drops (all tuners, every batch size), and progressive
# sharpening is what follows.
TRANSIENT = 0.1


def _split(values):
    """The mean of the first and of the last fifth of `values`."""
    n = max(1, len(values) // 5)
    return float(np.mean(values[:n])), float(np.mean(values[-n:]))


def _at(runs, batch_size):
    return [r for r in runs if r.config.batch_size == batch_size]


def armijo_sgd(workload, runs) -> list[Claim]:
    """C5a: at the largest batch, Armijo-SGD's step shrinks and its sharpness
    rises; C5b: at the smallest, its median step is near its cap and its median
    step size x sharpness above 2."""
    batches = sorted(workload.batch_sizes)
    claims = []
    for b in dict.fromkeys((batches[-1], batches[0])):  # one batch size: C5a
        armijo = paper_run(_at(runs, b), "armijo")
        if armijo is None:
            continue
        where = f"{workload.label}, batch {b}"
        if b == batches[-1]:
            claims.append(_shrinks_and_sharpens(armijo, where))
        else:
            claims.append(_near_cap_above_edge(armijo, where))
    return claims


def _shrinks_and_sharpens(armijo, where) -> Claim:
    h = armijo.history
    after = TRANSIENT * armijo.config.steps
    late = np.isfinite(h["stepsize"]) & (h["step"] >= after)
    steps = h["stepsize"][late]
    sharp = measured(h, "sharpness", start=after)
    statement = (
        "Armijo-SGD at the largest batch: its step shrinks and its sharpness rises "
        "over the run (first vs last fifth, after the first tenth)"
    )
    if steps.size < 2 or sharp.size < 2:
        return Claim("C5a", statement, where, {}, None)
    step_first, step_last = _split(steps)
    sharp_first, sharp_last = _split(sharp)
    return Claim(
        "C5a",
        statement,
        where,
        {
            "step": f"{step_first:.3g} -> {step_last:.3g}",
            "sharpness": f"{sharp_first:.3g} -> {sharp_last:.3g}",
        },
        step_last < step_first and sharp_last > sharp_first,
    )


def _near_cap_above_edge(armijo, where) -> Claim:
    h = armijo.history
    cap = armijo.config.tuner.value
    median_step = float(np.median(h["stepsize"][np.isfinite(h["stepsize"])]))
    m = median_second_half(h)
    return Claim(
        "C5b",
        "Armijo-SGD at the smallest batch: median step near the cap (>= 0.8 cap) and "
        "median step size x sharpness above 2",
        where,
        {"median step": median_step, "cap": cap, "median step x sharpness": m},
        None if m is None else median_step >= 0.8 * cap and m > 2,
    )


def polyak_sgd(workload, runs) -> list[Claim]:
    """C6: at every batch size, Polyak-SGD's final training loss is the best or
    within 10% of the best, at a median step size x sharpness of at least 2."""
    claims = []
    for b in sorted(workload.batch_sizes):
        at = _at(runs, b)
        polyak = paper_run(at, "polyak")
        if polyak is None:
            continue
        losses = {r.config.tuner.label: final(r.history, "train_loss") for r in at}
        known = [v for v in losses.values() if v is not None]
        own = losses[polyak.config.tuner.label]
        m = median_second_half(polyak.history)
        holds = (
            None
            if own is None or m is None or not known
            else own <= 1.1 * min(known) and m >= 2
        )
        claims.append(
            Claim(
                "C6",
                "Polyak-SGD: final training loss the best or within 10% of the best, "
                "at a median step size x sharpness >= 2",
                f"{workload.label}, batch {b}",
                {**{f"{k} loss": v for k, v in losses.items()}, "Polyak median": m},
                holds,
            )
        )
    return claims
