"""The Hessian at one point as an operator that every estimator of a measurement
shares: products computed afresh, or from one linearisation of the gradient.

A Hessian-vector product by forward over reverse (`jax.jvp` of `jax.grad`) pays,
at every product, the forward and backward passes at the point (the primal) and
then their tangents. `jax.linearize` of the gradient pays the primal once and keeps
what the tangent pass needs (the residuals: activations, masks, inputs), after
which every product is a tangent pass only. A measurement makes many products at
one point (power iteration, Lanczos, LOBPCG, the trace, the curvature along the
gradient), so it linearises once and hands the same operator to all of them.

The residuals cost memory: about as much as the activations of a forward and
backward pass over *all* the examples at once, whatever the chunking. For an
objective evaluated in chunks (`Objective` with a `chunk_size`, from
`objective_fn`), the gradient is linearised chunk by chunk (a `lax.map` over the
chunks; no chunk is rematerialised, since that would recompute the primal at every
product) and every product sums the chunks' tangent passes (a `lax.scan`), so the
peak beyond the residuals is one chunk's. `linearised_bytes` gives the residuals'
size from shapes alone (nothing is computed), and `hessian_operator(...,
products="auto")` linearises only when that is at most `max_bytes`, falling back to
fresh products otherwise.

The two give the same products up to float rounding (another order of the same
sums): compare them with a tolerance.
"""

import abc
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, PyTree, Scalar

from .._objective import Objective
from .._tree import tree_axpy, tree_dot
from .._validation import checked_int, checked_params

PRODUCTS = ("auto", "linearised", "fresh")
# `max_bytes` where the device does not report its memory (CPU).
DEFAULT_MAX_BYTES = 2**30


class AbstractHessianOperator(eqx.Module):
    """The Hessian `H` of an objective `fn` at `params`, seen through products.

    `mv(vector)` is `H @ vector` for a pytree `vector` like `params`, in the
    parameters' dtypes; `value_and_grad()` is `(fn(params), grad fn(params))`.
    """

    params: eqx.AbstractVar[PyTree[Array]]

    @abc.abstractmethod
    def mv(self, vector: PyTree[Array]) -> PyTree[Array]:
        """`H @ vector`, a pytree like `params`."""

    @abc.abstractmethod
    def value_and_grad(self) -> tuple[Scalar, PyTree[Array]]:
        """The objective's value and gradient at `params`."""


class FreshProducts(AbstractHessianOperator):
    """Every product forward over reverse from scratch, `jax.jvp(jax.grad(fn),
    (params,), (vector,))`: no memory kept between products, the primal paid at
    each one (about two or three gradients a product)."""

    fn: Callable[[PyTree[Array]], Scalar]
    params: PyTree[Array]

    def mv(self, vector):
        return jax.jvp(jax.grad(self.fn), (self.params,), (vector,))[1]

    def value_and_grad(self):
        return jax.value_and_grad(self.fn)(self.params)


class LinearisedProducts(AbstractHessianOperator):
    """Products from one linearisation of the gradient at `params` (build it with
    `hessian_operator` or `linearise`).

    Holds the linear maps of `jax.linearize(jax.value_and_grad(part), params)`
    for each part of the objective (each chunk of examples, stacked on a leading
    axis, and the remainder chunk), their primal values and gradients summed, and
    `shift`, the weight decay, whose penalty `shift/2 ||w||^2` has the Hessian
    `shift * I` and is added in closed form.
    """

    params: PyTree[Array]
    value: Scalar
    grad: PyTree[Array]
    shift: Scalar
    chunks: PyTree  # the arrays of the chunks' linear maps, stacked; or None
    rest: PyTree  # the arrays of the remainder's (or the whole fn's) map; or None
    # The rest of each closure-converted map (its program), or None.
    chunks_program: PyTree = eqx.field(static=True)
    rest_program: PyTree = eqx.field(static=True)

    def mv(self, vector):
        def apply(arrays, program, out):
            _, product = eqx.combine(arrays, program)(vector)
            return jax.tree.map(jnp.add, out, product)

        def add_chunk(out, arrays):
            return apply(arrays, self.chunks_program, out), None

        out = jax.tree.map(lambda v: self.shift * v, vector)
        if self.chunks is not None:
            out = lax.scan(add_chunk, out, self.chunks)[0]
        if self.rest is not None:
            out = apply(self.rest, self.rest_program, out)
        return jax.tree.map(lambda o, p: o.astype(p.dtype), out, self.params)

    def value_and_grad(self):
        return self.value, self.grad

    @property
    def nbytes(self) -> int:
        """The bytes of the arrays the linearisation keeps (residuals, and the
        point itself)."""
        return tree_nbytes((self.chunks, self.rest))


def tree_nbytes(tree) -> int:
    """The bytes of the arrays (or shape-dtype structs) of `tree`."""
    leaves = [x for x in jax.tree.leaves(tree) if hasattr(x, "dtype")]
    return int(sum(x.size * jnp.dtype(x.dtype).itemsize for x in leaves))


def _linearised_part(part, params):
    """`(value, grad, arrays, static)` of one part's linearised gradient: the
    linear map closure-converted (`eqx.filter_closure_convert`) and split into its
    arrays (residuals) and the rest (its program)."""
    (value, grad), linear = jax.linearize(jax.value_and_grad(part), params)
    arrays, static = eqx.partition(
        eqx.filter_closure_convert(linear, params), eqx.is_array
    )
    return value, grad, arrays, static


