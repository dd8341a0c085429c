"""The LoGo Studio UI on the tiny world: handlers, a launched server driven by gradio_client, concurrency."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import pickle
import socket
import sys
import threading
import types
import zipfile
from dataclasses import asdict, replace
from pathlib import Path

import gradio as gr
import httpx
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

import logo.engine
from analysis.export import read_metadata
from analysis.similarity import TaskEmbedder
from app import ui_figures
from app.ui import Actions, build_demo, launch_options, on_gpu, probe_modules
from app.ui_data import DEFAULT_ASSETS_DIR, Example, StudioData, examples_from_tasks, read_tasks
from app.ui_figures import MAP_METHODS, PROMPT_TRACE, SELECTED, adapter_map_figures
from app.ui_handlers import (
    MAX_PROMPT_CHARS,
    TABLE_COLUMNS,
    Controls,
    EmptyPrompt,
    Sampling,
    Shown,
    Studio,
    cap_new_tokens,
    clean_prompt,
    export_metadata_of,
    export_view,
    generate_stream,
    route_view,
    view_of_shown,
)
from app.ui_overrides import Override
from app.uploads import UPLOAD_MAX_BYTES
from logo.config import (
    GENERIC_REFERENCE_PROMPTS,
    EngineConfig,
    GenerationConfig,
    ProbeConfig,
    RoutingConfig,
    field_default,
    field_help,
)
from logo.engine import LoGoEngine
from zoo.data import ADAPTERS_DIR, REFERENCE_PROMPTS

REPO = Path(__file__).resolve().parent.parent
CATEGORIES = {"alpha": "translation", "beta": "translation", "gamma": "reasoning", "delta": "cbqa", "epsilon": "nli"}
TASKS = {  # task -> (instruction, inputs): words of the tiny vocabulary, so nothing is <unk>
    "alpha": ("translate to french", ["the cat is red", "the dog is blue", "a bird is green"]),
    "beta": ("translate to german", ["the fish is good", "a pear is bad", "the plum is great"]),
    "gamma": ("sort the words", ["cat dog bird", "apple pear plum", "red blue green"]),
    "delta": ("answer the question", ["what is the capital of france ?", "what is the capital of germany ?"]),
    "epsilon": ("is the review positive or negative ?", ["the movie is good", "the movie is bad"]),
    "zeta": ("count the words", ["one two three", "cat dog"]),  # held out: no adapter
}
EXAMPLES = [
    Example("gamma", "reasoning", False, "sort the words\n\ncat dog bird"),
    Example("alpha", "translation", False, "translate to french\n\nthe cat is red"),
    Example("zeta", "reasoning", True, "count the words\n\none two three"),
]
SETTINGS = {  # the UI's controls in their order; block 3 is the tiny model's last block
    "signal": "norm",
    "calibration": "none",
    "k": 3,
    "block": 3,
    "module": "self_attn.q_proj",
    "probe_input": "module",
    "aggregate": "last",
    "weighting": "linear",  # the paper's weights: these settings are the paper's method
    "temperature": 1.0,
    "loudness_limit": None,  # the paper has no limit
}
NO_OVERRIDE = [[], []]  # pin, exclude


def page_route(**changes) -> list:
    """What the page's Route button sends after the prompt: the controls, then pin and exclude."""
    return [*_settings(**changes), *NO_OVERRIDE]


def page_generate(mode: str = "mixture", max_new: int = 4, compare: bool = True, manual: str = "", **changes) -> list:
    """What the page's Generate sends after the prompt: controls, pin, exclude, manual, compare, mode, sampling."""
    return [*page_route(**changes), manual, compare, mode, max_new, 0.0, 1.0, None, None]  # seed, uploads


class HashEmbedder(TaskEmbedder):
    """A stand-in for MiniLM: normalised bags of hashed words (related texts share words, so similarity varies)."""

    def embed(self, texts: list[str]) -> np.ndarray:
        vectors = np.zeros((len(texts), 32), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.split():
                vectors[row, hashlib.sha256(word.encode()).digest()[0] % 32] += 1.0
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-9)


def write_tiny_assets(root: Path) -> Path:
    """An assets folder for the tiny pool: cards, tasks with dev/test sets, dataset-level results."""
    for name, category in CATEGORIES.items():
        (root / "adapters" / name).mkdir(parents=True)
        (root / "adapters" / name / "card.json").write_text(json.dumps({"category": category}))
    for task, (instruction, inputs) in TASKS.items():
        folder = root / "tasks" / task
        folder.mkdir(parents=True)
        category = CATEGORIES.get(task, "reasoning")
        meta = {
            "name": task,
            "category": category,
            "description": f"{task} task.",
            "instruction": instruction,
            "metric": "exact_match",
            "held_out": task == "zeta",
            "source": "test fixture",
        }
        (folder / "task.json").write_text(json.dumps(meta))
        for split in ("dev", "test"):
            lines = [json.dumps({"input": x, "target": "x"}) + "\n" for x in inputs]
            (folder / f"{split}.jsonl").write_text("".join(lines))
    results = root / "results"
    results.mkdir()
    rng = np.random.default_rng(0)
    for signal in ("norm", "entropy"):
        matrix = rng.random((6, 5)) + 2 * np.eye(6, 5)  # a block diagonal, as in the paper
        pd.DataFrame(matrix, index=list(TASKS), columns=list(CATEGORIES)).to_csv(results / f"signals_{signal}.csv")
    columns = (rng.random(12), rng.random(12), list(CATEGORIES) * 3, list(TASKS) * 2)  # 12 rows: the shortest
    points = list(zip(*columns, strict=False))
    points = pd.DataFrame(points, columns=["weight", "similarity", "adapter", "task"])
    points.to_csv(results / "weight_similarity.csv", index=False)
    return root


def untimed(routing) -> dict:
    """A routing's fields without its timings (probe_ms, queue_ms...), which differ from run to run."""
    return {name: value for name, value in asdict(routing).items() if not name.endswith("_ms")}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tiny_engine(tiny_world, cache_dir: Path, **config) -> LoGoEngine:
    cfg = EngineConfig(
        base_model="tiny",
        adapters=(str(tiny_world.pool_dir),),
        device="cpu",
        dtype="float32",
        cache_dir=cache_dir,
        reference_prompts=tiny_world.reference_file,
        **config,
    )
    return LoGoEngine(cfg, base=tiny_world.base())


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    return write_tiny_assets(tmp_path_factory.mktemp("assets"))


