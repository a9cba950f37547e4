"""The image datasets: IDX and CIFAR10-binary readers, the tensorflow-datasets path
(under `tfds.testing.mock_data`, and on real ArrayRecord files written by
tensorflow-datasets' own writer), preprocessing, order, subsets, padding, the
options every loader takes, damaged files, the missing-data error, chosen
directories, quiet loads, and mini-batch sampling without replacement."""

import io
import logging
import os
import tarfile
import tempfile
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import eqtuners as et
from eqtuners._data import _tfds, fashion_mnist

from .helpers import fake_images, write_fashion_idx, write_idx

# ---------------------------------------------------------------------------------
# Files the tests write themselves (and `helpers.write_fashion_idx`).


def cifar_batch_bytes(images, labels):
    """CIFAR10's binary records: a label byte, then the red, green, blue planes."""
    planes = images.transpose(0, 3, 1, 2).reshape(len(labels), -1)
    return np.concatenate([labels[:, None].astype(np.uint8), planes], 1).tobytes()


def write_cifar_archive(path, rng, per_batch=6, n_test=10, sorted_by_class=False):
    train = fake_images(
        rng, 5 * per_batch, (32, 32, 3), sorted_by_class=sorted_by_class
    )
    test = fake_images(rng, n_test, (32, 32, 3))
    files = {
        f"data_batch_{i + 1}.bin": cifar_batch_bytes(
            train[0][i * per_batch : (i + 1) * per_batch],
            train[1][i * per_batch : (i + 1) * per_batch],
        )
        for i in range(5)
    }
    files["test_batch.bin"] = cifar_batch_bytes(*test)
    files["batches.meta.txt"] = b"airplane\nautomobile\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return train, test


def check_prepared(data, *, n_train, n_test, shape, standardised=True):
    assert data.train_x.shape == (n_train, *shape)
    assert data.test_x.shape == (n_test, *shape)
    assert data.train_x.dtype == jnp.float32 and data.test_x.dtype == jnp.float32
    assert data.train_y.dtype == jnp.int32 and data.test_y.dtype == jnp.int32
    assert data.num_classes == 10
    assert int(data.train_y.min()) >= 0 and int(data.train_y.max()) < 10
    if standardised:  # per channel, with the training split's statistics
        axes = tuple(range(data.train_x.ndim - 1))
        np.testing.assert_allclose(data.train_x.mean(axes), 0.0, atol=1e-5)
        np.testing.assert_allclose(data.train_x.std(axes), 1.0, atol=1e-4)


# ---------------------------------------------------------------------------------
# IDX reader.


@pytest.mark.parametrize("gz", [True, False])
def test_idx_reader_round_trips_tiny_files(tmp_path, gz):
    rng = np.random.default_rng(0)
    array = rng.integers(0, 256, (3, 5, 4), dtype=np.uint8)
    path = tmp_path / ("x.idx.gz" if gz else "x.idx")
    write_idx(path, array)
    out = et.read_idx(path)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, array)
    labels = np.array([3, 1, 4], np.uint8)
    write_idx(tmp_path / "y.idx", labels)
    np.testing.assert_array_equal(et.read_idx(tmp_path / "y.idx"), labels)


