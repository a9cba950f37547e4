"""The reproduction report: each claim of the paper, checked on each seed's runs,
with each seed's numbers and in how many seeds it holds.

A claim that does not hold is reported as such; one that cannot be checked (a run
missing, diverged, or never measured) says so and counts as not holding. Runs at
the edge of stability are chaotic, so one seed's digits are an anecdote: what a
report asserts is "holds in k of n seeds".
"""

import dataclasses
import json
from pathlib import Path

import numpy as np

from .._rundir import write_json


@dataclasses.dataclass
class Claim:
    """One claim checked on one seed's runs: `id` (C1, C2a, ...), `statement`,
    `where` (the workload, batch size or run it was checked on), `numbers` (what
    was measured) and `holds` (`None`: could not be checked). A row with
    `reported=True` only reports numbers the claims are read against; it is not
    counted."""

    id: str
    statement: str
    where: str
    numbers: dict
    holds: bool | None
    reported: bool = False


@dataclasses.dataclass
class SeedClaims:
    """One claim at one place, over the seeds of its workload: `seeds` maps each
    seed to its `Claim` (`None`: not checked in that seed)."""

    id: str
    statement: str
    where: str
    reported: bool
    seeds: dict[int, Claim | None]

    @property
    def held(self) -> int:
        """The number of seeds in which it holds."""
        return sum(c is not None and c.holds is True for c in self.seeds.values())

    @property
    def holds(self) -> bool | None:
        """`True` if it holds in every seed, `False` if it fails in one, `None` if
        it could not be checked in some and fails in none."""
        verdicts = [None if c is None else c.holds for c in self.seeds.values()]
        if False in verdicts:
            return False
        return None if None in verdicts else True

    def verdict(self) -> str:
        if self.reported:
            return "(reported)"
        n = len(self.seeds)
        text = f"holds in {self.held} of {n} seed{'' if n == 1 else 's'}"
        unchecked = sum(c is None or c.holds is None for c in self.seeds.values())
        if unchecked:
            text += f" ({unchecked} not checked)"
        return text if self.holds else f"**{text}**"

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "statement": self.statement,
            "where": self.where,
            "reported": self.reported,
            "holds": self.holds,
            "held": self.held,
            "of": len(self.seeds),
            "seeds": [
                {
                    "seed": seed,
                    "holds": None if c is None else c.holds,
                    "numbers": {} if c is None else rounded(c.numbers),
                }
                for seed, c in self.seeds.items()
            ],
        }


def by_claim(per_seed: list[tuple[tuple[int, ...], int, Claim]]) -> list[SeedClaims]:
    """`(workload's seeds, seed, claim)` triples gathered per claim and place
    (`id` and `where`), in their first order; a seed of the workload without
    that claim counts as not checked."""
    gathered: dict[tuple[str, str], SeedClaims] = {}
    for seeds, seed, claim in per_seed:
        key = (claim.id, claim.where)
        if key not in gathered:
            gathered[key] = SeedClaims(
                claim.id,
                claim.statement,
                claim.where,
                claim.reported,
                dict.fromkeys(seeds),
            )
        gathered[key].seeds[seed] = claim
    return list(gathered.values())


def rounded(numbers: dict) -> dict:
    def one(v):
        if isinstance(v, float):
            return float(f"{v:.4g}")
        if isinstance(v, dict):
            return rounded(v)
        return v

    return {k: one(v) for k, v in numbers.items()}


def _numbers(claim: SeedClaims) -> str:
    parts = []
    for seed, c in claim.seeds.items():
        if c is None:
            parts.append(f"seed {seed}: not checked")
            continue
        numbers = ", ".join(f"{k} {v}" for k, v in rounded(c.numbers).items())
        if not claim.reported and c.holds is not True:
            numbers += " (no)" if c.holds is False else " (not checked)"
        parts.append(f"seed {seed}: {numbers}")
    return "; ".join(parts)


def _headline(claims: list[SeedClaims]) -> str:
    checked = [c for c in claims if not c.reported]
    seeds = sorted({s for c in claims for s in c.seeds})
    every = sum(c.holds is True for c in checked)
    some = sum(0 < c.held < len(c.seeds) for c in checked)
    what = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {seeds}"
    text = (
        f"Each claim is checked on each seed's runs ({what}): {every} of "
        f"{len(checked)} {'holds' if every == 1 else 'hold'} in every seed"
    )
    return text + (f", {some} in some." if len(seeds) > 1 else ".")


