"""CIFAR10: 50,000 training and 10,000 test colour images of 32x32, 10 classes.

The loader looks, in order, for

1. the dataset prepared by **tensorflow-datasets** under `DATA_DIR/cifar10/` (read
   with `tfds.data_source`, without TensorFlow);
2. the **binary archive** `cifar-10-binary.tar.gz` (or its extracted folder
   `cifar-10-batches-bin/`) in `DATA_DIR` or in `DATA_DIR/downloads/manual/` (read
   directly, with nothing but NumPy);
3. if `download=True` and TensorFlow is installed, it **prepares** the dataset with
   tensorflow-datasets (downloading 163 MiB) and reads it as in 1.

Otherwise it raises `DatasetNotFoundError` at once, saying where it looked and how
to provide the data. `DATA_DIR` is the `data_dir` argument, else `$EQTUNERS_DATA_DIR`,
else `$TFDS_DATA_DIR`, else `~/tensorflow_datasets`.

A chosen data directory is honoured or refused, never replaced; the `Dataset`'s
`source` says which files were read.

The training split is put in a canonical order (sorted by image bytes, then label)
and then shuffled (or subset) with the seed, so a seed gives the same examples in
the same order whichever of the sources above the data came from (tensorflow-datasets
stores them in a hash order; the archive in the original order), and the order is
never the files' or sorted by content.
"""

import gzip
import os
import tarfile
import zlib
from pathlib import Path

import numpy as np

from . import _tfds
from ._dataset import Dataset
from ._locate import (
    missing_message,
    other_directory_step,
    prepare_with_tfds,
    resolve_data_dir,
    tfds_step,
)
from ._prepare import dataset_from_splits

ARCHIVE_NAME = "cifar-10-binary.tar.gz"
ARCHIVE_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
EXTRACTED_NAME = "cifar-10-batches-bin"
TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_FILES = ("test_batch.bin",)
_RECORD = 1 + 32 * 32 * 3
_AGAIN = f"it is damaged or incomplete: download {ARCHIVE_URL} again"
_ARCHIVE_ERRORS = (tarfile.TarError, EOFError, gzip.BadGzipFile, zlib.error)


def _parse_records(raw: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    if len(raw) % _RECORD:
        raise ValueError(
            f"{name} is not a CIFAR10 binary batch: its size {len(raw)} is not a "
            f"multiple of {_RECORD} bytes; {_AGAIN} (and extract it again)."
        )
    labels = np.frombuffer(raw, np.uint8)[::_RECORD]
    if labels.size and labels.max() > 9:
        raise ValueError(
            f"{name} is not a CIFAR10 binary batch: it holds the label "
            f"{labels.max()} (labels are 0 to 9); {_AGAIN} (and extract it again)."
        )
    records = np.frombuffer(raw, np.uint8).reshape(-1, _RECORD)
    images = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), records[:, 0].astype(np.int64)


def read_cifar10_binary(path: str | os.PathLike) -> dict[str, tuple]:
    """Reads CIFAR10's binary version: the archive or its extracted folder.

    Each record of `data_batch_{1..5}.bin` and `test_batch.bin` is one label byte
    and 3072 pixel bytes (1024 red, 1024 green, 1024 blue, rows of 32).

    **Arguments:**

    - `path`: `cifar-10-binary.tar.gz`, or the folder `cifar-10-batches-bin/` that
      it extracts to.

    **Returns:** `{"train": (images, labels), "test": (images, labels)}`, uint8
    images `(n, 32, 32, 3)` and int64 labels, in the files' order.

    **Raises:** `ValueError` naming the archive or batch file, and saying to
    download it again, when it is truncated, corrupt or incomplete;
    `FileNotFoundError` for a missing batch of the extracted folder.
    """
    path = Path(path)
    files = {}
    if path.is_dir():
        for name in TRAIN_FILES + TEST_FILES:
            files[name] = (path / name).read_bytes()
        where = {name: str(path / name) for name in files}
    else:
        try:
            with tarfile.open(path, "r:*") as archive:
                for member in archive.getmembers():
                    base = Path(member.name).name
                    if member.isfile() and base in TRAIN_FILES + TEST_FILES:
                        files[base] = archive.extractfile(member).read()
        except _ARCHIVE_ERRORS as error:
            raise ValueError(
                f"Cannot read the archive {path} ({error!r}); {_AGAIN}."
            ) from error
        missing = [n for n in TRAIN_FILES + TEST_FILES if n not in files]
        if missing:
            raise ValueError(
                f"{path} does not hold the CIFAR10 batches {missing}; {_AGAIN}."
            )
        where = {name: f"{name} in {path}" for name in files}
    splits = {}
    for split, names in (("train", TRAIN_FILES), ("test", TEST_FILES)):
        parts = [_parse_records(files[n], where[n]) for n in names]
        splits[split] = tuple(np.concatenate(a) for a in zip(*parts))
    return splits


