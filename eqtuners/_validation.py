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
    scalar: bool = False,
) -> Array:
    """Returns `value` as a JAX array after checking it lies in the given interval.

    **Arguments:**

    - `name`: the argument's name, used in the error message.
    - `value`: a number or an array of numbers.
    - `lower`, `upper`: the bounds; `None` for no bound.
    - `lower_open`, `upper_open`: whether each bound is excluded.
    - `scalar`: whether only a single number is accepted (hyperparameters of tuners:
      a sweep over values is a stack of tuners, not a tuner holding an array). The
      shape is known at trace time, so this is checked on tracers too.

    **Returns:** the value as a floating-point JAX array; a single number is weakly
    typed, so it adopts the precision of whatever it multiplies.

    **Raises:** `ValueError` naming the argument when a concrete value is not finite
    or lies outside the interval, or, with `scalar=True`, when any value is not a
    single number.
    """
    if scalar and np.ndim(value) != 0:
        raise ValueError(
            f"`{name}` must be a single number, got an array of shape "
            f"{np.shape(value)}. Hyperparameters are scalars: for several values, "
            "build one object per value and combine them with "
            "`eqtuners.stack([...])`."
        )
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


def checked_params(name: str, params) -> None:
    """Checks that every leaf of `params` is a floating-point array (or number).

    Parameters are what gradients, Hessian-vector products and steps act on; an
    integer or boolean leaf (a model partitioned with `eqx.is_array` rather than
    `eqx.is_inexact_array`) would otherwise fail deep inside JAX. Works at trace
    time: only dtypes are looked at.

    **Raises:** `ValueError` naming the first offending leaf and the fix.
    """
    leaves = jax.tree_util.tree_leaves_with_path(params)
    if not leaves:
        raise ValueError(f"`{name}` has no arrays: there is nothing to differentiate.")
    for path, leaf in leaves:
        dtype = getattr(leaf, "dtype", None)
        if dtype is None and isinstance(leaf, float):
            continue
        if dtype is None or not jnp.issubdtype(dtype, jnp.inexact):
            where = jax.tree_util.keystr(path) or "the root"
            found = f"dtype {dtype}" if dtype is not None else type(leaf).__name__
            raise ValueError(
                f"`{name}` must hold only floating-point arrays, but the leaf at "
                f"{where} is {found}. Split the model with "
                "`params, static = eqx.partition(model, eqx.is_inexact_array)` and "
                "pass `params`."
            )


def checked_key(name: str, key, *, batched: bool = False):
    """Returns `key` as a typed JAX PRNG key array.

    Accepts a key from `jax.random.key(seed)` (or a batch of them from
    `jax.random.split`, with `batched=True`) and a legacy `jax.random.PRNGKey(seed)`
    array of two uint32.

    **Raises:** `ValueError` saying to use `jax.random.key(seed)` for anything else
    (an int, a float array, ...).
    """
    dtype = getattr(key, "dtype", None)
    if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        typed = key
    elif dtype == jnp.uint32 and getattr(key, "shape", (None,))[-1:] == (2,):
        typed = jax.random.wrap_key_data(key)
    else:
        raise ValueError(
            f"`{name}` must be a JAX PRNG key from `jax.random.key(seed)`, got {key!r}."
        )
    if typed.ndim > (1 if batched else 0):
        allowed = "a key or a 1-D batch of keys" if batched else "a single key"
        raise ValueError(f"`{name}` must be {allowed}, got shape {typed.shape}.")
    return typed