# The columns of the runs table: a run's summary (`_stats.summarise`) by key.
SUMMARY_COLUMNS = {
    "final training loss": "final_train_loss",
    "final sharpness": "final_sharpness",
    "median step x sharpness (second half)": "median_stepsize_x_sharpness_second_half",
    "test accuracy": "test_accuracy",
}


def run_rows(results) -> list[dict]:
    """One row per workload, batch size and tuner: its status and summary in each
    seed (`{"where", "tuner", "seeds": {seed: {status, summary keys}}}`)."""
    rows: dict[tuple[str, str], dict] = {}
    for result in results:
        for r in result.runs:
            c = r.config
            where = result.workload.label
            if c.batch_size is not None:
                where += f", batch {c.batch_size}"
            row = rows.setdefault(
                (where, c.tuner.label),
                {"where": where, "tuner": c.tuner.label, "seeds": {}},
            )
            summary = r.meta.get("summary") or {}
            row["seeds"][c.seed] = {"status": r.meta.get("status"), **summary}
    return list(rows.values())


def spread(values: list) -> str:
    """The median of `values` and, over several, their range: "0.02 (0.019 to
    0.028)"; values that are `None` (not measured, a diverged run) are counted."""
    known = [v for v in values if v is not None]
    if not known:
        return "-"
    text = f"{np.median(known):.4g}"
    if len(known) > 1:
        text += f" ({min(known):.4g} to {max(known):.4g})"
    if len(known) < len(values):
        text += f", {len(values) - len(known)} not measured"
    return text


def _runs_table(rows: list[dict]) -> list[str]:
    """The runs table: per row, each summary's median and range over the seeds,
    then every seed's own numbers."""
    if not rows:
        return []
    names = list(SUMMARY_COLUMNS)
    lines = [
        "",
        "Runs (median and range over the seeds; the runs are chaotic at the edge of "
        "stability, so each seed is another trajectory):",
        "",
        f"| workload | run | seeds | {' | '.join(names)} |",
        "|---|---|---|" + "---|" * len(names),
    ]
    for row in rows:
        seeds = row["seeds"].values()
        cells = [spread([s.get(SUMMARY_COLUMNS[n]) for s in seeds]) for n in names]
        diverged = sum(str(s["status"]).startswith("diverged") for s in seeds)
        count = f"{len(seeds)}" + (f" ({diverged} diverged)" if diverged else "")
        lines.append(
            f"| {row['where']} | {row['tuner']} | {count} | {' | '.join(cells)} |"
        )
    lines += [
        "",
        "Per seed:",
        "",
        f"| workload | run | seed | status | {' | '.join(names)} |",
        "|---|---|---|---|" + "---|" * len(names),
    ]
    for row in rows:
        for seed, s in row["seeds"].items():
            cells = [spread([s.get(SUMMARY_COLUMNS[n])]) for n in names]
            lines.append(
                f"| {row['where']} | {row['tuner']} | {seed} | {s['status']} | "
                f"{' | '.join(cells)} |"
            )
    return lines


def write_report(
    suite, scale: str, claims: list[SeedClaims], figures, out, results=()
) -> str:
    """Writes `report.md` and `report.json` into `out` and returns the Markdown;
    `results` (the `WorkloadResult`s) adds the runs table."""
    out = Path(out)
    lines = [
        f"# {suite.name}: reproduction report ({scale} scale)",
        "",
        f"The paper's {suite.figures_of_paper}. {_headline(claims)}",
        "",
        "| claim | where | measured, per seed | holds |",
        "|---|---|---|---|",
    ]
    for c in claims:
        lines.append(
            f"| {c.id}: {c.statement} | {c.where} | {_numbers(c)} | {c.verdict()} |"
        )
    rows = run_rows(results)
    lines += _runs_table(rows)
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
            "claims": [c.to_json() for c in claims],
            "runs": rows,
            "figures": [str(Path(f).relative_to(out)) for f in figures],
        },
    )
    return text


def read_report(out: Path) -> dict:
    return json.loads((out / "report.json").read_text())
