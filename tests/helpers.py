"""Shared problems for the tests, small so compiled functions are reused."""

import functools
import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import eqtuners as et


@functools.cache
def digits():
    return et.load_dataset("digits")


def small_data(num_examples: int = 64):
    """The first `num_examples` training examples of digits, as `(x, y)`."""
    data = digits()
    return data.train_x[:num_examples], data.train_y[:num_examples]


def small_mlp(key=0, widths=(16, 16)):
    """An MLP of the paper's shape but narrow, for 8x8 digits."""
    return et.MLP(64, 10, widths, key=jax.random.key(key))


def small_run(tuner, num_steps, **kwargs):
    """`et.train` of `tuner` on the small MLP and 64 digits, key 0."""
    return et.train(
        small_mlp(), tuner, small_data(64), num_steps, key=jax.random.key(0), **kwargs
    )


def assert_resumes_bit_identically(run, tuner, num_steps):
    """`run(tuner, num_steps, ...)` resumed from the state after its first call
    gives the rows of the uninterrupted run bit for bit (the same program);
    returns the uninterrupted run."""
    states = []
    whole = run(tuner, num_steps, callback=lambda rows, state: states.append(state))
    resumed = run(tuner, num_steps, resume=states[0])
    first = int(resumed.history["step"][0])
    assert 0 < first < num_steps
    for k, v in whole.history.items():
        np.testing.assert_array_equal(v[first:], resumed.history[k], err_msg=k)
    return whole


def scaled_eigenvalues(rng, log_scale: float, negative: bool, dim: int = 6):
    """`dim` eigenvalues spread over two decades below `10^log_scale`, the first
    negated when `negative` (a non-convex quadratic)."""
    eigenvalues = 10**log_scale * rng.uniform(0.01, 1.0, dim)
    if negative:
        eigenvalues[0] *= -1
    return eigenvalues


def random_quadratic(seed: int, dim: int, eigenvalues=None):
    """`(matrix, vector)` for `f(w) = 1/2 w^T A w + b^T w`; `A` has the given
    eigenvalues (default: random in [0.1, 10]) and random eigenvectors."""
    rng = np.random.default_rng(seed)
    if eigenvalues is None:
        eigenvalues = rng.uniform(0.1, 10.0, dim)
    basis, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    matrix = basis @ np.diag(eigenvalues) @ basis.T
    return jnp.asarray((matrix + matrix.T) / 2), jnp.asarray(rng.normal(size=dim))


def quadratic(matrix, vector):
    return lambda w: 0.5 * w @ matrix @ w + vector @ w


def tree_allclose(a, b, **kwargs) -> bool:
    leaves = jax.tree.leaves(
        jax.tree.map(lambda x, y: np.allclose(x, y, **kwargs), a, b)
    )
    return all(leaves)