@pytest.fixture
def studio(engine, assets):
    return Studio(engine, StudioData.load(assets, [(a.name, a.source) for a in engine.pool.adapters]), HashEmbedder())


# ---------------------------------------------------------------- data


def test_examples_cover_every_category_and_held_out_tasks(assets, tmp_path):
    examples = examples_from_tasks(read_tasks(assets / "tasks"))
    assert {e.category for e in examples} == {"translation", "reasoning", "cbqa", "nli"}
    assert [e.task for e in examples if e.held_out] == ["zeta"]
    assert Example("alpha", "translation", False, "translate to french\n\nthe cat is red") in examples
    assert examples_from_tasks(read_tasks(tmp_path / "missing")) == []


def test_adapter_categories_from_cards_else_unknown(engine, assets, tmp_path):
    dirs = [(a.name, a.source) for a in engine.pool.adapters]
    assert StudioData.load(assets, dirs).adapter_categories == CATEGORIES
    assert set(StudioData.load(tmp_path, dirs).adapter_categories.values()) == {"unknown"}


# ---------------------------------------------------------------- handlers


@pytest.mark.parametrize(
    "controls",
    [
        Controls(),
        Controls(signal="entropy", k=2),
        Controls(calibration="mean", k=1),
        Controls(signal="entropy", calibration="zscore", k=5),
        Controls(block=1, probe_input="residual", aggregate="mean", k=4),
    ],
)
def test_routing_table_equals_engine_route(studio, engine, controls):
    view = route_view(studio, "  translate the sentence to french  ", controls)
    expected = engine.route("translate the sentence to french", controls.routing(studio.n_blocks))[0]
    assert untimed(view.routing) == untimed(expected)
    table = view.table.set_index("adapter")
    assert list(view.table.columns) == TABLE_COLUMNS
    assert set(table.index) == set(expected.adapters)
    assert table["signal"].to_dict() == pytest.approx(expected.signal_by_adapter)
    assert table["score"].to_dict() == pytest.approx(expected.score_by_adapter)
    assert set(table.index[table["selected"]]) == set(expected.selected)
    assert {a: table.loc[a, "weight"] for a in expected.selected} == pytest.approx(expected.mixture)
    assert list(view.table["score"]) == sorted(view.table["score"], reverse=True)
    assert table.loc["gamma", "category"] == "reasoning"


def test_slider_blocks_count_from_the_end_like_the_presets(studio):
    """The slider shows 0..n-1; the routing uses -n..-1, so block n-2 is the recommended -2 (one calibration)."""
    assert Controls(block=studio.n_blocks - 1).routing(studio.n_blocks).probe.block == -1
    assert Controls(block=studio.n_blocks - 2).routing(studio.n_blocks) == RoutingConfig()
    assert Controls(block=1).routing(studio.n_blocks).probe.block == 1 - studio.n_blocks


def test_controls_default_to_the_config_defaults():
    assert Controls().routing(n_blocks=4) == RoutingConfig()
    assert Controls(k=3.0, block=1.0).routing(4) == RoutingConfig(k=3).with_(block=-3)  # sliders send floats


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: Controls(k=2.7).routing(4), "k must be a positive integer .*got 2.7: it is not a whole number"),
        (lambda: Controls(block=1.5).routing(4), "probe block must be an integer, got 1.5: it is not a whole number"),
        (lambda: Controls(k=None).routing(4), r"k must be a positive integer .*\(a NoneType\)"),
        (lambda: cap_new_tokens(2.5, 10), "max new tokens must be an integer, got 2.5: it is not a whole number"),
        (lambda: clean_prompt("caf\udce9"), "the prompt holds '\\\\udce9' at character 3, a lone surrogate"),
    ],
)
def test_bad_control_values_are_clear_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_page_controls_show_the_config_defaults_and_help(engine, assets):
    demo = build_demo(engine, examples=EXAMPLES, assets_dir=assets, embedder=HashEmbedder())
    shown = {block.label: block for block in demo.blocks.values() if getattr(block, "label", None)}
    for label, config, name in [
        ("Signal", RoutingConfig, "signal"),
        ("Calibration", RoutingConfig, "calibration"),
        ("k (adapters kept)", RoutingConfig, "k"),
        ("Merge mode", GenerationConfig, "mode"),
        ("Max new tokens", GenerationConfig, "max_new_tokens"),
        ("Probe module", ProbeConfig, "module"),
        ("Probe input", ProbeConfig, "probe_input"),
        ("Token aggregation", ProbeConfig, "aggregate"),
    ]:
        assert shown[label].value == field_default(config, name), label
        assert shown[label].info == field_help(config, name), label
    assert shown["Probe block"].value == 2  # the default -2: the tiny model's second-to-last block
    assert shown["Probe block"].info == field_help(ProbeConfig, "block")


PAPER = Controls(**SETTINGS)  # the committed dataset rows were measured at this probe (the last block)


