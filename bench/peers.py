"""The peers the engine is measured beside: transformers' generate (dynamic cache; static cache + torch.compile).

Also what the GPU benchmarks report about the engine's own decode step: CUDA kernels per step, eager and
replayed from the step's CUDA graph (torch.profiler). vLLM and other inference servers cannot be installed
on the machines these benchmarks run on, so they are not compared (every report says so).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import nn

from bench.reference import hf_generate
from logo.decoding import StaticSteps
from logo.engine import LoGoEngine

NO_SERVERS = "# vLLM, TGI, SGLang and other inference servers are not installable on these machines: not compared"


def hf_token_times(model: nn.Module, ids: torch.Tensor, mask: torch.Tensor, new_tokens: int) -> list[float]:
    """ms from the call to each new token of a greedy generate of exactly new_tokens tokens."""
    started = time.perf_counter()
    _, clock = hf_generate(model, ids, mask, new_tokens, ignore_eos=True)
    return [(t - started) * 1000 for t in clock.times]


def static_compiled(model: nn.Module) -> nn.Module:
    """transformers' documented fast path, in place: a static KV cache and forward under torch.compile.

    generation_config.cache_implementation = "static" and model.forward = torch.compile(model.forward,
    mode="reduce-overhead") (CUDA graphs inside the compiled forward on a GPU).
    """
    model.generation_config.cache_implementation = "static"
    model.forward = torch.compile(model.forward, mode="reduce-overhead")
    return model


def first_call_error(fn: Callable[[], object]) -> str | None:
    """Run a peer once (its compile happens here); the error as text, never hidden, or None when it ran."""
    try:
        fn()
    except Exception as error:  # a failing peer is reported with its error, not fatal
        lines = str(error).strip().splitlines()
        return f"{type(error).__name__}: {lines[0] if lines else ''}"[:400]
    return None


def _cuda_kernels(events) -> int:
    return sum(1 for e in events if e.device_type == torch.autograd.DeviceType.CUDA)


@torch.inference_mode()
def kernels_per_step(engine: LoGoEngine, prompt: str, mixture: dict[str, float] | None) -> dict[str, int]:
    """CUDA kernels of one decode step over the static cache: run eagerly, and replayed from its CUDA graph.

    mixture: adapter -> weight ({} or None: the base model). Counts every device-side event the profiler
    records in the step (kernels, memcpy and memset), so the graph's figure is what one replay launches.
    """
    from torch.profiler import ProfilerActivity, profile

    ids, mask = engine.encode([prompt])
    factors = engine.mixture_factors([mixture]) if mixture else None
    with engine.adapted.applied(factors):
        steps = StaticSteps(engine.model, ids, mask, 8)
        token = steps.prefill().argmax(dim=-1)  # (1,)
        with profile(activities=[ProfilerActivity.CUDA]) as eager:
            steps._forward_step()
            torch.cuda.synchronize()
        steps.step(token)  # eager warm-up on a side stream, then the capture
        with profile(activities=[ProfilerActivity.CUDA]) as graphed:
            steps.step(token)
            torch.cuda.synchronize()
    return {"eager": _cuda_kernels(eager.events()), "graph": _cuda_kernels(graphed.events())}
