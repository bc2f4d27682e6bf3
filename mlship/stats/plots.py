"""The one plotting style of every mlship HTML report: matplotlib figures on the Agg backend, the
same palette and fonts, compact tick labels (``7.34k``, ``1.2M``, ``0.05``) that are never cut
(``bbox_inches="tight"``), embedded as self-contained PNG data URIs."""

from __future__ import annotations

import base64
import io
import math
from typing import Any

# Tableau 10: readable on white, distinguishable in print; reference/champion first, current/candidate second.
PALETTE = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#eeca3b", "#9d755d",
           "#ff9da6", "#bab0ac")
REFERENCE, CURRENT, GOOD, BAD, NEUTRAL = PALETTE[0], PALETTE[1], PALETTE[2], PALETTE[3], "#888888"
STYLE: dict[str, Any] = {
    "font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9, "xtick.labelsize": 8, "ytick.labelsize": 8,
    "legend.fontsize": 8, "legend.frameon": False, "axes.spines.top": False, "axes.spines.right": False,
    "axes.grid": True, "axes.grid.axis": "y", "grid.alpha": 0.3, "axes.axisbelow": True,
    "figure.dpi": 90, "savefig.bbox": "tight",
}
_SI = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (reports are written without a display), with the
    report style applied (:data:`STYLE`, :data:`PALETTE`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from cycler import cycler

    plt.rcParams.update({**STYLE, "axes.prop_cycle": cycler(color=list(PALETTE))})
    return plt


def compact(value: float, digits: int = 3) -> str:
    """A number as a short tick or bin label: SI suffixes from a thousand up (``7.34k``), else
    ``digits`` significant digits (``0.05``, ``12.5``); ``-0`` shows as ``0``."""
    if value is None or not math.isfinite(value):
        return "∞" if value == math.inf else "-∞" if value == -math.inf else "–"
    if value == 0:
        return "0"
    for scale, suffix in _SI:
        if abs(value) >= scale * 0.9995:
            return f"{value / scale:.{digits}g}{suffix}"
    return f"{value:.{digits}g}"


def compact_axis(axis: Any) -> None:
    """Compact labels (:func:`compact`) and at most 6 ticks on a linear axis (``ax.xaxis`` / ``ax.yaxis``)."""
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(nbins=6))
    axis.set_major_formatter(_compact_formatter())


def _finish(fig: Any) -> None:
    """The report style on a figure whatever rcParams it was drawn under: top and right spines off,
    compact labels on linear axes still using matplotlib's default formatter (whose offset text and
    ``1e+03`` exponents read badly in a small figure) and on log axes (``1k`` for ``10³``, the
    labelled minor ticks kept)."""
    from matplotlib.ticker import LogFormatter, ScalarFormatter

    for ax in fig.get_axes():
        ax.spines[["top", "right"]].set_visible(False)
        for axis, scale in ((ax.xaxis, ax.get_xscale()), (ax.yaxis, ax.get_yscale())):
            if scale == "linear" and type(axis.get_major_formatter()) is ScalarFormatter:
                axis.set_major_formatter(_compact_formatter())
            elif scale == "log":
                for current, setter in ((axis.get_major_formatter(), axis.set_major_formatter),
                                        (axis.get_minor_formatter(), axis.set_minor_formatter)):
                    if isinstance(current, LogFormatter):
                        setter(_compact_log(current))


def _compact_log(inner: Any) -> Any:
    """A log-axis formatter that labels the ticks ``inner`` labels, with :func:`compact` text."""
    from matplotlib.ticker import Formatter

    class CompactLog(Formatter):  # type: ignore[misc]
        def set_axis(self, axis: Any) -> None:
            super().set_axis(axis)
            inner.set_axis(axis)

        def set_locs(self, locs: Any) -> None:
            inner.set_locs(locs)

        def __call__(self, x: float, pos: int | None = None) -> str:
            return compact(x) if inner(x, pos) else ""

    return CompactLog()


def _compact_formatter() -> Any:
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda v, _pos: compact(v))


def _png(fig: Any, dpi: int) -> bytes:
    """The finished figure as PNG bytes; the figure is closed afterwards."""
    plt = pyplot()
    _finish(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def figure_uri(fig: Any, dpi: int = 90) -> str:
    """A figure as a ``data:image/png;base64,...`` URI (the figure is closed afterwards)."""
    return png_uri(_png(fig, dpi))


def save_png(fig: Any, path: Any, dpi: int = 90) -> Any:
    """Write a figure as a PNG file (parents created, figure closed), finished as by
    :func:`figure_uri`; returns the path."""
    from pathlib import Path

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(_png(fig, dpi))
    return target


def png_uri(data: bytes) -> str:
    """PNG bytes as a ``data:image/png;base64,...`` URI."""
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")
