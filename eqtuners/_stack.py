"""Stacks: several tuners (or models) of one type as one pytree with a run axis.

A minimal version for the training loop; validation of the members comes with the
tuners' stack work.
"""

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import PyTree


class Stack(eqx.Module):
    """`size` pytrees of one structure, their arrays stacked on a leading axis."""

    tree: PyTree
    size: int = eqx.field(static=True)

    def __len__(self):
        return self.size

    def __getitem__(self, i):
        dynamic, static = eqx.partition(self.tree, eqx.is_array)
        return eqx.combine(jax.tree.map(lambda a: a[i], dynamic), static)


def stack(items: Sequence) -> Stack:
    """Stacks `items` (pytrees of one structure) into a `Stack`."""
    dynamic = [eqx.filter(t, eqx.is_array) for t in items]
    static = eqx.partition(items[0], eqx.is_array)[1]
    tree = jax.tree.map(lambda *xs: jnp.stack(xs), *dynamic)
    return Stack(eqx.combine(tree, static), len(items))
