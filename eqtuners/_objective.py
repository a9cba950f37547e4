"""The objective the tuners see: squared loss on one-hot targets plus weight decay.

    objective(w) = (1/n) sum_i 1/2 ||model_w(x_i) - e_{y_i}||^2 + weight_decay/2 ||w||^2

where `e_y` is the one-hot vector of class `y`, the sum over classes is not divided by
the number of classes, and `||w||^2` runs over every floating-point array of the model
(weights and biases). This is `optax.l2_loss(logits, one_hot).sum(-1).mean()` plus the
penalty, the normalisation common in the edge-of-stability literature.

The mean over examples can be evaluated in chunks of `chunk_size` examples (a
`lax.map` whose body is rematerialised), so that the value, the gradient and
Hessian-vector products hold the activations of one chunk at a time instead of the
whole dataset. Chunking changes results only by floating-point rounding.
"""

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, Scalar

from ._tree import tree_dot
from ._validation import checked_float, checked_int


def squared_loss(
    logits: Float[Array, " classes"], label: Int[Array, ""]
) -> Float[Array, ""]:
    """`1/2 ||logits - e_label||^2` for one example."""
    target = jax.nn.one_hot(label, logits.shape[-1], dtype=logits.dtype)
    return 0.5 * jnp.sum((logits - target) ** 2)


def data_loss(
    model,
    x: Float[Array, "n ..."],
    y: Int[Array, " labels"],
    chunk_size: int | None = None,
) -> Scalar:
    """The mean squared loss of `model` over the examples `(x, y)`.

    **Arguments:**

    - `model`: a callable on one example, `model(x[i]) -> logits`.
    - `x`, `y`: inputs and integer labels, with the examples on the leading axis.
    - `chunk_size`: evaluate this many examples at a time (`None`: all at once).
    """
    return _mean_over_examples(
        lambda xi, yi: squared_loss(model(xi), yi), x, y, chunk_size
    )


def _mean_over_examples(per_example, x, y, chunk_size) -> Scalar:
    """The mean of `per_example(x[i], y[i])` over the examples, `chunk_size` at a
    time in a `lax.map` (whose body is rematerialised under differentiation), or
    all at once."""
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"`x` and `y` must hold the same number of examples, got {x.shape[0]} "
            f"and {y.shape[0]}."
        )
    checked_int("chunk_size", chunk_size, allow_none=True)

    def one(example):
        return per_example(*example)

    if chunk_size is None or chunk_size >= x.shape[0]:
        return jnp.mean(jax.vmap(one)((x, y)))
    return jnp.mean(jax.lax.map(jax.checkpoint(one), (x, y), batch_size=chunk_size))


def weight_penalty(model) -> Scalar:
    """`1/2 ||w||^2` over every floating-point array of `model`."""
    params = eqx.filter(model, eqx.is_inexact_array)
    return 0.5 * tree_dot(params, params)


def objective(
    model,
    x: Float[Array, "n ..."],
    y: Int[Array, " labels"],
    *,
    weight_decay=1e-4,
    chunk_size: int | None = None,
) -> Scalar:
    """`data_loss(model, x, y) + weight_decay * weight_penalty(model)`.

    **Arguments:**

    - `model`, `x`, `y`, `chunk_size`: as for `data_loss`.
    - `weight_decay`: >= 0 (the paper: 1e-4).
    """
    weight_decay = checked_float(
        "weight_decay", weight_decay, lower=0.0, lower_open=False
    )
    return data_loss(model, x, y, chunk_size) + weight_decay * weight_penalty(model)


def accuracy(
    model,
    x: Float[Array, "n ..."],
    y: Int[Array, " labels"],
    chunk_size: int | None = None,
) -> Scalar:
    """The fraction of examples whose largest logit is their label's, in [0, 1].

    **Arguments:**

    - `model`, `x`, `y`, `chunk_size`: as for `data_loss` (the test split of a
      `Dataset`, say).
    """

    def correct(xi, yi):
        return (jnp.argmax(model(xi)) == yi).astype(jnp.float32)

    return _mean_over_examples(correct, x, y, chunk_size)


class Objective(eqx.Module):
    """The objective on a set of examples as a function of the parameters alone:
    what `objective_fn` returns.

    `objective(params)` is `objective(eqx.combine(params, static), x, y, ...)`.
    It keeps the examples and the chunking, so that the Hessian-vector products of
    the sharpness estimators can be linearised chunk by chunk
    (`eqtuners.hessian_operator`): `data_part(params, x_chunk, y_chunk)` is one
    chunk's share of the mean loss, and the penalty's Hessian is `weight_decay`
    times the identity.

    **Fields:** `static` (the model without its floating-point arrays), `x`, `y`
    (the examples), `weight_decay`, `chunk_size` (as for `objective`).
    """

    static: Any
    x: Array
    y: Array
    weight_decay: Array
    chunk_size: int | None = eqx.field(static=True)

    def __call__(self, params) -> Scalar:
        return objective(
            eqx.combine(params, self.static),
            self.x,
            self.y,
            weight_decay=self.weight_decay,
            chunk_size=self.chunk_size,
        )

    def data_part(self, params, x, y) -> Scalar:
        """`sum_i 1/2 ||model(x_i) - e_{y_i}||^2 / n` over the examples `(x, y)`
        given (a chunk), `n` the number of examples of the whole objective: the
        chunks' parts sum to `data_loss`."""
        model = eqx.combine(params, self.static)
        losses = jax.vmap(lambda xi, yi: squared_loss(model(xi), yi))(x, y)
        return jnp.sum(losses) / self.x.shape[0]


def objective_fn(
    model,
    x: Float[Array, "n ..."],
    y: Int[Array, " labels"],
    *,
    weight_decay=1e-4,
    chunk_size: int | None = None,
) -> tuple[Objective, Any]:
    """The objective on `(x, y)` as a function of the model's parameters alone, for
    the tuners, the sharpness estimators and `jax.grad`.

    The model is split with `eqx.partition(model, eqx.is_inexact_array)`; its
    static part is closed over, so

        fn, params = objective_fn(model, x, y)
        fn(params) == objective(model, x, y)

    **Arguments:** as for `objective`.

    **Returns:** `(fn, params)`: `fn(params) -> scalar`, an `Objective` (which
    also tells the sharpness estimators how the examples are chunked), and the
    model's floating-point arrays (`eqx.combine(params, static)` is the model
    again).

    **Raises:** `ValueError` for a negative `weight_decay` or an invalid
    `chunk_size`.
    """
    weight_decay = checked_float(
        "weight_decay", weight_decay, lower=0.0, lower_open=False
    )
    checked_int("chunk_size", chunk_size, allow_none=True)
    params, static = eqx.partition(model, eqx.is_inexact_array)
    return Objective(static, x, y, weight_decay, chunk_size), params
