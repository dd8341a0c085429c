"""Handlers of the LoGo Studio UI: plain functions from the engine and plain values to tables, figures and files.

Nothing here builds a layout; `app/ui.py` wires these to components. Figures come from app/ui_figures.py (built
on analysis.figures), files from analysis.export, the maths of routing from the engine (logo/).
"""

from __future__ import annotations

import json
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch

from analysis import export
from analysis.similarity import TaskEmbedder, load_task_centroids
from logo.config import GenerationConfig, ProbeConfig, RoutingConfig, as_int, check_text, field_default
from logo.engine import LoGoEngine
from logo.probe import decoder_blocks
from logo.results import Generation, Routing
from logo.signals import calibrate, select_top_k

from . import ui_figures
from .ui_data import UNKNOWN_CATEGORY, StudioData
from .ui_overrides import Override, manual_mixture

MAX_PROMPT_CHARS = 2000  # a few hundred tokens: well inside the engine's max_prompt_tokens, quick to probe
UI_MAX_NEW_TOKENS = 256  # the slider's top (the paper's budget), unless the engine's own cap is lower
TABLE_COLUMNS = ["adapter", "category", "signal", "score", "weight", "selected"]
FIGURES = ("signal_heatmap", "weight_similarity", "latency")  # export file names, in display order
PROMPT_ROW = ui_figures.PROMPT_ROW
DATASET_PROBE = ProbeConfig(block=-1)  # the probe of the committed signals_*.csv (also _block-2: other blocks)
NO_OVERRIDE = Override()
PROMPT_VECTORS = 64  # prompt embeddings kept (1.5 kB each) for re-routes of a recent prompt
ROUTING_DRAWN = ("prompt", "adapters", "signals", "scores", "selected", "weights", "config")  # what the plots show


@dataclass(frozen=True)
class Controls:
    """The routing settings of the UI, defaulting to RoutingConfig's and ProbeConfig's own defaults.

    `block` is the index the slider shows (non-negative); the last block maps to -1. Numbers may arrive as
    floats from sliders and the web API: 3.0 is 3, but 2.7 is an error, never silently 2.
    """

    signal: str = field_default(RoutingConfig, "signal")
    calibration: str = field_default(RoutingConfig, "calibration")
    k: int = field_default(RoutingConfig, "k")
    block: int = field_default(ProbeConfig, "block")
    module: str = field_default(ProbeConfig, "module")
    probe_input: str = field_default(ProbeConfig, "probe_input")
    aggregate: str = field_default(ProbeConfig, "aggregate")
    weighting: str = field_default(RoutingConfig, "weighting")
    temperature: float = field_default(RoutingConfig, "temperature")
    loudness_limit: float | None = field_default(RoutingConfig, "loudness_limit")  # 0 or empty: off

    def routing(self, n_blocks: int) -> RoutingConfig:
        block = as_int("probe block", self.block)
        block = -1 if block in (-1, n_blocks - 1) else block - n_blocks if block >= 0 else block  # from the end
        probe = ProbeConfig(block=block, module=self.module, probe_input=self.probe_input, aggregate=self.aggregate)
        return RoutingConfig(
            signal=self.signal,
            k=self.k,
            calibration=self.calibration,
            probe=probe,
            weighting=self.weighting,
            temperature=self.temperature,
            loudness_limit=self.loudness_limit or None,  # the page's number box: 0 or empty is off
        )


@dataclass(frozen=True)
class View:
    """What the page shows for one routing (and, after Generate, its answers): plain values and figures."""

    routing: Routing
    table: pd.DataFrame
    figures: Mapping[str, go.Figure]  # FIGURES names -> figure (LazyFigures: built when read); "latency" after Generate
    answer: str | None = None
    notes: tuple[str, ...] = ()
    stats: str = ""
    generation: Generation | None = None  # the answer's generation; after a re-route, of the earlier routing
    base: Generation | None = None  # the base model's answer to the same prompt
    manual: Generation | None = None  # the manual mixture's (or the oracle adapter's) answer
    manual_label: str = ""  # what the manual answer used: "oracle: en_fr", "manual: en_fr=0.7, en_de=0.3"

    def kept(self) -> Shown:
        """What the session keeps of this view between requests (no figures, no table)."""
        return Shown(self.routing, self.generation, self.base, self.manual, self.manual_label)


