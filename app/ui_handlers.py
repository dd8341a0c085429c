"""Handlers of the LoGo Studio UI: plain functions from the engine and plain values to tables, figures and files.

Nothing here builds a layout; `app/ui.py` wires these to components. Every figure comes from
`analysis.figures`, every file from `analysis.export`: the UI does no plotting maths of its own.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from analysis import export, figures
from analysis.similarity import TaskEmbedder, load_task_centroids
from logo.config import GenerationConfig, ProbeConfig, RoutingConfig, as_int, check_text, field_default
from logo.engine import LoGoEngine
from logo.probe import decoder_blocks
from logo.results import Generation, Routing

from .ui_data import UNKNOWN_CATEGORY, StudioData

MAX_PROMPT_CHARS = 2000  # a few hundred tokens: well inside the engine's max_prompt_tokens, quick to probe
UI_MAX_NEW_TOKENS = 256  # the slider's top (the paper's budget), unless the engine's own cap is lower
TABLE_COLUMNS = ["adapter", "category", "signal", "score", "weight", "selected"]
FIGURES = ("signal_heatmap", "weight_similarity", "latency")  # export file names, in display order
PROMPT_ROW = "▶ this prompt"
# the zoo's evaluation scatter has 18,600 points (~1.5 MB of JSON that Gradio keeps in every session): the page
# draws a fixed sample of this many, which keeps the cloud's shape
MAX_SCATTER_POINTS = 2000
ROUTING_DRAWN = ("prompt", "adapters", "signals", "scores", "selected", "weights", "config")  # what the plots show


@dataclass(frozen=True)
class Controls:
    """The routing settings of the UI, defaulting to RoutingConfig's and ProbeConfig's own defaults.

    `block` is the index the slider shows (non-negative); the last block maps to the default -1. Numbers may
    arrive as floats from sliders and the web API: 3.0 is 3, but 2.7 is an error, never silently 2.
    """

    signal: str = field_default(RoutingConfig, "signal")
    calibration: str = field_default(RoutingConfig, "calibration")
    k: int = field_default(RoutingConfig, "k")
    block: int = field_default(ProbeConfig, "block")
    module: str = field_default(ProbeConfig, "module")
    probe_input: str = field_default(ProbeConfig, "probe_input")
    aggregate: str = field_default(ProbeConfig, "aggregate")

    def routing(self, n_blocks: int) -> RoutingConfig:
        block = as_int("probe block", self.block)
        block = -1 if block in (-1, n_blocks - 1) else block  # -1 shares the calibration cache
        probe = ProbeConfig(block=block, module=self.module, probe_input=self.probe_input, aggregate=self.aggregate)
        return RoutingConfig(signal=self.signal, k=self.k, calibration=self.calibration, probe=probe)


@dataclass(frozen=True)
class View:
    """What the page shows for one routing (and, after Generate, its answer): plain values and figures."""

    routing: Routing
    table: pd.DataFrame
    figures: dict[str, go.Figure]  # FIGURES names -> figure; "latency" only after a generation
    answer: str | None = None
    notes: tuple[str, ...] = ()
    stats: str = ""
    generation: Generation | None = None  # the answer's generation; after a re-route, of the earlier routing

    def kept(self) -> Shown:
        """What the session keeps of this view between requests (no figures, no table)."""
        return Shown(self.routing, self.generation)


@dataclass(frozen=True)
class Shown:
    """What a session keeps between requests: the routing on screen and the generation of its answer.

    Plain values only: Gradio keeps one per session (hundreds of sessions), so figures and tables are drawn
    again from it when the session exports, never stored.
    """

    routing: Routing
    generation: Generation | None = None
    drawn: bool = True  # False once the plots show the dataset instead (the prompt was cleared)

    def draws_as(self, routing: Routing) -> bool:
        """True when the page shows what `routing` would draw: the same table and figures (timings aside)."""
        mine = self.routing
        return self.drawn and all(getattr(mine, name) == getattr(routing, name) for name in ROUTING_DRAWN)


@dataclass
class Studio:
    """The engine plus the UI's static data and the few things it measures or loads once, lazily."""

    engine: LoGoEngine
    data: StudioData
    embedder: TaskEmbedder | None = None  # None: all-MiniLM-L6-v2, built on first use
    n_blocks: int = 0
    _centroids: dict[str, np.ndarray] | None = field(default=None, repr=False)
    _base_curves: dict[int, tuple[float, ...]] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)  # embedder and centroids
    _base_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)  # one base measurement at a time

    def __post_init__(self) -> None:
        self.n_blocks = self.n_blocks or len(decoder_blocks(self.engine.model))

    def task_embedder(self) -> TaskEmbedder:
        with self._lock:
            return self._embedder()

    def centroids(self) -> dict[str, np.ndarray]:
        """Adapter task -> centroid: results/task_centroids.json, else the dev sets' inputs, else {}."""
        with self._lock:
            if self._centroids is None:
                self._centroids = self._load_centroids()
        return self._centroids

    def _load_centroids(self) -> dict[str, np.ndarray]:
        if self.data.centroids_path is not None:
            return load_task_centroids(self.data.centroids_path)
        return self.data.dev_centroids(self.engine.adapter_names, self._embedder().task_centroid)

    def _embedder(self) -> TaskEmbedder:
        if self.embedder is None:
            self.embedder = TaskEmbedder()
        return self.embedder

    def warm_up(self) -> None:
        """Load the task centroids and the embedder now (a background thread at startup), not in a request."""
        if self.centroids():
            self.task_embedder().embed(["warm-up"])

    def base_curve(self, prompt: str, max_new_tokens: int) -> tuple[float, ...]:
        """Per-token timestamps (ms) of the base model on the same token budget; measured once per budget."""
        with self._base_lock:
            if max_new_tokens not in self._base_curves:
                base = self.engine.generate(prompt, generation=base_generation_config(max_new_tokens), mixture={})
                self._base_curves[max_new_tokens] = base.token_times_ms
            return self._base_curves[max_new_tokens]


