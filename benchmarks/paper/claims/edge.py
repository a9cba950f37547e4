"""The claims of the tuners built for the edge of stability (the `edge_tuners`
suite): CDAT on the edge (E1), CDAT's sharpness against `sigma` (E2), the Armijo
search as CDAT below the edge (E3), the non-monotone searches above it (E4), and
CDAT's best `sigma` in mini-batch training (E5, reported).

E1 to E4 read the full-batch workloads, E5 the mini-batch ones; each claim is
checked per seed on that seed's runs. The sources: E1, E2 and E5 Roulet, Agarwala,
Grill, Swirszcz, Blondel and Pedregosa, "Stepping on the Edge" (NeurIPS 2024); E3
the quadratic model along the gradient (`eqtuners/_tuners/_bracket.py`: the search
accepts `s` only if `s kappa <= 2 (1 - c)` and, after a backtrack by `rho`, has
`s kappa > 2 (1 - c) rho`: (1.6, 2.0) at the paper's `c = 1e-4`, `rho = 0.8`); E4
Galli, Fox, Bartolomaeus, Schmidt and Rauhut, "Flatland" (ICML 2026).
"""

import numpy as np

from .._report import Claim
from .._stats import all_known, final, median_second_half
from .._tuners import TunerSpec
from ._runs import fixed_steps, paper_run

# The sigmas of E2, and the interval of E1 and E3.
GREEDY, EDGE = 1.0, 2.0
EDGE_BAND = (1.5, 2.5)
ARMIJO_BAND = (1.6, 2.0)
NON_MONOTONE = ("zhang_hager", "ponos")


def cdat_runs(runs, **options) -> dict[float, object]:
    """`sigma` -> the run of CDAT at that `sigma` with exactly `options` (none: the
    paper's CDAT without averages), in increasing `sigma`."""
    wanted = tuple(sorted(options.items()))
    found = {
        r.config.tuner.value: r
        for r in runs
        if r.config.tuner.kind == "cdat" and r.config.tuner.options == wanted
    }
    return dict(sorted(found.items()))


def _full_batch(workload) -> bool:
    return tuple(workload.batch_sizes) == (None,)


def cdat_on_edge(workload, runs) -> list[Claim]:
    """E1: CDAT at `sigma = 2` has a median step size x sharpness over the second
    half in [1.5, 2.5] and a final training loss no higher than Armijo-GD's."""
    if not _full_batch(workload):
        return []
    cdat, armijo = cdat_runs(runs).get(EDGE), paper_run(runs, "armijo")
    if cdat is None or armijo is None:
        return []
    median = median_second_half(cdat.history)
    loss, armijo_loss = (final(r.history, "train_loss") for r in (cdat, armijo))
    low, high = EDGE_BAND
    return [
        Claim(
            "E1",
            f"CDAT at sigma 2: median step size x sharpness over the second half in "
            f"[{low}, {high}] and a final training loss no higher than Armijo-GD's",
            workload.label,
            {"median": median, "CDAT loss": loss, "Armijo loss": armijo_loss},
            (low <= median <= high and loss <= armijo_loss)
            if all_known(median, loss, armijo_loss)
            else None,
        )
    ]


def sharpness_against_sigma(workload, runs) -> list[Claim]:
    """E2a: CDAT's final sharpness falls at every step of `sigma` from 1 to 2 (the
    suite's sigmas in [1, 2], in order); E2b: at `sigma = 1` it ends above GD's
    at the sweep's largest stable step (it sharpens like Armijo)."""
    if not _full_batch(workload):
        return []
    cdat = cdat_runs(runs)
    sweep = {s: final(r.history, "sharpness") for s, r in cdat.items()}
    inside = {s: v for s, v in sweep.items() if GREEDY <= s <= EDGE}
    claims = []
    if len(inside) >= 2:
        values = list(inside.values())
        falls = bool(np.all(np.diff(values) < 0)) if all_known(*values) else None
        claims.append(
            Claim(
                "E2a",
                "CDAT: the final sharpness falls as sigma rises from 1 to 2 (at "
                "every sigma of the suite in [1, 2])",
                workload.label,
                {f"sigma {s:g}": v for s, v in inside.items()},
                falls,
            )
        )
    gd, armijo = next(iter(fixed_steps(runs)), None), paper_run(runs, "armijo")
    if GREEDY in sweep and gd is not None:
        greedy, fixed = sweep[GREEDY], final(gd.history, "sharpness")
        numbers = {"CDAT sigma 1": greedy, gd.config.tuner.label: fixed}
        if armijo is not None:
            numbers["Armijo"] = final(armijo.history, "sharpness")
        claims.append(
            Claim(
                "E2b",
                "CDAT at sigma 1 sharpens like Armijo: its final sharpness is above "
                "that of GD at the sweep's largest stable step",
                workload.label,
                numbers,
                greedy > fixed if all_known(greedy, fixed) else None,
            )
        )
    return claims