@dataclass(frozen=True)
class Shown:
    """What a session keeps between requests: the routing on screen and the generations of its answers.

    Plain values only: Gradio keeps one per session (hundreds of sessions), so figures and tables are drawn
    again from it when the session exports, never stored.
    """

    routing: Routing
    generation: Generation | None = None
    base: Generation | None = None
    manual: Generation | None = None
    manual_label: str = ""
    drawn: bool = True  # False once the plots show the dataset instead (the prompt was cleared)

    def draws_as(self, routing: Routing) -> bool:
        """True when the page shows what `routing` would draw: the same table and figures (timings aside)."""
        mine = self.routing
        return self.drawn and all(getattr(mine, name) == getattr(routing, name) for name in ROUTING_DRAWN)

    def heatmap_differs_only_in_selection(self, routing: Routing) -> bool:
        """True when the page's heatmap and the one `routing` draws differ in their selection boxes alone (a new k,
        weighting, temperature, pin or exclusion on the same prompt and probe): then only the boxes are sent."""
        return self.drawn and heatmap_base_key(self.routing) == heatmap_base_key(routing)


def heatmap_base_key(routing: Routing) -> tuple:
    """What a routing's heatmap shows apart from its selection: the quantity, the probe setting and the scores."""
    config = config_of(routing.config)
    return config.signal, config.calibration, config.probe, routing.adapters, routing.scores