def test_heatmap_shows_one_quantity_and_marks_the_selection(studio, engine):
    view = route_view(studio, "sort the words cat dog bird", replace(PAPER, k=2))
    heatmap = view.figures["signal_heatmap"]
    z = np.asarray(heatmap.data[0].z, dtype=float)
    assert z.shape == (1 + 1 + len(TASKS), 5)  # this prompt, a blank band, the dataset's tasks
    assert np.isfinite(z[0]).all() and np.nanmax(z) == pytest.approx(1.0)  # raw: every row min-max scaled
    assert "raw signal" in heatmap.layout.title.text and "raw signal" in heatmap.data[0].colorbar.title.text
    marks = [s for s in heatmap.layout.shapes if s.y0 == 0 and s.y1 == 1]
    columns = list(heatmap.layout.xaxis.ticktext)
    assert sorted(columns[round(s.x0 + 0.5)] for s in marks) == sorted(view.routing.selected)
    legend = [t.name for t in heatmap.data[1:]]
    assert legend == ["selected for this prompt", "the row's own-task adapter"]

    calibrated = route_view(studio, "sort the words cat dog bird", replace(PAPER, calibration="zscore"))
    fig = calibrated.figures["signal_heatmap"]
    assert "z-score" in fig.layout.title.text and fig.data[0].colorbar.title.text == "z-score"
    stats = engine.calibration_stats(ProbeConfig(block=-1))
    matrix = studio.data.dataset_matrix("norm", engine.adapter_names)
    mean, std = (np.asarray(stats.mean["norm"]), np.asarray(stats.std["norm"]))
    order = list(fig.layout.xaxis.ticktext)
    expected = ((matrix - mean) / std)[order]  # every row the same quantity as the prompt's z-scores
    shown = np.asarray(fig.data[0].z, dtype=float)[2:]  # z rows: prompt, blank band, tasks (the y tick labels)
    assert shown == pytest.approx(expected.reindex(list(fig.layout.yaxis.ticktext)[1:]).to_numpy(), rel=1e-4)
    assert np.asarray(fig.data[0].z, dtype=float)[0] == pytest.approx(
        [calibrated.routing.score_by_adapter[a] for a in order], rel=1e-4
    )

    elsewhere = route_view(studio, "sort the words cat dog bird", Controls())  # recommended: block -2
    assert len(elsewhere.figures["signal_heatmap"].data[0].z) == 1
    assert "evaluation rows hidden" in elsewhere.figures["signal_heatmap"].layout.title.subtitle.text


def test_heatmap_dataset_rows_come_from_the_block_they_were_measured_at(engine, tmp_path):
    """analysis/report.py writes signals_<signal>_block-2.csv beside the last block's: the heatmap shows those rows
    at block -2 (calibrated with block -2's statistics), the last block's at -1, and says where else it has none."""
    assets = write_tiny_assets(tmp_path)
    second = pd.DataFrame(
        np.arange(30, dtype=float).reshape(6, 5) + 1.0, index=list(TASKS), columns=list(CATEGORIES)
    )  # unlike the last block's random rows
    second.to_csv(assets / "results" / "signals_norm_block-2.csv")
    studio = Studio(engine, StudioData.load(assets, [(a.name, a.source) for a in engine.pool.adapters]), HashEmbedder())
    assert sorted(studio.data.dataset_blocks("norm")) == [-2, -1] and studio.data.dataset_blocks("entropy") == [-1]
    prompt = "sort the words cat dog bird"
    fig = route_view(studio, prompt, replace(PAPER, block=2, calibration="zscore")).figures["signal_heatmap"]
    stats = engine.calibration_stats(ProbeConfig(block=-2))
    mean, std = (np.asarray(stats.mean["norm"]), np.asarray(stats.std["norm"]))
    order = list(fig.layout.xaxis.ticktext)
    pooled = second[list(engine.adapter_names)]  # the statistics' order
    expected = ((pooled - mean) / std)[order].reindex(list(fig.layout.yaxis.ticktext)[1:])
    assert np.asarray(fig.data[0].z, dtype=float)[2:] == pytest.approx(expected.to_numpy(), rel=1e-4)
    assert "at block 2" in fig.layout.title.subtitle.text
    last = route_view(studio, prompt, PAPER).figures["signal_heatmap"]
    assert len(last.data[0].z) == 2 + len(TASKS) and "at block 3" in last.layout.title.subtitle.text
    for controls in (replace(PAPER, block=1), replace(PAPER, block=2, signal="entropy")):
        hidden = route_view(studio, prompt, controls).figures["signal_heatmap"]
        assert len(hidden.data[0].z) == 1 and "evaluation rows hidden" in hidden.layout.title.subtitle.text
    assert (
        "block 2 and block 3"
        in route_view(studio, prompt, replace(PAPER, block=1)).figures["signal_heatmap"].layout.title.subtitle.text
    )
    other = route_view(studio, prompt, replace(PAPER, block=2, aggregate="mean")).figures["signal_heatmap"]
    assert "default probe module, input and aggregation only" in other.layout.title.subtitle.text


def test_report_measures_each_heatmap_block_as_the_one_block_matrix_does(engine, assets):
    """analysis/report.py's per-block heatmap (one forward pass for blocks -1 and -2) equals the one-block
    mean_signal_matrix at each block."""
    from analysis.report import mean_signals_by_block
    from analysis.sweeps import mean_signal_matrix

    tasks = list(read_tasks(assets / "tasks").values())
    measured = mean_signals_by_block(engine, tasks, limit=2)
    for block in (-1, -2):
        for signal in ("norm", "entropy"):
            alone = mean_signal_matrix(engine, tasks, signal, 2, ProbeConfig(block=block))
            pd.testing.assert_frame_equal(measured[block][signal], alone, rtol=1e-5)
    assert not measured[-1]["norm"].equals(measured[-2]["norm"])


def test_scatter_shows_the_method_of_the_selected_signal_with_its_r(engine, assets, tmp_path):
    rng = np.random.default_rng(1)
    frames = []
    for method, slope in (("logo_norm", 1.0), ("logo_entropy_cal", -1.0)):
        weight = rng.random(300)
        frames.append(
            pd.DataFrame(
                {
                    "method": method,
                    "setting": "in_pool",
                    "task": "alpha",
                    "adapter": "beta",
                    "weight": weight,
                    "similarity": slope * weight + rng.normal(0, 0.3, 300),
                }
            )
        )
    points = pd.concat(frames, ignore_index=True)
    data = StudioData.load(assets, [(a.name, a.source) for a in engine.pool.adapters])
    studio = Studio(engine, replace(data, weight_similarity=points), HashEmbedder())
    for controls, method in (
        (replace(PAPER), "logo_norm"),
        (replace(PAPER, signal="entropy", calibration="zscore"), "logo_entropy_cal"),
    ):
        fig = route_view(studio, "sort the words cat dog bird", controls).figures["weight_similarity"]
        part = points[points["method"] == method]
        assert fig.layout.meta["pearson_r"] == pytest.approx(part["weight"].corr(part["similarity"]))
        assert fig.layout.meta["n"] == 300 and method in fig.layout.title.subtitle.text
        density = fig.data[0]
        assert np.nansum(np.asarray(density.z, dtype=float)) == 300  # every point counted, none drawn one by one
    fig = route_view(studio, "sort the words cat dog bird", replace(PAPER, calibration="zscore"))
    assert "no logo_norm_cal run committed" in fig.figures["weight_similarity"].layout.title.subtitle.text


