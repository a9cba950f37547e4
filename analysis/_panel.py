"""One panel of a figure: an axis that records what is drawn on it, then picks a
log or linear y scale and limits that the runs which did not diverge fill."""

import math
from collections.abc import Sequence

import numpy as np

from ._plot_core import log_formatter

# How far above the runs that did not diverge a diverged run may take the y axis.
_DIVERGED_HEADROOM = 3.0


class Panel:
    """One axis: records what is drawn on it, then picks a log or linear y scale
    (log where the positive values span more than a decade) and y limits that the
    runs which did not diverge fill (a diverged run may leave through the top)."""

    def __init__(self, ax, ylabel: str, xlabel: str):
        self.ax = ax
        ax.set_ylabel(ylabel)
        ax.set_xlabel(xlabel)
        ax.grid(True, which="major", alpha=0.25, linewidth=0.6)
        self._values: list[tuple[np.ndarray, bool]] = []
        self._has_data = False

    def plot(self, x, y, *, diverged: bool = False, **style):
        """Draws the finite points of `(x, y)`; those of a `diverged` run do not
        raise the top of the axis beyond a little headroom."""
        y = np.where(np.isfinite(y), np.asarray(y, float), np.nan)
        keep = np.isfinite(y)
        if keep.any():
            self.ax.plot(np.asarray(x)[keep], y[keep], **style)
            self._has_data = True
            self._values.append((y[keep], diverged))

    def hline(self, y: float, *, diverged: bool = False, **style):
        """A reference line; that of a diverged run does not widen the axis."""
        if math.isfinite(y):
            self.ax.axhline(y, **style)
            if not diverged:
                self._values.append((np.array([y]), False))

    def finish(
        self,
        *,
        log: bool | None = None,
        empty_text: str = "not measured",
        ticks: Sequence[float] = (),
    ):
        """Sets the scale and limits; `ticks` are labelled as well, if in view."""
        ax = self.ax
        if not self._has_data:
            ax.text(
                0.5,
                0.5,
                empty_text,
                transform=ax.transAxes,
                ha="center",
                va="center",
                color="0.4",
            )
            ax.set_yticks([])
            return
        kept = [v for v, diverged in self._values if not diverged]
        every = np.concatenate([v for v, _ in self._values])
        trusted = np.concatenate(kept) if kept else every
        positive = every[every > 0]
        if log is None:  # zeros (failed line searches) are masked, negatives are not
            shown = trusted[trusted > 0]
            log = every.min() >= 0 and shown.size > 0 and shown.max() > 10 * shown.min()
        if log and positive.size:
            from matplotlib import ticker

            ax.set_yscale("log", nonpositive="mask")
            ax.yaxis.set_major_formatter(log_formatter(ticks))
            ax.yaxis.set_minor_formatter(log_formatter())
            ax.yaxis.set_major_locator(ticker.LogLocator(base=10, numticks=8))
            low = positive.min()
            high = trusted[trusted > 0].max() if (trusted > 0).any() else positive.max()
            if every.max() > high * _DIVERGED_HEADROOM:
                high *= _DIVERGED_HEADROOM
            else:
                high = positive.max()
            pad = (high / low) ** 0.04
            ax.set_ylim(low / pad, high * pad)
            if ticks:
                low, high = ax.get_ylim()
                major = ax.yaxis.get_major_locator().tick_values(low, high)
                shown = [t for t in [*major, *ticks] if low <= t <= high]
                ax.yaxis.set_major_locator(ticker.FixedLocator(sorted(set(shown))))
        else:
            ax.ticklabel_format(axis="y", style="plain", useOffset=False)
            low, high = every.min(), trusted.max()
            span = trusted.max() - trusted.min() or abs(high) or 1.0
            if every.max() > high + _DIVERGED_HEADROOM * span:
                high += _DIVERGED_HEADROOM * span
            else:
                high = every.max()
            pad = 0.05 * ((high - low) or abs(high) or 1.0)
            ax.set_ylim(low - pad, high + pad)
