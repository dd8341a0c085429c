"""The LoGo Studio page: layout and event wiring around app/ui_actions.py; the web API in app/ui_api.py."""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import gradio as gr

from analysis.export import FORMATS, MAX_SCALE, ExportFolder, png_export_available
from analysis.similarity import TaskEmbedder
from logo.config import (
    AGGREGATES,
    CALIBRATIONS,
    MODES,
    PRESETS,
    PROBE_INPUTS,
    SIGNALS,
    WEIGHTINGS,
    GenerationConfig,
    ProbeConfig,
    RoutingConfig,
    field_default,
    field_help,
)
from logo.engine import LoGoEngine

from . import ui_api
from .ui_actions import EXPORTS, Actions, for_display
from .ui_data import DEFAULT_ASSETS_DIR, Example, StudioData
from .ui_figures import MAP_METHODS, adapter_map_figures
from .ui_handlers import DATASET_PROBE, TABLE_COLUMNS, Controls, Studio, dataset_figures, token_cap
from .uploads import UPLOAD_MAX_BYTES, SessionAdapters, upload_panel

log = logging.getLogger(__name__)

UI_DIR = DEFAULT_ASSETS_DIR / "ui"
QUEUE_SIZE = 32  # requests waiting beyond this are refused with "queue full" instead of waiting for minutes
CONCURRENCY = 2  # requests served at once: mixture requests overlap, fused ones are serialised by the engine
# Gradio keeps every session's state and last outputs (plots included) until this many newer sessions evict it;
# each web API call without a session hash is a session of its own
SESSION_CAPACITY = 64
SESSION_TTL_S = 3600  # a session's routing and answer (for exports and re-routes) are dropped an hour after use
EXPORT_SWEEP = (60, 15 * 60)  # Gradio's delete_cache: every minute, delete served files older than 15 minutes
MAX_UPLOAD = UPLOAD_MAX_BYTES  # a bound on what /gradio_api/upload accepts: one adapter upload
CLICK_FIRST_DOWNLOAD = "() => setTimeout(() => document.querySelector('#downloads a[download]')?.click(), 250)"
MARK_SELECTION = "(marks) => { window.logoMarkSelection?.(marks); }"  # plots.js: the new selection, no redraw
WARM_PROBES = (ProbeConfig(), DATASET_PROBE)  # calibration the presets need: recommended (block -2), the last block


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


def tracked(fn: Callable) -> Callable:
    """fn(*inputs, progress=...) as a Gradio handler: Gradio passes a progress tracker to a leading parameter whose
    default is gr.Progress() (the page's progress bar follows calibration's probe batches)."""
    if inspect.isgeneratorfunction(fn):

        def stream(progress=gr.Progress(), *inputs):  # noqa: B008 (Gradio finds its tracker by this default)
            yield from fn(*inputs, progress=progress)

        stream.__name__ = fn.__name__  # not functools.wraps: Gradio would read fn's signature through __wrapped__
        return stream

    def call(progress=gr.Progress(), *inputs):  # noqa: B008
        return fn(*inputs, progress=progress)

    call.__name__ = fn.__name__
    return call


def _warm_up(studio: Studio) -> None:
    try:
        studio.warm_up(WARM_PROBES)
    except Exception:  # a thread boundary: the first request meets (and reports) the same problem again
        log.exception("warming up (calibration statistics, task embedder) failed")


def field_values(config: type, name: str, most: int | None = None) -> dict:
    """A control's `value` and `info` from a config field's default and help (capped at `most`, for sliders)."""
    default = field_default(config, name)
    return {"value": default if most is None else min(default, most), "info": field_help(config, name)}


def routing_field(name: str, most: int | None = None) -> dict:
    return field_values(RoutingConfig, name, most)


def probe_modules(engine: LoGoEngine, block: int = -1) -> list[str]:
    """Module paths inside a block that every adapter adapts (the only ones the probe can score)."""
    return engine.probe_modules(block)


def refused_markdown(engine: LoGoEngine) -> str:
    rows = [f"| `{source}` | {reason} |" for source, reason in engine.pool.refused]
    return "| adapter | why it was refused |\n|---|---|\n" + "\n".join(rows) if rows else ""


