"""The hand-written Llama decode step over per-model buffers (logo/llama_step.py) gives transformers' greedy tokens.

On the CPU the step runs eagerly over the same static buffers, factor copies and cache that a GPU captures in its
CUDA graph, so these tests exercise every buffer the graph reads: base, mixture (per-row, padded widths), fused
(merged weights copied in and back), left padding, and one buffer set reused by successive requests.
"""

from __future__ import annotations

import pytest
import torch

from bench.models import TINY, random_model, random_prompt, word_tokenizer
from logo.base_model import BaseModel
from logo.config import EngineConfig, GenerationConfig
from logo.engine import LoGoEngine
from logo.llama_step import StepGraphs, fallback_reason
from logo.pool import AdapterPool

DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]  # on a GPU: compiled blocks, captured graphs


@pytest.fixture(scope="module", params=DEVICES)
def engine(request):
    device = request.param
    tokenizer = word_tokenizer(TINY["vocab_size"])
    base = BaseModel(random_model(TINY, device, torch.float32), tokenizer, name="random", fingerprint="random")
    config = EngineConfig(base_model="random", adapters=(), device=device, dtype="float32", chat_template=False)
    return LoGoEngine(config, base=base, pool=AdapterPool.random(base.model, 6, rank=4, b_std=0.3))


PROMPTS = [random_prompt(n, TINY["vocab_size"], seed) for seed, n in enumerate((5, 9, 12))]
MIXTURES = [{"random_0000": 0.7, "random_0003": 0.3}, {}, {"random_0001": 0.2, "random_0002": 0.5, "random_0005": 0.3}]


def answers(engine, prompts, mixtures, mode="mixture", graph=False, new=12):
    generation = GenerationConfig(max_new_tokens=new, mode=mode, ignore_eos=True, cuda_graph=graph)
    return [g.token_ids for g in engine.generate_batch(prompts, None, generation, mixtures=mixtures, batch_size=8)]


def test_the_tiny_model_uses_the_hand_written_step(engine):
    assert fallback_reason(engine.model, engine.adapted) is None
    assert StepGraphs.of(engine.model) is engine.step_graphs
    trace_graph = engine.generate(PROMPTS[0], generation=GenerationConfig(max_new_tokens=3, cuda_graph=True))
    assert len(trace_graph.token_ids) == 3
    assert engine.step_graphs.compile_error is None  # on a GPU: the compiled block was captured


def test_the_default_decodes_with_the_hand_written_step_on_either_device(engine):
    """GenerationConfig.cuda_graph=None takes the engine's own step on the CPU too (eagerly), same tokens."""
    prompts = [random_prompt(300, TINY["vocab_size"], seed) for seed in (7, 8)]  # a cache bucket no other test uses
    plain = answers(engine, prompts, [{}, {}], graph=False)
    assert not any(k.rows == 2 and k.length == 512 for k in engine.step_graphs.shapes)
    assert answers(engine, prompts, [{}, {}], graph=None) == plain
    assert any(k.rows == 2 and k.length == 512 for k in engine.step_graphs.shapes)


@pytest.mark.parametrize("rows", [[0], [0, 1, 2]])
def test_mixture_greedy_tokens_equal_transformers_path(engine, rows):
    prompts, mixtures = [PROMPTS[r] for r in rows], [MIXTURES[r] for r in rows]
    plain = answers(engine, prompts, mixtures)  # DynamicCache through transformers' forward
    before = set(engine.step_graphs.shapes)
    fast = answers(engine, prompts, mixtures, graph=True)
    assert fast == plain
    assert len(plain[0]) == 12
    assert set(engine.step_graphs.shapes) > before or engine.step_graphs.shapes  # buffers were made and used


def test_one_buffer_set_serves_successive_requests(engine):
    """Same shape, different mixtures (and the base model) one after another: no state leaks between them."""
    for mixture in (MIXTURES[2], MIXTURES[0], {}, MIXTURES[0]):
        assert answers(engine, [PROMPTS[1]], [mixture], graph=True) == answers(engine, [PROMPTS[1]], [mixture])
    keys = [k for k in engine.step_graphs.shapes if k.rows == 1]
    assert {k.rank for k in keys} >= {0, 64}  # the base model has its own shape without low-rank terms


def test_fused_requests_copy_merged_weights_in_and_back(engine):
    fused = answers(engine, [PROMPTS[2]], [MIXTURES[0]], mode="fused", graph=True)
    assert fused == answers(engine, [PROMPTS[2]], [MIXTURES[0]], mode="fused")
    base_after = answers(engine, [PROMPTS[2]], [{}], graph=True)  # the originals must be back in the buffers
    assert base_after == answers(engine, [PROMPTS[2]], [{}])
    assert fused != base_after  # the merge changed the answer (else this test could not fail)


def test_lengths_share_a_bucket_and_long_requests_get_their_own(engine):
    short = answers(engine, [PROMPTS[0]], [MIXTURES[0]], graph=True, new=4)
    assert short == answers(engine, [PROMPTS[0]], [MIXTURES[0]], new=4)
    long = answers(engine, [PROMPTS[0]], [MIXTURES[0]], graph=True, new=300)
    assert long == answers(engine, [PROMPTS[0]], [MIXTURES[0]], new=300)
    assert {k.length for k in engine.step_graphs.shapes} >= {256, 512}


def test_a_quantized_model_falls_back_with_its_reason():
    from bench.formats import quantize

    tokenizer = word_tokenizer(TINY["vocab_size"])
    base = BaseModel(random_model(TINY, "cpu", torch.float32), tokenizer, name="random", fingerprint="random")
    config = EngineConfig(base_model="random", adapters=(), device="cpu", dtype="float32", chat_template=False)
    engine = LoGoEngine(config, base=base, pool=AdapterPool.random(base.model, 3, rank=4))
    quantize(engine.model, "int8")
    assert "quantized" in engine.step_graphs.reason
    engine.generate(PROMPTS[0], generation=GenerationConfig(max_new_tokens=3, cuda_graph=True))
    assert engine.step_graphs.shapes == []  # StaticSteps decoded it
