"""Request state shared through the model: engines on one model, nested reads under a waiting writer, queue time."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from logo import scoring
from logo.config import EngineConfig, GenerationConfig, RoutingConfig
from logo.engine import LoGoEngine
from logo.mixture import AdaptedModel, ReadWriteLock

PROMPT = "what is the capital of france ?"
HOLD_S = 1.0  # how long another request holds the model in the queue-time tests (long next to a probe)
TIMEOUT_S = 20  # a deadlocked thread is still alive after this


def _config(world, tmp_path, adapters) -> EngineConfig:
    return EngineConfig(
        base_model="tiny",
        adapters=tuple(str(world.pool_dir / a) for a in adapters),
        device="cpu",
        dtype="float32",
        cache_dir=tmp_path,
        reference_prompts=world.reference_file,
    )


def test_two_engines_on_one_model_each_apply_their_own_mixtures(tiny_world, tmp_path):
    """The second engine (with a module the first does not adapt: delta's up_proj) must not disable the first."""
    first_pool, second_pool = ("alpha", "beta", "gamma"), ("delta", "epsilon")
    alone_first = LoGoEngine(_config(tiny_world, tmp_path, first_pool), base=tiny_world.base())
    alone_second = LoGoEngine(_config(tiny_world, tmp_path, second_pool), base=tiny_world.base())
    base = tiny_world.base()
    first = LoGoEngine(_config(tiny_world, tmp_path, first_pool), base=base)
    second = LoGoEngine(_config(tiny_world, tmp_path, second_pool), base=base)
    assert first.adapted is second.adapted is AdaptedModel.of(base.model)
    for engine, alone, mixture in (
        (first, alone_first, {"beta": 0.7, "gamma": 0.3}),
        (second, alone_second, {"delta": 1.0}),
    ):
        for mode in ("mixture", "fused"):
            shared = scoring.logits(engine, [PROMPT], [mixture], mode)
            torch.testing.assert_close(shared, scoring.logits(alone, [PROMPT], [mixture], mode), rtol=0, atol=1e-5)
            assert not torch.allclose(shared, scoring.logits(engine, [PROMPT], [{}]))  # the mixture has an effect
    routed = first.generate(PROMPT, RoutingConfig(k=2), GenerationConfig(max_new_tokens=6))
    assert (
        routed.token_ids
        == alone_first.generate(PROMPT, RoutingConfig(k=2), GenerationConfig(max_new_tokens=6)).token_ids
    )


def test_nested_routing_inside_a_mixture_does_not_deadlock_under_a_waiting_fused_request(engine):
    adapted = engine.adapted
    factors = engine.mixture_factors([{"alpha": 1.0}])
    writer_waiting, results, errors = threading.Event(), {}, []

    def fused_request():
        writer_waiting.set()
        results["fused"] = engine.generate(PROMPT, generation=GenerationConfig(max_new_tokens=3, mode="fused"))

    def mixture_request():
        try:
            with adapted.applied(factors):
                writer = threading.Thread(target=fused_request, daemon=True)
                writer.start()
                writer_waiting.wait(TIMEOUT_S)
                deadline = time.monotonic() + TIMEOUT_S
                while not adapted.lock.writers_waiting and time.monotonic() < deadline:
                    time.sleep(0.01)  # until the fused request queues behind this one
                results["nested"] = engine.route(PROMPT, RoutingConfig(k=2))[0]  # a nested read
            writer.join(TIMEOUT_S)
        except BaseException as err:
            errors.append(err)

    thread = threading.Thread(target=mixture_request, daemon=True)
    thread.start()
    thread.join(TIMEOUT_S)
    assert not thread.is_alive(), "nested routing deadlocked behind the waiting fused request"
    assert not errors, errors
    assert results["nested"].selected == engine.route(PROMPT, RoutingConfig(k=2))[0].selected
    assert results["fused"].token_ids


@pytest.mark.parametrize(
    "outer, inner, match",
    [
        ("read", "write", "a fused request inside it would wait for itself"),
        ("write", "read", "cannot also read"),
        ("write", "write", "a fused request inside it would wait for itself"),
    ],
)
def test_the_lock_refuses_what_would_wait_for_itself(outer, inner, match):
    lock = ReadWriteLock()
    with getattr(lock, outer)(), pytest.raises(RuntimeError, match=match), getattr(lock, inner)():
        pass
    with lock.write():  # and it is free again afterwards
        pass


def _hold_the_model(engine, seconds: float) -> threading.Thread:
    """Another request holding the model exclusively (as a fused request does) for `seconds`."""
    held = threading.Event()

    def hold():
        with engine.adapted.lock.write():
            held.set()
            time.sleep(seconds)

    thread = threading.Thread(target=hold)
    thread.start()
    held.wait(TIMEOUT_S)
    return thread


def test_routing_reports_waiting_as_queue_time_not_probe_time(engine):
    engine.route(PROMPT)  # warm-up
    holder = _hold_the_model(engine, HOLD_S)
    routing = engine.route(PROMPT)[0]
    holder.join()
    assert routing.queue_ms >= HOLD_S * 1000 * 0.9
    assert routing.probe_ms < HOLD_S * 1000 / 2
    assert routing.to_dict()["timings"]["queue_ms"] == routing.queue_ms
    assert engine.route(PROMPT)[0].queue_ms < HOLD_S * 1000 / 2  # nobody holds it now


@pytest.mark.parametrize("mode", ["mixture", "fused"])
def test_generation_reports_waiting_as_queue_time_not_probe_or_merge_time(engine, mode):
    generation = GenerationConfig(max_new_tokens=3, mode=mode)
    engine.generate(PROMPT, generation=generation)  # warm-up
    holder = _hold_the_model(engine, HOLD_S)
    timings = engine.generate(PROMPT, generation=generation).timings
    holder.join()
    assert timings.queue_ms >= HOLD_S * 1000 * 0.9
    assert timings.probe_ms < HOLD_S * 1000 / 2 and timings.merge_ms < HOLD_S * 1000 / 2
    assert timings.total_ms >= timings.queue_ms  # the wall time still counts the wait


def test_merge_waiting_is_queue_time_when_a_mixture_is_given(engine):
    holder = _hold_the_model(engine, HOLD_S)
    timings = engine.generate(PROMPT, generation=GenerationConfig(max_new_tokens=2), mixture={"beta": 1.0}).timings
    holder.join()
    assert timings.queue_ms >= HOLD_S * 1000 * 0.9 and timings.merge_ms < HOLD_S * 1000 / 2
