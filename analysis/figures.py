"""Paper-ready Plotly figures and tables of LoGo results, built from plain data (DataFrames, dicts, lists).

Every figure function returns a `plotly.graph_objects.Figure` with a white template, readable fonts, axis titles
and hover text, sized for a PNG export (the UI may drop the width with `fig.update_layout(width=None)`).
Figures with no data still render, with a note saying what is missing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

FONT = dict(family="Arial, Liberation Sans, Helvetica, sans-serif", size=14, color="#222222")
PALETTE = qualitative.T10
HIGHLIGHT = "#d62728"  # contrasting red for "this prompt" on top of dataset-level points
OTHER = "other"  # category of adapters and tasks that no mapping names
METRIC_LABELS = {"exact_match": "EM", "rouge_l": "ROUGE-L", "bleu": "BLEU"}


TITLE_PX = 64  # a title and room for one subtitle line under it (the UI adds `title.subtitle`)


def _style(
    fig: go.Figure, title: str, width: int, body_height: int, top: int = 16, margin: dict | None = None
) -> go.Figure:
    """White template and fonts; the title is pinned to the top, `top` px of the figure's own labels sit below it.

    `body_height` is the figure's height below the top margin, so adding a title never squeezes the plot.
    """
    margin = dict(l=70, r=30, b=60) | (margin or {})
    margin["t"] = (TITLE_PX if title else 12) + top
    height = body_height + margin["t"]
    fig.update_layout(
        template="plotly_white",
        font=FONT,
        title=dict(
            text=title,
            x=0.0,
            xanchor="left",
            xref="paper",
            y=1 - 14 / height,
            yref="container",
            yanchor="top",
            font=dict(size=17),
        ),
        width=int(width),
        height=int(height),
        margin=margin,
        hoverlabel=dict(font_size=13),
    )
    return fig


def _note(fig: go.Figure, text: str) -> go.Figure:
    """A centred grey message for a figure without data."""
    fig.add_annotation(
        text=text, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False, font=dict(size=15, color="#777777")
    )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


# --- signal heatmap ---------------------------------------------------------------------------------------


def _category_order(*mappings: dict[str, str]) -> list[str]:
    """Categories in order of first appearance across the mappings, with OTHER last."""
    order = list(dict.fromkeys(c for mapping in mappings for c in mapping.values() if c != OTHER))
    return [*order, OTHER]


def _minmax_rows(values: np.ndarray) -> np.ndarray:
    """Each row scaled to 0..1 by its own min and max (NaN ignored); a constant row becomes 0."""
    low = np.nanmin(values, axis=1, keepdims=True)
    span = np.nanmax(values, axis=1, keepdims=True) - low
    return (values - low) / np.where(span > 0, span, 1.0)


def _groups(categories: Sequence[str]) -> list[tuple[str, int, int]]:
    """Runs of equal consecutive categories as (category, first index, last index)."""
    runs: list[tuple[str, int, int]] = []
    for i, category in enumerate(categories):
        if runs and runs[-1][0] == category:
            runs[-1] = (category, runs[-1][1], i)
        else:
            runs.append((category, i, i))
    return runs


def _text_px(text: str, size: float = 13) -> float:
    """Rough rendered width of `text` in pixels (Arial averages ~0.55 em per character)."""
    return 0.58 * size * len(text)


@dataclass(frozen=True)
class _HeatmapGrid:
    """The heatmap's cells in drawing order: row 0 on top, rows of kind "gap" are the blank band."""

    adapters: list[str]  # column order
    column_categories: list[str]
    labels: list[str]  # one per row
    kinds: list[str]  # "prompt" | "gap" | "task", one per row
    row_categories: list[str]  # one per row ("" for the prompt and the band)
    raw: np.ndarray  # (R, A) signals as given
    shown: np.ndarray  # (R, A) what the colours show (row min-max scaled, or raw)
    edges: np.ndarray  # (R + 1,) row edges from the top, in units of one cell height

    @property
    def task_rows(self) -> list[int]:
        return [r for r, kind in enumerate(self.kinds) if kind == "task"]