def test_latency_compares_the_same_prompt_with_and_without_adapters(studio):
    prompt = "sort the words cat dog bird"
    *_, (answer, final) = generate_stream(studio, prompt, replace(PAPER, k=2), Sampling(max_new_tokens=6))
    latency = final.figures["latency"]
    names = [t.name for t in latency.data]
    assert names[:2] == ["LoGo (mixture, k=2): this answer", "base model: the same prompt"]
    assert final.base.prompt == final.generation.prompt == prompt and final.base.mixture == {}
    assert list(latency.data[1].customdata) == pytest.approx(list(final.base.token_times_ms))
    assert all(name.startswith("benchmark: float32") for name in names[2:])  # this machine type's committed curves
    assert "one warm run each" in latency.layout.title.subtitle.text
    assert final.answer == answer and "tokens" in final.stats


def test_the_gpu_benchmark_curves_are_the_engines_graph_decoding():
    from app.ui_figures import bench_curves

    curves, note = bench_curves("cuda", "bfloat16")  # bench/results/amortisation_gpu.csv (bench.engine_zoo)
    assert sorted(curves) == ["benchmark: base graph (median)", "benchmark: mixture graph (median)"]
    assert all(len(times) == 128 and times == sorted(times) for times in curves.values())  # cumulative ms
    assert "GPU" in note
    cpu, _ = bench_curves("cpu", "float32")
    assert sorted(cpu) == ["benchmark: float32 base (median)", "benchmark: float32 mixture (median)"]


def test_side_by_side_answers_use_the_oracle_or_the_typed_mixture(studio, engine):
    example = EXAMPLES[1]  # alpha's task: its oracle adapter is alpha
    *_, (_, final) = generate_stream(studio, example.prompt, PAPER, Sampling(max_new_tokens=4))
    assert final.manual.mixture == {"alpha": 1.0} and final.manual_label.startswith("oracle: alpha")
    alone = engine.generate(example.prompt, None, GenerationConfig(max_new_tokens=4), mixture={"alpha": 1.0})
    assert final.manual.text == alone.text
    *_, (_, typed) = generate_stream(
        studio, "what is two ?", PAPER, Sampling(max_new_tokens=4), manual="beta=0.5, gamma"
    )
    assert typed.manual.mixture == {"beta": 0.5, "gamma": 1.0}
    with pytest.raises(ValueError, match="adapter 'nope' is not in the pool"):
        list(generate_stream(studio, "what is two ?", PAPER, Sampling(max_new_tokens=4), manual="nope=1"))


def test_pinned_and_excluded_adapters(studio):
    free = route_view(studio, "sort the words cat dog bird", replace(PAPER, k=2)).routing
    top = free.selected[0]
    excluded = route_view(studio, "sort the words cat dog bird", replace(PAPER, k=2), Override(exclude=(top,)))
    assert top not in excluded.routing.selected and excluded.routing.config["excluded"] == [top]
    last = min(free.score_by_adapter, key=free.score_by_adapter.get)
    pinned = route_view(studio, "sort the words cat dog bird", replace(PAPER, k=2), Override(pin=(last,))).routing
    assert last in pinned.selected and len(pinned.selected) == 2 and sum(pinned.weights) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="both pinned and excluded"):
        route_view(studio, "sort", PAPER, Override(pin=("alpha",), exclude=("alpha",)))


def test_similarity_unavailable_is_said_in_the_scatter(engine, tmp_path):
    bare = Studio(engine, StudioData.load(tmp_path, [(a.name, a.source) for a in engine.pool.adapters]), HashEmbedder())
    view = route_view(bare, "what is the capital of france ?", Controls())
    subtitle = view.figures["weight_similarity"].layout.title.subtitle.text
    assert "similarity unavailable" in subtitle and "no evaluation results" in subtitle
    assert len(view.figures["signal_heatmap"].data[0].z) == 1  # only this prompt's row


def test_empty_prompt_is_a_friendly_gr_error(studio):
    with pytest.raises(EmptyPrompt, match="Type a prompt"):
        clean_prompt("   \n ")
    actions = Actions(studio)
    with pytest.raises(gr.Error, match="Type a prompt"):
        actions.route("", *page_route(), None)
    with pytest.raises(gr.Error, match="Type a prompt"):
        list(actions.generate(" ", *page_generate()))
    table, heatmap, scatter, status, view, marks = actions.reroute("", *page_route(), None, None)  # before typing:
    assert (table, status, view) == (gr.skip(),) * 3 and heatmap.data and scatter.data  # the dataset plots
    assert marks is None


def test_caps_are_applied_with_a_message(make_engine, assets):
    prompt, notes = clean_prompt("two " * 1000)
    assert len(prompt) == MAX_PROMPT_CHARS and "cut to its first 2,000 characters" in notes[0]
    assert cap_new_tokens(9999, 256) == (256, ["max new tokens set to 256 (allowed: 1 to 256; asked for 9999)."])
    assert cap_new_tokens(0, 256)[0] == 1 and cap_new_tokens(12, 256) == (12, [])

    engine = make_engine(max_new_tokens_cap=5)
    studio = Studio(engine, StudioData.load(assets, [(a.name, a.source) for a in engine.pool.adapters]), HashEmbedder())
    *_, (_, view) = generate_stream(studio, "one two " * 600, Controls(), Sampling(max_new_tokens=50), compare=False)
    assert len(view.routing.prompt) == MAX_PROMPT_CHARS
    assert any("cut to its first" in n for n in view.notes) and any("set to 5" in n for n in view.notes)
    assert len(view.figures["latency"].data[0].x) <= 5


