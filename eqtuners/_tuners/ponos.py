"""PoNoS: the non-monotone line search with a Polyak first trial, as a preset."""

from .._validation import checked_int
from .armijo import Armijo
from .first_trials import PolyakTrial
from .references import ZhangHagerReference


def PoNoS(  # noqa: N802 (a preset reads as the tuner it builds)
    *,
    c=0.5,
    c_p=0.1,
    decrease_factor=0.5,
    xi=1.0,
    max_stepsize=10.0,
    min_stepsize=1e-6,
    max_trials=100,
    min_grad_norm=1e-8,
    block_size=1,
) -> Armijo:
    """PoNoS (Galli, Rauhut and Schmidt, "Don't be so Monotone: Relaxing Stochastic
    Line Search in Over-Parameterized Models", NeurIPS 2023): an `Armijo` search
    against the Zhang-Hager reference, starting from a Polyak step with a memory of
    the backtracks,

        Armijo(c, max_stepsize, decrease_factor, max_trials - 1,
               reference=ZhangHagerReference(xi),
               first_trial=PolyakTrial(c_p, min_stepsize),
               min_grad_norm=min_grad_norm),

    with the defaults of the paper's code (`PoNoS.py` and the `sls_zhangNM_polyak`
    entries of `exp_configs.py`; their names in brackets): `c = 0.5`, `c_p = 0.1`,
    `decrease_factor = 0.5` (`delta`), `xi = 1` (`zhang_xi`), `max_stepsize = 10`
    (`max_eta`), `min_stepsize = 1e-6` (`min_eta`), at most 100 trials a step, and
    no step where `||g|| < 1e-8`.

    Where it differs from `PoNoS.py`, it follows the rules of `Armijo`: a search that
    accepts no trial leaves the parameters where they are (PoNoS moves them by
    `1e-6 g`) and restarts the memory (PoNoS adds its 99 backtracks); a NaN trial is
    rejected; and PoNoS also skips a step whose loss is exactly 0, where this preset
    searches (the squared loss with weight decay is never 0).

    **Arguments:** as above (each a single number; `max_trials` and `block_size`
    ints >= 1). `block_size` evaluates that many trials per round (see `Armijo`).

    **Returns:** an `Armijo`.

    **Raises:** `ValueError` naming the argument for a value out of range.
    """
    max_trials = checked_int("max_trials", max_trials, lower=1)
    return Armijo(
        c,
        max_stepsize,
        decrease_factor,
        max_trials - 1,
        None,
        block_size,
        reference=ZhangHagerReference(xi),
        first_trial=PolyakTrial(c_p, min_stepsize),
        min_grad_norm=min_grad_norm,
    )
