import numpy as np
import pytest

import eqtuners as et


def test_digits_is_standardised_split_and_ready():
    data = et.load_dataset("digits")
    assert data.train_x.shape == (1437, 8, 8, 1) and data.test_x.shape == (360, 8, 8, 1)
    assert data.train_x.dtype == np.float32 and data.train_y.dtype == np.int32
    assert data.num_classes == 10 and data.input_shape == (8, 8, 1)
    assert abs(float(data.train_x.mean())) < 1e-5
    assert float(data.train_x.std()) == pytest.approx(1.0, rel=1e-4)
    assert set(np.unique(data.train_y)) == set(range(10))


def test_digits_split_is_fixed_by_the_seed():
    a, b = et.load_dataset("digits", seed=1), et.load_dataset("digits", seed=1)
    c = et.load_dataset("digits", seed=2)
    assert np.array_equal(a.train_y, b.train_y)
    assert np.array_equal(a.train_x, b.train_x)
    assert not np.array_equal(a.train_y, c.train_y)


def test_unknown_dataset_names_the_choices():
    with pytest.raises(ValueError, match="Unknown dataset 'nope'.*digits"):
        et.load_dataset("nope")
    with pytest.raises(ValueError, match="`num_test`"):
        et.load_dataset("digits", num_test=0)


def test_digits_takes_a_class_balanced_subset_fixed_by_the_seed():
    full = et.load_dataset("digits", seed=1)
    a = et.load_dataset("digits", subset=105, seed=1)
    b = et.load_dataset("digits", subset=105, seed=1)
    c = et.load_dataset("digits", subset=105, seed=2)
    assert a.train_x.shape == (105, 8, 8, 1) and a.test_x.shape == (360, 8, 8, 1)
    np.testing.assert_array_equal(
        np.bincount(a.train_y, minlength=10), [11] * 5 + [10] * 5
    )
    np.testing.assert_array_equal(a.train_x, b.train_x)
    assert not np.array_equal(a.train_y, c.train_y)
    # Drawn from the training split of the same seed, standardised the same way.
    rows = {r.tobytes() for r in np.asarray(full.train_x)}
    assert all(r.tobytes() in rows for r in np.asarray(a.train_x))
    np.testing.assert_array_equal(a.test_x, full.test_x)
    # Too many of one class for the 1437 training images: the class is named.
    with pytest.raises(ValueError, match="`subset`.*needs 144 of class"):
        et.load_dataset("digits", subset=1437)
