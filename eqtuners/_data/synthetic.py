import numpy as np

from .._validation import checked_int
from ._dataset import Dataset
from ._prepare import prepare_images


def load_synthetic_cifar10(
    *,
    num_train: int = 4096,
    num_test: int = 1024,
    seed: int = 0,
    subset: int | None = None,
    image_shape: tuple[int, int, int] = (32, 32, 3),
    num_classes: int = 10,
    noise: float | int = 48.0,
    pad_to: int | None = None,
) -> Dataset:
    """A synthetic, CIFAR-shaped dataset generated from a seed: no download, any size.

    Each class has a random template image (uniform pixels in [64, 192], smoothed
    over 3x3 neighbourhoods); an example is its class's template plus Gaussian pixel
    noise of standard deviation `noise`, rounded and clipped to uint8 [0, 255].
    Labels are balanced (example `i` has class `i % num_classes` before a seeded
    shuffle, so the training split is in a seeded random order). The images then go
    through exactly the preprocessing of CIFAR10 (scaled to [0, 1], optional
    class-balanced subset, per-channel standardisation with the training split's
    statistics, optional padding; `eqtuners._data._prepare`). The classes are
    learnable but the content is not CIFAR's: use it for speed benchmarks and for
    tests that need the shape, not the content.

    **Arguments:**

    - `num_train`, `num_test`: the sizes of the splits (CIFAR10's are 50,000 and
      10,000).
    - `seed`: fixes the templates, the noise, the labels and the subset.
    - `subset`: as for `load_cifar10` (`None`: the whole training split).
    - `image_shape`: `(height, width, channels)` of an image.
    - `num_classes`: the number of classes.
    - `noise`: the standard deviation of the pixel noise, in units of 0-255 pixels.
    - `pad_to`: `None`, or the height and width to pad the images to, with the pixel
      value 0 on every side.

    **Returns:** a `Dataset` named `"synthetic_cifar10"`, whose `source` is
    `"generated from seed SEED"`.

    **Raises:** `ValueError` naming the argument for a bad size, shape, `seed`,
    `subset` or `pad_to`.
    """
    checked_int("num_train", num_train)
    checked_int("num_test", num_test)
    seed = checked_int("seed", seed, lower=0)
    if len(image_shape) != 3 or any(s < 1 for s in image_shape):
        raise ValueError(
            f"`image_shape` must be (height, width, channels), got {image_shape!r}."
        )
    rng = np.random.default_rng(seed)
    templates = rng.uniform(64.0, 192.0, (num_classes, *image_shape))
    padded = np.pad(templates, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
    h, w = image_shape[:2]
    templates = (
        sum(padded[:, i : i + h, j : j + w] for i in range(3) for j in range(3)) / 9.0
    )

    def split(n):
        labels = rng.permutation(np.arange(n) % num_classes)
        images = np.empty((n, *image_shape), np.uint8)
        for start in range(0, n, 4096):
            block = labels[start : start + 4096]
            pixels = templates[block] + noise * rng.standard_normal(
                (block.size, *image_shape), np.float32
            )
            images[start : start + 4096] = np.clip(np.rint(pixels), 0, 255)
        return images, labels

    train_images, train_labels = split(num_train)
    test_images, test_labels = split(num_test)
    return prepare_images(
        train_images,
        train_labels,
        test_images,
        test_labels,
        num_classes=num_classes,
        name="synthetic_cifar10",
        source=f"generated from seed {seed}",
        subset=subset,
        seed=seed,
        pad_to=pad_to,
        shuffle=False,  # the labels are already a seeded permutation
    )
