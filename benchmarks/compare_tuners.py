"""The main job: gradient descent at fixed step sizes against Armijo-GD and Polyak-GD.

    python -m benchmarks.compare_tuners            # digits, the MLP, about 2 minutes

It reproduces the comparison of the paper's Figures 1 and 2 on a small scale:

1. a short sweep of fixed step sizes (a grid with ratio sqrt(2), without sharpness)
   finds the largest that does not diverge; GD runs at the two largest stable ones;
2. four runs (GD x 2, Armijo and Polyak at the paper's defaults) of `--steps` steps,
   measuring sharpness every `--sharpness-every` steps;
3. each run writes `OUT/<run>/{config.json, meta.json, history.csv}` as it goes;
   `OUT/sweep.json` holds the sweep, `OUT/summary.json` the numbers below, and
   `OUT/four_panels.png` the paper's four panels.

It prints, for each run, the final training loss, the last measured sharpness and
the median of step size x sharpness over the second half of the run. Expect Armijo's
loss to fall without increasing while its sharpness climbs above the others', GD to
hover near step size x sharpness = 2, and Polyak to reach a lower loss than Armijo
at a lower sharpness.
"""

import argparse
import inspect
import json
import time
import warnings
from pathlib import Path

import jax
import numpy as np

import eqtuners as et
from analysis.plots import Curve, plot_four_panels

from ._rundir import RunDirectory