@dataclass
class Studio:
    """The engine plus the UI's static data and the few things it measures or loads once, lazily."""

    engine: LoGoEngine
    data: StudioData
    embedder: TaskEmbedder | None = None  # None: all-MiniLM-L6-v2, built on first use
    n_blocks: int = 0
    figures: ui_figures.FigureCache = field(default_factory=ui_figures.FigureCache, repr=False)  # shared layers
    _centroids: dict[str, np.ndarray] | None = field(default=None, repr=False)
    _vectors: OrderedDict[str, np.ndarray] = field(default_factory=OrderedDict, repr=False)  # prompt -> embedding
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)  # embedder, centroids, vectors

    def __post_init__(self) -> None:
        self.n_blocks = self.n_blocks or len(decoder_blocks(self.engine.model))

    def task_embedder(self) -> TaskEmbedder:
        with self._lock:
            return self._embedder()

    def prompt_vector(self, prompt: str) -> np.ndarray:
        """The MiniLM embedding of `prompt` (D,), kept for the last PROMPT_VECTORS prompts: a re-route of the same
        prompt with other settings needs it again."""
        with self._lock:
            vector, embedder = self._vectors.get(prompt), self._embedder()
        if vector is None:
            vector = embedder.embed([prompt])[0]  # (D,)
        with self._lock:
            self._vectors[prompt] = vector
            self._vectors.move_to_end(prompt)
            while len(self._vectors) > PROMPT_VECTORS:
                self._vectors.popitem(last=False)
        return vector

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

    def warm_up(self, probes: tuple[ProbeConfig, ...] = ()) -> None:
        """Centroids, the embedder and the calibration statistics of `probes` now (a thread at start-up)."""
        for probe in probes:
            self.engine.calibration_stats(probe)
        if self.centroids():
            self.task_embedder().embed(["warm-up"])

    def oracle(self, prompt: str) -> str | None:
        """The adapter trained on the task of `prompt` when it is one of the examples (a zoo test input)."""
        for example in self.data.examples:
            if example.prompt.strip() == prompt.strip() and example.task in self.engine.adapter_names:
                return example.task
        return None

    def dataset_rows(self, signal: str, calibration: str, probe: ProbeConfig) -> ui_figures.DatasetRows:
        """The committed task rows in the routing's quantity, where they were measured at the routing's probe
        (analysis/report.py measures the last block and the recommended one, with the default probe otherwise)."""
        measured = self.data.dataset_blocks(signal)
        if not measured:
            return ui_figures.DatasetRows(None, "no evaluation results committed yet")
        block = block_index(probe.block, self.n_blocks) - self.n_blocks  # counted from the end: -1 is the last
        where = " and ".join(f"block {b % self.n_blocks}" for b in sorted(measured))
        if replace(probe, block=DATASET_PROBE.block) != DATASET_PROBE:
            return ui_figures.DatasetRows(
                None,
                f"evaluation rows hidden: measured with the default probe module, input and aggregation only "
                f"(at {where}); choose a preset to compare",
            )
        matrix = self.data.dataset_matrix(signal, self.engine.adapter_names, block)
        if block not in measured or matrix is None:
            hidden = "hidden" if block not in measured else "unavailable: they share no adapter with this pool"
            return ui_figures.DatasetRows(
                None, f"evaluation rows {hidden}: measured at {where} only (presets 'recommended', 'paper')"
            )
        at = f"block {block % self.n_blocks}"
        if calibration == "none":
            words = f"rows below: evaluation tasks, mean raw signal of their test inputs at {at}"
            return ui_figures.DatasetRows(matrix, words)
        stats = self.engine.calibration_stats(replace(DATASET_PROBE, block=block))
        index = [self.engine.adapter_names.index(a) for a in matrix.columns]
        mean, std = (t[index] for t in stats.tensors(signal, "cpu"))
        scores = calibrate(torch.tensor(matrix.to_numpy(), dtype=torch.float32), mean, std, calibration)  # (T, A)
        calibrated = pd.DataFrame(scores.numpy(), index=matrix.index, columns=matrix.columns)
        words = ui_figures.QUANTITIES[calibration][1]
        return ui_figures.DatasetRows(calibrated, f"rows below: evaluation tasks, their mean signal at {at} as {words}")

    def method_points(self, signal: str, calibration: str) -> tuple[pd.DataFrame | None, str]:
        """The committed evaluation scatter of the LoGo method with this signal (and calibration): (points, label)."""
        points = self.data.weight_similarity
        if points is None or points.empty:
            return None, "no evaluation results committed yet"
        if "method" not in points.columns:
            return points, "evaluation set"
        wanted = f"logo_{signal}" + ("_cal" if calibration != "none" else "")
        methods = set(points["method"].unique())
        if wanted in methods:
            return points[points["method"] == wanted], f"evaluation set, {wanted}"
        other = f"logo_{signal}" + ("" if calibration != "none" else "_cal")
        if other in methods:
            state = "uncalibrated" if calibration != "none" else "calibrated"
            return points[points["method"] == other], f"evaluation set, {other} ({state}: no {wanted} run committed)"
        return None, f"no evaluation of {wanted} committed"


def block_index(block: int, n_blocks: int) -> int:
    return block % n_blocks


def calibration_pending(studio: Studio, controls: Controls) -> tuple[int, int] | None:
    """(block, number of reference prompts) when routing with `controls` must first compute its probe setting's
    calibration statistics (neither in memory nor cached on disk: minutes on a CPU); None when nothing is pending."""
    config = controls.routing(studio.n_blocks)
    if not config.uses_reference or studio.engine.calibration_cached(config.probe):
        return None
    return block_index(config.probe.block, studio.n_blocks), len(studio.engine.reference_set()[0])


def config_of(record: Mapping) -> RoutingConfig:
    """The RoutingConfig a routing recorded (Routing.config: its fields, the reference and any page override)."""
    names = set(RoutingConfig.__dataclass_fields__) - {"probe"}
    return RoutingConfig(**{n: record[n] for n in names if n in record}, probe=ProbeConfig(**record["probe"]))


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
    return table.sort_values(["selected", "score"], ascending=False, kind="stable").reset_index(drop=True)


def prompt_similarities(studio: Studio, routing: Routing) -> dict[str, float]:
    """Cosine similarity of the prompt's MiniLM embedding with each selected adapter's task centroid."""
    centroids = studio.centroids()
    known = [name for name in routing.selected if name in centroids]
    if not known:
        return {}
    prompt_vector = studio.prompt_vector(routing.prompt)  # (D,)
    embedder = studio.task_embedder()
    return {name: embedder.similarity(prompt_vector, centroids[name]) for name in known}


