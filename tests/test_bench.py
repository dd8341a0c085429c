"""The benchmark scripts run in a tiny configuration on the CPU (smoke tests: no timing is asserted)."""

from __future__ import annotations

import pytest
import torch

from bench.engine_gpu import PROBE, TINY, main, random_model, random_prompt, word_tokenizer
from bench.reference import OfficialReference
from logo.base_model import BaseModel
from logo.config import EngineConfig, GenerationConfig, RoutingConfig
from logo.engine import LoGoEngine
from logo.pool import AdapterPool


def test_gpu_benchmark_runs_tiny_on_the_cpu(capsys):
    main(
        [
            "--tiny",
            "--adapters",
            "3",
            "5",
            "--k",
            "2",
            "--prompt-tokens",
            "8",
            "--new-tokens",
            "40",
            "--batch",
            "3",
            "--throughput-at",
            "5",
            "--reference-max",
            "5",
        ]
    )
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if line.startswith("variant | probe ms"))
    table = lines[lines.index(header) + 1 : lines.index(header) + 9]
    variants = [row.split(" | ")[0] for row in table]
    assert variants == [
        "hf generate",
        "official",
        "base eager",
        "mixture eager",
        "fused eager",
        "base graph",
        "mixture graph",
        "fused graph",
    ]
    assert all(len(row.split(" | ")) == len(header.split(" | ")) for row in table)
    assert any(line.startswith("official, per instance |") for line in lines)
    assert sum(line.startswith("#   ") and ("met" in line or "MISSED" in line) for line in lines) >= 7


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
        engine.generate(prompt, RoutingConfig(k=3, signal=signal, probe=PROBE), generation) for signal, prompt in cases
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
