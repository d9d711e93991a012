"""The report's figures (ROC, PR, PRO, score histogram) drawn with matplotlib as PNG bytes.

matplotlib is imported inside :func:`_pyplot` with the non-interactive Agg backend: the report
is written by the CLI, by a GUI worker thread and by the torch-free Inspector, and none of them
may start a window system backend (or pay for matplotlib's import when no report is written).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np

FIG_SIZE = (4.6, 3.4)  # inches; at 110 dpi about 500 x 370 px, two figures side by side on A4
DPI = 110
GOOD_COLOUR, DEFECT_COLOUR, ALL_COLOUR = "#15803d", "#b91c1c", "#2563eb"
NG_COLOUR, OK_COLOUR = "#111827", "#d97706"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)  # no-op when a caller already chose a non-GUI backend
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=DPI)
    _pyplot().close(fig)
    return buffer.getvalue()


def _axes(title: str, xlabel: str, ylabel: str):
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=FIG_SIZE)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    return fig, ax


def curve_png(x: Sequence[float], y: Sequence[float], *, title: str, xlabel: str, ylabel: str,
              area_label: str | None = None, marker: tuple[float, float] | None = None,
              marker_label: str = "", xlim: float = 1.0) -> bytes:
    """A threshold curve (ROC, PR or PRO) with the active policy's operating point marked."""
    fig, ax = _axes(title, xlabel, ylabel)
    ax.plot(np.asarray(x), np.asarray(y), color=ALL_COLOUR, lw=1.8, label=area_label)
    if marker is not None:
        ax.plot([marker[0]], [marker[1]], "o", color=NG_COLOUR, ms=7, label=marker_label)
    ax.set_xlim(0.0, xlim)
    ax.set_ylim(0.0, 1.02)
    if area_label or marker is not None:
        ax.legend(loc="lower right", fontsize=8, framealpha=0.9)
    return _png(fig)


def histogram_png(groups: Sequence[tuple[str, np.ndarray, str]], ng_threshold: float | None,
                  ok_threshold: float | None, *, title: str = "Image scores") -> bytes:
    """Score histogram, one colour per group (good / defect, or all images), with the NG line
    (solid) and the OK line of a REVIEW band (dashed)."""
    fig, ax = _axes(title, "image score (raw model units)", "images")
    finite = [np.asarray(s, np.float64)[np.isfinite(s)] for _, s, _ in groups]
    values = np.concatenate(finite) if finite else np.empty(0)
    lines = [v for v in (ng_threshold, ok_threshold) if v is not None]
    if values.size:
        edges = np.concatenate([values, np.asarray(lines, np.float64)])
        low, high = float(edges.min()), float(edges.max())
        bins = np.linspace(low, high if high > low else low + 1.0, 31)
        for (label, _, colour), data in zip(groups, finite):
            if data.size:
                ax.hist(data, bins=bins, alpha=0.55, color=colour, label=f"{label} ({data.size})")
    if ng_threshold is not None:
        ax.axvline(ng_threshold, color=NG_COLOUR, lw=1.6, label=f"NG from {ng_threshold:.4g}")
    if ok_threshold is not None:
        ax.axvline(ok_threshold, color=OK_COLOUR, lw=1.6, ls="--", label=f"OK below {ok_threshold:.4g}")
    ax.legend(fontsize=8, framealpha=0.9)
    return _png(fig)


__all__ = ["curve_png", "histogram_png"]