def test_reroute_keeps_the_answer_and_says_it_is_stale(studio):
    actions = Actions(studio)
    *_, final = actions.generate("what is two + three ?", *page_generate())
    previous = final[-1]
    assert isinstance(previous, Shown) and previous.base is not None and previous.base.mixture == {}
    _, heatmap, _, status, shown, marks = actions.reroute("what is two + three ?", *page_route(k=1), previous, None)
    assert len(shown.routing.selected) == 1 and shown.generation == previous.generation
    assert "click **Generate**" in status
    assert heatmap == gr.skip() and marks["heatmap"]["meta"]["k"] == 1  # only the selection changed: only its boxes
    _, heatmap, *_ = actions.reroute("what is two + three ?", *page_route(k=1, block=2), previous, None)
    assert heatmap.layout.width  # the heatmap keeps its width: its column scrolls sideways on a phone
    view = view_of_shown(studio, shown)  # what an export draws: the new routing, the earlier answer's latency
    assert view.answer == previous.generation.text and view.base == previous.base
    assert len(view.figures["latency"].data) >= 2


def test_exports(studio, monkeypatch):
    *_, (_, view) = generate_stream(studio, "what is two + three ?", Controls(), Sampling("fused", 4))
    html = export_view(view, "html")
    assert [Path(p).name for p in html] == ["signal_heatmap.html", "weight_similarity.html", "latency.html"]
    assert "plotly" in Path(html[0]).read_text()[:200_000].lower()
    (csv,) = export_view(view, "csv")
    pd.testing.assert_frame_equal(pd.read_csv(csv), view.table, check_dtype=False)
    metadata = export_metadata_of(studio, view)
    one, beside = export_view(view, "latency", fmt="html", titles=False, metadata=metadata)
    assert Path(one).name == "latency.html" and Path(beside).name == "metadata.json"
    recorded = read_metadata(one)
    assert recorded["prompt"] == "what is two + three ?" and recorded["answer"] == view.generation.text
    assert recorded["settings"]["routing"]["k"] == view.routing.config["k"]
    assert set(recorded["adapters"]) == set(studio.engine.adapter_names)
    assert json.loads(Path(beside).read_text())["prompt"] == recorded["prompt"]
    monkeypatch.setattr("analysis.export.png_export_available", lambda: (False, "no Chromium in this test"))
    (bundle,) = export_view(view, "zip", fmt="html", metadata=metadata)
    with zipfile.ZipFile(bundle) as archive:
        assert {"latency.html", "routing.csv", "metadata.json"} <= set(archive.namelist())
    with pytest.raises(gr.Error, match="Nothing to export"):
        Actions(studio).export(None, "heatmap", "png", 2, True)


def test_gpu_handlers_use_spaces_only_when_importable(monkeypatch):
    wrapped = []
    monkeypatch.setitem(sys.modules, "spaces", types.SimpleNamespace(GPU=lambda fn: wrapped.append(fn) or fn))
    assert on_gpu(len) is len and wrapped == [len]  # ZeroGPU: spaces.GPU(fn)
    monkeypatch.setitem(sys.modules, "spaces", None)  # `import spaces` raises ImportError
    assert on_gpu(len) is len and wrapped == [len]


def test_probe_modules_are_those_every_adapter_adapts(engine):
    assert probe_modules(engine) == ["self_attn.q_proj"]  # gamma and epsilon skip k/v/o or k/v


# ---------------------------------------------------------------- app.py


def _load_app_py():
    spec = importlib.util.spec_from_file_location("logo_studio_app", REPO / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_app_py_import_builds_nothing(monkeypatch):
    monkeypatch.setattr(LoGoEngine, "__init__", lambda *a, **k: pytest.fail("importing app.py built an engine"))
    module = _load_app_py()
    assert callable(module.main)


def test_app_without_adapters_names_the_directory_and_the_fix(tmp_path, monkeypatch):
    module = _load_app_py()
    missing = tmp_path / "no-adapters"
    monkeypatch.setenv("LOGO_ADAPTERS", str(missing))
    with pytest.raises(SystemExit, match=f"{missing}.*make zoo.*LOGO_ADAPTERS"):
        module.main()
    config = module.engine_config_from_env({"LOGO_ADAPTERS": f"{tmp_path}, org/hub-adapter", "LOGO_BASE_MODEL": "tiny"})
    assert config.adapters == (str(tmp_path), "org/hub-adapter") and config.base_model == "tiny"
    assert config.reference_prompts == GENERIC_REFERENCE_PROMPTS  # a foreign pool: the generic set


def test_app_calibrates_the_zoo_on_its_own_sample_inputs_unless_told_otherwise(tmp_path):
    module = _load_app_py()
    assert module.engine_config_from_env({}).reference_prompts == REFERENCE_PROMPTS  # the zoo's own samples
    mine = tmp_path / "mine.txt"
    mine.write_text("a prompt\n")
    assert module.engine_config_from_env({"LOGO_REFERENCE_PROMPTS": str(mine)}).reference_prompts == mine
    with pytest.raises(SystemExit, match=r"LOGO_REFERENCE_PROMPTS=.*not a file"):
        module.engine_config_from_env({"LOGO_REFERENCE_PROMPTS": str(tmp_path / "missing.txt")})


def test_app_weight_format_comes_from_logo_dtype():
    module = _load_app_py()
    assert module.engine_config_from_env({}).dtype == "auto"
    assert module.engine_config_from_env({"LOGO_DTYPE": "float32"}).dtype == "float32"
    with pytest.raises(SystemExit, match=r"LOGO_DTYPE: .*'fp8'.*float32"):
        module.engine_config_from_env({"LOGO_DTYPE": "fp8"})


# ---------------------------------------------------------------- a launched server


@pytest.fixture(scope="module")
def served(tiny_world, assets, tmp_path_factory):
    engine = tiny_engine(tiny_world, tmp_path_factory.mktemp("cache"), max_prompt_tokens=200)
    demo = build_demo(engine, examples=EXAMPLES, assets_dir=assets, embedder=HashEmbedder(), concurrency=4)
    port = free_port()
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True, **launch_options())
    try:
        yield engine, Client(f"http://127.0.0.1:{port}/", verbose=False)
    finally:
        demo.close()


def _settings(**changes) -> list:
    return list({**SETTINGS, **changes}.values())


