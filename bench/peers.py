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
from logo.llama_step import LlamaSteps

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
def kernels_per_step(engine: LoGoEngine, prompt: str, mixture: dict[str, float] | None) -> dict[str, int | str]:
    """CUDA kernels of one decode step: transformers' forward over its static cache (eager), the engine's step
    run eagerly over its buffers, and one replay of the engine's step graph (logo/llama_step.py).

    mixture: adapter -> weight ({} or None: the base model). Counts every device-side event the profiler
    records in the step (kernels, memcpy and memset), so the graph's figure is what one replay launches.
    `path` says which decode path the engine used (its fallback reason when not the hand-written step).
    """
    from torch.profiler import ProfilerActivity, profile

    ids, mask = engine.encode([prompt])
    factors = engine.mixture_factors([mixture]) if mixture else None
    counts: dict[str, int | str] = {"eager": "-", "graph": "-"}
    with engine.adapted.applied(factors):
        steps = StaticSteps(engine.model, ids, mask, 8)
        steps.prefill()
        with profile(activities=[ProfilerActivity.CUDA]) as eager:
            steps._forward_step()
            torch.cuda.synchronize()
        counts["hf eager"] = _cuda_kernels(eager.events())
        graphs = engine.step_graphs
        counts["path"] = graphs.reason or (
            "hand-written step"
            + (f", compile failed: {graphs.compile_error}" if graphs.compile_error else ", torch.compile per block")
        )
        if graphs.reason is not None:
            return counts
        graph = graphs.acquire(1, ids.shape[1] + 8, factors)
        if graph is None:
            counts["path"] = "shape busy"
            return counts
        try:
            token = LlamaSteps(engine.model, graph, ids, mask, factors).prefill().argmax(dim=-1)
            graph.step_ids.copy_(token[:, None])
            with profile(activities=[ProfilerActivity.CUDA]) as step_eager:
                graph.forward_step()
                torch.cuda.synchronize()
            with profile(activities=[ProfilerActivity.CUDA]) as replay:
                graph.step()
                torch.cuda.synchronize()
        finally:
            graph.lock.release()
    counts["eager"] = _cuda_kernels(step_eager.events())
    counts["graph"] = _cuda_kernels(replay.events()) if graph.graph is not None else "no graph"
    return counts


def kernels_line(engine: LoGoEngine, prompt: str, label: str, mixture: dict[str, float] | None) -> str:
    """The report line of kernels_per_step; an error is printed in it, never fatal to the benchmark."""
    try:
        c = kernels_per_step(engine, prompt, mixture)
    except Exception as error:  # the figure is missing, the run goes on
        return f"#   CUDA kernels per decode step, {label}: not counted ({type(error).__name__}: {error})"[:400]
    return (
        f"#   CUDA kernels per decode step, {label}: transformers eager {c['hf eager']}; engine step eager "
        f"{c['eager']}, one graph replay {c['graph']} ({c['path']})"
    )
