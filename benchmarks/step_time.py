"""Per-step time of a full-batch step, ours against optax SGD on the same workload.

    python -m benchmarks.step_time          # all three models, 4096 examples
    python -m benchmarks.step_time --models vgg11 --steps 3 --tuners constant polyak

For each full-width architecture (the paper's MLP, VGG11 and ResNet34, no
normalisation) on 4096 synthetic CIFAR-shaped examples (`load_synthetic_cifar10`), it
times one full-batch step of

- **ours**: `eqtuners.train` with a tuner (`Constant` by default: the like-for-like
  comparison; `Polyak` adds a dot product; `Armijo` adds its trial evaluations), one
  compiled `lax.scan` over `--steps` steps, sharpness tracking off;
- **optax**: `optax.sgd` on the same model, data and objective (squared loss + weight
  decay 1e-4, evaluated in the same chunks), also one jitted `lax.scan` over
  `--steps` steps,

and reports seconds per step and the ratio ours / optax. Compilation is excluded:
ours is called once with one step (compiling it) before the timed call; optax's scan
is compiled ahead of time and run once before the timed call. Results go to
`OUT/step_time.csv` and `OUT/step_time.json` (with the device, library versions and
git revision).

The loop adds only bookkeeping to the step (the row of measurements and the
divergence check), so the ratio for `Constant` is the loop's overhead. On a CPU a
full-width ResNet34 step on 4096 examples is slow: use `--steps 1` there.

`--stack-of-one` also times each tuner as a stack of one run (`et.stack([tuner])`,
the stacked path of the loop) against the single run, the two taking turns for
`--repeats` rounds, and records the ratio (the median over rounds) and whether the
two histories are bit-identical: what running every run as a stack would cost.
"""

import argparse
import csv
import json
import time
from pathlib import Path

import equinox as eqx
import jax
import numpy as np

import eqtuners as et

from ._rundir import environment
from .tuner_speed import paired_ratio, timed_side_by_side

TUNERS = {
    "constant": lambda: et.Constant(0.01),
    "polyak": lambda: et.Polyak(),
    "armijo": lambda: et.Armijo(),
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.step_time", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--models", nargs="+", default=["mlp", "vgg11", "resnet34"], choices=et.MODELS
    )
    parser.add_argument("--examples", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=2, help="timed steps per run")
    parser.add_argument(
        "--tuners", nargs="+", default=["constant"], choices=sorted(TUNERS)
    )
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument(
        "--chunk-size",
        type=int,
        default=None,
        help="examples per chunk (default: eqtuners.DEFAULT_CHUNK_SIZES)",
    )
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument(
        "--stack-of-one",
        action="store_true",
        help="also time each tuner as a stack of one run, against the single run",
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="rounds of the --stack-of-one timing"
    )
    parser.add_argument("--out", type=Path, default=Path("results/step_time"))
    return parser.parse_args(argv)


def ours(model, tuner, data, steps, chunk_size, weight_decay):
    """`num_steps -> TrainResult` of `eqtuners.train`, finished on the device."""

    def run(num_steps):
        result = et.train(
            model,
            tuner,
            data,
            num_steps,
            key=jax.random.key(0),
            measure=None,
            weight_decay=weight_decay,
            chunk_size=chunk_size,
            steps_per_call=steps,
            progress=False,
        )
        jax.block_until_ready(jax.tree.leaves(eqx.filter(result.model, eqx.is_array)))
        return result

    return run


def time_ours(model, tuner, data, steps, chunk_size, weight_decay) -> float:
    """Seconds per step of `eqtuners.train` (compiled by a first, one-step call)."""
    run = ours(model, tuner, data, steps, chunk_size, weight_decay)
    run(1)  # compiles; runs one step (the other iterations of the scan are skipped)
    start = time.perf_counter()
    run(steps)
    return (time.perf_counter() - start) / steps


def stack_of_one(model, tuner, data, args, chunk_size) -> dict:
    """A stack of one run against the single run, taking turns: the median ratio
    of their times over `args.repeats` rounds and whether the histories agree bit
    for bit."""
    runs = [
        ours(model, t, data, args.steps, chunk_size, args.weight_decay)
        for t in (tuner, et.stack([tuner]))
    ]
    times, (single, stacked) = timed_side_by_side(
        [lambda run=run: run(args.steps).history for run in runs], args.repeats
    )
    return {
        "stack_of_one_over_single": paired_ratio(times[1], times[0]),
        "stack_of_one_bit_identical": all(
            np.array_equal(v, stacked[k][0], equal_nan=True) for k, v in single.items()
        ),
    }


