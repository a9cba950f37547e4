"""The preprocessing shared by the image datasets (CIFAR10, Fashion-MNIST, synthetic).

1. Pixels (uint8, 0 to 255) are scaled to [0, 1].
2. Optionally, a **class-balanced** training subset is drawn (the paper's 4096
   examples for the deterministic regime): each class contributes `subset //
   num_classes` examples, and the `subset % num_classes` lowest-numbered classes one
   more (4096 on 10 classes: classes 0 to 5 give 410, classes 6 to 9 give 409).
   Within each class the examples are a uniformly random choice fixed by `seed`, and
   the subset is then shuffled with the same seed, so any prefix (e.g. the examples
   on which sharpness is measured) is itself close to balanced. Balanced rather than
   the first n: the squared loss's minimiser at initialisation (the class
   frequencies) and the curvature it induces then do not depend on the luck of the
   draw, and the subset is the same whatever order the files store the examples in
   (tensorflow-datasets stores them in a hash order of its own).
3. Every channel is standardised with the mean and standard deviation of the **whole
   training split** (also when a subset is taken), so an image is the same array in
   the deterministic and in the stochastic regime; the test split uses the same
   statistics.

The result is float32, channels last, on the default device.
"""

import numpy as np

from .._validation import checked_int
from ._dataset import Dataset, to_dataset


def balanced_subset(
    labels: np.ndarray, size: int, *, num_classes: int, seed: int
) -> np.ndarray:
    """Indices of a class-balanced random subset of `size` examples, shuffled.

    **Arguments:**

    - `labels`: the integer labels of all candidates.
    - `size`: how many to choose; class `c` gets `size // num_classes` examples, plus
      one for `c < size % num_classes`.
    - `num_classes`: the number of classes.
    - `seed`: fixes the choice and the order.

    **Returns:** an int64 array of `size` distinct indices into `labels`.
    """
    labels = np.asarray(labels)
    checked_int("subset", size)
    if size > labels.shape[0]:
        raise ValueError(
            f"`subset` is {size} but the training split has only {labels.shape[0]} "
            "examples."
        )
    rng = np.random.default_rng(seed)
    chosen = []
    for c in range(num_classes):
        want = size // num_classes + (1 if c < size % num_classes else 0)
        members = np.flatnonzero(labels == c)
        if members.size < want:
            raise ValueError(
                f"A class-balanced subset of {size} examples needs {want} of class "
                f"{c}, but the training split has only {members.size}."
            )
        chosen.append(rng.permutation(members)[:want])
    return rng.permutation(np.concatenate(chosen))


def canonical_order(images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The permutation that sorts examples by their image bytes, then their label."""
    flat = np.ascontiguousarray(images.reshape(images.shape[0], -1))
    keys = flat.view(np.dtype((np.void, flat.shape[1]))).ravel()
    by_label = np.argsort(labels, kind="stable")
    return by_label[np.argsort(keys[by_label], kind="stable")]


def channel_statistics(images: np.ndarray, scale: float) -> tuple[np.ndarray, ...]:
    """Per-channel mean and standard deviation of `images / scale` (float64).

    Accumulates in float64 over blocks of images, so a uint8 array of 50,000 images
    is never copied whole to float64.
    """
    axes = tuple(range(images.ndim - 1))
    total = np.zeros(images.shape[-1])
    total_sq = np.zeros(images.shape[-1])
    for start in range(0, images.shape[0], 4096):
        block = images[start : start + 4096].astype(np.float64) / scale
        total += block.sum(axis=axes)
        total_sq += np.square(block).sum(axis=axes)
    count = images.size // images.shape[-1]
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - np.square(mean), 0.0))
    return mean, np.where(std > 0, std, 1.0)


def _standardise(images, mean, std, scale):
    out = np.empty(images.shape, np.float32)
    for start in range(0, images.shape[0], 4096):
        block = images[start : start + 4096].astype(np.float64) / scale
        out[start : start + 4096] = (block - mean) / std
    return out


def prepare_images(
    train_images: np.ndarray,
    train_labels: np.ndarray,
    test_images: np.ndarray,
    test_labels: np.ndarray,
    *,
    num_classes: int,
    name: str,
    subset: int | None = None,
    seed: int = 0,
    scale: float = 255.0,
) -> Dataset:
    """Scales, subsets and standardises images, and moves them to the device.

    **Arguments:**

    - `train_images`, `test_images`: `(n, height, width, channels)` arrays of pixels
      in `[0, scale]` (uint8 for the real datasets).
    - `train_labels`, `test_labels`: integer labels in `[0, num_classes)`.
    - `num_classes`, `name`: recorded in the `Dataset`.
    - `subset`: `None` for the whole training split, or the size of a class-balanced
      training subset (see the module's docstring); the test split is kept whole.
    - `seed`: fixes the subset.
    - `scale`: the largest pixel value (255 for uint8).

    **Returns:** a `Dataset` with float32 images, standardised per channel with the
    whole training split's statistics, and int32 labels.
    """
    for split, images, labels in (
        ("train", train_images, train_labels),
        ("test", test_images, test_labels),
    ):
        if images.ndim != 4 or labels.shape != (images.shape[0],):
            raise ValueError(
                f"The {split} split must hold images (n, height, width, channels) "
                f"and n labels, got {images.shape} and {labels.shape}."
            )
        if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(
                f"The {split} labels must lie in [0, {num_classes}), got values "
                f"from {labels.min()} to {labels.max()}."
            )
    mean, std = channel_statistics(train_images, scale)
    if subset is not None:
        index = balanced_subset(
            train_labels, subset, num_classes=num_classes, seed=seed
        )
        train_images, train_labels = train_images[index], train_labels[index]
    return to_dataset(
        _standardise(train_images, mean, std, scale),
        train_labels,
        _standardise(test_images, mean, std, scale),
        test_labels,
        num_classes=num_classes,
        name=name,
    )


def dataset_from_splits(
    splits: dict[str, tuple[np.ndarray, np.ndarray]],
    *,
    name: str,
    subset: int | None,
    seed: int,
    num_classes: int = 10,
) -> Dataset:
    """`prepare_images` on uint8 `{"train": (images, labels), "test": ...}` splits,
    the training split first put in `canonical_order`, so that a seed picks the
    same subset whichever source the files came from."""
    train_images, train_labels = splits["train"]
    order = canonical_order(train_images, train_labels)
    return prepare_images(
        train_images[order],
        train_labels[order],
        *splits["test"],
        num_classes=num_classes,
        name=name,
        subset=subset,
        seed=seed,
    )
