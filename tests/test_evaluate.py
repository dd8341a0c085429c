"""The evaluation harness end to end on the tiny world: every method, leave-one-out, resumption, summary tables."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from analysis.evaluate import Cell, collect, plan, run_cell, write_summary
from analysis.methods import METHODS, ROUTED, EvalContext
from zoo.data import load_tasks

TASKS = {  # named after the tiny world's adapters, so each pool task has an "own" adapter
    "alpha": ("reasoning", False, [("count one two", "two"), ("count three four five", "three")]),
    "beta": ("translation", False, [("translate the cat", "le chat"), ("translate the dog", "le chien")]),
    "gamma": ("cbqa", False, [("capital of france ?", "paris"), ("capital of germany ?", "berlin")]),
    "delta": ("nli", False, [("the cat is a bird ?", "no"), ("the dog is a dog ?", "yes")]),
    "epsilon": ("code", False, [("def sum ( list )", "sum"), ("print len ( words )", "len")]),
    "zeta": (
        "classification",
        True,
        [("is the movie good ?", ["positive", "good"]), ("is the review bad ?", "negative")],
    ),
}


class StubEmbedder:
    """Bag-of-words vectors: enough to exercise the retrieval logic without MiniLM."""

    def embed(self, texts):
        import numpy as np

        from tests.tiny import WORDS

        vocab = {w: i for i, w in enumerate(WORDS)}
        out = np.zeros((len(texts), len(vocab)), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.split():
                if word in vocab:
                    out[row, vocab[word]] += 1
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)

    def task_centroid(self, texts):
        import numpy as np

        c = self.embed(texts).mean(axis=0)
        return c / max(float(np.linalg.norm(c)), 1e-9)


@pytest.fixture
def tasks_dir(tmp_path):
    root = tmp_path / "tasks"
    for name, (category, held_out, rows) in TASKS.items():
        folder = root / name
        folder.mkdir(parents=True)
        meta = {
            "name": name,
            "category": category,
            "description": f"{name} task.",
            "instruction": "please answer :",
            "metric": "exact_match",
            "held_out": held_out,
            "source": "test",
        }
        (folder / "task.json").write_text(json.dumps(meta))
        lines = "".join(json.dumps({"input": i, "target": t}) + "\n" for i, t in rows)
        for split in ("dev", "test"):
            (folder / f"{split}.jsonl").write_text(lines)
    return root


@pytest.fixture
def ctx(make_engine, tasks_dir, tiny_world):
    from analysis.baselines import ArrowBaseline

    context = EvalContext(make_engine(), k=2, batch_size=2, tasks_dir=tasks_dir)
    context.__dict__["embedder"] = StubEmbedder()  # cached_property: the stub replaces MiniLM
    # Arrow needs its own copy of the base model; the tiny one cannot be loaded by name
    context.__dict__["arrow"] = ArrowBaseline(context.engine, k=2, base=tiny_world.base())
    return context


def test_plan_covers_both_settings_with_leave_one_out(tasks_dir):
    tasks = load_tasks(tasks_dir)
    cells = plan(tasks, ["base", "oracle", "logo_norm"], ["in_pool", "held_out"])
    in_pool = [c for c in cells if c.setting == "in_pool"]
    held = [c for c in cells if c.setting == "held_out"]
    assert {c.task.name for c in in_pool} == {"alpha", "beta", "gamma", "delta", "epsilon"}
    assert {c.task.name for c in held} == {"alpha", "beta", "gamma", "delta", "epsilon", "zeta"}
    assert not any(c.method == "oracle" for c in held)
    by_name = {t.name: t for t in tasks}
    assert Cell("held_out", "logo_norm", by_name["alpha"]).exclude == ["alpha"]
    assert Cell("held_out", "logo_norm", by_name["zeta"]).exclude == []  # held out: no own adapter to drop


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_runs_end_to_end(ctx, tasks_dir, tmp_path, method):
    task = {t.name: t for t in load_tasks(tasks_dir)}["beta"]
    for setting in ("in_pool", "held_out"):
        if setting == "held_out" and method == "oracle":
            continue
        cell = Cell(setting, method, task)
        run_cell(ctx, cell, None, tmp_path / "runs")
        records = [json.loads(line) for line in cell.path(tmp_path / "runs").read_text().splitlines()]
        assert len(records) == 2 and all(r["score"] in (0.0, 100.0) for r in records)
        if setting == "held_out":
            assert all("beta" not in r["selected"] for r in records)  # leave-one-out
    if method == "oracle":
        assert records[0]["selected"] == ["beta"]
    if method.startswith("logo_") or method in ROUTED:
        assert set(records[0]["signals"]) == set(ctx.engine.adapter_names)  # excluded adapters are scored too
        assert len(records[0]["selected"]) == 2 and sum(records[0]["weights"]) == pytest.approx(1.0)


def test_logo_method_uses_the_engine_routing(ctx, tasks_dir, tmp_path):
    from logo.config import RoutingConfig

    task = {t.name: t for t in load_tasks(tasks_dir)}["gamma"]
    run_cell(ctx, Cell("in_pool", "logo_entropy", task), None, tmp_path)
    lines = Cell("in_pool", "logo_entropy", task).path(tmp_path).read_text().splitlines()
    records = [json.loads(line) for line in lines]
    routed = ctx.engine.route(
        [task.prompt(r["input"]) for r in task.examples("test")], RoutingConfig.preset("paper", k=2, signal="entropy")
    )
    assert [r["selected"] for r in records] == [list(r.selected) for r in routed]
    weights = [w for r in records for w in r["weights"]]  # linear, as the committed logo_* rows were made
    assert weights == pytest.approx([w for r in routed for w in r.weights], abs=1e-6)


@pytest.mark.parametrize("preset", ROUTED)
def test_preset_methods_route_exactly_as_the_engine_and_record_their_reference(ctx, tasks_dir, tmp_path, preset):
    from logo.config import RoutingConfig

    task = {t.name: t for t in load_tasks(tasks_dir)}["gamma"]
    cell = Cell("in_pool", preset, task)
    run_cell(ctx, cell, None, tmp_path)
    records = [json.loads(line) for line in cell.path(tmp_path).read_text().splitlines()]
    prompts = [task.prompt(r["input"]) for r in task.examples("test")]
    routed = ctx.engine.route(prompts, RoutingConfig.preset(preset, k=2))
    assert [r["selected"] for r in records] == [list(r.selected) for r in routed]
    weights = [w for r in records for w in r["weights"]]
    assert weights == pytest.approx([w for r in routed for w in r.weights], abs=1e-6)
    info = records[0]["cell_info"]["routing"]
    assert info == routed[0].config  # the preset's every field and its calibration reference
    assert (info["reference"] is None) == (preset == "paper")  # the paper's raw signal needs none


def test_held_out_presets_calibrate_without_the_left_out_tasks_samples(tasks_dir, tiny_world, tmp_path):
    tasks = {t.name: t for t in load_tasks(tasks_dir)}

    def sample(task, row):  # as the zoo's reference file holds them: one line each, newlines as spaces
        return " ".join(task.prompt(row["input"]).split("\n"))

    samples = [sample(tasks[n], r) for n in ("alpha", "beta") for r in tasks[n].examples("dev", 4)]
    reference = tmp_path / "reference.txt"
    reference.write_text("\n".join(samples) + "\n")
    from logo.config import EngineConfig
    from logo.engine import LoGoEngine

    config = EngineConfig(
        base_model="tiny",
        adapters=(str(tiny_world.pool_dir),),
        device="cpu",
        cache_dir=tmp_path / "cache",
        reference_prompts=reference,
    )
    context = EvalContext(LoGoEngine(config, base=tiny_world.base()), k=2, tasks_dir=tasks_dir)
    assert context.pool_reference([]) is None  # in pool: the engine's own choice, exactly as the CLI
    kept = context.pool_reference(["beta"])
    assert kept == [sample(tasks["alpha"], r) for r in tasks["alpha"].examples("dev", 4)]
    run_cell(context, Cell("held_out", "recommended", tasks["beta"]), None, tmp_path / "runs")
    path = Cell("held_out", "recommended", tasks["beta"]).path(tmp_path / "runs")
    recorded = json.loads(path.read_text().splitlines()[0])["cell_info"]["routing"]["reference"]
    assert recorded["source"] == "given" and recorded["n_prompts"] == len(kept)


def test_resumption_skips_finished_cells_and_summaries_are_written(ctx, tasks_dir, tmp_path):
    tasks = load_tasks(tasks_dir)
    runs = tmp_path / "runs"
    cells = plan(tasks, ["base", "logo_norm"], ["in_pool"])
    run_cell(ctx, cells[0], None, runs)
    todo = [c for c in cells if not c.path(runs).is_file()]
    assert len(todo) == len(cells) - 1
    for cell in todo:
        run_cell(ctx, cell, None, runs)
    results, routing = collect(runs, {t.name: t for t in tasks}, k=2)
    assert set(results.columns) == {"setting", "method", "task", "category", "metric", "score", "n"}
    assert len(results) == 10 and (results.n == 2).all()
    assert set(routing.columns) == {"signal", "task", "top1_own_rate", "topk_own_rate", "n"}
    assert set(routing.signal) == {"norm"}
    write_summary(results, routing, tmp_path / "out")
    assert pd.read_csv(tmp_path / "out" / "results.csv").shape == (10, 7)
    table = (tmp_path / "out" / "results.md").read_text()
    assert "logo_norm" in table and "base" in table and "top-1" in table


def test_summarize_writes_intervals_and_paired_differences_from_the_runs(ctx, tasks_dir, tmp_path):
    from analysis.evaluate import main

    tasks = load_tasks(tasks_dir)
    runs = tmp_path / "runs"
    for cell in plan(tasks, ["base", "recommended"], ["in_pool"]):
        run_cell(ctx, cell, None, runs)
    out = tmp_path / "out"
    main(["--summarize", "--runs", str(runs), "--out", str(out), "--tasks-dir", str(tasks_dir), "--n-boot", "200"])
    results = pd.read_csv(out / "results.csv")
    assert {"ci_low", "ci_high"} <= set(results.columns) and len(results) == 10
    assert (results.ci_low <= results.score + 1e-6).all() and (results.score <= results.ci_high + 1e-6).all()
    table = pd.read_csv(out / "results_intervals.csv")
    assert set(table.scope) == {"task", "category", "avg"} and len(table[table.scope == "avg"]) == 2
    paired = pd.read_csv(out / "results_paired.csv")
    assert set(paired.baseline) == {"base"} and set(paired.reference) == {"recommended"}
    avg = paired[paired.scope == "avg"].iloc[0]
    means = table[table.scope == "avg"].set_index("method")["score"]
    assert avg.difference == pytest.approx(means["recommended"] - means["base"], abs=1e-3)
    assert "recommended minus each baseline" in (out / "results.md").read_text()


def test_packed_runs_unpack_to_the_same_results_without_signals(ctx, tasks_dir, tmp_path):
    import tarfile

    from analysis.evaluate import pack

    tasks = {t.name: t for t in load_tasks(tasks_dir)}
    runs = tmp_path / "runs"
    for cell in plan(list(tasks.values()), ["recommended"], ["in_pool", "held_out"]):
        run_cell(ctx, cell, None, runs)
    packed = pack(runs, tmp_path / "packed")
    assert [p.name for p in packed] == ["runs_held_out.tar.gz", "runs_in_pool.tar.gz"]
    unpacked = tmp_path / "unpacked"
    for path in packed:
        with tarfile.open(path) as archive:
            archive.extractall(unpacked, filter="data")
    before, after = collect(runs, tasks, k=2), collect(unpacked, tasks, k=2)
    pd.testing.assert_frame_equal(before[0], after[0])
    pd.testing.assert_frame_equal(before[1], after[1])
    record = json.loads(next((unpacked / "instances").glob("*/*/*.jsonl")).read_text().splitlines()[0])
    assert record["signals"] is None and record["selected"]


def test_cached_embedder_returns_the_vectors_it_was_built_from(tmp_path):
    import numpy as np

    from analysis.similarity import CachedEmbedder

    stub = StubEmbedder()
    texts = ["count one two", "translate the cat", "count one two"]
    cached = CachedEmbedder(CachedEmbedder.build(stub, texts, tmp_path / "cache.npz"))
    np.testing.assert_allclose(cached.embed(texts), stub.embed(texts), atol=1e-3)
    np.testing.assert_allclose(cached.task_centroid(texts[:2]), stub.task_centroid(texts[:2]), atol=1e-3)
    with pytest.raises(KeyError, match="not in the embedding cache"):
        cached.embed(["never seen"])


@pytest.mark.slow
def test_two_sharded_processes_write_the_files_of_one_process(tmp_path, monkeypatch):
    """Data-parallel evaluation (2 CPU processes under torchrun, which `accelerate launch --multi_gpu` runs on GPUs;
    PartialState talks over gloo) shards the cells and writes the same files as one process. bench/scaleout.py
    times the same two runs on GPUs and reports this agreement."""
    from bench.scaleout import answers, compare, measure

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    job = ["--methods", "base", "logo_norm", "--tasks", "en_fr", "movie_sentiment", "--setting", "in_pool"]
    single, sharded = measure([*job, "--limit", "2"], tmp_path, processes=2, port=29517, timeout=600)
    assert "process 1 of 2 takes 2" in sharded.log and "process 2 of 2 takes 2" in sharded.log
    assert "process 1 of 1 takes 4" in single.log
    assert len(answers(single.runs)) == 4
    assert answers(sharded.runs) == answers(single.runs)
    summary = [(tmp_path / f"{name}_summary" / "results.csv").read_text() for name in ("single", "sharded")]
    assert summary[0] == summary[1]
    report = compare(single, sharded, 2)
    assert report[-1] == "#   same cells written: yes; instances whose answer, selection or score differ: 0 of 8"


def test_two_formats_are_compared_on_the_same_instances(ctx, tasks_dir, tmp_path, capsys):
    from analysis.formats import main

    tasks = load_tasks(tasks_dir)
    first, second = tmp_path / "runs_a", tmp_path / "runs_b"
    for cell in plan(tasks, ["recommended"], ["in_pool"]):
        run_cell(ctx, cell, None, first)
    shutil.copytree(first, second)
    changed = next((second / "instances").glob("in_pool/recommended/*.jsonl"))
    records = [json.loads(line) for line in changed.read_text().splitlines()]
    records[0] = {**records[0], "output": records[0]["output"] + " !", "score": 100.0 - records[0]["score"]}
    changed.write_text("".join(json.dumps(r) + "\n" for r in records))
    main([str(first), str(second), "--tasks-dir", str(tasks_dir), "--n-boot", "200", "--out", str(tmp_path / "d.csv")])
    lines = capsys.readouterr().out.splitlines()
    total = sum(len(t.examples("test")) for t in tasks if not t.held_out)
    assert f"# in_pool: identical answers {total - 1}/{total} ({(total - 1) / total:.1%})" in lines
    table = pd.read_csv(tmp_path / "d.csv")
    tasks_rows = table[table.scope == "task"].set_index("name")
    original = json.loads((first / changed.relative_to(second)).read_text().splitlines()[0])["score"]
    assert tasks_rows.loc[changed.stem, "difference"] == pytest.approx((2 * original - 100.0) / len(records))
    assert (tasks_rows.drop(changed.stem).difference == 0).all()  # every other instance is the same


def test_formats_refuses_a_folder_that_is_not_a_runs_folder(tmp_path, capsys):
    from analysis.formats import main

    with pytest.raises(SystemExit):
        main([str(tmp_path / "nowhere"), str(tmp_path)])
    assert "nowhere has no instances/ folder: give two --runs folders of analysis.evaluate" in capsys.readouterr().err
