"""A run's directory, written as the run goes and read back to resume or report.

```
<run>/config.json    the run's configuration
      meta.json      versions, device, seed, git revision (`environment()`), the
                     status (running, completed, diverged at step N, interrupted)
                     and, at the end, a summary
      history.csv    one row per step, appended and synced after every call
      checkpoint.eqx the loop's TrainState after the last call (equinox)
      run.lock       held by the one process that writes the run
```

**Nothing is lost on a crash.** `config.json`, `meta.json`, the checkpoint and a
cut-back CSV are replaced atomically (`_files.replace_atomically`: a crash leaves
the old file or the new one). Rows are appended and synced before the checkpoint is
replaced, so the CSV holds at least the checkpoint's steps; on resume
(`RunDirectory.resume`) it is cut back to them, along with a partial or malformed
last line. A checkpoint that cannot be read (truncated, or of another structure,
from an older version) is reported in one line and the run starts over.

**One process at a time.** A run directory is written only while its process holds
`run.lock` (`filelock.FileLock`: an OS lock that dies with its process, so a killed
holder never blocks). `RunDirectory.try_lock` (or `hold` for a stacked group of
runs) takes it without waiting, or says that another process holds it, so that N
processes on one results folder split its runs between them; every method that
writes takes the lock itself and raises `RunLockedError` when another holds it.
A run whose `meta.json` says `running` when its lock is taken was killed
(`RunDirectory.killed`; `Resume.message` says so).

**For the runner**, per group of runs written together:

```python
with hold(dirs) as held:        # dirs: the group's RunDirectory objects
    if not held: ...            # another process writes them: skip, say so
    todo = [d for d in dirs if not d.done]   # read after the lock: fresh
    resume = d.resume(like)     # per run: state or None, and a one-line message
    d.start(extra); d.append(rows); d.save_checkpoint(state); d.set_status(...)
```
`RunDirectory.status_line()` is one line for `--status`; `check_writable` tests a
results folder before any work.
"""

import contextlib
import csv
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import filelock
import numpy as np

from ._checkpoint import Resume as Resume, read_checkpoint, write_checkpoint
from ._environment import (
    environment as environment,
    now as now,
    utc,
    write_rows as write_rows,
)
from ._files import (
    NotWritableError as NotWritableError,
    check_writable as check_writable,
    count_rows,
    csv_value,
    fsync_folder,
    read_rows,
    write_json as write_json,
    write_rows_csv,
)

RUNNING, COMPLETED, INTERRUPTED = "running", "completed", "interrupted"


class RunLockedError(RuntimeError):
    """Another process holds the run directory's lock (it is writing that run)."""


