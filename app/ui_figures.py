"""The Studio's three figures from plain values: heatmap (one quantity per colour bar), scatter density, latency.

Built on analysis.figures (layout, categories, correlations); what is specific to the page lives here: which
dataset rows match the selected routing, the 2-D density that replaces 9,000 SVG points, the selected adapters
marked in the prompt row, the committed benchmark curves beside this request's. No gradio here.
"""

from __future__ import annotations

import base64
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from analysis import figures
from analysis.adapter_map import adapter_map_figure
from logo.results import Generation, Routing

PROMPT_ROW = "▶ this prompt"
EVALUATION_TRACE = "evaluation set"  # the scatter's density of the evaluation set, its first trace
PROMPT_TRACE = "this prompt"  # the scatter's trace of this prompt's selected adapters, its last
MAP_METHODS = {"t-SNE": "tsne", "PCA": "pca"}  # the adapter map's choices -> adapter_map_figure's methods
SELECTED = "#111111"  # outline of the selected adapters in the prompt row (high scores: yellow/green cells)
DENSITY_BINS = 28  # per axis: the dataset cloud as counts in 28 x 28 cells, a few kB whatever its size
CACHED_FIGURES = 64  # figure layers kept per process (a few tens of kB each): recent prompts x settings
BENCH_DIR = Path(__file__).resolve().parent.parent / "bench" / "results"
QUANTITIES = {  # calibration -> (colour bar title, hover name, subtitle words)
    "none": ("raw signal<br>(row min-max)", "raw signal", "raw signal, each row scaled to its min-max"),
    "mean": ("signal /<br>ref. mean", "signal / reference mean", "signal / its mean on the reference prompts"),
    "zscore": ("z-score", "z-score", "z-score against the reference prompts"),
}


@dataclass(frozen=True)
class DatasetRows:
    """The committed task x adapter rows in the routing's own quantity, or None with the reason they are not shown."""

    matrix: pd.DataFrame | None
    note: str


