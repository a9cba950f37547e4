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
    fails (then the second line of the message says how)."""
    if not (download and _tfds.tfds_installed() and _tfds.tensorflow_installed()):
        raise DatasetNotFoundError(message)
    try:
        _tfds.prepare(tfds_name, data_dir)
    except Exception as error:  # no network, a failed checksum, a full disk, ...
        first, rest = message.split("\n", 1)
        raise DatasetNotFoundError(
            f"{first}\nPreparing {name} with tensorflow-datasets failed "
            f"({error!r}).\n{rest}"
        ) from error
    return _tfds.read_split_arrays(tfds_name, data_dir)


# The first step of every dataset's message: prepare it with tensorflow-datasets.
def tfds_step(tfds_name: str, data_dir: Path) -> str:
    return (
        "  1. With a network: pip install 'eqtuners[prepare]' (tensorflow-datasets\n"
        "     and TensorFlow; from a clone: pip install -e '.[prepare]'), then\n"
        f"       tfds build {tfds_name} --data_dir={data_dir} "
        "--file_format=array_record\n"
        "     or call the loader again with download=True.\n"
    )


def other_directory_step(number: int) -> str:
    return (
        f"  {number}. Or point the loader at another directory: data_dir=... or "
        f"${DATA_DIR_VARIABLE}."
    )


def missing_message(
    name: str, data_dir: Path, roots: list[Path], looked: list[str], steps: str
) -> str:
    """The message of a `DatasetNotFoundError`. Its first line says what is
    missing and where it was looked for (`roots`, the folders searched); below,
    one line per place looked in (`looked`), the data directory and how it was
    chosen, which optional packages are installed, and the `steps` to provide the
    data (a few short lines each)."""
    installed = (
        f"tensorflow-datasets is {'' if _tfds.tfds_installed() else 'NOT '}installed; "
        f"TensorFlow is {'' if _tfds.tensorflow_installed() else 'NOT '}installed."
    )
    folders = " and ".join(str(r) for r in roots)
    places = "\n".join(f"  - {p}" for p in looked)
    return (
        f"The {name} dataset is not on this machine: looked in {folders}.\n"
        f"Looked for:\n{places}\n"
        f"The data directory {data_dir} is the `data_dir` argument, else\n"
        f"  ${DATA_DIR_VARIABLE}, else $TFDS_DATA_DIR, else ~/tensorflow_datasets.\n"
        f"{installed}\n"
        f"To provide it, do one of:\n{steps}"
    )
