"""The benchmark scripts run in a tiny configuration on the CPU (smoke tests: no timing is asserted), the harness
counts what it should, and every optimised decode path gives the plain path's greedy tokens."""

from __future__ import annotations

import csv

import pytest
import torch
from torch import nn

from bench import engine_cpu, engine_gpu, engine_zoo
from bench.floor import Floor, mixture_bytes, weight_bytes
from bench.formats import FORMATS, Int8Linear, quantize
from bench.models import TINY, random_model, random_prompt, word_tokenizer
from bench.peers import first_call_error, static_compiled
from bench.reference import OfficialReference, hf_generate
from bench.timing import Report, Samples, amortisation_rows, interleaved
from logo.base_model import BaseModel
from logo.config import EngineConfig, GenerationConfig, RoutingConfig
from logo.decoding import DynamicSteps, StaticSteps
from logo.engine import LoGoEngine
from logo.pool import AdapterPool

PROBE = engine_gpu.PROBE
SMOKE = ["--repeats", "1", "--warmup", "0"]


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("LOGO_CACHE", str(tmp_path / "cache"))  # calibration statistics of the tiny engines


def rows_after(lines: list[str], header_start: str, n: int) -> list[list[str]]:
    header = next(line for line in lines if line.startswith(header_start))
    rows = [row.split(" | ") for row in lines[lines.index(header) + 1 : lines.index(header) + 1 + n]]
    assert all(len(row) == len(header.split(" | ")) for row in rows), rows
    return rows


def test_gpu_benchmark_runs_tiny_on_the_cpu(capsys):
    engine_gpu.main(
        [
            *("--tiny", "--adapters", "3", "5", "--k", "2", "--prompt-tokens", "8", "--new-tokens", "4"),
            *("--batch", "2", "--throughput-at", "5", "--reference-max", "5", "--peers", "hf", "official", *SMOKE),
        ]
    )
    lines = capsys.readouterr().out.splitlines()
    variants = [row[0] for row in rows_after(lines, "variant | probe ms", 8)]
    assert variants == ["hf generate", "official", *engine_gpu.ENGINE_LABELS]
    assert any(line.startswith("official, per instance |") for line in lines)
    assert any(line.startswith("# floor: base ") for line in lines)
    assert "# SMOKE RUN: fewer than 5 rounds, these figures are not a measurement" in lines
    assert any("not installable" in line for line in lines)
    assert sum(line.startswith("#   ") and ("met" in line or "MISSED" in line) for line in lines) == 8


def test_zoo_benchmark_runs_tiny_on_the_cpu(capsys, tmp_path):
    curve = tmp_path / "curve.csv"
    engine_zoo.main(
        [
            *("--tiny", "--prompts", "2", "--batch", "2", "--new-tokens", "4", "--peers", "hf"),
            *("--curve-csv", str(curve), *SMOKE),
        ]
    )
    lines = capsys.readouterr().out.splitlines()
    assert [row[0] for row in rows_after(lines, "variant | ms per instance", 7)] == [
        "hf generate",
        *engine_gpu.ENGINE_LABELS,
    ]
    assert [row[0] for row in rows_after(lines, "variant | s per batch", 5)] == [
        "hf generate",
        "base eager",
        "mixture eager",
        "base graph",
        "mixture graph",
    ]
    assert "#   greedy answers identical with and without the static cache / CUDA graph: 2 of 2" in lines
    with curve.open() as f:
        table = list(csv.DictReader(f))
    assert [r["tokens"] for r in table if r["variant"] == "base graph"] == ["1", "2", "3", "4"]


def test_cpu_benchmark_runs_tiny_with_every_format_and_appends_its_output(capsys, tmp_path):
    curve, benchmarks = tmp_path / "curve.csv", tmp_path / "BENCHMARKS.md"
    benchmarks.write_text("# Benchmarks\n")
    argv = ["--tiny", "--new-tokens", "4", "--agreement", "3", "--agreement-tokens", "3", *SMOKE]
    argv += ["--curve-csv", str(curve), "--append-to", str(benchmarks)]
    engine_cpu.main(argv)
    lines = capsys.readouterr().out.splitlines()
    decode = rows_after(lines, "variant | decode ms/token", 12)
    assert [row[0] for row in decode] == [
        f"{fmt} {mode}"
        for fmt in FORMATS
        for mode in ("base", "mixture", "fused")
        if mode != "fused" or not fmt.startswith("int8")
    ] + [engine_cpu.PLAIN, engine_cpu.DYNAMIC]
    assert [row[0] for row in rows_after(lines, "format | probe ms", 4)] == list(FORMATS)
    agreement = rows_after(lines, "format | identical answers", 4)
    assert agreement[0] == ["float32", "3/3 (100.0%)", "3/3"]
    with curve.open() as f:
        assert {r["variant"] for r in csv.DictReader(f)} == {row[0] for row in decode}
    text = benchmarks.read_text()
    assert text.startswith("# Benchmarks\n\n## Engine on the CPU, per weight format (")
    assert f"`python -m bench.engine_cpu {' '.join(argv)}`" in text
    assert "\n".join(lines) in text


