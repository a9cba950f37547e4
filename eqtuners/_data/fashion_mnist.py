"""Fashion-MNIST: 60,000 training and 10,000 test grey images of 28x28, 10 classes.

The second real dataset, at the scale of the stochastic regime (as many training
images as CIFAR10 has, and more). The loader looks, in order, for

1. the dataset prepared by **tensorflow-datasets** under `DATA_DIR/fashion_mnist/`
   (read with `tfds.data_source`, without TensorFlow);
2. the four standard **IDX files** (`train-images-idx3-ubyte.gz`,
   `train-labels-idx1-ubyte.gz`, `t10k-images-idx3-ubyte.gz`,
   `t10k-labels-idx1-ubyte.gz`, gzipped or not) in `idx_dir` if given (and then
   nowhere else), else in `DATA_DIR`, `DATA_DIR/fashion_mnist/`,
   `DATA_DIR/downloads/manual/`, and, only when no data directory was chosen (no
   `data_dir`, `$EQTUNERS_DATA_DIR` or `$TFDS_DATA_DIR`),
   `/usr/share/datasets/fashion-mnist/`, where the Debian package
   `dataset-fashion-mnist` installs them (so `apt-get install
   dataset-fashion-mnist` is enough on a machine without pip access to the data);
3. if `download=True` and TensorFlow is installed, it prepares the dataset with
   tensorflow-datasets (a 30 MiB download) and reads it as in 1.

Otherwise it raises `DatasetNotFoundError` at once, saying where it looked and how to
provide the data. A directory that was chosen is honoured or refused, never replaced
by another that happens to hold the data; the `Dataset`'s `source` says which files
were read. Preprocessing, order, subset and padding are those of CIFAR10
(`eqtuners._data._prepare`); images are `(28, 28, 1)`, or `(32, 32, 1)` with
`pad_to=32` (for VGG11 and ResNet34).
"""

import os
from pathlib import Path

import numpy as np

from . import _tfds
from ._dataset import Dataset
from ._locate import (
    DATA_DIR_VARIABLE,
    missing_message,
    other_directory_step,
    prepare_with_tfds,
    resolve_data_dir,
    tfds_step,
)
from ._prepare import dataset_from_splits
from .idx import read_idx

IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
SYSTEM_IDX_DIRS = (Path("/usr/share/datasets/fashion-mnist"),)
IDX_URL = "https://github.com/zalandoresearch/fashion-mnist (data/fashion/)"