def _heatmap_grid(
    matrix: pd.DataFrame,
    adapter_categories: dict[str, str],
    task_categories: dict[str, str],
    prompt_row: tuple[str, dict[str, float]] | None,
    normalise_rows: bool,
) -> _HeatmapGrid | None:
    """Order columns and rows by category and stack the prompt row, the blank band and the task rows."""
    prompt_label, prompt_signals = prompt_row if prompt_row is not None else ("", {})
    categories = _category_order(adapter_categories, task_categories)
    known = list(adapter_categories)

    def adapter_category(name: str) -> str:
        return adapter_categories.get(name, OTHER)

    def task_category(task: str) -> str:
        return task_categories.get(task) or adapter_categories.get(task) or OTHER

    names = list(dict.fromkeys([*map(str, matrix.columns), *prompt_signals]))
    adapters = sorted(
        names, key=lambda a: (categories.index(adapter_category(a)), known.index(a) if a in known else len(known), a)
    )
    tasks = sorted(
        map(str, matrix.index),
        key=lambda t: (categories.index(task_category(t)), adapters.index(t) if t in adapters else len(adapters), t),
    )
    if not adapters or (prompt_row is None and not tasks):
        return None
    data = matrix.rename(index=str, columns=str).reindex(index=tasks, columns=adapters).to_numpy(dtype=float)  # (T, A)

    rows, labels, kinds, heights = [], [], [], []  # heights in cells: the blank band is thinner than a row
    if prompt_row is not None:
        rows.append([prompt_signals.get(a, np.nan) for a in adapters])
        labels, kinds, heights = [prompt_label], ["prompt"], [1.0]
        if tasks:
            rows.append([np.nan] * len(adapters))
            labels, kinds, heights = [*labels, ""], [*kinds, "gap"], [*heights, 0.4]
    raw = np.vstack([np.asarray(rows, dtype=float).reshape(-1, len(adapters)), data])  # (R, A)
    shown = raw.copy()
    if normalise_rows:
        filled = ~np.all(np.isnan(raw), axis=1)  # the blank band stays NaN
        shown[filled] = _minmax_rows(raw[filled])
    return _HeatmapGrid(
        adapters=adapters,
        column_categories=[adapter_category(a) for a in adapters],
        labels=labels + tasks,
        kinds=kinds + ["task"] * len(tasks),
        row_categories=[""] * len(kinds) + [task_category(t) for t in tasks],
        raw=raw,
        shown=shown,
        edges=np.concatenate([[0.0], np.cumsum(heights + [1.0] * len(tasks))]),
    )


def _heatmap_hover(grid: _HeatmapGrid, normalise_rows: bool) -> list[list[str]]:
    hover = []
    for r, label in enumerate(grid.labels):
        line = []
        for c, adapter in enumerate(grid.adapters):
            if grid.kinds[r] == "gap":
                line.append("")
                continue
            text = f"<b>{label}</b><br>adapter: {adapter} ({grid.column_categories[c]})<br>signal: {grid.raw[r, c]:.4g}"
            if normalise_rows:
                text += f"<br>row-normalised: {grid.shown[r, c]:.2f}"
            line.append(text)
        hover.append(line)
    return hover


def _decorate_heatmap(fig: go.Figure, grid: _HeatmapGrid, cell_px: float) -> bool:
    """Category separators and labels, own-task outlines; True when column labels had to be slanted."""
    n_cols, edges, task_rows = len(grid.adapters), grid.edges, grid.task_rows
    separator = dict(color="white", width=4)
    column_groups = _groups(grid.column_categories)
    for _, first, _ in column_groups[1:]:
        fig.add_shape(type="line", x0=first - 0.5, x1=first - 0.5, y0=0, y1=edges[-1], line=separator)
    row_groups = _groups([grid.row_categories[r] for r in task_rows])
    for _, first, _ in row_groups[1:]:
        y = edges[task_rows[first]]
        fig.add_shape(type="line", x0=-0.5, x1=n_cols - 0.5, y0=y, y1=y, line=separator)

    crowded = any(_text_px(c) > cell_px * (last - first + 1) for c, first, last in column_groups)
    for category, first, last in column_groups:
        fig.add_annotation(
            text=f"<b>{category}</b>",
            x=(first + last) / 2,
            y=1.0,
            yref="y domain",
            yanchor="bottom",
            yshift=4,
            showarrow=False,
            textangle=-30 if crowded else 0,
            xanchor="left" if crowded else "center",
            font=dict(size=13, color="#444444"),
        )
    for category, first, last in row_groups:
        fig.add_annotation(
            text=category,
            x=1.0,
            xref="x domain",
            xanchor="left",
            xshift=6,
            y=(edges[task_rows[first]] + edges[task_rows[last] + 1]) / 2,
            showarrow=False,
            font=dict(size=12, color="#555555"),
        )

    for r in task_rows:  # own-task cells outlined: where the block diagonal should be
        if grid.labels[r] in grid.adapters:
            c = grid.adapters.index(grid.labels[r])
            outline = dict(color=HIGHLIGHT, width=2)
            fig.add_shape(type="rect", x0=c - 0.5, x1=c + 0.5, y0=edges[r], y1=edges[r + 1], line=outline)
    return crowded


