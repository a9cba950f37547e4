"""A whole suite: load the data, sweep, run (skipping and resuming), then draw the
figures and write the report.

```
OUT/sweeps/<sweep>.json                       shared by the suites
OUT/SUITE/runs/<run>/...                      see `_rundir`
OUT/SUITE/figures/*.png
OUT/SUITE/report.md, report.json
```
"""

import time
from pathlib import Path

import equinox as eqx
import jax

import eqtuners as et
from eqtuners.internal import measurement_set

from .._rundir import RunDirectory
from ._report import write_report
from ._runner import (
    DataCache,
    build_model,
    chunk_size_of,
    group_runs,
    run_group,
    run_sweep,
    sweep_outcome,
)
from ._suite import RunResult, WorkloadResult


class UserError(Exception):
    """A mistake in the command line or a missing dataset: one line, exit 2."""


def prepare(suite, workloads, data: DataCache):
    """Loads every dataset and checks every batch size before any work, so that a
    mistake stops the suite at once. Returns the datasets by workload."""
    loaded = []
    for w in workloads:
        try:
            dataset = data(w.data)
            sweep = w.sweep() if suite.needs_sweep else None
            if sweep is not None:
                data(sweep.data)
        except et.DatasetNotFoundError as error:
            raise UserError(
                " ".join(str(error).split())
                + " On this command line, give the folder with --data-dir."
            ) from None
        except ValueError as error:
            raise UserError(f"{w.label}: {error}") from None
        n = dataset.train_x.shape[0]
        for b in w.batch_sizes:
            if b is not None and b > n:
                raise UserError(
                    f"batch size {b} is larger than the {n} training examples of "
                    f"{w.data.slug()}; choose smaller --batch-sizes."
                )
        if w.examples is not None and w.examples > n:
            raise UserError(
                f"--examples {w.examples} is larger than the {n} training examples "
                f"of {w.data.slug()}."
            )
        loaded.append(dataset)
    return loaded


def plan_runs(suite, workload, dataset, out: Path, data: DataCache, progress):
    """The workload's run configurations (sweeping first if needed) and the sweep."""
    stepsizes, sweep = workload.stepsizes, None
    if suite.needs_sweep and stepsizes is None:
        sweep_config = workload.sweep()
        sweep = run_sweep(sweep_config, data(sweep_config.data), out, progress)
        stepsizes = sweep["chosen"]
    configs = suite.plan(workload, stepsizes, dataset.train_x.shape[0])
    return configs, sweep


def read_results(suite_dir: Path, workload, configs, sweep) -> WorkloadResult:
    runs = []
    for c in configs:
        directory = RunDirectory(suite_dir / "runs" / c.name, c.to_json())
        runs.append(RunResult(c, directory.history(), directory.meta, directory.path))
    return WorkloadResult(workload, runs, sweep)


def run_suite(suite, scale, workloads, out: Path, data: DataCache, progress=True):
    """Runs the suite's workloads (see the module docstring) and returns the report
    as Markdown."""
    datasets = prepare(suite, workloads, data)
    suite_dir = out / suite.name
    results = []
    start = time.perf_counter()
    for workload, dataset in zip(workloads, datasets):
        print(f"{suite.name}: {workload.label}")
        configs, sweep = plan_runs(suite, workload, dataset, out, data, progress)
        for group in group_runs(configs):
            names = ", ".join(c.tuner.label for c in group)
            batch = group[0].batch_size
            print(
                f"  {'full batch' if batch is None else f'batch {batch}'}, "
                f"{group[0].steps} steps: {names}",
                flush=True,
            )
            statuses = run_group(group, dataset, suite_dir, progress)
            print(f"    {', '.join(statuses)}")
        results.append(read_results(suite_dir, workload, configs, sweep))
    figures = suite.figures(results, suite_dir / "figures")
    claims = suite.claims(results)
    report = write_report(suite, scale, claims, figures, suite_dir)
    print(f"\n{report}\nWrote {suite_dir}/ in {time.perf_counter() - start:.0f} s.")
    return report


def estimate_seconds(suite, workloads, data: DataCache, out: Path) -> list[tuple]:
    """A measured estimate of the time each workload still needs: a few steps of
    each tuner (after compiling) and one measurement, scaled to the runs not yet
    completed in `out` (and the sweep, if not yet run). Rough: Armijo's cost grows
    as the sharpness rises. Returns `(workload, runs, runs to do, seconds)` rows."""
    rows = []
    for w in workloads:
        dataset = data(w.data)
        swept = None
        if suite.needs_sweep and w.stepsizes is None:
            swept = sweep_outcome(w.sweep(), out)
        stepsizes = w.stepsizes or (swept or {}).get("chosen") or (0.5, 0.25)
        configs = suite.plan(w, stepsizes, dataset.train_x.shape[0])
        todo = [
            c
            for c in configs
            if not RunDirectory(out / suite.name / "runs" / c.name, c.to_json()).done
        ]
        total = 0.0
        for group in group_runs(todo):
            total += len(group) * _seconds_per_run(group[0], dataset)
        if suite.needs_sweep and w.stepsizes is None and swept is None:
            sweep = w.sweep()
            per_step = _seconds_per_step(configs[0], data(sweep.data), et.Constant(0.1))
            total += len(sweep.grid) * sweep.steps * per_step
        rows.append((w, len(configs), len(todo), total))
    return rows


def _seconds_per_step(config, dataset, tuner, steps=4) -> float:
    model = build_model(config.model, config.width, dataset, jax.random.key(0))
    options = dict(
        key=jax.random.key(0),
        batch_size=config.batch_size,
        measure=None,
        chunk_size=chunk_size_of(config.model, config.chunk_size),
        steps_per_call=steps,
        progress=False,
    )
    et.train(model, tuner, dataset, steps, **options)  # compiles
    start = time.perf_counter()
    et.train(model, tuner, dataset, steps, **options)
    return (time.perf_counter() - start) / steps


def _seconds_per_run(config, dataset) -> float:
    step = _seconds_per_step(config, dataset, config.tuner.build())
    measurements = config.steps // max(config.every or config.steps, 1) + 1
    if config.zoom is not None:
        measurements += config.zoom[1] - config.zoom[0]
    measure = _seconds_per_measurement(config, dataset)
    return config.steps * step + measurements * measure


def _seconds_per_measurement(config, dataset) -> float:
    """One measurement: the estimator and the curvature along a direction on the
    measurement set (and the full training loss for a mini-batch run)."""
    model = build_model(config.model, config.width, dataset, jax.random.key(0))
    params, static = eqx.partition(model, eqx.is_inexact_array)
    measure = config.measurements()
    x, y = measurement_set(measure, dataset.train_x, dataset.train_y)
    chunk_size = chunk_size_of(config.model, config.chunk_size)

    def fn(p, x=x, y=y):
        return et.objective(eqx.combine(p, static), x, y, chunk_size=chunk_size)

    @jax.jit
    def measure_once(p, key):
        state = measure.sharpness.init(p)
        estimate = measure.sharpness.update(fn, p, state, key)[0]
        curvature = et.sharpness(fn, p, method="directional")[0]
        train_loss = fn(p, dataset.train_x, dataset.train_y)
        return estimate, curvature, train_loss

    jax.block_until_ready(measure_once(params, jax.random.key(0)))  # compiles
    start = time.perf_counter()
    jax.block_until_ready(measure_once(params, jax.random.key(1)))
    return time.perf_counter() - start