def base_generation_config(max_new_tokens: int) -> GenerationConfig:
    """Greedy, past end-of-sequence to the full budget (a full-length base curve)."""
    return GenerationConfig(max_new_tokens=max_new_tokens, ignore_eos=True)


# ---------------------------------------------------------------- input checks


class EmptyPrompt(ValueError):
    """The prompt is empty or whitespace only."""


def clean_prompt(prompt: str | None, limit: int = MAX_PROMPT_CHARS) -> tuple[str, list[str]]:
    """The prompt cut to `limit` characters, and the notices to show; raises EmptyPrompt when there is none."""
    prompt = check_text(prompt or "", "the prompt").strip()
    if not prompt:
        raise EmptyPrompt("Type a prompt first (or pick an example): there is nothing to route.")
    if len(prompt) > limit:
        return prompt[:limit], [f"The prompt was cut to its first {limit:,} characters (it had {len(prompt):,})."]
    return prompt, []


def cap_new_tokens(requested: float, cap: int) -> tuple[int, list[str]]:
    """max_new_tokens within 1..cap, and the notice to show when it was changed."""
    wanted = as_int("max new tokens", requested)
    capped = min(max(wanted, 1), cap)
    if capped == wanted:
        return capped, []
    return capped, [f"max new tokens set to {capped} (allowed: 1 to {cap}; asked for {wanted})."]


def token_cap(engine: LoGoEngine) -> int:
    return min(UI_MAX_NEW_TOKENS, engine.config.max_new_tokens_cap)


# ---------------------------------------------------------------- tables and figures


def routing_table(routing: Routing, categories: Mapping[str, str]) -> pd.DataFrame:
    """One row per adapter, highest score first: TABLE_COLUMNS; weight is 0 for adapters not selected."""
    weights = routing.mixture
    rows = [
        {
            "adapter": name,
            "category": categories.get(name, UNKNOWN_CATEGORY),
            "signal": signal,
            "score": score,
            "weight": weights.get(name, 0.0),
            "selected": name in weights,
        }
        for name, signal, score in zip(routing.adapters, routing.signals, routing.scores, strict=True)
    ]
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    return table.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)