def signal_heatmap(
    matrix: pd.DataFrame | None,
    adapter_categories: dict[str, str],
    task_categories: dict[str, str] | None = None,
    prompt_row: tuple[str, dict[str, float]] | None = None,
    title: str = "",
    *,
    normalise_rows: bool = True,
) -> go.Figure:
    """Mean probe signal of every adapter (columns) on every input task (rows), grouped by category.

    1. Columns are ordered by category (in order of first appearance in `adapter_categories`, unknown last),
       then by their order in `adapter_categories`; category names label the groups and lines separate them.
    2. Rows are input tasks, ordered by the same categories (`task_categories`, else the adapter category of
       the adapter with the task's name); a task with its own adapter sits under it, so the
       block-diagonal structure shows. Cells where the task is the adapter's own are outlined.
    3. With `normalise_rows` (default) each row is min-max scaled to 0..1 so that rows are comparable; the
       raw value stays in the hover text.
    4. `prompt_row = (label, {adapter: signal})` is drawn as an extra first row (z[0]), separated from the
       dataset rows by a blank band (z[1], all NaN); it may come alone (matrix None or empty).
    """
    matrix = matrix if matrix is not None else pd.DataFrame()
    grid = _heatmap_grid(matrix, adapter_categories, dict(task_categories or {}), prompt_row, normalise_rows)
    fig = go.Figure()
    if grid is None:
        return _note(_style(fig, title, 640, 280), "No signals yet: route a prompt or load results.")

    # 1-4. one heatmap trace; y holds the R + 1 row edges so that the blank band can be thinner
    n_cols = len(grid.adapters)
    few_columns = n_cols <= 60  # cell gaps and slanted names only while cells are wide enough
    ticks_shown = n_cols <= 120  # beyond that only the category labels name the columns
    fig.add_trace(
        go.Heatmap(
            z=grid.shown,
            x=np.arange(n_cols),
            y=grid.edges,
            text=_heatmap_hover(grid, normalise_rows),
            hovertemplate="%{text}<extra></extra>",
            hoverongaps=False,
            colorscale="Viridis",
            zmin=0.0 if normalise_rows else None,
            zmax=1.0 if normalise_rows else None,
            xgap=1 if few_columns else 0,
            ygap=1 if few_columns else 0,
            colorbar=dict(
                title=dict(text="signal<br>(row min-max)" if normalise_rows else "mean<br>signal", side="top"),
                thickness=14,
                tickfont=dict(size=12),
                yanchor="top",
                y=1.0,
                lenmode="pixels",
            ),
        )
    )
    cell_px = max(34 if few_columns else 4, min(56, 900 / n_cols))
    crowded = _decorate_heatmap(fig, grid, cell_px)

    # size from the content: 28 px a row, margins from the longest labels
    longest_row_category = max(map(len, grid.row_categories))
    plot_width = cell_px * n_cols
    plot_height = max(90.0, 28 * grid.edges[-1])  # a lone prompt row is drawn taller so its colour bar reads
    colorbar_pad = 18 + _text_px("x" * longest_row_category, 12)  # room for the row-category labels
    column_names_px = _text_px("x" * max(map(len, grid.adapters)), 12) * (0.71 if few_columns else 1.0)  # slanted
    margin = dict(
        l=int(20 + _text_px("x" * max(map(len, grid.labels)), 13)),
        r=int(0.02 * plot_width + colorbar_pad + 90),
        b=int(30 + (column_names_px if ticks_shown else 0)),
    )
    fig.data[0].colorbar.update(xpad=colorbar_pad, len=min(plot_height, 320))
    width = margin["l"] + plot_width + margin["r"]
    top = 66 if crowded else 34  # the column-category labels
    _style(fig, title, width, int(margin["b"] + plot_height), top=top, margin=margin)
    fig.update_xaxes(
        tickvals=list(range(n_cols)) if ticks_shown else [],
        ticktext=grid.adapters,
        tickangle=-45 if few_columns else -90,
        tickfont=dict(size=12),
        showgrid=False,
        zeroline=False,
        range=[-0.5, n_cols - 0.5],
    )
    centres = (grid.edges[:-1] + grid.edges[1:]) / 2
    labelled = [r for r, kind in enumerate(grid.kinds) if kind != "gap"]
    fig.update_yaxes(
        tickvals=[centres[r] for r in labelled],
        ticktext=[grid.labels[r] for r in labelled],
        range=[grid.edges[-1], 0.0],  # first row on top
        showgrid=False,
        zeroline=False,
        tickfont=dict(size=13),
    )
    return fig


