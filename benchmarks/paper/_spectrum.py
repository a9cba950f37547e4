"""The Hessian's spectral density at the start and the end of a run, written beside
its history as `spectrum.npz` (`MeasureSpec.spectrum`).

Both are measured on the run's measurement set (the examples its sharpness is
measured on), of the objective it trains (with weight decay), by stochastic
Lanczos quadrature (`eqtuners.spectral_density`): `PROBES` probes of
`LANCZOS_STEPS` Hessian-vector products each.
"""

from pathlib import Path

import equinox as eqx
import jax
import numpy as np

import eqtuners as et
from eqtuners.internal import measurement_set

PROBES = 4
LANCZOS_STEPS = 60
FILE = "spectrum.npz"


@eqx.filter_jit
def _quadrature(model, x, y, weight_decay, chunk_size, key):
    fn, params = et.objective_fn(
        model, x, y, weight_decay=weight_decay, chunk_size=chunk_size
    )
    return et.spectral_density(
        fn, params, num_samples=PROBES, lanczos_steps=LANCZOS_STEPS, key=key
    )[0]


def write_spectra(config, path: Path, start, end, data, chunk_size) -> None:
    """Writes the quadratures of the models `start` and `end` (`end` skipped when
    its parameters are not finite, as after a divergence) to `path/spectrum.npz`:
    `start_nodes`, `start_weights` and, when measured, `end_nodes`, `end_weights`,
    each of shape `(PROBES, LANCZOS_STEPS)`."""
    x, y = measurement_set(config.measurements(), data.train_x, data.train_y)
    key = jax.random.key(config.seed)
    arrays = {}
    for when, model in (("start", start), ("end", end)):
        params = jax.tree.leaves(eqx.filter(model, eqx.is_inexact_array))
        if not all(bool(np.isfinite(leaf).all()) for leaf in params):
            continue
        nodes, weights = _quadrature(
            model, x, y, float(config.weight_decay), chunk_size, key
        )
        arrays[f"{when}_nodes"] = np.asarray(nodes)
        arrays[f"{when}_weights"] = np.asarray(weights)
    np.savez(path / FILE, **arrays)


def read_spectra(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """`{"start": (nodes, weights), "end": ...}` from `path/spectrum.npz`, with
    what was measured; empty when the file is missing."""
    file = path / FILE
    if not file.exists():
        return {}
    with np.load(file) as arrays:
        return {
            when: (arrays[f"{when}_nodes"], arrays[f"{when}_weights"])
            for when in ("start", "end")
            if f"{when}_nodes" in arrays
        }
