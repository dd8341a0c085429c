"""The token loop: prefill, then one cached step per token, with greedy or sampled choice and timestamps."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from .config import GenerationConfig
from .probe import position_ids


@dataclass(frozen=True)
class DecodeTrace:
    """Generated tokens per row (end-of-sequence excluded) and when each was ready (ms since `start`)."""

    tokens: list[list[int]]
    times_ms: list[list[float]]
    prefill_ms: float
    decode_ms: float


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
) -> DecodeTrace:
    """Generate up to config.max_new_tokens for a left-padded batch (B, T).

    `start` is the perf_counter() at which the request began, so timestamps include probe and merge.
    `on_token` sees every row's tokens so far after each step; `cancel` stops the loop early.
    """
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
    positions = position_ids(attention_mask)  # (B, T)
    out = model(
        input_ids=input_ids, attention_mask=attention_mask, position_ids=positions, use_cache=True, logits_to_keep=1
    )
    cache, next_pos = out.past_key_values, positions[:, -1:] + 1  # (B, 1)
    logits = out.logits[:, -1]  # (B, V)
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
        attention_mask = torch.cat([attention_mask, torch.ones_like(attention_mask[:, :1])], dim=1)
        out = model(
            input_ids=chosen[:, None],
            attention_mask=attention_mask,
            position_ids=next_pos,
            past_key_values=cache,
            use_cache=True,
        )
        cache, next_pos, logits = out.past_key_values, next_pos + 1, out.logits[:, -1]
    _sync(device)
    decode_ms = (time.perf_counter() - decode_started) * 1000 if decode_started else 0.0
    return DecodeTrace(tokens=tokens, times_ms=times, prefill_ms=prefill_ms, decode_ms=decode_ms)