# --- merge weight against task similarity ---------------------------------------------------------------


def least_squares_line(x, y, x_range: tuple[float, float], name: str = "least squares") -> go.Scatter:
    """The dashed least-squares line of y on x, drawn over `x_range` (the weight/similarity figures)."""
    slope, intercept = np.polyfit(np.asarray(x, dtype=float), np.asarray(y, dtype=float), 1)
    xs = np.array(x_range, dtype=float)
    return go.Scatter(
        x=xs,
        y=slope * xs + intercept,
        mode="lines",
        name=name,
        line=dict(color="#555555", dash="dash", width=1.5),
        hoverinfo="skip",
    )


def correlations(x: Iterable[float], y: Iterable[float]) -> dict[str, float]:
    """Pearson r and Spearman rho (average ranks for ties) of paired values, with n; NaN when undefined."""
    frame = pd.DataFrame({"x": list(x), "y": list(y)}, dtype=float).dropna()
    n = len(frame)
    defined = n >= 3 and frame["x"].nunique() > 1 and frame["y"].nunique() > 1
    pearson = frame["x"].corr(frame["y"], method="pearson") if defined else float("nan")
    spearman = frame["x"].corr(frame["y"], method="spearman") if defined else float("nan")
    return {"pearson_r": float(pearson), "spearman_rho": float(spearman), "n": n}


def _stats_text(stats: dict[str, float], scope: str) -> str:
    if np.isnan(stats["pearson_r"]):
        return f"correlation undefined ({scope}n = {stats['n']})"
    pearson, spearman = stats["pearson_r"], stats["spearman_rho"]
    return f"Pearson r = {pearson:.3f} · Spearman ρ = {spearman:.3f} · {scope}n = {stats['n']}"


def weight_similarity_scatter(
    points: pd.DataFrame | None, highlight: pd.DataFrame | None = None, title: str = ""
) -> go.Figure:
    """Merge weight (x) against the similarity of the adapter's training task to the instance's task (y).

    `points` and `highlight` have columns `weight`, `similarity`, `adapter`, `task`. Pearson r and Spearman
    rho over `points` (over `highlight` when `points` is empty) are shown in the top-left annotation and kept
    in `fig.layout.meta`. `highlight` (e.g. this prompt's selected adapters) is drawn on top in red, labelled
    by adapter name.
    """
    columns = ["weight", "similarity", "adapter", "task"]
    points, highlight = (
        pd.DataFrame(columns=columns) if frame is None or frame.empty else frame for frame in (points, highlight)
    )
    _require(points, columns, "weight_similarity_scatter points")
    _require(highlight, columns, "weight_similarity_scatter highlight")
    fig = go.Figure()
    if points.empty and highlight.empty:
        return _note(_style(fig, title, 720, 460), "No merge weights yet: route a prompt or load results.")

    def hover(frame: pd.DataFrame) -> list[str]:
        return [
            f"<b>{a}</b> on {t}<br>weight: {w:.3f}<br>similarity: {s:.3f}"
            for a, t, w, s in zip(frame["adapter"], frame["task"], frame["weight"], frame["similarity"], strict=True)
        ]

    if not points.empty:
        fig.add_trace(
            go.Scatter(
                x=points["weight"],
                y=points["similarity"],
                mode="markers",
                name="dataset",
                marker=dict(size=7, color=PALETTE[0], opacity=0.55, line=dict(width=0.5, color="white")),
                text=hover(points),
                hovertemplate="%{text}<extra></extra>",
            )
        )
    if not highlight.empty:
        weights = pd.concat([points["weight"], highlight["weight"]]).astype(float)
        middle = (weights.min() + weights.max()) / 2  # labels point inwards so that none leaves the plot
        fig.add_trace(
            go.Scatter(
                x=highlight["weight"],
                y=highlight["similarity"],
                mode="markers+text",
                name="this prompt",
                text=list(highlight["adapter"]),
                textposition=["top right" if w < middle else "top left" for w in highlight["weight"]],
                cliponaxis=False,
                textfont=dict(color=HIGHLIGHT, size=13),
                marker=dict(size=12, color=HIGHLIGHT, symbol="diamond", line=dict(width=1, color="white")),
                customdata=hover(highlight),
                hovertemplate="%{customdata}<extra></extra>",
            )
        )

    scope_frame, scope = (points, "") if not points.empty else (highlight, "this prompt, ")
    stats = correlations(scope_frame["weight"], scope_frame["similarity"])
    if stats["n"] >= 3 and not np.isnan(stats["pearson_r"]):
        weights = scope_frame["weight"]
        fig.add_trace(least_squares_line(weights, scope_frame["similarity"], (weights.min(), weights.max())))
    fig.add_annotation(
        text=_stats_text(stats, scope),
        x=0.0,
        y=1.0,
        xref="paper",
        yref="paper",
        xanchor="left",
        yanchor="bottom",
        yshift=8,
        align="left",
        showarrow=False,
        font=dict(size=14, color="#333333"),
    )
    fig.update_layout(meta=stats, legend=dict(orientation="h", x=0.5, xanchor="center", y=-0.16, yanchor="top"))
    _style(fig, title, 720, 460, top=36, margin=dict(b=110))  # top: the correlation line
    fig.update_xaxes(title="merge weight", rangemode="tozero")
    fig.update_yaxes(title="task similarity (cosine)")
    return fig


