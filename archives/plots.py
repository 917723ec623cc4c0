"""Figures of a run as PNG bytes: archive map, progress, solve-rate histograms, operator yield.

Each function takes plain data and returns the PNG, so a caller can write it to a file or
inline it (HTML report, Prefect artifact). Figures are drawn on matplotlib's Agg canvas
directly, never through pyplot: no global figure state and no display backend, so this
works in threads (Prefect tasks) and on headless machines.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

__all__ = ["archive_map", "pca_2d", "progress", "solve_rate_histograms", "step_groups", "operator_yield"]

DPI = 100
MAX_PANELS = 12
EMPTY_COLOR = "#b8b8b8"
SEED_COLOR = "#8c6d46"
BAND_COLOR = "#2ca02c"
CMAP = "viridis"


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", facecolor="white")
    return buf.getvalue()


def pca_2d(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project rows onto their first two principal components (numpy SVD).

    Returns the (n, 2) coordinates and the fraction of variance each axis explains. Signs
    are fixed (largest loading positive) so the same centroids always give the same map.
    """
    x = np.asarray(points, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"points must be a non-empty 2-D array; got shape {x.shape}")
    centered = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(centered, full_matrices=False)
    vt = vt[:2]
    if vt.shape[0] < 2:  # a single column: the second axis is constant
        vt = np.vstack([vt, np.zeros_like(vt)])
        s = np.concatenate([s, [0.0]])
    signs = np.sign(vt[np.arange(2), np.argmax(np.abs(vt), axis=1)])
    vt = vt * np.where(signs == 0, 1.0, signs)[:, None]
    total = float(np.sum(s**2))
    explained = (s[:2] ** 2 / total) if total > 0 else np.zeros(2)
    return centered @ vt.T, explained


def archive_map(centroids: np.ndarray, cells: Sequence[int], qualities: Sequence[float],
                seeds: Sequence[bool]) -> bytes:
    """Every cell's centroid in 2-D (PCA); empty cells hollow grey, seed elites brown,
    generated elites coloured by quality."""
    xy, explained = pca_2d(centroids)
    cells_arr = np.asarray(cells, dtype=np.int64)
    q = np.asarray(qualities, dtype=np.float64)
    is_seed = np.asarray(seeds, dtype=bool)
    empty = np.ones(len(xy), dtype=bool)
    empty[cells_arr] = False
    fig = Figure(figsize=(7.5, 6))
    ax = fig.add_subplot()
    ax.scatter(xy[empty, 0], xy[empty, 1], s=36, facecolors="none", edgecolors=EMPTY_COLOR,
               linewidths=1.0, label=f"empty cell ({int(empty.sum())})")
    seed_cells = cells_arr[is_seed]
    ax.scatter(xy[seed_cells, 0], xy[seed_cells, 1], s=36, marker="s", color=SEED_COLOR, alpha=0.7,
               label=f"seed elite, unscored ({seed_cells.size})")
    gen = ~is_seed
    if gen.any():
        top = float(q[gen].max())
        points = ax.scatter(xy[cells_arr[gen], 0], xy[cells_arr[gen], 1], s=70, c=q[gen], cmap=CMAP,
                            norm=Normalize(vmin=0.0, vmax=max(top, 1e-9)), edgecolors="black",
                            linewidths=0.5, label=f"generated elite ({int(gen.sum())})", zorder=3)
        fig.colorbar(points, ax=ax, label="elite quality")
    ax.set_xlabel(f"PC 1 ({100 * explained[0]:.0f}% of centroid variance)")
    ax.set_ylabel(f"PC 2 ({100 * explained[1]:.0f}%)")
    ax.set_title(f"Archive: {cells_arr.size} of {len(xy)} cells occupied")
    ax.legend(loc="best", fontsize=8, framealpha=0.85)
    return _png(fig)


def progress(steps: Sequence[int], coverage: Sequence[float], qd_score: Sequence[float],
             accepted: Sequence[int]) -> bytes:
    """Coverage, QD score and archived candidates per committed step."""
    fig = Figure(figsize=(12, 3.4), layout="constrained")
    axes = fig.subplots(1, 3)
    axes[0].plot(steps, coverage, marker="o", color="#1f77b4")
    axes[0].set_title("coverage (occupied / cells)")
    axes[1].plot(steps, qd_score, marker="o", color="#d62728")
    axes[1].set_title("QD score (sum of elite qualities)")
    axes[2].bar(steps, accepted, color="#9467bd")
    axes[2].set_title("archived candidates per step")
    for ax in axes:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].set_ylim(bottom=0)
    return _png(fig)


