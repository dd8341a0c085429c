"""Rank groups: a wide adapter costs only its own memory, and mixtures, probes and merges equal the unpadded maths."""

from __future__ import annotations

import torch

from logo.pool import AdapterPool, load_adapter
from tests.tiny import save_random_adapter

PROMPT = "Translate to French: good night."


def _wide_engine(tiny_world, make_engine, tmp_path, rank=64):
    wide = save_random_adapter(tiny_world.model, tmp_path / "wide", rank, 2 * rank, ["q_proj", "v_proj"], False, 0.5, 7)
    return make_engine(adapters=[str(tiny_world.pool_dir), str(wide)])


def _delta(adapter, module, x):
    a, b = adapter.factors[module]
    return adapter.scalings[module] * (x @ a.T.float() @ b.T.float())


def test_a_wide_adapter_costs_only_its_own_factors(tiny_world, make_engine, tmp_path):
    small = make_engine().pool
    engine = _wide_engine(tiny_world, make_engine, tmp_path)
    wide = load_adapter(tmp_path / "wide")
    own = sum(a.numel() + b.numel() for a, b in wide.factors.values()) * 4
    grown = engine.pool.nbytes() - small.nbytes()
    assert own <= grown < own + 4096  # the factors plus index maps and scalings, no padding of the others
    q = engine.pool.modules["model.layers.0.self_attn.q_proj"]
    assert sorted(g.rank for g in q.groups) == sorted({g.rank for g in q.groups})  # one group per rank
    assert max(g.rank for g in q.groups) == 64 and not q.dense


def test_mixture_of_mixed_ranks_equals_the_unpadded_sum(tiny_world, make_engine, tmp_path):
    engine = _wide_engine(tiny_world, make_engine, tmp_path)
    pool = engine.pool
    mixtures = [{"wide": 0.6, "alpha": 0.4}, {"beta": 1.0}, {"gamma": 0.5, "wide": 0.5}]
    factors = engine.mixture_factors(mixtures)
    x = torch.randn(5, 64)
    for module, (a_t, b_t) in factors.items():
        for row, mixture in enumerate(mixtures):
            expected = torch.zeros(5, b_t.shape[-1])
            for name, w in mixture.items():
                adapter = pool.adapters[pool.index(name)]
                if module in adapter.factors:
                    expected += w * _delta(adapter, module, x)
            torch.testing.assert_close(x @ a_t[row] @ b_t[row], expected, rtol=1e-5, atol=1e-6)
    narrow = engine.mixture_factors([{"beta": 1.0}])  # a batch without the wide adapter is not padded to it
    assert max(a.shape[-1] for a, _ in narrow.values()) <= 8


def test_probe_of_mixed_ranks_equals_each_adapter_alone(tiny_world, make_engine, tmp_path):
    engine = _wide_engine(tiny_world, make_engine, tmp_path)
    stack = engine.pool.modules["model.layers.1.self_attn.v_proj"]
    h = torch.randn(3, 64)
    outputs = stack.outputs(h)
    for i, adapter in enumerate(engine.pool.adapters):
        module = "model.layers.1.self_attn.v_proj"
        expected = _delta(adapter, module, h) if module in adapter.factors else torch.zeros(3, outputs.shape[-1])
        torch.testing.assert_close(outputs[:, i], expected, rtol=1e-5, atol=1e-6)


def test_probe_of_mixed_ranks_in_bfloat16_matches_float32(tiny_world, make_engine, tmp_path):
    """A bf16 pool's probe outputs come back in the dense path's dtype (its float32 scalings), close to fp32's."""
    wide = _wide_engine(tiny_world, make_engine, tmp_path)
    half = make_engine(adapters=[str(tiny_world.pool_dir), str(tmp_path / "wide")], dtype="bfloat16")
    module = "model.layers.1.self_attn.v_proj"
    stack, half_stack = wide.pool.modules[module], half.pool.modules[module]
    assert not half_stack.dense and half_stack.groups[0].a.dtype == torch.bfloat16
    h = torch.randn(3, 64)
    outputs = half_stack.outputs(h.bfloat16())
    assert outputs.dtype == torch.float32
    torch.testing.assert_close(outputs, stack.outputs(h), rtol=0.05, atol=0.05)
    assert wide.route(PROMPT)[0].adapters and half.route(PROMPT)[0].adapters


def test_fused_merge_equals_exact_mixture_with_a_wide_adapter(tiny_world, make_engine, tmp_path):
    engine = _wide_engine(tiny_world, make_engine, tmp_path)
    mixture = [{"wide": 0.7, "beta": 0.3}]
    exact = engine.logits([PROMPT], mixture, mode="mixture")
    fused = engine.logits([PROMPT], mixture, mode="fused")
    torch.testing.assert_close(fused, exact, rtol=1e-4, atol=1e-4)
    routing = engine.route(PROMPT)[0]
    assert "wide" in routing.adapters and len(routing.scores) == len(engine.pool)


def test_pad_index_selects_nothing_in_a_mixed_rank_pool(tiny_world, make_engine, tmp_path):
    engine = _wide_engine(tiny_world, make_engine, tmp_path)
    pool = engine.pool
    index = torch.tensor([[pool.index("wide"), pool.pad_index], [pool.pad_index, pool.pad_index]])
    coef = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    for a_t, b_t in pool.mixture_factors(index, coef).values():
        assert torch.count_nonzero(a_t[1]) == 0 and torch.count_nonzero(b_t[1]) == 0
        r = a_t.shape[-1] // 2
        assert torch.count_nonzero(a_t[0, :, r:]) == 0  # the padding slot of row 0


def test_with_adapters_shares_the_stacks_and_leaves_the_pool_alone(tiny_world, make_engine, tmp_path):
    engine = make_engine()
    save_random_adapter(tiny_world.model, tmp_path / "mine", 4, 8, ["q_proj", "v_proj"], False, 0.5, 3)
    mine = load_adapter(tmp_path / "mine")
    extended = engine.pool.with_adapters([mine], engine.model)
    assert extended.names == (*engine.pool.names, "mine") and "mine" not in engine.pool.names
    assert extended.digest != engine.pool.digest
    q = "model.layers.0.self_attn.q_proj"
    assert any(g.a is engine.pool.modules[q].groups[0].a for g in extended.modules[q].groups)  # shared, not copied
    own = sum(a.numel() + b.numel() for a, b in mine.factors.values()) * 4
    assert extended.nbytes() - engine.pool.nbytes() < own + 4096 * len(extended.modules)
    up = "model.layers.0.mlp.up_proj"  # adapted by delta only
    assert extended.modules[up].covered == (*engine.pool.modules[up].covered, False)
    factors = extended.mixture_factors(torch.tensor([[len(engine.pool)]]), torch.tensor([[1.0]]))
    x = torch.randn(2, 64)
    a_t, b_t = factors[q]
    torch.testing.assert_close(x @ a_t[0] @ b_t[0], _delta(mine, q, x), rtol=1e-5, atol=1e-6)
    assert isinstance(extended, AdapterPool)
