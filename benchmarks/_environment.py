"""Where and with what a result was computed (library versions, device, git
revision, time), and a benchmark's rows written with it."""

import datetime
import importlib.metadata
import platform
import subprocess
from pathlib import Path

import jax

from ._files import write_json

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


def now() -> str:
    """The time in UTC, ISO 8601 to the second."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def utc(timestamp: float) -> str:
    """A POSIX timestamp in UTC, as `now` writes the time."""
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.UTC)
    return moment.isoformat(timespec="seconds")


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
        "written": now(),
    }


def write_rows(path: Path, rows: list) -> None:
    """A benchmark's result rows with the environment they were measured in."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, {**environment(), "rows": rows})
