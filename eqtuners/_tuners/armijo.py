"""The Armijo backtracking line search, monotone or not (see `Armijo`)."""

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, PyTree

from .._tree import tree_axpy, tree_dot, tree_dtype
from .._validation import checked_float, checked_int
from ._base import AbstractTuner
from ._bracket import curvature_bracket
from ._grid import grid_search
from .first_trials import AbstractFirstTrial, IncreasingTrial, MaxStepsizeTrial
from .references import AbstractReference, MonotoneReference


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


class ArmijoState(eqx.Module):
    """The state of `Armijo` between steps.

    - `previous`: the step accepted at the previous step, in the parameters' dtype
      (`max_stepsize` before the first step and after a failure); the first trials
      that start from the previous step read it.
    - `reference`: the reference value's memory (`None` for the monotone search;
      `(Q, C)` for Zhang-Hager; the last losses for Grippo).
    - `memory`: the first trial's memory (`None` but for `PolyakTrial`: its
      backtrack count `l`).

    For the default search the state has one leaf, `previous`, as before these
    options existed, so checkpoints written then still resume.
    """

    previous: Array
    reference: PyTree[Array]
    memory: PyTree[Array]


class Armijo(AbstractTuner):
    """Backtracking line search on the Armijo (sufficient decrease) condition,
    monotone (the paper's) or not.

    Trials run over the grid `s_k = s_0 * decrease_factor^k`, k = 0, 1, ...,
    `max_backtracks`, and the first step that satisfies

        f(w - s_k * grad) <= R - c * s_k * ||grad||^2

    is accepted (Armijo, 1966; the paper's rule with the reference `R = f(w)`); a
    trial whose objective is NaN or infinite counts as a violation. The search is a
    bounded `lax.while_loop`: it stops at the first acceptance.

    **Options as modules.** Two small modules set what varies between the searches
    of the literature; the defaults give the paper's search, bit for bit:

    - `reference` (`eqtuners.AbstractReference`): the reference value `R`:
      `MonotoneReference()` (`R = f(w)`, the default), `ZhangHagerReference(xi)`
      (the Zhang-Hager average of past losses) or `GrippoReference(window)` (their
      maximum): non-monotone searches, which may accept a step that increases `f`.
      `ZhangHagerReference(0.0)` and `GrippoReference(1)` are the monotone search
      bit for bit.
    - `first_trial` (`eqtuners.AbstractFirstTrial`): the first trial `s_0`:
      `MaxStepsizeTrial()` (`max_stepsize` at every step, the default),
      `IncreasingTrial(f)` (`min(f * previous, max_stepsize)`, where `previous` is
      the step accepted at the previous step; the same as `increase_factor=f`),
      `PolyakTrial(c_p, min_stepsize)` (PoNoS's Polyak step with a backtrack
      memory) or `ForwardTracking(...)` (start from the previous step and, when it
      passes, try larger steps until one fails, up to `max_stepsize`).

    `eqtuners.PoNoS()` is the preset of that paper. The references' and first
    trials' memories live in the state (`ArmijoState`), so they are carried,
    stacked, vmapped and checkpointed with it.

    If no trial is accepted, the step **fails**: the returned step size is 0 (the
    parameters do not move), `info["failed"]` is true, and the next step starts again
    from `max_stepsize` (a first trial's memory restarts too). Nothing else is
    remembered from a failure, so one bad batch or one NaN trial never stalls the
    search at later steps.

    **Stalls.** A trial that leaves the parameters unchanged bit for bit
    (`w - s_k * grad == w` in every leaf, for a nonzero gradient: the step is below
    the parameters' rounding) is not an acceptance, whatever the condition says (in
    low precision `f(w) - c s_k ||grad||^2` rounds to `f(w)`, so it would pass). The
    search stops there, as smaller steps round to `w` too, and the step fails with
    `info["stalled"]` true. At an exactly zero gradient every step leaves `w` where
    it is and the first trial is accepted as before: the point is stationary.

    **Skips.** With `min_grad_norm` set, a step whose gradient norm is below it
    evaluates nothing and returns 0 (PoNoS's rule: `||g|| < 1e-8`); it is not a
    failure (`failed` false, `num_evals` 0) and leaves `previous` and the first
    trial's memory as they were.

    **Block search.** With `block_size=k > 1`, each round evaluates `k` consecutive
    grid points at once (`jax.vmap` over the block) and the search stops at the first
    of them that is accepted or stalls (in the forward phase, the first that fails).
    The step returned, `failed`, `stalled` and `num_evals` are those of the
    sequential search (`block_size=1`, the paper's, the default): the grid points
    are computed by the same scalar formula and the decisions are the same. Only
    the rounding of `fn` itself may differ when it is evaluated on a batch (XLA may
    choose other kernels), which can flip a trial that lies within rounding of the
    condition's boundary. A round costs about one evaluation where evaluations are
    latency-bound (small models on an accelerator) and about `k` where they are
    compute-bound (CPU); grid points past the last in the last round are evaluated
    and ignored.

    **The curvature bracket.** On the quadratic model along the gradient the
    search's decisions bound the curvature along the gradient,
    `kappa = g^T H g / ||g||^2` (see `_bracket.py`): with `U(s) = 2 (1 - c) / s +
    2 (R - f) / (s^2 ||g||^2)`, the largest accepted trial gives `kappa <= U(s)`
    and the smallest rejected trial `kappa > U(s)`. For the paper's search after a
    backtrack: `2 (1 - c) rho / s < kappa <= 2 (1 - c) / s` (`rho` the decrease
    factor, `s` the accepted step). `info` holds both ends at no cost (no
    evaluation); a side with no such trial is infinite: `-inf` below when the first
    trial is accepted (nothing was rejected), `+inf` above when the search fails or
    is skipped, both at a zero gradient. They pair with the training loop's
    `directional_curvature` column (the same quantity measured by a
    Hessian-vector product on the measurement set; in a mini-batch run the bracket
    is that of the step's batch objective, as `batch_curvature`).

    **Arguments:**

    - `c`: the sufficient-decrease constant, a number in (0, 1) (the paper: 1e-4).
    - `max_stepsize`: the largest step ever tried, a number > 0 (the paper: 1).
    - `decrease_factor`: the shrink factor between trials, a number in (0, 1) (the
      paper: 0.8).
    - `max_backtracks`: the number of shrinkings after the first trial, so at most
      `max_backtracks + 1` grid points per step. The default, 100, reaches
      `0.8^100 ~ 2e-10` times `max_stepsize`.
    - `increase_factor`: `None` (the default), or a number >= 1: the same as
      `first_trial=IncreasingTrial(increase_factor)`.
    - `block_size`: grid points evaluated per round, >= 1 (default 1: the paper's
      sequential search).
    - `reference`: an `AbstractReference` (default `MonotoneReference()`).
    - `first_trial`: an `AbstractFirstTrial` (default `MaxStepsizeTrial()`).
    - `min_grad_norm`: `None` (the default: never skip), or a number > 0 below
      which a step is skipped.

    `info` has the same keys whatever the options: `num_evals` (the evaluations the
    sequential search makes in this step, whatever `block_size`, forward trials
    included), `num_rounds` (rounds of the loop, each `block_size` evaluations;
    equal to `num_evals` for `block_size=1`), `failed`, `stalled`,
    `accepted_stepsize` (the step accepted, 0 on failure), `initial_stepsize` (the
    first trial), `reference_value` (`R`, equal to the loss for the monotone
    search), `directional_curvature_lower` and `directional_curvature_upper` (the
    bracket above, in units of the objective per squared parameter unit) and
    `nonfinite_input` (a NaN or infinite `f(w)` or gradient: the search fails
    without an evaluation; see `AbstractTuner.step`).

    **Raises:** `ValueError` naming the argument for a value out of range or not a
    single number, a `reference` or `first_trial` of the wrong type, or both
    `increase_factor` and `first_trial`.
    """

    c: Array
    max_stepsize: Array
    decrease_factor: Array
    reference: AbstractReference
    first_trial: AbstractFirstTrial
    min_grad_norm: Array | None
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
        *,
        reference=None,
        first_trial=None,
        min_grad_norm=None,
    ):
        self.c = checked_float("c", c, lower=0.0, upper=1.0, scalar=True)
        self.max_stepsize = checked_float(
            "max_stepsize", max_stepsize, lower=0.0, scalar=True
        )
        self.decrease_factor = checked_float(
            "decrease_factor", decrease_factor, lower=0.0, upper=1.0, scalar=True
        )
        if reference is None:
            reference = MonotoneReference()
        if not isinstance(reference, AbstractReference):
            raise ValueError(
                "`reference` must be an AbstractReference (MonotoneReference(), "
                f"ZhangHagerReference(xi), GrippoReference(window)), got {reference!r}."
            )
        if increase_factor is not None:
            if first_trial is not None:
                raise ValueError(
                    "Give `increase_factor` or `first_trial`, not both: "
                    "`increase_factor=f` is `first_trial=IncreasingTrial(f)`."
                )
            first_trial = IncreasingTrial(increase_factor)
        if first_trial is None:
            first_trial = MaxStepsizeTrial()
        if not isinstance(first_trial, AbstractFirstTrial):
            raise ValueError(
                "`first_trial` must be an AbstractFirstTrial (MaxStepsizeTrial(), "
                "IncreasingTrial(f), PolyakTrial(...), ForwardTracking(...)), got "
                f"{first_trial!r}."
            )
        self.reference = reference
        self.first_trial = first_trial
        if min_grad_norm is not None:
            min_grad_norm = checked_float(
                "min_grad_norm", min_grad_norm, lower=0.0, scalar=True
            )
        self.min_grad_norm = min_grad_norm
        self.max_backtracks = checked_int("max_backtracks", max_backtracks, lower=0)
        self.block_size = checked_int("block_size", block_size, lower=1)

    def validated(self):
        return Armijo(
            self.c,
            self.max_stepsize,
            self.decrease_factor,
            self.max_backtracks,
            None,
            self.block_size,
            reference=self.reference.validated(),
            first_trial=self.first_trial.validated(),
            min_grad_norm=self.min_grad_norm,
        )

    def init(self, params):
        dtype = tree_dtype(params)
        return ArmijoState(
            previous=jnp.asarray(self.max_stepsize, dtype),
            reference=self.reference.init(dtype),
            memory=self.first_trial.init(dtype),
        )

    def propose(self, fn, params, value, grad, state):
        dtype = tree_dtype(params)
        grad_sq_norm = tree_dot(grad, grad)
        reference, reference_state = self.reference.update(value, state.reference)
        initial = self.first_trial.first(
            self, value, grad_sq_norm, state.previous, state.memory
        )
        initial = jnp.asarray(initial, dtype)
        slope = self.c * grad_sq_norm
        zero_grad = ~_tree_any(jax.tree.map(lambda g: g != 0, grad))
        surely_moves = moves_above(params, grad)
        usable = jnp.isfinite(value)  # no trial can pass when f(w) is not finite
        if self.min_grad_norm is None:
            skipped = jnp.asarray(False)
        else:
            skipped = usable & (jnp.sqrt(grad_sq_norm) < self.min_grad_norm)
        go = usable & ~skipped

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
                trial_value <= reference - stepsize * slope
            )
            return passes & (moved | zero_grad), ~moved & ~zero_grad

        def backtrack_at(k):
            return (initial * self.decrease_factor**k).astype(dtype)

        backtracking = grid_search(
            backtrack_at,
            trial,
            lambda passes, stalled: passes | stalled,
            lambda k: k <= self.max_backtracks,
            first_index=0,
            go=go,
            block=self.block_size,
            initial=initial,
        )
        accepted, stalled = backtracking.passes, backtracking.stalled
        num_evals, num_rounds = backtracking.next_index, backtracking.num_rounds
        chosen = backtracking.stepsize
        # The trials rejected: all evaluated, but the one that stopped the search.
        last_rejected = num_evals - 1 - backtracking.found.astype(num_evals.dtype)
        rejected = last_rejected >= 0
        smallest_rejected = backtrack_at(jnp.maximum(last_rejected, 0))
        backtracks = num_evals - 1
        forward = self.first_trial.forward()
        if forward is not None:
            factor, max_increases = forward

            def forward_at(j):
                return (initial * factor**j).astype(dtype)

            ahead = grid_search(
                forward_at,
                trial,
                lambda passes, stalled: ~passes,
                lambda j: (j <= max_increases) & (forward_at(j) <= self.max_stepsize),
                first_index=1,
                go=accepted & (num_evals == 1) & ~zero_grad,
                block=self.block_size,
                initial=initial,
            )
            # Forward trials 1, ..., next_index - 1 were evaluated; all passed but
            # the last when it stopped the phase.
            increases = ahead.next_index - 1 - ahead.found.astype(jnp.int32)
            chosen = jnp.where(increases > 0, forward_at(increases), chosen)
            rejected = rejected | ahead.found
            smallest_rejected = jnp.where(
                ahead.found, forward_at(increases + 1), smallest_rejected
            )
            num_evals = num_evals + ahead.next_index - 1
            num_rounds = num_rounds + ahead.num_rounds
        stepsize = jnp.where(accepted, chosen, 0).astype(dtype)
        lower, upper = curvature_bracket(
            self.c,
            reference - value,
            grad_sq_norm,
            accepted,
            stepsize,
            rejected,
            smallest_rejected,
        )
        previous = jnp.where(accepted, stepsize, self.max_stepsize).astype(dtype)
        new_state = ArmijoState(
            previous=jnp.where(skipped, state.previous, previous),
            reference=reference_state,
            memory=self.first_trial.remember(
                self, state.memory, go, accepted, backtracks
            ),
        )
        info = {
            "num_evals": num_evals,
            "num_rounds": num_rounds,
            "failed": ~accepted & ~skipped,
            "stalled": stalled,
            "accepted_stepsize": stepsize,
            "initial_stepsize": initial,
            "reference_value": jnp.asarray(reference, dtype),
            "directional_curvature_lower": lower,
            "directional_curvature_upper": upper,
        }
        return stepsize, new_state, info
