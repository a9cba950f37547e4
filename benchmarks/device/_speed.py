"""Part `speed_<model>`: per-step time of our tuners against their optax peers.

On the synthetic CIFAR-shaped examples, full batch, nothing measured: `Constant`
against `optax.sgd` at the same step, `Armijo()` and `Armijo(block_size=k)` against
`optax.scale_by_backtracking_linesearch` with the paper's settings (every search
starts at 1), `Polyak()` against `optax.polyak_sgd`. Every function runs the same
number of steps in one compiled call; after a compiling call they take turns for
`repeats` rounds (`tuner_speed.timed_side_by_side`), and a ratio is the median over
rounds of ours / optax within a round. Both sides evaluate the objective over all
examples at once (`tuner_speed.optax_losses` does not chunk).
"""

import numpy as np
import optax

import eqtuners as et

from ..tuner_speed import (
    optax_backtracking,
    optax_losses,
    paired_ratio,
    timed_side_by_side,
)
from ._budget import SEARCH_COMPILE
from ._common import Bench, finite_loss, trainer

STEPSIZE = 0.01  # GD's step: stable on every model at initialisation
# A search step costs a value-and-gradient plus its trial evaluations, each about a
# third of one: planned as this many steps.
SEARCH_COST = 3.0


def peers() -> dict:
    """The optax peer of each of our tuner families."""
    linesearch = optax_backtracking()
    return {
        "constant": ("optax.sgd", optax.sgd(STEPSIZE)),
        "armijo": ("optax backtracking", optax.chain(optax.sgd(1.0), linesearch)),
        "polyak": (
            "optax.polyak_sgd",
            optax.polyak_sgd(max_learning_rate=1.0, f_min=0.0),
        ),
    }


def ours(blocks) -> dict:
    """Our tuners by name; `family` of a name is its peer's key."""
    return {
        "constant": et.Constant(STEPSIZE),
        "armijo": et.Armijo(),
        **{f"armijo_block{k}": et.Armijo(block_size=k) for k in blocks},
        "polyak": et.Polyak(),
    }


def family(name: str) -> str:
    return name.split("_")[0]


def _cost(name: str) -> float:
    return SEARCH_COST if family(name) == "armijo" else 1.0


def _compile_cost(name: str) -> float:
    return SEARCH_COMPILE if family(name) == "armijo" else 1.0


def part_speed(bench: Bench, name: str, deadline: float) -> dict:
    """Times the model `name` (see the module docstring) by `deadline`."""
    tuners, optimizers = ours(bench.size.blocks), peers()
    names = [*tuners, *optimizers]
    plan = bench.plan(
        name,
        deadline,
        compiles=sum(map(_compile_cost, names)),
        steps=sum(map(_cost, names)),
        sizes=bench.size.speed_steps[name],
    )
    if plan.steps is None:
        return plan.skipped()
    steps, repeats = plan.steps, plan.repeats
    bench.budget.log(
        f"speed on {name}: {len(tuners)} tuners and {len(optimizers)} optax peers, "
        f"{steps} steps a call, {repeats} rounds (planned {plan.seconds:.0f} s)"
    )
    model = bench.model(name)
    x, y = bench.data.train_x, bench.data.train_y
    functions = [
        trainer(model, t, (x, y), steps, chunk_size=None) for t in tuners.values()
    ]
    for _, optimizer in optimizers.values():
        run, params = optax_losses(optimizer, model, steps)
        functions.append(lambda run=run, params=params: run(params, x, y))
    times, outputs = timed_side_by_side(functions, repeats)
    peer_index = {k: len(tuners) + i for i, k in enumerate(optimizers)}
    per_step = 1e3 / steps
    rows = {}
    for i, (tuner_name, tuner) in enumerate(tuners.items()):
        j = peer_index[family(tuner_name)]
        history, (peer_loss, peer_evals) = outputs[i], map(np.asarray, outputs[j])
        row = {
            "optax": optimizers[family(tuner_name)][0],
            "ours_ms_per_step": per_step * float(np.median(times[i])),
            "optax_ms_per_step": per_step * float(np.median(times[j])),
            "ratio_ours_over_optax": paired_ratio(times[i], times[j]),
            "final_loss_ours": float(history["loss"][-1]),
            "final_loss_optax": float(peer_loss[-1]),
            "finite": finite_loss(history) and bool(np.all(np.isfinite(peer_loss))),
        }
        if isinstance(tuner, et.Armijo):
            row |= {
                "block_size": tuner.block_size,
                "evals_per_step": float(np.mean(history["num_evals"])),
                "rounds_per_step": float(np.mean(history["num_rounds"])),
                "optax_evals_per_step": float(np.mean(peer_evals)),
            }
        rows[tuner_name] = row
    return {
        "model": name,
        "parameters": et.num_parameters(model),
        "examples": int(x.shape[0]),
        **plan.fields(),
        "tuners": rows,
    }