def test_idx_reader_rejects_bad_files(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x08\x01\x00\x00\x00\x02ab")
    with pytest.raises(ValueError, match="not an IDX file"):
        et.read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x05ab")
    with pytest.raises(ValueError, match="should hold 5 bytes"):
        et.read_idx(tmp_path / "short")


# ---------------------------------------------------------------------------------
# Fashion-MNIST offline, from IDX files.


def test_fashion_mnist_from_idx_files(tmp_path):
    rng = np.random.default_rng(1)
    (train_x, train_y), (test_x, test_y) = write_fashion_idx(tmp_path / "fm", rng)
    raw = et.read_fashion_mnist_idx(tmp_path / "fm")
    np.testing.assert_array_equal(raw["train"][0][..., 0], train_x)
    np.testing.assert_array_equal(raw["test"][1], test_y)

    data = et.load_fashion_mnist(idx_dir=tmp_path / "fm")
    check_prepared(data, n_train=40, n_test=10, shape=(28, 28, 1))
    # Scaled to [0, 1] then standardised with the training split's statistics.
    pixels = train_x / 255.0
    expected = (test_x / 255.0 - pixels.mean()) / pixels.std()
    np.testing.assert_allclose(data.test_x[..., 0], expected, atol=1e-5)
    np.testing.assert_array_equal(np.sort(data.train_y), np.sort(train_y))

    # Found without idx_dir in DATA_DIR/fashion_mnist, uncompressed files too.
    write_fashion_idx(tmp_path / "root" / "fashion_mnist", rng, gz=False)
    data = et.load_fashion_mnist(data_dir=tmp_path / "root", download=False)
    check_prepared(data, n_train=40, n_test=10, shape=(28, 28, 1))


def test_subset_is_class_balanced_deterministic_and_standardised_on_the_full_split(
    tmp_path,
):
    write_fashion_idx(tmp_path, np.random.default_rng(2), n_train=60)
    full = et.load_fashion_mnist(idx_dir=tmp_path)
    a = et.load_fashion_mnist(idx_dir=tmp_path, subset=23, seed=5)
    b = et.load_fashion_mnist(idx_dir=tmp_path, subset=23, seed=5)
    c = et.load_fashion_mnist(idx_dir=tmp_path, subset=23, seed=6)
    check_prepared(a, n_train=23, n_test=10, shape=(28, 28, 1), standardised=False)
    np.testing.assert_array_equal(a.train_x, b.train_x)
    np.testing.assert_array_equal(a.train_y, b.train_y)
    assert not np.array_equal(a.train_x, c.train_x)
    # 23 on 10 classes: classes 0-2 give 3 examples, the others 2.
    np.testing.assert_array_equal(
        np.bincount(a.train_y, minlength=10), [3] * 3 + [2] * 7
    )
    # The subset's images are the full split's, standardised the same way.
    full_rows = {r.tobytes() for r in np.asarray(full.train_x)}
    assert all(r.tobytes() in full_rows for r in np.asarray(a.train_x))
    with pytest.raises(ValueError, match="subset"):
        et.load_fashion_mnist(idx_dir=tmp_path, subset=61)


def test_balanced_subset_reports_a_short_class():
    from eqtuners._data import balanced_subset

    labels = np.array([0] * 5 + [1] * 1)
    with pytest.raises(ValueError, match="class 1"):
        balanced_subset(labels, 4, num_classes=2, seed=0)


# ---------------------------------------------------------------------------------
# CIFAR10 offline, from the binary archive.


def test_cifar10_from_the_binary_archive_and_its_folder(tmp_path):
    rng = np.random.default_rng(3)
    archive = tmp_path / "downloads" / "manual" / "cifar-10-binary.tar.gz"
    (train_x, train_y), (test_x, test_y) = write_cifar_archive(archive, rng)
    raw = et.read_cifar10_binary(archive)
    np.testing.assert_array_equal(raw["train"][0], train_x)
    np.testing.assert_array_equal(raw["train"][1], train_y)
    np.testing.assert_array_equal(raw["test"][0], test_x)

    data = et.load_cifar10(data_dir=tmp_path, download=False)
    check_prepared(data, n_train=30, n_test=10, shape=(32, 32, 3))
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path / "other", filter="data")
    again = et.load_cifar10(data_dir=tmp_path / "other", download=False)
    np.testing.assert_array_equal(again.train_x, data.train_x)  # same canonical order


# ---------------------------------------------------------------------------------
# Missing data: a clear, immediate error.


