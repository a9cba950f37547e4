"""Where the datasets live on disk, and the error raised when they are not there."""

import os
from pathlib import Path

from . import _tfds

DATA_DIR_VARIABLE = "EQTUNERS_DATA_DIR"


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are not on this machine and could not be downloaded.

    The message says every place that was searched and the exact steps to provide the
    data, online and offline.
    """


def resolve_data_dir(data_dir: str | os.PathLike | None) -> tuple[Path, bool]:
    """The data directory: `data_dir` if given, else the environment variable
    `EQTUNERS_DATA_DIR`, else `TFDS_DATA_DIR` (tensorflow-datasets' own), else
    `~/tensorflow_datasets` (tensorflow-datasets' default).

    **Returns:** `(directory, chosen)`, where `chosen` says whether the directory was
    named (by the argument or one of the two variables). A chosen directory is
    honoured or refused, never replaced: the loaders' system-wide fallbacks (such as
    `/usr/share/datasets/fashion-mnist`) are searched only when it is not chosen.
    """
    chosen = True
    if data_dir is None:
        data_dir = os.environ.get(DATA_DIR_VARIABLE) or os.environ.get("TFDS_DATA_DIR")
        if not data_dir:
            data_dir, chosen = "~/tensorflow_datasets", False
    return Path(data_dir).expanduser(), chosen


def prepare_with_tfds(
    tfds_name: str, name: str, data_dir: Path, message: str, download: bool
) -> tuple[dict[str, tuple], str]:
    """Prepares a missing dataset with tensorflow-datasets and reads it (as
    `_tfds.read_split_arrays`: the splits and a line naming what was read), or
    raises `DatasetNotFoundError` with `message` when that is not allowed
    (`download` false), not possible (tensorflow-datasets or TensorFlow missing) or
    fails."""
    if not (download and _tfds.tfds_installed() and _tfds.tensorflow_installed()):
        raise DatasetNotFoundError(message)
    try:
        _tfds.prepare(tfds_name, data_dir)
    except Exception as error:  # no network, a failed checksum, a full disk, ...
        raise DatasetNotFoundError(
            f"Preparing {name} with tensorflow-datasets failed ({error!r}).\n\n"
            + message
        ) from error
    return _tfds.read_split_arrays(tfds_name, data_dir)


def missing_message(name: str, data_dir: Path, looked, steps: str) -> str:
    """The message of a `DatasetNotFoundError`: the places looked in, the data
    directory and how it was chosen, which optional packages are installed, and the
    steps to provide the data."""
    installed = (
        f"tensorflow-datasets is {'' if _tfds.tfds_installed() else 'NOT '}installed; "
        f"TensorFlow is {'' if _tfds.tensorflow_installed() else 'NOT '}installed."
    )
    places = "\n".join(f"  - {p}" for p in looked)
    return (
        f"The {name} dataset is not on this machine. Looked in:\n{places}\n"
        f"(data directory {data_dir}: the `data_dir` argument, else "
        f"${DATA_DIR_VARIABLE}, else $TFDS_DATA_DIR, else ~/tensorflow_datasets; "
        f"{installed})\n\nTo provide it, do one of:\n{steps}"
    )