# --- latency ----------------------------------------------------------------------------------------------


def amortised_ms_per_token(token_times_ms: Sequence[float]) -> list[float]:
    """t_n / n for n = 1..N: the average cost of each of the first n tokens, probe, merge and prefill included."""
    times = np.asarray(token_times_ms, dtype=float)
    if np.any(np.diff(times) < 0):
        first = int(np.argmax(np.diff(times) < 0)) + 1
        raise ValueError(f"token timestamps must not decrease: token {first + 1} is ready before token {first}")
    return list(times / np.arange(1, len(times) + 1))


def latency_curve(curves: dict[str, list[float]], title: str = "") -> go.Figure:
    """Average milliseconds per token after n generated tokens, t_n / n, one line per configuration.

    Each curve is the per-token timestamps in ms since the request started (token i ready at t_i; the first
    includes probe, merge and prefill), so the curve starts high and levels off as that cost is amortised.
    """
    fig = go.Figure()
    filled = {name: times for name, times in curves.items() if len(times)}
    if not filled:
        return _note(_style(fig, title, 720, 400), "No timings yet: generate an answer first.")
    for i, (name, times) in enumerate(filled.items()):
        n = np.arange(1, len(times) + 1)
        fig.add_trace(
            go.Scatter(
                x=n,
                y=amortised_ms_per_token(times),
                mode="lines",
                name=name,
                line=dict(color=PALETTE[i % len(PALETTE)], width=2.5),
                customdata=np.asarray(times, dtype=float),
                hovertemplate=f"<b>{name}</b><br>n = %{{x}}<br>t_n = %{{customdata:.1f}} ms"
                "<br>%{y:.2f} ms per token<extra></extra>",
            )
        )
    _style(fig, title, 720, 400)
    # below the axes, as the scatter's: inside them it covered the curves' start on a phone-wide plot
    fig.update_layout(legend=dict(orientation="h", x=0.5, xanchor="center", y=-0.22, yanchor="top"))
    fig.update_xaxes(title="tokens generated n", rangemode="tozero")
    fig.update_yaxes(title="average ms per token (t<sub>n</sub> / n)", rangemode="tozero")
    return fig


# --- sweeps -----------------------------------------------------------------------------------------------


def _require(df: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what} needs columns {list(columns)}; missing {missing}")


