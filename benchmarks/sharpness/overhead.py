"""The `overhead` part: the training time with the sharpness tracked every 10
steps, over the training time alone (see the package's docstring)."""

import time
from pathlib import Path

import jax
import numpy as np

import eqtuners as et

from .peers import JaxLOBPCG
from .problems import TUNERS, run_train

OVERHEAD_CONFIGS = {
    "none": None,
    "power": et.PowerIteration(),
    "lanczos_warm": et.Lanczos(),
    "lanczos_warm_1e-2": et.Lanczos(tol=1e-2),
    "jax_lobpcg_b2": JaxLOBPCG(2),
    "lobpcg_b2": et.LOBPCG(2),
    "lobpcg_b2_1e-2": et.LOBPCG(2, tol=1e-2),
    "lobpcg_b2_top_1e-2": et.LOBPCG(2, tol=1e-2, iterate_guards=False),
    "recycled_b2": et.RecycledRitz(2),
    "recycled_b3": et.RecycledRitz(3),
    "recycled_b3_1e-2": et.RecycledRitz(3, tol=1e-2),
}


def part_overhead(args, out: Path) -> dict:
    """Wall time of `train` on `mlp_digits` with sharpness every 10 steps by each
    configuration of `OVERHEAD_CONFIGS` (no directional curvature), against none.

    Every configuration is compiled first; then the runs are timed in turn,
    `args.repeats` rounds (the configurations interleaved, so that a change in the
    machine's load meets them all). Each keeps its best time, and the overhead is
    reported both from the best times and as the median over rounds of the
    round's ratio (the machine may be shared).
    """
    data = et.load_dataset("digits")
    model = et.make_model(
        "mlp", data.input_shape, data.num_classes, key=jax.random.key(args.seed)
    )
    configs = {name: OVERHEAD_CONFIGS[name] for name in args.overhead_configs}
    result = {"steps": args.overhead_steps, "sharpness_every": 10, "tuners": {}}
    print(f"\nTraining time, sharpness every 10 steps ({args.overhead_steps} steps):")
    for tuner_name in args.overhead_tuners:
        tuner = TUNERS[tuner_name]()

        def go(estimator):
            return run_train(
                model,
                tuner,
                data,
                args.overhead_steps,
                seed=args.seed,
                estimator=estimator,
            )

        results = {name: go(estimator) for name, estimator in configs.items()}
        times = {name: [] for name in configs}
        for _ in range(args.repeats):
            for name, estimator in configs.items():
                start = time.perf_counter()
                go(estimator)
                times[name].append(time.perf_counter() - start)
        lines = {}
        base = np.array(times["none"])
        for name, run in results.items():
            hvps = run.history["sharpness_num_hvps"]
            measured = np.isfinite(hvps)
            lines[name] = {
                "seconds": min(times[name]),
                "seconds_all": times[name],
                "measurements": int(measured.sum()),
                "hvps_per_measurement": float(hvps[measured].mean())
                if measured.any()
                else 0.0,
                "overhead": min(times[name]) / base.min() - 1,
                "overhead_median_of_rounds": float(
                    np.median(np.array(times[name]) / base) - 1
                ),
            }
        for name, line in lines.items():
            print(
                f"  {tuner_name:<8}{name:<22}{line['seconds']:>8.2f} s  overhead "
                f"{line['overhead']:>7.1%} (median of rounds "
                f"{line['overhead_median_of_rounds']:>7.1%})  HVPs/measurement "
                f"{line['hvps_per_measurement']:.1f}"
            )
        result["tuners"][tuner_name] = lines
    return result
