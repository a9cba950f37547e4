"""`python -m benchmarks.paper SUITE --scale SCALE --out DIR`: one command per
experiment of the paper.

It expands the suite into runs, skips those already completed, resumes those
interrupted (Ctrl-C, SIGTERM or a kill: run the same command again), and at the
end draws the figures and writes `report.md`, the paper's claims checked on each
seed's runs. `--list` shows the suites, their runs and expected times; `--dry-run`
shows what would run and where, with a time estimated from measured step times;
`--status` where each run of a suite already in `--out` stands. `--tuners` runs
other tuners (by name with hyperparameters, or a user's own by import path). A
mistake on the command line is one line on stderr and exit status 2; so are an
`--out` that cannot be written (before any work) and a missing dataset, whose
message says on a few lines how to provide it.
"""

import argparse
import importlib.util
import signal
import sys
from pathlib import Path

import eqtuners as et

from .._files import NotWritableError, check_writable
from ._measure import flags as measure_flags
from ._orchestrate import UserError, dry_run, run_suite, show_status
from ._runner import DataCache
from ._suite import SCALES, override
from ._tuners import TUNERS, TunerError, parse_tuner
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


def _tuner(text):
    try:
        return parse_tuner(text)
    except TunerError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


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
    p.add_argument(
        "--status",
        action="store_true",
        help="one line per run of the suite already in --out: its status, the "
        "steps reached of its total, when last written (for following a long run)",
    )
    _add_overrides(p.add_argument_group("overrides of the scale (default: its own)"))
    p.add_argument(
        "--data-dir",
        default=None,
        help="data directory for CIFAR10 and Fashion-MNIST (default: "
        "$EQTUNERS_DATA_DIR, else $TFDS_DATA_DIR, else ~/tensorflow_datasets)",
    )
    p.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress (a bar when stderr is a terminal, otherwise a log line "
        "per call at most, one a minute)",
    )
    return p


def _add_overrides(o) -> None:
    o.add_argument("--dataset", nargs="+", choices=sorted(et.DATASETS), help="data")
    o.add_argument("--model", nargs="+", choices=sorted(et.MODELS), help="models")
    o.add_argument(
        "--tuners",
        nargs="+",
        type=_tuner,
        metavar="TUNER",
        help="the tuners run besides GD at the sweep's steps: NAME[:ARG=VALUE,...] "
        f"({', '.join(sorted(TUNERS))}; e.g. polyak:max_stepsize=3) or "
        "package.module:Class[:ARG=VALUE,...] for an AbstractTuner of your own",
    )
    o.add_argument("--width", type=_positive(float), help="model width multiplier")
    o.add_argument("--steps", type=_positive(int), help="steps per full-batch run")
    o.add_argument("--epochs", type=_positive(float), help="epochs per mini-batch run")
    o.add_argument(
        "--min-steps", type=_positive(int), help="at least this many mini-batch steps"
    )
    o.add_argument(
        "--batch-sizes", type=_positive(int), nargs="+", help="mini-batch sizes"
    )
    o.add_argument("--seeds", type=int, nargs="+", default=None, help="run seeds")
    for field in measure_flags():
        flag = field.metadata["flag"]
        name = "--" + field.name.replace("_", "-")
        if field.type is bool:
            o.add_argument(
                name, action=argparse.BooleanOptionalAction, help=flag["help"]
            )
        else:
            kind = None if flag["type"] is None else _positive(flag["type"])
            o.add_argument(name, type=kind, choices=flag["choices"], help=flag["help"])
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
    tuple_or_none = {
        "batch_sizes": args.batch_sizes,
        "seeds": args.seeds,
        "tuners": None if args.tuners is None else dict.fromkeys(args.tuners),
        "stepsizes": None
        if args.stepsizes is None
        else sorted(args.stepsizes, reverse=True),
    }
    fields = ["dataset", "model", "width", "steps", "epochs", "min_steps"]
    fields += ["subset", "pad_to"]
    fields += ["chunk_size", "sweep_steps", "steps_per_call"]
    fields += [f.name for f in measure_flags()]
    return {name: getattr(args, name) for name in fields} | {
        k: None if v is None else tuple(v) for k, v in tuple_or_none.items()
    }


def _minutes(value) -> str:
    return "not measured" if value is None else f"{value:g} min"


def _count(number, noun: str) -> str:
    return f"{number:g} {noun}{'' if number == 1 else 's'}"


def list_suites() -> None:
    for name, suite in SUITES.items():
        print(f"{name}: the paper's {suite.figures_of_paper}")
        gd = "GD at the sweep's steps, " if suite.needs_sweep else ""
        print(f"  tuners: {gd}{', '.join(t.label for t in suite.tuners)}")
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
                if w.epochs and w.min_steps:
                    budget += f", at least {_count(w.min_steps, 'step')}"
                if len(w.seeds) > 1:
                    budget += f"; seeds {', '.join(map(str, w.seeds))}"
                print(f"    {w.label}: {batches}; {budget}")


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
        suite = SUITES[args.suite]
        if args.status:  # reads the run directories only
            show_status(suite, args.out)
            return 0
        _check_plotting()
        workloads = override(suite.scales[args.scale], _overrides(args))
        data = DataCache(args.data_dir)
        if args.dry_run:
            dry_run(suite, workloads, args.out, data)
            return 0
        try:  # before any work: a run that cannot save its results is not run
            check_writable(args.out)
        except NotWritableError as error:
            raise UserError(str(error)) from None
        signal.signal(signal.SIGTERM, _interrupt)
        # None: a bar on a terminal, log lines otherwise (a batch job's log).
        progress = False if args.no_progress else None
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
