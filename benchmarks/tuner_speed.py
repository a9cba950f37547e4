"""Our training loop against optax on the same model, data and objective.

    python -m benchmarks.tuner_speed            # a few minutes on 2 CPU cores
    python -m benchmarks.tuner_speed --stack-of-one

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

The tuners past the paper, `CDAT()` (value, gradient and curvature from one
forward-over-reverse pass) and `PoNoS()`, have no optax peer: they are timed in one
rotation with `Constant(0.5)` and `Armijo()` (the same loop, model and data), and
printed with their per-step time over Constant's and over Armijo's (paired ratios,
as above) and, for PoNoS, its evaluations per step.

`--stack-of-one` also times each tuner as a stack of one run (`et.stack([tuner])`,
which goes through the stacked path of the loop: `lax.map` over the runs on a CPU,
`vmap` elsewhere) in the same rotation, and prints its time over the single run's
and whether the two histories are bit-identical: what running every run as a stack
would cost.
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
from eqtuners.internal import (
    value_grad_and_curvature,
    value_grad_and_curvature_along_grad,
)

from ._rundir import environment


def optax_backtracking():
    """optax's backtracking line search at the paper's Armijo settings (c = 1e-4,
    shrink by 0.8, first trial 1, no increase): the peer of `et.Armijo()`."""
    return optax.scale_by_backtracking_linesearch(
        max_backtracking_steps=100,
        slope_rtol=1e-4,
        decrease_factor=0.8,
        increase_factor=jnp.inf,
        max_learning_rate=1.0,
    )


def optax_peers():
    linesearch = optax_backtracking()
    return {
        "constant": (et.Constant(0.5), optax.sgd(0.5)),
        "armijo": (et.Armijo(), optax.chain(optax.sgd(1.0), linesearch)),
        "polyak": (et.Polyak(), optax.polyak_sgd(max_learning_rate=1.0, f_min=0.0)),
    }


def optax_losses(optimizer, model, num_steps):
    """`num_steps` steps of `optimizer` in one jitted scan; the loss at each step and
    the line search's evaluations (`num_linesearch_steps`; -1 without a line search).
    The data are arguments, as in `eqtuners.train`, not constants of the compile."""
    params = eqx.filter(model, eqx.is_inexact_array)

    @jax.jit
    def run(params, x, y):
        fn, _ = et.objective_fn(model, x, y)

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


def per_call_ms(model, x, y, evaluations, repeats, calls):
    """Milliseconds of one call of each `evaluation(fn, params) -> scalar`, each
    measured as `calls` calls inside one compiled scan (at a new point each time, as
    a search or a training loop does, with no dispatch overhead), taking turns,
    median of `repeats`."""
    fn, params = et.objective_fn(model, x, y)
    grad = jax.grad(fn)(params)

    def looped(evaluate):
        @jax.jit
        def run(params, grad):
            def body(total, i):
                point = jax.tree.map(lambda p, g: p - 1e-6 * i * g, params, grad)
                return total + evaluate(fn, point), None

            return jax.lax.scan(body, 0.0, jnp.arange(calls, dtype=jnp.float32))[0]

        return lambda: run(params, grad)

    times, _ = timed_side_by_side([looped(e) for e in evaluations], repeats)
    return [1e3 * float(np.median(t)) / calls for t in times]


def _summed(value, grad, *rest):
    """A scalar that uses every output, so that none is optimised away."""
    return value + sum(jnp.sum(g) for g in jax.tree.leaves(grad)) + sum(rest)


def trial_and_gradient_ms(model, x, y, repeats, calls=50):
    """Milliseconds of one objective evaluation at a trial point and of one
    value-and-gradient, inside a compiled scan (see `per_call_ms`)."""
    return per_call_ms(
        model,
        x,
        y,
        [lambda fn, p: fn(p), lambda fn, p: _summed(*jax.value_and_grad(fn)(p))],
        repeats,
        calls,
    )


def curvature_ms(model, x, y, repeats, calls=20):
    """Milliseconds of a value-and-gradient alone, with the curvature along the
    gradient by forward-over-forward differentiation (what the loop gives CDAT),
    and with it from a Hessian-vector product taken from the gradient's own
    linearisation (`value_grad_and_curvature`, forward over reverse), inside a
    compiled scan (see `per_call_ms`)."""
    return per_call_ms(
        model,
        x,
        y,
        [
            lambda fn, p: _summed(*jax.value_and_grad(fn)(p)),
            lambda fn, p: _summed(*value_grad_and_curvature_along_grad(fn, p)),
            lambda fn, p: _summed(*value_grad_and_curvature(fn, p)[:3]),
        ],
        repeats,
        calls,
    )


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


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tuner_speed")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--blocks", type=int, nargs="*", default=[4, 8])
    parser.add_argument(
        "--stack-of-one",
        action="store_true",
        help="also time each tuner as a stack of one run, against the single run",
    )
    parser.add_argument("--out", type=Path, default=Path("results/tuner_speed"))
    return parser.parse_args(argv)


def ours(model, tuner, x, y, steps):
    """`eqtuners.train` as a function to time; returns the history (of the only
    run, for a stack of one)."""

    def run():
        history = et.train(
            model,
            tuner,
            (x, y),
            steps,
            key=jax.random.key(0),
            measure=None,
            steps_per_call=steps,
            progress=False,
        ).history
        if isinstance(tuner, et.Stack):
            history = {k: v[0] for k, v in history.items()}
        return history

    return run


def compare(name, tuner, optimizer, model, x, y, args) -> dict:
    """Times ours (and its variants) and the optax peer in one rotation."""
    tuners = {name: tuner}
    if name == "armijo":  # the block searches take turns with the same peers
        tuners |= {f"armijo_block{k}": et.Armijo(block_size=k) for k in args.blocks}
    if args.stack_of_one:
        tuners |= {f"{n}_stack1": et.stack([t]) for n, t in tuners.items()}
    run, params = optax_losses(optimizer, model, args.steps)
    times, outputs = timed_side_by_side(
        [ours(model, t, x, y, args.steps) for t in tuners.values()]
        + [lambda: run(params, x, y)],
        args.repeats,
    )
    peer, peer_evals = map(np.asarray, outputs[-1])
    peer_times = times[-1]
    per_step = 1e3 / args.steps
    results = {}
    for (ours_name, t), ours_times, history in zip(tuners.items(), times, outputs):
        loss = history["loss"]
        result = {
            "ours_ms_per_step": per_step * float(np.median(ours_times)),
            "optax_ms_per_step": per_step * float(np.median(peer_times)),
            "ratio_ours_over_optax": paired_ratio(ours_times, peer_times),
            "ours_ms_per_step_each_round": [per_step * v for v in ours_times],
            "optax_ms_per_step_each_round": [per_step * v for v in peer_times],
            "steps_agreeing_to_1e-6": agreeing_steps(loss, peer, 1e-6),
            "final_loss_ours": float(loss[-1]),
            "final_loss_optax": float(peer[-1]),
        }
        if isinstance(t, et.Stack):  # against the single run of the same tuner
            single = list(tuners).index(ours_name.removesuffix("_stack1"))
            result["ratio_over_single_run"] = paired_ratio(ours_times, times[single])
            result["bit_identical_to_single_run"] = all(
                np.array_equal(v, outputs[single][k], equal_nan=True)
                for k, v in history.items()
            )
            t = t[0]
        if isinstance(t, et.Armijo):
            result |= {
                "block_size": t.block_size,
                "evals_per_step": float(np.mean(history["num_evals"])),
                "rounds_per_step": float(np.mean(history["num_rounds"])),
                "optax_evals_per_step": float(np.mean(peer_evals)),
            }
        results[ours_name] = result
    return results


def edge_tuners():
    """The rotation of the tuners past the paper with the references they are
    measured against (Constant and Armijo first)."""
    return {
        "constant": et.Constant(0.5),
        "armijo": et.Armijo(),
        "cdat": et.CDAT(),
        "ponos": et.PoNoS(),
    }


def compare_edge_tuners(model, x, y, args) -> dict:
    """Times `eqtuners.train` with each of `edge_tuners()` in one rotation; returns
    a row for CDAT and PoNoS with their per-step times and paired ratios over
    Constant and over Armijo."""
    tuners = edge_tuners()
    names = list(tuners)
    times, outputs = timed_side_by_side(
        [ours(model, t, x, y, args.steps) for t in tuners.values()], args.repeats
    )
    times, outputs = dict(zip(names, times)), dict(zip(names, outputs))
    per_step = 1e3 / args.steps
    results = {}
    for name in ("cdat", "ponos"):
        history = outputs[name]
        result = {
            "ours_ms_per_step": per_step * float(np.median(times[name])),
            "constant_ms_per_step": per_step * float(np.median(times["constant"])),
            "armijo_ms_per_step": per_step * float(np.median(times["armijo"])),
            "ratio_over_constant": paired_ratio(times[name], times["constant"]),
            "ratio_over_armijo": paired_ratio(times[name], times["armijo"]),
            "ours_ms_per_step_each_round": [per_step * v for v in times[name]],
            "final_loss_ours": float(history["loss"][-1]),
        }
        if "num_evals" in history:
            result["evals_per_step"] = float(np.mean(history["num_evals"]))
            result["armijo_evals_per_step"] = float(
                np.mean(outputs["armijo"]["num_evals"])
            )
        results[name] = result
    return results


def main(argv=None) -> dict:
    args = parse_args(argv)
    data = et.load_dataset("digits")
    x, y = data.train_x, data.train_y
    model = et.MLP(64, key=jax.random.key(0))
    results = {}
    for name, (tuner, optimizer) in optax_peers().items():
        results |= compare(name, tuner, optimizer, model, x, y, args)
    edge = compare_edge_tuners(model, x, y, args)
    trial_ms, value_and_grad_ms = trial_and_gradient_ms(model, x, y, args.repeats)
    gradient_ms, forward_ms, linearised_ms = curvature_ms(model, x, y, args.repeats)
    pieces = {
        "trial_ms": trial_ms,
        "value_and_grad_ms": value_and_grad_ms,
        "curvature_routes_ms": {
            "value_and_grad": gradient_ms,
            "with_forward_over_forward_curvature": forward_ms,
            "with_linearised_hessian_vector_product": linearised_ms,
        },
    }
    meta = {"steps": args.steps, "repeats": args.repeats, **environment()}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "tuner_speed.json"
    document = {"meta": meta, "results": results, "edge": edge, "pieces": pieces}
    path.write_text(json.dumps(document, indent=2) + "\n")
    print_table(results)
    print_edge_table(edge)
    print(
        f"one trial evaluation {trial_ms:.3f} ms, one value-and-gradient "
        f"{value_and_grad_ms:.3f} ms (inside a compiled loop)"
    )
    print(
        f"value-and-gradient {gradient_ms:.3f} ms; with the curvature along the "
        f"gradient: forward over forward (CDAT's) {forward_ms:.3f} ms "
        f"({forward_ms / gradient_ms:.2f}x), a linearised Hessian-vector product "
        f"{linearised_ms:.3f} ms ({linearised_ms / gradient_ms:.2f}x)"
    )
    print(f"Wrote {path}")
    return results | edge


def print_table(results: dict) -> None:
    print(
        f"{'tuner':<21}{'ours ms':>9}{'optax ms':>10}{'ratio':>7}{'agree':>7}"
        f"{'evals':>7}{'rounds':>8}{'optax evals':>13}"
    )
    for name, r in results.items():
        line = (
            f"{name:<21}{r['ours_ms_per_step']:>9.3f}{r['optax_ms_per_step']:>10.3f}"
            f"{r['ratio_ours_over_optax']:>7.2f}{r['steps_agreeing_to_1e-6']:>7}"
        )
        if "evals_per_step" in r:
            line += (
                f"{r['evals_per_step']:>7.2f}{r['rounds_per_step']:>8.2f}"
                f"{r['optax_evals_per_step']:>13.2f}"
            )
        if "ratio_over_single_run" in r:
            same = "bit-identical" if r["bit_identical_to_single_run"] else "differs"
            line += f"  stack of one / single {r['ratio_over_single_run']:.3f}, {same}"
        print(line)


def print_edge_table(edge: dict) -> None:
    print(
        f"{'tuner (one rotation)':<21}{'ours ms':>9}{'/ constant':>12}"
        f"{'/ armijo':>10}{'evals':>7}{'armijo evals':>14}"
    )
    for name, r in edge.items():
        line = (
            f"{name:<21}{r['ours_ms_per_step']:>9.3f}{r['ratio_over_constant']:>12.2f}"
            f"{r['ratio_over_armijo']:>10.2f}"
        )
        if "evals_per_step" in r:
            line += f"{r['evals_per_step']:>7.2f}{r['armijo_evals_per_step']:>14.2f}"
        print(line)
    print(
        f"(constant {edge['cdat']['constant_ms_per_step']:.3f} ms, armijo "
        f"{edge['cdat']['armijo_ms_per_step']:.3f} ms per step in that rotation)"
    )


if __name__ == "__main__":
    main()
