"""Run by `test_operator.py` in a process of its own with four CPU devices
(`XLA_FLAGS=--xla_force_host_platform_device_count=4`): the linearised Hessian
operator with its examples sharded over the four devices, chunked and not, against
the dense float64 Hessian computed on one device. Prints, as JSON, the largest
relative errors of the linearised and the fresh products, and the number of
devices the linearisation's arrays live on."""

import json
import sys

import jax

jax.config.update("jax_enable_x64", True)

import equinox as eqx  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.flatten_util import ravel_pytree  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec  # noqa: E402

import eqtuners as et  # noqa: E402


def to64(tree):
    return jax.tree.map(
        lambda a: a.astype(jnp.float64) if eqx.is_inexact_array(a) else a, tree
    )


def problems():
    data = et.load_dataset("digits", subset=32)
    yield (
        "mlp",
        to64(et.MLP(64, 10, (6, 5), key=jax.random.key(0))),
        data.train_x,
        (data.train_y),
    )
    x = jax.random.normal(jax.random.key(1), (16, 8, 8, 3))
    y = jax.random.randint(jax.random.key(2), (16,), 0, 10)
    vgg = et.VGG(3, 10, (3, "M", 4, "M"), key=jax.random.key(0))
    yield "conv", to64(vgg), x, y


def main() -> dict:
    assert jax.device_count() == 4, jax.devices()
    mesh = jax.sharding.Mesh(np.array(jax.devices()), ("data",))  # as `train`
    examples = NamedSharding(mesh, PartitionSpec("data"))
    errors = {}
    for name, model, x, y in problems():
        x = jnp.asarray(x, jnp.float64)
        for chunk in (None, 4):
            fn, params = et.objective_fn(model, x, y, chunk_size=chunk)
            flat, unravel = ravel_pytree(params)
            hessian = np.asarray(jax.hessian(lambda v: fn(unravel(v)))(flat))
            vectors = jax.random.normal(jax.random.key(3), (2, flat.size))
            sharded_x = jax.device_put(x, examples)
            sharded_y = jax.device_put(y, examples)

            @eqx.filter_jit
            def products(params, x, y, vectors):
                fn = et.objective_fn(
                    eqx.combine(params, eqx.filter(model, eqx.is_array, inverse=True)),
                    x,
                    y,
                    chunk_size=chunk,
                )[0]
                out = {}
                for kind in ("linearised", "fresh"):
                    op = et.hessian_operator(fn, params, products=kind)
                    out[kind] = jax.vmap(lambda v: ravel_pytree(op.mv(unravel(v)))[0])(
                        vectors
                    )
                return out, et.hessian_operator(fn, params, products="linearised")

            out, operator = products(params, sharded_x, sharded_y, vectors)
            dense = np.asarray(vectors) @ hessian
            scale = np.max(np.abs(dense))
            leaves = jax.tree.leaves(operator.chunks)
            largest = max(leaves, key=lambda leaf: leaf.size)
            errors[f"{name}/{chunk}"] = {
                kind: float(np.max(np.abs(np.asarray(v) - dense)) / scale)
                for kind, v in out.items()
            } | {
                "devices": len(largest.sharding.device_set),
                "sharded": not largest.sharding.is_fully_replicated,
            }
    return errors


if __name__ == "__main__":
    json.dump(main(), sys.stdout)
