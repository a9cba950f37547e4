"""The command line of the estimator benchmark: `python -m benchmarks.sharpness`."""

import argparse
import json
from pathlib import Path

from .._rundir import RunDirectory
from . import __doc__ as package_doc
from .estimators import ESTIMATORS, part_estimators
from .memory import part_memory
from .overhead import OVERHEAD_CONFIGS, part_overhead
from .power_residuals import part_power_residuals
from .problems import TUNERS
from .reuse import part_reuse

PARTS = {
    "estimators": part_estimators,
    "overhead": part_overhead,
    "reuse": part_reuse,
    "power_residuals": part_power_residuals,
    "memory": part_memory,
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.sharpness",
        description=package_doc.split("\n\n")[0],
    )
    parser.add_argument("--parts", nargs="*", default=list(PARTS), choices=list(PARTS))
    parser.add_argument("--problems", nargs="*", default=["mlp_digits"])
    parser.add_argument(
        "--tuners", nargs="*", default=["polyak", "armijo"], choices=list(TUNERS)
    )
    parser.add_argument(
        "--estimators", nargs="*", default=list(ESTIMATORS), choices=list(ESTIMATORS)
    )
    parser.add_argument("--burn-in", type=int, default=500)
    parser.add_argument("--snapshots", type=int, default=21)
    parser.add_argument("--vgg-snapshots", type=int, default=9)
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunk-size", type=int, default=None)
    parser.add_argument("--vgg-examples", type=int, default=128)
    parser.add_argument("--vgg-width-divisor", type=int, default=16)
    parser.add_argument("--dense-max-params", type=int, default=3000)
    parser.add_argument("--overhead-steps", type=int, default=1000)
    parser.add_argument(
        "--overhead-tuners", nargs="*", default=["polyak"], choices=list(TUNERS)
    )
    parser.add_argument(
        "--overhead-configs",
        nargs="*",
        default=list(OVERHEAD_CONFIGS),
        choices=list(OVERHEAD_CONFIGS),
    )
    parser.add_argument("--residual-points", type=int, default=16)
    parser.add_argument("--residual-every", type=int, default=20)
    parser.add_argument(
        "--memory-models", nargs="*", default=["mlp", "vgg11", "resnet34"]
    )
    parser.add_argument("--memory-examples", type=int, default=4096)
    parser.add_argument("--memory-steps", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("results/sharpness"))
    args = parser.parse_args(argv)
    if "none" not in args.overhead_configs:
        args.overhead_configs = ["none", *args.overhead_configs]
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    config["estimator_settings"] = {name: repr(e) for name, e in ESTIMATORS.items()}
    run = RunDirectory(args.out, config)
    run.start({"seed": args.seed})
    summary = {}
    for part in args.parts:
        summary[part] = PARTS[part](args, args.out)
        (args.out / f"{part}.json").write_text(
            json.dumps(summary[part], indent=2, default=float) + "\n"
        )
    brief = {k: v for k, v in summary.items() if k != "power_residuals"}
    run.set_status("completed", summary=brief)
    everything = {"config": config, "meta": run.meta, **summary}
    (args.out / "summary.json").write_text(
        json.dumps(everything, indent=2, default=float) + "\n"
    )
    return summary