def _named(**changes) -> dict:
    """The API's named routing parameters: SETTINGS (the paper's method) with `changes`; block counted from the end."""
    named = {**SETTINGS, "block": -1, **changes}
    return named


def test_api_has_named_parameters(served):
    _, client = served
    info = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    route = [p["parameter_name"] for p in info["/route"]["parameters"]]
    assert route[: 1 + len(SETTINGS)] == ["prompt", *SETTINGS] and not any(name.startswith("param_") for name in route)
    assert "sampling_temperature" in [p["parameter_name"] for p in info["/generate"]["parameters"]]
    page_events = {"/reroute", "/page_route", "/export_html", "/pick_example", "/preset", "/card"}
    assert not page_events & set(info)  # the page's own events are private


def test_route_endpoint_returns_the_engines_raw_numbers(served):
    engine, client = served
    prompt = "sort the words cat dog bird"
    result = client.predict(prompt, **_named(signal="entropy", k=2), api_name="/route")
    expected = engine.route(prompt, RoutingConfig.preset("paper", signal="entropy", k=2))[0]
    assert result["selected"] == list(expected.selected)
    assert result["weights"] == pytest.approx(list(expected.weights))
    assert result["signals"] == pytest.approx(expected.signal_by_adapter)
    assert result["scores"] == pytest.approx(expected.score_by_adapter)
    assert result["config"]["signal"] == "entropy" and result["config"]["k"] == 2
    default = client.predict(prompt, api_name="/route")  # every parameter but the prompt has the engine's default
    assert default["selected"] == list(engine.route(prompt, RoutingConfig())[0].selected)


def test_generate_endpoint_equals_engine_generate(served):
    engine, client = served
    prompt = "what is two + three ?"
    result = client.predict(prompt, **_named(k=2), mode="fused", max_new_tokens=8, api_name="/generate")
    alone = engine.generate(
        prompt, RoutingConfig.preset("paper", k=2), GenerationConfig(mode="fused", max_new_tokens=8)
    )
    assert result["text"] == alone.text and result["selected"] == list(alone.mixture)
    assert result["n_tokens"] == alone.n_tokens and result["timings"]["total_ms"] > 0


def test_errors_are_shown_and_the_server_keeps_serving(served):
    _, client = served
    with pytest.raises(Exception, match="Type a prompt"):
        client.predict("", api_name="/route")
    with pytest.raises(Exception, match="over the limit of 200"):  # the engine refuses, the page says why
        client.predict("one two " * 150, max_new_tokens=4, api_name="/generate")
    assert isinstance(client.predict("what is two + three ?", max_new_tokens=4, api_name="/generate")["text"], str)


def test_web_api_accepts_whole_floats_and_refuses_fractions(served):
    """A JSON client may send k=3.0 (it is 3); k=2.7 was silently 2, and a lone surrogate a raw UnicodeEncodeError."""
    _, client = served
    prompt = "sort the words cat dog bird"
    as_float = client.predict(prompt, **_named(k=3.0, block=-1.0), api_name="/route")["selected"]
    assert as_float == client.predict(prompt, **_named(k=3), api_name="/route")["selected"]
    with pytest.raises(AppError, match=r"k must be a positive integer .*got 2\.7: it is not a whole number"):
        client.predict(prompt, **_named(k=2.7), api_name="/route")
    with pytest.raises(AppError, match=r"max new tokens must be an integer, got 2\.5"):
        client.predict(prompt, max_new_tokens=2.5, api_name="/generate")
    # gradio_client cannot encode a lone surrogate, but a JSON body can carry one as an escape
    body = json.dumps({"data": ["caf\udce9", *_settings(), None, None]})  # ensure_ascii: "\\udce9"
    base = client.src.rstrip("/")
    event = httpx.post(f"{base}/gradio_api/call/route", content=body, headers={"content-type": "application/json"})
    stream = httpx.get(f"{base}/gradio_api/call/route/{event.json()['event_id']}", timeout=30).text
    assert "event: error" in stream and "a lone surrogate that is not valid Unicode" in stream, stream


def test_concurrent_requests_each_get_the_answer_they_get_alone(served, monkeypatch):
    """Mixture and fused requests with different routings overlap in the server; none sees another's merge."""
    engine, client = served
    running, peak, lock = [0], [0], threading.Lock()
    generate = engine.generate  # the public call the /generate endpoint makes

    def counted(*args, **kwargs):  # how many generations are inside the engine at once
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        try:
            return generate(*args, **kwargs)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(engine, "generate", counted)
    requests = [
        ("sort the words cat dog bird", {"k": 1}, "fused"),
        ("sort the words cat dog bird", {"signal": "entropy", "k": 2}, "mixture"),
        ("what is the capital of france ?", {"k": 3}, "fused"),
        ("what is the capital of france ?", {"k": 4, "aggregate": "mean"}, "mixture"),
        ("what is the capital of france ?", {"signal": "entropy", "calibration": "mean", "k": 2}, "fused"),
        ("translate the sentence to french", {"k": 5}, "mixture"),
        ("translate the sentence to french", {"calibration": "zscore", "k": 1}, "fused"),
        ("is the movie review positive or negative ?", {"signal": "entropy", "probe_input": "residual"}, "mixture"),
    ] * 2  # two rounds: probes of some requests overlap the decoding of others
    jobs = [
        client.submit(p, **_named(**changes), mode=mode, max_new_tokens=16, api_name="/generate")
        for p, changes, mode in requests
    ]
    answers = []
    for job, request in zip(jobs, requests, strict=True):
        try:
            answers.append(job.result(timeout=60)["text"])
        except AppError as err:  # report which request failed, not just the first traceback
            pytest.fail(f"concurrent request {request} failed: {err}")
    for (prompt, changes, mode), answer in zip(requests, answers, strict=True):
        routing = Controls(**{**SETTINGS, **changes}).routing(4)
        alone = generate(prompt, routing, GenerationConfig(mode=mode, max_new_tokens=16))
        assert answer == alone.text, (prompt, changes, mode)
    assert len(set(answers)) > 1  # the routings really differ
    assert peak[0] >= 2, "the requests never overlapped: the test proves nothing"