def test_missing_data_fails_at_once_with_the_places_and_steps(tmp_path, monkeypatch):
    monkeypatch.setattr(fashion_mnist, "SYSTEM_IDX_DIRS", ())
    for download in (True, False):  # TensorFlow is not installed: no attempt
        start = time.perf_counter()
        with pytest.raises(et.DatasetNotFoundError) as info:
            et.load_cifar10(data_dir=tmp_path, download=download)
        assert time.perf_counter() - start < 10
    assert isinstance(info.value, FileNotFoundError)
    message = str(info.value)
    first, *below = message.splitlines()
    # The first line: what is missing and where it looked.
    assert first == f"The CIFAR10 dataset is not on this machine: looked in {tmp_path}."
    # Every place looked in, one per line.
    for place in [
        tmp_path / "cifar10",
        *(tmp_path / n for n in ("cifar-10-binary.tar.gz", "cifar-10-batches-bin")),
        tmp_path / "downloads" / "manual" / "cifar-10-binary.tar.gz",
        tmp_path / "downloads" / "manual" / "cifar-10-batches-bin",
    ]:
        assert any(line.startswith(f"  - {place}") for line in below), place
    # The steps, online and offline, with every fact exact.
    assert f"tfds build cifar10 --data_dir={tmp_path} --file_format=array_record" in (
        message
    )
    assert "pip install 'eqtuners[prepare]'" in message
    assert "pip install -e '.[prepare]'" in message  # from a clone
    assert "download=True" in message
    assert "       https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz" in below
    assert "163 MiB" in message
    assert "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd" in message
    manual = tmp_path / "downloads" / "manual" / "cifar-10-binary.tar.gz"
    assert f"       {manual}" in below
    assert "(or to the data directory itself)" in message
    assert "$EQTUNERS_DATA_DIR" in message and "$TFDS_DATA_DIR" in message
    assert "~/tensorflow_datasets" in message
    assert "tensorflow-datasets is " in message and "; TensorFlow is " in message
    assert_short_lines(message, tmp_path)

    with pytest.raises(et.DatasetNotFoundError) as info:
        et.load_fashion_mnist(data_dir=tmp_path)
    message = str(info.value)
    assert message.splitlines()[0] == (
        f"The Fashion-MNIST dataset is not on this machine: looked in {tmp_path}."
    )
    assert "apt-get install dataset-fashion-mnist" in message
    assert "/usr/share/datasets/fashion-mnist/" in message
    assert f"tfds build fashion_mnist --data_dir={tmp_path}" in message
    assert f"       {tmp_path / 'fashion_mnist'}" in message.splitlines()
    assert "https://github.com/zalandoresearch/fashion-mnist (data/fashion/)" in message
    assert_short_lines(message, tmp_path)
    with pytest.raises(et.DatasetNotFoundError) as info:
        et.load_fashion_mnist(idx_dir=tmp_path / "nowhere")
    message = str(info.value)
    assert message.splitlines()[0].endswith(f"looked in {tmp_path / 'nowhere'}.")
    for name in (
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ):
        assert name in message
    assert f"Only idx_dir={tmp_path / 'nowhere'} was searched" in message


def assert_short_lines(message, *paths):
    """A few short lines: at most 88 characters once the paths are taken out (a
    command or a path is not broken across lines)."""
    lines = message.splitlines()
    assert len(lines) <= 30
    for line in lines:
        for path in paths:
            line = line.replace(str(path), "DIR")
        assert len(line) <= 88, line


def test_the_first_line_names_the_system_folder_when_it_was_searched(
    tmp_path, monkeypatch, no_default_data_dir
):
    system = tmp_path / "system" / "fashion-mnist"
    monkeypatch.setattr(fashion_mnist, "SYSTEM_IDX_DIRS", (system,))
    with pytest.raises(et.DatasetNotFoundError) as info:
        et.load_fashion_mnist(download=False)
    data_dir = tmp_path / "home" / "tensorflow_datasets"
    assert str(info.value).splitlines()[0] == (
        "The Fashion-MNIST dataset is not on this machine: looked in "
        f"{data_dir} and {system}."
    )


def test_a_failed_preparation_says_why_below_the_first_line(tmp_path, monkeypatch):
    monkeypatch.setattr(_tfds, "tfds_installed", lambda: True)
    monkeypatch.setattr(_tfds, "tensorflow_installed", lambda: True)

    def no_network(name, data_dir):
        raise OSError("no network")

    monkeypatch.setattr(_tfds, "prepare", no_network)
    with pytest.raises(et.DatasetNotFoundError) as info:
        et.load_cifar10(data_dir=tmp_path, download=True)
    first, second, *_ = str(info.value).splitlines()
    assert first == f"The CIFAR10 dataset is not on this machine: looked in {tmp_path}."
    assert second == (
        "Preparing CIFAR10 with tensorflow-datasets failed (OSError('no network'))."
    )
    assert "tfds build cifar10" in str(info.value)
    assert isinstance(info.value.__cause__, OSError)


def test_data_directory_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("EQTUNERS_DATA_DIR", str(tmp_path / "eq"))
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    with pytest.raises(et.DatasetNotFoundError, match=str(tmp_path / "eq")):
        et.load_dataset("cifar10", download=False)
    monkeypatch.delenv("EQTUNERS_DATA_DIR")
    with pytest.raises(et.DatasetNotFoundError, match=str(tmp_path / "tfds")):
        et.load_dataset("cifar10", download=False)