def _heatmap_base(studio: Studio, config: RoutingConfig, routing: Routing | None) -> tuple[tuple, Callable]:
    """The key of the heatmap's layer without the selection in Studio.figures, and what builds it."""
    data = studio.data

    def base() -> go.Figure:
        rows = studio.dataset_rows(config.signal, config.calibration, config.probe)
        scores = routing.score_by_adapter if routing is not None else None
        return ui_figures.heatmap_base(
            config.signal, config.calibration, data.adapter_categories, data.task_categories, rows, scores
        )

    scores = (routing.adapters, routing.scores) if routing is not None else None
    key = ("heatmap", config.signal, config.calibration, config.probe, tuple(studio.engine.adapter_names), scores)
    return key, base


def heatmap_meta(studio: Studio, config: RoutingConfig, routing: Routing | None) -> dict:
    """The heatmap's layout.meta: what it shows, which the page checks (plots.js, the browser tests)."""
    drawn = {"signal": config.signal, "calibration": config.calibration, "block": config.probe.block % studio.n_blocks}
    return {**drawn, "k": config.k, "selected": list(routing.selected) if routing is not None else []}


def heatmap_figure(studio: Studio, controls: Controls, routing: Routing | None = None) -> go.Figure:
    """The heatmap of the routing (or, without one, of the dataset at `controls`); its layout.meta says what it
    shows. The part without the selection is built once per probe setting and scores (Studio.figures)."""
    config = controls.routing(studio.n_blocks) if routing is None else config_of(routing.config)
    key, base = _heatmap_base(studio, config, routing)
    fig = ui_figures.mark_selected(studio.figures.get(key, base), routing.selected if routing is not None else None)
    return fig.update_layout(meta=heatmap_meta(studio, config, routing))


def heatmap_marks(studio: Studio, routing: Routing) -> dict:
    """{"shapes", "meta"} of heatmap_figure(studio, _, routing) as plain JSON, without building the figure: its
    base layer's shapes (cached) and the selection's boxes. A selection-only re-route sends just these."""
    config = config_of(routing.config)
    key, base = _heatmap_base(studio, config, routing)
    layout = studio.figures.layer(key, base)["layout"]
    boxes = ui_figures.selection_shapes(layout["xaxis"].get("ticktext", []), routing.selected)
    shapes = [*layout.get("shapes", []), *boxes]
    return {"shapes": json.loads(json.dumps(shapes)), "meta": heatmap_meta(studio, config, routing)}


def scatter_figure(studio: Studio, signal: str, calibration: str, routing: Routing | None = None) -> go.Figure:
    """This prompt's selected adapters (weight, similarity) over the evaluation set of the matching method."""
    return _scatter(studio, signal, calibration, routing)[0]


def scatter_prompt_part(studio: Studio, routing: Routing) -> tuple[go.Figure, int] | None:
    """The part of scatter_figure(studio, _, _, routing) that follows the selection: a figure of the evaluation
    layer's layout (not its traces) with this prompt's trace, and how many traces of the evaluation layer it
    leaves out; None when the scatter has no evaluation layer. Built without copying the density."""
    config = routing.config
    return _scatter(studio, config["signal"], config["calibration"], routing, prompt_part=True)[1]


def _scatter(studio: Studio, signal: str, calibration: str, routing: Routing | None, prompt_part: bool = False):
    """-> (the scatter, None) or, with `prompt_part`, (None, scatter_prompt_part's answer)."""
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
    points, label = studio.method_points(signal, calibration)
    notes.append(f"blue: {label}" if points is not None else label)
    if points is None or not len(points):
        return (None, None) if prompt_part else (ui_figures.scatter_figure(points, label, highlight, notes), None)
    key = ("scatter", signal, calibration)
    if prompt_part:  # the evaluation layer's layout alone: the traces that follow it are the prompt's
        layer = studio.figures.layer(key, lambda: ui_figures.scatter_dataset(points))
        layout = {name: value for name, value in layer["layout"].items() if name != "template"}  # not sent
        layout_only = ui_figures.copy_figure({"data": [], "layout": {**layout, "template": {}}})
        prompt_fig = ui_figures.scatter_figure(points, label, highlight, notes, dataset=layout_only)
        return None, (prompt_fig, len(layer["data"]))
    dataset = studio.figures.get(key, lambda: ui_figures.scatter_dataset(points))
    return ui_figures.scatter_figure(points, label, highlight, notes, dataset=dataset), None


