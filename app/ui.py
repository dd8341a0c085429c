"""The LoGo Studio page: layout and event wiring around the handlers of app/ui_handlers.py."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import gradio as gr
import pandas as pd
import plotly.graph_objects as go

from analysis.export import ExportFolder, PngExportUnavailable, png_export_available
from analysis.similarity import TaskEmbedder
from logo.config import (
    AGGREGATES,
    CALIBRATIONS,
    MODES,
    PROBE_INPUTS,
    SIGNALS,
    GenerationConfig,
    ProbeConfig,
    RoutingConfig,
    field_default,
    field_help,
)
from logo.engine import LoGoEngine

from .ui_data import DEFAULT_ASSETS_DIR, Example, StudioData
from .ui_handlers import (
    TABLE_COLUMNS,
    Controls,
    Shown,
    Studio,
    View,
    dataset_figures,
    export_view,
    generate_stream,
    route_view,
    token_cap,
    view_of_shown,
)

log = logging.getLogger(__name__)

UI_DIR = DEFAULT_ASSETS_DIR / "ui"
QUEUE_SIZE = 32  # requests waiting beyond this are refused with "queue full" instead of waiting for minutes
MIN_PLOT_HEIGHT = 260  # px: a heatmap of one prompt row is otherwise a thin strip
EMPTY_PLOT_HEIGHT = 240  # px: a figure that only says what is missing
CONCURRENCY = 2  # requests served at once: mixture requests overlap, fused ones are serialised by the engine
# Gradio keeps every session's state and last outputs (plots included, ~0.3-1 MB) until this many newer
# sessions evict it; each web API call without a session hash is a session of its own
SESSION_CAPACITY = 64
SESSION_TTL_S = 3600  # a session's routing and answer (for exports and re-routes) are dropped an hour after use
EXPORT_SWEEP = (60, 15 * 60)  # Gradio's delete_cache: every minute, delete served files older than 15 minutes
MAX_UPLOAD = "1mb"  # the page takes no files; a bound on what /gradio_api/upload accepts anonymously


def launch_options() -> dict:
    """Styling and limits that Gradio 6 takes at launch(): pass them to every `demo.launch(...)`."""
    return {
        "css_paths": [UI_DIR / "style.css"],
        "js": (UI_DIR / "plots.js").read_text(encoding="utf-8"),
        "theme": gr.themes.Soft(primary_hue="indigo", neutral_hue="slate"),
        "max_file_size": MAX_UPLOAD,
        "state_session_capacity": SESSION_CAPACITY,
    }


def on_gpu(fn: Callable) -> Callable:
    """`spaces.GPU` on Hugging Face ZeroGPU (the GPU is attached only while `fn` runs); a no-op elsewhere."""
    try:
        import spaces
    except ImportError:
        return fn
    return spaces.GPU(fn)


@contextlib.contextmanager
def shown_errors():
    """Turn a failing request into a message in the page; the app keeps serving the next one."""
    try:
        yield
    except gr.Error:
        raise
    except (ValueError, KeyError, FileNotFoundError, PngExportUnavailable) as err:
        raise gr.Error(str(err)) from err
    except Exception as err:  # the UI boundary: anything else is logged and reported, never kills the server
        log.exception("request failed")
        raise gr.Error(f"The request failed ({type(err).__name__}: {err}). Try again or change the settings.") from err


def notify(view: View) -> str:
    """Toast each notice (caps applied) and return them as a status line."""
    for note in view.notes:
        gr.Warning(note)
    return " ".join(f"⚠ {note}" for note in view.notes)


def for_display(fig: go.Figure) -> go.Figure:
    """A copy that fills its column (the exported figure keeps the size analysis.figures gave it)."""
    height = max(fig.layout.height or 0, MIN_PLOT_HEIGHT) if fig.data else EMPTY_PLOT_HEIGHT  # a note needs little room
    return go.Figure(fig).update_layout(width=None, autosize=True, height=height)


def _warm_up(studio: Studio) -> None:
    try:
        studio.warm_up()
    except Exception:  # a thread boundary: the first request meets (and reports) the same problem again
        log.exception("warming up the task embedder failed")


def display_table(table: pd.DataFrame) -> pd.DataFrame:
    """The routing table as shown: 4 significant digits and a check mark (exports keep full precision)."""
    shown = table.copy()
    for column in ("signal", "score"):
        shown[column] = [float(f"{value:.4g}") for value in shown[column]]
    shown["weight"] = shown["weight"].round(3)
    shown["selected"] = ["✓" if selected else "" for selected in shown["selected"]]
    return shown


class Actions:
    """What the page's events call: plain values in, component values out; failures become gr.Error.

    The session keeps a `Shown` (plain values). A settings change that would not change the table or the
    plots sends none of them again (gr.skip()); the web API endpoints (route, generate) always answer in full,
    so that every call stands on its own.
    """

    def __init__(self, studio: Studio, exports: ExportFolder | None = None):
        self.studio = studio
        self.exports = exports or ExportFolder()
        self._dataset: dict[str, dict[str, go.Figure]] = {}  # signal -> the displayed dataset figures, drawn once

    def _routed(self, view: View, status: str, previous: Shown | None) -> tuple:
        """-> table, heatmap, scatter, status, shown; the table and plots are skipped when they would not change."""
        if previous is not None and previous.draws_as(view.routing):
            return gr.skip(), gr.skip(), gr.skip(), status, view.kept()
        figs = view.figures
        heatmap, scatter = for_display(figs["signal_heatmap"]), for_display(figs["weight_similarity"])
        return display_table(view.table), heatmap, scatter, status, view.kept()

    def dataset_figures(self, signal: str) -> dict[str, go.Figure]:
        if signal not in self._dataset:
            figures = dataset_figures(self.studio, signal).items()
            self._dataset[signal] = {name: for_display(figure) for name, figure in figures}
        return self._dataset[signal]

    def route(self, prompt: str, *settings) -> tuple:
        """-> table, heatmap, scatter, status, shown."""
        with shown_errors():
            view = route_view(self.studio, prompt, Controls(*settings))
        return self._routed(view, notify(view), previous=None)

    def reroute(self, prompt: str, *settings_and_shown) -> tuple:
        """A settings change re-routes at once and keeps the answer; without a prompt the plots show the dataset."""
        *settings, previous = settings_and_shown
        if not (prompt or "").strip():  # nothing to route: the dataset-level plots of this signal
            dataset = self.dataset_figures(settings[0])
            if previous is None:  # the scatter shows the dataset already
                return gr.skip(), dataset["signal_heatmap"], gr.skip(), gr.skip(), gr.skip()
            kept = replace(previous, drawn=False)  # table and exports keep the last routing; the plots do not
            return gr.skip(), dataset["signal_heatmap"], dataset["weight_similarity"], gr.skip(), kept
        with shown_errors():
            view = route_view(self.studio, prompt, Controls(*settings))
        status = notify(view)
        if previous is not None and previous.generation is not None:
            view = replace(view, answer=previous.generation.text, generation=previous.generation)
            status = f"{status} Routing changed since this answer: click **Generate** to answer with it.".strip()
        return self._routed(view, status, previous)

    def generate(self, prompt: str, *settings) -> Iterator[tuple]:
        """-> answer, table, heatmap, scatter, latency, status, shown; the answer streams first."""
        *routing_settings, mode, max_new_tokens = settings
        with shown_errors():
            stream = generate_stream(self.studio, prompt, Controls(*routing_settings), mode, max_new_tokens)
            for answer, view in stream:
                if view is None:
                    yield answer, *(gr.skip(),) * 6
                    continue
                table, heatmap, scatter, status, shown = self._routed(view, notify(view), previous=None)
                latency = for_display(view.figures["latency"])
                yield view.answer, table, heatmap, scatter, latency, " ".join(filter(None, [status, view.stats])), shown

    def export(self, kind: str) -> Callable[[Shown | None], dict]:
        """The export button `kind`: files written into a fresh private folder, shown in the Downloads list.

        An update, not a new gr.File: a gr.File built here would copy the files into Gradio's cache at once,
        outside the Downloads component, where Gradio's delete_cache never sees them.
        """

        def run(shown: Shown | None) -> dict:
            if shown is None:
                raise gr.Error("Nothing to export yet: route or generate first.")
            with shown_errors(), self.exports.new() as folder:
                return gr.update(value=export_view(view_of_shown(self.studio, shown), kind, folder), visible=True)

        run.__name__ = f"export_{kind}"
        return run

    def pick_example(self, index: int | None) -> str:
        return gr.skip() if index is None else self.studio.data.examples[int(index)].prompt


def field_values(config: type, name: str, most: int | None = None) -> dict:
    """A control's `value` and `info` from a config field's default and help (capped at `most`, for sliders)."""
    default = field_default(config, name)
    return {"value": default if most is None else min(default, most), "info": field_help(config, name)}


def routing_field(name: str, most: int | None = None) -> dict:
    return field_values(RoutingConfig, name, most)


def probe_modules(engine: LoGoEngine, block: int = -1) -> list[str]:
    """Module paths inside a block that every adapter adapts (the only ones the probe can score)."""
    return engine.probe_modules(block)


def build_demo(
    engine: LoGoEngine,
    *,
    examples: Sequence[Example] | None = None,
    assets_dir: Path = DEFAULT_ASSETS_DIR,
    embedder: TaskEmbedder | None = None,
    queue_size: int = QUEUE_SIZE,
    concurrency: int = CONCURRENCY,
) -> gr.Blocks:
    """The whole page. `examples` replaces the zoo's test-set examples; `embedder` the default MiniLM."""
    adapter_dirs = [(a.name, a.source) for a in engine.pool.adapters]
    studio = Studio(engine, StudioData.load(Path(assets_dir), adapter_dirs, examples), embedder)
    threading.Thread(target=_warm_up, args=(studio,), name="logo-warm-up", daemon=True).start()
    data, n_adapters, cap = studio.data, len(engine.adapter_names), token_cap(engine)
    png_ok, png_reason = png_export_available()
    modules = probe_modules(engine)
    text = {name: (UI_DIR / f"{name}.md").read_text(encoding="utf-8") for name in ("header", "about", "help")}

    with gr.Blocks(title="LoGo Studio", fill_width=True, delete_cache=EXPORT_SWEEP) as demo:
        shown = gr.State(None, time_to_live=SESSION_TTL_S)  # the Shown on screen, for exports and re-routes
        gr.Markdown(text["header"], elem_id="header")
        with gr.Row(equal_height=False, elem_id="main"):
            with gr.Column(scale=5, min_width=380, elem_id="left"):
                prompt = gr.Textbox(
                    label="Prompt",
                    lines=4,
                    max_lines=12,
                    elem_id="prompt",
                    placeholder="Ask anything, e.g. 'Translate to French: the cat is black'",
                )
                example = gr.Dropdown(
                    [(e.label, i) for i, e in enumerate(data.examples)],
                    value=None,
                    elem_id="example",
                    label="Examples" if data.examples else "Examples (none: assets/tasks/ is not built yet)",
                    interactive=bool(data.examples),
                )
                with gr.Row():
                    generate_btn = gr.Button("Generate", variant="primary", elem_id="generate", scale=2)
                    route_btn = gr.Button("Route only", elem_id="route", scale=1)
                with gr.Group(elem_id="settings"):
                    with gr.Row():
                        signal = gr.Radio(list(SIGNALS), label="Signal", elem_id="signal", **routing_field("signal"))
                        mode = gr.Radio(
                            list(MODES), label="Merge mode", elem_id="mode", **field_values(GenerationConfig, "mode")
                        )
                    calibration = gr.Radio(
                        list(CALIBRATIONS), elem_id="calibration", label="Calibration", **routing_field("calibration")
                    )
                    with gr.Row():
                        k = gr.Slider(
                            1, n_adapters, step=1, label="k (adapters kept)", **routing_field("k", most=n_adapters)
                        )
                        max_new = gr.Slider(
                            1,
                            cap,
                            step=1,
                            label="Max new tokens",
                            **field_values(GenerationConfig, "max_new_tokens", most=cap),
                        )
                with gr.Accordion("Advanced: where the probe reads", open=False, elem_id="advanced"):
                    with gr.Row():
                        block_default = field_default(ProbeConfig, "block") % studio.n_blocks  # -1: the last block
                        block = gr.Slider(
                            0,
                            studio.n_blocks - 1,
                            value=block_default,
                            step=1,
                            label="Probe block",
                            info=field_help(ProbeConfig, "block"),
                        )
                        module_default = field_default(ProbeConfig, "module")
                        module = gr.Dropdown(
                            modules,
                            value=module_default if module_default in modules else next(iter(modules), None),
                            label="Probe module",
                            info=field_help(ProbeConfig, "module"),
                        )
                    with gr.Row():
                        probe_input = gr.Radio(
                            list(PROBE_INPUTS), label="Probe input", **field_values(ProbeConfig, "probe_input")
                        )
                        aggregate = gr.Radio(
                            list(AGGREGATES), label="Token aggregation", **field_values(ProbeConfig, "aggregate")
                        )
                answer = gr.Textbox(
                    label="Answer", lines=5, max_lines=16, interactive=False, buttons=["copy"], elem_id="answer"
                )
                status = gr.Markdown(elem_id="status")
                table = gr.Dataframe(
                    headers=TABLE_COLUMNS,
                    datatype=["str", "str", "number", "number", "number", "str"],
                    label="Routing: every adapter, highest score first",
                    interactive=False,
                    max_height=360,
                    column_widths=["29%", "21%", "12%", "12%", "12%", "14%"],
                    elem_id="routing-table",
                )
                with gr.Group(elem_id="exports"):
                    with gr.Row():
                        html_btn = gr.Button("Plots → HTML", size="sm", min_width=80, elem_id="export-html")
                        png_btn = gr.Button(
                            "Plots → PNG", size="sm", min_width=80, interactive=png_ok, elem_id="export-png"
                        )
                        csv_btn = gr.Button("Table → CSV", size="sm", min_width=80, elem_id="export-csv")
                        zip_btn = gr.Button("All → zip", size="sm", min_width=80, elem_id="export-zip")
                    if not png_ok:
                        gr.Markdown(f"PNG export is off here: {png_reason}", elem_classes="note")
                downloads = gr.File(
                    label="Downloads", file_count="multiple", interactive=False, visible=False, elem_id="downloads"
                )
            with gr.Column(scale=7, min_width=480, elem_id="plots"):
                # the figures carry their own titles, so the components show no label over them
                initial = {name: for_display(fig) for name, fig in dataset_figures(studio, signal.value).items()}
                heatmap = gr.Plot(
                    initial["signal_heatmap"], label="Signal heatmap", show_label=False, elem_id="plot-heatmap"
                )
                scatter = gr.Plot(
                    initial["weight_similarity"],
                    label="Merge weight vs task similarity",
                    show_label=False,
                    elem_id="plot-scatter",
                )
                latency = gr.Plot(
                    initial["latency"], label="Latency amortisation", show_label=False, elem_id="plot-latency"
                )
        with gr.Row():
            with gr.Accordion("About the method and the plots", open=False):
                gr.Markdown(text["about"])
            with gr.Accordion("Running, API and limits", open=False):
                gr.Markdown(text["help"])

        # exports live in a private folder inside Gradio's cache, so Gradio serves them without a copy
        actions = Actions(studio, ExportFolder(downloads.GRADIO_CACHE))
        controls = [signal, calibration, k, block, module, probe_input, aggregate]
        routed = [table, heatmap, scatter, status, shown]
        route_btn.click(on_gpu(actions.route), [prompt, *controls], routed, api_name="route")
        generate_btn.click(
            on_gpu(actions.generate),
            [prompt, *controls, mode, max_new],
            [answer, table, heatmap, scatter, latency, status, shown],
            api_name="generate",
        )
        reroute = {
            "fn": on_gpu(actions.reroute),
            "inputs": [prompt, *controls, shown],
            "outputs": routed,
            "api_visibility": "private",
            "trigger_mode": "always_last",
        }
        example.change(actions.pick_example, example, prompt, api_visibility="private").then(**reroute)
        for control in (signal, calibration, module, probe_input, aggregate):
            control.change(**reroute)
        for slider in (k, block):
            slider.release(**reroute)
        for button, kind in ((html_btn, "html"), (png_btn, "png"), (csv_btn, "csv"), (zip_btn, "zip")):
            # exports read the session's state, so they are not API endpoints; one at a time (PNG starts Chromium)
            button.click(
                actions.export(kind),
                shown,
                downloads,
                api_visibility="private",
                concurrency_limit=1,
                concurrency_id="export",
            )

    demo.queue(max_size=queue_size, default_concurrency_limit=concurrency)
    return demo
