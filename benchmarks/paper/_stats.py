"""Statistics of a run's history (a dict of per-step arrays, NaN where a quantity
was not measured), as the claims and the run summaries read them."""

import math

import numpy as np


def measured(history, key, start=0, stop=None) -> np.ndarray:
    """The finite values of `key` on rows with `start <= step < stop`."""
    step = history["step"]
    stop = math.inf if stop is None else stop
    rows = (step >= start) & (step < stop) & np.isfinite(history[key])
    return history[key][rows]


def second_half(history, key) -> np.ndarray:
    """The finite values of `key` from the middle step of the run on."""
    return measured(history, key, start=history["step"][-1] / 2)


def median_second_half(history, key="stepsize_x_sharpness") -> float | None:
    values = second_half(history, key)
    return float(np.median(values)) if values.size else None


def final(history, key) -> float | None:
    """The last finite value of `key`."""
    values = history[key][np.isfinite(history[key])]
    return float(values[-1]) if values.size else None


def first(history, key) -> float | None:
    """The first finite value of `key`."""
    values = history[key][np.isfinite(history[key])]
    return float(values[0]) if values.size else None


def all_known(*values) -> bool:
    return all(v is not None for v in values)


def summarise(history: dict, test_accuracy: float | None) -> dict:
    """The numbers a run's meta keeps: the last training loss and sharpness (both
    measured at the last step), the median step size x sharpness over the second
    half, the test accuracy."""
    return {
        "steps": int(len(history["step"])),
        "final_train_loss": final(history, "train_loss"),
        "final_sharpness": final(history, "sharpness"),
        "median_stepsize_x_sharpness_second_half": _median_where_measured(history),
        "test_accuracy": test_accuracy,
    }


def _median_where_measured(history) -> float | None:
    # The rows of the second half where the sharpness was measured (the product
    # may be NaN there, after a divergence).
    late = np.isfinite(history["sharpness"]) & (
        history["step"] >= history["step"][-1] / 2
    )
    if not late.any():
        return None
    return float(np.median(history["stepsize_x_sharpness"][late]))
