"""Our training loop against optax on the same model, data and objective.

    python -m benchmarks.tuner_speed            # about a minute on 2 CPU cores

For each tuner it times `eqtuners.train` (full batch, no sharpness) and a plain
`lax.scan` over the optax peer, side by side in the same process, and compares the
two trajectories of the loss:

- `Constant(0.5)` against `optax.sgd(0.5)`;
- `Armijo()` against `optax.scale_by_backtracking_linesearch` with the paper's
  settings and an infinite increase factor (so every search starts at 1, as ours);
- `Polyak()` against `optax.polyak_sgd(max_learning_rate=1, f_min=0)`.

Each timing is the median of `--repeats` runs of `--steps` steps after a compiling
run, ours and optax taking turns. It writes `OUT/tuner_speed.json` and prints
per-step times, the ratio ours / optax (below 1: ours is faster), and for how many
steps the losses agree to a relative 1e-6: the runs are the same algorithm, but near
the edge of stability float rounding differences grow, chaotically for Polyak.

Measured on 2 CPU cores (300 steps, 5 rounds): ours / optax 1.01 for Constant,
1.00 for Armijo, 1.01 for Polyak; the losses agree for all 300, the first 94 and the
first 15 steps.

"""

import argparse
import json
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

import eqtuners as et

from ._rundir import environment


def optax_peers():
    linesearch = optax.scale_by_backtracking_linesearch(
        max_backtracking_steps=100,
        slope_rtol=1e-4,
        decrease_factor=0.8,
        increase_factor=jnp.inf,
        max_learning_rate=1.0,
    )
    return {
        "constant": (et.Constant(0.5), optax.sgd(0.5)),
        "armijo": (et.Armijo(), optax.chain(optax.sgd(1.0), linesearch)),
        "polyak": (et.Polyak(), optax.polyak_sgd(max_learning_rate=1.0, f_min=0.0)),
    }


def optax_losses(optimizer, model, num_steps):
    """`num_steps` steps of `optimizer` in one jitted scan; the loss at each step.
    The data are arguments, as in `eqtuners.train`, not constants of the compile."""
    params, static = eqx.partition(model, eqx.is_inexact_array)

    @jax.jit
    def run(params, x, y):
        def fn(p):
            return et.objective(eqx.combine(p, static), x, y)

        def step(carry, _):
            params, state = carry
            value, grad = jax.value_and_grad(fn)(params)
            updates, state = optimizer.update(
                grad, state, params, value=value, grad=grad, value_fn=fn
            )
            return (optax.apply_updates(params, updates), state), value

        return jax.lax.scan(step, (params, optimizer.init(params)), length=num_steps)[1]

    return run, params


def agreeing_steps(a, b, rtol):
    """The number of leading steps where `a` and `b` agree to `rtol`."""
    differ = np.abs(a - b) > rtol * np.abs(b)
    return int(np.argmax(differ)) if differ.any() else len(a)


def timed_side_by_side(functions, repeats):
    """Compiles each function, then times them in turn, `repeats` rounds; returns
    the median seconds and the output of each."""
    outputs = [jax.block_until_ready(f()) for f in functions]
    times = [[] for _ in functions]
    for _ in range(repeats):
        for f, spent in zip(functions, times):
            start = time.perf_counter()
            jax.block_until_ready(f())
            spent.append(time.perf_counter() - start)
    return [float(np.median(t)) for t in times], outputs


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tuner_speed")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("results/tuner_speed"))
    args = parser.parse_args(argv)

    data = et.load_dataset("digits")
    x, y = data.train_x, data.train_y
    model = et.MLP(64, key=jax.random.key(0))
    results = {}
    for name, (tuner, optimizer) in optax_peers().items():

        def ours():
            return et.train(
                model,
                tuner,
                (x, y),
                args.steps,
                key=jax.random.key(0),
                sharpness_every=None,
                steps_per_call=args.steps,
            ).history["loss"]

        run, params = optax_losses(optimizer, model, args.steps)
        (ours_seconds, peer_seconds), (ours, peer) = timed_side_by_side(
            [ours, lambda: run(params, x, y)], args.repeats
        )
        peer = np.asarray(peer)
        results[name] = {
            "ours_ms_per_step": 1e3 * ours_seconds / args.steps,
            "optax_ms_per_step": 1e3 * peer_seconds / args.steps,
            "ratio_ours_over_optax": ours_seconds / peer_seconds,
            "steps_agreeing_to_1e-6": agreeing_steps(ours, peer, 1e-6),
            "final_loss_ours": float(ours[-1]),
            "final_loss_optax": float(peer[-1]),
        }
    meta = {"steps": args.steps, "repeats": args.repeats, **environment()}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "tuner_speed.json"
    path.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    print(f"{'tuner':<10}{'ours ms':>10}{'optax ms':>10}{'ratio':>8}{'agree':>8}")
    for name, r in results.items():
        print(
            f"{name:<10}{r['ours_ms_per_step']:>10.3f}{r['optax_ms_per_step']:>10.3f}"
            f"{r['ratio_ours_over_optax']:>8.2f}{r['steps_agreeing_to_1e-6']:>8}"
        )
    print(f"Wrote {path}")
    return results


if __name__ == "__main__":
    main()
