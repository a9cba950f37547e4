"""Reference values of the Armijo test: monotone and non-monotone line searches.

The Armijo search accepts a trial step `s` when

    f(w - s g) <= R_k - c s ||g||^2,

where the reference `R_k` is `f(w)` for the classical, monotone search: every accepted
step decreases the objective. A non-monotone search compares against a reference
above `f(w)`, built from the losses of the previous steps, so that it may accept a
step that increases the objective a little (Grippo, Lampariello and Lucidi, 1986;
Zhang and Hager, 2004). Galli, Rauhut and Schmidt ("Don't be so Monotone", NeurIPS
2023, PoNoS) and Galli et al. ("Flatland", ICML 2026) use them to let a line search
take steps past the edge of stability.

A reference is a small module with the interface `init(dtype) -> state` and
`update(value, state) -> (reference, state)`, called once per step with `f(w_k)` before
the search; its state lives in the tuner's state, so it is carried through the
compiled loop, stacked, vmapped and checkpointed with it. Every reference is at least
`f(w_k)`, and equals it bit for bit in its monotone limit (`ZhangHagerReference(0)`,
`GrippoReference(1)`).
"""

import abc

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, PyTree, Scalar

from .._validation import checked_float, checked_int


class AbstractReference(eqx.Module):
    """The reference value `R_k >= f(w_k)` of the Armijo test, and its memory."""

    @abc.abstractmethod
    def init(self, dtype) -> PyTree[Array]:
        """The state before the first step (`dtype`: the parameters')."""

    @abc.abstractmethod
    def update(self, value: Scalar, state: PyTree[Array]) -> tuple[Scalar, PyTree]:
        """`(R_k, new state)` from `f(w_k) = value` (finite) and the state; `R_k`
        in the dtype of `value`."""

    @abc.abstractmethod
    def validated(self) -> "AbstractReference":
        """The module rebuilt by its constructor (see `AbstractTuner.validated`)."""


class MonotoneReference(AbstractReference):
    """`R_k = f(w_k)`: the classical Armijo search (the default). No state."""

    def init(self, dtype):
        return None

    def update(self, value, state):
        return value, state

    def validated(self):
        return MonotoneReference()


class ZhangHagerReference(AbstractReference):
    """The Zhang-Hager average of the past losses (Zhang and Hager, 2004, eq. 1.4;
    PoNoS's `zhang_xi`):

        Q_k = xi Q_{k-1} + 1,    C_k = (xi Q_{k-1} C_{k-1} + f(w_k)) / Q_k,
        R_k = max(C_k, f(w_k)),    Q_{-1} = C_{-1} = 0.

    `xi = 0` gives `R_k = f(w_k)` (the monotone search, bit for bit); `xi = 1` (the
    default, PoNoS's) makes `C_k` the plain mean of every loss so far. The maximum
    with `f(w_k)` is PoNoS's (`PoNoS.py`, `ref_value = max(C_k, loss)`), so that the
    reference never lies below the current loss.

    The state is `(Q, C)`, in the parameters' dtype widened to at least float32 (with
    `xi = 1`, `Q` counts the steps).

    **Arguments:**

    - `xi`: the weight of the past, a number in [0, 1].

    **Raises:** `ValueError` naming `xi` for a value out of range or not a single
    number.
    """

    xi: Array

    def __init__(self, xi=1.0):
        self.xi = checked_float(
            "xi",
            xi,
            lower=0.0,
            upper=1.0,
            lower_open=False,
            upper_open=False,
            scalar=True,
        )

    def init(self, dtype):
        wide = jnp.promote_types(dtype, jnp.float32)
        return jnp.zeros((), wide), jnp.zeros((), wide)

    def update(self, value, state):
        q, mean = state
        new_q = self.xi * q + 1
        new_mean = (self.xi * q * mean + value.astype(q.dtype)) / new_q
        new_q, new_mean = new_q.astype(q.dtype), new_mean.astype(q.dtype)
        return jnp.maximum(new_mean.astype(value.dtype), value), (new_q, new_mean)

    def validated(self):
        return ZhangHagerReference(self.xi)


class GrippoReference(AbstractReference):
    """The largest of the last `window` losses (Grippo, Lampariello and Lucidi,
    1986):

        R_k = max(f(w_{k - window + 1}), ..., f(w_k)),

    over the losses seen so far when fewer. `window = 1` is the monotone search (bit
    for bit); Grippo et al.'s memory `M` is `window - 1`. The state holds the
    previous `window - 1` losses (`-inf` before they are seen), in the parameters'
    dtype.

    **Arguments:**

    - `window`: how many losses, the current one included, an int >= 1 (static:
      it sets the state's shape).

    **Raises:** `ValueError` naming `window` for a value that is not an int >= 1.
    """

    window: int = eqx.field(static=True)

    def __init__(self, window=10):
        self.window = checked_int("window", window, lower=1)

    def init(self, dtype):
        return jnp.full((self.window - 1,), -jnp.inf, dtype)

    def update(self, value, state):
        if self.window == 1:  # no past: the monotone search
            return value, state
        past = jnp.max(state).astype(value.dtype)
        new_state = jnp.concatenate([state[1:], value.astype(state.dtype)[None]])
        return jnp.maximum(value, past), new_state

    def validated(self):
        return GrippoReference(self.window)
