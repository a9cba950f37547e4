"""Our training loop against optax on the same model, data and objective.

    python -m benchmarks.tuner_speed            # about four minutes on 2 CPU cores

For each tuner it times `eqtuners.train` (full batch, no sharpness) and a plain
`lax.scan` over the optax peer, side by side in the same process, and compares the
two trajectories of the loss:

- `Constant(0.5)` against `optax.sgd(0.5)`;
- `Armijo()` against `optax.scale_by_backtracking_linesearch` with the paper's
  settings and an infinite increase factor (so every search starts at 1, as ours),
  and with the block search, `Armijo(block_size=k)` for each `--blocks` k (default
  4 and 8): the same steps, `k` grid points evaluated per round;
- `Polyak()` against `optax.polyak_sgd(max_learning_rate=1, f_min=0)`.

Each timing is the median of `--repeats` runs of `--steps` steps after a compiling
run, the runs compared taking turns (all Armijo variants and optax in one rotation,
each round starting one run later). It writes `OUT/tuner_speed.json` (with the time
of every round) and prints per-step times, the ratio ours / optax (the median over
rounds of the ratio within a round; below 1: ours is faster), and for how many steps
the losses agree to a relative 1e-6: the runs are the same algorithm, but near the
edge of stability float rounding differences grow, chaotically for Polyak.

For the line searches it also prints the objective evaluations per step (ours:
`info["num_evals"]`; optax: `num_linesearch_steps`), our rounds per step
(`info["num_rounds"]`), and what one trial evaluation and one value-and-gradient
cost inside a compiled loop, which bound the time of a step: about
`value_and_grad + evals * trial` where evaluations are compute-bound (CPU), and
`value_and_grad + rounds * trial` where they are latency-bound (small models on an
accelerator). On a CPU a block round costs about `k` trials, so the block search is
slower there; it is meant for accelerators.

Measured on 2 shared CPU cores (300 steps, `--repeats 11`, load average 5 to 8 from
other jobs, so single rounds vary by up to 30%): ours / optax 1.02 for Constant,
1.09 for Armijo (0.99 as a ratio of the median times), 1.51 and 2.07 for the block
searches with k = 4 and 8, 1.11 for Polyak; the losses agree for all 300, the first
91 and the first 28 steps. Both line searches make 8.8 evaluations per step; ours
takes 2.70 rounds with k = 4 and 1.78 with k = 8. One trial evaluation costs 0.23 of
a value-and-gradient, so two thirds of an Armijo-GD step are trials, and on a CPU
the two line searches do the same work.

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
    """`num_steps` steps of `optimizer` in one jitted scan; the loss at each step and
    the line search's evaluations (`num_linesearch_steps`; -1 without a line search).
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
            evals = optax.tree_utils.tree_get(
                state, "num_linesearch_steps", jnp.asarray(-1)
            )
            return (optax.apply_updates(params, updates), state), (value, evals)

        return jax.lax.scan(step, (params, optimizer.init(params)), length=num_steps)[1]

    return run, params


def trial_and_gradient_ms(model, x, y, repeats, calls=50):
    """Milliseconds of one objective evaluation at a trial point and of one
    value-and-gradient, each measured as `calls` calls inside one compiled scan
    (as in a line search, so no dispatch overhead), median of `repeats`."""
    params, static = eqx.partition(model, eqx.is_inexact_array)

    def fn(p):
        return et.objective(eqx.combine(p, static), x, y)

    grad = jax.grad(fn)(params)

    def looped(evaluate):
        @jax.jit
        def run(params, grad):
            def body(total, i):  # a new trial point each time, as a search does
                trial = jax.tree.map(lambda p, g: p - 1e-6 * i * g, params, grad)
                return total + evaluate(trial), None

            return jax.lax.scan(body, 0.0, jnp.arange(calls, dtype=jnp.float32))[0]

        return lambda: run(params, grad)

    def value_and_grad(p):  # uses the gradient, so that it is not optimised away
        value, grad = jax.value_and_grad(fn)(p)
        return value + sum(jnp.sum(g) for g in jax.tree.leaves(grad))

    times, _ = timed_side_by_side([looped(fn), looped(value_and_grad)], repeats)
    return [1e3 * float(np.median(t)) / calls for t in times]


def agreeing_steps(a, b, rtol):
    """The number of leading steps where `a` and `b` agree to `rtol`."""
    differ = np.abs(a - b) > rtol * np.abs(b)
    return int(np.argmax(differ)) if differ.any() else len(a)


