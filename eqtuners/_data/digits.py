import numpy as np

from .._validation import checked_int
from ._dataset import Dataset
from ._prepare import prepare_images


def load_digits(
    *,
    subset: int | None = None,
    seed: int = 0,
    num_test: int = 360,
    pad_to: int | None = None,
) -> Dataset:
    """scikit-learn's handwritten digits: 1797 real 8x8 grey images of 10 classes.

    The images ship inside scikit-learn, so nothing is read from a data directory or
    downloaded. Pixels (0 to 16) are scaled to [0, 1] and standardised with the
    training set's mean and standard deviation (one channel), as the other image
    datasets are (`eqtuners._data._prepare`). The split is a permutation seeded by
    `seed`: the first `num_test` examples are the test set, the other
    1797 - num_test (1437 by default) the training set, which is therefore in a
    seeded random order.

    **Arguments:**

    - `subset`: `None` for the whole training split, or the size of a
      class-balanced subset of it fixed by `seed` (at most about 1437 / 10 per
      class).
    - `seed`: fixes the split, the order and the subset.
    - `num_test`: the size of the test split, in (0, 1797).
    - `pad_to`: `None`, or the height and width to pad the 8x8 images to, with the
      background (pixel value 0) on every side.

    **Returns:** a `Dataset` named `"digits"` with images `(n, 8, 8, 1)` (or
    `(n, pad_to, pad_to, 1)`).

    **Raises:** `ValueError` naming the argument for a bad `num_test`, `seed`,
    `subset` (too large, or more of a class than there are) or `pad_to`.
    """
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    checked_int("num_test", num_test)
    if not 0 < num_test < len(bunch.target):
        raise ValueError(
            f"`num_test` must be in (0, {len(bunch.target)}), got {num_test}."
        )
    seed = checked_int("seed", seed, lower=0)
    images = bunch.images[..., None]
    order = np.random.default_rng(seed).permutation(len(bunch.target))
    test, train = order[:num_test], order[num_test:]
    return prepare_images(
        images[train],
        bunch.target[train],
        images[test],
        bunch.target[test],
        num_classes=10,
        name="digits",
        source="scikit-learn digits (sklearn.datasets.load_digits)",
        subset=subset,
        seed=seed,
        pad_to=pad_to,
        scale=16.0,
        shuffle=False,  # the split above is already a seeded permutation
    )
