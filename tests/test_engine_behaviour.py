"""Engine behaviour: statelessness, generation paths agreeing with each other, concurrency, results, bad input."""

from __future__ import annotations

import json
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from logo import scoring
from logo.config import EngineConfig, GenerationConfig, ProbeConfig, RoutingConfig
from logo.results import to_json
from logo.signals import select_top_k

PROMPT_A = "what is the capital of france ?"
PROMPT_B = "sort the words cat dog bird"
GREEDY = GenerationConfig(max_new_tokens=6)


@pytest.mark.parametrize("calibration", ["none", "zscore"])
def test_routing_is_stateless(engine, calibration):
    config = RoutingConfig(k=2, calibration=calibration)
    alone = engine.route(PROMPT_A, config)[0]
    engine.route(PROMPT_B, config)
    engine.generate(PROMPT_B, config, GREEDY)
    engine.generate(PROMPT_B, config, GenerationConfig(max_new_tokens=3, mode="fused"))
    after = engine.route(PROMPT_A, config)[0]
    assert after.signals == alone.signals
    assert after.selected == alone.selected and after.weights == alone.weights


def test_routing_a_prompt_in_a_batch_equals_routing_it_alone(engine):
    alone = engine.route(PROMPT_A, RoutingConfig(k=2))[0]
    batched = engine.route([PROMPT_B, PROMPT_A, "count one two three four five six seven"], RoutingConfig(k=2))[1]
    assert batched.signals == pytest.approx(alone.signals, rel=1e-5)
    assert batched.selected == alone.selected


def test_generate_batch_rows_equal_single_generations_in_both_modes(engine):
    prompts = [PROMPT_A, PROMPT_B, "is the movie good ?"]
    config = RoutingConfig(k=2)
    singles = [engine.generate(p, config, GREEDY) for p in prompts]
    for mode in ("mixture", "fused"):
        batch = engine.generate_batch(prompts, config, GenerationConfig(max_new_tokens=6, mode=mode))
        for single, row in zip(singles, batch, strict=True):
            assert row.token_ids == single.token_ids
            assert list(row.mixture) == list(single.mixture)
            assert list(row.mixture.values()) == pytest.approx(list(single.mixture.values()), rel=1e-5)
            assert row.mode == mode


@pytest.mark.parametrize("mode", ["mixture", "fused"])
def test_static_cache_steps_give_the_tokens_of_the_growing_cache(engine, mode):
    """The CUDA-graph path's static KV cache (run eagerly on the CPU) must not change a single token."""
    prompts = [PROMPT_A, PROMPT_B, "count one two three four five six seven"]  # different lengths: left padding
    routing = RoutingConfig(k=2)
    dynamic = engine.generate_batch(prompts, routing, GenerationConfig(max_new_tokens=8, mode=mode, cuda_graph=False))
    static = engine.generate_batch(prompts, routing, GenerationConfig(max_new_tokens=8, mode=mode, cuda_graph=True))
    assert [r.token_ids for r in static] == [r.token_ids for r in dynamic]
    assert all(len(r.token_ids) > 0 for r in static)
    logits_static = _step_logits(engine, prompts, cuda_graph=True)
    torch.testing.assert_close(logits_static, _step_logits(engine, prompts, cuda_graph=False), rtol=0, atol=1e-5)


def _step_logits(engine, prompts, cuda_graph):
    """Logits of the prefill and of three forced steps, through the decode loop's step objects."""
    from logo.decoding import DynamicSteps, StaticSteps

    ids, mask = engine.encode(prompts)
    steps = (StaticSteps if cuda_graph else DynamicSteps)(engine.model, ids, mask, 4)
    with torch.inference_mode():
        logits = [steps.prefill()]
        for token in (5, 6, 7):
            logits.append(steps.step(torch.full((len(prompts),), token)))
    return torch.stack(logits)


def test_the_mixture_changes_the_answer(engine):
    base = engine.generate(PROMPT_A, generation=GREEDY, mixture={})
    routed = engine.generate(PROMPT_A, RoutingConfig(k=2), GREEDY)
    assert base.routing is None and base.mixture == {}
    assert routed.routing is not None and routed.token_ids != base.token_ids


def test_stream_yields_the_text_of_generate(engine):
    expected = engine.generate(PROMPT_B, RoutingConfig(k=3), GREEDY)
    stream = engine.stream(PROMPT_B, RoutingConfig(k=3), GREEDY)
    pieces = list(stream)
    assert "".join(pieces) == expected.text
    assert stream.result.token_ids == expected.token_ids
    assert len(pieces) >= 2