def _subtitle(fig: go.Figure, text: str) -> go.Figure:
    return fig.update_layout(title_subtitle={"text": text, "font": {"size": 13, "color": "#666666"}})


def heatmap_figure(studio: Studio, signal: str, routing: Routing | None = None) -> go.Figure:
    """This prompt's scores (when routed) as the top row over the dataset-level signal heatmap (when committed)."""
    matrix = studio.data.dataset_matrix(signal, studio.engine.adapter_names)
    notes = []
    if routing is not None:
        calibration = routing.config["calibration"]
        scored = "raw signal" if calibration == "none" else f"{calibration}-calibrated score"
        notes.append(f"top row: this prompt ({scored})")
    else:
        notes.append("route a prompt to add its row")
    notes.append("rows: evaluation tasks (raw signal)" if matrix is not None else "no evaluation results committed yet")
    fig = figures.signal_heatmap(
        matrix,
        studio.data.adapter_categories,
        studio.data.task_categories or None,
        prompt_row=(PROMPT_ROW, routing.score_by_adapter) if routing is not None else None,
        title=f"{signal.capitalize()} signal per adapter",
    )
    return _subtitle(fig, "; ".join(notes))


def prompt_similarities(studio: Studio, routing: Routing) -> dict[str, float]:
    """Cosine similarity of the prompt's MiniLM embedding with each selected adapter's task centroid."""
    centroids = studio.centroids()
    known = [name for name in routing.selected if name in centroids]
    if not known:
        return {}
    embedder = studio.task_embedder()
    prompt_vector = embedder.embed([routing.prompt])[0]  # (D,)
    return {name: embedder.similarity(prompt_vector, centroids[name]) for name in known}


def scatter_figure(studio: Studio, routing: Routing | None = None) -> go.Figure:
    """This prompt's selected adapters (weight, similarity) over the dataset-level scatter (when committed)."""
    notes, highlight = [], None
    similarity = prompt_similarities(studio, routing) if routing is not None else {}
    if similarity:
        pairs = zip(routing.selected, routing.weights, strict=True)
        rows = [(w, similarity[a], a) for a, w in pairs if a in similarity]
        highlight = pd.DataFrame(rows, columns=["weight", "similarity", "adapter"]).assign(task=PROMPT_ROW)
        notes.append("red: this prompt's selected adapters")
        if len(rows) < len(routing.selected):
            notes.append(f"{len(routing.selected) - len(rows)} selected adapter(s) have no task centroid")
    elif routing is not None:
        notes.append("similarity unavailable: no task centroids or dev sets for these adapters")
    points = studio.data.weight_similarity
    if points is None:
        notes.append("no evaluation results committed yet")
    elif len(points) > MAX_SCATTER_POINTS:
        notes.append(f"blue: {MAX_SCATTER_POINTS:,} of the evaluation set's {len(points):,} points")
        points = points.sample(MAX_SCATTER_POINTS, random_state=0)
    else:
        notes.append("blue: the evaluation set")
    fig = figures.weight_similarity_scatter(points, highlight=highlight, title="Merge weight vs task similarity")
    return _subtitle(fig, "; ".join(notes))


def latency_figure(studio: Studio, generation: Generation | None = None) -> go.Figure:
    """Average time per token against tokens generated (probe and merge included) vs the base model."""
    if generation is None:
        return figures.latency_curve({}, title="Latency amortisation")
    budget = generation.config["max_new_tokens"]
    label = f"LoGo ({generation.mode}, k={len(generation.mixture)})"
    base = studio.base_curve(generation.prompt, budget)
    curves = {label: list(generation.token_times_ms), "base model": list(base)}
    fig = figures.latency_curve(curves, title="Latency amortisation")
    return _subtitle(fig, f"average time per token, probe and merge included; budget {budget} new tokens")


