"""The reproduction report: each claim of the paper, the numbers measured, and
whether it holds on this suite's own runs.

A claim that does not hold is reported as such; one that cannot be checked (a run
missing, diverged, or never measured) says so and counts as not holding.
"""

import dataclasses
import json
import math
from pathlib import Path

import numpy as np

from .._rundir import write_json


@dataclasses.dataclass
class Claim:
    """One checked claim: `id` (C1, C2a, ...), `statement`, `where` (the workload,
    batch size or run it was checked on), `numbers` (what was measured) and
    `holds` (`None`: could not be checked). A row with `reported=True` only reports
    numbers the claims are read against; it is not counted."""

    id: str
    statement: str
    where: str
    numbers: dict
    holds: bool | None
    reported: bool = False


def measured(history, key, start=0, stop=None):
    """The finite values of `key` on rows with `start <= step < stop`."""
    step = history["step"]
    stop = math.inf if stop is None else stop
    rows = (step >= start) & (step < stop) & np.isfinite(history[key])
    return history[key][rows]


def second_half(history, key):
    return measured(history, key, start=history["step"][-1] / 2)


def median_second_half(history, key="stepsize_x_sharpness") -> float | None:
    values = second_half(history, key)
    return float(np.median(values)) if values.size else None


def final(history, key) -> float | None:
    values = history[key][np.isfinite(history[key])]
    return float(values[-1]) if values.size else None


def first(history, key) -> float | None:
    values = history[key][np.isfinite(history[key])]
    return float(values[0]) if values.size else None


def all_known(*values) -> bool:
    return all(v is not None for v in values)


def rounded(numbers: dict) -> dict:
    def one(v):
        if isinstance(v, float):
            return float(f"{v:.4g}")
        if isinstance(v, dict):
            return rounded(v)
        return v

    return {k: one(v) for k, v in numbers.items()}


def write_report(suite, scale: str, claims: list[Claim], figures, out: Path) -> str:
    """Writes `report.md` and `report.json` into `out` and returns the Markdown."""
    checked = [c for c in claims if not c.reported]
    held = sum(c.holds is True for c in checked)
    lines = [
        f"# {suite.name}: reproduction report ({scale} scale)",
        "",
        f"The paper's {suite.figures_of_paper}. Claims checked on this suite's own "
        f"runs: {held} of {len(checked)} {'holds' if len(checked) == 1 else 'hold'}.",
        "",
        "| claim | where | measured | holds |",
        "|---|---|---|---|",
    ]
    for c in claims:
        numbers = ", ".join(f"{k} {v}" for k, v in rounded(c.numbers).items())
        verdict = {True: "yes", False: "**no**", None: "**not checked**"}[c.holds]
        verdict = "(reported)" if c.reported else verdict
        lines.append(f"| {c.id}: {c.statement} | {c.where} | {numbers} | {verdict} |")
    if figures:
        lines += ["", "Figures:", ""]
        lines += [f"- `{Path(f).relative_to(out)}`" for f in figures]
    text = "\n".join(lines) + "\n"
    (out / "report.md").write_text(text)
    write_json(
        out / "report.json",
        {
            "suite": suite.name,
            "scale": scale,
            "claims": [
                dataclasses.asdict(c) | {"numbers": rounded(c.numbers)} for c in claims
            ],
            "figures": [str(Path(f).relative_to(out)) for f in figures],
        },
    )
    return text


def read_report(out: Path) -> dict:
    return json.loads((out / "report.json").read_text())