def test_interleaved_rotates_the_order_and_drops_the_warm_up():
    calls = []
    variants = {name: (lambda name=name: calls.append(name) or {"value": len(calls)}) for name in "abc"}
    results, runs = interleaved(variants, repeats=2, warmup=1)
    assert calls == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert results["a"]["value"].values == [6, 8] and results["c"]["value"].values == [5, 7]
    assert [run["value"] for run in runs["b"]] == [4, 9]
    assert all(len(results[n]["wall_ms"].values) == 2 for n in "abc")
    with pytest.raises(ValueError, match="repeats must be at least 1, got 0"):
        interleaved(variants, repeats=0)


def test_a_spent_time_budget_keeps_the_first_measured_round_and_says_so(capsys):
    variants = {name: (lambda: {"value": 1.0}) for name in "ab"}
    report = Report("T", "bench.x", repeats=5, warmup=1, budget_minutes=0)
    results, _ = interleaved(variants, repeats=5, warmup=1, report=report)
    assert all(len(results[n]["value"].values) == 1 for n in "ab")
    assert report.lines[-1] == "# time budget spent: 1 of 5 measured rounds of a, b"
    assert "# measured round 1 of a: wall_ms=" in capsys.readouterr().err
    unlimited = Report("T", "bench.x", repeats=5, warmup=1)
    results, _ = interleaved(variants, repeats=5, warmup=1, report=unlimited)
    assert len(results["a"]["value"].values) == 5 and not unlimited.lines[-1].startswith("# time budget")


def test_samples_amortisation_and_report_tables(tmp_path):
    assert Samples([3.0, 1.0, 2.0]).cell(1) == "2.0 [1.0-3.0]" and Samples().cell() == "-"
    rows = amortisation_rows("v", [[10.0, 12.0, 14.0], [20.0, 22.0]])
    assert [(r["tokens"], r["ms_per_token_median"]) for r in rows] == [(1, 15.0), (2, 8.5)]
    report = Report("T", "bench.x", repeats=5, warmup=1)
    assert not any("SMOKE" in line for line in report.lines)
    with pytest.raises(ValueError, match="has 1 cells, the header 2"):
        report.table(["a", "b"], [["1"]])


def test_floor_counts_each_weight_once_and_the_embedding_only_when_it_is_the_head():
    model = random_model(TINY, "cpu", torch.float32)  # untied: the head is its own matrix
    params = sum(p.numel() for p in model.parameters())
    embedding = model.model.embed_tokens.weight.numel()
    assert weight_bytes(model) == 4 * (params - embedding)
    model.lm_head.weight = model.model.embed_tokens.weight  # tied: the table is read as the head
    assert weight_bytes(model) == 4 * (params - embedding)
    assert weight_bytes(model.to(torch.bfloat16)) == 2 * (params - embedding)
    pool = AdapterPool.random(model, 4, rank=2)
    per_adapter = sum(s.a[0].numel() + s.b[0].numel() for s in pool.modules.values()) * 2
    assert mixture_bytes(pool, 3) == 3 * per_adapter
    floor = Floor(bandwidth_gbs=10.0, bytes_per_token=20_000_000)
    assert floor.ms_per_token == pytest.approx(2.0) and floor.times(3.0) == pytest.approx(1.5)


def test_int8_formats_quantise_every_linear_and_count_int8_bytes():
    model = random_model(TINY, "cpu", torch.float32)
    linear_params = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))
    float_bytes = weight_bytes(model)
    quantize(model, "int8")
    assert not any(type(m) is nn.Linear for m in model.modules())
    out_channels = sum(m.out_features for m in model.modules() if isinstance(m, Int8Linear))
    assert weight_bytes(model) == float_bytes - 4 * linear_params + linear_params + 4 * out_channels
    dynamic = quantize(random_model(TINY, "cpu", torch.float32), "int8-dynamic")
    assert weight_bytes(dynamic) == float_bytes - 4 * linear_params + linear_params + 8 * out_channels
    with pytest.raises(ValueError, match="unknown weight format 'int4': choose one of float32, bfloat16"):
        quantize(model, "int4")


