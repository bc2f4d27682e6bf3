"""Plots of global attributions in the report style (:mod:`mlship.stats.plots`): mean |contribution|
per field, the beeswarm (each row's contribution per field, coloured by the field's value), dependence
plots (a field's value against its contribution) and permutation importance with its spread.

Each builder takes ``pyplot()`` and returns a matplotlib figure; the caller embeds it
(``figure_uri``) or writes it (``save_png``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from mlship.evaluation.attributions import GlobalAttributions, GlobalExplanation, PermutationImportance
from mlship.stats.plots import BAD, CURRENT, NEUTRAL, PALETTE, REFERENCE, compact_axis

TOP_FIELDS = 15
DEPENDENCE_FIELDS = 3
# Categories get the palette without the value colour map's two ends (blue, red); the rest are grey.
CATEGORY_COLOURS = tuple(c for c in PALETTE if c not in (REFERENCE, BAD))


def _score_label(attr: GlobalAttributions) -> str:
    if attr.summary_index is None:
        return f"mean |contribution| over targets ({attr.output_space})"
    return f"contribution to {attr.summary_target} ({attr.output_space})"


def _method(attr: GlobalAttributions) -> str:
    return f"{attr.method}, {'exact' if attr.exact else 'approximate'}, {attr.rows} rows"


def importance_figure(plt: Any, attr: GlobalAttributions, top: int = TOP_FIELDS) -> Any:
    """Horizontal bars of mean |contribution| per field, the most important at the top."""
    order = attr.top(top)[::-1]
    fig, ax = plt.subplots(figsize=(7, 0.32 * len(order) + 1.2))
    ax.barh([attr.fields[i] for i in order], attr.importance()[order], color=REFERENCE)
    ax.grid(axis="x", alpha=0.3)
    ax.grid(axis="y", visible=False)
    ax.set(xlabel=f"mean |contribution| ({attr.output_space})",
           title=f"Mean |contribution| per field ({_method(attr)})")
    compact_axis(ax.xaxis)
    return fig


def _categories(values: np.ndarray) -> list[Any]:
    """The categories of an object column, most frequent first (ties by text)."""
    uniques, counts = np.unique(values.astype(str), return_counts=True)
    return [u for _, u in sorted(zip(-counts, uniques, strict=True))]


def _category_colours(values: np.ndarray) -> tuple[list[str], list[tuple[str, str]]]:
    """One colour per row by its category, and the (category, colour) legend entries."""
    cats = _categories(values)[:len(CATEGORY_COLOURS)]
    colour = dict(zip(cats, CATEGORY_COLOURS, strict=False))
    return [colour.get(v, NEUTRAL) for v in values.astype(str)], list(colour.items())


def _value_ranks(values: np.ndarray) -> np.ndarray:
    """Each row's value as its rank in 0..1 (NaN stays NaN)."""
    numbers = np.asarray(values, dtype=np.float64)
    ranks = np.full(len(numbers), np.nan)
    finite = np.flatnonzero(np.isfinite(numbers))
    if finite.size:
        order = np.argsort(np.argsort(numbers[finite], kind="stable"), kind="stable")
        ranks[finite] = order / max(finite.size - 1, 1)
    return ranks


def _jitter(x: np.ndarray, rng: np.random.Generator, width: float = 0.38) -> np.ndarray:
    """Vertical offsets as wide as the local density of ``x`` (a strip that reads as a violin)."""
    if x.size < 2 or np.ptp(x) == 0:
        return rng.uniform(-width, width, x.size) * 0.5
    counts, edges = np.histogram(x, bins=30)
    density = counts[np.clip(np.digitize(x, edges[1:-1]), 0, len(counts) - 1)] / counts.max()
    return rng.uniform(-1, 1, x.size) * width * np.sqrt(density)


