"""The claims about the curvature mini-batch tuners see (beyond the paper): S1
(Armijo-SGD's step x batch sharpness at most 2 while step x full-batch sharpness
exceeds 2 at the smallest batch), S2 (SGD at the edge of stochastic stability),
S3 (Polyak-SGD's two numbers, reported)."""

from .._report import Claim
from .._stats import median_second_half
from ._runs import fixed_steps, paper_run


def _medians(run):
    return (
        median_second_half(run.history, "stepsize_x_sharpness"),
        median_second_half(run.history, "stepsize_x_batch_sharpness"),
    )


def _by_batch(workload, runs, pick) -> dict:
    """Batch size -> the medians of the run `pick` chooses there (batch sizes
    without such a run: `(None, None)`)."""
    medians = {}
    for b in sorted(workload.batch_sizes):
        run = pick([r for r in runs if r.config.batch_size == b])
        medians[b] = (None, None) if run is None else _medians(run)
    return medians


def _claim(claim_id, text, where, medians, holds, reported=False) -> Claim:
    numbers = {
        f"batch {b}": f"full {f:.3g}, batch {g:.3g}"
        for b, (f, g) in medians.items()
        if None not in (f, g)
    }
    return Claim(claim_id, text, where, numbers, holds, reported=reported)


def armijo_batch_sharpness(workload, runs) -> list[Claim]:
    """S1 (see the module docstring)."""
    armijo = _by_batch(workload, runs, lambda at: paper_run(at, "armijo"))
    smallest = min(armijo)
    known = all(None not in v for v in armijo.values())
    holds = (
        all(g <= 2 for _, g in armijo.values()) and armijo[smallest][0] > 2
        if known
        else None
    )
    return [
        _claim(
            "S1",
            "Armijo-SGD keeps step x batch sharpness at or below 2 at every batch "
            "size while step x full-batch sharpness exceeds 2 at the smallest batch "
            "(medians over the second half)",
            workload.label,
            armijo,
            holds,
        )
    ]


def sgd_edge(workload, runs) -> list[Claim]:
    """S2: SGD's step x batch sharpness in [1.5, 2.5] at every batch size."""
    sgd = _by_batch(workload, runs, lambda at: next(iter(fixed_steps(at)), None))
    return [
        _claim(
            "S2",
            "SGD: step x batch sharpness in [1.5, 2.5] at every batch size (the edge "
            "of stochastic stability), medians over the second half",
            workload.label,
            sgd,
            all(None not in v and 1.5 <= v[1] <= 2.5 for v in sgd.values()),
        )
    ]


def polyak_batch_sharpness(workload, runs) -> list[Claim]:
    """S3: Polyak-SGD's step x full-batch and step x batch sharpness (reported)."""
    polyak = _by_batch(workload, runs, lambda at: paper_run(at, "polyak"))
    return [
        _claim(
            "S3",
            "Polyak-SGD: step x full-batch and step x batch sharpness",
            workload.label,
            polyak,
            None,
            reported=True,
        )
    ]
