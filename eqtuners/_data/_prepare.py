"""The preprocessing shared by the image datasets (CIFAR10, Fashion-MNIST, digits,
synthetic).

1. Pixels (0 to `scale`: 255 for uint8) are scaled to [0, 1].
2. **Order.** The training split comes out in a random order fixed by `seed`, never
   in the order of the files: Fashion-MNIST's files, put in the canonical order
   below, start with thousands of sandals and sneakers, so the first examples (the
   ones a sharpness measurement or a first mini-batch sees) would be two classes.
   The loaders that read files first put the split in `canonical_order` (sorted by
   image bytes, then label), so that a seed gives the same examples in the same
   order whichever source the files came from (tensorflow-datasets stores them in a
   hash order of its own, the original files in theirs); then
   - the whole split is permuted by `seed`, or
   - a **class-balanced** subset is drawn (the paper's 4096 examples for the
     deterministic regime): each class contributes `subset // num_classes`
     examples, and the `subset % num_classes` lowest-numbered classes one more
     (4096 on 10 classes: classes 0 to 5 give 410, classes 6 to 9 give 409). Within
     each class the examples are a uniformly random choice fixed by `seed`, and the
     subset is then shuffled with the same seed, so any prefix is itself close to
     balanced. Balanced rather than the first n: the squared loss's minimiser at
     initialisation (the class frequencies) and the curvature it induces then do
     not depend on the luck of the draw.
   The digits and synthetic loaders make their training split in a seeded random
   order themselves (a seeded permutation splits digits into train and test; the
   synthetic labels are a seeded permutation), so the whole split is kept in that
   order.
3. Every channel is standardised with the mean and standard deviation of the **whole
   training split** (also when a subset is taken), so an image is the same array in
   the deterministic and in the stochastic regime; the test split uses the same
   statistics.
4. **Padding** (`pad_to`): images are padded to `pad_to x pad_to` with the pixel
   value 0 (the black background of Fashion-MNIST, MNIST and digits; torchvision's
   default fill), the same number of pixels on each side (28 -> 32: 2 on each side;
   an odd difference puts the extra pixel at the bottom and right). The statistics
   of step 3 are those of the *unpadded* images, and the border is the
   standardised value of a 0 pixel, `-mean / std`: a pixel means the same number
   inside the image and in the border, and the centre of a padded image is exactly
   the unpadded image (so padded and unpadded runs see the same content; the
   padded training split then has a mean below 0 and a standard deviation below 1,
   by the share of border pixels). This is what padding the raw pixels with 0 and
   standardising with the statistics of the original images gives, the usual
   practice for Fashion-MNIST in 32x32 networks (VGG11, ResNet34).

The result is float32, channels last, on the default device.
"""

import numpy as np

from .._validation import checked_int
from ._dataset import Dataset, to_dataset

_BLOCK = 4096


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

    **Raises:** `ValueError` naming `subset` when it is not a positive int, exceeds
    the number of examples, or needs more examples of a class than there are.
    """
    labels = np.asarray(labels)
    checked_int("subset", size)
    if size > labels.shape[0]:
        raise ValueError(
            f"`subset` is {size} but the training split has only {labels.shape[0]} "
            f"examples; give at most {labels.shape[0]}, or subset=None for all."
        )
    rng = np.random.default_rng(seed)
    chosen = []
    for c in range(num_classes):
        want = size // num_classes + (1 if c < size % num_classes else 0)
        members = np.flatnonzero(labels == c)
        if members.size < want:
            raise ValueError(
                f"A class-balanced subset of {size} examples (`subset`) needs {want} "
                f"of class {c}, but the training split has only {members.size}."
            )
        chosen.append(rng.permutation(members)[:want])
    return rng.permutation(np.concatenate(chosen))


def training_order(
    labels: np.ndarray,
    *,
    subset: int | None,
    num_classes: int,
    seed: int,
    shuffle: bool = True,
) -> np.ndarray:
    """Indices that put a training split in its seeded order (module docstring,
    step 2): a `balanced_subset` of `subset` examples, else a permutation of all
    examples fixed by `seed` (the identity when `shuffle` is false)."""
    if subset is not None:
        return balanced_subset(labels, subset, num_classes=num_classes, seed=seed)
    if shuffle:
        return np.random.default_rng(seed).permutation(len(labels))
    return np.arange(len(labels))


def canonical_order(images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The permutation that sorts examples by their image bytes, then their label."""
    flat = np.ascontiguousarray(images.reshape(images.shape[0], -1))
    keys = flat.view(np.dtype((np.void, flat.shape[1]))).ravel()
    by_label = np.argsort(labels, kind="stable")
    return by_label[np.argsort(keys[by_label], kind="stable")]


def _blocks(images: np.ndarray, index: np.ndarray | None, scale: float):
    """`(start, images[index][start : start + _BLOCK] / scale)` in float64, without
    copying the whole array."""
    n = images.shape[0] if index is None else index.shape[0]
    for start in range(0, n, _BLOCK):
        rows = (
            slice(start, start + _BLOCK)
            if index is None
            else index[start : start + _BLOCK]
        )
        yield start, images[rows].astype(np.float64) / scale