def test_int8_linear_is_its_dequantised_weight_and_close_to_the_original():
    torch.manual_seed(0)
    linear = nn.Linear(64, 48, bias=True)
    int8 = Int8Linear(linear)
    x = torch.randn(2, 5, 64)  # (B, T, d_in)
    dequantised = int8.weight_int8.float() * int8.scales[:, None]  # (d_out, d_in)
    assert torch.allclose(int8(x), x @ dequantised.T + linear.bias, atol=1e-5)
    assert (int8(x) - linear(x)).abs().max() < 0.02 * linear(x).abs().max()


def tiny_engine(dtype: str) -> LoGoEngine:
    model = random_model(TINY, "cpu", getattr(torch, dtype))
    base = BaseModel(model, word_tokenizer(TINY["vocab_size"]), name="random", fingerprint=f"random:{dtype}")
    config = EngineConfig(base_model="random", adapters=(), device="cpu", dtype=dtype, chat_template=False)
    return LoGoEngine(config, base=base, pool=AdapterPool.random(model, 6, rank=4, b_std=0.3))


@pytest.mark.parametrize(
    ("fmt", "mode"),
    [
        (f, m)
        for f in ("float32", "int8", "int8-dynamic")
        for m in ("base", "mixture", "fused")[: 3 if f == "float32" else 2]
    ],
)
def test_static_cache_steps_give_the_plain_loops_greedy_tokens(fmt, mode):
    """The steps a CUDA graph replays (static cache, fixed buffers), run eagerly, against the dynamic cache loop.

    Fused mode merges into a float weight, so int8 layers have none. bfloat16 is checked on its logits below:
    its two loops round differently (1-3 ulps), which flips the near-tied argmax of a random tiny model now and
    then (7 of 8 prompts agreed), so its tokens would test luck.
    """
    engine = tiny_engine("float32")
    quantize(engine.model, fmt)
    routing = RoutingConfig(k=3, calibration="none")
    for seed in range(2):
        prompt = random_prompt(10, TINY["vocab_size"], seed)
        answers = [
            engine.generate(
                prompt,
                routing,
                GenerationConfig(max_new_tokens=8, mode="fused" if mode == "fused" else "mixture", cuda_graph=graph),
                mixture={} if mode == "base" else None,
            ).token_ids
            for graph in (False, True, True)
        ]
        assert len(answers[0]) > 0 and answers[0] == answers[1] == answers[2], (fmt, mode, seed, answers)


@pytest.mark.parametrize("base", [True, False])
def test_bfloat16_static_cache_steps_match_the_dynamic_ones_within_bfloat16_rounding(base):
    """Teacher-forced over the same tokens: every step's logits agree within 4 bf16 ulps of their scale."""
    engine = tiny_engine("bfloat16")
    for seed in range(3):
        prompt = random_prompt(10, TINY["vocab_size"], seed)
        mixture = (
            None
            if base
            else engine.route([prompt], RoutingConfig(k=3, calibration="none", weighting="linear"))[0].mixture
        )
        ids, mask = engine.encode([prompt])
        with torch.inference_mode(), engine.adapted.applied(engine.mixture_factors([mixture]) if mixture else None):
            dynamic, static = DynamicSteps(engine.model, ids, mask, 8), StaticSteps(engine.model, ids, mask, 8)
            plain, fast = dynamic.prefill(), static.prefill()  # (1, V) each
            for _ in range(8):
                tolerance = 4 * 2**-8 * plain.float().abs().max()
                assert (plain.float() - fast.float()).abs().max() <= tolerance, (seed, base)
                token = plain.argmax(dim=-1)
                plain, fast = dynamic.step(token), static.step(token)


