"""Benchmarks and experiment suites for eqtuners; run from the repository root."""