def latency_figure(studio: Studio, generation: Generation | None, base: Generation | None) -> go.Figure:
    engine = studio.engine
    bench = ({}, "")
    if engine.config.base_model == "embedded":  # the benchmarks measured the embedded model only
        dtype = str(next(engine.model.parameters()).dtype).split(".")[-1]
        bench = ui_figures.bench_curves(engine.device.type, dtype)
    return ui_figures.latency_figure(generation, base, bench)


def generation_stats(generation: Generation) -> str:
    t = generation.timings
    per_token = t.total_ms / max(generation.n_tokens, 1)
    return (
        f"{generation.n_tokens} tokens · {t.total_ms:,.0f} ms in all ({per_token:,.1f} ms/token) · "
        f"probe {t.probe_ms:,.1f} ms · merge {t.merge_ms:,.1f} ms · prefill {t.prefill_ms:,.1f} ms · "
        f"{generation.mode}"
    )


# ---------------------------------------------------------------- routing and answers


def dataset_figures(studio: Studio, controls: Controls) -> dict[str, go.Figure]:
    """What the plots show before any prompt: the committed dataset-level results (or a note), no latency yet."""
    return {
        "signal_heatmap": heatmap_figure(studio, controls),
        "weight_similarity": scatter_figure(studio, controls.signal, controls.calibration),
        "latency": latency_figure(studio, None, None),
    }


class LazyFigures(Mapping):
    """Figures by name, each built on first use: a selection-only re-route sends only marks of its figures
    (heatmap_marks, scatter_prompt_part), so it never builds them; exports and full redraws read them here."""

    def __init__(self, builders: Mapping[str, Callable[[], go.Figure]]):
        self._builders, self._built = dict(builders), {}

    def __getitem__(self, name: str) -> go.Figure:
        if name not in self._built:
            self._built[name] = self._builders[name]()
        return self._built[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._builders)

    def __len__(self) -> int:
        return len(self._builders)


def view_of(studio: Studio, routing: Routing, notes: list[str] | tuple[str, ...] = ()) -> View:
    config = routing.config
    figs = LazyFigures(
        {
            "signal_heatmap": lambda: heatmap_figure(studio, Controls(), routing),
            "weight_similarity": lambda: scatter_figure(studio, config["signal"], config["calibration"], routing),
        }
    )
    loud = [name for name in config.get("too_loud", ()) if name not in routing.selected]
    if loud:
        notes = [
            *notes,
            f"left out as too loud on every input (loudness limit {config['loudness_limit']:g}x the "
            f"pool's upper-quartile output norm): {', '.join(loud)}; pin one to use it",
        ]
    return View(routing, routing_table(routing, studio.data.adapter_categories), figs, notes=tuple(notes))


def routed(studio: Studio, prompt: str, controls: Controls, override: Override = NO_OVERRIDE) -> Routing:
    """engine.route with the page's exclusions, then the pinned adapters forced in (weights by the same rule)."""
    config = controls.routing(studio.n_blocks)
    override.check(studio.engine.adapter_names, config.k)
    routing = studio.engine.route(prompt, config, exclude=override.exclude)[0]
    if not override.pin or set(override.pin) <= set(routing.selected):
        return replace(routing, config={**routing.config, **override.record()}) if override.active else routing
    scores = routing.score_by_adapter
    left_out = {*override.pin, *override.exclude, *routing.config.get("too_loud", ())}  # too loud: only when pinned
    rest = [a for a in sorted(scores, key=scores.get, reverse=True) if a not in left_out]
    chosen = [*override.pin, *rest[: max(config.k - len(override.pin), 0)]]
    index, weights = select_top_k(torch.tensor([[scores[a] for a in chosen]]), len(chosen), **config.selection())
    selected = tuple(chosen[i] for i in index[0].tolist() if i >= 0)
    kept = tuple(w for i, w in zip(index[0].tolist(), weights[0].tolist(), strict=True) if i >= 0)
    return replace(routing, selected=selected, weights=kept, config={**routing.config, **override.record()})


