from collections.abc import Callable

from ._dataset import Dataset
from .digits import load_digits

DATASETS: dict[str, Callable[..., Dataset]] = {"digits": load_digits}


def load_dataset(name: str, **kwargs) -> Dataset:
    """Loads a dataset by name; keyword arguments go to its loader.

    **Arguments:**

    - `name`: one of `DATASETS` (`"digits"`, the embedded default).
    """
    try:
        loader = DATASETS[name]
    except KeyError:
        raise ValueError(
            f"Unknown dataset {name!r}; choose one of {sorted(DATASETS)}."
        ) from None
    return loader(**kwargs)
