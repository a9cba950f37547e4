"""The paper's experiments as suites: `python -m benchmarks.paper SUITE --scale ...`.

See `benchmarks.paper.cli` for the command line and `benchmarks.paper.suites` for
the suites (one module each, whose docstring gives the command, the expected wall
time and the paper's result).
"""
