import equinox as eqx
import jax
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array

from .._tree import tree_axpy, tree_dot, tree_dtype
from .._validation import checked_float, checked_int
from ._base import AbstractTuner


def _tree_any(tree) -> Array:
    """Whether any entry of any leaf of a boolean pytree is true."""
    leaves = [jnp.any(leaf) for leaf in jax.tree.leaves(tree)]
    return jnp.any(jnp.stack(leaves)) if leaves else jnp.asarray(False)


def moves_above(params, grad) -> Array:
    """A step size `b` such that every `s > 2 b` moves `w - s * grad` away from `w`
    (some entry changes), whatever the rounding; `inf` if none is known.

    An entry `w_i - d` rounds to `w_i` only if `|d| <= ulp(w_i) / 2`, and `ulp(w_i)
    <= eps * max(|w_i|, tiny)` (`eps`, `tiny`: the leaf dtype's machine epsilon and
    smallest normal number). So `s |g_i| > 2 eps max(|w_i|, tiny)` moves entry `i`,
    with a factor 2 to spare for the rounding of `s * g_i` and of this bound, and
    `b = min_i eps max(|w_i|, tiny) / |g_i|` over the entries where that is
    positive (a bound that underflows to 0 certifies nothing). It lets the search
    skip the exact comparison `w - s g != w`, one pass over the parameters per
    trial, on all but the smallest trial steps.
    """
    bounds = []
    for w, g in zip(jax.tree.leaves(params), jax.tree.leaves(grad)):
        info = jnp.finfo(w.dtype)
        wide = jnp.promote_types(w.dtype, jnp.float32)
        w, g = jnp.abs(w).astype(wide), jnp.abs(g).astype(wide)
        bound = info.eps.astype(wide) * jnp.maximum(w, info.tiny.astype(wide)) / g
        bounds.append(jnp.min(jnp.where(bound > 0, bound, jnp.inf)))
    if not bounds:
        return jnp.asarray(jnp.inf)
    return jnp.min(jnp.stack([b.astype(jnp.result_type(*bounds)) for b in bounds]))