def test_uploads_over_the_limit_are_refused(served):
    """/gradio_api/upload takes one adapter upload at most (it took anything anonymously)."""
    _, client = served
    url = f"{client.src.rstrip('/')}/gradio_api/upload"
    small = httpx.post(url, files={"files": ("note.txt", b"x" * 10_000)}, timeout=30)
    assert small.status_code == 200, small.text
    large = httpx.post(url, files={"files": ("big.bin", b"x" * (UPLOAD_MAX_BYTES + 1))}, timeout=60)
    assert large.status_code == 413 and f"maximum allowed size of {UPLOAD_MAX_BYTES} bytes" in large.text, large.text


def test_launch_bounds_sessions_and_uploads():
    options = launch_options()
    assert options["max_file_size"] == UPLOAD_MAX_BYTES and options["state_session_capacity"] == 64


def test_session_state_holds_no_figures(studio):
    """Gradio keeps each session's state: a Shown of plain values, not the figures (they are drawn for exports)."""
    *_, final = Actions(studio).generate("what is two + three ?", *page_generate())
    shown = final[-1]
    assert isinstance(shown, Shown) and set(vars(shown)) == {
        "routing",
        "generation",
        "base",
        "manual",
        "manual_label",
        "drawn",
    }
    assert len(pickle.dumps(shown)) < 5_000


def test_a_settings_change_that_changes_nothing_resends_nothing(studio):
    actions = Actions(studio)
    *_, shown, _ = actions.route("sort the words cat dog bird", *page_route(), None)
    table, heatmap, scatter, _, again, marks = actions.reroute(
        "sort the words cat dog bird", *page_route(), shown, None
    )
    assert (table, heatmap, scatter, marks) == (gr.skip(), gr.skip(), gr.skip(), None)
    assert again.routing.selected == shown.routing.selected
    table, heatmap, scatter, *_, marks = actions.reroute("sort the words cat dog bird", *page_route(k=1), shown, None)
    assert len(table.data) == 5  # k changed: the table is sent, the heatmap's boxes and the scatter's prompt layer only
    assert (heatmap, scatter) == (gr.skip(), gr.skip()) and marks["heatmap"]["meta"]["k"] == 1
    assert [t["name"] for t in marks["scatter"]["traces"]] == [PROMPT_TRACE]
    # a cleared prompt shows the dataset plots; routing the same prompt again must draw it again
    _, dataset_heatmap, dataset_scatter, _, cleared, _ = actions.reroute("", *page_route(), shown, None)
    assert dataset_heatmap is actions.dataset_figures(PAPER)["signal_heatmap"] and dataset_scatter.data
    table, heatmap, *_, marks = actions.reroute("sort the words cat dog bird", *page_route(), cleared, None)
    assert len(table.data) == 5 and heatmap.data and marks is None


def as_json(figure) -> dict:
    return json.loads(json.dumps(figure.to_plotly_json() if isinstance(figure, go.Figure) else figure, default=str))


def test_selection_marks_turn_the_plots_on_screen_into_the_new_ones(studio):
    """When only the selection changes, the page keeps its heatmap and scatter and takes the heatmap's new shapes
    and meta and the scatter's prompt layer: that must give exactly the plots a full redraw would have sent
    (nothing else in them depends on the selection). plots.js does the same: the scatter keeps its first `kept`
    traces and its template."""
    actions = Actions(studio)
    prompt = "sort the words cat dog bird"
    *_, shown, _ = actions.route(prompt, *page_route(k=3), None)
    _, heatmap, scatter, *_ = actions.route(prompt, *page_route(k=3), None)
    before, on_screen = as_json(heatmap), json.loads(scatter.to_json())
    changes = ({"k": 1}, {"k": 2, "weighting": "softmax"}, {"temperature": 0.3, "weighting": "softmax"}, {"k": 4})
    for change in changes:
        _, skipped, kept, *_, marks = actions.reroute(prompt, *page_route(**change), shown, None)
        _, full_heatmap, full_scatter, *_ = actions.route(prompt, *page_route(**change), None)
        assert (skipped, kept) == (gr.skip(), gr.skip()), change
        patched = {**before, "layout": {**before["layout"], **marks["heatmap"]}}
        assert patched == as_json(full_heatmap), change
        layer = marks["scatter"]
        data = [*on_screen["data"][: layer["kept"]], *layer["traces"]]
        patched = {"data": data, "layout": {**layer["layout"], "template": on_screen["layout"]["template"]}}
        assert patched == json.loads(full_scatter.to_json()), change
        assert len(layer["traces"][0]["text"]) == len(marks["heatmap"]["meta"]["selected"]), change
    selected = [s for s in marks["heatmap"]["shapes"] if s["line"]["color"] == SELECTED]
    assert len(selected) == len(marks["heatmap"]["meta"]["selected"]) > 0


def test_a_selection_only_reroute_builds_no_figure_and_exports_still_draw_them(studio, monkeypatch):
    """The marks come from the cached layers and this prompt's trace alone; an export after such a re-route
    draws the full figures of the routing it kept (they are built when read: LazyFigures)."""
    actions = Actions(studio)
    prompt = "sort the words cat dog bird"
    *_, shown, _ = actions.route(prompt, *page_route(k=3), None)

    def refused(*_args, **_kwargs):
        raise AssertionError("a selection-only re-route built a whole figure")

    with monkeypatch.context() as patch:
        patch.setattr("app.ui_handlers.heatmap_figure", refused)
        patch.setattr("app.ui_handlers.scatter_figure", refused)
        *_, kept, marks = actions.reroute(prompt, *page_route(k=1), shown, None)
    assert marks["heatmap"]["meta"]["selected"] == list(kept.routing.selected) and marks["scatter"]["traces"]
    view = view_of_shown(studio, kept)
    full = route_view(studio, prompt, replace(PAPER, k=1))
    for name in ("signal_heatmap", "weight_similarity"):
        assert as_json(view.figures[name]) == as_json(full.figures[name]), name


