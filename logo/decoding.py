"""The token loop: prefill, then one cached step per token, with greedy or sampled choice and timestamps."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from transformers import DynamicCache, StaticCache

from .config import GenerationConfig
from .llama_step import LlamaSteps, StepGraphs
from .probe import position_ids

CHAIN_GREEDY = True  # greedy decoding over a captured step chains its replays (off: bench.engine_zoo's host-fed row)


@dataclass(frozen=True)
class DecodeTrace:
    """Generated tokens per row (end-of-sequence excluded) and when each was ready (ms since `start`)."""

    tokens: list[list[int]]
    times_ms: list[list[float]]
    prefill_ms: float
    decode_ms: float
    cuda_graph: bool = False  # whether the decode steps were replayed from a CUDA graph


def choose_tokens(logits: torch.Tensor, config: GenerationConfig, generator: torch.Generator | None) -> torch.Tensor:
    """Next token per row: argmax when temperature is 0, else top-k / top-p sampling. logits: (B, V) -> (B,)."""
    if config.temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits.float() / config.temperature
    if config.top_k:
        kth = torch.topk(logits, min(config.top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if config.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cumulative = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
        drop = cumulative - torch.softmax(sorted_logits, dim=-1) > config.top_p  # keep the token that crosses top_p
        logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _Steps:
    """What both step kinds share: the prefill of the prompt into `self.cache`."""

    def prefill(self) -> torch.Tensor:
        out = self.model(
            input_ids=self.input_ids,
            attention_mask=self.mask,
            position_ids=self.positions,
            past_key_values=self.cache,
            use_cache=True,
            logits_to_keep=1,
        )
        return out.logits[:, -1]  # (B, V)


class DynamicSteps(_Steps):
    """Prefill and single-token steps over a growing KV cache (HF's DynamicCache): any device, any length."""

    cuda_graph = False

    def __init__(self, model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, max_new_tokens: int):
        self.model, self.input_ids, self.mask = model, input_ids, attention_mask
        self.cache = DynamicCache()
        self.positions = position_ids(attention_mask)  # (B, T)
        self.next_pos = self.positions[:, -1:] + 1  # (B, 1)

    def step(self, chosen: torch.Tensor) -> torch.Tensor:
        self.mask = torch.cat([self.mask, torch.ones_like(self.mask[:, :1])], dim=1)
        out = self.model(
            input_ids=chosen[:, None],
            attention_mask=self.mask,
            position_ids=self.next_pos,
            past_key_values=self.cache,
            use_cache=True,
        )
        self.next_pos = self.next_pos + 1
        return out.logits[:, -1]


class StaticSteps(_Steps):
    """Prefill and single-token steps over a KV cache preallocated for prompt + max_new_tokens (HF's StaticCache).

    Every step has the same shapes and reads its inputs from fixed buffers, so on a GPU the step is captured
    once per request in a CUDA graph and then replayed: one launch per token instead of hundreds, which is
    what keeps a small model from being launch-bound. The capture happens inside the request, after any
    fused merge and with the request's mixture active, so the graph sees exactly the weights of this request;
    it is dropped when the request ends. On the CPU the same steps run eagerly (that is how they are tested).
    """

    def __init__(self, model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, max_new_tokens: int):
        self.model = model
        rows, length = input_ids.shape
        self.input_ids = input_ids
        self.cache = StaticCache(config=model.config, max_cache_len=length + max_new_tokens)
        # Future positions are marked real from the start: the causal mask hides them until they are written.
        self.mask = torch.cat([attention_mask, attention_mask.new_ones(rows, max_new_tokens)], dim=1)  # (B, T + new)
        self.positions = position_ids(attention_mask)  # (B, T)
        self.step_ids = input_ids.new_zeros(rows, 1)  # (B, 1): the fixed input buffer of every step
        self.step_pos = self.positions[:, -1:] + 1  # (B, 1), advanced in place
        self.cuda_graph = input_ids.device.type == "cuda"
        self._graph: torch.cuda.CUDAGraph | None = None
        self._logits: torch.Tensor | None = None  # the graph's output buffer

    def _forward_step(self) -> torch.Tensor:
        out = self.model(
            input_ids=self.step_ids,
            attention_mask=self.mask,
            position_ids=self.step_pos,
            past_key_values=self.cache,
            use_cache=True,
        )
        return out.logits[:, -1]

    def step(self, chosen: torch.Tensor) -> torch.Tensor:
        self.step_ids.copy_(chosen[:, None])
        if not self.cuda_graph:
            logits = self._forward_step()
        elif self._graph is None:
            # The first step runs eagerly on a side stream (the warm-up CUDA graphs need); then the step is
            # captured. Capturing records kernels without running them, so the cache is not advanced twice.
            device = self.step_ids.device
            stream = torch.cuda.Stream(device)
            stream.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(stream):
                logits = self._forward_step().clone()
                self.step_pos.add_(1)
                # torch.cuda.graph() would also empty the allocator's cache on every request; capture directly
                self._graph = torch.cuda.CUDAGraph()
                self._graph.capture_begin(capture_error_mode="thread_local")
                try:
                    self._logits = self._forward_step()
                finally:
                    self._graph.capture_end()
            torch.cuda.current_stream(device).wait_stream(stream)
            return logits
        else:
            self._graph.replay()
            logits = self._logits
        self.step_pos.add_(1)
        return logits


@torch.inference_mode()
def decode(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    config: GenerationConfig,
    eos_ids: set[int],
    pad_id: int,
    start: float,
    on_token: Callable[[list[list[int]]], None] | None = None,
    cancel: threading.Event | None = None,
    graphs: StepGraphs | None = None,
) -> DecodeTrace:
    """Generate up to config.max_new_tokens for a left-padded batch (B, T).

    `start` is the perf_counter() at which the request began, so timestamps include probe and merge.
    `on_token` sees every row's tokens so far after each step; `cancel` stops the loop early.
    `graphs` (the model's StepGraphs) decodes with the hand-written step over buffers preallocated once per
    shape (logo/llama_step.py), on a GPU replayed from a CUDA graph, on the CPU eagerly (there it decodes
    faster than transformers' dynamic cache, with the same tokens): the default on either device, and what
    config.cuda_graph=True asks for. Without them, for a model the step does not support, or while that
    shape serves another request, a GPU falls back to StaticSteps (a graph for this request alone) and the
    CPU to transformers' dynamic cache; config.cuda_graph=False always decodes with the dynamic cache.
    """
    on_gpu = input_ids.device.type == "cuda"
    static = config.cuda_graph if config.cuda_graph is not None else on_gpu  # the fallback's kind
    graph = None
    if config.cuda_graph is not False and graphs is not None and graphs.reason is None:
        graph = graphs.acquire(
            input_ids.shape[0], input_ids.shape[1] + config.max_new_tokens, graphs.adapted.active.get()
        )
    if graph is None:
        steps_kind = StaticSteps if static else DynamicSteps
        steps = steps_kind(model, input_ids, attention_mask, config.max_new_tokens)
        return _loop(steps, input_ids, config, eos_ids, pad_id, start, on_token, cancel)
    try:
        steps = LlamaSteps(model, graph, input_ids, attention_mask, graphs.adapted.active.get())
        return _loop(steps, input_ids, config, eos_ids, pad_id, start, on_token, cancel)
    finally:
        graph.lock.release()


def _loop(steps, input_ids, config, eos_ids, pad_id, start, on_token, cancel) -> DecodeTrace:
    """The token loop over prefill and steps of any kind."""
    if CHAIN_GREEDY and config.temperature == 0 and getattr(steps, "chains_greedy", False):
        return _chained_greedy(steps, input_ids, config, eos_ids, start, on_token, cancel)
    device = input_ids.device
    rows = input_ids.shape[0]
    generator = None
    if config.temperature > 0:
        generator = torch.Generator(device=device)
        generator.manual_seed(config.seed if config.seed is not None else torch.seed())
    eos = torch.tensor(sorted(eos_ids) if not config.ignore_eos else [-1], device=device)
    tokens: list[list[int]] = [[] for _ in range(rows)]
    times: list[list[float]] = [[] for _ in range(rows)]
    finished = torch.zeros(rows, dtype=torch.bool, device=device)

    t0 = time.perf_counter()
    logits = steps.prefill()  # (B, V)
    prefill_ms = decode_started = 0.0
    for step in range(config.max_new_tokens):
        chosen = choose_tokens(logits, config, generator)  # (B,)
        chosen = torch.where(finished, torch.full_like(chosen, pad_id), chosen)
        is_eos = torch.isin(chosen, eos)
        emit = ~finished & ~is_eos  # rows that produced a real token this step
        finished = finished | is_eos
        values, emitted, done = torch.stack([chosen, emit.long(), finished.long()]).tolist()  # one device sync
        now = (time.perf_counter() - start) * 1000
        if step == 0:
            prefill_ms = (time.perf_counter() - t0) * 1000
            decode_started = time.perf_counter()
        for row in range(rows):
            if emitted[row]:
                tokens[row].append(values[row])
                times[row].append(now)
        if on_token is not None:
            on_token(tokens)
        if all(done) or (cancel is not None and cancel.is_set()) or step == config.max_new_tokens - 1:
            break
        logits = steps.step(chosen)
    _sync(device)
    decode_ms = (time.perf_counter() - decode_started) * 1000 if decode_started else 0.0
    return DecodeTrace(
        tokens=tokens, times_ms=times, prefill_ms=prefill_ms, decode_ms=decode_ms, cuda_graph=steps.cuda_graph
    )


def _chained_greedy(steps, input_ids, config, eos_ids, start, on_token, cancel) -> DecodeTrace:
    """_loop's greedy tokens when each CUDA graph replay feeds the next (LlamaSteps.chains_greedy).

    The host queues replay t+1 before it reads token t (pinned copies, one event each), so the GPU does not wait
    for the host's bookkeeping between steps. The tokens are _loop's: a finished row keeps being fed its own
    argmax instead of padding, and what it generates is dropped (rows are independent); when every row has
    finished, the one replay already queued is computed and dropped.
    """
    rows, limit = input_ids.shape[0], config.max_new_tokens
    eos = set() if config.ignore_eos else set(eos_ids)
    tokens: list[list[int]] = [[] for _ in range(rows)]
    times: list[list[float]] = [[] for _ in range(rows)]
    finished = [False] * rows
    host = torch.empty(limit, rows, dtype=torch.long, pin_memory=True)  # token t of every row
    ready = [torch.cuda.Event(), torch.cuda.Event()]  # token t's copy has landed: at most two in flight

    def queue(step: int, chosen: torch.Tensor) -> None:
        host[step].copy_(chosen.view(rows), non_blocking=True)
        ready[step % 2].record()

    t0 = time.perf_counter()
    first = steps.prefill().argmax(dim=-1)  # (B,)
    steps.feed(first)
    queue(0, first)
    if limit > 1:
        queue(1, steps.step_greedy())
    prefill_ms = decode_started = 0.0
    for step in range(limit):
        ready[step % 2].synchronize()
        now = (time.perf_counter() - start) * 1000
        if step == 0:
            prefill_ms = (time.perf_counter() - t0) * 1000
            decode_started = time.perf_counter()
        for row, value in enumerate(host[step].tolist()):
            if finished[row]:
                continue
            if value in eos:
                finished[row] = True
                continue
            tokens[row].append(value)
            times[row].append(now)
        if on_token is not None:
            on_token(tokens)
        if all(finished) or (cancel is not None and cancel.is_set()) or step == limit - 1:
            break
        if step + 2 < limit:
            queue(step + 2, steps.step_greedy())
    _sync(input_ids.device)
    decode_ms = (time.perf_counter() - decode_started) * 1000
    return DecodeTrace(tokens=tokens, times_ms=times, prefill_ms=prefill_ms, decode_ms=decode_ms, cuda_graph=True)