def route_view(studio: Studio, prompt: str, controls: Controls, override: Override = NO_OVERRIDE) -> View:
    """One probe pass (engine.route) and its table, heatmap and scatter."""
    prompt, notes = clean_prompt(prompt)
    return view_of(studio, routed(studio, prompt, controls, override), notes)


@dataclass(frozen=True)
class Sampling:
    """The page's decoding settings."""

    mode: str = field_default(GenerationConfig, "mode")
    max_new_tokens: int = field_default(GenerationConfig, "max_new_tokens")
    temperature: float = field_default(GenerationConfig, "temperature")
    top_p: float = field_default(GenerationConfig, "top_p")
    seed: int | None = None

    def config(self, cap: int) -> tuple[GenerationConfig, list[str]]:
        n_tokens, capped = cap_new_tokens(self.max_new_tokens, cap)
        seed = None if self.seed in (None, "") else self.seed
        return GenerationConfig(self.mode, n_tokens, self.temperature, self.top_p, seed=seed), capped


def generate_stream(
    studio: Studio,
    prompt: str,
    controls: Controls,
    sampling: Sampling,
    override: Override = NO_OVERRIDE,
    manual: str = "",
    compare: bool = True,
) -> Iterator[tuple[str, View | None]]:
    """Route and answer, yielding (answer so far, None) while decoding and (answer, View) when LoGo is done,
    then again (answer, View) with the base model's and the manual mixture's answers to the same prompt."""
    prompt, notes = clean_prompt(prompt)
    generation_config, capped = sampling.config(token_cap(studio.engine))
    engine = studio.engine
    mixture, manual_label = manual_mixture(manual, engine.adapter_names, studio.oracle(prompt))
    config = controls.routing(studio.n_blocks)
    if override.active:  # routed by the page (pins, exclusions): the answer's clock starts after that routing
        routing = routed(studio, prompt, controls, override)
        stream = engine.stream(prompt, None, generation_config, mixture=routing.mixture)
    else:  # routed inside the request: its clock counts the probe
        stream = engine.stream(prompt, config, generation_config)
    text = ""
    with stream:
        for piece in stream:
            text += piece
            yield text, None
        generation = stream.result
    routing = generation.routing if generation.routing is not None else routing
    generation = replace(generation, routing=routing)
    view = view_of(studio, routing, notes + capped)
    stats = generation_stats(generation)
    view = replace(view, answer=generation.text, stats=stats, generation=generation)
    figs = {**view.figures, "latency": latency_figure(studio, generation, None)}
    yield generation.text, replace(view, figures=figs)
    if not compare:
        return
    base = engine.generate(prompt, None, generation_config, mixture={})
    other = engine.generate(prompt, None, generation_config, mixture=mixture) if mixture else None
    figs = {**view.figures, "latency": latency_figure(studio, generation, base)}
    yield generation.text, replace(view, figures=figs, base=base, manual=other, manual_label=manual_label, notes=())


def view_of_shown(studio: Studio, shown: Shown) -> View:
    """The view a session shows, drawn again from what it kept (for exports)."""
    view = view_of(studio, shown.routing)
    if shown.generation is None:
        return view
    figs = {**view.figures, "latency": latency_figure(studio, shown.generation, shown.base)}
    return replace(
        view,
        figures=figs,
        answer=shown.generation.text,
        generation=shown.generation,
        base=shown.base,
        manual=shown.manual,
        manual_label=shown.manual_label,
    )