def _idx_path(directory: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (directory / name).is_file():
            return directory / name
    return None


def has_idx_files(directory: str | os.PathLike) -> bool:
    """Whether `directory` holds the four Fashion-MNIST IDX files."""
    directory = Path(directory)
    stems = [s for pair in IDX_FILES.values() for s in pair]
    return all(_idx_path(directory, s) is not None for s in stems)


def idx_paths(directory: str | os.PathLike) -> dict[str, list[Path]]:
    """The IDX files of `directory`, `{split: [images file, labels file]}`.

    **Raises:** `FileNotFoundError` naming a missing file.
    """
    directory = Path(directory)
    paths = {}
    for split, stems in IDX_FILES.items():
        paths[split] = [_idx_path(directory, s) for s in stems]
        for stem, path in zip(stems, paths[split]):
            if path is None:
                raise FileNotFoundError(f"No {stem}(.gz) in {directory}.")
    return paths


def read_fashion_mnist_idx(directory: str | os.PathLike) -> dict[str, tuple]:
    """Reads the four Fashion-MNIST IDX files of `directory` (gzipped or not).

    **Returns:** `{"train": (images, labels), "test": (images, labels)}` with uint8
    images `(n, 28, 28, 1)` and int64 labels.

    **Raises:** `FileNotFoundError` naming a missing file; `ValueError` naming the
    file and saying to download it again when a file is truncated, corrupt or not
    IDX, or when images and labels disagree.
    """
    splits = {}
    for split, paths in idx_paths(directory).items():
        images, labels = read_idx(paths[0]), read_idx(paths[1])
        if images.ndim != 3 or labels.shape != (images.shape[0],):
            raise ValueError(
                f"{paths[0]} and {paths[1]} must hold n images (n, rows, columns) "
                f"and n labels, got shapes {images.shape} and {labels.shape}; "
                "one of them is damaged or incomplete: download them again."
            )
        splits[split] = (images[..., None].astype(np.uint8), labels.astype(np.int64))
    return splits


def idx_candidates(data_dir: Path, idx_dir, chosen: bool = False) -> list[Path]:
    """The folders where `load_fashion_mnist` looks for the IDX files: `idx_dir`
    alone if given, else under `data_dir`, and the system folders only when the data
    directory was not `chosen` (see `resolve_data_dir`)."""
    if idx_dir is not None:
        return [Path(idx_dir).expanduser()]
    return [
        data_dir,
        data_dir / "fashion_mnist",
        data_dir / "downloads" / "manual",
        *(() if chosen else SYSTEM_IDX_DIRS),
    ]


def _steps(data_dir: Path) -> str:
    files = [s + ".gz" for pair in IDX_FILES.values() for s in pair]
    return (
        tfds_step("fashion_mnist", data_dir)
        + "  2. Offline, on Debian or Ubuntu: apt-get install dataset-fashion-mnist\n"
        "     (installs the IDX files in /usr/share/datasets/fashion-mnist/, found "
        "there).\n"
        "  3. Offline, by hand: copy the four files\n"
        f"       {', '.join(files[:2])},\n"
        f"       {files[2]} and {files[3]}\n"
        f"     ({IDX_URL}) into\n"
        f"       {data_dir / 'fashion_mnist'}\n"
        "     or any folder passed as idx_dir=...; no TensorFlow needed.\n"
        + other_directory_step(4)
    )


def _not_searched(chosen: bool, idx_dir) -> str:
    """What the missing-data message adds when a choice kept the loader from the
    system folders."""
    if idx_dir is not None:
        return (
            f"\nOnly idx_dir={idx_dir} was searched, as asked; other folders (the "
            "data directory,\n/usr/share/datasets/fashion-mnist) are searched only "
            "without idx_dir."
        )
    if chosen and SYSTEM_IDX_DIRS:
        folders = ", ".join(str(d) for d in SYSTEM_IDX_DIRS)
        return (
            f"\n{folders} was not searched because a data directory was chosen\n"
            f"(data_dir, ${DATA_DIR_VARIABLE} or $TFDS_DATA_DIR); a chosen "
            "directory is never replaced\nby another. To read the system's files, "
            f"pass idx_dir={SYSTEM_IDX_DIRS[0]}."
        )
    return ""


def _read_fashion_mnist(
    data_dir: Path, chosen: bool, idx_dir, download: bool
) -> tuple[dict, str]:
    if idx_dir is None and _tfds.is_prepared("fashion_mnist", data_dir):
        return _tfds.read_split_arrays("fashion_mnist", data_dir)
    candidates = idx_candidates(data_dir, idx_dir, chosen)
    for candidate in candidates:
        if has_idx_files(candidate):
            paths = idx_paths(candidate)
            source = "IDX files " + ", ".join(
                str(p) for pair in paths.values() for p in pair
            )
            return read_fashion_mnist_idx(candidate), source
    tfds_dir = _tfds.tfds_dataset_dir("fashion_mnist", data_dir)
    looked = ([] if idx_dir else [f"{tfds_dir} (prepared by tensorflow-datasets)"]) + [
        f"{c / 'train-images-idx3-ubyte.gz'} (and the 3 other IDX files)"
        for c in candidates
    ]
    roots = [c for c in candidates if not c.is_relative_to(data_dir)]
    roots = roots if idx_dir else [data_dir, *roots]
    message = missing_message(
        "Fashion-MNIST", data_dir, roots, looked, _steps(data_dir)
    ) + _not_searched(chosen, idx_dir)
    download = download and idx_dir is None  # a named folder is read, never filled
    return prepare_with_tfds(
        "fashion_mnist", "Fashion-MNIST", data_dir, message, download
    )


def load_fashion_mnist(
    *,
    data_dir: str | os.PathLike | None = None,
    idx_dir: str | os.PathLike | None = None,
    subset: int | None = None,
    seed: int = 0,
    download: bool = True,
    pad_to: int | None = None,
) -> Dataset:
    """Fashion-MNIST, scaled to [0, 1] and standardised (one channel).

    **Arguments:**

    - `data_dir`: the data directory (default: `$EQTUNERS_DATA_DIR`, else
      `$TFDS_DATA_DIR`, else `~/tensorflow_datasets`, and then also
      `/usr/share/datasets/fashion-mnist/`). A directory given here or by either
      variable is the only one searched.
    - `idx_dir`: a folder holding the four IDX files; when given, only that folder
      is read (give `data_dir` or `idx_dir`, not both).
    - `subset`: `None` for all 60,000 training images, or the size of a
      class-balanced subset fixed by `seed`.
    - `seed`: fixes the order of the training split and the subset.
    - `download`: when the data are missing, prepare them with tensorflow-datasets
      (needs TensorFlow and a network); when that is impossible the loader fails at
      once with `DatasetNotFoundError`.
    - `pad_to`: `None`, or the height and width to pad the images to (32 for VGG11
      and ResNet34), with the black background on every side; the standardisation
      uses the statistics of the unpadded images (`eqtuners._data._prepare`).

    **Returns:** a `Dataset` named `"fashion_mnist"` with images `(n, 28, 28, 1)`
    (or `(n, pad_to, pad_to, 1)`), the training split in a random order fixed by
    `seed`, and `source` naming the files read.

    **Raises:** `DatasetNotFoundError` (a `FileNotFoundError`) with the places looked
    in and the steps to provide the data; `ValueError` naming a damaged file (and
    saying to download it again), or a bad `subset`, `seed` or `pad_to`, or both
    `data_dir` and `idx_dir`.
    """
    if data_dir is not None and idx_dir is not None:
        raise ValueError(
            "Give `data_dir` or `idx_dir`, not both: with `idx_dir` only that folder "
            "is read, and `data_dir` would be ignored."
        )
    directory, chosen = resolve_data_dir(data_dir)
    splits, source = _read_fashion_mnist(directory, chosen, idx_dir, download)
    return dataset_from_splits(
        splits,
        name="fashion_mnist",
        source=source,
        subset=subset,
        seed=seed,
        pad_to=pad_to,
    )
