from collections.abc import Callable

from ._dataset import Dataset
from .cifar10 import load_cifar10
from .digits import load_digits
from .fashion_mnist import load_fashion_mnist
from .synthetic import load_synthetic_cifar10

DATASETS: dict[str, Callable[..., Dataset]] = {
    "digits": load_digits,
    "cifar10": load_cifar10,
    "fashion_mnist": load_fashion_mnist,
    "synthetic_cifar10": load_synthetic_cifar10,
}


def load_dataset(name: str, **kwargs) -> Dataset:
    """Loads a dataset by name; keyword arguments go to its loader.

    **Arguments:**

    - `name`: one of `DATASETS`: `"digits"` (embedded, 1797 8x8 images),
      `"cifar10"`, `"fashion_mnist"` (files on disk or prepared by
      tensorflow-datasets; see their loaders) or `"synthetic_cifar10"` (generated
      from a seed, any size).
    - `**kwargs`: passed to the loader, e.g. `data_dir`, `subset`, `seed`.
    """
    try:
        loader = DATASETS[name]
    except KeyError:
        raise ValueError(
            f"Unknown dataset {name!r}; choose one of {sorted(DATASETS)}."
        ) from None
    return loader(**kwargs)
