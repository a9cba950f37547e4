"""Checks of hyperparameters at construction time.

Values are checked only when they are concrete (Python numbers, NumPy or JAX arrays
outside a trace). Inside `jax.jit` or `eqx.filter_vmap` the values are tracers and are
passed through unchecked, so stacks of hyperparameters built under a transform work.
"""

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array


def checked_float(
    name: str,
    value,
    *,
    lower: float | None = None,
    upper: float | None = None,
    lower_open: bool = True,
    upper_open: bool = True,
) -> Array:
    """Returns `value` as a JAX array after checking it lies in the given interval.

    **Arguments:**

    - `name`: the argument's name, used in the error message.
    - `value`: a number or an array of numbers.
    - `lower`, `upper`: the bounds; `None` for no bound.
    - `lower_open`, `upper_open`: whether each bound is excluded.

    **Returns:** the value as a floating-point JAX array; a single number is weakly
    typed, so it adopts the precision of whatever it multiplies.

    **Raises:** `ValueError` naming the argument when a concrete value is not finite
    or lies outside the interval.
    """
    if isinstance(value, jax.core.Tracer):
        return value
    array = np.asarray(value)
    if not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
        raise ValueError(f"`{name}` must be a real number, got {value!r}.")
    interval = (
        f"{'(' if lower_open else '['}{'-inf' if lower is None else lower}, "
        f"{'inf' if upper is None else upper}{')' if upper_open else ']'}"
    )
    bad = ~np.isfinite(array)
    if lower is not None:
        bad |= array <= lower if lower_open else array < lower
    if upper is not None:
        bad |= array >= upper if upper_open else array > upper
    if np.any(bad):
        raise ValueError(f"`{name}` must be finite and in {interval}, got {value!r}.")
    if array.ndim == 0:
        # Weakly typed whatever the input's type, so that 0.1, np.float32(0.1) and
        # jnp.float32(0.1) give the same abstract value and never recompile.
        return jnp.asarray(float(array))
    out = jnp.asarray(value)
    if not jnp.issubdtype(out.dtype, jnp.floating):
        out = out.astype(jnp.result_type(float))
    return out


def checked_int(
    name: str,
    value,
    *,
    lower: int = 1,
    upper: int | None = None,
    allow_none: bool = False,
) -> int | None:
    """Returns `value` as a Python int after checking `lower <= value <= upper`.

    **Arguments:**

    - `name`: the argument's name, used in the error message.
    - `value`: an integer (Python or NumPy; not a bool).
    - `lower`, `upper`: the inclusive bounds; `upper=None` for no upper bound.
    - `allow_none`: whether `None` is accepted (and returned).

    **Raises:** `ValueError` naming the argument otherwise.
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
        raise ValueError(f"`{name}` must be an int, got {value!r}.")
    if value < lower or (upper is not None and value > upper):
        interval = f">= {lower}" if upper is None else f"in [{lower}, {upper}]"
        raise ValueError(f"`{name}` must be {interval}, got {value}.")
    return int(value)