@pytest.mark.parametrize(
    ("prompt", "change", "scatter_sent"),
    [
        ("what is two + three ?", {}, True),  # another prompt: other similarities, other scores
        ("sort the words cat dog bird", {"calibration": "mean"}, True),  # another method's evaluation layer
        ("sort the words cat dog bird", {"signal": "entropy"}, True),
        ("sort the words cat dog bird", {"k": 1}, False),
    ],
)
def test_the_scatter_is_kept_only_for_the_same_prompt_and_method(studio, prompt, change, scatter_sent):
    actions = Actions(studio)
    *_, shown, _ = actions.route("sort the words cat dog bird", *page_route(), None)
    _, _, scatter, *_, marks = actions.reroute(prompt, *page_route(**change), shown, None)
    if scatter_sent:
        assert scatter.data and (marks is None or marks["scatter"] is None)
    else:
        assert scatter == gr.skip() and marks["scatter"]["kept"] == 2  # the density and its least-squares line


def test_a_scatter_without_an_evaluation_layer_is_always_sent_whole():
    bare = ui_figures.scatter_figure(None, "no evaluation results committed yet", None)
    assert ui_figures.prompt_layer(bare) is None


def test_cached_figure_layers_draw_what_a_fresh_build_draws(studio, engine, assets):
    """A re-route reuses the heatmap without its selection and the scatter's evaluation layer (Studio.figures):
    every figure it draws equals the one a Studio without any cache builds from scratch, for new scores too."""
    prompt = "sort the words cat dog bird"
    data = studio.data
    for controls in (replace(PAPER, k=1), replace(PAPER, k=3), replace(PAPER, k=2, weighting="softmax"), Controls()):
        cached = route_view(studio, prompt, controls).figures
        fresh = route_view(Studio(engine, data, HashEmbedder()), prompt, controls).figures
        for name in ("signal_heatmap", "weight_similarity"):
            assert json.loads(cached[name].to_json()) == json.loads(fresh[name].to_json()), (name, controls)
    assert len(studio.figures._layers) == 2 + 2  # a heatmap per probe setting, a scatter per method: built once each
    heatmap = route_view(studio, prompt, replace(PAPER, k=1)).figures["signal_heatmap"]
    assert heatmap.layout.meta["selected"] == list(route_view(studio, prompt, replace(PAPER, k=1)).routing.selected)
    assert len([s for s in heatmap.layout.shapes if s.y0 == 0 and s.y1 == 1]) == 1  # the copy was not changed


def test_adapter_map_is_drawn_from_the_committed_csv_with_every_zoo_adapter():
    """The page's adapter map: assets/results/routing_v2/adapter_map.csv, one point per zoo adapter at its CSV
    coordinates, one trace per category, for both projections."""
    coords = StudioData.load(DEFAULT_ASSETS_DIR, []).adapter_map
    zoo = {path.parent.name for path in ADAPTERS_DIR.glob("*/adapter_config.json")}
    assert len(zoo) >= 27 and set(coords.index) == zoo
    maps = adapter_map_figures(coords)
    assert list(maps) == list(MAP_METHODS)
    for label, method in MAP_METHODS.items():
        fig = maps[label]
        assert {trace.name for trace in fig.data} == set(coords["category"])
        points = {name: (x, y) for trace in fig.data for name, x, y in zip(trace.text, trace.x, trace.y, strict=True)}
        assert set(points) == zoo
        for name, (x, y) in points.items():
            assert (x, y) == (coords.loc[name, f"{method}_x"], coords.loc[name, f"{method}_y"]), name
            assert coords.loc[name, "category"] in {t.name for t in fig.data if name in t.text}


def test_adapter_map_missing_is_said_in_the_page(engine, assets):
    assert StudioData.load(assets, []).adapter_map is None  # the tiny assets commit no map
    demo = build_demo(engine, examples=EXAMPLES, assets_dir=assets, embedder=HashEmbedder(), warm_up=False)
    plot = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "plot-map")
    assert "no adapter map committed yet" in json.dumps(plot.value)


def test_uncached_calibration_is_announced_before_it_is_computed(studio, engine, make_engine, monkeypatch):
    """A probe setting without cached calibration statistics says so at once (a toast, before the probe passes),
    and the status says when they are computed; the same setting again computes and says nothing."""
    said = []
    probe = Controls(**{**SETTINGS, "calibration": "zscore", "block": 2}).routing(studio.n_blocks).probe
    monkeypatch.setattr(gr, "Info", lambda message, **_: said.append((message, engine.calibration_cached(probe))))
    actions, n_prompts = Actions(studio), len(engine.reference_set()[0])
    monkeypatch.setattr(logo.engine, "PROBE_BATCH", 4)  # the tiny reference set (6 prompts) in two probe batches
    steps = []  # what the page's progress bar is told: (done, total) of the reference prompts, per probe batch
    progress = lambda done_total, desc, unit: steps.append((done_total, desc, unit))  # noqa: E731
    route = page_route(calibration="zscore", block=2)
    *_, status, _, _ = actions.route("sort the words cat dog bird", *route, None, progress=progress)
    assert [done_total for done_total, *_ in steps] == [(4, n_prompts), (n_prompts, n_prompts)]
    assert {tuple(rest) for _, *rest in steps} == {("calibration statistics for block 2", "reference prompts")}
    assert said == [
        (
            f"Computing calibration statistics for block 2 ({n_prompts} reference prompts): once per probe setting, "
            f"a minute or two on a CPU; later routes reuse them.",
            False,  # said before they were computed
        )
    ]
    assert f"Calibration statistics for block 2 computed ({n_prompts} reference prompts) and cached." in status
    assert engine.calibration_cached(probe) and make_engine().calibration_cached(probe)  # in memory and on disk
    *_, status, _, _ = actions.reroute(
        "sort the words cat dog bird", *page_route(calibration="mean", block=2), None, None
    )
    assert len(said) == 1 and "Calibration statistics" not in status  # the same probe: nothing to compute
    actions.route("sort the words cat dog bird", *page_route(block=1), None)  # no calibration: nothing to compute
    assert len(said) == 1
    first, *_ = actions.generate("sort the words cat dog bird", *page_generate(calibration="zscore", block=1))
    assert len(said) == 2 and "block 1" in said[1][0] and first[7].startswith("⏳ computing calibration statistics")


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