def _chunks(fn: Objective):
    """`fn`'s examples in chunks of `chunk_size`, stacked, and the remainder (or
    None).

    Chunk `j` of `m` takes the examples `j, j + m, j + 2m, ...`: where the examples
    are sharded over devices in contiguous blocks, every chunk then spreads over
    all the devices, and so do the residuals of its linearisation (contiguous
    chunks would each live on one device and be gathered). The mean over examples
    is the same sum in another order.
    """
    n = fn.x.shape[0]
    size = n if fn.chunk_size is None else min(fn.chunk_size, n)
    m = n // size
    whole = m * size

    def strided(a):
        return jnp.swapaxes(a[:whole].reshape(size, m, *a.shape[1:]), 0, 1)

    rest = None if whole == n else (fn.x[whole:], fn.y[whole:])
    return (strided(fn.x), strided(fn.y)), rest


def linearise(
    fn: Callable[[PyTree[Array]], Scalar], params: PyTree[Array]
) -> LinearisedProducts:
    """The Hessian of `fn` at `params` from one linearisation of its gradient.

    An `Objective` (from `objective_fn`) is linearised chunk by chunk, its
    penalty in closed form; any other `fn` as a whole (an `fn` that
    rematerialises inside, as `objective(..., chunk_size=...)` does, then
    recomputes its primal at every product: pass the `Objective` instead).

    **Raises:** `ValueError` when `params` holds a leaf that is not a
    floating-point array.
    """
    checked_params("params", params)
    if not isinstance(fn, Objective):
        value, grad, arrays, program = _linearised_part(fn, params)
        zero = jnp.zeros((), value.dtype)
        return LinearisedProducts(
            params, value, grad, zero, None, arrays, None, program
        )
    (xs, ys), rest = _chunks(fn)
    programs = {}

    def one(chunk):
        value, grad, arrays, programs["chunks"] = _linearised_part(
            lambda p: fn.data_part(p, *chunk), params
        )
        return value, grad, arrays

    values, grads, chunks = lax.map(one, (xs, ys))
    value, grad = jnp.sum(values), jax.tree.map(lambda g: jnp.sum(g, 0), grads)
    rest_arrays = None
    if rest is not None:
        rest_value, rest_grad, rest_arrays, programs["rest"] = _linearised_part(
            lambda p: fn.data_part(p, *rest), params
        )
        value, grad = value + rest_value, jax.tree.map(jnp.add, grad, rest_grad)
    # The penalty, weight_decay/2 ||w||^2: its gradient and Hessian in closed form.
    shift = jnp.asarray(fn.weight_decay, value.dtype)
    value = value + shift * tree_dot(params, params) / 2
    grad = tree_axpy(shift, params, grad)
    return LinearisedProducts(
        params,
        value,
        grad,
        shift,
        chunks,
        rest_arrays,
        programs["chunks"],
        programs.get("rest"),
    )


def linearised_bytes(fn: Callable[[PyTree[Array]], Scalar], params) -> int:
    """The bytes that `linearise(fn, params)` keeps, from shapes alone (traced,
    never computed)."""
    shapes = eqx.filter_eval_shape(lambda: linearise(fn, params))
    return shapes.nbytes


def default_max_bytes() -> int:
    """A quarter of the memory of the first local device where it reports one
    (`memory_stats()["bytes_limit"]` on GPUs and TPUs), else `DEFAULT_MAX_BYTES`
    (1 GiB, on CPU)."""
    stats = jax.local_devices()[0].memory_stats() or {}
    limit = stats.get("bytes_limit")
    return DEFAULT_MAX_BYTES if not limit else int(limit) // 4


def hessian_operator(
    fn: Callable[[PyTree[Array]], Scalar],
    params: PyTree[Array],
    *,
    products: str = "auto",
    max_bytes=None,  # checked by `checked_int`, whose message names it
) -> AbstractHessianOperator:
    """The Hessian of `fn` at `params` as an operator to share between estimators
    (see the module docstring).

    **Arguments:**

    - `fn`: the objective, `params -> scalar`; an `Objective` (from
      `objective_fn`) is linearised chunk by chunk.
    - `params`: where to differentiate: a pytree of floating-point arrays.
    - `products`: `"linearised"` (`linearise`: one linearisation, then a tangent
      pass per product), `"fresh"` (`FreshProducts`: forward over reverse at every
      product, no memory kept), or `"auto"` (the default): linearised when the
      linearisation keeps at most `max_bytes` (`linearised_bytes`, known from
      shapes at trace time, so the choice never depends on values), fresh
      otherwise.
    - `max_bytes`: the limit of `"auto"`, in bytes (default `default_max_bytes()`:
      a quarter of the device's memory where it reports one, else 1 GiB).

    **Returns:** an `AbstractHessianOperator`.

    **Raises:** `ValueError` naming the argument for an unknown `products`, a
    `max_bytes` that is not an int >= 0, or `params` holding a leaf that is not a
    floating-point array.
    """
    checked_params("params", params)
    if products not in PRODUCTS:
        raise ValueError(f"`products` must be one of {PRODUCTS}, got {products!r}.")
    if max_bytes is None:
        max_bytes = default_max_bytes()
    max_bytes = checked_int("max_bytes", max_bytes, lower=0)
    if products == "auto":
        fits = linearised_bytes(fn, params) <= max_bytes
        products = "linearised" if fits else "fresh"
    if products == "linearised":
        return linearise(fn, params)
    return FreshProducts(fn, params)


def as_operator(fn, params, operator):
    """`operator`, or fresh products of `fn` at `params` when it is `None`."""
    if operator is None:
        return FreshProducts(fn, params)
    if not isinstance(operator, AbstractHessianOperator):
        raise ValueError(
            "`operator` must be an AbstractHessianOperator (from "
            f"`eqtuners.hessian_operator`) or None, got {type(operator).__name__}."
        )
    return operator
