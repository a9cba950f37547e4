"""A run's directory: `config.json`, `meta.json` and `history.csv`, written as it goes.

`meta.json` holds the library versions, the device, the seed, the git revision, the
start and end times and the status (`running`, then `completed` or `diverged at step
N`); the CSV gets its rows after every call of the compiled loop, so a killed run
keeps everything it computed.
"""

import csv
import datetime
import importlib.metadata
import json
import platform
import subprocess
from pathlib import Path

import jax
import numpy as np

PACKAGES = ("eqtuners", "jax", "jaxlib", "equinox", "optimistix", "numpy", "optax")


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def git_revision() -> str:
    """The checkout's commit, with `+dirty` when it has uncommitted changes."""
    here = Path(__file__).parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=here, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return "unknown"
    return (commit or "unknown") + ("+dirty" if dirty else "")


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def _write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2, default=str) + "\n")


def _csv_value(value) -> str:
    if isinstance(value, np.bool_ | bool):
        return str(int(value))
    if isinstance(value, np.integer | int):
        return str(value)
    return f"{value:.9g}"


def environment() -> dict:
    """Where and with what a result was computed: library versions, the device, the
    git revision and the time."""
    device = jax.devices()[0]
    return {
        "versions": {p: _version(p) for p in PACKAGES}
        | {"python": platform.python_version()},
        "device": {
            "platform": device.platform,
            "kind": device.device_kind,
            "count": jax.device_count(),
            "host": platform.node(),
        },
        "git_revision": git_revision(),
        "written": _now(),
    }


class RunDirectory:
    """Writes one run's files into `path` (created if needed, overwritten if there)."""

    def __init__(self, path: Path, config: dict, *, seed: int):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        _write_json(self.path / "config.json", config)
        self.meta = environment()
        self.meta["started"] = self.meta.pop("written")
        self.meta |= {"seed": seed, "status": "running"}
        _write_json(self.path / "meta.json", self.meta)
        self._csv = self.path / "history.csv"
        self._csv.unlink(missing_ok=True)
        self._columns = None

    def append(self, rows: dict[str, np.ndarray]) -> None:
        """Appends rows (a dict of equal-length arrays) to `history.csv`."""
        with self._csv.open("a", newline="") as file:
            writer = csv.writer(file)
            if self._columns is None:
                self._columns = list(rows)
                writer.writerow(self._columns)
            for i in range(len(rows[self._columns[0]])):
                writer.writerow([_csv_value(rows[c][i]) for c in self._columns])

    def finish(self, status: str, summary: dict) -> None:
        """Records the final status and a summary of the run in `meta.json`."""
        self.meta |= {"finished": _now(), "status": status, "summary": summary}
        _write_json(self.path / "meta.json", self.meta)


def read_history(path: Path) -> dict[str, np.ndarray]:
    """Reads a `history.csv` back as a dict of float arrays."""
    with Path(path).open(newline="") as file:
        rows = list(csv.reader(file))
    columns, values = rows[0], np.array(rows[1:], dtype=float).reshape(-1, len(rows[0]))
    return {c: values[:, i] for i, c in enumerate(columns)}