# ---------------------------------------------------------------------------------
# tensorflow-datasets: mocked, and on real ArrayRecord files.


@pytest.fixture
def pretend_tensorflow(monkeypatch):
    """Lets the loader call tfds' (mocked) download_and_prepare without TensorFlow:
    under `mock_data` it does nothing and `as_data_source` serves random examples."""
    monkeypatch.setattr(_tfds, "tensorflow_installed", lambda: True)
    monkeypatch.setattr(fashion_mnist, "SYSTEM_IDX_DIRS", ())


@pytest.mark.parametrize(
    "name, shape", [("cifar10", (32, 32, 3)), ("fashion_mnist", (28, 28, 1))]
)
def test_tfds_loaders_under_mock_data(tmp_path, pretend_tensorflow, name, shape):
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(
        num_examples=60, policy=tfds.testing.MockPolicy.USE_CODE
    ):
        data = et.load_dataset(name, data_dir=tmp_path)
        sub = et.load_dataset(name, data_dir=tmp_path, subset=20, seed=1)
        again = et.load_dataset(name, data_dir=tmp_path, subset=20, seed=1)
    check_prepared(data, n_train=60, n_test=60, shape=shape)
    assert data.name == name
    assert sub.train_x.shape == (20, *shape)
    np.testing.assert_array_equal(np.bincount(sub.train_y, minlength=10), [2] * 10)
    np.testing.assert_array_equal(sub.train_x, again.train_x)
    full_rows = {r.tobytes() for r in np.asarray(data.train_x)}
    assert all(r.tobytes() in full_rows for r in np.asarray(sub.train_x))


def test_cifar10_reads_real_array_record_files_without_tensorflow(tmp_path):
    """tensorflow-datasets' own builder and writer prepare a tiny CIFAR10 (the
    download and TensorFlow's PNG encoder are replaced by a generator of PIL-encoded
    images), then the loader reads it through `tfds.data_source`: the real
    ArrayRecord files, `dataset_info.json`, and PNG decoding."""
    tfds = pytest.importorskip("tensorflow_datasets")
    pytest.importorskip("array_record")
    pytest.importorskip("importlib_resources")
    PIL = pytest.importorskip("PIL.Image")
    from tensorflow_datasets.image_classification import cifar

    rng = np.random.default_rng(4)
    splits = {
        "train": fake_images(rng, 30, (32, 32, 3)),
        "test": fake_images(rng, 10, (32, 32, 3)),
    }

    def png(image):
        buffer = io.BytesIO()
        PIL.fromarray(image).save(buffer, format="PNG")
        return buffer.getvalue()

    def generate(self, split):
        for i, (image, label) in enumerate(zip(*splits[split])):
            yield (
                i,
                {"id": f"{split}_{i:05d}", "image": png(image), "label": int(label)},
            )

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            cifar.Cifar10,
            "_split_generators",
            lambda self, dl_manager: {s: generate(self, s) for s in splits},
        )
        tfds.builder("cifar10", data_dir=str(tmp_path)).download_and_prepare(
            file_format="array_record"
        )
    assert _tfds.is_prepared("cifar10", tmp_path)
    data = et.load_cifar10(data_dir=tmp_path, download=False)
    check_prepared(data, n_train=30, n_test=10, shape=(32, 32, 3))
    pixels = splits["train"][0] / 255.0
    mean, std = pixels.mean((0, 1, 2)), pixels.std((0, 1, 2))
    expected = np.sort(((pixels - mean) / std).reshape(30, -1).astype(np.float32), 0)
    np.testing.assert_allclose(
        np.sort(np.asarray(data.train_x).reshape(30, -1), 0), expected, atol=1e-5
    )
    np.testing.assert_array_equal(np.sort(data.test_y), np.sort(splits["test"][1]))


# ---------------------------------------------------------------------------------
# Synthetic CIFAR-shaped data.