SWEEP_GRID = tuple(float(0.0625 * 2 ** (k / 2)) for k in range(13))  # 1/16 to 4


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.compare_tuners",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("--dataset", default="digits", choices=sorted(et.DATASETS))
    parser.add_argument("--model", default="mlp", choices=sorted(et.MODELS))
    parser.add_argument(
        "--width", type=float, default=1.0, help="model width multiplier (default 1)"
    )
    parser.add_argument(
        "--chunk-size",
        type=int,
        default=None,
        help="examples per chunk of the full-batch objective and HVPs "
        "(default: the model's entry in eqtuners.DEFAULT_CHUNK_SIZES)",
    )
    parser.add_argument(
        "--subset",
        type=int,
        default=None,
        help="class-balanced training subset (the paper's full batch: 4096)",
    )
    parser.add_argument(
        "--data-seed",
        type=int,
        default=None,
        help="the dataset's seed: the subset, the synthetic images, the digits split "
        "(default: the loader's, 0)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="data directory (default: $EQTUNERS_DATA_DIR, else $TFDS_DATA_DIR, "
        "else ~/tensorflow_datasets)",
    )
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="mini-batch size (default: full batch)",
    )
    parser.add_argument("--sharpness-every", type=int, default=20)
    parser.add_argument("--sweep-steps", type=int, default=500)
    parser.add_argument(
        "--stepsizes",
        type=float,
        nargs=2,
        default=None,
        help="the two fixed step sizes (skips the sweep)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("results/compare_tuners"))
    return parser.parse_args(argv)


def dataset_options(args) -> dict:
    """The loader's keyword arguments from `--subset`, `--data-dir`, `--data-seed`."""
    accepted = inspect.signature(et.DATASETS[args.dataset]).parameters
    options = {
        "subset": args.subset,
        "data_dir": args.data_dir,
        "seed": args.data_seed,
    }
    options = {k: v for k, v in options.items() if v is not None}
    for name in options:
        if name not in accepted:
            raise SystemExit(
                f"--{name.replace('_', '-')} does not apply to the dataset "
                f"{args.dataset!r}."
            )
    return options


def sweep_fixed_stepsizes(model, data, args) -> list[dict]:
    """Runs GD at every step size of `SWEEP_GRID` for `args.sweep_steps` steps."""
    outcomes = []
    for stepsize in SWEEP_GRID:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            result = et.train(
                model,
                et.Constant(stepsize),
                data,
                args.sweep_steps,
                key=jax.random.key(args.seed),
                batch_size=args.batch_size,
                measure=None,
                chunk_size=args.chunk_size,
            )
        loss = result.history["loss"]
        stable = result.diverged_at is None and loss[-1] < loss[0]
        outcomes.append(
            {
                "stepsize": stepsize,
                "final_loss": float(loss[-1]),
                "diverged_at": result.diverged_at,
                "stable": bool(stable),
            }
        )
        print(
            f"  sweep: step size {stepsize:.4g}: "
            + (f"final loss {loss[-1]:.4g}" if stable else "diverged")
        )
    return outcomes


def summarise(history) -> dict:
    """The final loss on the batch, the last measured training loss and sharpness,
    and the median of step size x sharpness over the second half of the run."""
    measured = ~np.isnan(history["sharpness"])
    late = measured & (history["step"] >= history["step"][-1] / 2)

    def last(key):
        return float(history[key][measured][-1]) if measured.any() else None

    return {
        "final_batch_loss": float(history["loss"][-1]),
        "last_train_loss": last("train_loss"),
        "last_sharpness": last("sharpness"),
        "median_stepsize_x_sharpness_second_half": float(
            np.median(history["stepsize_x_sharpness"][late])
        )
        if late.any()
        else None,
        "steps": int(len(history["step"])),
    }


def run_one(name, model, tuner, data, args, config) -> tuple[dict, et.TrainResult]:
    run = RunDirectory(args.out / name, config, seed=args.seed)
    start = time.perf_counter()

    def progress(rows, state):
        run.append(rows)
        sharp = rows["sharpness"][~np.isnan(rows["sharpness"])]
        print(
            f"  {name}: step {rows['step'][-1] + 1}/{args.steps}  "
            f"loss {rows['loss'][-1]:.4g}  step size {rows['stepsize'][-1]:.4g}"
            + (f"  sharpness {sharp[-1]:.4g}" if sharp.size else ""),
            flush=True,
        )

    result = et.train(
        model,
        tuner,
        data,
        args.steps,
        key=jax.random.key(args.seed),
        batch_size=args.batch_size,
        measure=et.Measurements(args.sharpness_every),
        chunk_size=args.chunk_size,
        steps_per_call=min(200, args.steps),
        callback=progress,
    )
    summary = summarise(result.history) | {
        "seconds": round(time.perf_counter() - start, 2)
    }
    status = (
        "completed"
        if result.diverged_at is None
        else f"diverged at step {result.diverged_at}"
    )
    run.finish(status, summary)
    return summary, result


def main(argv=None) -> dict:
    args = parse_args(argv)
    try:
        data = et.load_dataset(args.dataset, **dataset_options(args))
    except et.DatasetNotFoundError as error:
        raise SystemExit(str(error)) from None
    model = et.make_model(
        args.model,
        data.input_shape,
        data.num_classes,
        key=jax.random.key(args.seed),
        width=args.width,
    )
    if args.chunk_size is None:
        args.chunk_size = et.DEFAULT_CHUNK_SIZES[args.model]
    args.out.mkdir(parents=True, exist_ok=True)
    print(
        f"{args.dataset}: {data.train_x.shape[0]} training examples; "
        f"model {args.model}; {args.steps} steps; writing to {args.out}/"
    )

    if args.stepsizes is None:
        print(f"Sweeping fixed step sizes for {args.sweep_steps} steps:")
        sweep = sweep_fixed_stepsizes(model, data, args)
        stable = [o["stepsize"] for o in sweep if o["stable"]]
        if len(stable) < 2:
            raise SystemExit(
                "Fewer than two fixed step sizes were stable in the "
                "sweep; pass two with --stepsizes."
            )
        stepsizes = sorted(stable)[-2:][::-1]
        (args.out / "sweep.json").write_text(
            json.dumps(
                {"steps": args.sweep_steps, "outcomes": sweep, "chosen": stepsizes},
                indent=2,
            )
            + "\n"
        )
    else:
        stepsizes = sorted(args.stepsizes, reverse=True)

    common = {
        "dataset": args.dataset,
        "model": args.model,
        "width": args.width,
        "subset": args.subset,
        "data_seed": args.data_seed,
        "chunk_size": args.chunk_size,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "weight_decay": 1e-4,
        "sharpness_every": args.sharpness_every,
        "seed": args.seed,
    }
    runs = {
        f"gd_{s:.4g}": (et.Constant(s), {"tuner": "Constant", "stepsize": s})
        for s in stepsizes
    }
    runs["armijo"] = (
        et.Armijo(),
        {"tuner": "Armijo", "c": 1e-4, "max_stepsize": 1.0, "decrease_factor": 0.8},
    )
    runs["polyak"] = (
        et.Polyak(),
        {"tuner": "Polyak", "max_stepsize": 1.0, "f_min": 0.0},
    )
    summaries, curves = {}, []
    for name, (tuner, tuner_config) in runs.items():
        print(f"Run {name}:")
        summary, result = run_one(name, model, tuner, data, args, common | tuner_config)
        summaries[name] = summary
        fixed = tuner_config.get("stepsize")
        label = f"GD {fixed:.4g}" if fixed else tuner_config["tuner"]
        curves.append(Curve(label, result.history, fixed))

    (args.out / "summary.json").write_text(json.dumps(summaries, indent=2) + "\n")
    figure = plot_four_panels(
        curves,
        args.out / "four_panels.png",
        title=f"{args.model} on {args.dataset}, full batch"
        if args.batch_size is None
        else f"{args.model} on {args.dataset}, batch {args.batch_size}",
        smooth=1 if args.batch_size is None else 20,
    )
    print(f"\n{'run':<12}{'final loss':>12}{'sharpness':>12}{'median s*lam':>14}")
    for name, s in summaries.items():
        print(
            f"{name:<12}{s['final_batch_loss']:>12.4g}"
            f"{s['last_sharpness'] or float('nan'):>12.4g}"
            f"{s['median_stepsize_x_sharpness_second_half'] or float('nan'):>14.4g}"
        )
    print(
        f"\nWrote the runs to {args.out}/, the summary to {args.out / 'summary.json'}"
        f" and the figure to {figure}"
    )
    return summaries


if __name__ == "__main__":
    main()
