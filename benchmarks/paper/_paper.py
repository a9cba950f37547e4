"""The paper's data, models and workloads, defined once for every suite.

The deterministic regime (full batch, a 4096-example class-balanced subset) and the
stochastic regime (mini-batches of 256, 1024 and 4096 on the whole training set),
each at the four scales: `paper` (CIFAR10), `offline` (Fashion-MNIST padded to
32x32, the real data of a machine without CIFAR10), `cpu` (the paper's MLP on
digits and Fashion-MNIST) and `smoke` (a narrow MLP on a few hundred digits, for
the tests).
"""

from ._config import DataSpec
from ._measure import MeasureSpec
from ._suite import Workload

DIGITS = DataSpec("digits")  # embedded: 1437 training images of 8x8
CIFAR10 = DataSpec("cifar10")
CIFAR10_4096 = DataSpec("cifar10", subset=4096)  # the paper's full batch
FASHION = DataSpec("fashion_mnist")
FASHION_32 = DataSpec("fashion_mnist", pad_to=32)
FASHION_32_4096 = DataSpec("fashion_mnist", subset=4096, pad_to=32)
FASHION_1024 = DataSpec("fashion_mnist", subset=1024)
SMOKE_DIGITS = DataSpec("digits", subset=256)
SMOKE_DIGITS_MINIBATCH = DataSpec("digits", subset=512)

# The seeds of the `cpu` scales: runs at the edge of stability are chaotic, so a
# claim is checked on each of several seeds (stacked in one compile per tuner).
CPU_SEEDS = (0, 1, 2)

# The paper's models and their full-batch steps.
MODELS = {"mlp": 10000, "vgg11": 5000, "resnet34": 5000}
BATCH_SIZES = (256, 1024, 4096)


def paper_models(data: DataSpec, **options) -> tuple[Workload, ...]:
    """A full-batch workload per model of the paper, at its steps."""
    return tuple(Workload(m, data, steps=s, **options) for m, s in MODELS.items())


FULL_BATCH = {
    "paper": paper_models(CIFAR10_4096, measure=MeasureSpec(every=50)),
    "offline": paper_models(FASHION_32_4096, measure=MeasureSpec(every=50)),
    # The paper's schedule (every 50 steps) pays for the seeds.
    "cpu": (
        Workload(
            "mlp", DIGITS, steps=2000, measure=MeasureSpec(every=50), seeds=CPU_SEEDS
        ),
        Workload(
            "mlp",
            FASHION_1024,
            steps=1000,
            measure=MeasureSpec(every=25),
            sweep_steps=300,
            seeds=CPU_SEEDS,
        ),
    ),
    "smoke": (
        Workload(
            "mlp",
            SMOKE_DIGITS,
            steps=8,
            width=0.5,
            measure=MeasureSpec(every=4),
            sweep_steps=4,
            steps_per_call=4,
        ),
    ),
}


def _mini_batch(model, data, sweep_data, epochs, measure, **options) -> Workload:
    return Workload(
        model,
        data,
        batch_sizes=BATCH_SIZES,
        epochs=epochs,
        measure=measure,
        sweep_data=sweep_data,
        **options,
    )


# About 60 measurements per run, the sharpness on 4096 training examples.
_STOCHASTIC = MeasureSpec(every=None, examples=4096)

MINI_BATCH = {
    "paper": tuple(
        _mini_batch(m, CIFAR10, CIFAR10_4096, 20, _STOCHASTIC) for m in MODELS
    ),
    "offline": tuple(
        _mini_batch(m, FASHION_32, FASHION_32_4096, 20, _STOCHASTIC) for m in MODELS
    ),
    # 5 epochs, but at least 300 steps (5 epochs at batch 4096 are 73 steps), and
    # 30 measurements a run instead of 60 to pay for the seeds.
    "cpu": (
        _mini_batch(
            "mlp",
            FASHION,
            FASHION_1024,
            5,
            MeasureSpec(
                every=None, measurements=30, examples=1024, estimator="lanczos"
            ),
            sweep_steps=300,
            seeds=CPU_SEEDS,
            min_steps=300,
        ),
    ),
    "smoke": (
        Workload(
            "mlp",
            SMOKE_DIGITS_MINIBATCH,
            width=0.5,
            batch_sizes=(64,),
            epochs=1,
            measure=MeasureSpec(every=2, examples=64),
            sweep_steps=4,
            steps_per_call=4,
        ),
    ),
}