def generation_stats(generation: Generation) -> str:
    t = generation.timings
    per_token = t.total_ms / max(generation.n_tokens, 1)
    return (
        f"{generation.n_tokens} tokens · {t.total_ms:,.0f} ms in all ({per_token:,.1f} ms/token) · "
        f"probe {t.probe_ms:,.1f} ms · merge {t.merge_ms:,.1f} ms · prefill {t.prefill_ms:,.1f} ms · "
        f"{generation.mode}"
    )


# ---------------------------------------------------------------- the two actions


def dataset_figures(studio: Studio, signal: str) -> dict[str, go.Figure]:
    """What the plots show before any prompt: the committed dataset-level results (or a note), no latency yet."""
    return {
        "signal_heatmap": heatmap_figure(studio, signal),
        "weight_similarity": scatter_figure(studio),
        "latency": latency_figure(studio),
    }


def view_of(studio: Studio, routing: Routing, notes: list[str] | tuple[str, ...] = ()) -> View:
    figs = {
        "signal_heatmap": heatmap_figure(studio, routing.config["signal"], routing),
        "weight_similarity": scatter_figure(studio, routing),
    }
    return View(routing, routing_table(routing, studio.data.adapter_categories), figs, notes=tuple(notes))


def route_view(studio: Studio, prompt: str, controls: Controls) -> View:
    """One probe pass (engine.route) and its table, heatmap and scatter."""
    prompt, notes = clean_prompt(prompt)
    routing = studio.engine.route(prompt, controls.routing(studio.n_blocks))[0]
    return view_of(studio, routing, notes)


def generate_stream(
    studio: Studio, prompt: str, controls: Controls, mode: str, max_new_tokens: int
) -> Iterator[tuple[str, View | None]]:
    """Route and answer, yielding (answer so far, None) while decoding and (answer, full View) at the end."""
    prompt, notes = clean_prompt(prompt)
    n_tokens, capped = cap_new_tokens(max_new_tokens, token_cap(studio.engine))
    generation_config = GenerationConfig(mode=mode, max_new_tokens=n_tokens)
    text = ""
    with studio.engine.stream(prompt, controls.routing(studio.n_blocks), generation_config) as stream:
        for piece in stream:
            text += piece
            yield text, None
        generation = stream.result
    view = view_of(studio, generation.routing, notes + capped)
    figs = {**view.figures, "latency": latency_figure(studio, generation)}
    stats = generation_stats(generation)
    yield generation.text, replace(view, figures=figs, answer=generation.text, stats=stats, generation=generation)


def view_of_shown(studio: Studio, shown: Shown) -> View:
    """The view a session shows, drawn again from what it kept (for exports)."""
    view = view_of(studio, shown.routing)
    if shown.generation is None:
        return view
    figs = {**view.figures, "latency": latency_figure(studio, shown.generation)}
    return replace(view, figures=figs, answer=shown.generation.text, generation=shown.generation)


# ---------------------------------------------------------------- exports


def export_view(view: View, kind: str, directory: Path | None = None) -> list[str]:
    """Write the view's figures / table as `kind` (html, png, csv, zip) into a fresh folder; the file paths."""
    directory = Path(directory or tempfile.mkdtemp(prefix="logo-studio-export-"))
    directory.mkdir(parents=True, exist_ok=True)
    figs = {name: view.figures[name] for name in FIGURES if name in view.figures}
    if kind == "html":
        paths = [export.export_html(fig, directory / f"{name}.html") for name, fig in figs.items()]
    elif kind == "png":
        paths = [export.export_png(fig, directory / f"{name}.png") for name, fig in figs.items()]
    elif kind == "csv":
        paths = [export.export_csv(view.table, directory / "routing.csv")]
    elif kind == "zip":
        paths = [export.export_bundle(figs, {"routing": view.table}, directory / "logo_studio_export.zip")]
    else:
        raise ValueError(f"unknown export kind {kind!r}: choose html, png, csv or zip")
    return [str(p) for p in paths]