def compare_presets(studio: Studio, prompt: str, first: str = "paper", second: str = "recommended") -> str:
    """Markdown: the top-k of two routing presets on the same prompt, and what differs."""
    prompt, _ = clean_prompt(prompt)
    k = min(RoutingConfig().k, len(studio.engine.adapter_names))
    a, b = (studio.engine.route(prompt, RoutingConfig.preset(p, k=k))[0] for p in (first, second))
    lines = [f"| | **{first}** | **{second}** |", "|---|---|---|"]
    for rank in range(max(len(a.selected), len(b.selected))):
        cells = [f"{r.selected[rank]} ({r.weights[rank]:.2f})" if rank < len(r.selected) else "" for r in (a, b)]
        lines.append(f"| top {rank + 1} | {cells[0]} | {cells[1]} |")
    only_a, only_b = sorted(set(a.selected) - set(b.selected)), sorted(set(b.selected) - set(a.selected))
    same = sorted(set(a.selected) & set(b.selected))
    lines.append("")
    lines.append(
        f"**Shared:** {', '.join(same) or 'none'} · **only {first}:** {', '.join(only_a) or 'none'} · "
        f"**only {second}:** {', '.join(only_b) or 'none'}"
    )
    return "\n".join(lines)


# ---------------------------------------------------------------- exports


def export_metadata_of(studio: Studio, view: View, hashes: Mapping[str, Mapping] | None = None) -> dict:
    """What reproduces the view's figures: prompt, answers, every setting, the model, the adapters' file hashes."""
    generation = view.generation
    answers = {
        "logo": generation.text if generation else None,
        "base": view.base.text if view.base else None,
        "manual": view.manual.text if view.manual else None,
        "manual_mixture": view.manual_label or None,
    }
    settings = {
        "routing": view.routing.config,
        "selected": dict(view.routing.mixture),
        "generation": generation.config if generation else None,
    }
    adapters = {a.name: a.source for a in studio.engine.pool.adapters} | dict(hashes or {})
    return export.export_metadata(
        prompt=view.routing.prompt,
        answer=answers["logo"],
        settings=settings,
        model=studio.engine.config.base_model,
        adapters=adapters,
        extra={"answers": answers},
    )


def export_view(
    view: View,
    kind: str,
    directory: Path | None = None,
    *,
    fmt: str = "png",
    scale: float = 2,
    titles: bool = True,
    metadata: Mapping | None = None,
) -> list[str]:
    """Write `kind` of the view into a fresh folder; the paths, the download first, then metadata.json beside it.

    kind: one figure name of FIGURES (as `fmt`: png, svg, pdf or html, at `scale`, with or without titles),
    "csv" (the table), "zip" (every figure as html and `fmt`, the table, metadata.json), or "html" / "png"
    (every figure).
    """
    directory = Path(directory or tempfile.mkdtemp(prefix="logo-studio-export-"))
    directory.mkdir(parents=True, exist_ok=True)
    figs = {name: view.figures[name] for name in FIGURES if name in view.figures}
    options = {"scale": scale, "titles": titles, "metadata": metadata}
    if kind in FIGURES:
        if kind not in figs:
            raise ValueError(f"there is no {kind} figure yet: generate an answer first")
        paths = [export.export_figure(figs[kind], directory / f"{kind}.{fmt}", fmt, **options)]
    elif kind in ("html", "png"):
        paths = [export.export_figure(fig, directory / f"{name}.{kind}", kind, **options) for name, fig in figs.items()]
    elif kind == "csv":
        paths = [export.export_csv(view.table, directory / "routing.csv")]
    elif kind == "zip":
        formats = tuple(dict.fromkeys(("html", fmt)))
        paths = [
            export.export_bundle(
                figs,
                {"routing": view.table},
                directory / "logo_studio_export.zip",
                scale,
                formats=formats,
                titles=titles,
                metadata=metadata,
            )
        ]
    else:
        raise ValueError(f"unknown export {kind!r}: choose one of {', '.join(FIGURES)}, csv, zip, html or png")
    if metadata is not None and kind != "zip":  # the zip holds its own metadata.json
        beside = directory / export.METADATA_FILE
        beside.write_text(json.dumps(metadata, indent=2, default=str), encoding="utf-8")
        paths.append(beside)
    return [str(p) for p in paths]
