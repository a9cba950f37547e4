"""The `memory` part: what the linearised Hessian operator keeps, per model, at the
paper's 4096 CIFAR-shaped examples and the models' default chunk sizes.

For each model (`--memory-models`: the MLP, VGG11 and ResNet34 at full width) on
`--memory-examples` synthetic CIFAR-shaped images, chunked as `train` chunks them
(`et.DEFAULT_CHUNK_SIZES`):

- `linearised_bytes`: the arrays the linearisation keeps (`et.linearised_bytes`,
  from shapes: nothing is computed), with the convolutions as this backend traces
  them (on CPU: patches times a matrix, whose patches are `kernel_size**2` times
  the activations), and `linearised_bytes_xla_conv` with the convolutions of GPUs
  and TPUs (`lax.conv_general_dilated`: traced on any backend by reporting that
  backend while tracing, shapes only; `None` on a GPU or TPU, where the first
  number is that one);
- from XLA's memory analysis of the compiled measurement (`--memory-steps`
  Lanczos steps from the operator, fresh and linearised): the temporary bytes
  each program needs. A program is compiled, never run, so the sizes of models
  that do not fit in this machine's memory are measured too.

Writes `memory.json`; `et.hessian_operator(..., products="auto")` compares the
first number with its `max_bytes`.
"""

import time
from pathlib import Path
from unittest import mock

import equinox as eqx
import jax

import eqtuners as et

GIB = 2**30


def _measurement(static, chunk_size, steps, products):
    """A measurement's program: the operator, then `steps` Lanczos products."""

    @jax.jit
    def program(params, x, y):
        model = eqx.combine(params, static)
        fn = et.objective_fn(model, x, y, chunk_size=chunk_size)[0]
        operator = et.hessian_operator(fn, params, products=products)
        estimator = et.Lanczos(max_steps=steps, tol=0.0, warm_start=False)
        return et.sharpness(fn, params, method=estimator, operator=operator)[0]

    return program


def _xla_conv_bytes(fn, params):
    """`linearised_bytes` with the convolutions that GPUs and TPUs run (the models
    choose them from `jax.default_backend()` when traced)."""
    if jax.default_backend() != "cpu":
        return None
    with mock.patch("jax.default_backend", return_value="gpu"):
        return et.linearised_bytes(fn, params)


def part_memory(args, out: Path) -> dict:
    data = et.load_dataset("synthetic_cifar10", num_train=args.memory_examples)
    x, y = data.train_x, data.train_y
    rows = {}
    print(f"\nLinearised operator, {args.memory_examples} CIFAR-shaped examples:")
    for name in args.memory_models:
        model = et.make_model(
            name, data.input_shape, data.num_classes, key=jax.random.key(args.seed)
        )
        chunk_size = et.DEFAULT_CHUNK_SIZES[name]
        fn, params = et.objective_fn(model, x, y, chunk_size=chunk_size)
        row = {
            "chunk_size": chunk_size,
            "parameters": et.num_parameters(model),
            "parameter_bytes": sum(p.nbytes for p in jax.tree.leaves(params)),
            "linearised_bytes": et.linearised_bytes(fn, params),
            "linearised_bytes_xla_conv": _xla_conv_bytes(fn, params),
        }
        static = eqx.filter(model, eqx.is_inexact_array, inverse=True)
        for products in ("fresh", "linearised"):
            start = time.perf_counter()
            program = _measurement(static, chunk_size, args.memory_steps, products)
            analysis = program.lower(params, x, y).compile().memory_analysis()
            row[f"{products}_temp_bytes"] = analysis.temp_size_in_bytes
            row[f"{products}_compile_seconds"] = time.perf_counter() - start
        rows[name] = row
        xla = row["linearised_bytes_xla_conv"]
        print(
            f"  {name:<9} chunk {str(chunk_size):>4}: keeps "
            f"{row['linearised_bytes'] / GIB:.3g} GiB"
            + ("" if xla is None else f" ({xla / GIB:.3g} GiB with XLA's convolutions)")
            + f"; a measurement's temporary memory: fresh "
            f"{row['fresh_temp_bytes'] / GIB:.3g} GiB, linearised "
            f"{row['linearised_temp_bytes'] / GIB:.3g} GiB",
            flush=True,
        )
    return {
        "examples": args.memory_examples,
        "backend": jax.default_backend(),
        "lanczos_steps": args.memory_steps,
        "models": rows,
    }