def time_optax(model, data, steps, chunk_size, weight_decay) -> float:
    """Seconds per step of `optax.sgd` in a jitted `lax.scan` of `steps` steps."""
    import optax

    params = eqx.filter(model, eqx.is_inexact_array)
    optimiser = optax.sgd(0.01)

    @jax.jit
    def run(p, state, x, y):  # the data are arguments, as in `eqtuners.train`
        loss, _ = et.objective_fn(
            model, x, y, weight_decay=weight_decay, chunk_size=chunk_size
        )

        def body(carry, _):
            p, state = carry
            value, grad = jax.value_and_grad(loss)(p)
            updates, state = optimiser.update(grad, state, p)
            return (optax.apply_updates(p, updates), state), value

        return jax.lax.scan(body, (p, state), length=steps)

    state = optimiser.init(params)
    x, y = data.train_x, data.train_y
    compiled = run.lower(params, state, x, y).compile()
    jax.block_until_ready(compiled(params, state, x, y))  # one warm-up run
    start = time.perf_counter()
    jax.block_until_ready(compiled(params, state, x, y))
    return (time.perf_counter() - start) / steps


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    data = et.load_synthetic_cifar10(num_train=args.examples, num_test=16)
    device = jax.devices()[0]
    print(
        f"{args.examples} synthetic CIFAR-shaped examples, full batch, {args.steps} "
        f"timed step(s) per run, on {device.device_kind} ({device.platform})"
    )
    rows = []
    for name in args.models:
        rows += time_model(name, data, args, rows)
    print(f"\n{'model':<10}{'tuner':<10}{'ours s':>10}{'optax s':>10}{'ratio':>8}")
    for r in rows:
        print(
            f"{r['model']:<10}{r['tuner']:<10}{r['ours_s_per_step']:>10.4g}"
            f"{r['optax_s_per_step']:>10.4g}{r['ratio_ours_over_optax']:>8.3f}"
        )
    print(f"\nWrote {args.out / 'step_time.csv'} and {args.out / 'step_time.json'}")
    return rows


def time_model(name, data, args, done) -> list[dict]:
    """The rows of one model: optax's step, then ours with each tuner (written
    after each, with the rows `done` before)."""
    model = et.make_model(
        name, data.input_shape, 10, key=jax.random.key(0), width=args.width
    )
    chunk = args.chunk_size or et.DEFAULT_CHUNK_SIZES[name]
    print(f"{name}: {et.num_parameters(model):,} parameters, chunk {chunk}")
    optax_seconds = time_optax(model, data, args.steps, chunk, args.weight_decay)
    print(f"  optax sgd: {optax_seconds:.4g} s/step", flush=True)
    rows = []
    for tuner in args.tuners:
        seconds = time_ours(
            model, TUNERS[tuner](), data, args.steps, chunk, args.weight_decay
        )
        row = {
            "model": name,
            "parameters": et.num_parameters(model),
            "examples": args.examples,
            "chunk_size": chunk,
            "tuner": tuner,
            "ours_s_per_step": seconds,
            "optax_s_per_step": optax_seconds,
            "ratio_ours_over_optax": seconds / optax_seconds,
        }
        message = f"  ours ({tuner}): {seconds:.4g} s/step, ratio "
        message += f"{seconds / optax_seconds:.3f}"
        if args.stack_of_one:
            row |= stack_of_one(model, TUNERS[tuner](), data, args, chunk)
            same = "bit-identical" if row["stack_of_one_bit_identical"] else "differs"
            message += (
                f"; a stack of one / single {row['stack_of_one_over_single']:.3f}"
                f" ({same})"
            )
        rows.append(row)
        print(message, flush=True)
        write(args, done + rows)
    return rows


def write(args, rows) -> None:
    """Writes the rows so far (a killed run keeps what it measured)."""
    with (args.out / "step_time.csv").open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    meta = {
        "config": {
            k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()
        },
        **environment(),
        "rows": rows,
    }
    (args.out / "step_time.json").write_text(json.dumps(meta, indent=2) + "\n")


if __name__ == "__main__":
    main()
