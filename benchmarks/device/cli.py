"""The command line of `python -m benchmarks.device` (see the package docstring)."""

import argparse
import sys
import time
import traceback
from pathlib import Path

from eqtuners.internal import METHODS

from .._files import NotWritableError, check_writable, write_json
from .._rundir import environment
from ..paper.cli import _Parser, _positive
from ._budget import Budget
from ._common import Bench
from ._deterministic import DataError, check_data, part_deterministic, reserve
from ._products import part_products
from ._sizes import CPU, FULL, SHARES
from ._speed import part_speed
from ._stack import part_stack
from ._table import table, targets
from ._tracking import part_tracking

PROG = "python -m benchmarks.device"
PARTS = ("speed", "stack", "tracking", "resnet34", "deterministic")


def parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=PROG,
        description="Everything a GPU should show, in one command: speed against "
        "optax, ResNet34's step and product, runs in one compile, the cost of "
        "tracking the sharpness, and the paper's claims on VGG11 (see the docstring "
        "of benchmarks/device/__init__.py).",
    )
    p.add_argument(
        "--cpu",
        action="store_true",
        help="reduced sizes (narrow models, few examples and steps): under a few "
        "minutes on a CPU",
    )
    p.add_argument(
        "--budget",
        type=_positive(float),
        default=None,
        help=f"seconds for the whole run (default: {FULL.budget:g}, with --cpu "
        f"{CPU.budget:g})",
    )
    p.add_argument(
        "--parts", nargs="+", choices=PARTS, default=list(PARTS), help="what to run"
    )
    p.add_argument(
        "--estimator",
        choices=METHODS,
        default="lanczos",
        help="the sharpness estimator of the tracking part (default: lanczos)",
    )
    p.add_argument(
        "--tol",
        type=_positive(float),
        default=1e-3,
        help="its tolerance (default: 1e-3)",
    )
    p.add_argument(
        "--suite-estimator",
        choices=METHODS,
        default="lanczos",
        help="the sharpness estimator of the deterministic suite (default: "
        "lanczos; power is the paper's, and costs more products)",
    )
    p.add_argument(
        "--data-dir",
        default=None,
        help="the folder of the four Fashion-MNIST IDX files (default: "
        "$EQTUNERS_DATA_DIR, else $TFDS_DATA_DIR, else ~/tensorflow_datasets)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("results/device"),
        help="results folder (default: results/device)",
    )
    return p


def _steps(parts: list[str], size) -> list[str]:
    """The budget's parts, in the order they run: `speed` is one per model of the
    size."""
    speed = [f"speed_{m}" for m in size.speed_models] if "speed" in parts else []
    return [p for p in SHARES if p in parts or p in speed]


def _run_part(bench: Bench, part: str, deadline: float, args) -> dict:
    if part.startswith("speed_"):
        return part_speed(bench, part.removeprefix("speed_"), deadline)
    if part == "stack":
        return part_stack(bench, deadline)
    if part == "tracking":
        return part_tracking(bench, deadline, args.estimator, args.tol)
    if part == "resnet34":
        return part_products(bench, deadline)
    return part_deterministic(
        bench, deadline, args.suite_estimator, args.out / "paper", args.data_dir
    )


def _reserve(bench: Bench, later: list[str], args) -> float:
    """The seconds kept for the suite when it runs `later` (its smallest size)."""
    if "deterministic" not in later:
        return 0.0
    try:
        return reserve(bench, args.suite_estimator)
    except Exception as error:  # its models' probe failed: the suite will say so
        bench.budget.log(f"nothing kept for the suite: {type(error).__name__}")
        return 0.0


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    size = CPU if args.cpu else FULL
    total = size.budget if args.budget is None else args.budget
    try:
        check_writable(args.out)
        if "deterministic" in args.parts:
            check_data(args.data_dir, size)
    except (NotWritableError, DataError) as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    steps = _steps(args.parts, size)
    budget = Budget(total, {p: SHARES[p] for p in steps})
    budget.log(f"{size.name} size, {total:g} s budget: {', '.join(steps)}")
    bench = Bench(size, budget)
    path = args.out / "device.json"
    options = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    results = {
        "meta": {"size": size.name, "budget_s": total, "options": options}
        | environment(),
        "parts": {},
    }
    failed = False
    for i, part in enumerate(steps):
        later = steps[i + 1 :]
        budget.reserved = _reserve(bench, later, args)
        seconds = budget.allocate(part, later)
        start = time.perf_counter()
        try:
            result = _run_part(bench, part, start + seconds, args)
        except KeyboardInterrupt:
            budget.log(f"interrupted in {part}; {path} holds the parts done")
            return 130
        except Exception as error:  # one part's failure leaves the others to run
            traceback.print_exc(file=sys.stderr)
            result = {"error": f"{type(error).__name__}: {error}"}
            failed = True
        result |= {
            "seconds": round(time.perf_counter() - start, 1),
            "budget_s": round(seconds, 1),
            "kept_for_the_suite_s": round(budget.reserved, 1),
        }
        results["parts"][part] = result
        results["seconds"] = round(budget.elapsed(), 1)
        write_json(path, results)
        what = result.get("skipped") or result.get("error") or "done"
        budget.log(f"{part}: {what}; {result['seconds']:.0f} s of its {seconds:.0f} s")
    results["targets"] = targets(results["parts"])
    results["seconds"] = round(budget.elapsed(), 1)
    write_json(path, results)
    print(table(results))
    print(f"\nWrote {path}")
    return 1 if failed else 0