@pytest.mark.slow
def test_hf_static_cache_under_torch_compile_gives_the_dynamic_caches_tokens():
    tokenizer = word_tokenizer(TINY["vocab_size"])
    batch = tokenizer([random_prompt(8, TINY["vocab_size"], 0)], return_tensors="pt", split_special_tokens=True)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    plain, _ = hf_generate(random_model(TINY, "cpu", torch.float32), ids, mask, 6, ignore_eos=True)
    compiled = static_compiled(random_model(TINY, "cpu", torch.float32))
    tokens = []
    error = first_call_error(lambda: tokens.append(hf_generate(compiled, ids, mask, 6, ignore_eos=True)[0]))
    if error:
        pytest.skip(f"torch.compile does not run here: {error}")
    assert tokens[0] == plain


def test_random_pool_covers_every_targeted_module():
    model = random_model(TINY, "cpu", torch.float32)
    pool = AdapterPool.random(model, 5, rank=4)
    assert len(pool) == 5 and len(pool.modules) == 4 * TINY["num_hidden_layers"]
    q = pool.modules["model.layers.0.self_attn.q_proj"]
    assert q.a.shape == (5, 4, 64) and q.b.shape == (5, 64, 4) and q.scaling.tolist() == [8.0] * 5


def test_engine_matches_the_official_approach_in_the_benchmark_configuration():
    """Same selections, weights and greedy tokens as bench/reference.py (PEFT, Python loops), both signals."""
    model = random_model(TINY, "cpu", torch.float32)
    tokenizer = word_tokenizer(TINY["vocab_size"])
    pool = AdapterPool.random(model, 10, rank=4, b_std=0.3)
    config = EngineConfig(base_model="random", adapters=(), device="cpu", chat_template=False)
    engine = LoGoEngine(config, base=BaseModel(model, tokenizer, name="random", fingerprint="random"), pool=pool)
    prompts = [random_prompt(12, TINY["vocab_size"], seed) for seed in range(4)]
    generation = GenerationConfig(max_new_tokens=10)
    cases = [(signal, prompt) for signal in ("norm", "entropy") for prompt in prompts]
    ours = [
        engine.generate(prompt, RoutingConfig.preset("paper", k=3, signal=signal, probe=PROBE), generation)
        for signal, prompt in cases
    ]
    base = [engine.generate(prompt, generation=generation, mixture={}) for prompt in prompts]
    assert any(o.token_ids != b.token_ids for o, b in zip(ours, base, strict=True)), (
        "the adapters must change some answers"
    )

    reference = OfficialReference(model, pool)  # mounted after our runs: PEFT's layers would add to our mixture
    try:
        for (signal, prompt), mine in zip(cases, ours, strict=True):
            batch = tokenizer([prompt], return_tensors="pt", split_special_tokens=True)
            theirs = reference.generate(batch["input_ids"], batch["attention_mask"], 3, signal, 10)
            assert theirs.selected == mine.routing.selected
            assert theirs.weights == pytest.approx(mine.routing.weights, rel=1e-5)
            assert theirs.signals == pytest.approx(mine.routing.signals, rel=1e-5)
            assert theirs.token_ids == mine.token_ids
    finally:
        reference.model.unload()
    assert engine.generate(prompts[0], generation=generation, mixture={}).token_ids == base[0].token_ids


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--processes", "2"], "give the evaluation after --"),
        (["--", "--methods", "base", "--runs", "x"], "--runs and --out are set per run"),
        (["--processes", "1", "--", "--methods", "base"], "--processes must be at least 2"),
    ],
)
def test_scaleout_benchmark_refuses_bad_arguments_before_running_anything(argv, message, capsys):
    from bench.scaleout import main as scaleout

    with pytest.raises(SystemExit):
        scaleout(argv)
    assert message in capsys.readouterr().err


def test_scaleout_benchmark_never_resumes_an_earlier_run(tmp_path):
    from bench.scaleout import evaluate

    (tmp_path / "single").mkdir()
    with pytest.raises(SystemExit, match="exists; pass an empty --work directory"):
        evaluate(["python"], ["--methods", "base"], tmp_path, "single", {})


def test_random_pool_directories_load_as_peft_adapters_of_the_model(tmp_path):
    from bench.pools import write_random_pool

    model = random_model(TINY, "cpu", torch.float32)
    write_random_pool(model, tmp_path, 3, rank=2)
    pool = AdapterPool.load((str(tmp_path),), model)
    assert pool.names == ("random_0000", "random_0001", "random_0002")
    assert len(pool.modules) == 4 * TINY["num_hidden_layers"]
    v = pool.modules["model.layers.1.self_attn.v_proj"]
    assert v.a.shape == (3, 2, 64) and v.scaling.tolist() == [8.0] * 3  # alpha 16 / r 2