def timed_side_by_side(functions, repeats):
    """Compiles each function, then times them in turn, `repeats` rounds, each round
    starting one function later so that none always runs right after another;
    returns the seconds of each function in each round (`[function][round]`) and
    the output of each."""
    outputs = [jax.block_until_ready(f()) for f in functions]
    times = [[] for _ in functions]
    for round_ in range(repeats):
        for i in np.roll(np.arange(len(functions)), -round_):
            start = time.perf_counter()
            jax.block_until_ready(functions[i]())
            times[i].append(time.perf_counter() - start)
    return times, outputs


def paired_ratio(times, reference):
    """The median over rounds of `times / reference` (same-round pairs, so a load
    that changes between rounds cancels)."""
    return float(np.median(np.asarray(times) / np.asarray(reference)))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tuner_speed")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--blocks", type=int, nargs="*", default=[4, 8])
    parser.add_argument("--out", type=Path, default=Path("results/tuner_speed"))
    args = parser.parse_args(argv)

    data = et.load_dataset("digits")
    x, y = data.train_x, data.train_y
    model = et.MLP(64, key=jax.random.key(0))

    def ours(tuner):
        def run():
            return et.train(
                model,
                tuner,
                (x, y),
                args.steps,
                key=jax.random.key(0),
                measure=None,
                steps_per_call=args.steps,
            ).history

        return run

    results = {}
    for name, (tuner, optimizer) in optax_peers().items():
        tuners = {name: tuner}
        if name == "armijo":  # the block searches take turns with the same peers
            tuners |= {f"armijo_block{k}": et.Armijo(block_size=k) for k in args.blocks}
        run, params = optax_losses(optimizer, model, args.steps)
        times, outputs = timed_side_by_side(
            [ours(t) for t in tuners.values()] + [lambda: run(params, x, y)],
            args.repeats,
        )
        peer, peer_evals = map(np.asarray, outputs[-1])
        peer_times = times[-1]
        for (ours_name, t), ours_times, history in zip(tuners.items(), times, outputs):
            loss = history["loss"]
            results[ours_name] = {
                "ours_ms_per_step": 1e3 * float(np.median(ours_times)) / args.steps,
                "optax_ms_per_step": 1e3 * float(np.median(peer_times)) / args.steps,
                "ratio_ours_over_optax": paired_ratio(ours_times, peer_times),
                "ours_ms_per_step_each_round": [
                    1e3 * v / args.steps for v in ours_times
                ],
                "optax_ms_per_step_each_round": [
                    1e3 * v / args.steps for v in peer_times
                ],
                "steps_agreeing_to_1e-6": agreeing_steps(loss, peer, 1e-6),
                "final_loss_ours": float(loss[-1]),
                "final_loss_optax": float(peer[-1]),
            }
            if isinstance(t, et.Armijo):
                results[ours_name] |= {
                    "block_size": t.block_size,
                    "evals_per_step": float(np.mean(history["num_evals"])),
                    "rounds_per_step": float(np.mean(history["num_rounds"])),
                    "optax_evals_per_step": float(np.mean(peer_evals)),
                }
    trial_ms, value_and_grad_ms = trial_and_gradient_ms(model, x, y, args.repeats)
    pieces = {"trial_ms": trial_ms, "value_and_grad_ms": value_and_grad_ms}
    meta = {"steps": args.steps, "repeats": args.repeats, **environment()}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "tuner_speed.json"
    path.write_text(
        json.dumps({"meta": meta, "results": results, "pieces": pieces}, indent=2)
        + "\n"
    )
    print(
        f"{'tuner':<15}{'ours ms':>9}{'optax ms':>10}{'ratio':>7}{'agree':>7}"
        f"{'evals':>7}{'rounds':>8}{'optax evals':>13}"
    )
    for name, r in results.items():
        line = (
            f"{name:<15}{r['ours_ms_per_step']:>9.3f}{r['optax_ms_per_step']:>10.3f}"
            f"{r['ratio_ours_over_optax']:>7.2f}{r['steps_agreeing_to_1e-6']:>7}"
        )
        if "evals_per_step" in r:
            line += (
                f"{r['evals_per_step']:>7.2f}{r['rounds_per_step']:>8.2f}"
                f"{r['optax_evals_per_step']:>13.2f}"
            )
        print(line)
    print(
        f"one trial evaluation {trial_ms:.3f} ms, one value-and-gradient "
        f"{value_and_grad_ms:.3f} ms (inside a compiled loop)"
    )
    print(f"Wrote {path}")
    return results


if __name__ == "__main__":
    main()
