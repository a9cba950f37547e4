"""Turns run configurations into `eqtuners.train` calls and their rows into files.

Runs of one group (`_plan.group_runs`: they differ only by the tuner's
hyperparameters and the seed) go through one compiled, vmapped `train` call (a
`Stack` of tuners and of models, a batch of keys); their rows are split back into
one directory per run. Completed runs are skipped; an interrupted run resumes from
its checkpoint. The step-size sweep is one stacked call as well, and its outcome is
kept in `sweeps/` for every suite to reuse. `train_arguments` and
`sweep_arguments` are the calls' arguments, which the time estimate times too.
"""

import dataclasses
import time
import warnings
from pathlib import Path

import equinox as eqx
import jax
import numpy as np

import eqtuners as et

from .._rundir import COMPLETED, INTERRUPTED, RunDirectory, hold, now, write_json
from ._config import RunConfig, SweepConfig
from ._plan import sweep_outcome
from ._spectrum import write_spectra
from ._stats import summarise


class DataCache:
    """Datasets loaded once per `DataSpec`, from `data_dir` when given."""

    def __init__(self, data_dir: str | None = None):
        self.data_dir = data_dir
        self._loaded = {}

    def __call__(self, spec) -> et.Dataset:
        if spec not in self._loaded:
            options = spec.options()
            if self.data_dir is not None and spec.name in ("cifar10", "fashion_mnist"):
                options["data_dir"] = self.data_dir
            self._loaded[spec] = et.load_dataset(spec.name, **options)
        return self._loaded[spec]


def chunk_size_of(model: str, chunk_size: int | None) -> int | None:
    return et.DEFAULT_CHUNK_SIZES[model] if chunk_size is None else chunk_size


def build_model(name, width, data, key):
    return et.make_model(name, data.input_shape, data.num_classes, key=key, width=width)


def _stacked_or_single(items):
    return items[0] if len(items) == 1 else et.stack(items)


def sweep_arguments(config: SweepConfig, data: et.Dataset) -> dict:
    """The `eqtuners.train` arguments of the sweep: GD at every step size of the
    grid, one stacked run, nothing measured."""
    model_key, train_key = jax.random.split(jax.random.key(config.seed))
    return dict(
        model=build_model(config.model, config.width, data, model_key),
        tuner=et.stack([et.Constant(s) for s in config.grid]),
        data=data,
        num_steps=config.steps,
        key=train_key,
        measure=None,
        weight_decay=config.weight_decay,
        chunk_size=chunk_size_of(config.model, config.chunk_size),
    )


def run_sweep(config: SweepConfig, data: et.Dataset, out: Path, progress) -> dict:
    """GD at every step size of the grid (one stacked run), or the outcome already
    in `out/sweeps/`. Returns the outcomes and the two largest stable steps."""
    done = sweep_outcome(config, out)
    if done is not None:
        return done
    print(f"Sweep: GD at {len(config.grid)} step sizes, {config.steps} steps each.")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # divergence is expected
        result = et.train(**sweep_arguments(config, data), progress=progress)
    outcomes = []
    for stepsize, run in zip(config.grid, result.unstack()):
        loss = run.history["loss"]
        stable = run.diverged_at is None and loss[-1] < loss[0]
        outcomes.append(
            {
                "stepsize": stepsize,
                "final_loss": float(loss[-1]),
                "diverged_at": run.diverged_at,
                "stable": bool(stable),
            }
        )
        print(
            f"  step size {stepsize:.4g}: "
            + (f"final loss {loss[-1]:.4g}" if stable else "diverged or no progress")
        )
    stable = sorted(o["stepsize"] for o in outcomes if o["stable"])
    if len(stable) < 2:
        raise RuntimeError(
            f"Fewer than two step sizes of the sweep {config.name} were stable; "
            "pass two with --stepsizes."
        )
    sweep = {
        "config": dataclasses.asdict(config),
        "outcomes": outcomes,
        "chosen": stable[-2:][::-1],
    }
    path = out / "sweeps" / f"{config.name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, sweep)
    return sweep


def _members(configs: list[RunConfig], data):
    """Each run's model, tuner and training key."""
    models, tuners, keys = [], [], []
    for c in configs:
        model_key, train_key = c.keys()
        models.append(build_model(c.model, c.width, data, model_key))
        tuners.append(c.tuner.build())
        keys.append(train_key)
    return models, tuners, keys


def train_arguments(configs: list[RunConfig], data: et.Dataset, members=None) -> dict:
    """The `eqtuners.train` arguments of a group of runs (one run, or a stack);
    `members`: their `(models, tuners, keys)`, if already built."""
    models, tuners, keys = members or _members(configs, data)
    config = configs[0]
    return dict(
        model=_stacked_or_single(models),
        tuner=_stacked_or_single(tuners),
        data=data,
        num_steps=config.steps,
        key=keys[0] if len(keys) == 1 else jax.numpy.stack(keys),
        batch_size=config.batch_size,
        measure=config.measurements(),
        weight_decay=config.weight_decay,
        chunk_size=chunk_size_of(config.model, config.chunk_size),
        steps_per_call=config.steps_per_call,
    )


