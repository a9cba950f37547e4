"""First trials of the Armijo search: where each step's search starts.

The search tries `s_0, s_0 rho, s_0 rho^2, ...` (`rho` the decrease factor) until one
passes the Armijo test. The first trial `s_0` is chosen by a small module:

- `MaxStepsizeTrial`: `max_stepsize` at every step (the paper's rule, the default);
- `IncreasingTrial`: the previous step times a factor, capped;
- `PolyakTrial`: PoNoS's Polyak step with a memory of the backtracks;
- `ForwardTracking`: the previous step, and, when it passes, larger and larger
  trials until one fails (the forward phase, run by the search).

A first trial reads the step accepted at the previous step (`previous`, kept by the
search: `max_stepsize` at the start and after a failure) and may keep a memory of its
own in the tuner's state, so it is carried, stacked and checkpointed with it. Every
trial is then capped by the search at `max_stepsize`.
"""

import abc

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Bool, Int, PyTree, Scalar

from .._validation import checked_float, checked_int


class AbstractFirstTrial(eqx.Module):
    """The first trial step of each Armijo search, and its memory."""

    @abc.abstractmethod
    def init(self, dtype) -> PyTree[Array]:
        """The memory before the first step (`dtype`: the parameters')."""

    @abc.abstractmethod
    def first(
        self, search, value: Scalar, grad_sq_norm: Scalar, previous: Scalar, memory
    ) -> Scalar:
        """The first trial, at most `search.max_stepsize`.

        **Arguments:** `search`, the `Armijo` tuner (its `max_stepsize` and
        `decrease_factor`); `value = f(w)`; `grad_sq_norm = ||g||^2`; `previous`,
        the step accepted at the previous step (`max_stepsize` at the start and
        after a failure); `memory`, this module's state.
        """

    @abc.abstractmethod
    def remember(
        self,
        search,
        memory,
        searched: Bool[Array, ""],
        accepted: Bool[Array, ""],
        backtracks: Int[Array, ""],
    ) -> PyTree[Array]:
        """The memory after a step: `searched` (whether the search evaluated any
        trial), `accepted`, and `backtracks` (the trials rejected before the
        accepted one, in the backtracking phase)."""

    @abc.abstractmethod
    def forward(self) -> tuple[Array, int] | None:
        """`(factor, max_increases)` of the forward phase (see `ForwardTracking`),
        or `None` for a search that only backtracks."""

    @abc.abstractmethod
    def validated(self) -> "AbstractFirstTrial":
        """The module rebuilt by its constructor (see `AbstractTuner.validated`)."""


class MaxStepsizeTrial(AbstractFirstTrial):
    """`s_0 = max_stepsize` at every step: the paper's rule (the default)."""

    def init(self, dtype):
        return None

    def first(self, search, value, grad_sq_norm, previous, memory):
        return search.max_stepsize

    def remember(self, search, memory, searched, accepted, backtracks):
        return memory

    def forward(self):
        return None

    def validated(self):
        return MaxStepsizeTrial()


class IncreasingTrial(AbstractFirstTrial):
    """`s_0 = min(increase_factor * previous, max_stepsize)`: the previous step
    times a factor (the rule of optax's `scale_by_backtracking_linesearch` and of
    Vaswani et al.'s SLS, "reset option" 1).

    **Arguments:**

    - `increase_factor`: a number >= 1.

    **Raises:** `ValueError` naming `increase_factor` for a value out of range or
    not a single number.
    """

    increase_factor: Array

    def __init__(self, increase_factor):
        self.increase_factor = checked_float(
            "increase_factor",
            increase_factor,
            lower=1.0,
            lower_open=False,
            scalar=True,
        )

    def init(self, dtype):
        return None

    def first(self, search, value, grad_sq_norm, previous, memory):
        return jnp.minimum(self.increase_factor * previous, search.max_stepsize)

    def remember(self, search, memory, searched, accepted, backtracks):
        return memory

    def forward(self):
        return None

    def validated(self):
        return IncreasingTrial(self.increase_factor)


