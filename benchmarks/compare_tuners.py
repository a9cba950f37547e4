"""The main job: `python -m benchmarks.paper deterministic --scale cpu --dataset
digits`, the paper's deterministic comparison (its Figures 1 and 2) on the embedded
digits, with the README's results directory. Arguments are passed on, e.g.
`python -m benchmarks.compare_tuners --steps 500`.
"""

import sys

from benchmarks.paper.cli import main as paper_main

COMMAND = ["deterministic", "--scale", "cpu", "--dataset", "digits"]


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    return paper_main([*COMMAND, *argv])


if __name__ == "__main__":
    sys.exit(main())
