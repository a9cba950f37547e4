"""The image datasets: IDX and CIFAR10-binary readers, the tensorflow-datasets path
(under `tfds.testing.mock_data`, and on real ArrayRecord files written by
tensorflow-datasets' own writer), preprocessing, subsets, the missing-data error,
and mini-batch sampling without replacement."""

import gzip
import io
import tarfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import eqtuners as et
from eqtuners._data import _tfds, fashion_mnist

# ---------------------------------------------------------------------------------
# Files the tests write themselves.


def write_idx(path, array):
    """Writes `array` (uint8) as an IDX file, gzipped if `path` ends in `.gz`."""
    array = np.asarray(array, np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as file:
        file.write(header + array.tobytes())


def fake_images(rng, n, shape, num_classes=10):
    labels = np.arange(n) % num_classes
    rng.shuffle(labels)
    images = rng.integers(0, 256, (n, *shape), dtype=np.uint8)
    return images, labels


def write_fashion_idx(directory, rng, n_train=40, n_test=10, gz=True):
    directory.mkdir(parents=True, exist_ok=True)
    train = fake_images(rng, n_train, (28, 28))
    test = fake_images(rng, n_test, (28, 28))
    suffix = ".gz" if gz else ""
    write_idx(directory / f"train-images-idx3-ubyte{suffix}", train[0])
    write_idx(directory / f"train-labels-idx1-ubyte{suffix}", train[1])
    write_idx(directory / f"t10k-images-idx3-ubyte{suffix}", test[0])
    write_idx(directory / f"t10k-labels-idx1-ubyte{suffix}", test[1])
    return train, test


def cifar_batch_bytes(images, labels):
    """CIFAR10's binary records: a label byte, then the red, green, blue planes."""
    planes = images.transpose(0, 3, 1, 2).reshape(len(labels), -1)
    return np.concatenate([labels[:, None].astype(np.uint8), planes], 1).tobytes()


def write_cifar_archive(path, rng, per_batch=6, n_test=10):
    train = fake_images(rng, 5 * per_batch, (32, 32, 3))
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
    full_rows = {bytes(np.asarray(r)) for r in full.train_x}
    assert all(bytes(np.asarray(r)) in full_rows for r in a.train_x)
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
    assert str(tmp_path / "cifar10") in message
    assert str(tmp_path / "downloads" / "manual" / "cifar-10-binary.tar.gz") in message
    assert "tfds build cifar10" in message and "EQTUNERS_DATA_DIR" in message

    with pytest.raises(et.DatasetNotFoundError, match="dataset-fashion-mnist"):
        et.load_fashion_mnist(data_dir=tmp_path)
    with pytest.raises(et.DatasetNotFoundError, match="t10k-labels-idx1-ubyte"):
        et.load_fashion_mnist(idx_dir=tmp_path / "nowhere")


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
    full_rows = {bytes(np.asarray(r)) for r in data.train_x}
    assert all(bytes(np.asarray(r)) in full_rows for r in sub.train_x)


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
