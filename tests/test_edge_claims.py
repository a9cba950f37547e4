"""The edge_tuners suite's claims on hand-built runs, each where it holds and where
it does not (no training)."""

import pytest

from benchmarks.paper._tuners import TunerSpec
from benchmarks.paper.claims import CLAIMS
from tests.paper_runs import FULL_BATCH, MINI_BATCH, history, run


def cdat(sigma, **options):
    return TunerSpec("cdat", sigma, options=tuple(options.items()))


ARMIJO, GD = TunerSpec("armijo"), TunerSpec("constant", 0.5)


def check(name, runs, workload=FULL_BATCH):
    return CLAIMS[name](workload, runs)


@pytest.mark.parametrize(
    "stepsize, loss, holds",
    [(0.5, 0.1, True), (0.75, 0.1, False), (0.5, 0.3, False), (0.3, 0.1, False)],
)
def test_e1_cdat_on_the_edge_with_a_loss_no_higher_than_armijos(stepsize, loss, holds):
    # CDAT at sigma 2 at sharpness 4: step x sharpness 2, 3 or 1.2.
    runs = [
        run(ARMIJO, history(final_loss=0.2)),
        run(cdat(2.0), history(stepsize=stepsize, sharpness=4.0, final_loss=loss)),
    ]
    (claim,) = check("E1", runs)
    assert claim.holds is holds
    assert claim.numbers["median"] == pytest.approx(stepsize * 4.0)


@pytest.mark.parametrize(
    "sharpness, falls", [((10, 8, 6, 4), True), ((10, 8, 9, 4), False)]
)
def test_e2a_the_sharpness_falls_with_sigma(sharpness, falls):
    runs = [
        run(cdat(s), history(sharpness=v))
        for s, v in zip((1.0, 1.5, 1.8, 2.0), sharpness)
    ]
    runs.append(run(cdat(2.06), history(sharpness=100.0)))  # outside [1, 2]
    (claim,) = check("E2", runs)
    assert claim.id == "E2a" and claim.holds is falls
    assert "sigma 2.06" not in claim.numbers


@pytest.mark.parametrize("greedy, holds", [(10.0, True), (2.0, False)])
def test_e2b_greedy_cdat_ends_sharper_than_gd(greedy, holds):
    runs = [
        run(GD, history(sharpness=4.0)),
        run(ARMIJO, history(sharpness=12.0)),
        run(cdat(1.0), history(sharpness=greedy)),
    ]
    (claim,) = check("E2", runs)
    assert claim.id == "E2b" and claim.holds is holds
    assert claim.numbers["Armijo"] == 12.0


@pytest.mark.parametrize("curvature, holds", [(18.0, True), (25.0, False), (15, False)])
def test_e3_armijos_step_times_the_curvature_along_the_gradient(curvature, holds):
    # Step 0.1: step x curvature 1.8, 2.5 or 1.5; the bracket (16, 20] holds 18 only.
    h = history(stepsize=0.1, sharpness=30.0, curvature=curvature, lower=16, upper=20)
    (claim,) = check("E3", [run(ARMIJO, h)])
    assert claim.holds is holds
    assert claim.numbers["median"] == pytest.approx(0.1 * curvature)
    inside = STEPS_MEASURED if holds else 0
    assert claim.numbers["measurements inside the free bracket"] == (
        f"{inside} of {STEPS_MEASURED}"
    )


STEPS_MEASURED = 11  # every 10 of 100 steps, and the last


@pytest.mark.parametrize(
    "stepsize, loss, holds", [(0.25, 0.1, True), (0.15, 0.1, False), (0.25, 0.3, False)]
)
def test_e4_the_non_monotone_searches_above_the_edge(stepsize, loss, holds):
    runs = [run(ARMIJO, history(final_loss=0.2))]
    for kind in ("zhang_hager", "ponos"):
        h = history(stepsize=stepsize, sharpness=10.0, final_loss=loss)
        runs.append(run(TunerSpec(kind), h))
    claims = check("E4", runs)
    assert [c.where.split(", ")[-1] for c in claims] == ["Zhang-Hager fwd", "PoNoS"]
    assert all(c.holds is holds for c in claims)


def test_e5_reports_the_best_sigma_per_batch_size_and_average():
    runs = []
    for batch_size, best in ((64, 1.5),):
        for ema in (0.0, 0.9):
            for sigma in (1.0, 1.5, 2.0):
                loss = 0.1 if sigma == best else 0.2 + sigma / 10
                options = {"ema": ema} if ema else {}
                runs.append(
                    run(
                        cdat(sigma, **options),
                        history(final_loss=loss),
                        workload=MINI_BATCH,
                        batch_size=batch_size,
                    )
                )
    claims = check("E5", runs, MINI_BATCH)
    assert [c.where.split(", ")[-1] for c in claims] == [
        "no moving average",
        "moving average 0.9",
    ]
    for claim in claims:
        assert claim.reported and claim.holds is None
        assert claim.numbers["best sigma"] == 1.5
        assert claim.numbers["sigma 2"] == pytest.approx(0.4)


@pytest.mark.parametrize("name", ["E1", "E2", "E3", "E4"])
def test_full_batch_claims_skip_mini_batch_workloads(name):
    runs = [
        run(t, history(), workload=MINI_BATCH, batch_size=64)
        for t in (ARMIJO, cdat(1.0), cdat(2.0), TunerSpec("ponos"))
    ]
    assert check(name, runs, MINI_BATCH) == []
    assert check("E5", [run(cdat(1.0), history())]) == []
