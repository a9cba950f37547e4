"""Which runs a claim reads: the paper's tuners are those at its defaults (a run
of the same kind with other hyperparameters, from `--tuners`, is not them)."""

from .._tuners import TunerSpec


def paper_run(runs, kind: str):
    """The run of the paper's `kind` tuner (`armijo`, `polyak`) at its defaults,
    or `None`."""
    wanted = TunerSpec(kind)
    return next((r for r in runs if r.config.tuner == wanted), None)


def fixed_steps(runs) -> list:
    """The runs of GD at a fixed step (no other hyperparameter)."""
    return [
        r
        for r in runs
        if r.config.tuner.kind == "constant" and not r.config.tuner.options
    ]
