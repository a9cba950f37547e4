"""A whole suite: load the data, sweep, run (skipping and resuming), then draw the
figures and write the report; or, for `--dry-run`, the same plan shown with its
measured time.

```
OUT/sweeps/<sweep>.json                       shared by the suites
OUT/SUITE/runs/<run>/...                      see `_rundir`
OUT/SUITE/figures/*.png
OUT/SUITE/report.md, report.json
```
"""

import json
import time
from pathlib import Path

import eqtuners as et

from .._rundir import RunDirectory
from ._estimate import estimate_seconds
from ._plan import group_runs, plan_workload
from ._report import write_report
from ._runner import DataCache, run_group, run_sweep
from ._suite import RunResult, WorkloadResult
from .claims import check_claims
from .figures import draw_figures

DATA_DIR_HINT = "On this command line, give the folder with --data-dir."


class UserError(Exception):
    """A mistake in the command line or a missing dataset: exit status 2, the
    message as it is (one line, or a missing dataset's own lines)."""


def prepare(suite, workloads, data: DataCache):
    """Loads every dataset and checks every batch size before any work, so that a
    mistake stops the suite at once. Returns the datasets by workload."""
    loaded = []
    for w in workloads:
        try:
            w.measure.for_steps(w.steps).build(0)  # the options' own checks
            dataset = data(w.data)
            sweep = w.sweep() if suite.needs_sweep else None
            if sweep is not None:
                data(sweep.data)
        except et.DatasetNotFoundError as error:
            raise UserError(f"{error}\n{DATA_DIR_HINT}") from None
        except ValueError as error:
            raise UserError(f"{w.label}: {error}") from None
        n = dataset.train_x.shape[0]
        for b in w.batch_sizes:
            if b is not None and b > n:
                raise UserError(
                    f"batch size {b} is larger than the {n} training examples of "
                    f"{w.data.slug()}; choose smaller --batch-sizes."
                )
        if w.measure.examples is not None and w.measure.examples > n:
            raise UserError(
                f"--examples {w.measure.examples} is larger than the {n} training "
                f"examples of {w.data.slug()}."
            )
        loaded.append(dataset)
    return loaded


def _directory(out: Path, suite, config) -> RunDirectory:
    return RunDirectory(out / suite.name / "runs" / config.name, config.to_json())


def _plan(suite, workload, dataset, out, data, progress):
    """The workload's plan, after running its sweep if it has not run."""
    plan = plan_workload(suite, workload, dataset.train_x.shape[0], out)
    if plan.placeholder:
        run_sweep(plan.sweep, data(plan.sweep.data), out, progress)
        plan = plan_workload(suite, workload, dataset.train_x.shape[0], out)
    return plan


def run_suite(suite, scale, workloads, out: Path, data: DataCache, progress=True):
    """Runs the suite's workloads (see the module docstring) and returns the report
    as Markdown."""
    datasets = prepare(suite, workloads, data)
    suite_dir = out / suite.name
    results = []
    start = time.perf_counter()
    for workload, dataset in zip(workloads, datasets):
        print(f"{suite.name}: {workload.label}")
        plan = _plan(suite, workload, dataset, out, data, progress)
        for group in group_runs(plan.configs):
            names = ", ".join(c.tuner.label for c in group)
            batch = group[0].batch_size
            print(
                f"  {'full batch' if batch is None else f'batch {batch}'}, "
                f"{group[0].steps} steps: {names}",
                flush=True,
            )
            statuses = run_group(group, dataset, suite_dir, progress)
            print(f"    {', '.join(statuses)}")
        runs = []
        for c in plan.configs:
            d = _directory(out, suite, c)
            runs.append(RunResult(c, d.history(), d.meta, d.path))
        results.append(WorkloadResult(workload, runs, plan.swept))
    figures = draw_figures(suite.figures, results, suite_dir / "figures")
    claims = check_claims(suite.claims, results)
    report = write_report(suite, scale, claims, figures, suite_dir, results)
    print(f"\n{report}\nWrote {suite_dir}/ in {time.perf_counter() - start:.0f} s.")
    return report


def _count(number, noun: str) -> str:
    return f"{number:g} {noun}{'' if number == 1 else 's'}"


def show_status(suite, out: Path) -> None:
    """One line per run of `suite` already in `out` (`RunDirectory.status_line`:
    its status, the steps reached of its total, when last written), for following
    a long run; reads the run directories alone, so needs neither the data nor
    the scale."""
    configs = sorted((out / suite.name / "runs").glob("*/config.json"))
    if not configs:
        print(f"no runs of {suite.name} in {out / suite.name} yet")
    for path in configs:
        config = json.loads(path.read_text())
        print(RunDirectory(path.parent, config).status_line())


def dry_run(suite, workloads, out: Path, data: DataCache) -> None:
    """Shows each workload's runs (where, and whether done) and the measured time
    still needed, from the same plan as the run."""
    datasets = prepare(suite, workloads, data)
    plans = [
        plan_workload(suite, w, d.train_x.shape[0], out)
        for w, d in zip(workloads, datasets)
    ]
    for plan, todo, seconds in estimate_seconds(suite, plans, data, out):
        left = f"about {seconds / 60:.1f} min (measured)" if todo else "nothing to do"
        print(
            f"{plan.workload.label}: {_count(len(plan.configs), 'run')}, {todo} to "
            f"run or resume, {left}"
        )
        if plan.placeholder:
            print("  (GD step sizes come from the sweep; shown as placeholders)")
        elif plan.swept is not None:
            chosen = plan.swept["chosen"]
            print(f"  (GD step sizes from the sweep already run: {chosen})")
        for c in plan.configs:
            d = _directory(out, suite, c)
            what = {None: "to run", "completed": "completed, skipped"}.get(
                d.status, f"{d.status}, to resume"
            )
            print(f"  {d.path}: {what}")