def archive_candidates(data_dir: Path) -> list[Path]:
    """Where `load_cifar10` looks for the archive or its extracted folder."""
    places = (data_dir, data_dir / "downloads" / "manual")
    return [p / name for p in places for name in (ARCHIVE_NAME, EXTRACTED_NAME)]


def _cifar_steps(data_dir: Path) -> str:
    manual = data_dir / "downloads" / "manual"
    return (
        tfds_step("cifar10", data_dir)
        + "  2. Offline: on a machine with a network, download (163 MiB)\n"
        f"       {ARCHIVE_URL}\n"
        "     (sha256 c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd)"
        "\n     and copy it to\n"
        f"       {manual / ARCHIVE_NAME}\n"
        "     (or to the data directory itself); eqtuners reads it as it is, without\n"
        "     TensorFlow.\n" + other_directory_step(3)
    )


def _read_cifar10(data_dir: Path, download: bool) -> tuple[dict[str, tuple], str]:
    if _tfds.is_prepared("cifar10", data_dir):
        return _tfds.read_split_arrays("cifar10", data_dir)
    for candidate in archive_candidates(data_dir):
        if candidate.exists():
            kind = "folder" if candidate.is_dir() else "archive"
            return read_cifar10_binary(candidate), f"CIFAR10 binary {kind} {candidate}"
    looked = [
        f"{_tfds.tfds_dataset_dir('cifar10', data_dir)} (prepared by "
        "tensorflow-datasets)",
        *(str(c) for c in archive_candidates(data_dir)),
    ]
    message = missing_message(
        "CIFAR10", data_dir, [data_dir], looked, _cifar_steps(data_dir)
    )
    return prepare_with_tfds("cifar10", "CIFAR10", data_dir, message, download)


def load_cifar10(
    *,
    data_dir: str | os.PathLike | None = None,
    subset: int | None = None,
    seed: int = 0,
    download: bool = True,
    pad_to: int | None = None,
) -> Dataset:
    """CIFAR10, scaled to [0, 1] and standardised per channel.

    See the module docstring for where the files are looked for, and
    `eqtuners._data._prepare` for the preprocessing: pixels scaled to [0, 1], the
    training split in a random order fixed by `seed` or a class-balanced subset
    (the paper's deterministic regime uses `subset=4096`), per-channel
    standardisation with the statistics of the whole training split, optional
    padding.
    The whole training split (50,000 x 32 x 32 x 3 float32, 614 MB) goes on the
    device; mini-batches are drawn from it inside the compiled loop.

    **Arguments:**

    - `data_dir`: the data directory (default: `$EQTUNERS_DATA_DIR`, else
      `$TFDS_DATA_DIR`, else `~/tensorflow_datasets`).
    - `subset`: `None` for all 50,000 training images, or the size of a
      class-balanced subset fixed by `seed`.
    - `seed`: fixes the order of the training split and the subset.
    - `download`: when the data are missing, prepare them with tensorflow-datasets
      (needs TensorFlow and a network); when that is impossible the loader fails at
      once with `DatasetNotFoundError`.
    - `pad_to`: `None`, or the height and width to pad the images to, with the
      pixel value 0 on every side.

    **Returns:** a `Dataset` named `"cifar10"` with images `(n, 32, 32, 3)` (or
    `(n, pad_to, pad_to, 3)`) and `source` naming the files read.

    **Raises:** `DatasetNotFoundError` (a `FileNotFoundError`) with the places looked
    in and the steps to provide the data; `ValueError` naming a damaged archive or
    batch (and saying to download it again), or a bad `subset`, `seed` or `pad_to`.
    """
    directory, _ = resolve_data_dir(data_dir)  # CIFAR10 has no system-wide folder
    splits, source = _read_cifar10(directory, download)
    return dataset_from_splits(
        splits, name="cifar10", source=source, subset=subset, seed=seed, pad_to=pad_to
    )
