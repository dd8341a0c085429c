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
from dataclasses import asdict
from pathlib import Path

import gradio as gr
import httpx
import numpy as np
import pandas as pd
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from analysis.similarity import TaskEmbedder
from app.ui import Actions, build_demo, launch_options, on_gpu, probe_modules
from app.ui_data import Example, StudioData, examples_from_tasks, read_tasks
from app.ui_handlers import (
    MAX_PROMPT_CHARS,
    TABLE_COLUMNS,
    Controls,
    EmptyPrompt,
    Shown,
    Studio,
    cap_new_tokens,
    clean_prompt,
    export_view,
    generate_stream,
    route_view,
    view_of_shown,
)
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
from zoo.data import REFERENCE_PROMPTS

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
}


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


def test_last_block_maps_to_the_default_probe(studio):
    assert Controls(block=studio.n_blocks - 1).routing(studio.n_blocks).probe.block == -1
    assert Controls(block=1).routing(studio.n_blocks).probe.block == 1


def test_controls_default_to_the_config_defaults():
    assert Controls().routing(n_blocks=4) == RoutingConfig()
    assert Controls(k=3.0, block=1.0).routing(4) == RoutingConfig(k=3).with_(block=1)  # sliders send floats


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


def test_figures_have_data(studio):
    view = route_view(studio, "sort the words cat dog bird", Controls(k=2))
    heatmap = view.figures["signal_heatmap"]
    z = np.asarray(heatmap.data[0].z, dtype=float)
    assert z.shape == (1 + 1 + len(TASKS), 5)  # this prompt, a blank band, the dataset's tasks
    assert np.isfinite(z[0]).all()
    scatter = view.figures["weight_similarity"]
    names = [trace.name for trace in scatter.data]
    assert "dataset" in names and "this prompt" in names
    highlight = next(t for t in scatter.data if t.name == "this prompt")
    assert list(highlight.x) == pytest.approx(list(view.routing.weights))
    assert all(-1.0 <= y <= 1.0 for y in highlight.y)

    *_, (answer, final) = generate_stream(studio, "sort the words cat dog bird", Controls(k=2), "mixture", 6)
    latency = final.figures["latency"]
    assert [t.name for t in latency.data] == ["LoGo (mixture, k=2)", "base model"]
    assert all(1 <= len(t.x) <= 6 and np.isfinite(t.y).all() for t in latency.data)
    assert final.answer == answer and "tokens" in final.stats


def test_a_large_evaluation_scatter_is_sampled(studio, monkeypatch):
    monkeypatch.setattr("app.ui_handlers.MAX_SCATTER_POINTS", 5)
    view = route_view(studio, "sort the words cat dog bird", Controls(k=2))
    dataset = next(t for t in view.figures["weight_similarity"].data if t.name == "dataset")
    assert len(dataset.x) == 5 and set(dataset.x) <= set(studio.data.weight_similarity["weight"])
    assert "5 of the evaluation set's 12 points" in view.figures["weight_similarity"].layout.title.subtitle.text


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
        actions.route("", *SETTINGS.values())
    with pytest.raises(gr.Error, match="Type a prompt"):
        list(actions.generate(" ", *SETTINGS.values(), "mixture", 8))
    table, heatmap, scatter, status, view = actions.reroute("", *SETTINGS.values(), None)  # toggling before typing:
    assert (table, scatter, status, view) == (gr.skip(),) * 4 and heatmap.data  # only the dataset heatmap changes


def test_caps_are_applied_with_a_message(make_engine, assets):
    prompt, notes = clean_prompt("two " * 1000)
    assert len(prompt) == MAX_PROMPT_CHARS and "cut to its first 2,000 characters" in notes[0]
    assert cap_new_tokens(9999, 256) == (256, ["max new tokens set to 256 (allowed: 1 to 256; asked for 9999)."])
    assert cap_new_tokens(0, 256)[0] == 1 and cap_new_tokens(12, 256) == (12, [])

    engine = make_engine(max_new_tokens_cap=5)
    studio = Studio(engine, StudioData.load(assets, [(a.name, a.source) for a in engine.pool.adapters]), HashEmbedder())
    *_, (_, view) = generate_stream(studio, "one two " * 600, Controls(), "mixture", 50)
    assert len(view.routing.prompt) == MAX_PROMPT_CHARS
    assert any("cut to its first" in n for n in view.notes) and any("set to 5" in n for n in view.notes)
    assert len(view.figures["latency"].data[0].x) <= 5


