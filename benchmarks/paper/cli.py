"""`python -m benchmarks.paper SUITE --scale SCALE --out DIR`: one command per
experiment of the paper.

It expands the suite into runs, skips those already completed, resumes those
interrupted (Ctrl-C, SIGTERM or a kill: run the same command again), and at the
end draws the figures and writes `report.md`, the paper's claims checked on the
suite's own numbers. `--list` shows the suites, their runs and expected times;
`--dry-run` shows what would run and where, with a time estimated from measured
step times. A mistake on the command line, or a missing dataset, is one line on
stderr and exit status 2.
"""

import argparse
import importlib.util
import signal
import sys
from pathlib import Path

import eqtuners as et

from .._rundir import RunDirectory
from ._config import RunConfig
from ._orchestrate import UserError, estimate_seconds, run_suite
from ._runner import DataCache, group_runs, sweep_outcome
from ._suite import SCALES, override
from .suites import SUITES

PROG = "python -m benchmarks.paper"


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a default where there is one (not the overrides' `None`)."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit status 2
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _positive(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    return parse


def parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=PROG,
        description=__doc__.split("\n\n")[0].replace("`", ""),
        formatter_class=_HelpFormatter,
    )
    p.add_argument("suite", nargs="?", choices=sorted(SUITES), help="the experiment")
    p.add_argument("--scale", choices=SCALES, default="cpu", help="the suite's size")
    p.add_argument(
        "--out", type=Path, default=Path("results/paper"), help="results directory"
    )
    p.add_argument(
        "--list", action="store_true", help="list the suites, runs and times"
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="show what would run and where, with a measured time estimate",
    )
    o = p.add_argument_group("overrides of the scale (default: the scale's own)")
    o.add_argument("--dataset", nargs="+", choices=sorted(et.DATASETS), help="data")
    o.add_argument("--model", nargs="+", choices=sorted(et.MODELS), help="models")
    o.add_argument("--width", type=_positive(float), help="model width multiplier")
    o.add_argument("--steps", type=_positive(int), help="steps per full-batch run")
    o.add_argument("--epochs", type=_positive(float), help="epochs per mini-batch run")
    o.add_argument(
        "--batch-sizes", type=_positive(int), nargs="+", help="mini-batch sizes"
    )
    o.add_argument("--seeds", type=int, nargs="+", default=None, help="run seeds")
    o.add_argument("--every", type=_positive(int), help="steps between measurements")
    o.add_argument(
        "--estimator",
        choices=("power", "lanczos", "lobpcg", "directional"),
        help="sharpness estimator ('power': the paper's power iteration)",
    )
    o.add_argument(
        "--examples", type=_positive(int), help="sharpness measurement set size"
    )
    o.add_argument("--subset", type=_positive(int), help="class-balanced subset")
    o.add_argument("--pad-to", type=_positive(int), help="pad images to this size")
    o.add_argument("--chunk-size", type=_positive(int), help="examples per chunk")
    o.add_argument("--sweep-steps", type=_positive(int), help="steps per sweep run")
    o.add_argument(
        "--stepsizes",
        type=_positive(float),
        nargs=2,
        default=None,
        help="the two fixed step sizes (skips the sweep)",
    )
    o.add_argument(
        "--steps-per-call", type=_positive(int), help="steps between checkpoints"
    )
    p.add_argument(
        "--data-dir",
        default=None,
        help="data directory for CIFAR10 and Fashion-MNIST (default: "
        "$EQTUNERS_DATA_DIR, else $TFDS_DATA_DIR, else ~/tensorflow_datasets)",
    )
    p.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bars (they show only when stderr is a terminal)",
    )
    return p