def write_idx(path, array):
    """Writes `array` (uint8) as an IDX file, gzipped if `path` ends in `.gz`."""
    array = np.asarray(array, np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as file:
        file.write(header + array.tobytes())


def fake_images(rng, n, shape, num_classes=10, sorted_by_class=False):
    """Random images and balanced labels; `sorted_by_class`: stored class after
    class, and the first pixel byte is `25 * label`, so that sorting by content
    (the loaders' canonical order) also sorts by class."""
    labels = np.arange(n) % num_classes
    images = rng.integers(0, 256, (n, *shape), dtype=np.uint8)
    if sorted_by_class:
        labels = np.sort(labels)
        images.reshape(n, -1)[:, 0] = 25 * labels
    else:
        rng.shuffle(labels)
    return images, labels


def write_fashion_idx(
    directory, rng, n_train=40, n_test=10, gz=True, sorted_by_class=False
):
    """The four Fashion-MNIST IDX files of random images in `directory`; returns
    `(train, test)`, each `(images, labels)`."""
    directory.mkdir(parents=True, exist_ok=True)
    train = fake_images(rng, n_train, (28, 28), sorted_by_class=sorted_by_class)
    test = fake_images(rng, n_test, (28, 28))
    suffix = ".gz" if gz else ""
    write_idx(directory / f"train-images-idx3-ubyte{suffix}", train[0])
    write_idx(directory / f"train-labels-idx1-ubyte{suffix}", train[1])
    write_idx(directory / f"t10k-images-idx3-ubyte{suffix}", test[0])
    write_idx(directory / f"t10k-labels-idx1-ubyte{suffix}", test[1])
    return train, test


# --- Spectra and Hessians that change between measurements (LOBPCG, RecycledRitz) --

DIM = 24


def spectrum(top, seed=0, low=-1.0, high=1.0):
    """`top` followed by eigenvalues uniform in [low, high], DIM in all."""
    rest = np.random.default_rng(seed).uniform(low, high, DIM - len(top))
    return np.concatenate([top, rest])


SPECTRA = {
    "separated": spectrum([10.0, 5.0, 3.0, 2.0]),
    "clustered_top": spectrum([100.0, 99.9, 99.8, 99.0], low=0.0, high=50.0),
    "negative_dominant": spectrum([3.0, 1.0, 0.9, -8.0, -20.0]),
    "opposite_pair": spectrum([3.0, -2.97, 0.5, 0.1], low=-0.1, high=0.1),
}


def swapped_pair(dim=DIM, top=1.0, second=0.99, seed=5):
    """Two Hessians with the same eigenvectors, whose two top eigenvalues `top` and
    `second` trade places: the top eigenvector of the first is an eigenvector of
    the second with eigenvalue `second`."""
    rest = np.random.default_rng(seed).uniform(0.0, 0.5, dim - 2)
    first, _ = random_quadratic(seed, dim, np.concatenate([[top, second], rest]))
    after, _ = random_quadratic(seed, dim, np.concatenate([[second, top], rest]))
    return first, after


@eqx.filter_jit
def track(estimator, matrices, key):
    """`update` at each Hessian in turn, from `init`, as the training loop does."""
    params = jnp.zeros(matrices.shape[-1], matrices.dtype)

    def measure(state, inputs):
        matrix, key = inputs
        fn = quadratic(matrix, jnp.zeros_like(params))
        estimate, state, info = estimator.update(fn, params, state, key)
        return state, (estimate, info)

    keys = jax.random.split(key, matrices.shape[0])
    return jax.lax.scan(measure, estimator.init(params), (matrices, keys))[1]


def on_four_host_devices(script: str):
    """Runs `tests/<script>` in a process of its own with four CPU devices
    (`XLA_FLAGS=--xla_force_host_platform_device_count=4`, after this process's
    flags) and returns the JSON it prints."""
    root = Path(__file__).parent.parent
    env = dict(os.environ)
    env["XLA_FLAGS"] = (
        env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
    )
    env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")])
    result = subprocess.run(
        [sys.executable, str(root / "tests" / script)],
        capture_output=True,
        text=True,
        env=env,
        cwd=root,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def tracked_block_on_a_quartic(estimator, steps=3, **update_options):
    """`steps` updates of a block estimator (`LOBPCG`, `RecycledRitz`) with `k = 2`
    at a fixed point of a float32 and bfloat16 quartic, in one compiled function:
    checks that it compiles once, that the state keeps its structure, shapes and
    dtypes, and the keys of `info`; returns `(first state, last estimate, last
    info)` (the top eigenvalue is 12)."""
    params = {"a": jnp.ones((3, 4)), "b": jnp.ones(5, jnp.bfloat16)}

    def fn(p):
        return jnp.sum(p["a"] ** 4) + jnp.sum(p["b"].astype(jnp.float32) ** 2)

    options = {
        name: jax.grad(fn)(params) if value == "grad" else value
        for name, value in update_options.items()
    }

    @eqx.filter_jit
    @eqx.debug.assert_max_traces(max_traces=1)
    def update(estimator, params, state, key):
        return estimator.update(fn, params, state, key, **options)

    first = state = estimator.init(params)
    for i in range(steps):
        estimate, new_state, info = update(estimator, params, state, jax.random.key(i))
        assert jax.tree.structure(new_state) == jax.tree.structure(state)
        for a, b in zip(jax.tree.leaves(new_state), jax.tree.leaves(state)):
            assert a.shape == b.shape and a.dtype == b.dtype
        assert info["top_k"].shape == (2,)
        assert set(info) == {"num_hvps", "converged", "residual", "top_k"}
        state = new_state
    return first, estimate, info