def _state_slices(state, runs: int | None):
    """Per-run states of a (possibly stacked) `TrainState`."""
    return [state] if runs is None else [state.take(i) for i in range(runs)]


def _split_rows(rows, runs: int | None):
    """Per-run rows; a stacked run's rows after it stopped are NaN in every column
    but `step`: they are dropped (the row where it stopped, with its non-finite
    loss, stays)."""
    if runs is None:
        return [rows]
    split = []
    for i in range(runs):
        run = {k: v[i] for k, v in rows.items()}
        values = np.stack([v for k, v in run.items() if k != "step"])
        keep = ~np.all(np.isnan(values), axis=0)
        split.append({k: v[keep] for k, v in run.items()})
    return split


def _resume_state(todo, members, data):
    """The (stacked) state to resume from when every run of the group has a
    checkpoint at the same step; otherwise `None`, and the runs start over."""
    resumes = []
    for (c, d), model, tuner, key in zip(todo, *members):
        like = et.init_train_state(
            model,
            tuner,
            data,
            key=key,
            batch_size=c.batch_size,
            measure=c.measurements(),
        )
        resumes.append(d.resume(like))
    steps = {None if r.state is None else r.step for r in resumes}
    together = len(steps) == 1 and None not in steps
    for (_, d), r in zip(todo, resumes):
        message = r.message
        if not together and r.state is not None:
            message = "starting over with its group (saved at different steps)"
        if message is not None:
            print(f"    {d.path.name}: {message}", flush=True)
    if not together:
        for _, d in todo:
            d.discard()
        return None
    return et.TrainState.stack([r.state for r in resumes])


def run_group(configs: list[RunConfig], data, out: Path, progress) -> list[str]:
    """Runs `configs` (one group) as one stacked `train` call, resuming from the
    runs' checkpoints; skips them when another process holds their run
    directories. Returns the final statuses."""
    dirs = [RunDirectory(out / "runs" / c.name, c.to_json()) for c in configs]
    with hold(dirs) as held:
        if not held:
            return ["held by another process, skipped" for _ in dirs]
        return _run_held_group(configs, dirs, data, progress)


def _run_held_group(configs, dirs, data, progress) -> list[str]:
    todo = [(c, d) for c, d in zip(configs, dirs) if not d.done]
    if not todo:
        return [f"{d.status} before, skipped" for d in dirs]
    members = _members([c for c, _ in todo], data)
    arguments = train_arguments([c for c, _ in todo], data, members)
    runs = None if len(todo) == 1 else len(todo)
    resume = _resume_state(todo, members, data)
    for c, d in todo:
        d.start(
            {
                "seed": c.seed,
                "dataset_source": data.source,
                "num_examples": int(data.train_x.shape[0]),
            }
        )

    def write(rows, state):
        for (_, d), run_rows, run_state in zip(
            todo, _split_rows(rows, runs), _state_slices(state, runs)
        ):
            if len(run_rows["step"]):
                d.append(run_rows)
            d.save_checkpoint(run_state)

    start = time.perf_counter()
    finished = resume is not None and int(resume.step) >= arguments["num_steps"]
    try:
        if finished:  # killed after its last rows: only the status was missing
            final = [(None, s.params) for s in _state_slices(resume, runs)]
        else:
            result = et.train(
                **arguments, callback=write, resume=resume, progress=progress
            )
            final = [(r.diverged_at, r.state.params) for r in result.unstack()]
    except BaseException:
        for _, d in todo:
            d.set_status(INTERRUPTED)
        raise
    _finish(todo, final, members[0], arguments, time.perf_counter() - start)
    return [d.status for d in dirs]


def _finish(todo, final, models, arguments, seconds) -> None:
    """Each run's test accuracy, spectra (if asked for), status and summary."""
    data, chunk_size = arguments["data"], arguments["chunk_size"]
    for (c, d), (diverged, params), model in zip(todo, final, models):
        trained = eqx.combine(params, eqx.partition(model, eqx.is_inexact_array)[1])
        accuracy = et.accuracy(trained, data.test_x, data.test_y, chunk_size)
        if c.measure.spectrum:
            write_spectra(c, d.path, model, trained, data, chunk_size)
        d.set_status(
            COMPLETED if diverged is None else f"diverged at step {diverged}",
            finished=now(),
            seconds=round(seconds, 2),
            summary=summarise(d.history(), float(accuracy)),
        )