class Armijo(AbstractTuner):
    """Backtracking line search on the Armijo (sufficient decrease) condition.

    Trials run over the grid `s_k = s_0 * decrease_factor^k`, k = 0, 1, ...,
    `max_backtracks`, and the first step that satisfies

        f(w - s_k * grad) <= f(w) - c * s_k * ||grad||^2

    is accepted (Armijo, 1966; the paper's rule); a trial whose objective is NaN or
    infinite counts as a violation. The search is a bounded `lax.while_loop`: it
    stops at the first acceptance.

    The first trial `s_0` is `max_stepsize` at every step (the paper's rule), or, when
    `increase_factor` is given, `min(increase_factor * previous, max_stepsize)`, where
    `previous` is the step accepted at the previous step.

    If no trial is accepted, the step **fails**: the returned step size is 0 (the
    parameters do not move), `info["failed"]` is true, and the next step starts again
    from `max_stepsize`. Nothing else is remembered from a failure, so one bad
    batch or one NaN trial never stalls the search at later steps.

    **Stalls.** A trial that leaves the parameters unchanged bit for bit
    (`w - s_k * grad == w` in every leaf, for a nonzero gradient: the step is below
    the parameters' rounding) is not an acceptance, whatever the condition says (in
    low precision `f(w) - c s_k ||grad||^2` rounds to `f(w)`, so it would pass). The
    search stops there, as smaller steps round to `w` too, and the step fails with
    `info["stalled"]` true. At an exactly zero gradient every step leaves `w` where
    it is and the first trial is accepted as before: the point is stationary.

    **Block search.** With `block_size=k > 1`, each round evaluates `k` consecutive
    grid points at once (`jax.vmap` over the block) and the search stops at the first
    of them that is accepted or stalls. The step returned, `failed`, `stalled` and
    `num_evals` are those of the sequential search (`block_size=1`, the paper's, the
    default): the grid points are computed by the same scalar formula and the
    decisions are the same. Only the rounding of `fn` itself may differ when it is
    evaluated on a batch (XLA may choose other kernels), which can flip a trial that
    lies within rounding of the condition's boundary. A round costs about one
    evaluation where evaluations are latency-bound (small models on an accelerator)
    and about `k` where they are compute-bound (CPU); grid points past
    `max_backtracks` in the last round are evaluated and ignored.

    **Arguments:**

    - `c`: the sufficient-decrease constant, a number in (0, 1) (the paper: 1e-4).
    - `max_stepsize`: the largest step ever tried, a number > 0 (the paper: 1).
    - `decrease_factor`: the shrink factor between trials, a number in (0, 1) (the
      paper: 0.8).
    - `max_backtracks`: the number of shrinkings after the first trial, so at most
      `max_backtracks + 1` grid points per step. The default, 100, reaches
      `0.8^100 ~ 2e-10` times `max_stepsize`.
    - `increase_factor`: `None` (the default) to start every search from
      `max_stepsize`, or a number >= 1 to start from the previous step times it.
    - `block_size`: grid points evaluated per round, >= 1 (default 1: the paper's
      sequential search).

    `info` has the same keys whatever the options: `num_evals` (the evaluations the
    sequential search makes in this step, whatever `block_size`), `num_rounds`
    (rounds of the loop, each `block_size` evaluations; equal to `num_evals` for
    `block_size=1`), `failed`, `stalled`, `accepted_stepsize` (the step accepted, 0 on
    failure), `initial_stepsize` (the first trial) and `nonfinite_input` (a NaN or
    infinite `f(w)` or gradient: the search fails without an evaluation; see
    `AbstractTuner.step`).

    **Raises:** `ValueError` naming the argument for a value out of range or not a
    single number.
    """

    c: Array
    max_stepsize: Array
    decrease_factor: Array
    increase_factor: Array | None
    max_backtracks: int = eqx.field(static=True)
    block_size: int = eqx.field(static=True)

    def __init__(
        self,
        c=1e-4,
        max_stepsize=1.0,
        decrease_factor=0.8,
        max_backtracks=100,
        increase_factor=None,
        block_size=1,
    ):
        self.c = checked_float("c", c, lower=0.0, upper=1.0, scalar=True)
        self.max_stepsize = checked_float(
            "max_stepsize", max_stepsize, lower=0.0, scalar=True
        )
        self.decrease_factor = checked_float(
            "decrease_factor", decrease_factor, lower=0.0, upper=1.0, scalar=True
        )
        if increase_factor is not None:
            increase_factor = checked_float(
                "increase_factor",
                increase_factor,
                lower=1.0,
                lower_open=False,
                scalar=True,
            )
        self.increase_factor = increase_factor
        self.max_backtracks = checked_int("max_backtracks", max_backtracks, lower=0)
        self.block_size = checked_int("block_size", block_size, lower=1)

    def validated(self):
        return Armijo(
            self.c,
            self.max_stepsize,
            self.decrease_factor,
            self.max_backtracks,
            self.increase_factor,
            self.block_size,
        )

    def init(self, params):
        # The step accepted at the previous step (used when `increase_factor` is set).
        return jnp.asarray(self.max_stepsize, tree_dtype(params))

    def propose(self, fn, params, value, grad, state):
        dtype = tree_dtype(params)
        if self.increase_factor is None:
            initial = self.max_stepsize
        else:
            initial = jnp.minimum(self.increase_factor * state, self.max_stepsize)
        initial = jnp.asarray(initial, dtype)
        slope = self.c * tree_dot(grad, grad)
        zero_grad = ~_tree_any(jax.tree.map(lambda g: g != 0, grad))
        surely_moves = moves_above(params, grad)
        block = self.block_size

        def trial_stepsize(k):
            return (initial * self.decrease_factor**k).astype(dtype)

        def trial(stepsize):
            """Whether the trial step is accepted, and whether it stalls."""
            candidate = tree_axpy(-stepsize, grad, params)
            moved = lax.cond(
                stepsize > 2 * surely_moves,
                lambda _: jnp.asarray(True),
                lambda c: _tree_any(jax.tree.map(jnp.not_equal, c, params)),
                candidate,
            )
            trial_value = fn(candidate)
            passes = jnp.isfinite(trial_value) & (
                trial_value <= value - stepsize * slope
            )
            return passes & (moved | zero_grad), ~moved & ~zero_grad

        def keep_searching(carry):  # no trial can pass when f(w) is NaN or infinite
            start, _, _, accepted, stalled, _ = carry
            return (
                ~accepted & ~stalled & (start <= self.max_backtracks)
            ) & jnp.isfinite(value)

        def next_trial(carry):  # the sequential search: one grid point per round
            k, num_rounds, _, _, _, _ = carry
            stepsize = trial_stepsize(k)
            accepted, stalled = trial(stepsize)
            return k + 1, num_rounds + 1, k + 1, accepted, stalled, stepsize

        def next_block(carry):
            start, num_rounds, _, _, _, _ = carry
            # One scalar formula per grid point, as in the sequential search, so the
            # block's steps are those of the sequential search bit for bit.
            stepsizes = jnp.stack([trial_stepsize(start + j) for j in range(block)])
            accepted, stalled = jax.vmap(trial)(stepsizes)
            stops = (start + jnp.arange(block) <= self.max_backtracks) & (
                accepted | stalled
            )
            first = jnp.argmax(stops)
            found = jnp.any(stops)
            num_evals = jnp.where(
                found,
                start + first + 1,
                jnp.minimum(start + block, self.max_backtracks + 1),
            ).astype(start.dtype)
            return (
                start + block,
                num_rounds + 1,
                num_evals,
                found & accepted[first],
                found & stalled[first],
                stepsizes[first],
            )

        zero = jnp.zeros((), jnp.int32)
        _, num_rounds, num_evals, accepted, stalled, chosen = lax.while_loop(
            keep_searching,
            next_trial if block == 1 else next_block,
            (zero, zero, zero, jnp.array(False), jnp.array(False), initial),
        )
        stepsize = jnp.where(accepted, chosen, 0).astype(dtype)
        new_state = jnp.where(accepted, stepsize, self.max_stepsize).astype(dtype)
        info = {
            "num_evals": num_evals,
            "num_rounds": num_rounds,
            "failed": ~accepted,
            "stalled": stalled,
            "accepted_stepsize": stepsize,
            "initial_stepsize": initial,
        }
        return stepsize, new_state, info
