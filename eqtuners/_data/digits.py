import numpy as np

from ._dataset import Dataset
from ._prepare import prepare_images


def load_digits(*, seed: int = 0, num_test: int = 360) -> Dataset:
    """scikit-learn's handwritten digits: 1797 real 8x8 grey images of 10 classes.

    The images ship inside scikit-learn, so nothing is downloaded. Pixels (0 to 16)
    are scaled to [0, 1] and standardised with the training set's mean and standard
    deviation (one channel), as the other image datasets are. The split is a
    permutation seeded by `seed`: the first `num_test` examples are the test set,
    the other 1797 - num_test (1437 by default) the training set. Images have shape
    (8, 8, 1).
    """
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    if not 0 < num_test < len(bunch.target):
        raise ValueError(
            f"`num_test` must be in (0, {len(bunch.target)}), got {num_test}."
        )
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
        scale=16.0,
    )
