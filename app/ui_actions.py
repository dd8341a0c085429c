"""What the page's events call: plain values in, component values out; failures become messages in the page."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import replace

import gradio as gr
import pandas as pd
import plotly.graph_objects as go

from analysis.export import ExportFolder, PngExportUnavailable
from logo.config import RoutingConfig
from logo.results import Routing

from .ui_data import card_markdown
from .ui_figures import copy_figure, layer_of
from .ui_handlers import (
    Controls,
    Sampling,
    Shown,
    Studio,
    View,
    calibration_pending,
    compare_presets,
    dataset_figures,
    export_metadata_of,
    export_view,
    generate_stream,
    heatmap_marks,
    route_view,
    scatter_prompt_part,
    view_of_shown,
)
from .ui_overrides import Override, mixture_text
from .uploads import SessionAdapters, session_engine

log = logging.getLogger(__name__)
MIN_PLOT_HEIGHT = 260  # px: a heatmap of one prompt row is otherwise a thin strip
EMPTY_PLOT_HEIGHT = 240  # px: a figure that only says what is missing
N_CONTROLS = len(Controls.__dataclass_fields__)
EXPORTS = {
    "heatmap": "signal_heatmap",
    "scatter": "weight_similarity",
    "latency": "latency",
    "table (CSV)": "csv",
    "everything (zip)": "zip",
}  # the export picker's labels -> export_view's kinds
NOTICE_S = 30  # seconds the "computing calibration statistics" toast stays up
SELECTED_ROW = "background-color: rgba(99, 102, 241, 0.16); font-weight: 600"


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


def for_display(fig: go.Figure, name: str = "") -> go.Figure:
    """A copy for the page: the heatmap keeps its width (its column scrolls sideways), the others fill the column."""
    height = max(fig.layout.height or 0, MIN_PLOT_HEIGHT) if fig.data else EMPTY_PLOT_HEIGHT  # a note needs little room
    keep_width = name == "signal_heatmap" and fig.data
    shown = copy_figure(fig)  # trusted: validating a copy would cost more than building the re-route's table
    return shown.update_layout(width=fig.layout.width if keep_width else None, autosize=True, height=height)


def selection_marks(studio: Studio, routing: Routing, same_prompt: bool) -> dict:
    """What the page changes in the plots it shows when only the selection changed (plots.js, logoMarkSelection):
    the heatmap's shapes (the selection boxes among them) and layout.meta; for the same prompt (and method: it is
    in the heatmap's key), the scatter's prompt layer (ui_figures.prompt_layer), else None. Built from the cached
    layers and this prompt's trace, never from the whole figures: equal to what a full redraw would send.

    On a 2-core CPU, redrawing the whole heatmap in the page costs 150-350 ms, replacing its shapes 20-30 ms;
    Gradio's redraw of the scatter (a new plot element) about 60-90 ms, Plotly.react on the one on screen 50."""
    part = scatter_prompt_part(studio, routing) if same_prompt else None
    layer = None
    if part is not None and part[0].data:  # without this prompt's trace, for_display would size it as a note
        fig, kept = part
        layer = layer_of(for_display(fig), kept)
    return {"heatmap": heatmap_marks(studio, routing), "scatter": layer}


def display_table(table: pd.DataFrame):
    """The routing table as shown: 4 significant digits, a check mark and the selected rows highlighted."""
    shown = table.copy()
    selected = list(shown["selected"])
    shown["selected"] = ["✓" if s else "" for s in selected]
    styled = shown.style.apply(lambda row: [SELECTED_ROW if selected[row.name] else ""] * len(row), axis=1)
    return styled.format({"signal": "{:.4g}", "score": "{:.4g}", "weight": "{:.3f}"})


def answer_box(generation, label: str) -> dict:
    if generation is None:
        return gr.update(value="", label=label)
    t = generation.timings
    return gr.update(value=generation.text, label=f"{label} · {generation.n_tokens} tokens, {t.total_ms:,.0f} ms")


def announce_calibration(studio: Studio, prompt: str, controls: Controls) -> str:
    """Say at once (a toast, while the request runs) when this route must first compute calibration statistics;
    -> what the status line says once they are computed ('' when nothing was pending)."""
    pending = calibration_pending(studio, controls) if (prompt or "").strip() else None
    if pending is None:
        return ""
    block, n_prompts = pending
    gr.Info(
        f"Computing calibration statistics for block {block} ({n_prompts} reference prompts): once per probe "
        f"setting, a minute or two on a CPU; later routes reuse them.",
        duration=NOTICE_S,
    )
    return f"Calibration statistics for block {block} computed ({n_prompts} reference prompts) and cached."