def test_generation_result_has_timings_and_timestamps(engine):
    result = engine.generate(PROMPT_A, RoutingConfig(k=2), GREEDY)
    t = result.timings
    assert 0 < result.n_tokens <= GREEDY.max_new_tokens
    assert len(result.token_times_ms) == result.n_tokens
    assert list(result.token_times_ms) == sorted(result.token_times_ms)
    assert result.token_times_ms[0] >= t.probe_ms
    assert t.total_ms >= t.probe_ms + t.prefill_ms
    data = json.loads(to_json(result))
    assert data["selected"] == list(result.routing.selected)
    assert set(data["signals"]) == set(engine.adapter_names)
    assert data["text"] == result.text and data["timings"]["total_ms"] == t.total_ms


def test_sampling_is_reproducible_with_a_seed(engine):
    config = GenerationConfig(max_new_tokens=8, temperature=1.5, top_p=0.9, top_k=20, seed=7)
    first = engine.generate(PROMPT_A, RoutingConfig(k=2), config)
    assert engine.generate(PROMPT_A, RoutingConfig(k=2), config).token_ids == first.token_ids


def test_concurrent_requests_each_get_their_own_answer(engine):
    """Mixture and fused requests from several threads at once give exactly what they give alone."""
    jobs = [
        (PROMPT_A, RoutingConfig(k=1), "mixture"),
        (PROMPT_B, RoutingConfig(k=2), "fused"),
        ("is the movie good ?", RoutingConfig(k=3, signal="entropy"), "mixture"),
        ("count one two three", RoutingConfig(k=2), "fused"),
    ] * 2
    alone = [engine.generate(p, r, GenerationConfig(max_new_tokens=8, mode=m)).token_ids for p, r, m in jobs]
    barrier = threading.Barrier(len(jobs))

    def run(job):
        prompt, routing, mode = job
        barrier.wait()
        return engine.generate(prompt, routing, GenerationConfig(max_new_tokens=8, mode=mode)).token_ids

    for _ in range(3):  # probes of some threads run while others generate: a shared hook must not leak
        with ThreadPoolExecutor(len(jobs)) as pool:
            together = list(pool.map(run, jobs))
        assert together == alone


def test_all_zero_scores_fall_back_to_uniform_weights():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, weights = select_top_k(torch.tensor([[0.0, -1.0, 0.0]]), 2)
    assert weights.tolist() == [[0.5, 0.5]]
    assert any("uniform" in str(w.message) for w in caught)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_scores_are_an_error(bad):
    with pytest.raises(FloatingPointError, match="non-finite"):
        select_top_k(torch.tensor([[1.0, bad]]), 1)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda e: e.route(""), ValueError, "empty"),
        (lambda e: e.route("   \n"), ValueError, "empty"),
        (lambda e: e.route([]), ValueError, "no prompts"),
        (lambda e: e.route(PROMPT_A, RoutingConfig(k=6)), ValueError, "k=6 is larger than the pool of 5 selectable"),
        (lambda e: e.route(PROMPT_A, RoutingConfig().with_(block=4)), ValueError, "probe block 4 is out of range"),
        (lambda e: e.route(PROMPT_A, RoutingConfig().with_(block=-5)), ValueError, "out of range"),
        (
            lambda e: e.route(PROMPT_A, RoutingConfig().with_(module="self_attn.k_proj")),
            ValueError,
            "do not adapt the probe module",
        ),
        (
            lambda e: e.route(PROMPT_A, RoutingConfig().with_(module="mlp.nothing")),
            ValueError,
            "no module 'mlp.nothing'",
        ),
        (lambda e: e.generate(PROMPT_A, generation=GenerationConfig(max_new_tokens=5000)), ValueError, "over the cap"),
        (lambda e: e.generate(PROMPT_A, mixture={"zeta": 1.0}), KeyError, "no adapter named 'zeta'"),
        (lambda e: e.generate(PROMPT_A, mixture={"alpha": float("nan")}), ValueError, "must be finite"),
        (lambda e: e.logits([PROMPT_A, PROMPT_B], [{}]), ValueError, "one mixture per prompt"),
        (lambda e: e.generate(" ".join(["cat"] * 3000)), ValueError, "over the limit"),
    ],
)
def test_bad_requests_raise_clear_errors(engine, call, error, match):
    with pytest.raises(error, match=match):
        call(engine)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: RoutingConfig(k=0), "k must be a positive integer"),
        (lambda: RoutingConfig(k=-1), "k must be a positive integer"),
        (lambda: RoutingConfig(signal="loudness"), "unknown signal 'loudness'"),
        (lambda: RoutingConfig(calibration="magic"), "unknown calibration"),
        (lambda: ProbeConfig(probe_input="output"), "unknown probe input"),
        (lambda: ProbeConfig(aggregate="max"), "unknown token aggregation"),
        (lambda: GenerationConfig(mode="blend"), "unknown mode 'blend'"),
        (lambda: GenerationConfig(max_new_tokens=0), "positive integer"),
        (lambda: GenerationConfig(temperature=-1), "temperature"),
        (lambda: EngineConfig(dtype="float8"), "unknown dtype"),
    ],
)
def test_bad_configs_raise_clear_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_excluded_adapters_are_scored_but_never_selected(engine):
    full = engine.route(PROMPT_A, RoutingConfig(k=2))[0]
    excluded = engine.route(PROMPT_A, RoutingConfig(k=2), exclude=[full.selected[0]])[0]
    assert excluded.signals == full.signals
    assert full.selected[0] not in excluded.selected
    assert excluded.selected[0] == full.selected[1]
    with pytest.raises(KeyError, match="no adapter named 'zeta'"):
        engine.route(PROMPT_A, exclude=["zeta"])
    with pytest.raises(ValueError, match="pool of 4 selectable adapters"):
        engine.route(PROMPT_A, RoutingConfig(k=5), exclude=["alpha"])


