"""Mini-batch training on a sum of per-example quadratics, whose mini-batch Hessians
differ from the full one.

**The model.** `n` examples, each a least-squares loss of `k` outputs in `d`
parameters,

    f_i(w) = 1/2 ||J_i w - y_i||^2,    H_i = J_i^T J_i  (rank <= k),
    f = mean_i f_i,                    H = mean_i H_i,

and a batch `B` of `b` examples has `f_B = mean_{i in B} f_i` and Hessian
`H_B = mean_{i in B} H_i`. This is the paper's loss (squared loss against one-hot
targets) for a network linearised at its parameters: `J_i` is the Jacobian of
example `i`'s `k` outputs and `H_i` its Gauss-Newton matrix, whose rank is at most
the number of outputs (10 for CIFAR10). With `k <= d`, `J_i` has full row rank, so
`f_i = 1/2 (w - w_i)^T H_i (w - w_i)` for any `w_i` with `J_i w_i = y_i`: these are
per-example quadratics with positive semi-definite Hessians of rank `k`; `k = 1` is
linear least squares (`H_i = x_i x_i^T`), `k = d` gives full-rank `H_i`. The
factored form keeps a batch's loss, gradient and Hessian at `O(b k d)`, `O(b k d)`
and `O(b k d^2)`. With targets from a teacher, `y_i = J_i w_teacher`, every batch
loss has its minimum 0 at `w_teacher` (the paper's networks nearly interpolate, and
Polyak's `f* = 0` is then exact for every batch); label noise makes `f_B* > 0` for
batches with `b k > d`. The Hessians are fixed: the model has no progressive
sharpening; what it isolates is the gap between mini-batch and full-batch curvature.

**Mini-batch training.** `simulate_minibatch` draws batches without replacement
(a fresh permutation every epoch, the last `n mod b` examples left out, as
`eqtuners.train` does) and lets the tuner check its step on the same batch as the
gradient:

    stepsize_t, state = tuner.step(f_B, w_t, f_B(w_t), g_B, state),
    w_{t+1} = w_t - stepsize_t g_B,        g_B = grad f_B(w_t).

It records the batch curvature `kappa_B = g_B^T H_B g_B / ||g_B||^2` (the curvature
of the batch loss along its own gradient), the batch top eigenvalue
`lambda_max(H_B)` and the full-batch sharpness `lambda_max(H)`, all exact.

**Closed forms.**

1. *Armijo on a batch.* `f_B` is quadratic, so `f_B(w - s g_B) = f_B(w) -
   s ||g_B||^2 + 1/2 s^2 g_B^T H_B g_B` exactly, and the Armijo condition
   `f_B(w - s g_B) <= f_B(w) - c s ||g_B||^2` holds if and only if
   `s <= 2 (1 - c) / kappa_B` (the paper's Section 4 bound, with the curvature
   along the tested direction: `armijo_acceptance_bound(kappa_B, c)`). The tuner
   returns the largest step of its grid under that bound
   (`armijo_grid_stepsize`), so every Armijo-SGD step (whose search succeeds) has
   `stepsize x kappa_B <= 2 (1 - c)`: the step is `gamma_max` when
   `kappa_B <= 2 (1 - c) / gamma_max`, and `stepsize x kappa_B > 2 d (1 - c)`
   (`d` the decrease factor) otherwise. On the full loss,
   `stepsize x lambda_max(H) <= 2 (1 - c) lambda_max(H) / kappa_B`: Armijo-SGD
   steps past the full-batch edge of stability only at batches whose curvature
   along their own gradient is below the full sharpness,
   `kappa_B < (1 - c) lambda_max(H)`.
2. *Polyak on a batch.* With a batch minimiser `w_B*`, `e = w - w_B*`, the
   batch minimum `f_B*` and `M_m = e^T H_B^m e`, `f_B(w) = f_B* + M_1 / 2`,
   `||g_B||^2 = M_2` and `kappa_B = M_3 / M_2`, so the step with `f* = 0` (SPS,
   Loizou et al. 2021) is `gamma_P = f_B* / M_2 + M_1 / (2 M_2)`. Cauchy-Schwarz
   gives `M_2^2 <= M_1 M_3` (Lyapunov's inequality), hence

       gamma_P kappa_B >= 1/2,        gamma_P lambda_max(H_B) >= 1/2,

   the second being Loizou et al.'s `gamma_P >= 1 / (2 L_B)` with
   `L_B = lambda_max(H_B)`. Equality holds when `f_B* = 0` and the part of `e`
   outside the null space of `H_B` lies in one eigenspace: at `b = 1` with `k = 1`,
   `gamma_P = 1 / (2 ||x_i||^2)`, half the Kaczmarz step. No upper bound holds:
   `M_1 M_3 / M_2^2` grows without limit as `e` turns to the flat directions of
   `H_B`, and `f_B* / M_2` as `w` nears a batch minimum, so only the cap stops it.
   The tuner's step is `min(gamma_P, gamma_max) >= min(1 / (2 kappa_B),
   gamma_max)`; unlike Armijo, Polyak can step past the batch edge `2 / kappa_B`.
3. *Batch curvature against batch size.* Batches are uniform, so `E[H_B] = H`.
   `lambda_max` is convex (a maximum of the linear maps `H -> v^T H v`), so
   Jensen's inequality gives `E lambda_max(H_B) >= lambda_max(H)`. A uniform
   `b'`-subset of a uniform `b`-subset is a uniform `b'`-subset, and `H_B` is the
   mean of the Hessians of its `b'`-subsets, so the same argument gives
   `E lambda_max(H_b) <= E lambda_max(H_b')` for `b' <= b`: the expected batch top
   eigenvalue decreases with the batch size, from `mean_i lambda_max(H_i)` at
   `b = 1` to `lambda_max(H)` at `b = n`. `batch_top_eigenvalue_bounds` adds
   `lambda_max(H_B) <= lambda_max(H) + ||H_B - H||_F` with
   `E ||H_B - H||_F^2 = (n - b) / (b (n - 1)) mean_i ||H_i - H||_F^2` (the variance
   of a mean sampled without replacement; Cochran, *Sampling Techniques*, 1977,
   Thm. 2.2, entry by entry). The mean of the ratio `kappa_B` has no closed form,
   but its numerator and denominator do (U-statistics of orders 3 and 2):
   `expected_batch_curvature` gives `E[g_B^T H_B g_B] / E||g_B||^2` at any `w`. For
   many examples and at the full minimiser (where the mean gradient vanishes) it is

       (mean_i g_i^T H g_i + (mean_i g_i^T H_i g_i - mean_i g_i^T H g_i) / b)
           / mean_i ||g_i||^2,

   from the examples' own curvature along their gradients at `b = 1` (for `k = 1`,
   `||x_i||^2 ~ tr H`) down to the curvature of the gradient noise under `H`, at
   most `lambda_max(H)`, at large `b`.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jaxtyping import Array, Float, Int, PRNGKeyArray, Scalar

from eqtuners import AbstractTuner
from eqtuners.internal import checked_float, checked_int, checked_key

from ._simulate import AbstractDynamicsModel, Trajectory, tuner_step


class PerExampleQuadratics(AbstractDynamicsModel):
    """`f(w) = mean_i 1/2 ||J_i w - y_i||^2` (see the module): per-example Hessians
    `H_i = J_i^T J_i` that differ from example to example.

    The full loss is evaluated as `f* + 1/2 (w - w*)^T H (w - w*)`, exact for a
    quadratic and free of the cancellation of `1/2 w^T H w - c^T w + const` near the
    minimum; the batch losses are evaluated from the residuals, as a training step
    would.

    **Arguments:**

    - `jacobians`: the `J_i`, shape `(n, k, d)`.
    - `targets`: the `y_i`, shape `(n, k)`.

    **Raises:** `ValueError` on other shapes.
    """

    jacobians: Float[Array, "n k d"]
    targets: Float[Array, "n k"]
    hessian: Float[Array, "d d"]
    minimiser: Float[Array, " d"]
    minimum: Scalar

    def __init__(self, jacobians, targets):
        jacobians, targets = jnp.asarray(jacobians), jnp.asarray(targets)
        if jacobians.ndim != 3:
            raise ValueError(
                f"`jacobians` must have shape (n, k, d), got {jacobians.shape}."
            )
        if targets.shape != jacobians.shape[:2]:
            raise ValueError(
                f"`targets` must have shape {jacobians.shape[:2]} to match "
                f"`jacobians` {jacobians.shape}, got {targets.shape}."
            )
        self.jacobians = jacobians
        self.targets = targets
        self.hessian, self.minimiser, self.minimum = _derived(jacobians, targets)

    @property
    def num_examples(self) -> int:
        return self.jacobians.shape[0]

    def loss(self, params: Float[Array, " d"]) -> Scalar:
        error = params - self.minimiser
        return self.minimum + error @ self.hessian @ error / 2

    def sharpness(self, params: Float[Array, " d"] | None = None) -> Scalar:
        """`lambda_max(H)`, the same everywhere."""
        return jnp.linalg.eigvalsh(self.hessian)[-1]

    def batch_loss(self, params: Float[Array, " d"], batch: Int[Array, " b"]) -> Scalar:
        """`f_B(w) = mean_{i in B} 1/2 ||J_i w - y_i||^2` for the example indices
        `batch`."""
        return _mean_squares(self.jacobians[batch], self.targets[batch], params)

    def batch_hessian(self, batch: Int[Array, " b"]) -> Float[Array, "d d"]:
        """`H_B = mean_{i in B} J_i^T J_i`."""
        jacobians = self.jacobians[batch]
        return jnp.einsum("bki,bkj->ij", jacobians, jacobians) / batch.shape[0]

    def example_gradients(self, params: Float[Array, " d"]) -> Float[Array, "n d"]:
        """The per-example gradients `g_i = J_i^T (J_i w - y_i)`, one row each."""
        residuals = jnp.einsum("nkd,d->nk", self.jacobians, params) - self.targets
        return jnp.einsum("nkd,nk->nd", self.jacobians, residuals)


@jax.jit
def _derived(jacobians, targets):
    """`H`, a minimiser `w*` and the minimum `f*`."""
    n, k, d = jacobians.shape
    hessian = jnp.einsum("nki,nkj->ij", jacobians, jacobians) / n
    # The stacked least-squares problem's least-norm solution; H w* = mean_i
    # J_i^T y_i holds whether or not H is singular.
    stacked = jacobians.reshape(n * k, d)
    minimiser = jnp.linalg.lstsq(stacked, targets.reshape(n * k))[0]
    return hessian, minimiser, _mean_squares(jacobians, targets, minimiser)


def _mean_squares(jacobians, targets, params):
    """`mean_i 1/2 ||J_i w - y_i||^2`."""
    residuals = jnp.einsum("nkd,d->nk", jacobians, params) - targets
    return jnp.sum(residuals**2) / (2 * jacobians.shape[0])


def random_per_example_quadratics(
    key: PRNGKeyArray,
    num_examples: int = 4096,
    dim: int = 32,
    rank: int = 1,
    *,
    sharpness=10.0,
    spectrum_decay=1.0,
    shared_scale=0.0,
    num_classes: int = 1,
    noise_scale=0.0,
    dtype=None,
) -> PerExampleQuadratics:
    """A random instance with targets from a teacher.

    Each `J_i = (Z_i + s M_{c(i)}) D`, with `Z_i` and the class means `M_c` of shape
    `(k, d)` and standard normal entries, `D = diag((j + 1)^(-spectrum_decay / 2))`
    (so that `H` has a power-law bulk spectrum, as for real data), and example `i`
    in class `c(i) = i mod C`. With `s = shared_scale > 0`, `H` has up to `C k`
    outlying eigenvalues along the class means, as the class means make the top
    eigenvalues of a network's Hessian (Papyan, 2019). With one class all batches
    agree on the outliers and differ in the bulk; with several, a batch's weight on
    each outlier is its share of that class, which varies from batch to batch. All
    `J_i` are then rescaled so that `lambda_max(H) = sharpness`.
    The targets are `y_i = J_i w_teacher + noise_scale * xi_i` with
    `w_teacher ~ N(0, I_d)` and standard normal `xi_i`; with no noise, every batch
    loss is 0 at `w_teacher`.

    **Arguments:**

    - `key`: a JAX PRNG key.
    - `num_examples`, `dim`, `rank`: `n`, `d` and `k` (`1 <= k <= d`).
    - `sharpness`: `lambda_max(H)`, > 0.
    - `spectrum_decay`: the power-law exponent of the bulk spectrum, >= 0.
    - `shared_scale`: `s`, >= 0.
    - `num_classes`: `C`, in `[1, n]`.
    - `noise_scale`: the label noise, >= 0.
    - `dtype`: the floating dtype (default: JAX's default).

    **Returns:** a `PerExampleQuadratics`.

    **Raises:** `ValueError` naming the argument for values out of range.
    """
    key = checked_key("key", key)
    num_examples = checked_int("num_examples", num_examples)
    dim = checked_int("dim", dim)
    rank = checked_int("rank", rank, upper=dim)
    sharpness = checked_float("sharpness", sharpness, lower=0.0)
    spectrum_decay = checked_float(
        "spectrum_decay", spectrum_decay, lower=0.0, lower_open=False
    )
    shared_scale = checked_float(
        "shared_scale", shared_scale, lower=0.0, lower_open=False
    )
    num_classes = checked_int("num_classes", num_classes, upper=num_examples)
    noise_scale = checked_float("noise_scale", noise_scale, lower=0.0, lower_open=False)
    dtype = jnp.result_type(float) if dtype is None else dtype
    jacobians, targets = _random_arrays(
        key,
        sharpness,
        spectrum_decay,
        shared_scale,
        noise_scale,
        num_examples,
        dim,
        rank,
        num_classes,
        dtype,
    )
    return PerExampleQuadratics(jacobians, targets)


@eqx.filter_jit
def _random_arrays(
    key, sharpness, decay, shared_scale, noise_scale, n, d, k, num_classes, dtype
):
    # One draw, cut into pieces: each separate draw costs seconds of compilation.
    sizes = (n * k * d, num_classes * k * d, d, n * k)
    pieces = jnp.split(jax.random.normal(key, (sum(sizes),), dtype), np.cumsum(sizes))
    z, means, teacher, noise = pieces[:4]
    columns = jnp.arange(1, d + 1, dtype=dtype) ** (-decay / 2)
    means = shared_scale * means.reshape(num_classes, k, d)
    jacobians = (z.reshape(n, k, d) + means[jnp.arange(n) % num_classes]) * columns
    hessian = jnp.einsum("nki,nkj->ij", jacobians, jacobians) / n
    jacobians = jacobians * jnp.sqrt(sharpness / jnp.linalg.eigvalsh(hessian)[-1])
    noise = noise_scale * noise.reshape(n, k)
    return jacobians, jnp.einsum("nkd,d->nk", jacobians, teacher) + noise


@eqx.filter_jit
@eqx.debug.assert_max_traces(max_traces=None)  # counts compiles; tests read the count
def _scan(model, tuner, params, key, num_steps, batch_size):
    num_examples = model.num_examples
    batches_per_epoch = num_examples // batch_size
    sharpness = model.sharpness(params)

    def body(carry, _):
        params, state, (permutation, index), step = carry
        new_epoch = index == batches_per_epoch
        permutation = lax.cond(
            new_epoch,
            lambda: jax.random.permutation(
                jax.random.fold_in(key, step // batches_per_epoch), num_examples
            ),
            lambda: permutation,
        )
        index = jnp.where(new_epoch, 0, index)
        batch = lax.dynamic_slice_in_dim(permutation, index * batch_size, batch_size)

        # Gathered once, not at every trial of a line search.
        jacobians, targets = model.jacobians[batch], model.targets[batch]

        def batch_loss(p):
            return _mean_squares(jacobians, targets, p)

        value, grad, _, stepsize, state, info = tuner_step(
            tuner, batch_loss, params, state
        )
        if batch_size == num_examples:  # H_B = H, up to the order of summation
            batch_hessian = model.hessian
        else:
            batch_hessian = jnp.einsum("bki,bkj->ij", jacobians, jacobians) / batch_size
        grad_sq_norm = grad @ grad
        nonzero = grad_sq_norm > 0
        batch_curvature = jnp.where(
            nonzero,
            grad @ batch_hessian @ grad / jnp.where(nonzero, grad_sq_norm, 1),
            jnp.nan,
        )
        batch_top = jnp.linalg.eigvalsh(batch_hessian)[-1]
        row = {
            "step": step,
            "epoch": step // batches_per_epoch,
            "loss": model.loss(params),
            "batch_loss": value,
            "grad_sq_norm": grad_sq_norm,
            "sharpness": sharpness,
            "batch_curvature": batch_curvature,
            "batch_top_eigenvalue": batch_top,
            "stepsize": stepsize,
            "stepsize_x_sharpness": stepsize * sharpness,
            "stepsize_x_batch_curvature": stepsize * batch_curvature,
            "stepsize_x_batch_top_eigenvalue": stepsize * batch_top,
            **info,
        }
        new_params = params - stepsize * grad
        carry = (new_params, state, (permutation, index + 1), step + 1)
        return carry, (row, params, batch)

    # An epoch that has just ended, so that the first step shuffles.
    order = (jnp.arange(num_examples), jnp.asarray(batches_per_epoch))
    carry = (params, tuner.init(params), order, jnp.asarray(0))
    (final_params, *_), (history, path, batches) = lax.scan(
        body, carry, length=num_steps
    )
    return Trajectory(
        history=history, params=path, final_params=final_params, batches=batches
    )


def simulate_minibatch(
    model: PerExampleQuadratics,
    tuner: AbstractTuner,
    params: Float[Array, " d"],
    num_steps: int,
    batch_size: int,
    key: PRNGKeyArray,
) -> Trajectory:
    """Runs `num_steps` steps of mini-batch SGD on `model` with `tuner`'s steps, the
    tuner checking its step on the same batch as the gradient (see the module).

    The whole run is one compiled `lax.scan`. Model values, tuner hyperparameters,
    `params` and `key` are traced, so new values of them reuse the compiled loop; a
    new tuner class, new shapes, a new `num_steps` or a new `batch_size`
    recompile. The batches of epoch `e` are consecutive slices of
    `jax.random.permutation(jax.random.fold_in(key, e), n)`; with
    `batch_size = n` every step sees all examples (gradient descent, up to the
    order of summation), and the stored `H` serves as `H_B`.

    **Arguments:**

    - `model`: a `PerExampleQuadratics`.
    - `tuner`: any `eqtuners.AbstractTuner`.
    - `params`: the starting parameters, shape `(d,)`.
    - `num_steps`: the number of steps, >= 1.
    - `batch_size`: `b`, in `[1, n]`.
    - `key`: a JAX PRNG key for the batch order.

    **Returns:** a `Trajectory` whose `history` holds, per step and at the
    parameters before it, `step`, `epoch`, `loss` (the full loss), `batch_loss`,
    `grad_sq_norm` (of the batch gradient), `sharpness` (`lambda_max(H)`),
    `batch_curvature` (`kappa_B`; NaN at a zero batch gradient),
    `batch_top_eigenvalue` (`lambda_max(H_B)`), `stepsize`, the products
    `stepsize_x_sharpness`, `stepsize_x_batch_curvature`,
    `stepsize_x_batch_top_eigenvalue`, and the tuner's `info` keys; `batches`
    holds each step's example indices, shape `(num_steps, b)`.

    **Raises:** `ValueError` naming the argument when `model`, `tuner`, `params`,
    `num_steps`, `batch_size` or `key` is not as above.
    """
    if not isinstance(model, PerExampleQuadratics):
        raise ValueError(f"`model` must be a PerExampleQuadratics, got {type(model)}.")
    if not isinstance(tuner, AbstractTuner):
        raise ValueError(f"`tuner` must be an eqtuners AbstractTuner, got {tuner!r}.")
    dim = model.jacobians.shape[-1]
    if getattr(params, "shape", None) != (dim,):
        raise ValueError(
            f"`params` must be an array of shape ({dim},), got "
            f"{getattr(params, 'shape', type(params))}."
        )
    num_steps = checked_int("num_steps", num_steps)
    batch_size = checked_int("batch_size", batch_size, upper=model.num_examples)
    key = checked_key("key", key)
    return _scan(model, tuner, jnp.asarray(params), key, num_steps, batch_size)


def expected_batch_curvature(
    model: PerExampleQuadratics, params: Float[Array, " d"], batch_size: int
) -> Scalar:
    """`E[g_B^T H_B g_B] / E[||g_B||^2]` over uniform batches of `b` examples drawn
    without replacement, at `params`: the batch curvature as a ratio of
    expectations (closed form 3 of the module).

    With `g_i` the per-example gradients, `S_g = sum_i g_i`, `T_1 = sum_i
    g_i^T H_i g_i`, `T_2 = sum_i g_i^T (n H) g_i`, `T_3 = sum_i g_i^T H_i S_g`
    and `T = S_g^T (n H) S_g`, the sums of `g_i^T H_j g_l` over index triples with
    exactly `i = l != j`, exactly `i = j != l` (or `j = l != i`) and no equal
    indices are `P = T_2 - T_1`, `Q = T_3 - T_1` and `D = T - P - 2 Q - T_1`. A
    batch's `b^3` ordered position triples hold `b` with equal positions,
    `b (b - 1)` of each pattern with two, and `b (b - 1) (b - 2)` with three
    distinct positions, each filled by a uniform ordered tuple of distinct examples,
    so

        E[g_B^T H_B g_B] = (T_1 / n + (b - 1) (P + 2 Q) / (n (n - 1))
                            + (b - 1) (b - 2) D / (n (n - 1) (n - 2))) / b^2,
        E[||g_B||^2] = (G / n + (b - 1) (||S_g||^2 - G) / (n (n - 1))) / b,

    with `G = sum_i ||g_i||^2`. At `b = n` it is `g^T H g / ||g||^2` of the full
    gradient; at `b = 1`, `mean_i g_i^T H_i g_i / mean_i ||g_i||^2`.

    **Arguments:**

    - `model`: a `PerExampleQuadratics`.
    - `params`: where, shape `(d,)`.
    - `batch_size`: `b`, in `[1, n]`.

    **Returns:** the ratio, a scalar; NaN where every batch gradient is 0 (at the
    minimiser with `b = n`, or where every per-example gradient vanishes).
    """
    b = checked_int("batch_size", batch_size, upper=model.num_examples)
    return _expected_batch_curvature(model, jnp.asarray(params), jnp.asarray(b))


@eqx.filter_jit
def _expected_batch_curvature(model, params, b):
    n = model.num_examples
    grads = model.example_gradients(params)
    # J_i g_i and J_i S_g, shape (n, k): the H_i enter only through them.
    sum_grad = jnp.sum(grads, axis=0)
    projected = jnp.einsum("nkd,nd->nk", model.jacobians, grads)
    projected_sum = jnp.einsum("nkd,d->nk", model.jacobians, sum_grad)
    t1 = jnp.sum(projected**2)
    t2 = n * jnp.einsum("nd,de,ne->", grads, model.hessian, grads)
    t3 = jnp.sum(projected * projected_sum)
    total = n * sum_grad @ model.hessian @ sum_grad
    pairs, shared = t2 - t1, t3 - t1
    distinct = total - pairs - 2 * shared - t1
    sq_norms = jnp.sum(grads**2)
    c2 = (b - 1) / (n * (n - 1)) if n > 1 else 0.0
    c3 = (b - 1) * (b - 2) / (n * (n - 1) * (n - 2)) if n > 2 else 0.0
    numerator = (t1 / n + c2 * (pairs + 2 * shared) + c3 * distinct) / b**2
    denominator = (sq_norms / n + c2 * (sum_grad @ sum_grad - sq_norms)) / b
    return numerator / denominator


def batch_top_eigenvalue_bounds(
    model: PerExampleQuadratics, batch_size: int
) -> tuple[Scalar, Scalar]:
    """Bounds on `E lambda_max(H_B)` over uniform batches of `b` examples drawn
    without replacement (closed form 3 of the module):

        lambda_max(H) <= E lambda_max(H_B)
            <= min(lambda_max(H) + sqrt((n - b) / (b (n - 1)) sigma^2),
                   mean_i lambda_max(H_i)),

    with `sigma^2 = mean_i ||H_i - H||_F^2`. The lower bound is Jensen's (and is
    reached at `b = n`); the first upper bound follows from Weyl's inequality and
    the variance of a mean sampled without replacement, the second from the
    monotonicity in `b`. The Frobenius norm overstates the spectral norm by up to
    the square root of the rank of `H_B - H`, so the first upper bound is loose at
    small `b`.

    **Arguments:**

    - `model`: a `PerExampleQuadratics`.
    - `batch_size`: `b`, in `[1, n]`.

    **Returns:** `(lower, upper)`, scalars.
    """
    b = checked_int("batch_size", batch_size, upper=model.num_examples)
    return _batch_top_eigenvalue_bounds(model, jnp.asarray(b))


@eqx.filter_jit
def _batch_top_eigenvalue_bounds(model, b):
    n = model.num_examples
    full = jnp.linalg.eigvalsh(model.hessian)[-1]
    # ||H_i||_F and lambda_max(H_i) from the k x k Gram matrices J_i J_i^T.
    grams = jnp.einsum("nkd,nld->nkl", model.jacobians, model.jacobians)
    spread = jnp.mean(jnp.sum(grams**2, axis=(1, 2))) - jnp.sum(model.hessian**2)
    fraction = (n - b) / (b * (n - 1)) if n > 1 else jnp.zeros_like(b)
    weyl = full + jnp.sqrt(jnp.maximum(fraction * spread, 0.0))
    per_example = jnp.mean(jnp.linalg.eigvalsh(grams)[:, -1])
    return full, jnp.minimum(weyl, per_example)
