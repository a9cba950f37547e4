"""Part `deterministic`: the paper's deterministic suite (`benchmarks.paper
deterministic`) on the MLP and VGG11, on a class-balanced subset of Fashion-MNIST
padded to 32x32, for as many steps as fit in the time left.

It is the suite's `offline` scale narrowed by its own overrides (`--model`,
`--seeds`, `--steps`, `--sweep-steps`, `--subset`, `--width`, `--every`,
`--estimator`), run in this process: a step-size sweep (13 fixed steps in one
stacked run), then GD at the two largest stable steps, Armijo-GD and Polyak-GD,
then the figures and `report.md` with the paper's claims checked. Its run
directories resume like any suite's, so running the same command again continues
a killed run.

The steps are planned from the measured step times (Armijo taken at `ARMIJO_COST`
steps a step, a measurement at its estimator's products): the most that fit, at
least the size's smallest, which runs even when it overruns the time left by up
to `_budget.SLACK` of the whole budget; the earlier parts leave it the time of its
smallest size (`reserve`).
"""

import contextlib
import json
import signal
import sys
from pathlib import Path

import eqtuners as et

from ..paper import cli as paper_cli
from ..paper._config import SWEEP_GRID
from ._budget import MEASURE_COMPILE, SEARCH_COMPILE, SLACK, fit, until
from ._common import Bench
from ._tracking import PRODUCT_COST

SUITE = "deterministic"
# Armijo-GD's step in value-and-gradients: its search tries more step sizes as its
# sharpness rises (about 10 trials of a third of a step each late in a run).
ARMIJO_COST = 4.0
# Products per measurement, for the plan (power iteration restarts from a random
# vector at every measurement; the others are warm-started).
PRODUCTS = {"power": 40, "lanczos": 15}
RUNS = 4  # GD at two steps, Armijo-GD, Polyak-GD
# Compiles per model, in Constant loops: the sweep, then GD's stack, Armijo-GD and
# Polyak-GD with measurements, and the test accuracy of each of the four groups
# (a forward pass: half a loop).
COMPILES = 1 + 3 * MEASURE_COMPILE + SEARCH_COMPILE - 1 + 4 * 0.5


class DataError(Exception):
    """The suite's data are missing: the message is one line."""


def check_data(data_dir, size) -> None:
    """Loads the suite's Fashion-MNIST subset (without downloading), so that a
    missing dataset stops the benchmark before any work, in one line."""
    try:
        et.load_dataset(
            "fashion_mnist",
            data_dir=data_dir,
            subset=size.suite_subset,
            pad_to=32,
            download=False,
        )
    except et.DatasetNotFoundError as error:
        first = str(error).splitlines()[0]
        raise DataError(
            f"{first} Give the folder of its four IDX files with --data-dir, or "
            "leave the part out with --parts."
        ) from None


def argv(size, steps: int, estimator: str, out: Path, data_dir) -> list[str]:
    """The suite's command line."""
    words = [SUITE, "--scale", "offline", "--model", *size.suite_models]
    words += ["--seeds", *size.suite_seeds]
    words += ["--steps", steps, "--sweep-steps", size.suite_sweep_steps]
    words += ["--subset", size.suite_subset, "--width", size.suite_width]
    words += ["--every", size.suite_every, "--estimator", estimator]
    words += ["--out", out, "--no-progress"]
    if data_dir is not None:
        words += ["--data-dir", data_dir]
    return [str(w) for w in words]


def _costs(bench: Bench, estimator: str) -> tuple[float, float]:
    """The suite's planned seconds: `(fixed, per step)`."""
    size = bench.size
    products = PRODUCTS.get(estimator, 20) * PRODUCT_COST
    fixed, per_step = size.suite_reserve, 0.0
    for name in size.suite_models:
        estimate = bench.estimate(name)
        fixed += COMPILES * estimate.compile_s
        fixed += len(SWEEP_GRID) * size.suite_sweep_steps * estimate.step_s
        measuring = RUNS * products / size.suite_every
        runs = (2 + ARMIJO_COST + 1 + measuring) * len(size.suite_seeds)
        per_step += estimate.step_s * runs
    return fixed, per_step


def reserve(bench: Bench, estimator: str) -> float:
    """The seconds the earlier parts leave to the suite: its smallest size, less
    the slack, when that fits in the time left with the slack (otherwise it will
    not run, and nothing is kept for it)."""
    fixed, per_step = _costs(bench, estimator)
    smallest = fixed + per_step * bench.size.suite_steps[0]
    slack = SLACK * bench.budget.total
    if smallest > bench.budget.left() + slack:
        return 0.0
    return max(smallest - slack, 0.0)


def plan_steps(bench: Bench, deadline: float, estimator: str):
    """`(steps, planned seconds, seconds left)`; `steps` is `None` when not even the
    smallest number fits, with the slack."""
    fixed, per_step = _costs(bench, estimator)
    seconds = until(deadline)
    smallest, largest = bench.size.suite_steps
    steps = fit(seconds - fixed, per_step, smallest, largest)
    slack = SLACK * bench.budget.total
    if steps is None and fit(seconds + slack - fixed, per_step, smallest, smallest):
        steps = smallest
    return steps, fixed + per_step * (steps or smallest), seconds


def _summary(out: Path, size, steps: int) -> dict:
    """The claims of the report and each run's summary."""
    report = json.loads((out / SUITE / "report.json").read_text())
    checked = [c for c in report["claims"] if not c["reported"]]
    runs = []
    for meta_path in sorted((out / SUITE / "runs").glob("*/meta.json")):
        config = json.loads((meta_path.parent / "config.json").read_text())
        if config["steps"] != steps or config["model"] not in size.suite_models:
            continue
        meta = json.loads(meta_path.read_text())
        runs.append(
            {
                "model": config["model"],
                "tuner": config["tuner"],
                "status": meta.get("status"),
                "seconds": meta.get("seconds"),
                **(meta.get("summary") or {}),
            }
        )
    return {
        "claims_held": sum(c["holds"] is True for c in checked),
        "claims_checked": len(checked),
        "claims": [
            {"id": c["id"], "where": c["where"], "holds": c["holds"]} for c in checked
        ],
        "runs": runs,
        "report": str(out / SUITE / "report.md"),
        "figures": [str(out / SUITE / f) for f in report["figures"]],
    }


def part_deterministic(
    bench: Bench, deadline: float, estimator: str, out: Path, data_dir
) -> dict:
    size = bench.size
    steps, planned, seconds = plan_steps(bench, deadline, estimator)
    if steps is None:
        return {
            "skipped": f"needs about {planned:.0f} s at {size.suite_steps[0]} steps, "
            f"{max(seconds, 0):.0f} s left"
        }
    words = argv(size, steps, estimator, out, data_dir)
    command = "python -m benchmarks.paper " + " ".join(words)
    bench.budget.log(f"{SUITE}: {command} (planned {planned:.0f} s)")
    handler = signal.getsignal(signal.SIGTERM)
    try:  # the suite's report goes to stderr: stdout ends with the table
        with contextlib.redirect_stdout(sys.stderr):
            status = paper_cli.main(words)
    finally:
        signal.signal(signal.SIGTERM, handler)  # the suite sets its own
    if status != 0:
        raise RuntimeError(f"the suite exited with status {status}")
    return {
        "command": command,
        "models": list(size.suite_models),
        "subset": size.suite_subset,
        "steps": steps,
        "sweep_steps": size.suite_sweep_steps,
        "every": size.suite_every,
        "estimator": estimator,
        "planned_s": round(planned, 1),
        **_summary(out, size, steps),
    }
