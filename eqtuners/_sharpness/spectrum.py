"""The Hessian spectrum past its top: trace, density, bottom, and blocks.

`sharpness` gives the top eigenvalue. The functions here give the rest of what
PyHessian (Yao et al. 2020) and hessian-eigenthings report, from the same
Hessian-vector products (`hessian_vector_product`, forward over reverse, or those
of an `operator` from `hessian_operator`, linearised once and shared), so an
objective evaluated in chunks of examples gives chunked products, the Hessian is
never formed, and every function works at any model size and inside `jax.jit`
(their shapes are fixed by their arguments):

- `hessian_trace`: Hutchinson's estimator, `tr H ~ mean_i v_i^T H v_i` over
  Rademacher probes `v_i` (entries +-1), with its standard error; one product per
  probe. For a diagonal Hessian every probe gives the trace exactly. The probes and
  the quadratic forms are matfree's (`matfree.stochtrace`).
- `spectral_density`: stochastic Lanczos quadrature (Ubaru, Chen and Saad 2017;
  Ghorbani, Krishnan and Xiao 2019): `m` Lanczos steps from each of a few unit
  Rademacher probes `u` give the Gauss quadrature of the spectral measure of `H`
  seen from `u`, `sum_j u_j^2 delta(t - lambda_j)` (`u_j` the component of `u` on
  the `j`-th eigenvector): its nodes are the eigenvalues of the Lanczos tridiagonal
  matrix `T_m` and its weights the squared first components of their eigenvectors.
  The weights sum to one, and the rule integrates polynomials of degree up to
  `2m - 1` exactly, so its mean is `u^T H u` and its second moment `u^T H^2 u`. The
  mean over probes estimates the spectral density `(1/n) sum_i delta(t -
  lambda_i)`; `spectral_density_on_grid` smooths it with a Gaussian kernel. The
  Lanczos runs are ours (`lanczos`, as for `sharpness`), not matfree's
  `decomp.tridiag_sym`: matfree 0.6 fills the tridiagonal matrix with NaN when a
  probe's Krylov space is exhausted before the last step (a Hessian of low rank, or
  with repeated eigenvalues, as networks often have), where ours stops with an
  exact quadrature.
- `most_negative_eigenvalue`: the smallest algebraic eigenvalue, by Lanczos (or
  LOBPCG) on `-H`, with the residual and `converged` flag of those estimators.
- `blockwise_sharpness`: the top eigenvalue of each diagonal block of the Hessian,
  one block per parameter array (or per layer): the Hessian of the objective as a
  function of that block alone, the others held fixed.

**Cost**, in Hessian-vector products (each about two or three gradients):
`num_samples` for the trace, at most `num_samples * lanczos_steps` for the
density (fewer where a Krylov space is exhausted), and for the two eigenvalue
functions what their estimator needs, per block for `blockwise_sharpness`.
Probes are taken one after the other (`lax.map`), so memory is that of one
product, plus the Lanczos basis (`lanczos_steps * num_params` numbers) for the
density.
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jaxtyping import Array, Float, PyTree, Scalar
from matfree import stochtrace

from .._tree import tree_dtype
from .._validation import checked_float, checked_int, checked_key, checked_params
from ._base import AbstractSharpnessEstimator
from ._function import make_estimator, sharpness
from ._hvp import flat_hessian, normalise, random_direction, work_dtype
from ._operator import as_operator
from .lanczos import Lanczos, _ritz_pairs, lanczos
from .lobpcg import LOBPCG
from .power import PowerIteration


def _num_params(params) -> int:
    return sum(jnp.size(leaf) for leaf in jax.tree.leaves(params))


def _checked_key(key):
    return jax.random.key(0) if key is None else checked_key("key", key)


def hessian_trace(
    fn: Callable[[PyTree[Array]], Scalar],
    params: PyTree[Array],
    *,
    num_samples: int = 100,
    key=None,  # checked by `checked_key`, whose message says what to pass
    operator=None,  # checked by `as_operator`, whose message names it
) -> tuple[Scalar, dict[str, Array]]:
    """The trace of the Hessian of `fn` at `params`, by Hutchinson's estimator.

    `tr H = E[v^T H v]` for a random `v` of independent entries +-1 (Hutchinson
    1990); the mean over `num_samples` probes estimates it, with the smallest
    variance among probes of independent entries, `2 (||H||_F^2 - sum_i H_ii^2)`
    per probe (zero for a diagonal Hessian).

    **Arguments:**

    - `fn`: the objective, `params -> scalar`.
    - `params`: where to measure: a pytree of floating-point arrays.
    - `num_samples`: the number of probes, >= 2 (one Hessian-vector product each).
    - `key`: draws the probes (default `jax.random.key(0)`).
    - `operator`: the Hessian of `fn` at `params` to take the products from
      (`hessian_operator`); `None`: fresh products.

    **Returns:** `(trace, info)`: the estimate, a scalar in the parameters' dtype
    (the products and sums run in at least float32), and `info` with `stderr` (the
    standard error of the mean over probes, `std(samples, ddof=1) /
    sqrt(num_samples)`), `samples` (`v_i^T H v_i`, shape `(num_samples,)`) and
    `num_hvps` (= `num_samples`).

    **Raises:** `ValueError` naming the argument when `num_samples` is not an int
    >= 2, `key` is not a PRNG key, `operator` is not an `AbstractHessianOperator`,
    or `params` holds a leaf that is not a floating-point array.
    """
    checked_params("params", params)
    num_samples = checked_int("num_samples", num_samples, lower=2)
    key = _checked_key(key)
    matvec, _, _ = flat_hessian(as_operator(fn, params, operator))
    probe_like = jnp.zeros(_num_params(params), work_dtype(params))
    draw_probe = stochtrace.sampler_signs(probe_like, num=1)
    quadratic_form = stochtrace.monte_carlo_trace()

    def sample(probe_key):
        return quadratic_form(matvec, draw_probe(probe_key)[0])

    # One probe at a time (matfree's estimator vmaps them): the memory of one product.
    samples = lax.map(sample, jax.random.split(key, num_samples))
    dtype = tree_dtype(params)
    info = {
        "stderr": (jnp.std(samples, ddof=1) / np.sqrt(num_samples)).astype(dtype),
        "samples": samples.astype(dtype),
        "num_hvps": jnp.array(num_samples),
    }
    return jnp.mean(samples).astype(dtype), info


class SpectralQuadrature(NamedTuple):
    """The Gauss quadrature of each probe of `spectral_density`.

    - `nodes`: shape `(num_samples, steps)`, each row largest first (the Ritz
      values of one probe's Lanczos run).
    - `weights`: same shape, >= 0, each row summing to one.

    Past the steps a probe took (its Krylov space was exhausted), a row holds
    copies of its smallest node with weight zero, so sums over the row, such as
    `jnp.sum(weights * nodes**2, axis=1)`, need no masking.
    """

    nodes: Float[Array, "probes steps"]
    weights: Float[Array, "probes steps"]


def spectral_density(
    fn: Callable[[PyTree[Array]], Scalar],
    params: PyTree[Array],
    *,
    num_samples: int = 4,
    lanczos_steps: int = 80,
    key=None,  # checked by `checked_key`, whose message says what to pass
    operator=None,  # checked by `as_operator`, whose message names it
) -> tuple[SpectralQuadrature, dict[str, Array]]:
    """The spectral density of the Hessian of `fn` at `params`, by stochastic
    Lanczos quadrature (see the module docstring).

    From each unit probe `u = v / sqrt(n)` (`v` of entries +-1, `n` parameters),
    `lanczos_steps` Lanczos steps with full reorthogonalisation build the
    tridiagonal `T` (`Q^T H Q` on the Krylov basis `Q` of `u`); its eigenpairs
    `(theta_j, s_j)` give the nodes `theta_j` and weights `s_{1j}^2` of the Gauss
    quadrature of the spectral measure seen from `u` (Golub and Meurant, *Matrices,
    Moments and Quadrature*, 2010, ch. 6). A run that exhausts its Krylov space
    stops there, with an exact quadrature. `lanczos_steps` trades resolution for
    cost: the extreme nodes converge to the extreme eigenvalues first; the bulk is
    resolved to about its width over `lanczos_steps`. Ghorbani et al. (2019) use 90
    steps and 10 probes for networks of millions of parameters; the estimate of
    the density varies little between probes when the network is large.

    **Arguments:**

    - `fn`: the objective, `params -> scalar`.
    - `params`: where to measure: a pytree of floating-point arrays.
    - `num_samples`: the number of probes, >= 1.
    - `lanczos_steps`: the Lanczos steps (Hessian-vector products) per probe, >= 1;
      at most the number of parameters are taken.
    - `key`: draws the probes (default `jax.random.key(0)`).
    - `operator`: the Hessian of `fn` at `params` to take the products from
      (`hessian_operator`); `None`: fresh products.

    **Returns:** `(quadrature, info)`: `quadrature` a `SpectralQuadrature` of
    `nodes` and `weights`, each of shape `(num_samples, min(lanczos_steps, n))`, in
    at least float32 (turn it into a density with `spectral_density_on_grid`);
    `info` with `num_steps` (the steps each probe took, shape `(num_samples,)`),
    `num_hvps` (their sum), and `trace` and `trace_stderr`: `n` times the mean over
    probes of `u^T H u = sum_j w_j theta_j`, which is Hutchinson's estimator on the
    same probes, with its standard error (NaN for one probe).

    **Raises:** `ValueError` naming the argument for a count that is not an int >=
    1, a `key` that is not a PRNG key, an `operator` that is not an
    `AbstractHessianOperator`, or `params` holding a leaf that is not a
    floating-point array.
    """
    checked_params("params", params)
    num_samples = checked_int("num_samples", num_samples)
    lanczos_steps = checked_int("lanczos_steps", lanczos_steps)
    key = _checked_key(key)
    matvec, _, _ = flat_hessian(as_operator(fn, params, operator))
    size = _num_params(params)
    steps = min(lanczos_steps, size)
    work = work_dtype(params)

    def quadrature(probe_key):
        probe = jax.random.rademacher(probe_key, (size,), work)
        # A negative tolerance never stops on the residual: the run takes all its
        # steps, or stops where the Krylov space is exhausted.
        result = lanczos(matvec, probe, max_steps=steps, tol=-1.0, k=1)
        taken = result.num_steps
        values, vectors = _ritz_pairs(result.alphas, result.betas, taken)
        used = jnp.arange(steps) < taken
        nodes = jnp.where(used, values, values[taken - 1])
        weights = jnp.where(used, vectors[0] ** 2, 0)
        return nodes, weights, taken

    nodes, weights, taken = lax.map(quadrature, jax.random.split(key, num_samples))
    means = size * jnp.sum(weights * nodes, axis=1)
    stderr = (
        jnp.std(means, ddof=1) / np.sqrt(num_samples)
        if num_samples > 1
        else jnp.full((), jnp.nan, work)
    )
    info = {
        "num_steps": taken,
        "num_hvps": jnp.sum(taken),
        "trace": jnp.mean(means),
        "trace_stderr": stderr,
    }
    return SpectralQuadrature(nodes, weights), info


def spectral_density_on_grid(
    quadrature,  # a `SpectralQuadrature` or any pair of arrays; checked below
    *,
    width=None,
    grid=None,
    num_points: int = 1000,
) -> tuple[Float[Array, " points"], Float[Array, " points"]]:
    """The quadrature of `spectral_density` smoothed into a density on a grid.

        density(t) = (1/S) sum_{s=1}^{S} sum_j w_{sj} N(t; theta_{sj}, width^2)

    over the `S` probes, with `N` the Gaussian density: a density in `t` that
    integrates to one over the real line (Ghorbani et al. 2019, eq. 4), whose mean
    is the quadrature's and whose variance is the quadrature's plus `width^2`.

    **Arguments:**

    - `quadrature`: `(nodes, weights)`, as `spectral_density` returns them: arrays
      of one shape, `(steps,)` for one probe or `(num_samples, steps)`.
    - `width`: the standard deviation of the kernel, > 0, in the units of the
      eigenvalues (default: 1/100 of the span of the nodes, or of their largest
      magnitude when it is larger). The grid's spacing should be well below it.
    - `grid`: the points `t`, a 1-D array (default: `num_points` points evenly
      spaced from the smallest node minus `5 width` to the largest plus `5 width`,
      which holds all but about 1e-6 of the mass).
    - `num_points`: the size of the default grid, >= 2.

    **Returns:** `(grid, density)`, two arrays of shape `(points,)`.

    **Raises:** `ValueError` naming the argument when `nodes` and `weights` differ
    in shape or are not 1-D or 2-D, `width` is not a finite number > 0, `grid` is
    not 1-D, or `num_points` is not an int >= 2.
    """
    if not isinstance(quadrature, tuple) or len(quadrature) != 2:
        raise ValueError(
            "`quadrature` must be the pair `(nodes, weights)` that "
            f"`spectral_density` returns, got {type(quadrature).__name__}."
        )
    nodes, weights = (jnp.asarray(a) for a in quadrature)
    if nodes.shape != weights.shape or nodes.ndim not in (1, 2):
        raise ValueError(
            "`quadrature` must hold `nodes` and `weights` of one shape, "
            f"(steps,) or (num_samples, steps); got {nodes.shape} and "
            f"{weights.shape}."
        )
    nodes, weights = nodes.reshape(-1, nodes.shape[-1]), weights.reshape(nodes.shape)
    if width is None:
        span = jnp.max(nodes) - jnp.min(nodes)
        scale = jnp.maximum(span, jnp.max(jnp.abs(nodes)))
        width = jnp.where(scale > 0, scale / 100, 1.0)
    else:
        width = checked_float("width", width, lower=0.0, scalar=True)
    if grid is None:
        num_points = checked_int("num_points", num_points, lower=2)
        low, high = jnp.min(nodes) - 5 * width, jnp.max(nodes) + 5 * width
        grid = jnp.linspace(low, high, num_points, dtype=nodes.dtype)
    else:
        grid = jnp.asarray(grid)
        if grid.ndim != 1:
            raise ValueError(f"`grid` must be a 1-D array, got shape {grid.shape}.")
    distance = (grid[:, None, None] - nodes[None]) / width
    kernel = jnp.exp(-0.5 * distance**2) / (width * np.sqrt(2 * np.pi))
    density = jnp.sum(weights[None] * kernel, axis=(1, 2)) / nodes.shape[0]
    return grid, density


def _bottom_estimator(method, tol, max_iters, k, name="method"):
    estimator = make_estimator(method, tol=tol, max_iters=max_iters, k=k)
    if isinstance(estimator, Lanczos | LOBPCG):
        return estimator
    raise ValueError(
        f"`{name}` must be 'lanczos', 'lobpcg', or a `Lanczos` or `LOBPCG` "
        "estimator: they find the largest *algebraic* eigenvalue of -H; power "
        "iteration and the directional curvature do not (power iteration finds "
        f"the largest magnitude), got {method!r}."
    )


def most_negative_eigenvalue(
    fn: Callable[[PyTree[Array]], Scalar],
    params: PyTree[Array],
    *,
    method: str | AbstractSharpnessEstimator = "lanczos",
    key=None,  # checked by `checked_key`, whose message says what to pass
    init: PyTree[Array] | None = None,
    tol=None,
    max_iters: int | None = None,
    k: int | None = None,
) -> tuple[Scalar, dict[str, Array]]:
    """The smallest algebraic eigenvalue of the Hessian of `fn` at `params`.

    It is the largest eigenvalue of `-H`, found by `sharpness` with `method` on
    `-fn`, with the same stopping rule and report: `converged` holds when `||H v -
    lambda v|| <= tol * |lambda|`. Negative when `H` is indefinite (a saddle,
    early training, after a loss spike), it measures how far from convex the
    objective is around `params`. When the most negative eigenvalue is small in
    magnitude and sits inside the bulk of near-zero eigenvalues, as for a network
    near a minimum, a relative residual is hard to reach: the run then ends at
    `max_iters` with `converged` false, and `residual` bounds the error in absolute
    terms (some eigenvalue lies within `residual` of the estimate).

    **Arguments:**

    - `fn`, `params`, `key`, `init`, `tol`, `max_iters`: as for `sharpness`.
    - `method`: `"lanczos"` (the default), `"lobpcg"`, or a `Lanczos` or `LOBPCG`
      estimator (power iteration finds the eigenvalue of largest magnitude, which
      is not this one).
    - `k`: the number of smallest eigenvalues in `info["bottom_k"]` (default 1).

    **Returns:** `(estimate, info)`: `info` has `num_hvps`, `converged`, `residual`
    (`||H v - estimate v||`) and `eigenvector` (`v`) as `sharpness` reports them,
    and `bottom_k`, the `k` smallest eigenvalues found, smallest first.

    **Raises:** `ValueError` naming the argument for a method other than those
    above, a setting out of range, an `init` that is zero or not shaped like
    `params`, or `params` holding a leaf that is not a floating-point array.
    """
    estimator = _bottom_estimator(method, tol, max_iters, k)
    key = _checked_key(key)
    estimate, info = sharpness(
        lambda p: -fn(p), params, method=estimator, key=key, init=init
    )
    info = dict(info)
    info["bottom_k"] = -info.pop("top_k")
    return -estimate, info


def _block_labels(blocks, params):
    """The label of each leaf of `params` (in leaf order), from `blocks`."""
    paths = [path for path, _ in jax.tree_util.tree_leaves_with_path(params)]
    if isinstance(blocks, str) and blocks in ("leaf", "layer"):
        parts = paths if blocks == "leaf" else [path[:-1] for path in paths]
        return [jax.tree_util.keystr(tuple(part)) or "params" for part in parts]
    # A lone string is a mistyped mode, not the label of a lone array.
    same = not isinstance(blocks, str) and (
        jax.tree.structure(blocks) == jax.tree.structure(params)
    )
    labels = jax.tree.leaves(blocks) if same else []
    if not same or not all(isinstance(label, str) for label in labels):
        raise ValueError(
            "`blocks` must be 'leaf', 'layer', or a pytree with the structure of "
            "`params` whose leaves are strings (the name of each leaf's block), e.g. "
            "`jax.tree_util.tree_map_with_path(lambda path, _: ..., params)`; got "
            f"{blocks!r}."
        )
    return labels


def blockwise_sharpness(
    fn: Callable[[PyTree[Array]], Scalar],
    params: PyTree[Array],
    *,
    blocks="leaf",
    method: str | AbstractSharpnessEstimator = "lanczos",
    key=None,  # checked by `checked_key`, whose message says what to pass
    tol=None,
    max_iters: int | None = None,
) -> tuple[dict[str, Array], dict]:
    """The top eigenvalue of each diagonal block of the Hessian of `fn` at `params`.

    A block is a set of parameter arrays (one array, or one layer's weight and
    bias); its diagonal block `H_bb` is the Hessian of `fn` as a function of those
    arrays alone, the others fixed, so its top eigenvalue is the sharpness that a
    step in that layer alone would meet (the layer-wise eigenvalues of PyHessian).
    Each is estimated by `method` from products `P_b H P_b v` (`P_b` zeroes every
    entry outside the block; the starting vector lies in the block), each about
    the cost of one full product. All blocks run in one compiled loop over blocks
    (`lax.scan`), whatever their number.

    **Arguments:**

    - `fn`, `params`, `tol`, `max_iters`: as for `sharpness`.
    - `blocks`: `"leaf"` (the default: one block per array), `"layer"` (the arrays
      that share a parent in the pytree, such as the `weight` and `bias` of an
      `eqx.nn.Linear`), or a pytree with the structure of `params` whose leaves
      are strings: arrays with the same string form one block.
    - `method`: `"lanczos"` (the default: the largest algebraic eigenvalue),
      `"power"` (the paper's power iteration: the largest magnitude), or a
      `Lanczos` or `PowerIteration` estimator.
    - `key`: draws each block's starting vector (default `jax.random.key(0)`).

    **Returns:** `(estimates, info)`: `estimates` a dict from each block's label
    (`"leaf"`: the leaf's path, e.g. `".layers[0].weight"`; `"layer"`: its parent's,
    e.g. `".layers[0]"`) to its top eigenvalue, in the order the blocks first
    appear among the leaves; `info` with `num_hvps`, `converged` and `residual`,
    dicts with the same keys, as the estimator reports them, and `eigenvectors`: a
    pytree like `params` that holds on each block's arrays that block's unit
    eigenvector.

    **Raises:** `ValueError` naming the argument for `blocks` or `method` not
    among those above, a setting out of range, or `params` holding a leaf that is
    not a floating-point array.
    """
    checked_params("params", params)
    estimator = make_estimator(method, tol=tol, max_iters=max_iters)
    if not isinstance(estimator, Lanczos | PowerIteration):
        raise ValueError(
            "`method` must be 'lanczos', 'power', or a `Lanczos` or "
            "`PowerIteration` estimator (they start from one vector, which stays "
            f"in the block), got {method!r}."
        )
    key = _checked_key(key)
    labels = _block_labels(blocks, params)
    names = list(dict.fromkeys(labels))
    block_of_leaf = [names.index(label) for label in labels]
    leaves, treedef = jax.tree.flatten(params)

    def restrict(block, tree):
        """`tree` on the leaves of `block`, zero elsewhere."""
        return jax.tree.unflatten(
            treedef,
            [
                jnp.where(b == block, leaf, jnp.zeros_like(leaf))
                for b, leaf in zip(block_of_leaf, jax.tree.leaves(tree))
            ],
        )

    def measure(eigenvectors, inputs):
        block, block_key = inputs

        def of_block(p):
            mixed = [
                jnp.where(b == block, new, old)
                for b, new, old in zip(block_of_leaf, jax.tree.leaves(p), leaves)
            ]
            return fn(jax.tree.unflatten(treedef, mixed))

        start = normalise(restrict(block, random_direction(block_key, params)))
        estimate, vector, info = estimator.run(of_block, params, start)
        eigenvectors = jax.tree.map(
            lambda b, new, old: jnp.where(b == block, new, old),
            jax.tree.unflatten(treedef, block_of_leaf),
            vector,
            eigenvectors,
        )
        row = (estimate, info["num_hvps"], info["converged"], info["residual"])
        return eigenvectors, row

    inputs = (jnp.arange(len(names)), jax.random.split(key, len(names)))
    zeros = jax.tree.map(jnp.zeros_like, params)
    eigenvectors, (estimates, num_hvps, converged, residual) = lax.scan(
        measure, zeros, inputs
    )

    def by_name(values):
        return {name: values[i] for i, name in enumerate(names)}

    info = {
        "num_hvps": by_name(num_hvps),
        "converged": by_name(converged),
        "residual": by_name(residual),
        "eigenvectors": eigenvectors,
    }
    return by_name(estimates), info
