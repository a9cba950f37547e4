"""Stacks: several tuners (or models) of one type, run as one under `vmap`.

A grid of hyperparameters, a set of seeds or a set of initial models is one pytree
whose array leaves have a leading axis of size `R`, one entry per member:
`eqx.filter_vmap(f)(stack.tree)` runs `f` on every member in one compile, and a new
value of a hyperparameter does not recompile.

`stack(items)` builds it from `R` members and checks what a batch built by hand
would not: that the members have one type and one structure (the same static fields,
such as `Armijo.max_backtracks`, and the same array shapes and dtypes), and, for
tuners, that every member is valid. A tuner built by its constructor is checked
there, but one built under a transform (its values are tracers, which pass
unchecked) or by `eqx.tree_at` is not; `stack` re-runs every member's constructor
checks through `AbstractTuner.validated`.
"""

import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import PyTree

from ._tuners import AbstractTuner


class Stack(eqx.Module):
    """`size` members of one type and structure, stacked.

    **Arguments:**

    - `tree`: a pytree of the members' type whose array leaves have a leading axis
      of size `size` (member `i` is `leaf[i]`); its other leaves are shared by all
      members.
    - `size`: the number of members, >= 1.

    Build it with `eqtuners.stack`, which checks the members; the constructor only
    checks the leading axes. `len(s)` is `size`, `s[i]` is member `i` (unstacked,
    of the members' type) and iterating yields the members in order.

    **Raises:** `ValueError` if an array leaf's leading axis is not `size`.
    """

    tree: PyTree
    size: int = eqx.field(static=True)

    def __init__(self, tree: PyTree, size: int):
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"`size` must be an int >= 1, got {size!r}.")
        for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
            if eqx.is_array(leaf) and (leaf.ndim == 0 or leaf.shape[0] != size):
                raise ValueError(
                    f"Every array of a stack of {size} must have a leading axis of "
                    f"size {size}; the leaf at {_where(path)} has shape {leaf.shape}."
                )
        self.tree = tree
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> PyTree:
        if isinstance(index, bool) or not isinstance(index, int):
            raise TypeError(f"A stack is indexed by an int, got {index!r}.")
        if not -self.size <= index < self.size:
            raise IndexError(f"Index {index} out of range for a stack of {self.size}.")
        index %= self.size
        return jax.tree.map(
            lambda leaf: leaf[index] if eqx.is_array(leaf) else leaf, self.tree
        )

    def __iter__(self) -> Iterator[PyTree]:
        return (self[i] for i in range(self.size))


def stack(items) -> Stack:  # not annotated: a wrong type gets our ValueError
    """Stacks tuners (or models) of one type into one `Stack`.

    **Arguments:**

    - `items`: a non-empty sequence of pytrees of one type and structure: tuners such
      as `[Armijo(c=c) for c in (1e-4, 1e-2)]`, or models.

    **Returns:** `Stack(tree, size=len(items))`: `tree` is of the members' type, with
    every array leaf stacked on a new leading axis. Tuners are stored as rebuilt by
    `AbstractTuner.validated`.

    **Raises:** `ValueError`, saying what is wrong, if `items` is empty, if its
    members are of different types, if a tuner member is invalid (naming the member
    and the argument), or if the members differ in structure: a static field (for
    example `Armijo.max_backtracks`), a field that is `None` in one and an array in
    another, an array's shape or dtype, or a non-array leaf (naming the field).
    """
    if isinstance(items, eqx.Module) or not isinstance(items, Sequence):
        raise ValueError(
            "`items` must be a list or tuple of tuners (or models), got "
            f"{type(items).__name__}."
        )
    items = list(items)
    if not items:
        raise ValueError("`items` is empty: a stack needs at least one member.")
    tuners = all(isinstance(item, AbstractTuner) for item in items)
    types: dict[type, list[int]] = {}
    for i, item in enumerate(items):
        types.setdefault(type(item), []).append(i)
    if len(types) > 1:
        found = " and ".join(
            f"{kind.__name__} (member{'s' if len(ids) > 1 else ''} "
            f"{', '.join(map(str, ids))})"
            for kind, ids in types.items()
        )
        kind = "tuner type" if tuners else "type"
        raise ValueError(f"`stack` requires one {kind}, got {found}.")
    if tuners:
        checked = []
        for i, item in enumerate(items):
            try:
                checked.append(item.validated())
            except ValueError as error:
                raise ValueError(
                    f"Member {i} of the stack is invalid: {error}"
                ) from None
        items = checked
    for i, item in enumerate(items[1:], start=1):
        difference = _first_difference(items[0], item, "")
        if difference is not None:
            path, first, other = difference
            raise ValueError(
                f"The members of a stack must have one structure, but "
                f"{_where(path)} is {first} in member 0 and {other} in member {i}."
            )
    tree = jax.tree.map(
        lambda *leaves: jnp.stack(leaves) if eqx.is_array(leaves[0]) else leaves[0],
        *items,
    )
    return Stack(tree, len(items))


def _where(path) -> str:
    text = path if isinstance(path, str) else jax.tree_util.keystr(path)
    return f"`{text.lstrip('.')}`" if text else "the root"


def _describe(value: Any) -> str:
    if eqx.is_array(value):
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    if value is None:
        return "None"
    if isinstance(value, eqx.Module):
        return f"a {type(value).__name__}"
    return repr(value)


def _same(a: Any, b: Any) -> bool:
    """Whether two non-array values (static fields, non-array leaves) are equal."""
    if a is b:
        return True
    try:
        return bool(a == b)
    except Exception:
        return False


def _first_difference(a: Any, b: Any, path: str) -> tuple[str, str, str] | None:
    """The first place where two members differ in structure: `(path, what it is in
    a, what it is in b)`, or `None`. Array values may differ; nothing else may."""
    if type(a) is not type(b):
        return path, _describe(a), _describe(b)
    if eqx.is_array(a):
        if a.shape != b.shape or a.dtype != b.dtype:
            return path, _describe(a), _describe(b)
        return None
    if isinstance(a, eqx.Module):
        for field in dataclasses.fields(a):
            where = f"{path}.{field.name}"
            first, other = getattr(a, field.name, None), getattr(b, field.name, None)
            if field.metadata.get("static", False):
                if not _same(first, other):
                    return where, repr(first), repr(other)
            else:
                difference = _first_difference(first, other, where)
                if difference is not None:
                    return difference
        return None
    children_a, def_a = jax.tree_util.tree_flatten_with_path(
        a, is_leaf=lambda x: x is not a
    )
    children_b, def_b = jax.tree_util.tree_flatten_with_path(
        b, is_leaf=lambda x: x is not b
    )
    if jax.tree_util.treedef_is_leaf(def_a) and children_a:  # not a pytree node
        return None if _same(a, b) else (path, _describe(a), _describe(b))
    if def_a != def_b:
        return path, str(def_a), str(def_b)
    for (key, first), (_, other) in zip(children_a, children_b):
        difference = _first_difference(first, other, path + jax.tree_util.keystr(key))
        if difference is not None:
            return difference
    return None
