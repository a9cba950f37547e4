"""A run's directory, written as the run goes and read back to resume or report.

```
<run>/config.json    the run's configuration
      meta.json      versions, device, seed, git revision (`environment()`), the
                     status (running, completed, diverged at step N, interrupted)
                     and, at the end, a summary
      history.csv    one row per step, appended after every call of the scan
      checkpoint.eqx the loop's TrainState after the last call (equinox
                     serialisation, written to a temporary file and renamed)
```

Rows are appended before the checkpoint is replaced, so after a kill the CSV holds
at least the checkpoint's steps; rows past it are cut off when the run resumes.
"""

import csv
import datetime
import importlib.metadata
import json
import os
import platform
import subprocess
from pathlib import Path

import equinox as eqx
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


def now() -> str:
    """The time in UTC, ISO 8601 to the second."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def csv_value(value) -> str:
    """A CSV cell: booleans as 0/1, integers as they are, floats to 9 digits
    (exact for float32)."""
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
        "written": now(),
    }


RUNNING, COMPLETED, INTERRUPTED = "running", "completed", "interrupted"


def write_json(path: Path, obj) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(obj, indent=2, default=str) + "\n")
    os.replace(temporary, path)


def write_rows(path: Path, rows: list) -> None:
    """A benchmark's result rows with the environment they were measured in."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, {**environment(), "rows": rows})


def _is_key(x) -> bool:
    return isinstance(x, jax.Array) and jax.dtypes.issubdtype(
        x.dtype, jax.dtypes.prng_key
    )


def _keys_as_data(state):
    """PRNG keys as their raw data, which equinox serialisation can write."""
    return jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, state)


def _keys_from_data(state, like):
    return jax.tree.map(
        lambda x, y: jax.random.wrap_key_data(x) if _is_key(y) else x, state, like
    )


class RunDirectory:
    """The files of one run (see the module docstring)."""

    def __init__(self, path: Path, config: dict):
        self.path = Path(path)
        self.config = config
        self.csv = self.path / "history.csv"
        self.checkpoint = self.path / "checkpoint.eqx"
        meta = self.path / "meta.json"
        self.meta = json.loads(meta.read_text()) if meta.exists() else {}

    @property
    def status(self) -> str | None:
        return self.meta.get("status")

    @property
    def done(self) -> bool:
        """Completed or diverged: nothing left to run."""
        status = self.status or ""
        return status == COMPLETED or status.startswith("diverged")

    def start(self, extra: dict) -> None:
        """Marks the run as running: a new run, or one resumed (its `resumed`
        list then gets the time)."""
        self.path.mkdir(parents=True, exist_ok=True)
        write_json(self.path / "config.json", self.config)
        now = environment()
        written = now.pop("written")
        previous = self.meta
        self.meta = {**now, **extra, "started": previous.get("started", written)}
        if previous:
            self.meta["resumed"] = [*previous.get("resumed", []), written]
        self.set_status(RUNNING)

    def set_status(self, status: str, **fields) -> None:
        self.meta |= {"status": status, **fields}
        write_json(self.path / "meta.json", self.meta)

    def append(self, rows: dict[str, np.ndarray]) -> None:
        """Appends rows (a dict of equal-length arrays) to `history.csv`."""
        new = not self.csv.exists()
        with self.csv.open("a", newline="") as file:
            writer = csv.writer(file)
            if new:
                writer.writerow(list(rows))
            for i in range(len(rows["step"])):
                writer.writerow([csv_value(rows[c][i]) for c in rows])

    def save_checkpoint(self, state) -> None:
        temporary = self.checkpoint.with_suffix(".tmp")
        eqx.tree_serialise_leaves(temporary, _keys_as_data(state))
        os.replace(temporary, self.checkpoint)

    def discard(self) -> None:
        """Forgets the rows and the checkpoint: the run starts over."""
        self.csv.unlink(missing_ok=True)
        self.checkpoint.unlink(missing_ok=True)

    def load_checkpoint(self, like):
        """The saved state, shaped like `like` (a state or its `jax.eval_shape`),
        or `None` when there is none; the CSV is cut back to the state's step."""
        if not self.checkpoint.exists():
            return None
        state = eqx.tree_deserialise_leaves(self.checkpoint, _keys_as_data(like))
        state = _keys_from_data(state, like)
        self._truncate(int(state.step))
        return state

    def _truncate(self, step: int) -> None:
        if not self.csv.exists():
            return
        with self.csv.open(newline="") as file:
            rows = list(csv.reader(file))
        kept = [rows[0]] + [r for r in rows[1:] if int(r[0]) < step]
        with self.csv.open("w", newline="") as file:
            csv.writer(file).writerows(kept)

    def history(self) -> dict[str, np.ndarray]:
        return read_history(self.csv)


def read_history(path: Path) -> dict[str, np.ndarray]:
    """Reads a `history.csv` back as a dict of float arrays (empty when there are
    no rows)."""
    with Path(path).open(newline="") as file:
        rows = list(csv.reader(file))
    columns = rows[0]
    values = np.array(rows[1:], dtype=float).reshape(-1, len(columns))
    return {c: values[:, i] for i, c in enumerate(columns)}