def test_reroute_keeps_the_answer_and_says_it_is_stale(studio):
    actions = Actions(studio)
    *_, final = actions.generate("what is two + three ?", *SETTINGS.values(), "mixture", 4)
    previous = final[-1]
    assert isinstance(previous, Shown) and previous.generation.text == final[0]
    _, heatmap, _, status, shown = actions.reroute("what is two + three ?", *_settings(k=1), previous)
    assert len(shown.routing.selected) == 1 and shown.generation == previous.generation
    assert "click **Generate**" in status
    assert heatmap.layout.width is None  # the displayed copy fills its column
    view = view_of_shown(studio, shown)  # what an export draws: the new routing, the earlier answer's latency
    assert view.answer == final[0] and len(view.figures["latency"].data) == 2


def test_exports(studio, monkeypatch):
    *_, (_, view) = generate_stream(studio, "what is two + three ?", Controls(), "fused", 4)
    html = export_view(view, "html")
    assert [Path(p).name for p in html] == ["signal_heatmap.html", "weight_similarity.html", "latency.html"]
    assert "plotly" in Path(html[0]).read_text()[:200_000].lower()
    (csv,) = export_view(view, "csv")
    pd.testing.assert_frame_equal(pd.read_csv(csv), view.table, check_dtype=False)
    monkeypatch.setattr("analysis.export.png_export_available", lambda: (False, "no Chromium in this test"))
    (bundle,) = export_view(view, "zip")
    with zipfile.ZipFile(bundle) as archive:
        assert {"latency.html", "routing.csv", "PNG_SKIPPED.txt"} <= set(archive.namelist())
    with pytest.raises(gr.Error, match="Nothing to export"):
        Actions(studio).export("csv")(None)


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


# SETTINGS hold the paper's signal and probe; the UI has no weighting control, so RoutingConfig's defaults apply
WEIGHTING = {"weighting": RoutingConfig().weighting, "temperature": RoutingConfig().temperature}


def _settings(**changes) -> list:
    return list({**SETTINGS, **changes}.values())


def test_route_endpoint_equals_engine_route(served):
    engine, client = served
    prompt = "sort the words cat dog bird"
    table, heatmap, scatter, status = client.predict(prompt, *_settings(signal="entropy", k=2), api_name="/route")
    expected = engine.route(prompt, RoutingConfig.preset("paper", signal="entropy", k=2, **WEIGHTING))[0]
    frame = pd.DataFrame(table["data"], columns=table["headers"])
    assert set(frame.loc[frame["selected"] == "✓", "adapter"]) == set(expected.selected)
    signals = dict(zip(frame["adapter"], frame["signal"], strict=True))
    assert signals == pytest.approx(expected.signal_by_adapter, rel=1e-3)
    weights = {**dict.fromkeys(expected.adapters, 0.0), **expected.mixture}
    assert dict(zip(frame["adapter"], frame["weight"], strict=True)) == pytest.approx(weights, abs=1e-3)
    assert heatmap and scatter and status == ""


def test_generate_endpoint_equals_engine_generate(served):
    engine, client = served
    prompt = "what is two + three ?"
    answer, *_, status = client.predict(prompt, *_settings(k=2), "fused", 8, api_name="/generate")
    alone = engine.generate(
        prompt, RoutingConfig.preset("paper", k=2, **WEIGHTING), GenerationConfig(mode="fused", max_new_tokens=8)
    )
    assert answer == alone.text and "tokens" in status


def test_errors_are_shown_and_the_server_keeps_serving(served):
    _, client = served
    with pytest.raises(Exception, match="Type a prompt"):
        client.predict("", *_settings(), api_name="/route")
    with pytest.raises(Exception, match="over the limit of 200"):  # the engine refuses, the page says why
        client.predict("one two " * 150, *_settings(), "mixture", 4, api_name="/generate")
    answer, *_ = client.predict("what is two + three ?", *_settings(), "mixture", 4, api_name="/generate")
    assert isinstance(answer, str)