def test_a_second_engine_on_the_same_model_applies_its_own_mixtures(tiny_world, tmp_path):
    from logo.engine import LoGoEngine

    base = tiny_world.base()
    config = EngineConfig(
        base_model="tiny",
        adapters=(str(tiny_world.pool_dir),),
        device="cpu",
        dtype="float32",
        cache_dir=tmp_path,
        reference_prompts=tiny_world.reference_file,
    )
    first = LoGoEngine(config, base=base)
    second = LoGoEngine(config, base=base)  # shares the layers the first engine wrapped
    for engine in (first, second):  # the first engine's mixtures still apply (they used to drop to the base model)
        with_adapter = scoring.logits(engine, [PROMPT_A], [{"delta": 1.0}])
        without = scoring.logits(engine, [PROMPT_A], [{}])
        assert not torch.allclose(with_adapter, without)


def test_a_generation_says_what_it_merged(engine):
    greedy = GenerationConfig(max_new_tokens=3)
    base = engine.generate(PROMPT_A, generation=greedy, mixture={})
    routed = engine.generate(PROMPT_A, RoutingConfig(k=2), greedy)
    fused = engine.generate(PROMPT_A, RoutingConfig(k=2), GenerationConfig(max_new_tokens=3, mode="fused"))
    weights = {"alpha": 0.5, "beta": 0.5}
    averaged = engine.generate_batch([PROMPT_A], generation=greedy, parameter_average=weights)[0]
    assert (base.merge, base.mixture) == ("none", {})
    assert routed.merge == "mixture" and routed.mixture == routed.routing.mixture
    assert fused.merge == "fused" and fused.mixture == routed.mixture
    assert (averaged.merge, averaged.mixture, averaged.routing) == ("parameter_average", weights, None)
    assert json.loads(to_json(averaged))["merge"] == "parameter_average"
    assert averaged.token_ids != engine.generate(PROMPT_A, generation=greedy, mixture=weights).token_ids
    with pytest.raises(ValueError, match="mixture mode only"):
        engine.generate_batch([PROMPT_A], generation=GenerationConfig(mode="fused"), parameter_average=weights)
    with pytest.raises(ValueError, match="either mixtures or parameter_average"):
        engine.generate_batch([PROMPT_A], mixtures=[{}], parameter_average=weights)
    with pytest.raises(KeyError, match="no adapter named 'zeta'"):
        engine.generate_batch([PROMPT_A], parameter_average={"zeta": 1.0})


def test_the_package_exports_the_readme_names():
    import logo
    from logo import EngineConfig as Exported
    from logo import Generation, GenerationConfig, LoGoEngine, ProbeConfig, Routing, RoutingConfig, Timings

    assert Exported is EngineConfig and LoGoEngine.__module__ == "logo.engine"
    assert {c.__name__ for c in (Generation, GenerationConfig, ProbeConfig, Routing, RoutingConfig, Timings)} <= set(
        logo.__all__
    )
    with pytest.raises(AttributeError, match="no attribute 'Engine'"):
        logo.Engine  # noqa: B018


def test_public_block_and_probe_module_api(engine):
    assert engine.n_blocks == 4
    assert engine.probe_modules() == ["self_attn.q_proj"]  # gamma and epsilon skip k/v/o or k/v
    assert engine.probe_modules(0) == engine.probe_modules(-4)
    with pytest.raises(ValueError, match="probe block 4 is out of range"):
        engine.probe_modules(4)


def test_a_lone_surrogate_is_a_clear_error(engine):
    with pytest.raises(ValueError, match=r"prompt 0 holds '\\udce9' at character 3, a lone surrogate"):
        engine.route("caf\udce9")