def _overrides(args) -> dict:
    if args.stepsizes is not None and args.stepsizes[0] == args.stepsizes[1]:
        raise UserError(
            f"--stepsizes needs two different step sizes, got {args.stepsizes[0]} "
            "twice."
        )
    if args.seeds is not None and len(set(args.seeds)) != len(args.seeds):
        raise UserError(f"--seeds has duplicates: {args.seeds}.")
    if args.seeds is not None and min(args.seeds) < 0:
        raise UserError(f"--seeds must be >= 0, got {args.seeds}.")
    return {
        "dataset": args.dataset,
        "model": args.model,
        "width": args.width,
        "steps": args.steps,
        "epochs": args.epochs,
        "batch_sizes": None if args.batch_sizes is None else tuple(args.batch_sizes),
        "seeds": None if args.seeds is None else tuple(args.seeds),
        "every": args.every,
        "estimator": args.estimator,
        "examples": args.examples,
        "subset": args.subset,
        "pad_to": args.pad_to,
        "chunk_size": args.chunk_size,
        "sweep_steps": args.sweep_steps,
        "stepsizes": None
        if args.stepsizes is None
        else tuple(sorted(args.stepsizes, reverse=True)),
        "steps_per_call": args.steps_per_call,
    }


def _count(number, noun: str) -> str:
    return f"{number:g} {noun}{'' if number == 1 else 's'}"


def _minutes(value) -> str:
    return "not measured" if value is None else f"{value:g} min"


def list_suites() -> None:
    for name, suite in SUITES.items():
        print(f"{name}: the paper's {suite.figures_of_paper}")
        for scale in SCALES:
            cpu, gpu = suite.minutes.get(scale, (None, None))
            print(
                f"  --scale {scale}: 2 CPU cores {_minutes(cpu)}, one GPU "
                f"{_minutes(gpu)}"
            )
            for w in suite.scales[scale]:
                batches = ", ".join(
                    "full batch" if b is None else str(b) for b in w.batch_sizes
                )
                budget = (
                    _count(w.epochs, "epoch") if w.epochs else _count(w.steps, "step")
                )
                print(f"    {w.label}: {batches}; {budget}")


def dry_run(suite, workloads, out: Path, data: DataCache) -> None:
    for w, count, todo, seconds in estimate_seconds(suite, workloads, data, out):
        left = f"about {seconds / 60:.1f} min (measured)" if todo else "nothing to do"
        print(f"{w.label}: {_count(count, 'run')}, {todo} to run or resume, {left}")
        stepsizes = w.stepsizes
        dataset = data(w.data)
        if suite.needs_sweep and stepsizes is None:
            swept = sweep_outcome(w.sweep(), out)
            if swept is None:
                print("  (GD step sizes come from the sweep; shown as placeholders)")
                stepsizes = (0.5, 0.25)
            else:
                stepsizes = swept["chosen"]
                print(f"  (GD step sizes from the sweep already run: {stepsizes})")
        for group in group_runs(suite.plan(w, stepsizes, dataset.train_x.shape[0])):
            for c in group:
                print(f"  {_state(out / suite.name / 'runs' / c.name, c)}")


def _state(path: Path, config: RunConfig) -> str:
    status = RunDirectory(path, config.to_json()).status
    what = {None: "to run", "completed": "completed, skipped"}.get(
        status, f"{status}, to resume"
    )
    return f"{path}: {what}"


def _check_plotting() -> None:
    if importlib.util.find_spec("matplotlib") is None:
        raise UserError(
            "the figures need matplotlib, which is not installed: "
            "pip install 'eqtuners[plot]' (or pip install matplotlib)."
        )


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.list:
            list_suites()
            return 0
        if args.suite is None:
            raise UserError("name a suite (see --list)")
        _check_plotting()
        suite = SUITES[args.suite]
        workloads = override(suite.scales[args.scale], _overrides(args))
        data = DataCache(args.data_dir)
        if args.dry_run:
            from ._orchestrate import prepare

            prepare(suite, workloads, data)
            dry_run(suite, workloads, args.out, data)
            return 0
        signal.signal(signal.SIGTERM, _interrupt)
        progress = not args.no_progress and sys.stderr.isatty()
        run_suite(suite, args.scale, workloads, args.out, data, progress)
    except UserError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"{PROG}: interrupted; the runs are marked 'interrupted' and resume "
            "when the same command runs again.",
            file=sys.stderr,
        )
        return 130
    return 0