def k_sweep(df: pd.DataFrame, title: str = "Effect of k") -> go.Figure:
    """Task score and top-1 own-adapter rate against k, one line per method (rows sharing k and method are averaged)."""
    _require(df, ["k", "method", "score", "top1_rate"], "k_sweep")
    fig = make_subplots(
        rows=1, cols=2, subplot_titles=("task score", "top-1 own-adapter rate"), horizontal_spacing=0.12
    )
    if df.empty:
        return _note(_style(fig, title, 900, 400), "No k sweep results yet.")
    means = df.groupby(["method", "k"], sort=False)[["score", "top1_rate"]].mean().reset_index()
    for i, (method, rows) in enumerate(means.groupby("method", sort=False)):
        rows = rows.sort_values("k")
        colour = PALETTE[i % len(PALETTE)]
        for col, column in ((1, "score"), (2, "top1_rate")):
            shown = rows.dropna(subset=[column])
            fig.add_trace(
                go.Scatter(
                    x=shown["k"],
                    y=shown[column],
                    mode="lines+markers",
                    name=str(method),
                    legendgroup=str(method),
                    showlegend=col == 1,
                    line=dict(color=colour, width=2.5),
                    marker=dict(size=8),
                    hovertemplate=f"<b>{method}</b><br>k = %{{x}}<br>{column} = %{{y:.3f}}<extra></extra>",
                ),
                row=1,
                col=col,
            )
    _style(fig, title, 900, 400, top=36, margin=dict(b=110))  # top: the panel titles
    ks = sorted(means["k"].unique())
    fig.update_xaxes(title="k (adapters merged)", tickvals=ks if len(ks) <= 12 else None)
    fig.update_yaxes(title="score (0-100)", row=1, col=1)
    fig.update_yaxes(title="top-1 rate", range=[0, 1.02], row=1, col=2)
    fig.update_layout(legend=dict(orientation="h", x=0.5, xanchor="center", y=-0.22, yanchor="top"))
    return fig


def probe_sweep(df: pd.DataFrame, title: str = "Where to probe") -> go.Figure:
    """Top-1 own-adapter rate against the probed block, one panel per signal.

    One line per (aggregate, probe_input, calibration) combination: colour = calibration, dash = probe input,
    marker = token aggregate. Rows sharing all keys are averaged.
    """
    keys = ["signal", "calibration", "probe_input", "aggregate"]
    _require(df, ["block", *keys, "top1_rate"], "probe_sweep")
    signals = list(dict.fromkeys(df["signal"])) if not df.empty else []
    fig = make_subplots(
        rows=1, cols=max(1, len(signals)), subplot_titles=[f"signal: {s}" for s in signals], shared_yaxes=True
    )
    if df.empty:
        return _note(_style(fig, title, 900, 400), "No probe sweep results yet.")
    means = df.groupby([*keys, "block"], sort=False)["top1_rate"].mean().reset_index()
    calibrations = list(dict.fromkeys(means["calibration"]))
    inputs = list(dict.fromkeys(means["probe_input"]))
    aggregates = list(dict.fromkeys(means["aggregate"]))
    dashes = ["solid", "dash", "dot", "dashdot"]
    symbols = ["circle", "square", "diamond", "triangle-up"]
    shown_in_legend: set[str] = set()
    for (signal, calibration, probe_input, aggregate), rows in means.groupby(keys, sort=False):
        rows = rows.sort_values("block")
        name = f"{calibration} / {probe_input} / {aggregate}"
        fig.add_trace(
            go.Scatter(
                x=rows["block"],
                y=rows["top1_rate"],
                mode="lines+markers",
                name=name,
                legendgroup=name,
                showlegend=name not in shown_in_legend,
                line=dict(
                    color=PALETTE[calibrations.index(calibration) % len(PALETTE)],
                    dash=dashes[inputs.index(probe_input) % len(dashes)],
                    width=2,
                ),
                marker=dict(symbol=symbols[aggregates.index(aggregate) % len(symbols)], size=7),
                hovertemplate=f"<b>{name}</b><br>block %{{x}}<br>top-1 rate %{{y:.3f}}<extra></extra>",
            ),
            row=1,
            col=signals.index(signal) + 1,
        )
        shown_in_legend.add(name)
    width = 120 + 430 * len(signals) + 270
    _style(fig, title, width, 400, top=36, margin=dict(r=280))  # top: the panel titles
    legend_title = dict(text="calibration / probe input / tokens")
    fig.update_layout(legend=dict(title=legend_title, x=1.02, y=1.0, tracegroupgap=0, font=dict(size=13)))
    fig.update_xaxes(title="probed block")
    fig.update_yaxes(range=[0, 1.02])
    fig.update_yaxes(title="top-1 own-adapter rate", row=1, col=1)
    return fig


# --- results table ----------------------------------------------------------------------------------------