def step_groups(steps: Sequence[int], max_panels: int = MAX_PANELS) -> list[tuple[int, int]]:
    """Split the sorted distinct steps into at most `max_panels` consecutive (first, last) ranges."""
    distinct = sorted(set(steps))
    if not distinct:
        return []
    size = math.ceil(len(distinct) / max_panels)
    return [(chunk[0], chunk[-1]) for chunk in (distinct[i:i + size] for i in range(0, len(distinct), size))]


def solve_rate_histograms(steps: Sequence[int], rates: Sequence[float], *, bins: int = 10,
                          band: tuple[float, float] | None = None) -> bytes:
    """One solve-rate histogram per step (or per range of steps when there are many)."""
    steps_arr = np.asarray(steps, dtype=np.int64)
    rates_arr = np.asarray(rates, dtype=np.float64)
    groups = step_groups(steps_arr.tolist())
    edges = np.linspace(0.0, 1.0, bins + 1)
    n_panels = max(1, len(groups))
    cols = min(4, n_panels)
    rows = math.ceil(n_panels / cols)
    fig = Figure(figsize=(3.2 * cols, 2.6 * rows), layout="constrained")
    # x is not shared: with a ragged last row, shared x would hide the tick labels of the
    # panels above the empty slots.
    axes = fig.subplots(rows, cols, sharey=True, squeeze=False).ravel()
    if not groups:
        axes[0].text(0.5, 0.5, "no solved candidates yet", ha="center", va="center",
                     transform=axes[0].transAxes)
    for ax, (first, last) in zip(axes, groups, strict=False):
        sel = rates_arr[(steps_arr >= first) & (steps_arr <= last)]
        # The small offset puts a rate lying on an edge (0.3 with k=10) in the bin it opens.
        ax.hist(np.clip(sel + 1e-9, 0.0, 1.0), bins=edges, color="#1f77b4", edgecolor="white")
        if band:
            ax.axvspan(band[0], band[1], color=BAND_COLOR, alpha=0.12, lw=0)
        ax.set_xlim(0.0, 1.0)
        label = f"step {first}" if first == last else f"steps {first}-{last}"
        ax.set_title(f"{label} (n={sel.size})", fontsize=10)
        ax.grid(alpha=0.3)
    for i, ax in enumerate(axes):
        if i >= n_panels:
            ax.set_visible(False)
        elif i + cols >= n_panels:  # nothing below it
            ax.set_xlabel("solve rate")
    title = "Solve rate of ok candidates"
    if band:
        title += f" (green: quality band [{band[0]}, {band[1]}])"
    fig.suptitle(title)
    return _png(fig)


def operator_yield(operators: Sequence[str], archived: Sequence[int], ok: Sequence[int],
                   duplicate: Sequence[int], unparseable: Sequence[int]) -> bytes:
    """Per operator, what became of its candidates; the label is archived per candidate."""
    fig = Figure(figsize=(8, 1.2 + 0.6 * max(1, len(operators))))
    ax = fig.add_subplot()
    if not operators:
        ax.text(0.5, 0.5, "no generated candidates yet", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return _png(fig)
    y = np.arange(len(operators))
    arch = np.asarray(archived)
    parts = [("archived", arch, "#2ca02c"), ("ok, not archived", np.asarray(ok) - arch, "#9ecae1"),
             ("duplicate", np.asarray(duplicate), "#fdae6b"), ("unparseable", np.asarray(unparseable), "#d62728")]
    left = np.zeros(len(operators))
    for label, values, color in parts:
        ax.barh(y, values, left=left, color=color, label=label)
        left += values
    for yi, total, a in zip(y, left, arch, strict=True):
        ax.text(total, yi, f"  {a}/{int(total)} = {a / total:.2f}" if total else "  0", va="center")
    ax.set_yticks(y, list(operators))
    ax.set_xlim(0, left.max() * 1.25 if left.max() else 1)
    ax.set_xlabel("generated candidates")
    ax.set_title("Operator yield (archived per candidate)")
    ax.legend(loc="center left", fontsize=8, bbox_to_anchor=(1.01, 0.5))
    return _png(fig)