class RunDirectory:
    """The files of one run (see the module docstring).

    **Arguments:** `path`, the run's folder (created when first written);
    `config`, its configuration (written to `config.json` by `start`).
    """

    def __init__(self, path: Path, config: dict):
        self.path = Path(path)
        self.config = config
        self.csv = self.path / "history.csv"
        self.checkpoint = self.path / "checkpoint.eqx"
        self.lock_file = self.path / "run.lock"
        self._lock = filelock.FileLock(self.lock_file, thread_local=False)
        self.killed = False
        self.meta = self._read_meta()

    def _read_meta(self) -> dict:
        try:
            return json.loads((self.path / "meta.json").read_text())
        except (OSError, ValueError):  # none yet, or unreadable: as if none
            return {}

    @property
    def status(self) -> str | None:
        return self.meta.get("status")

    @property
    def done(self) -> bool:
        """Completed or diverged: nothing left to run."""
        status = self.status or ""
        return status == COMPLETED or status.startswith("diverged")

    @property
    def held(self) -> bool:
        """Whether this object holds the run's lock."""
        return self._lock.is_locked

    def try_lock(self) -> bool:
        """Takes the run's lock without waiting: `True` once held (the meta is then
        read again, as the last holder left it, and `killed` set), `False` when
        another process holds it."""
        if self.held:
            return True
        self.path.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire(timeout=0)
        except filelock.Timeout:
            return False
        self.meta = self._read_meta()
        self.killed = self.status == RUNNING
        return True

    def unlock(self) -> None:
        """Releases the lock (another process may then write the run)."""
        self._lock.release(force=True)

    def _hold(self) -> None:
        if not self.try_lock():
            raise RunLockedError(
                f"{self.path} is being written by another process ({self.lock_file})"
            )

    def start(self, extra: dict) -> None:
        """Marks the run as running: a new run, or one resumed (its `resumed`
        list then gets the time)."""
        self._hold()
        write_json(self.path / "config.json", self.config)
        now = environment()
        written = now.pop("written")
        previous = self.meta
        self.meta = {**now, **extra, "started": previous.get("started", written)}
        if previous:
            self.meta["resumed"] = [*previous.get("resumed", []), written]
        self.set_status(RUNNING)

    def set_status(self, status: str, **fields) -> None:
        self._hold()
        self.meta |= {"status": status, **fields}
        write_json(self.path / "meta.json", self.meta)

    def append(self, rows: dict[str, np.ndarray]) -> None:
        """Appends rows (a dict of equal-length arrays, `step` first) to
        `history.csv` and syncs it to disk (before the checkpoint that covers them
        is replaced).

        **Raises:** `ValueError` when the columns are not those of the file."""
        self._hold()
        new = not self.csv.exists() or self.csv.stat().st_size == 0
        if not new:
            with self.csv.open(newline="") as file:
                header = next(csv.reader([file.readline()]), [])
            if header != list(rows):
                raise ValueError(
                    f"{self.csv} has the columns {header}, not {list(rows)}"
                )
        with self.csv.open("a", newline="") as file:
            writer = csv.writer(file)
            if new:
                writer.writerow(list(rows))
            for i in range(len(rows["step"])):
                writer.writerow([csv_value(rows[c][i]) for c in rows])
            file.flush()
            os.fsync(file.fileno())

    def save_checkpoint(self, state) -> None:
        """Replaces the checkpoint by `state`, atomically."""
        self._hold()
        write_checkpoint(self.checkpoint, state)

    def discard(self) -> None:
        """Forgets the rows and the checkpoint: the run starts over."""
        self._hold()
        self.csv.unlink(missing_ok=True)
        self.checkpoint.unlink(missing_ok=True)
        fsync_folder(self.path)

    def resume(self, like) -> Resume:
        """The state to resume from, with the CSV cut back to it; never raises for
        a damaged file (see `Resume`).

        **Arguments:** `like`, a `TrainState` of this run's configuration (or its
        `jax.eval_shape`): the structure, shapes and dtypes the checkpoint must
        have.

        The CSV keeps its complete rows before the checkpoint's step (`read_rows`);
        a run that has not stopped (`like.finite`) must have all of them. When the
        checkpoint cannot be read (truncated, another structure) or the rows are
        missing, the rows and the checkpoint are discarded and `Resume.problem`
        says why.

        **Raises:** `RunLockedError` when another process holds the lock.
        """
        self._hold()
        if not self.checkpoint.exists():
            self.discard()
            return Resume(None, 0, self.killed)
        state, problem = read_checkpoint(self.checkpoint, like)
        if problem is None:
            problem = self._cut_history(state)
        if problem is not None:
            self.discard()
            return Resume(None, 0, self.killed, problem)
        return Resume(state, int(state.step), self.killed)

    def _cut_history(self, state) -> str | None:
        step = int(state.step)
        header, rows = read_rows(self.csv) if self.csv.exists() else ([], [])
        kept = rows[:step]
        stopped = not bool(np.all(np.asarray(state.finite)))
        if len(kept) < step and not stopped:
            return (
                f"{self.csv} has {len(kept)} complete rows but {self.checkpoint} "
                f"is at step {step}"
            )
        if header:
            write_rows_csv(self.csv, header, kept)
        else:  # empty, or its header line cut: the next append writes one
            self.csv.unlink(missing_ok=True)
        return None

    def history(self) -> dict[str, np.ndarray]:
        return read_history(self.csv)

    def status_line(self, total_steps: int | None = None) -> str:
        """`NAME: STATUS, N of TOTAL steps, last written TIME` for `--status`.

        N counts the complete rows of `history.csv`; TOTAL is `total_steps`, else
        the config's `steps` (left out when neither is known). A run whose meta
        says `running` but whose lock is free was killed, and says so (finding that
        out takes the lock for a moment, so a runner starting that very run then
        may skip it)."""
        status = self.status or "not started"
        if self.status == RUNNING and not self.held:
            if self.try_lock():
                self.unlock()
                status = "killed (resumes when the suite runs again)"
        total = self.config.get("steps") if total_steps is None else total_steps
        steps = f"{count_rows(self.csv)}" + ("" if total is None else f" of {total}")
        line = f"{self.path.name}: {status}, {steps} steps"
        files = (self.path / "meta.json", self.csv, self.checkpoint)
        written = [f.stat().st_mtime for f in files if f.exists()]
        if written:
            line += f", last written {utc(max(written))}"
        return line


@contextlib.contextmanager
def hold(directories: Sequence[RunDirectory]) -> Iterator[bool]:
    """Takes the locks of `directories` (the runs of one stacked call) without
    waiting, in the order of their paths: yields `True` with all held (released on
    exit), or `False` with none held when another process holds one of them.

    The fixed order means that two processes racing for the same group do not
    each take part of it: the one that gets the first lock gets them all."""
    taken = []
    for directory in sorted(directories, key=lambda d: str(d.path)):
        if not directory.try_lock():
            break
        taken.append(directory)
    held = len(taken) == len(directories)
    if not held:
        for directory in taken:
            directory.unlock()
        taken = []
    try:
        yield held
    finally:
        for directory in taken:
            directory.unlock()


def read_history(path: Path) -> dict[str, np.ndarray]:
    """Reads a `history.csv` back as a dict of float arrays: its complete rows
    (`_files.read_rows`); empty arrays when there are none, `{}` when the file has
    no header."""
    header, rows = read_rows(path)
    if not header:
        return {}
    values = np.array(rows, dtype=float).reshape(-1, len(header))
    return {c: values[:, i] for i, c in enumerate(header)}