def _arrays(value):
    """`value` (a figure's to_plotly_json()) with plotly's base64 typed arrays ({"dtype", "bdata", "shape"}) back as
    the numpy arrays they encode, as the figure held them; everything else copied."""
    if isinstance(value, dict):
        if "bdata" in value and "dtype" in value:
            array = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"]).copy()
            shape = [int(n) for n in str(value.get("shape", len(array))).split(",")]
            return array.reshape(shape)
        return {key: _arrays(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_arrays(item) for item in value]
    return value


def copy_figure(fig: go.Figure | dict) -> go.Figure:
    """A copy of a figure (or of its to_plotly_json()) that plotly does not validate again.

    Validating costs 10-15 ms per figure on a 2-core CPU, more than anything else a re-route draws; the figures
    copied here were validated when they were built, so the copy trusts them (plotly's own `_validate` switch).
    """
    plain = fig.to_plotly_json() if isinstance(fig, go.Figure) else fig
    return go.Figure(_arrays(plain), _validate=False)


class FigureCache:
    """Figure layers built once per key of plain values and handed out as copies the caller may change.

    A re-route that keeps the scores (k, weighting, pins) or the method (signal, calibration) keeps most of what
    its plots show: the heatmap without the selection boxes, the scatter's evaluation layer. They are built on
    the first request that needs them and copied on the next (1-2 ms instead of 50). Thread-safe; the oldest
    of more than `size` layers is dropped.
    """

    def __init__(self, size: int = CACHED_FIGURES):
        self.size = size
        self._layers: OrderedDict[Hashable, dict] = OrderedDict()  # key -> the layer's to_plotly_json()
        self._lock = threading.Lock()

    def get(self, key: Hashable, build: Callable[[], go.Figure]) -> go.Figure:
        return copy_figure(self.layer(key, build))

    def layer(self, key: Hashable, build: Callable[[], go.Figure]) -> dict:
        """The layer's to_plotly_json() itself, shared: read it, never change it (get() hands out copies)."""
        with self._lock:
            layer = self._layers.get(key)
            if layer is not None:
                self._layers.move_to_end(key)
        if layer is None:  # built outside the lock: two requests for one new key both build it, none waits
            layer = build().to_plotly_json()
            with self._lock:
                self._layers[key] = layer
                while len(self._layers) > self.size:
                    self._layers.popitem(last=False)
        return layer


def _subtitle(fig: go.Figure, text: str) -> go.Figure:
    """The notes under the title, one line each ("; "-separated); the top margin grows by a line per extra note."""
    lines = [part for part in text.split("; ") if part]
    extra = 17 * max(len(lines) - 1, 0)
    margin_top, height = fig.layout.margin.t or 0, fig.layout.height
    return fig.update_layout(
        margin_t=margin_top + extra,
        height=height + extra if height else None,
        title_subtitle={"text": "<br>".join(lines), "font": {"size": 12, "color": "#666666"}},
    )


def _legend_box(fig: go.Figure, name: str, color: str) -> None:
    """A legend entry for outline boxes drawn as shapes (shapes have no legend of their own)."""
    fig.add_trace(
        go.Scatter(
            x=[None],
            y=[None],
            mode="markers",
            name=name,
            marker=dict(symbol="square-open", size=13, color=color, line=dict(width=2, color=color)),
            hoverinfo="skip",
        )
    )


def heatmap_figure(
    signal: str,
    calibration: str,
    adapter_categories: Mapping[str, str],
    task_categories: Mapping[str, str],
    dataset: DatasetRows,
    routing: Routing | None = None,
) -> go.Figure:
    """One quantity under one colour bar: raw (row min-max) without calibration, the calibrated score with it.

    The prompt row (when routed) and the dataset rows show the same quantity; the prompt row's selected adapters
    are outlined, each dataset row's own-task adapter in red; both boxes have a legend entry.
    """
    scores = routing.score_by_adapter if routing is not None else None
    base = heatmap_base(signal, calibration, adapter_categories, task_categories, dataset, scores)
    return mark_selected(base, routing.selected if routing is not None else None)


def heatmap_base(
    signal: str,
    calibration: str,
    adapter_categories: Mapping[str, str],
    task_categories: Mapping[str, str],
    dataset: DatasetRows,
    scores: Mapping[str, float] | None = None,
) -> go.Figure:
    """The heatmap without the selection: what a re-route that keeps the scores (k, weighting, pins) keeps."""
    colour_title, hover_name, words = QUANTITIES[calibration]
    fig = figures.signal_heatmap(
        dataset.matrix,
        dict(adapter_categories),
        dict(task_categories) or None,
        prompt_row=(PROMPT_ROW, dict(scores)) if scores is not None else None,
        title=f"{signal.capitalize()} signal per adapter: {hover_name}",
        normalise_rows=calibration == "none",
    )
    if not fig.data:
        return _subtitle(fig, dataset.note)
    trace = fig.data[0]
    trace.colorbar.title.text = colour_title
    trace.text = [[cell.replace("<br>signal:", f"<br>{hover_name}:") for cell in row] for row in trace.text]
    notes = [words] if scores is not None else [words, "route a prompt to add its row"]
    if dataset.matrix is not None:
        _legend_box(fig, "the row's own-task adapter", figures.HIGHLIGHT)
    notes.append(dataset.note)
    legend_px = 26  # one line of legend under the column names
    fig.update_layout(
        showlegend=True,
        legend=dict(orientation="h", x=0, xanchor="left", y=0, yanchor="bottom", yref="container", font_size=12),
        margin_b=(fig.layout.margin.b or 0) + legend_px,
        height=(fig.layout.height or 0) + legend_px,
    )
    fig.update_xaxes(range=[-0.5, len(fig.layout.xaxis.ticktext or []) - 0.5])
    return _subtitle(fig, "; ".join(notes))


def mark_selected(fig: go.Figure, selected: Sequence[str] | None) -> go.Figure:
    """`fig` (a heatmap_base with a prompt row) with the selected adapters outlined in the prompt row and their
    legend entry second, after the heatmap itself; None: no prompt row, nothing to mark."""
    if selected is None or not fig.data:
        return fig
    for shape in selection_shapes(fig.layout.xaxis.ticktext or [], selected):
        fig.add_shape(**shape)
    _legend_box(fig, "selected for this prompt", SELECTED)
    fig.data = (fig.data[0], fig.data[-1], *fig.data[1:-1])
    return fig


def selection_shapes(columns: Sequence[str], selected: Sequence[str]) -> list[dict]:
    """The outline boxes of the selected adapters in the prompt row (the heatmap's first row), as plain shapes."""
    columns = list(columns)
    boxes = [columns.index(name) for name in selected if name in columns]
    return [
        {"type": "rect", "x0": c - 0.5, "x1": c + 0.5, "y0": 0, "y1": 1, "line": {"color": SELECTED, "width": 3}}
        for c in boxes
    ]


def _density(points: pd.DataFrame) -> go.Heatmap:
    """Counts of (weight, similarity) pairs in DENSITY_BINS x DENSITY_BINS cells; empty cells transparent."""
    x_edges = np.linspace(0.0, max(1.0, float(points["weight"].max())), DENSITY_BINS + 1)
    y_edges = np.linspace(float(points["similarity"].min()), float(points["similarity"].max()), DENSITY_BINS + 1)
    counts, _, _ = np.histogram2d(points["weight"], points["similarity"], bins=[x_edges, y_edges])  # (X, Y)
    z = np.where(counts.T > 0, counts.T, np.nan)  # (Y, X): rows are similarity bins
    return go.Heatmap(
        z=np.round(z).tolist(),
        x=((x_edges[:-1] + x_edges[1:]) / 2).round(4).tolist(),
        y=((y_edges[:-1] + y_edges[1:]) / 2).round(4).tolist(),
        colorscale="Blues",
        zmin=0,
        name=EVALUATION_TRACE,
        showscale=True,
        colorbar=dict(title=dict(text="points", side="top"), thickness=12, len=0.6, y=0.45),
        hovertemplate="weight %{x:.2f}, similarity %{y:.2f}: %{z} points<extra></extra>",
        hoverongaps=False,
    )


def scatter_dataset(points: pd.DataFrame) -> go.Figure:
    """The evaluation layer of the scatter: the density of one method's points, its fit and its correlations.

    It depends on the method only, so the page builds it once per signal and calibration, not per prompt.
    """
    fig = go.Figure()
    fig.add_trace(_density(points))
    stats = figures.correlations(points["weight"], points["similarity"])
    x_range = (0.0, float(points["weight"].max()))
    line = figures.least_squares_line(points["weight"], points["similarity"], x_range, "least squares (evaluation set)")
    fig.add_trace(line)
    stats_text = f"Pearson r = {stats['pearson_r']:.3f} · Spearman ρ = {stats['spearman_rho']:.3f} · n = {stats['n']:,}"
    fig.add_annotation(
        text=stats_text,
        x=0.0,
        y=1.0,
        xref="paper",
        yref="paper",
        xanchor="left",
        yanchor="bottom",
        yshift=8,
        showarrow=False,
        font=dict(size=13, color="#333333"),
    )
    fig.update_layout(meta=stats, legend=dict(orientation="h", x=0.5, xanchor="center", y=-0.18, yanchor="top"))
    figures._style(fig, "Merge weight vs task similarity", 720, 460, top=36, margin=dict(b=110))
    fig.update_xaxes(title="merge weight", range=[0, max(1.0, float(points["weight"].max()))])
    return fig.update_yaxes(title="task similarity (cosine)")


def label_position(weight: float) -> str:
    """Where a highlighted point's label goes on the merge-weight axis (0..1): to the inside near either end."""
    return "top right" if weight < 0.2 else "top left" if weight > 0.8 else "top center"


def scatter_figure(
    points: pd.DataFrame | None,
    method_note: str,
    highlight: pd.DataFrame | None,
    notes: Sequence[str] = (),
    dataset: go.Figure | None = None,
) -> go.Figure:
    """The evaluation set of ONE method as a blue density, its Pearson r and fit; this prompt's adapters in red.

    `dataset`: scatter_dataset(points) when the caller keeps one (this adds to it: pass a copy).
    """
    if points is None or not len(points):
        fig = figures.weight_similarity_scatter(None, highlight, title="Merge weight vs task similarity")
        return _subtitle(fig, "; ".join(n for n in notes if n))
    fig = dataset if dataset is not None else scatter_dataset(points)
    low = float(min(points["similarity"].min(), 0.0 if highlight is None else highlight["similarity"].min()))
    high = float(max(points["similarity"].max(), 0.0 if highlight is None else highlight["similarity"].max()))
    if highlight is not None and len(highlight):
        fig.add_trace(
            go.Scatter(
                x=highlight["weight"],
                y=highlight["similarity"],
                mode="markers+text",
                name=PROMPT_TRACE,
                text=list(highlight["adapter"]),
                # labels near the axes lean inwards: none runs over the y axis or off the right edge
                textposition=[label_position(w) for w in highlight["weight"]],
                cliponaxis=False,
                textfont=dict(color=figures.HIGHLIGHT, size=13),
                marker=dict(size=12, color=figures.HIGHLIGHT, symbol="diamond", line=dict(width=1, color="white")),
                hovertemplate="<b>%{text}</b><br>weight %{x:.3f}<br>similarity %{y:.3f}<extra></extra>",
            )
        )
    fig.update_yaxes(range=[low - 0.02, high + 0.02])
    return _subtitle(fig, "; ".join(n for n in notes if n))


def prompt_layer(fig: go.Figure) -> dict | None:
    """What of a scatter_figure with an evaluation layer depends on the prompt's selection: {"kept": the number of
    leading traces that do not (the evaluation layer), "traces": the rest (this prompt's adapters, as JSON),
    "layout": the layout without its template (the y range and the notes follow the selection)}. None for a
    figure without an evaluation layer (its traces may all follow the selection).

    A page showing the scatter of the same prompt and method keeps its first `kept` traces and its template and
    takes the rest: that draws exactly this figure, without sending or redrawing the whole of it.
    """
    if not fig.data or fig.data[0].name != EVALUATION_TRACE:
        return None
    kept = len(fig.data) - (fig.data[-1].name == PROMPT_TRACE)
    return layer_of(fig, kept, first=kept)


def layer_of(fig: go.Figure, kept: int, first: int = 0) -> dict:
    """prompt_layer's {"kept", "traces", "layout"} of `fig`: its traces from `first` on follow `kept` others.

    With first=0, `fig` may hold the prompt's part alone (an evaluation layer's layout, no traces of it, plus
    this prompt's trace): what a selection-only re-route builds instead of the whole scatter."""
    plain = json.loads(fig.to_json())  # plotly's own encoding, as gr.Plot sends it
    layout = {key: value for key, value in plain["layout"].items() if key != "template"}
    return {"kept": kept, "traces": plain["data"][first:], "layout": layout}


def bench_curves(device_type: str, dtype: str) -> tuple[dict[str, list[float]], str]:
    """The committed amortisation medians of this machine type (cpu or gpu) as timestamps, and where they are from."""
    machine = "gpu" if device_type == "cuda" else "cpu"
    path = BENCH_DIR / f"amortisation_{machine}.csv"
    if not path.is_file():
        return {}, f"no committed {machine.upper()} benchmark (bench/results/amortisation_{machine}.csv)"
    table = pd.read_csv(path)
    mine = table[table["variant"].str.startswith(f"{dtype} ")]
    table = mine if len(mine) else table
    curves = {}
    for variant, rows in table.groupby("variant", sort=False):
        words = variant.split()  # 'float32 base' on the CPU; 'base graph', 'base eager' on the GPU
        # base and mixture as the engine decodes on this machine: through its CUDA graph on a GPU; not the
        # same-run peers and A/B rows, whose names say how they differ ('base graph, host-fed')
        if {"base", "mixture"} & set(words) and not {"eager", "hf"} & set(words) and "," not in variant:
            rows = rows.sort_values("tokens")
            curves[f"benchmark: {variant} (median)"] = list(rows["ms_per_token_median"] * rows["tokens"])
    return curves, f"dotted: committed {machine.upper()} benchmark medians ({path.name})"


def latency_figure(
    logo: Generation | None, base: Generation | None, bench: tuple[dict[str, list[float]], str] = ({}, "")
) -> go.Figure:
    """This prompt's answer with adapters and without (same prompt, same settings, one run each) + the benchmark."""
    if logo is None:
        return figures.latency_curve({}, title="Latency amortisation")
    curves = {f"LoGo ({logo.mode}, k={len(logo.mixture)}): this answer": list(logo.token_times_ms)}
    if base is not None:
        curves["base model: the same prompt"] = list(base.token_times_ms)
    bench_series, bench_note = bench
    fig = figures.latency_curve({**curves, **bench_series}, title="Latency amortisation")
    for trace in fig.data[len(curves) :]:
        trace.line.dash, trace.line.width = "dot", 1.5
    measured = f"measured: this answer ({logo.n_tokens} tokens, probe and merge included)" + (
        f" and the base model's answer to the same prompt ({base.n_tokens} tokens, run right after); one warm run each"
        if base
        else "; the base model's answer follows"
    )
    return _subtitle(fig, "; ".join(filter(None, [measured, bench_note])))


def adapter_map_figures(coords: pd.DataFrame | None) -> dict[str, go.Figure]:
    """The committed adapter map (analysis/adapter_map.py), one figure per projection; a note when none is committed.

    Static: built once at start-up from the CSV, never per prompt.
    """
    if coords is None or coords.empty:
        fig = go.Figure().update_layout(template="plotly_white", title="Adapter map")
        note = _subtitle(fig, "no adapter map committed yet: run python -m analysis.adapter_map")
        return dict.fromkeys(MAP_METHODS, note)
    categories = coords["category"].astype(str).to_dict()
    return {label: adapter_map_figure(coords, categories, method) for label, method in MAP_METHODS.items()}
