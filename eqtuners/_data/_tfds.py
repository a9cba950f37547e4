"""Reading a dataset prepared by tensorflow-datasets, without TensorFlow.

`tfds.data_source` gives random access to the ArrayRecord files that
`download_and_prepare(file_format="array_record")` writes; reading them needs only
tensorflow-datasets, `array_record` and Pillow (to decode the PNG-encoded images).
TensorFlow is needed only to *prepare* the files (download and encode), which is why
it is an optional extra: `pip install "eqtuners[prepare]"`.

Quiet when nothing is wrong: whether a dataset is prepared is decided from the files
(`DATA_DIR/name/VERSION/dataset_info.json`) before any builder is made, because
making a `tfds` builder for a dataset that is not prepared logs a warning about the
missing folder and leaves an empty `tmp*tfds` directory in the system's temporary
folder (`DatasetInfo.initialize_from_bucket` creates it even when Google Cloud
Storage is disabled). When a builder must be made for missing data (to prepare it,
or under `tfds.testing.mock_data`), the empty folders it creates are removed.
"""

import contextlib
import importlib.util
import os
import tempfile
from pathlib import Path

import numpy as np


def tfds_installed() -> bool:
    """Whether tensorflow-datasets can be imported (the `tfds` extra)."""
    return importlib.util.find_spec("tensorflow_datasets") is not None


def tensorflow_installed() -> bool:
    """Whether TensorFlow can be imported (needed to prepare, not to read)."""
    return importlib.util.find_spec("tensorflow") is not None


def tfds_dataset_dir(name: str, data_dir: Path) -> Path:
    """Where tensorflow-datasets keeps the prepared files of `name` under `data_dir`."""
    return data_dir / name


def _tfds_temporary_folders() -> set[str]:
    root = tempfile.gettempdir()
    try:
        names = os.listdir(root)
    except OSError:
        return set()
    return {os.path.join(root, n) for n in names if n.endswith("tfds")}


@contextlib.contextmanager
def _no_leftover_folders():
    """Removes the empty `tmp*tfds` folders that tensorflow-datasets creates inside
    the block (`os.rmdir` removes only empty folders, so no data are ever lost)."""
    before = _tfds_temporary_folders()
    try:
        yield
    finally:
        for folder in _tfds_temporary_folders() - before:
            with contextlib.suppress(OSError):
                os.rmdir(folder)


def _builder(name: str, data_dir: Path):
    import tensorflow_datasets as tfds

    with _no_leftover_folders():
        return tfds.builder(name, data_dir=str(data_dir))


def _version(name: str) -> str:
    import tensorflow_datasets as tfds

    return str(tfds.builder_cls(name).VERSION)


def is_prepared(name: str, data_dir: Path) -> bool:
    """Whether `name` is prepared under `data_dir` (False without the `tfds` extra).

    Looks at the files first and makes a builder only when
    `DATA_DIR/name/VERSION/dataset_info.json` exists, so a missing dataset costs no
    import of tensorflow-datasets, no warning and no temporary folder.
    """
    if not tfds_dataset_dir(name, data_dir).is_dir() or not tfds_installed():
        return False
    info = tfds_dataset_dir(name, data_dir) / _version(name) / "dataset_info.json"
    if not info.is_file():
        return False
    return bool(_builder(name, data_dir).is_prepared())


def prepare(name: str, data_dir: Path) -> None:
    """Downloads and prepares `name` as ArrayRecord files (needs TensorFlow)."""
    _builder(name, data_dir).download_and_prepare(file_format="array_record")


def read_split_arrays(
    name: str, data_dir: Path, splits=("train", "test")
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], str]:
    """Reads whole splits of a prepared image dataset into NumPy arrays.

    **Arguments:**

    - `name`: a tensorflow-datasets name with `image` and `label` features
      (`"cifar10"`, `"fashion_mnist"`).
    - `data_dir`: the directory that holds `name/<version>/`.
    - `splits`: the splits to read.

    **Returns:** `({split: (images, labels)}, source)` with uint8 images
    `(n, H, W, C)` and int64 labels, in the order the files store them, and a line
    that says what was read (dataset, version and folder).
    """
    builder = _builder(name, data_dir)
    # One index at a time: random access over ArrayRecord, and the only access that
    # tfds.testing.mock_data supports.
    sources = builder.as_data_source(split=list(splits))
    arrays = {}
    for split, source in zip(splits, sources):
        examples = [source[i] for i in range(len(source))]
        images = np.stack([np.asarray(e["image"], np.uint8) for e in examples])
        labels = np.asarray([int(e["label"]) for e in examples], np.int64)
        arrays[split] = (images, labels)
    source = f"tensorflow-datasets {name} {builder.version} in {builder.data_dir}"
    return arrays, source