def channel_statistics(
    images: np.ndarray, scale: float, index: np.ndarray | None = None
) -> tuple[np.ndarray, ...]:
    """Per-channel mean and standard deviation of `images[index] / scale` (float64).

    Accumulates in float64 over blocks of images, so a uint8 array of 50,000 images
    is never copied whole to float64.
    """
    axes = tuple(range(images.ndim - 1))
    total = np.zeros(images.shape[-1])
    total_sq = np.zeros(images.shape[-1])
    for _, block in _blocks(images, index, scale):
        total += block.sum(axis=axes)
        total_sq += np.square(block).sum(axis=axes)
    count = (images.size if index is None else index.size * images[0].size) // (
        images.shape[-1]
    )
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - np.square(mean), 0.0))
    return mean, np.where(std > 0, std, 1.0)


def padding(image_shape: tuple[int, ...], pad_to: int | None) -> tuple[tuple, tuple]:
    """`((top, bottom), (left, right))`: the pixels `pad_to` adds around an image of
    `image_shape = (height, width, channels)` (module docstring, step 4).

    **Raises:** `ValueError` naming `pad_to` when it is not an int or is smaller
    than the images (it pads, never crops).
    """
    pad_to = checked_int("pad_to", pad_to, allow_none=True)
    if pad_to is None:
        return (0, 0), (0, 0)
    height, width = image_shape[:2]
    if pad_to < max(height, width):
        raise ValueError(
            f"`pad_to` is {pad_to} but the images are {height}x{width}; it pads and "
            f"never crops: give at least {max(height, width)}, or None."
        )
    return tuple(((pad_to - s) // 2, (pad_to - s + 1) // 2) for s in (height, width))


def _standardise(images, index, mean, std, scale, pads):
    """`(images[index] / scale - mean) / std` as float32, padded with the
    standardised value of a 0 pixel."""
    (top, bottom), (left, right) = pads
    n = images.shape[0] if index is None else index.shape[0]
    height, width, channels = images.shape[1:]
    shape = (n, top + height + bottom, left + width + right, channels)
    out = np.empty(shape, np.float32)
    if top or bottom or left or right:
        out[...] = ((0.0 - mean) / std).astype(np.float32)
    for start, block in _blocks(images, index, scale):
        out[start : start + block.shape[0], top : top + height, left : left + width] = (
            block - mean
        ) / std
    return out


def prepare_images(
    train_images: np.ndarray,
    train_labels: np.ndarray,
    test_images: np.ndarray,
    test_labels: np.ndarray,
    *,
    num_classes: int,
    name: str,
    source: str,
    subset: int | None = None,
    seed: int = 0,
    pad_to: int | None = None,
    scale: float = 255.0,
    order: np.ndarray | None = None,
    shuffle: bool = True,
) -> Dataset:
    """Scales, orders (and subsets), standardises and pads images, and moves them
    to the device (see the module docstring for each step).

    **Arguments:**

    - `train_images`, `test_images`: `(n, height, width, channels)` arrays of pixels
      in `[0, scale]` (uint8 for the real datasets).
    - `train_labels`, `test_labels`: integer labels in `[0, num_classes)`.
    - `num_classes`, `name`, `source`: recorded in the `Dataset`.
    - `subset`: `None` for the whole training split, or the size of a class-balanced
      training subset; the test split is kept whole.
    - `seed`: fixes the order of the training split and the subset.
    - `pad_to`: `None`, or the height and width to pad the images to.
    - `scale`: the largest pixel value (255 for uint8).
    - `order`: the starting order of the training split (a permutation, e.g.
      `canonical_order`), on which the seeded order is drawn; `None`: as given.
    - `shuffle`: `False` only for a split that the caller already put in a seeded
      random order (digits, synthetic); a subset is always shuffled.

    **Returns:** a `Dataset` with float32 images, standardised per channel with the
    whole training split's statistics, and int32 labels.

    **Raises:** `ValueError` for inconsistent splits, labels out of range, or a bad
    `subset` or `pad_to`.
    """
    seed = checked_int("seed", seed, lower=0)
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
    pads = padding(train_images.shape[1:], pad_to)
    # Statistics in the starting order, so that they are bit for bit the same
    # whichever source (and file order) the examples came from.
    mean, std = channel_statistics(train_images, scale, order)
    start = np.arange(len(train_labels)) if order is None else np.asarray(order)
    index = start[
        training_order(
            train_labels[start],
            subset=subset,
            num_classes=num_classes,
            seed=seed,
            shuffle=shuffle,
        )
    ]
    return to_dataset(
        _standardise(train_images, index, mean, std, scale, pads),
        train_labels[index],
        _standardise(test_images, None, mean, std, scale, pads),
        test_labels,
        num_classes=num_classes,
        name=name,
        source=source,
    )


def dataset_from_splits(
    splits: dict[str, tuple[np.ndarray, np.ndarray]],
    *,
    name: str,
    source: str,
    subset: int | None,
    seed: int,
    pad_to: int | None,
    num_classes: int = 10,
) -> Dataset:
    """`prepare_images` on uint8 `{"train": (images, labels), "test": ...}` splits
    read from files, starting from the training split's `canonical_order`, so that a
    seed gives the same examples in the same order whichever source the files came
    from; the split is then always shuffled (or subset) by `seed`."""
    train_images, train_labels = splits["train"]
    return prepare_images(
        train_images,
        train_labels,
        *splits["test"],
        num_classes=num_classes,
        name=name,
        source=source,
        subset=subset,
        seed=seed,
        pad_to=pad_to,
        order=canonical_order(train_images, train_labels),
    )
