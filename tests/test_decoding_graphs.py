"""The hand-written Llama decode step over per-model buffers (logo/llama_step.py) gives transformers' greedy tokens.

On the CPU the step runs eagerly over the same static buffers, factor copies and cache that a GPU captures in its
CUDA graph, so these tests exercise every buffer the graph reads: base, mixture (per-row, padded widths), fused
(merged weights copied in and back), left padding, and one buffer set reused by successive requests. The
block-diagonal low-rank layout is checked against logo.mixture.MixtureLinear's own forward, group by group and
over whole steps, with two rows of different mixtures, adapters of different ranks and zero-weight padding slots.
"""

from __future__ import annotations

import pytest
import torch

from bench.models import TINY, random_model, random_prompt, word_tokenizer
from logo import llama_step
from logo.base_model import BaseModel
from logo.config import EngineConfig, GenerationConfig
from logo.engine import LoGoEngine
from logo.llama_step import GROUPS, LlamaSteps, StepGraphs, _matmul, _project, fallback_reason
from logo.pool import AdapterPool
from logo.probe import position_ids

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


def answers(engine, prompts, mixtures, mode="mixture", graph=False, new=12, ignore_eos=True):
    generation = GenerationConfig(max_new_tokens=new, mode=mode, ignore_eos=ignore_eos, cuda_graph=graph)
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


def test_rows_that_finish_early_keep_the_plain_loops_tokens(engine, monkeypatch):
    """End of sequence honoured, rows stopping at different steps. On a GPU the greedy loop chains the replays
    (each feeds the next its argmax) and drops what a finished row generates after it; on the CPU the eager step."""
    unbounded = answers(engine, PROMPTS, MIXTURES)
    monkeypatch.setattr(engine, "eos_ids", {unbounded[1][4]})  # row 1 stops at its fifth token
    plain = answers(engine, PROMPTS, MIXTURES, ignore_eos=False)
    assert len(plain[1]) <= 4 < 12  # else the end of sequence did not take effect and the test cannot fail
    assert answers(engine, PROMPTS, MIXTURES, graph=True, ignore_eos=False) == plain
    assert answers(engine, [PROMPTS[1]], [MIXTURES[1]], graph=True, ignore_eos=False) == [plain[1]]


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


# tiny_world's adapters: ranks 2, 8, 4 and 6 (padded to the widest selected); delta also adapts up_proj (so
# gate_up has low-rank terms, gate_proj's are zeros), nothing adapts down_proj; row 1 gets two slots of weight 0
MIXED = [{"alpha": 0.5, "gamma": 0.3, "delta": 0.2}, {"epsilon": 1.0}]
MIXED_PROMPTS = ["Translate to French: good night.", "What is 2 + 3 ?"]


def _acquired(engine, factors, length=16, rows=2):
    graph = engine.step_graphs.acquire(rows, length, factors)
    assert graph is not None and graph.graph is None  # the CPU: the eager step over the buffers
    return graph


# (rows, packed): the CPU packs the weights for oneDNN, where a one-row graph cannot fold A into them; the fold
# (a GPU's one-row layout) is tested here with packing off
LAYOUTS = [(2, True), (1, True), (1, False)]


@pytest.mark.parametrize(("rows", "packed"), LAYOUTS)
def test_block_diagonal_factors_equal_mixture_linear_per_group(make_engine, monkeypatch, rows, packed):
    """Each group's one matmul plus its two low-rank matmuls equals its members' MixtureLinear outputs, per row.
    With one row and plain weights, A is folded into the graph's own copy of the weight (one matmul gives
    x @ W^T and u)."""
    monkeypatch.setattr(llama_step, "PACK_CPU", packed)
    engine = make_engine()
    factors = engine.mixture_factors(MIXED[:rows])
    graph = _acquired(engine, factors, rows=rows)
    assert graph.weights.packed == (packed and torch.backends.mkldnn.is_available())
    assert graph.folded == (rows == 1 and not graph.weights.packed)
    try:
        graph.load_factors(factors)
        assert graph.key.groups == ("qkv", "o", "gate_up") and graph.key.rank == 64
        torch.manual_seed(0)
        with engine.adapted.applied(factors):
            for i, loras in enumerate(graph.loras):
                assert loras["down"] is None  # no adapter targets it: no buffers, no low-rank work
                for group, members in GROUPS.items():
                    layers = [engine.model.get_submodule(f"model.layers.{i}.{m}") for m in members]
                    x = torch.randn(rows, 1, layers[0].in_features)  # (B, 1, d_in)
                    expected = torch.cat([layer(x) for layer in layers], dim=-1)  # (B, 1, sum d_out)
                    got = _project(x, graph.block_weights[i][group], loras[group])
                    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
                    if loras[group] is not None:  # else this test could not fail
                        assert (got - _matmul(x, graph.weights.buffers[i][group])).abs().max() > 1e-3
        for _, b_view in graph.factor_buffers.values():  # clear the diagonal blocks: nothing may be left
            b_view.zero_()
        assert not any(lora[1].any() for loras in graph.loras for lora in loras.values() if lora is not None)
    finally:
        graph.lock.release()


@pytest.mark.parametrize(("rows", "packed"), LAYOUTS)
def test_eager_steps_with_mixed_ranks_and_padding_equal_transformers_forward(make_engine, monkeypatch, rows, packed):
    """Prefill (the graph's own blocks over the prompt) and four steps over the block-diagonal buffers (packed for
    oneDNN, or plain with one row: A folded into the weights) give the logits of transformers' forward over the
    whole sequence with the same mixtures applied by MixtureLinear (fp32, to 1e-5 of their scale)."""
    monkeypatch.setattr(llama_step, "PACK_CPU", packed)
    engine = make_engine()
    ids, mask = engine.encode(MIXED_PROMPTS[:rows])  # (B, T), left-padded
    factors = engine.mixture_factors(MIXED[:rows])
    graph = _acquired(engine, factors, ids.shape[1] + 4, rows)
    try:
        with torch.inference_mode(), engine.adapted.applied(factors):
            steps = LlamaSteps(engine.model, graph, ids, mask, factors)
            logits = steps.prefill()  # the prompt through the graph's own blocks (block_prefill)
            reference = engine.model(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask)).logits
            scale = float(reference[:, -1].abs().max())
            torch.testing.assert_close(logits, reference[:, -1], rtol=0, atol=1e-5 * scale)
            for _ in range(4):
                chosen = logits.argmax(dim=-1)  # (B,)
                ids = torch.cat([ids, chosen[:, None]], dim=1)
                mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
                logits = steps.step(chosen)  # (B, V)
                reference = engine.model(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask)).logits
                scale = float(reference[:, -1].abs().max())
                torch.testing.assert_close(logits, reference[:, -1], rtol=0, atol=1e-5 * scale)
    finally:
        graph.lock.release()


def test_the_base_model_has_no_factor_buffers(make_engine):
    engine = make_engine()
    graph = engine.step_graphs.acquire(1, 16, None)
    try:
        assert graph.key.rank == 0 and graph.key.groups == () and not graph.factor_buffers
        assert all(lora is None for loras in graph.loras for lora in loras.values())
    finally:
        graph.lock.release()


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