def compute_calibration(studio: Studio, controls: Controls, progress: Callable | None = None) -> None:
    """The calibration statistics these controls route with, computed now (a no-op when cached) with `progress`
    (a gr.Progress) following the reference prompts' probe batches."""
    config = controls.routing(studio.n_blocks)
    if not config.uses_reference:
        return
    block = config.probe.block % studio.n_blocks

    def report(done: int, total: int) -> None:
        progress((done, total), desc=f"calibration statistics for block {block}", unit="reference prompts")

    studio.engine.calibration_stats(config.probe, progress=report if progress is not None else None)


def join(*parts: str) -> str:
    return " ".join(filter(None, parts))


def logo_label(view: View) -> str:
    mixture = ", ".join(f"{n} {w:.2f}" for n, w in zip(view.routing.selected, view.routing.weights, strict=True))
    return f"LoGo ({mixture})"


class Actions:
    """The page's handlers. The session keeps a `Shown` (plain values); a settings change that would not change
    the table or the plots sends none of them again (gr.skip())."""

    def __init__(self, studio: Studio, exports: ExportFolder | None = None):
        self.studio = studio
        self.exports = exports or ExportFolder()
        self._dataset: dict[tuple, dict[str, go.Figure]] = {}  # controls -> the displayed dataset figures

    def _routed(self, studio: Studio, view: View, status: str, previous: Shown | None) -> tuple:
        """-> table, heatmap, scatter, status, shown, selection marks; the table and plots are skipped when they
        would not change, and when only the selection would, the heatmap and (for the same prompt) the scatter:
        the marks carry the heatmap's new boxes and the scatter's prompt layer instead."""
        if previous is not None and previous.draws_as(view.routing):
            return gr.skip(), gr.skip(), gr.skip(), status, view.kept(), None
        figs = view.figures  # LazyFigures: a selection-only re-route builds none of them, or the scatter alone
        if previous is not None and previous.heatmap_differs_only_in_selection(view.routing):
            same_prompt = previous.routing.prompt == view.routing.prompt
            marks = selection_marks(studio, view.routing, same_prompt)
            scatter = gr.skip() if marks["scatter"] is not None else for_display(figs["weight_similarity"])
            return display_table(view.table), gr.skip(), scatter, status, view.kept(), marks
        scatter = for_display(figs["weight_similarity"])
        heatmap = for_display(figs["signal_heatmap"], "signal_heatmap")
        return display_table(view.table), heatmap, scatter, status, view.kept(), None

    def dataset_figures(self, controls: Controls) -> dict[str, go.Figure]:
        key = (
            controls.signal,
            controls.calibration,
            controls.block,
            controls.module,
            controls.probe_input,
            controls.aggregate,
        )
        if key not in self._dataset:
            figures = dataset_figures(self.studio, controls).items()
            self._dataset[key] = {name: for_display(figure, name) for name, figure in figures}
        return self._dataset[key]

    def studio_of(self, uploads: SessionAdapters | None) -> Studio:
        """The Studio over this session's engine: the shared one, or the zoo plus the session's uploads."""
        engine = session_engine(self.studio.engine, uploads)
        return self.studio if engine is self.studio.engine else replace(self.studio, engine=engine)

    def route(self, prompt: str, *settings, progress: Callable | None = None) -> tuple:
        """prompt, controls..., pin, exclude, uploads -> table, heatmap, scatter, status, shown, selection marks."""
        *controls, pin, exclude, uploads = settings
        with shown_errors():
            studio, chosen = self.studio_of(uploads), Controls(*controls)
            if calibrated := announce_calibration(studio, prompt, chosen):
                compute_calibration(studio, chosen, progress)
            view = route_view(studio, prompt, chosen, Override(pin, exclude))
        return self._routed(studio, view, join(notify(view), calibrated), previous=None)

    def reroute(self, prompt: str, *settings_and_shown, progress: Callable | None = None) -> tuple:
        """A settings change re-routes at once and keeps the answers; without a prompt the plots show the dataset."""
        *controls, pin, exclude, previous, uploads = settings_and_shown
        if not (prompt or "").strip():  # nothing to route: the dataset-level plots of these settings
            with shown_errors():
                dataset = self.dataset_figures(Controls(*controls))
            kept = replace(previous, drawn=False) if previous is not None else gr.skip()
            return gr.skip(), dataset["signal_heatmap"], dataset["weight_similarity"], gr.skip(), kept, None
        with shown_errors():
            studio, chosen = self.studio_of(uploads), Controls(*controls)
            if calibrated := announce_calibration(studio, prompt, chosen):
                compute_calibration(studio, chosen, progress)
            view = route_view(studio, prompt, chosen, Override(pin, exclude))
        status = join(notify(view), calibrated)
        if previous is not None and previous.generation is not None:
            view = replace(
                view,
                answer=previous.generation.text,
                generation=previous.generation,
                base=previous.base,
                manual=previous.manual,
                manual_label=previous.manual_label,
            )
            status = f"{status} Routing changed since these answers: click **Generate** to answer with it.".strip()
        return self._routed(studio, view, status, previous)

    def generate(self, prompt: str, *settings, progress: Callable | None = None) -> Iterator[tuple]:
        """-> logo, base, manual answers, table, heatmap, scatter, latency, status, shown; LoGo streams first."""
        controls, rest = settings[:N_CONTROLS], settings[N_CONTROLS:]
        pin, exclude, manual, compare, mode, max_new, temperature, top_p, seed, uploads = rest
        sampling = Sampling(mode, max_new, temperature, top_p, None if seed in (None, "") else int(seed))
        skip7 = (gr.skip(),) * 7
        with shown_errors():
            studio, chosen = self.studio_of(uploads), Controls(*controls)
            calibrated = announce_calibration(studio, prompt, chosen)
            if calibrated:  # the status line says it too while the probe passes run
                yield *skip7, "⏳ computing calibration statistics for this probe setting…", gr.skip()
                compute_calibration(studio, chosen, progress)
            stream = generate_stream(studio, prompt, chosen, sampling, Override(pin, exclude), manual, compare)
            for text, view in stream:
                if view is None:
                    yield gr.update(value=text), gr.skip(), *skip7
                    continue
                table, heatmap, scatter, status, shown, _ = self._routed(studio, view, notify(view), previous=None)
                latency = for_display(view.figures["latency"])
                status = join(status, view.stats, calibrated)
                if view.base is None:
                    waiting = "answering with the base model and the comparison…" if compare else ""
                    yield (
                        answer_box(view.generation, logo_label(view)),
                        gr.update(value=waiting),
                        gr.skip(),
                        table,
                        heatmap,
                        scatter,
                        latency,
                        status,
                        shown,
                    )
                    continue
                manual_label = view.manual_label or "Manual mixture (type one below, or pick a zoo example)"
                yield (
                    gr.skip(),
                    answer_box(view.base, "Base model (no adapter)"),
                    answer_box(view.manual, manual_label.capitalize()),
                    gr.skip(),
                    gr.skip(),
                    gr.skip(),
                    latency,
                    status,
                    shown,
                )

    def export(self, shown: Shown | None, what: str, fmt: str, scale: float, titles: bool, uploads=None) -> dict:
        """One click: the chosen figure (or table, or zip) written with its metadata into a fresh private folder;
        the page's JS then clicks its link, so the browser downloads it at once."""
        if shown is None:
            raise gr.Error("Nothing to export yet: route or generate first.")
        kind = EXPORTS.get(what, what)
        with shown_errors(), self.exports.new() as folder:
            studio = self.studio_of(uploads)
            view = view_of_shown(studio, shown)
            hashes = uploads.hashes if uploads is not None else None
            metadata = export_metadata_of(studio, view, hashes)
            paths = export_view(view, kind, folder, fmt=fmt, scale=scale, titles=titles, metadata=metadata)
            return gr.update(value=paths, visible=True)

    def exportable(self, shown: Shown | None) -> dict:
        return gr.update(interactive=shown is not None)

    def pick_example(self, index: int | None) -> str:
        return gr.skip() if index is None else self.studio.data.examples[int(index)].prompt

    def preset(self, name: str) -> tuple:
        """A routing preset's values for signal, calibration, k, block, module, probe input, aggregate, weighting,
        temperature, loudness limit (the slider's block index; 0 for no limit)."""
        config = RoutingConfig.preset(name, k=min(RoutingConfig().k, len(self.studio.engine.adapter_names)))
        probe = config.probe
        block = probe.block % self.studio.n_blocks
        return (
            config.signal,
            config.calibration,
            config.k,
            block,
            probe.module,
            probe.probe_input,
            probe.aggregate,
            config.weighting,
            config.temperature,
            config.loudness_limit or 0,
        )

    def compare(self, prompt: str) -> str:
        with shown_errors():
            return compare_presets(self.studio, prompt)

    def card(self, name: str | None) -> str:
        if not name:
            return ""
        return card_markdown(name, self.studio.data.cards.get(name, {}))

    def copy_mixture(self, shown: Shown | None) -> str:
        if shown is None:
            raise gr.Error("Route a prompt first: there is no LoGo mixture to copy.")
        return mixture_text(shown.routing.selected, shown.routing.weights)
