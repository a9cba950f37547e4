"""A bounded search over a grid of trial steps, one point or one block per round.

Both phases of the Armijo search walk a geometric grid of step sizes until a trial
says stop: backtracking stops at the first trial accepted (or stalled), forward
tracking at the first trial rejected. `grid_search` runs either as one
`lax.while_loop`, sequentially (one trial per round) or in blocks of `block`
consecutive grid points evaluated at once (`jax.vmap`), with the same outcome.
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, Bool, Int, Scalar


class GridResult(NamedTuple):
    """Where a grid search stopped.

    - `next_index`: one past the last index evaluated (the sequential search's).
    - `num_rounds`: rounds of the loop.
    - `found`: whether a trial said stop.
    - `passes`, `stalled`: that trial's outcome (false when none was found).
    - `stepsize`: that trial's step (meaningful only when found).
    """

    next_index: Int[Array, ""]
    num_rounds: Int[Array, ""]
    found: Bool[Array, ""]
    passes: Bool[Array, ""]
    stalled: Bool[Array, ""]
    stepsize: Scalar


def grid_search(
    stepsize_at: Callable[[Array], Scalar],
    trial: Callable[[Scalar], tuple[Array, Array]],
    stops: Callable[[Array, Array], Array],
    in_range: Callable[[Array], Array],
    *,
    first_index: int,
    go: Bool[Array, ""],
    block: int,
    initial: Scalar,
) -> GridResult:
    """Evaluates `trial(stepsize_at(k))` for `k = first_index, first_index + 1, ...`
    while `in_range(k)` (a prefix of the grid), until `stops(passes, stalled)`.

    **Arguments:**

    - `stepsize_at`: the grid, `k -> step` (one scalar formula, so that a block's
      points are the sequential search's bit for bit).
    - `trial`: `step -> (passes, stalled)`.
    - `stops`: `(passes, stalled) -> whether the search stops at that trial`.
    - `in_range`: `k -> whether index k may be evaluated`; false from some index on.
    - `first_index`: the first index.
    - `go`: whether to search at all.
    - `block`: grid points per round (1: sequential).
    - `initial`: the carried step before any trial (gives the dtype).
    """
    start = jnp.asarray(first_index, jnp.int32)

    def keep_searching(carry):
        k, _, found, _, _, _ = carry
        return go & ~found & in_range(k)

    def next_trial(carry):
        k, num_rounds, _, _, _, _ = carry
        stepsize = stepsize_at(k)
        passes, stalled = trial(stepsize)
        return k + 1, num_rounds + 1, stops(passes, stalled), passes, stalled, stepsize

    def next_block(carry):
        k, num_rounds, _, _, _, _ = carry
        indices = [k + j for j in range(block)]
        stepsizes = jnp.stack([stepsize_at(i) for i in indices])
        passes, stalled = jax.vmap(trial)(stepsizes)
        valid = jnp.stack([in_range(i) for i in indices])
        stop = valid & stops(passes, stalled)
        first = jnp.argmax(stop)
        found = jnp.any(stop)
        next_index = jnp.where(found, k + first + 1, k + jnp.sum(valid)).astype(k.dtype)
        return (
            next_index,
            num_rounds + 1,
            found,
            found & passes[first],
            found & stalled[first],
            stepsizes[first],
        )

    zero = jnp.zeros((), jnp.int32)
    false = jnp.array(False)
    carry = (start, zero, false, false, false, initial)
    next_index, num_rounds, found, passes, stalled, stepsize = lax.while_loop(
        keep_searching, next_trial if block == 1 else next_block, carry
    )
    if block == 1:  # a trial's outcome counts only where it stopped the search
        passes, stalled = found & passes, found & stalled
    return GridResult(next_index, num_rounds, found, passes, stalled, stepsize)