def beeswarm_figure(plt: Any, attr: GlobalAttributions, top: int = TOP_FIELDS) -> Any:
    """For each top field a strip of the rows' contributions, jittered, coloured by the field's value
    rank (low blue, high red; missing grey) or, for a categorical field, by category."""
    from matplotlib.colors import LinearSegmentedColormap
    from matplotlib.lines import Line2D

    cmap = LinearSegmentedColormap.from_list("mlship_value", [REFERENCE, "#d9d9d9", BAD])
    order = attr.top(top)
    scores = attr.field_scores()
    rng = np.random.default_rng(0)
    fig, ax = plt.subplots(figsize=(8, 0.38 * len(order) + 1.4))
    legend: list[Any] = []
    for pos, f in enumerate(order):
        name, x = attr.fields[f], scores[:, f]
        y = len(order) - 1 - pos + _jitter(x, rng)
        if name in attr.categorical:
            colours, entries = _category_colours(attr.values[name])
            ax.scatter(x, y, s=6, c=colours, alpha=0.8, linewidths=0)
            legend += [Line2D([], [], ls="", marker="o", color=c, label=f"{name}={cat}") for cat, c in entries]
        else:
            ranks = _value_ranks(attr.values[name])
            ax.scatter(x, y, s=6, c=np.where(np.isnan(ranks), 0.5, ranks), cmap=cmap, vmin=0, vmax=1, alpha=0.8,
                       linewidths=0)
    ax.set_yticks(range(len(order)), [attr.fields[f] for f in order][::-1])
    ax.axvline(0, color=NEUTRAL, lw=0.8)
    ax.grid(axis="y", visible=False)
    ax.set(xlabel=_score_label(attr), title=f"Contributions per row ({_method(attr)})")
    compact_axis(ax.xaxis)
    bar = fig.colorbar(plt.cm.ScalarMappable(cmap=cmap), ax=ax, fraction=0.03, pad=0.01, ticks=[0, 1])
    bar.ax.set_yticklabels(["low", "high"])
    bar.set_label("numeric field value (rank)")
    if legend:
        ax.legend(handles=legend, loc="upper left", bbox_to_anchor=(1.12, 1.0), fontsize=7, title="categories")
    return fig


def dependence_figure(plt: Any, attr: GlobalAttributions, top: int = DEPENDENCE_FIELDS) -> Any:
    """A field's value against its contribution, side by side for the ``top`` fields (a categorical
    field: one jittered column of points per category)."""
    order = attr.top(top)
    scores = attr.field_scores()
    rng = np.random.default_rng(0)
    fig, axes = plt.subplots(1, len(order), figsize=(3.8 * len(order), 3.4), squeeze=False)
    for ax, f in zip(axes[0], order, strict=True):
        name, y = attr.fields[f], scores[:, f]
        if name in attr.categorical:
            cats = _categories(attr.values[name])[:12]
            where = {c: i for i, c in enumerate(cats)}
            x = np.asarray([where.get(v, np.nan) for v in attr.values[name].astype(str)], dtype=np.float64)
            keep = np.isfinite(x)
            ax.scatter(x[keep] + rng.uniform(-0.25, 0.25, keep.sum()), y[keep], s=6, alpha=0.5, color=REFERENCE)
            ax.set_xticks(range(len(cats)), cats)
            plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
        else:
            x = np.asarray(attr.values[name], dtype=np.float64)
            ax.scatter(x, y, s=6, alpha=0.5, color=REFERENCE)
            compact_axis(ax.xaxis)
        ax.axhline(0, color=NEUTRAL, lw=0.8)
        ax.set(title=name, xlabel=name, ylabel=_score_label(attr) if ax is axes[0][0] else None)
        compact_axis(ax.yaxis)
    fig.tight_layout()
    return fig


def permutation_figure(plt: Any, perm: PermutationImportance, top: int = TOP_FIELDS) -> Any:
    """Horizontal bars of the metric's mean drop per shuffled field, with the std over repeats."""
    order = np.argsort(-perm.mean, kind="stable")[:top][::-1]
    fig, ax = plt.subplots(figsize=(7, 0.32 * len(order) + 1.2))
    ax.barh([perm.fields[i] for i in order], perm.mean[order], xerr=perm.std[order], capsize=3, color=CURRENT)
    ax.axvline(0, color=NEUTRAL, lw=0.8)
    ax.grid(axis="x", alpha=0.3)
    ax.grid(axis="y", visible=False)
    ax.set(xlabel=f"{perm.metric} {perm.worse} when the field is shuffled",
           title=f"Permutation importance ({perm.repeats} repeats, {perm.rows} rows; {perm.metric} "
                 f"{perm.baseline:.4g})")
    compact_axis(ax.xaxis)
    return fig


def explanation_figures(plt: Any, explained: GlobalExplanation, *,
                        dependence: bool = True) -> list[tuple[str, str, Any]]:
    """``(file stem, title, figure)`` of every plot the explanation has."""
    figs: list[tuple[str, str, Any]] = []
    attr, perm = explained.attributions, explained.permutation
    if attr is not None and attr.rows:
        figs.append(("importance", "Mean |contribution| per field", importance_figure(plt, attr)))
        figs.append(("beeswarm", "Contributions per row (beeswarm)", beeswarm_figure(plt, attr)))
        if dependence:
            figs.append(("dependence", "Dependence: top fields", dependence_figure(plt, attr)))
    if perm is not None:
        figs.append(("permutation", "Permutation importance", permutation_figure(plt, perm)))
    return figs