def armijo_below_edge(workload, runs) -> list[Claim]:
    """E3: Armijo-GD's median step size x curvature along the gradient (measured)
    over the second half lies in (1.6, 2.0); the numbers say how many of those
    measurements lie in the search's own free bracket."""
    if not _full_batch(workload):
        return []
    armijo = paper_run(runs, "armijo")
    if armijo is None:
        return []
    h = armijo.history
    product = h["stepsize"] * h["directional_curvature"]
    median = median_second_half(h | {"product": product}, "product")
    measured = np.isfinite(h["directional_curvature"])
    lower = h.get("directional_curvature_lower")
    upper = h.get("directional_curvature_upper")
    inside = None
    if lower is not None and upper is not None:
        kappa = h["directional_curvature"][measured]
        held = (lower[measured] < kappa) & (kappa <= upper[measured])
        inside = f"{int(held.sum())} of {int(measured.sum())}"
    low, high = ARMIJO_BAND
    return [
        Claim(
            "E3",
            f"Armijo-GD: median step size x curvature along the gradient over the "
            f"second half in ({low}, {high}) (CDAT with an effective sigma below 2)",
            workload.label,
            {
                "median": median,
                "median step x sharpness": median_second_half(h),
                "measurements inside the free bracket": inside,
            },
            None if median is None else low < median < high,
        )
    ]


def non_monotone_above_edge(workload, runs) -> list[Claim]:
    """E4: each non-monotone search (Zhang-Hager with forward tracking, PoNoS) at
    its defaults has a median step size x sharpness over the second half above 2
    and a final training loss below Armijo-GD's."""
    if not _full_batch(workload):
        return []
    armijo = paper_run(runs, "armijo")
    claims = []
    for kind in NON_MONOTONE:
        run = paper_run(runs, kind)
        if run is None:
            continue
        median = median_second_half(run.history)
        loss = final(run.history, "train_loss")
        armijo_loss = None if armijo is None else final(armijo.history, "train_loss")
        claims.append(
            Claim(
                "E4",
                "the non-monotone search: median step size x sharpness over the "
                "second half above 2 and a final training loss below Armijo-GD's",
                f"{workload.label}, {TunerSpec(kind).label}",
                {"median": median, "loss": loss, "Armijo loss": armijo_loss},
                (median > 2 and loss < armijo_loss)
                if all_known(median, loss, armijo_loss)
                else None,
            )
        )
    return claims


def best_sigma(workload, runs) -> list[Claim]:
    """E5 (reported): at each batch size, with and without CDAT's moving average,
    the `sigma` of the lowest final training loss, with every `sigma`'s loss."""
    if _full_batch(workload):
        return []
    claims = []
    emas = sorted(
        {dict(r.config.tuner.options).get("ema", 0.0) for r in runs if _is_cdat(r)}
    )
    for batch_size in sorted(workload.batch_sizes):
        at = [r for r in runs if r.config.batch_size == batch_size]
        for ema in emas:
            options = {"ema": ema} if ema else {}
            losses = {
                s: final(r.history, "train_loss")
                for s, r in cdat_runs(at, **options).items()
            }
            known = {s: v for s, v in losses.items() if v is not None}
            best = min(known, key=known.get) if known else None
            numbers = {"best sigma": best}
            numbers |= {f"sigma {s:g}": v for s, v in losses.items()}
            claims.append(
                Claim(
                    "E5",
                    "CDAT in mini-batch: the sigma of the lowest final training loss",
                    f"{workload.label}, batch {batch_size}, "
                    + (f"moving average {ema:g}" if ema else "no moving average"),
                    numbers,
                    None,
                    reported=True,
                )
            )
    return claims


def _is_cdat(run) -> bool:
    return run.config.tuner.kind == "cdat"