def build_demo(
    engine: LoGoEngine,
    *,
    examples: Sequence[Example] | None = None,
    assets_dir: Path = DEFAULT_ASSETS_DIR,
    embedder: TaskEmbedder | None = None,
    queue_size: int = QUEUE_SIZE,
    concurrency: int = CONCURRENCY,
    loragen: Callable | None = None,
    warm_up: bool = True,
) -> gr.Blocks:
    """The whole page. `examples` replaces the zoo's test-set examples; `embedder` the default MiniLM;
    `loragen` (a LoraGenerator or a function that loads one on first use) adds the LoRA-Gen tab."""
    adapter_dirs = [(a.name, a.source) for a in engine.pool.adapters]
    studio = Studio(engine, StudioData.load(Path(assets_dir), adapter_dirs, examples), embedder)
    if warm_up:
        threading.Thread(target=_warm_up, args=(studio,), name="logo-warm-up", daemon=True).start()
    data, names, cap = studio.data, list(engine.adapter_names), token_cap(engine)
    n_adapters = len(names)
    png_ok, png_reason = png_export_available()
    modules = probe_modules(engine)
    text = {name: (UI_DIR / f"{name}.md").read_text(encoding="utf-8") for name in ("header", "about", "help")}
    defaults = Controls()

    with gr.Blocks(title="LoGo Studio", fill_width=True, delete_cache=EXPORT_SWEEP) as demo:
        shown = gr.State(None, time_to_live=SESSION_TTL_S)  # the Shown on screen, for exports and re-routes
        uploads = gr.State(SessionAdapters(), time_to_live=SESSION_TTL_S)  # this session's own adapters only
        # a re-route that changes only the selection sends the heatmap's boxes (and, for the same prompt, the scatter's
        # prompt layer) here instead of the whole plots
        marks = gr.JSON(None, visible=False, elem_id="heatmap-marks")
        gr.Markdown(text["header"], elem_id="header")
        with gr.Tabs():
            with gr.Tab("Studio", elem_id="studio-tab"), gr.Row(equal_height=False, elem_id="main"):
                with gr.Column(scale=5, min_width=340, elem_id="left"):
                    prompt = gr.Textbox(
                        label="Prompt (Enter or Ctrl+Enter: Generate; Shift+Enter: new line)",
                        lines=3,
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
                        stop_btn = gr.Button("Stop", variant="stop", elem_id="stop", scale=1)
                    with gr.Row(elem_id="answers", equal_height=True):
                        base_answer = gr.Textbox(
                            label="Base model (no adapter)",
                            lines=4,
                            max_lines=8,
                            interactive=False,
                            elem_id="answer-base",
                            min_width=200,
                        )
                        answer = gr.Textbox(
                            label="LoGo",
                            lines=4,
                            max_lines=8,
                            interactive=False,
                            buttons=["copy"],
                            elem_id="answer",
                            min_width=200,
                        )
                        manual_answer = gr.Textbox(
                            label="Manual mixture or oracle adapter",
                            lines=4,
                            max_lines=8,
                            interactive=False,
                            elem_id="answer-manual",
                            min_width=200,
                        )
                    status = gr.Markdown(elem_id="status")
                    with gr.Group(elem_id="settings"):
                        preset = gr.Radio(
                            list(PRESETS),
                            value="recommended",
                            label="Routing preset (sets the controls below)",
                            elem_id="preset",
                            info="recommended: chosen on the zoo's dev splits; paper: the paper exactly",
                        )
                        with gr.Row():
                            signal = gr.Radio(
                                list(SIGNALS), label="Signal", elem_id="signal", **routing_field("signal")
                            )
                            calibration = gr.Radio(
                                list(CALIBRATIONS),
                                elem_id="calibration",
                                label="Calibration",
                                **routing_field("calibration"),
                            )
                        with gr.Row():
                            k = gr.Slider(
                                1,
                                n_adapters,
                                step=1,
                                label="k (adapters kept)",
                                elem_id="k",
                                **routing_field("k", most=n_adapters),
                            )
                            weighting = gr.Radio(
                                list(WEIGHTINGS), label="Weighting", elem_id="weighting", **routing_field("weighting")
                            )
                            temperature = gr.Slider(
                                0.05,
                                3,
                                step=0.05,
                                label="Softmax temperature",
                                elem_id="weight-temperature",
                                **routing_field("temperature"),
                            )
                        loudness = gr.Number(
                            value=field_default(RoutingConfig, "loudness_limit") or 0,
                            minimum=0,
                            label="Loudness limit (x the pool's upper-quartile output norm; 0: off)",
                            info=field_help(RoutingConfig, "loudness_limit"),
                            elem_id="loudness-limit",
                        )
                    with gr.Accordion("Advanced: where the probe reads", open=False, elem_id="advanced"):
                        with gr.Row():
                            block = gr.Slider(
                                0,
                                studio.n_blocks - 1,
                                value=defaults.block % studio.n_blocks,
                                step=1,
                                label="Probe block",
                                info=field_help(ProbeConfig, "block"),
                                elem_id="block",
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
                    with gr.Accordion("Answering: merge mode and sampling", open=False, elem_id="sampling"):
                        with gr.Row():
                            mode = gr.Radio(
                                list(MODES),
                                label="Merge mode",
                                elem_id="mode",
                                **field_values(GenerationConfig, "mode"),
                            )
                            max_new = gr.Slider(
                                1,
                                cap,
                                step=1,
                                label="Max new tokens",
                                elem_id="max-new",
                                **field_values(GenerationConfig, "max_new_tokens", most=cap),
                            )
                        with gr.Row():
                            sample_t = gr.Slider(
                                0,
                                2,
                                step=0.05,
                                label="Temperature",
                                elem_id="sample-temperature",
                                **field_values(GenerationConfig, "temperature"),
                            )
                            top_p = gr.Slider(
                                0.05,
                                1,
                                step=0.05,
                                label="Top-p",
                                elem_id="top-p",
                                **field_values(GenerationConfig, "top_p"),
                            )
                            seed = gr.Number(None, precision=0, label="Seed (empty: fresh)", elem_id="seed", minimum=0)
                        compare = gr.Checkbox(
                            True,
                            label="Also answer with the base model and the manual/oracle "
                            "mixture (same prompt, same settings)",
                            elem_id="compare",
                        )
                    with gr.Accordion("Manual override and comparisons", open=False, elem_id="override"):
                        with gr.Row():
                            pin = gr.Dropdown(names, multiselect=True, label="Pin (always selected)", elem_id="pin")
                            exclude = gr.Dropdown(
                                names, multiselect=True, label="Exclude (never selected)", elem_id="exclude"
                            )
                        with gr.Row():
                            manual = gr.Textbox(
                                label="Manual mixture for the third answer",
                                elem_id="manual",
                                placeholder="en_fr  or  en_fr=0.7, en_de=0.3  (empty: the oracle "
                                "adapter of a zoo example)",
                                scale=4,
                            )
                            copy_btn = gr.Button("Copy LoGo's mixture", size="sm", scale=1, elem_id="copy-mixture")
                        compare_btn = gr.Button(
                            "Compare presets: paper vs recommended", size="sm", elem_id="compare-presets"
                        )
                        comparison = gr.Markdown(elem_id="comparison")
                    table = gr.Dataframe(
                        headers=TABLE_COLUMNS,
                        datatype=["str", "str", "number", "number", "number", "str"],
                        label="Routing: every adapter, selected first, then by score",
                        interactive=False,
                        max_height=380,
                        wrap=True,
                        elem_id="routing-table",
                    )
                    with gr.Row():
                        card_pick = gr.Dropdown(names, value=None, label="Adapter card", elem_id="card-pick", scale=1)
                        card = gr.Markdown(elem_id="card")
                    with gr.Group(elem_id="exports"):
                        with gr.Row():
                            export_what = gr.Dropdown(
                                list(EXPORTS), value="heatmap", label="Export", min_width=120, elem_id="export-what"
                            )
                            export_fmt = gr.Radio(
                                list(FORMATS) if png_ok else ["html"],
                                value="png" if png_ok else "html",
                                label="Format",
                                elem_id="export-format",
                            )
                        with gr.Row():
                            export_scale = gr.Slider(
                                1, MAX_SCALE, value=2, step=0.5, label="PNG scale", elem_id="export-scale"
                            )
                            export_titles = gr.Checkbox(True, label="With titles", elem_id="export-titles")
                            export_btn = gr.Button("Download", variant="secondary", interactive=False, elem_id="export")
                        if not png_ok:
                            gr.Markdown(f"PNG, SVG and PDF are off here: {png_reason}", elem_classes="note")
                    downloads = gr.File(
                        label="Exported (with metadata.json: prompt, answers, settings, model, adapter hashes, "
                        "versions)",
                        file_count="multiple",
                        interactive=False,
                        visible=False,
                        elem_id="downloads",
                    )
                    with gr.Accordion("Your own adapters (this session only)", open=False, elem_id="uploads"):
                        upload = upload_panel(engine, uploads)
                    refused = refused_markdown(engine)
                    if refused:
                        with gr.Accordion(
                            f"Adapters refused at start-up ({len(engine.pool.refused)})", open=False, elem_id="refused"
                        ):
                            gr.Markdown(refused)
                with gr.Column(scale=7, min_width=340, elem_id="plots"):
                    initial = {name: for_display(fig, name) for name, fig in dataset_figures(studio, defaults).items()}
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
            with gr.Tab("Adapter map", elem_id="map-tab"):
                # static: the committed map, drawn once here and never sent again on a re-route
                maps = {label: for_display(fig) for label, fig in adapter_map_figures(data.adapter_map).items()}
                map_method = gr.Radio(
                    list(maps), value=next(iter(MAP_METHODS)), label="Projection", elem_id="map-method"
                )
                map_plot = gr.Plot(maps[map_method.value], label="Adapter map", show_label=False, elem_id="plot-map")
            if loragen is not None:
                from .ui_loragen import loragen_tab

                loragen_tab(loragen, engine)
        with gr.Row():
            with gr.Accordion("About the method and the plots", open=False):
                gr.Markdown(text["about"])
            with gr.Accordion("Running, API and limits", open=False):
                gr.Markdown(text["help"])

        ui_api.register(studio)  # first, so that its endpoints keep the names /route and /generate
        # exports live in a private folder inside Gradio's cache, so Gradio serves them without a copy
        actions = Actions(studio, ExportFolder(downloads.GRADIO_CACHE))
        controls = [signal, calibration, k, block, module, probe_input, aggregate, weighting, temperature, loudness]
        overrides = [pin, exclude]
        routed = [table, heatmap, scatter, status, shown, marks]
        private = {"api_visibility": "private"}
        route_event = route_btn.click(
            on_gpu(tracked(actions.route)), [prompt, *controls, *overrides, uploads], routed, **private
        )
        generation = {
            "fn": on_gpu(tracked(actions.generate)),
            "inputs": [prompt, *controls, *overrides, manual, compare, mode, max_new, sample_t, top_p, seed, uploads],
            "outputs": [answer, base_answer, manual_answer, table, heatmap, scatter, latency, status, shown],
            **private,
        }
        generate_event = generate_btn.click(**generation)
        stop_btn.click(None, cancels=[generate_event], **private)  # Enter in the prompt clicks Generate (plots.js)
        reroute = {
            "fn": on_gpu(tracked(actions.reroute)),
            "inputs": [prompt, *controls, *overrides, shown, uploads],
            "outputs": routed,
            "trigger_mode": "always_last",  # one dependency for every control: the last setting always wins
            "show_progress": "minimal",
            "show_progress_on": [status],  # a timer in the status line, not over the table and plots (redraws)
            **private,
        }
        picked = example.change(actions.pick_example, example, prompt, **private).then(**reroute)
        reroute_event = gr.on([control.change for control in (*controls, *overrides, upload["changed"])], **reroute)
        for event in (picked, reroute_event):  # after a re-route that succeeded; in the page only (no request)
            event.success(None, marks, None, js=MARK_SELECTION, **private)
        preset.input(actions.preset, preset, controls, **private)
        compare_btn.click(actions.compare, prompt, comparison, **private)
        copy_btn.click(actions.copy_mixture, shown, manual, **private)
        card_pick.change(actions.card, card_pick, card, **private)
        map_method.change(lambda label: maps[label], map_method, map_plot, **private)
        # exports read the session's state, so they are not API endpoints; one at a time (PNG starts Chromium);
        # the first file's link is clicked at once: one click downloads
        export_btn.click(
            actions.export,
            [shown, export_what, export_fmt, export_scale, export_titles, uploads],
            downloads,
            concurrency_limit=1,
            concurrency_id="export",
            **private,
        ).then(None, js=CLICK_FIRST_DOWNLOAD, **private)
        for event in (route_event, generate_event, reroute_event):
            event.then(actions.exportable, shown, export_btn, **private)  # enabled once there is something

    demo.queue(max_size=queue_size, default_concurrency_limit=concurrency)
    return demo