def test_synthetic_cifar10_any_size_from_a_seed():
    a = et.load_synthetic_cifar10(num_train=50, num_test=20, seed=3)
    b = et.load_dataset("synthetic_cifar10", num_train=50, num_test=20, seed=3)
    c = et.load_synthetic_cifar10(num_train=50, num_test=20, seed=4)
    check_prepared(a, n_train=50, n_test=20, shape=(32, 32, 3))
    np.testing.assert_array_equal(a.train_x, b.train_x)
    assert not np.array_equal(a.train_x, c.train_x)
    np.testing.assert_array_equal(np.bincount(a.train_y), [5] * 10)
    small = et.load_synthetic_cifar10(num_train=12, num_test=4, image_shape=(8, 8, 1))
    assert small.train_x.shape == (12, 8, 8, 1)
    with pytest.raises(ValueError, match="num_train"):
        et.load_synthetic_cifar10(num_train=0)


# ---------------------------------------------------------------------------------
# Mini-batches: without replacement within an epoch.


def test_minibatches_are_drawn_without_replacement_within_an_epoch():
    """Example i has loss (1 + 4^i) / 2, exact in float32 (weight decay 0, a model
    that returns its input), so a batch's mean loss spells out which examples it
    holds."""
    import equinox as eqx

    class Identity(eqx.Module):
        w: jax.Array

        def __call__(self, x):
            return x + 0.0 * self.w

    n, batch = 12, 4
    x = np.zeros((n, 2), np.float32)
    x[:, 1] = 2.0 ** np.arange(n)
    y = np.zeros(n, np.int32)
    result = et.train(
        Identity(jnp.zeros(2)),
        et.Constant(0.1),
        (jnp.asarray(x), jnp.asarray(y)),
        3 * (n // batch),
        key=jax.random.key(0),
        batch_size=batch,
        measure=None,
        weight_decay=0.0,
        steps_per_call=3 * (n // batch),
    )
    codes = np.rint(2 * batch * result.history["loss"] - batch).astype(np.int64)
    batches = [{i for i in range(n) if code >> (2 * i) & 1} for code in codes]
    assert all(len(b) == batch for b in batches)
    epochs = [batches[k : k + n // batch] for k in range(0, len(batches), n // batch)]
    for epoch in epochs:
        assert set().union(*epoch) == set(range(n))  # each example once per epoch
    assert epochs[0] != epochs[1]  # and a new order every epoch


# ---------------------------------------------------------------------------------
# Order: every loader returns its training split shuffled by the seed, never in the
# files' order or sorted by content.


def serve_from_mock(splits):
    """An `as_data_source` for `tfds.testing.mock_data` that serves `splits`
    (`{split: (images (n, H, W, C), labels)}`) in the order given."""

    def as_data_source(self, split, **kwargs):
        return [
            [{"image": x, "label": int(y)} for x, y in zip(*splits[s])] for s in split
        ]

    return as_data_source


def load_sorted_source(kind, tmp_path, seed=0, **options):
    """Loads a dataset whose source stores 1000 training examples class after
    class (and whose content sorts them by class too), from `kind`: IDX files,
    the CIFAR10 archive, or tensorflow-datasets (mocked) serving the same."""
    import tensorflow_datasets as tfds

    rng = np.random.default_rng(7)
    if kind == "fashion_mnist_idx":
        write_fashion_idx(tmp_path, rng, n_train=1000, sorted_by_class=True)
        return et.load_dataset("fashion_mnist", idx_dir=tmp_path, seed=seed, **options)
    if kind == "cifar10_archive":
        write_cifar_archive(
            tmp_path / "cifar-10-binary.tar.gz",
            rng,
            per_batch=200,
            sorted_by_class=True,
        )
        return et.load_dataset(
            "cifar10", data_dir=tmp_path, download=False, seed=seed, **options
        )
    name, shape = {
        "fashion_mnist_tfds": ("fashion_mnist", (28, 28, 1)),
        "cifar10_tfds": ("cifar10", (32, 32, 3)),
    }[kind]
    splits = {
        "train": fake_images(rng, 1000, shape, sorted_by_class=True),
        "test": fake_images(rng, 10, shape),
    }
    with tfds.testing.mock_data(
        policy=tfds.testing.MockPolicy.USE_CODE,
        as_data_source_fn=serve_from_mock(splits),
    ):
        return et.load_dataset(name, data_dir=tmp_path, seed=seed, **options)


FILE_SOURCES = [
    "fashion_mnist_idx",
    "fashion_mnist_tfds",
    "cifar10_archive",
    "cifar10_tfds",
]


@pytest.mark.parametrize("kind", ["digits", "synthetic_cifar10", *FILE_SOURCES])
def test_the_first_examples_of_every_loader_hold_every_class(
    tmp_path, pretend_tensorflow, kind
):
    if kind == "digits":
        data = et.load_dataset("digits")
    elif kind == "synthetic_cifar10":
        data = et.load_dataset("synthetic_cifar10", num_train=1000, num_test=10)
    else:
        data = load_sorted_source(kind, tmp_path)
        assert data.train_x.shape[0] == 1000
    counts = np.bincount(np.asarray(data.train_y[:300]), minlength=10)
    assert np.all(counts > 0), counts
    # Not one class in a run as long as a class: the order is not by class.
    assert np.max(np.abs(np.diff(np.asarray(data.train_y[:300])))) > 0


@pytest.mark.parametrize("kind", ["fashion_mnist_idx", "cifar10_archive"])
def test_the_order_is_fixed_by_the_seed_and_independent_of_the_source(
    tmp_path, pretend_tensorflow, kind
):
    a = load_sorted_source(kind, tmp_path / "a", seed=3)
    b = load_sorted_source(kind, tmp_path / "b", seed=3)
    c = load_sorted_source(kind, tmp_path / "c", seed=4)
    np.testing.assert_array_equal(a.train_x, b.train_x)
    assert not np.array_equal(a.train_y, c.train_y)
    # tensorflow-datasets serving the same examples gives the same arrays.
    other = kind.replace("_idx", "_tfds").replace("_archive", "_tfds")
    d = load_sorted_source(other, tmp_path / "d", seed=3)
    np.testing.assert_array_equal(a.train_x, d.train_x)
    np.testing.assert_array_equal(a.train_y, d.train_y)


# ---------------------------------------------------------------------------------
# The same options for every loader, or a ValueError that says who takes one.


def test_every_loader_takes_the_common_options():
    from eqtuners._data.registry import dataset_options

    for name in et.DATASETS:
        assert {"subset", "seed", "pad_to"} <= set(dataset_options(name)), name
    for name in ("cifar10", "fashion_mnist"):
        assert {"data_dir", "download"} <= set(dataset_options(name)), name


def test_an_option_a_loader_does_not_take_is_a_value_error_naming_who_takes_it():
    with pytest.raises(ValueError, match=r"\['cifar10', 'fashion_mnist'\] take it"):
        et.load_dataset("digits", data_dir="/nowhere")
    with pytest.raises(ValueError, match=r"\['digits', 'synthetic_cifar10'\]"):
        et.load_dataset("cifar10", num_test=5)
    with pytest.raises(ValueError, match="`colour`: no dataset takes it"):
        et.load_dataset("digits", colour=True)


def test_a_subset_too_large_for_any_loader_is_a_clear_value_error(tmp_path):
    with pytest.raises(ValueError, match="`subset` is 100000 but the training split"):
        et.load_dataset("digits", subset=100000)
    with pytest.raises(ValueError, match="`subset` is 51 but"):
        et.load_dataset("synthetic_cifar10", num_train=50, num_test=5, subset=51)
    write_fashion_idx(tmp_path, np.random.default_rng(0), n_train=20)
    with pytest.raises(ValueError, match="`subset` is 21 but"):
        et.load_dataset("fashion_mnist", idx_dir=tmp_path, subset=21)
    for bad in (0, -3):
        with pytest.raises(ValueError, match="`subset`"):
            et.load_dataset("digits", subset=bad)


# ---------------------------------------------------------------------------------
# Padding (pad_to): the centre is the unpadded image, the border the background.


@pytest.mark.parametrize(
    "name, options, size, pad",
    [
        ("fashion_mnist", {}, 28, 32),
        ("digits", {}, 8, 11),  # odd: 1 pixel on top and left, 2 at bottom and right
        ("synthetic_cifar10", {"num_train": 30, "num_test": 10}, 32, 36),
    ],
)
def test_padding_keeps_the_centre_and_pads_with_the_background(
    tmp_path, name, options, size, pad
):
    if name == "fashion_mnist":
        write_fashion_idx(tmp_path, np.random.default_rng(5), n_train=50)
        options = {"idx_dir": tmp_path}
    plain = et.load_dataset(name, **options)
    padded = et.load_dataset(name, pad_to=pad, **options)
    n, channels = plain.train_x.shape[0], plain.train_x.shape[-1]
    assert padded.train_x.shape == (n, pad, pad, channels)
    assert padded.test_x.shape == (plain.test_x.shape[0], pad, pad, channels)
    assert padded.input_shape == (pad, pad, channels)
    top = (pad - size) // 2
    for p, q in ((padded.train_x, plain.train_x), (padded.test_x, plain.test_x)):
        np.testing.assert_array_equal(p[:, top : top + size, top : top + size], q)
    np.testing.assert_array_equal(padded.train_y, plain.train_y)
    # The border is one value per channel: the standardised value of a 0 pixel,
    # -mean / std of the unpadded training images (the value a black pixel has
    # inside an image).
    mask = np.ones((pad, pad), bool)
    mask[top : top + size, top : top + size] = False
    for x in (padded.train_x, padded.test_x):
        border = np.unique(np.asarray(x)[:, mask].reshape(-1, channels), axis=0)
        assert border.shape == (1, channels)
    if name != "synthetic_cifar10":  # the others' raw pixels are at hand
        raw = raw_training_pixels(name, options)
        axes = tuple(range(raw.ndim - 1))
        expected = -raw.mean(axes) / raw.std(axes)
        np.testing.assert_allclose(border[0], expected, rtol=1e-5)
        # A black pixel inside an image (the darkest) has the same value.
        assert raw.min() == 0
        np.testing.assert_allclose(plain.train_x.min(), border[0], rtol=1e-6)
    with pytest.raises(ValueError, match="`pad_to` is 4 but the images are"):
        et.load_dataset(name, pad_to=4, **options)


def raw_training_pixels(name, options):
    """The raw training pixels in [0, 1], in the loader's order for digits."""
    if name == "fashion_mnist":
        return et.read_fashion_mnist_idx(options["idx_dir"])["train"][0] / 255.0
    from sklearn.datasets import load_digits

    bunch = load_digits()
    order = np.random.default_rng(0).permutation(len(bunch.target))
    return bunch.images[order[360:], ..., None] / 16.0


# ---------------------------------------------------------------------------------
# Damaged files: errors that name the file and say to download it again.


def test_a_truncated_or_corrupt_gz_idx_file_names_the_file(tmp_path):
    write_fashion_idx(tmp_path, np.random.default_rng(0))
    path = tmp_path / "train-images-idx3-ubyte.gz"
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    for call in (
        lambda: et.read_idx(path),
        lambda: et.load_fashion_mnist(idx_dir=tmp_path),
    ):
        with pytest.raises(ValueError) as info:
            call()
        assert str(path) in str(info.value)
        assert "download it again" in str(info.value)
    corrupt = bytearray(whole)
    corrupt[len(whole) // 2 : len(whole) // 2 + 64] = bytes(64)
    path.write_bytes(bytes(corrupt))
    with pytest.raises(ValueError, match="download it again") as info:
        et.read_idx(path)
    assert str(path) in str(info.value)


def test_a_truncated_cifar10_archive_or_batch_names_the_file(tmp_path):
    archive = tmp_path / "cifar-10-binary.tar.gz"
    write_cifar_archive(archive, np.random.default_rng(0), per_batch=20)
    whole = archive.read_bytes()
    archive.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ValueError, match="download .* again") as info:
        et.load_cifar10(data_dir=tmp_path, download=False)
    assert str(archive) in str(info.value)

    archive.write_bytes(whole)
    folder = tmp_path / "extracted"
    with tarfile.open(archive) as tar:
        tar.extractall(folder, filter="data")
    batch = folder / "cifar-10-batches-bin" / "data_batch_3.bin"
    batch.write_bytes(batch.read_bytes()[:-100])
    with pytest.raises(ValueError, match="download .* again") as info:
        et.read_cifar10_binary(folder / "cifar-10-batches-bin")
    assert str(batch) in str(info.value)


# ---------------------------------------------------------------------------------
# A chosen directory is honoured or refused, never replaced; `source` says what
# was read.


@pytest.fixture
def no_default_data_dir(tmp_path, monkeypatch):
    """No data directory chosen: no variables, and a home without datasets."""
    monkeypatch.delenv("EQTUNERS_DATA_DIR", raising=False)
    monkeypatch.delenv("TFDS_DATA_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def test_a_chosen_directory_is_never_replaced_by_a_system_folder(
    tmp_path, monkeypatch, no_default_data_dir
):
    system = tmp_path / "system" / "fashion-mnist"
    write_fashion_idx(system, np.random.default_rng(0))
    monkeypatch.setattr(fashion_mnist, "SYSTEM_IDX_DIRS", (system,))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(et.DatasetNotFoundError) as info:
        et.load_fashion_mnist(data_dir=empty, download=False)
    assert f"{system} was not searched because a data directory was chosen" in str(
        info.value
    )
    monkeypatch.setenv("EQTUNERS_DATA_DIR", str(empty))
    with pytest.raises(et.DatasetNotFoundError):
        et.load_fashion_mnist(download=False)
    with pytest.raises(et.DatasetNotFoundError):
        et.load_fashion_mnist(idx_dir=empty, download=False)
    # Nothing chosen: the system folder is the fallback, and `source` says so.
    monkeypatch.delenv("EQTUNERS_DATA_DIR")
    data = et.load_fashion_mnist(download=False)
    assert data.source.startswith("IDX files ")
    assert str(system / "train-images-idx3-ubyte.gz") in data.source
    assert str(system / "t10k-labels-idx1-ubyte.gz") in data.source
    with pytest.raises(ValueError, match="`data_dir` or `idx_dir`, not both"):
        et.load_fashion_mnist(data_dir=empty, idx_dir=system)


def test_every_loader_says_where_its_examples_came_from(tmp_path, pretend_tensorflow):
    assert et.load_dataset("digits").source.startswith("scikit-learn digits")
    synthetic = et.load_dataset("synthetic_cifar10", num_train=10, num_test=2, seed=3)
    assert synthetic.source == "generated from seed 3"
    archive = tmp_path / "cifar" / "cifar-10-binary.tar.gz"
    write_cifar_archive(archive, np.random.default_rng(0))
    cifar = et.load_cifar10(data_dir=tmp_path / "cifar", download=False)
    assert cifar.source == f"CIFAR10 binary archive {archive}"
    mocked = load_sorted_source("fashion_mnist_tfds", tmp_path / "tfds")
    assert mocked.source.startswith("tensorflow-datasets fashion_mnist 3.")
    by_hand = et.Dataset(
        cifar.train_x, cifar.train_y, cifar.test_x, cifar.test_y, 10, "by hand"
    )
    assert by_hand.source == ""


# ---------------------------------------------------------------------------------
# Quiet when nothing is wrong, and nothing left behind.


@pytest.fixture
def own_temp_dir(tmp_path, monkeypatch):
    """A temporary folder of the test's own, so that what the loaders leave in it
    is theirs (tensorflow-datasets makes its `tmp*tfds` folders with
    `tempfile.mkdtemp`)."""
    folder = tmp_path / "system_tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.mark.parametrize("layout", ["data_dir", "data_dir/fashion_mnist", "idx_dir"])
def test_loading_idx_files_is_quiet_and_leaves_nothing_behind(
    tmp_path, own_temp_dir, caplog, layout
):
    root = tmp_path / "data"
    folder = root / "fashion_mnist" if layout == "data_dir/fashion_mnist" else root
    write_fashion_idx(folder, np.random.default_rng(0))
    option = {"idx_dir": root} if layout == "idx_dir" else {"data_dir": root}
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.INFO):
        warnings.simplefilter("always")
        data = et.load_dataset("fashion_mnist", download=False, **option)
    assert data.train_x.shape == (40, 28, 28, 1)
    assert [str(w.message) for w in caught] == []
    assert [
        r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING
    ] == []
    assert os.listdir(own_temp_dir) == []


def test_the_tfds_paths_leave_nothing_behind(
    tmp_path, own_temp_dir, pretend_tensorflow
):
    load_sorted_source("cifar10_tfds", tmp_path / "mock")  # prepare, then read
    with pytest.raises(et.DatasetNotFoundError):
        et.load_cifar10(data_dir=tmp_path / "none", download=False)
    (tmp_path / "partial" / "cifar10" / "3.0.2").mkdir(parents=True)
    with pytest.raises(et.DatasetNotFoundError):
        et.load_cifar10(data_dir=tmp_path / "partial", download=False)
    assert os.listdir(own_temp_dir) == []