class PolyakTrial(AbstractFirstTrial):
    """PoNoS's first trial (Galli, Rauhut and Schmidt, NeurIPS 2023, Algorithm 1;
    `PoNoS.py`): a Polyak step shrunk by the memory of past backtracks,

        s_0 = clip(f(w) / (c_p ||g||^2 + 1e-8) * rho^l_k, min_stepsize, max_stepsize),
        l_k = max(l_{k-1} + b_{k-1} - 1, 0),   l_0 = 0,

    where `rho` is the search's `decrease_factor` and `b_{k-1}` the number of
    backtracks of the previous step (the trials it rejected before accepting one).
    The memory `l` (an int32 in the state) keeps the search from starting far above
    the steps it has recently accepted, and decays by one per step without
    backtracks.

    After a failed search (no trial accepted; the step is 0) the memory restarts at
    0, as every Armijo search starts afresh after a failure (PoNoS instead moves by
    `1e-6` and adds the 99 backtracks to its memory). A step whose search is skipped
    (`Armijo(min_grad_norm=...)`) leaves it unchanged.

    **Arguments:**

    - `c_p`: the scale of the Polyak step, a number > 0 (PoNoS: 0.1).
    - `min_stepsize`: the smallest first trial, a number > 0 (PoNoS: 1e-6); the
      search's `max_stepsize` is the largest (and wins if they cross).

    **Raises:** `ValueError` naming the argument for a value out of range or not a
    single number.
    """

    c_p: Array
    min_stepsize: Array

    def __init__(self, c_p=0.1, min_stepsize=1e-6):
        self.c_p = checked_float("c_p", c_p, lower=0.0, scalar=True)
        self.min_stepsize = checked_float(
            "min_stepsize", min_stepsize, lower=0.0, scalar=True
        )

    def init(self, dtype):
        return jnp.zeros((), jnp.int32)

    def first(self, search, value, grad_sq_norm, previous, memory):
        polyak = value / (self.c_p * grad_sq_norm + 1e-8)
        shrunk = polyak * search.decrease_factor**memory
        return jnp.clip(shrunk, self.min_stepsize, search.max_stepsize)

    def remember(self, search, memory, searched, accepted, backtracks):
        after = jnp.where(accepted, jnp.maximum(memory + backtracks - 1, 0), 0)
        return jnp.where(searched, after, memory).astype(jnp.int32)

    def forward(self):
        return None

    def validated(self):
        return PolyakTrial(self.c_p, self.min_stepsize)


class ForwardTracking(AbstractFirstTrial):
    """Forward tracking (Flatland's `forward_option=10`, with a cap): start from the
    step accepted at the previous step, `s_0 = min(previous, max_stepsize)`; when
    `s_0` passes the test, try `s_0 f, s_0 f^2, ...` (`f` the `increase_factor`)
    while each passes and is at most `max_stepsize`, and accept the last that
    passes. When `s_0` fails the search backtracks as usual.

    Flatland doubles the trial and runs a whole backtracking search from it, until a
    search backtracks; for a deterministic objective that accepts the same step as
    ours when the increase factor is the inverse of the decrease factor (its
    default, 2 and 0.5), with one evaluation fewer. A trial whose objective is NaN
    or infinite is a failure here too, and ends the forward phase.

    **Arguments:**

    - `increase_factor`: the growth between forward trials, a number > 1 (default
      2).
    - `max_increases`: the most forward trials in one step, an int >= 1 (static; the
      cap `max_stepsize` usually stops the phase first).

    **Raises:** `ValueError` naming the argument for a value out of range or not a
    single number.
    """

    increase_factor: Array
    max_increases: int = eqx.field(static=True)

    def __init__(self, increase_factor=2.0, max_increases=60):
        self.increase_factor = checked_float(
            "increase_factor", increase_factor, lower=1.0, scalar=True
        )
        self.max_increases = checked_int("max_increases", max_increases, lower=1)

    def init(self, dtype):
        return None

    def first(self, search, value, grad_sq_norm, previous, memory):
        return jnp.minimum(previous, search.max_stepsize)

    def remember(self, search, memory, searched, accepted, backtracks):
        return memory

    def forward(self):
        return self.increase_factor, self.max_increases

    def validated(self):
        return ForwardTracking(self.increase_factor, self.max_increases)
