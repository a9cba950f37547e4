"""The claims the suites check, by name (a suite lists the names it checks, as
big_vision's configs name their evaluators).

A claim check is `check(workload, runs) -> list[Claim]`, given the runs of one
seed of one workload (`RunResult`s); `check_claims` calls it for every seed, so
that every report says in how many seeds each claim holds.
"""

from .._report import Claim, SeedClaims, by_claim
from . import curvature, edge, full_batch, mini_batch, polyak

CLAIMS = {
    "C1": full_batch.fixed_step_edge,
    "C2": full_batch.armijo_gd,
    "C3": full_batch.polyak_below_armijo,
    "C4": polyak.zoom,
    "C5": mini_batch.armijo_sgd,
    "C6": mini_batch.polyak_sgd,
    "C8": polyak.caps,
    "S1": curvature.armijo_batch_sharpness,
    "S2": curvature.sgd_edge,
    "S3": curvature.polyak_batch_sharpness,
    "E1": edge.cdat_on_edge,
    "E2": edge.sharpness_against_sigma,
    "E3": edge.armijo_below_edge,
    "E4": edge.non_monotone_above_edge,
    "E5": edge.best_sigma,
}


def check_claims(names, results) -> list[SeedClaims]:
    """The claims `names` (keys of `CLAIMS`) on every workload result and seed,
    gathered per claim and place (`_report.by_claim`)."""
    per_seed: list[tuple[tuple[int, ...], int, Claim]] = []
    for result in results:
        seeds = result.workload.seeds
        for seed in seeds:
            runs = result.of_seed(seed)
            for name in names:
                checked = CLAIMS[name](result.workload, runs)
                per_seed += [(seeds, seed, c) for c in checked]
    return by_claim(per_seed)