def test_web_api_accepts_whole_floats_and_refuses_fractions(served):
    """A JSON client may send k=3.0 (it is 3); k=2.7 was silently 2, and a lone surrogate a raw UnicodeEncodeError."""
    _, client = served
    prompt = "sort the words cat dog bird"
    as_float = client.predict(prompt, *_settings(k=3.0, block=3.0), api_name="/route")[0]
    assert as_float == client.predict(prompt, *_settings(k=3), api_name="/route")[0]
    with pytest.raises(AppError, match=r"k must be a positive integer .*got 2\.7: it is not a whole number"):
        client.predict(prompt, *_settings(k=2.7), api_name="/route")
    with pytest.raises(AppError, match=r"max new tokens must be an integer, got 2\.5"):
        client.predict(prompt, *_settings(), "mixture", 2.5, api_name="/generate")
    # gradio_client cannot encode a lone surrogate, but a JSON body can carry one as an escape
    body = json.dumps({"data": ["caf\udce9", *_settings()]})  # ensure_ascii: "\\udce9"
    base = client.src.rstrip("/")
    event = httpx.post(f"{base}/gradio_api/call/route", content=body, headers={"content-type": "application/json"})
    stream = httpx.get(f"{base}/gradio_api/call/route/{event.json()['event_id']}", timeout=30).text
    assert "event: error" in stream and "a lone surrogate that is not valid Unicode" in stream, stream


def test_concurrent_requests_each_get_the_answer_they_get_alone(served, monkeypatch):
    """Mixture and fused requests with different routings overlap in the server; none sees another's merge."""
    engine, client = served
    running, peak, lock = [0], [0], threading.Lock()
    run = engine._run

    def counted(*args, **kwargs):  # how many generations are inside the engine at once
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        try:
            return run(*args, **kwargs)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(engine, "_run", counted)
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
    jobs = [client.submit(p, *_settings(**changes), mode, 16, api_name="/generate") for p, changes, mode in requests]
    answers = []
    for job, request in zip(jobs, requests, strict=True):
        try:
            answers.append(job.result(timeout=60)[0])
        except AppError as err:  # report which request failed, not just the first traceback
            pytest.fail(f"concurrent request {request} failed: {err}")
    for (prompt, changes, mode), answer in zip(requests, answers, strict=True):
        routing = Controls(**{**SETTINGS, **changes}).routing(4)
        alone = engine.generate(prompt, routing, GenerationConfig(mode=mode, max_new_tokens=16))
        assert answer == alone.text, (prompt, changes, mode)
    assert len(set(answers)) > 1  # the routings really differ
    assert peak[0] >= 2, "the requests never overlapped: the test proves nothing"


def test_uploads_over_the_limit_are_refused(served):
    """/gradio_api/upload took a 5 MB anonymous file although the page has no file input."""
    _, client = served
    url = f"{client.src.rstrip('/')}/gradio_api/upload"
    small = httpx.post(url, files={"files": ("note.txt", b"x" * 10_000)}, timeout=30)
    assert small.status_code == 200, small.text
    large = httpx.post(url, files={"files": ("big.bin", b"x" * 2_000_000)}, timeout=30)
    assert large.status_code == 413 and "maximum allowed size of 1048576 bytes" in large.text, large.text


def test_launch_bounds_sessions_and_uploads():
    options = launch_options()
    assert options["max_file_size"] == "1mb" and options["state_session_capacity"] == 64


def test_session_state_holds_no_figures(studio):
    """Gradio keeps each session's state: a Shown of plain values, not the figures (they are drawn for exports)."""
    *_, final = Actions(studio).generate("what is two + three ?", *SETTINGS.values(), "mixture", 4)
    shown = final[-1]
    assert isinstance(shown, Shown) and set(vars(shown)) == {"routing", "generation", "drawn"}
    assert len(pickle.dumps(shown)) < 5_000


def test_a_settings_change_that_changes_nothing_resends_nothing(studio):
    actions = Actions(studio)
    *_, shown = actions.route("sort the words cat dog bird", *SETTINGS.values())
    table, heatmap, scatter, _, again = actions.reroute("sort the words cat dog bird", *SETTINGS.values(), shown)
    assert (table, heatmap, scatter) == (gr.skip(),) * 3 and again.routing.selected == shown.routing.selected
    table, heatmap, *_ = actions.reroute("sort the words cat dog bird", *_settings(k=1), shown)
    assert len(table) == 5 and heatmap.data  # k changed: table and plots are sent
    # a cleared prompt shows the dataset plots; routing the same prompt again must draw it again
    _, dataset_heatmap, dataset_scatter, _, cleared = actions.reroute("", *SETTINGS.values(), shown)
    assert dataset_heatmap is actions.dataset_figures("norm")["signal_heatmap"] and dataset_scatter.data
    table, heatmap, *_ = actions.reroute("sort the words cat dog bird", *SETTINGS.values(), cleared)
    assert len(table) == 5 and heatmap.data


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
