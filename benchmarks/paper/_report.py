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


def write_report(suite, scale: str, claims: list[SeedClaims], figures, out) -> str:
    """Writes `report.md` and `report.json` into `out` and returns the Markdown."""
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
            "figures": [str(Path(f).relative_to(out)) for f in figures],
        },
    )
    return text


def read_report(out: Path) -> dict:
    return json.loads((out / "report.json").read_text())
