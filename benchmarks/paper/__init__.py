"""The paper's experiments as suites: `python -m benchmarks.paper SUITE --scale ...`.

See `benchmarks.paper.cli` for the command line and `benchmarks.paper.suites` for
the suites (one module each: its docstring, which gives the command, the expected
wall time and the paper's result, its scales, and the names of the claims it
checks and the figures it draws). The claims are in `benchmarks.paper.claims`, the
figures in `benchmarks.paper.figures`, the tuners a suite can run in `_tuners`
and the measurement options in `_measure`.
"""
