"""Polyak-GD's claims: step by step against the sharpness (the paper's Figure 6,
C4), and its cap (Figure 7, C8)."""

import numpy as np

from .._report import Claim
from .._stats import final, first
from .._tuners import TunerSpec

SMALL_CAPS = (0.1, 0.3)
LARGE_CAPS = (3.0, 10.0)


def zoom(workload, runs) -> list[Claim]:
    """C4: over the zoom window, Polyak's step size is negatively correlated with
    the sharpness, and its capped steps are mostly where the sharpness is below
    its median."""
    claims = []
    for run in runs:
        if run.config.tuner.kind != "polyak":
            continue
        where = workload.label
        if run.config.tuner != TunerSpec("polyak"):
            where += f", {run.config.tuner.label}"
        claims.append(_zoom_claim(run, where))
    return claims


def _zoom_claim(run, where) -> Claim:
    h = run.history
    window = run.config.measure.zoom
    stop = run.config.steps if window is None else window[1]
    rows = (h["step"] < stop) & np.isfinite(h["sharpness"])
    step, sharp = h["stepsize"][rows], h["sharpness"][rows]
    capped = h["capped"][rows] > 0
    if step.size < 3 or np.ptp(step) == 0 or np.ptp(sharp) == 0:
        return Claim(
            "C4",
            "Polyak-GD: too few distinct measurements to correlate",
            where,
            {"measured steps": step.size},
            None,
        )
    correlation = float(np.corrcoef(step, sharp)[0, 1])
    steps = min(stop, int(h["step"][-1]) + 1)
    low = sharp < np.median(sharp)
    share = float(np.mean(low[capped])) if capped.any() else None
    return Claim(
        "C4",
        f"Polyak-GD over the first {steps} steps: step size negatively correlated "
        "with sharpness, and capped steps mostly where the sharpness is below its "
        "median",
        where,
        {
            "correlation": correlation,
            "capped steps": int(capped.sum()),
            "share of capped steps at low sharpness": share,
        },
        correlation < 0 and share is not None and share > 0.5,
    )


def by_cap(runs, kind) -> dict:
    """Cap (or step) -> the run of `kind` (`polyak`, `constant`) with it."""
    return {
        r.config.tuner.value: r
        for r in runs
        if r.config.tuner.kind == kind and not r.config.tuner.options
    }


def caps(workload, runs) -> list[Claim]:
    """C8a: with a small cap Polyak-GD ends within 5% of GD at that step; C8b:
    with a large cap it still converges (no divergence, final training loss below
    a tenth of the initial one)."""
    polyak, constant = by_cap(runs, "polyak"), by_cap(runs, "constant")
    claims = []
    for cap in SMALL_CAPS:
        p, g = polyak.get(cap), constant.get(cap)
        lp = None if p is None else final(p.history, "train_loss")
        lg = None if g is None else final(g.history, "train_loss")
        gap = None if None in (lp, lg) else abs(lp - lg) / lg
        claims.append(
            Claim(
                "C8a",
                "Polyak-GD with a small cap ends within 5% of GD at that step",
                f"{workload.label}, cap {cap}",
                {"Polyak loss": lp, "GD loss": lg, "relative gap": gap},
                None if gap is None else gap <= 0.05,
            )
        )
    for cap in LARGE_CAPS:
        p = polyak.get(cap)
        if p is None:
            continue
        start, end = first(p.history, "loss"), final(p.history, "train_loss")
        diverged = p.meta.get("status", "").startswith("diverged")
        gd = constant.get(cap)
        claims.append(
            Claim(
                "C8b",
                "Polyak-GD with a large cap still converges: no divergence, final "
                "training loss below a tenth of the initial loss",
                f"{workload.label}, cap {cap}",
                {
                    "initial loss": start,
                    "final loss": end,
                    "GD at that step": None if gd is None else gd.meta.get("status"),
                },
                None if None in (start, end) else not diverged and end < 0.1 * start,
            )
        )
    return claims
