"""Reading a dataset prepared by tensorflow-datasets, without TensorFlow.

`tfds.data_source` gives random access to the ArrayRecord files that
`download_and_prepare(file_format="array_record")` writes; reading them needs only
tensorflow-datasets, `array_record` and Pillow (to decode the PNG-encoded images).
TensorFlow is needed only to *prepare* the files (download and encode), which is why
it is an optional extra: `pip install "eqtuners[prepare]"`.
"""

import importlib.util
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


def _builder(name: str, data_dir: Path):
    import tensorflow_datasets as tfds

    return tfds.builder(name, data_dir=str(data_dir))


def is_prepared(name: str, data_dir: Path) -> bool:
    """Whether `name` is prepared under `data_dir` (False without the `tfds` extra)."""
    if not tfds_installed():
        return False
    return bool(_builder(name, data_dir).is_prepared())


def prepare(name: str, data_dir: Path) -> None:
    """Downloads and prepares `name` as ArrayRecord files (needs TensorFlow)."""
    _builder(name, data_dir).download_and_prepare(file_format="array_record")


def read_split_arrays(
    name: str, data_dir: Path, splits=("train", "test")
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Reads whole splits of a prepared image dataset into NumPy arrays.

    **Arguments:**

    - `name`: a tensorflow-datasets name with `image` and `label` features
      (`"cifar10"`, `"fashion_mnist"`).
    - `data_dir`: the directory that holds `name/<version>/`.
    - `splits`: the splits to read.

    **Returns:** `{split: (images, labels)}` with uint8 images `(n, H, W, C)` and
    int64 labels, in the order the files store them.
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
    return arrays
