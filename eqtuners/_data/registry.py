import inspect
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


def dataset_options(name: str) -> tuple[str, ...]:
    """The keyword arguments that the loader of dataset `name` accepts."""
    return tuple(inspect.signature(DATASETS[name]).parameters)


def load_dataset(name: str, **options) -> Dataset:
    """Loads a dataset by name; keyword arguments go to its loader.

    Every loader takes `subset` (a class-balanced training subset), `seed` (the
    order of the training split, the subset, and whatever else the loader draws)
    and `pad_to` (pad the images to `pad_to x pad_to`); the loaders that read files
    (`cifar10`, `fashion_mnist`) also take `data_dir` and `download`, and
    `fashion_mnist` takes `idx_dir`. The returned `Dataset`'s `source` says where
    the examples came from.

    **Arguments:**

    - `name`: one of `DATASETS`: `"digits"` (embedded, 1797 8x8 images),
      `"cifar10"`, `"fashion_mnist"` (files on disk or prepared by
      tensorflow-datasets; see their loaders) or `"synthetic_cifar10"` (generated
      from a seed, any size).
    - `**options`: passed to the loader, e.g. `data_dir`, `subset`, `seed`,
      `pad_to`.

    **Raises:** `ValueError` for an unknown `name`, or an option that the loader
    does not take (the message says which loaders take it), or a bad value;
    `DatasetNotFoundError` when the files are not on this machine.
    """
    try:
        loader = DATASETS[name]
    except KeyError:
        raise ValueError(
            f"Unknown dataset {name!r}; choose one of {sorted(DATASETS)}."
        ) from None
    accepted = dataset_options(name)
    for option in options:
        if option in accepted:
            continue
        takers = [n for n in sorted(DATASETS) if option in dataset_options(n)]
        who = f"only the datasets {takers} take it" if takers else "no dataset takes it"
        raise ValueError(
            f"The dataset {name!r} does not take the option `{option}`: {who}. "
            f"{name!r} takes {', '.join(f'`{a}`' for a in accepted)}."
        )
    return loader(**options)
