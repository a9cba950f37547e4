"""The paper's experiments, one module per suite (its docstring gives the command,
the expected wall time and the paper's result)."""

from . import (
    deterministic,
    edge_tuners,
    polyak_cap,
    polyak_zoom,
    stochastic,
    stochastic_curvature,
)

SUITES = {
    s.SUITE.name: s.SUITE
    for s in (
        deterministic,
        stochastic,
        polyak_zoom,
        polyak_cap,
        stochastic_curvature,
        edge_tuners,
    )
}
