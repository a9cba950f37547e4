import math
from collections.abc import Callable

import equinox as eqx
from jaxtyping import PRNGKeyArray

from .mlp import MLP


def _mlp(input_shape, num_classes, *, key):
    return MLP(math.prod(input_shape), num_classes, key=key)


MODELS: dict[str, Callable[..., eqx.Module]] = {"mlp": _mlp}


def make_model(
    name: str, input_shape: tuple[int, ...], num_classes: int, *, key: PRNGKeyArray
) -> eqx.Module:
    """Builds a model by name for examples of `input_shape` (channels last).

    **Arguments:**

    - `name`: one of `MODELS` (`"mlp"`).
    - `input_shape`: the shape of one example, e.g. `(8, 8, 1)`.
    - `num_classes`: the number of outputs.
    - `key`: a JAX PRNG key for the initialisation.
    """
    try:
        builder = MODELS[name]
    except KeyError:
        raise ValueError(
            f"Unknown model {name!r}; choose one of {sorted(MODELS)}."
        ) from None
    return builder(tuple(input_shape), num_classes, key=key)
