"""Files that survive a crash: replaced atomically, appended rows read back with care.

- `replace_atomically(path, write)`: the new content goes to a temporary file in
  the same folder, which is flushed, `fsync`ed and renamed over `path`, and the
  folder is `fsync`ed: after a crash (a kill, a full disk, a power cut) `path` holds
  either its old content or the new one, never a mix.
- `read_rows(path)`: a CSV written row by row, as `(header, rows)`: only the rows
  before the first one that is incomplete (no end of line: a kill while appending)
  or malformed (another width than the header's, a cell that is not a number, a
  step that does not follow the previous row's).
- `check_writable(folder)`: creates `folder` and writes a file in it, or raises
  `NotWritableError` with one line saying why.
"""

import csv
import io
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

import numpy as np


def fsync_folder(folder: Path) -> None:
    """Makes a rename or an unlink in `folder` durable (a no-op where folders cannot
    be opened, as on Windows)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


# The process's umask, read once (reading it means setting it): files replaced
# atomically get the permissions a plain `open` would give them, not mkstemp's 0o600.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def replace_atomically(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Replaces `path` by what `write(file)` writes to a binary file (see the
    module docstring). The temporary file is removed if `write` raises."""
    path = Path(path)
    descriptor, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
    )
    try:
        os.chmod(temporary, 0o666 & ~_UMASK)
        with os.fdopen(descriptor, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)


def write_text(path: Path, text: str) -> None:
    """Replaces `path` by `text` (UTF-8), atomically."""
    replace_atomically(path, lambda file: file.write(text.encode()))


def write_json(path: Path, obj) -> None:
    """Replaces `path` by `obj` as indented JSON, atomically."""
    write_text(path, json.dumps(obj, indent=2, default=str) + "\n")


def _number(cell: str) -> float | None:
    try:
        return float(cell)
    except ValueError:
        return None


def read_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    """The header and the complete, well-formed rows of a CSV whose first column is
    the step (0, 1, 2, ...), in order; reading stops at the first row that is not
    (see the module docstring). An empty file, or one whose header line is not
    complete, has no header: `([], [])`."""
    with Path(path).open(newline="") as file:  # line ends as written
        text = file.read()
    complete = text[: text.rfind("\n") + 1]  # what follows the last end of line
    if not complete:
        return [], []
    header, *body = csv.reader(io.StringIO(complete))
    rows = []
    for row in body:
        if len(row) != len(header) or any(_number(c) is None for c in row):
            break
        if row[0] != str(len(rows)):  # the step: 0, 1, 2, ... as written
            break
        rows.append(row)
    return header, rows


def csv_value(value) -> str:
    """A CSV cell: booleans as 0/1, integers as they are, floats to 9 digits
    (exact for float32)."""
    if isinstance(value, np.bool_ | bool):
        return str(int(value))
    if isinstance(value, np.integer | int):
        return str(value)
    return f"{value:.9g}"


def count_rows(path: Path) -> int:
    """The number of complete, well-formed rows of a CSV (see `read_rows`); 0 when
    the file is missing."""
    if not Path(path).exists():
        return 0
    return len(read_rows(path)[1])


def write_rows_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    """Replaces `path` by a CSV of `header` and `rows`, atomically."""
    text = io.StringIO(newline="")
    csv.writer(text).writerows([header, *rows])  # csv's line ends, as when appending
    write_text(path, text.getvalue())


class NotWritableError(Exception):
    """A results folder that cannot be created or written; the message is one line
    that names the folder and the reason."""


def _in_the_way(folder: Path) -> Path | None:
    """The first ancestor of `folder` (or itself) that exists but is not a folder."""
    for candidate in [*reversed(folder.parents), folder]:
        if candidate.exists() and not candidate.is_dir():
            return candidate
    return None


def check_writable(folder: Path) -> None:
    """Creates `folder` (and its parents) and writes and removes a file in it, so
    that a run finds out before any work that it cannot save its results.

    **Raises:** `NotWritableError` when the folder cannot be created (a file is in
    the way, no permission) or a file cannot be written in it (a read-only file
    system, no permission, a full disk). The test is a real write, so it holds
    for a user whose rights the permission bits do not describe (root).
    """
    folder = Path(folder)
    blocker = _in_the_way(folder)
    if blocker is not None:
        raise NotWritableError(
            f"cannot create the results folder {folder}: {blocker} is a file, "
            "not a folder"
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-"):
            pass
    except OSError as error:
        reason = error.strerror or str(error)
        where = f" ({error.filename})" if error.filename else ""
        raise NotWritableError(
            f"cannot write to the results folder {folder}: {reason}{where}"
        ) from None
