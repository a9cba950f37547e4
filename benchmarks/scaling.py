"""Step time and Hessian-vector product time against the number of devices.

    python -m benchmarks.scaling                     # CPU: 1, 2, 4 host devices
    python -m benchmarks.scaling --devices 1 2 4 8   # on an accelerator host

For each model (the paper's MLP on digits; VGG11 at `--vgg-width` on synthetic
CIFAR-shaped images), full batch of `--examples` examples, it times with the
examples sharded over the first `d` devices (`train(..., mesh=...)`, parameters
replicated): one training step of GD (`eqtuners.train`, no measurement), and one
Hessian-vector product of the full objective. Ratios are to one device, measured in
the same process (above 1: faster than one device). On CPU the devices are host
devices (`--xla_force_host_platform_device_count`, set before JAX starts) sharing
the machine's cores: the ratio shows the cost of the sharded program, not a
speed-up the cores cannot give.

Writes `OUT/scaling.json` and prints the table.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.scaling", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--examples", type=int, default=1024)
    parser.add_argument("--vgg-width", type=float, default=0.125)
    parser.add_argument("--models", nargs="+", default=["mlp", "vgg11"])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("results/scaling"))
    return parser.parse_args(argv)


def _ask_for_host_devices(count: int) -> None:
    """Host devices must be asked for before JAX starts."""
    if "jax" not in sys.modules:
        flags = os.environ.get("XLA_FLAGS", "")
        os.environ["XLA_FLAGS"] = (
            f"{flags} --xla_force_host_platform_device_count={count}"
        )


def _problem(name, args):
    """The model and its data: the MLP on digits, VGG11 on synthetic images."""
    import jax

    import eqtuners as et

    if name == "mlp":
        data, width = et.load_dataset("digits", subset=args.examples), 1.0
    else:
        data = et.load_synthetic_cifar10(num_train=args.examples, num_test=16)
        width = args.vgg_width
    model = et.make_model(
        name, data.input_shape, 10, key=jax.random.key(0), width=width
    )
    return data, model


def _timed(fn, repeats) -> float:
    """The median of `repeats` calls of `fn`, after one that compiles."""
    import numpy as np

    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def _seconds_on(count: int, model, data, args) -> tuple[float, float]:
    """Seconds per training step and per Hessian-vector product with the examples
    sharded over the first `count` devices."""
    import equinox as eqx
    import jax
    import numpy as np

    import eqtuners as et

    mesh = jax.sharding.Mesh(np.array(jax.devices()[:count]), ("data",))
    spec = jax.sharding.PartitionSpec
    examples = jax.sharding.NamedSharding(mesh, spec("data"))
    replicated = jax.sharding.NamedSharding(mesh, spec())
    x, y = jax.device_put((data.train_x, data.train_y), examples)
    params = jax.device_put(eqx.filter(model, eqx.is_inexact_array), replicated)

    def step():
        result = et.train(
            model,
            et.Constant(0.01),
            data,
            args.steps,
            key=jax.random.key(0),
            measure=None,
            mesh=mesh,
            steps_per_call=args.steps,
            progress=False,
        )
        jax.block_until_ready(result.state.params)

    @jax.jit
    def hvp(p, v, x, y):
        fn, _ = et.objective_fn(model, x, y)
        return et.hessian_vector_product(fn, p, v)

    step_s = _timed(step, args.repeats) / args.steps
    products = lambda: jax.block_until_ready(hvp(params, params, x, y))  # noqa: E731
    return step_s, _timed(products, args.repeats)


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    most = max(args.devices)
    _ask_for_host_devices(most)
    import jax

    from ._rundir import write_rows

    if jax.device_count() < most:
        raise SystemExit(
            f"{jax.device_count()} devices, fewer than the {most} asked for (start "
            "a fresh process, or ask for fewer with --devices)."
        )
    rows = []
    for name in args.models:
        data, model = _problem(name, args)
        base = None
        for count in args.devices:
            step_s, hvp_s = _seconds_on(count, model, data, args)
            base = base or (step_s, hvp_s)
            row = {
                "model": name,
                "devices": count,
                "examples": args.examples,
                "step_s": round(step_s, 5),
                "hvp_s": round(hvp_s, 5),
                "step_speedup": round(base[0] / step_s, 3),
                "hvp_speedup": round(base[1] / hvp_s, 3),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    write_rows(args.out / "scaling.json", rows)
    return rows


if __name__ == "__main__":
    main()
