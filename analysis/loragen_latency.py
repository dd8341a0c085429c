"""LoRA-Gen latency: one request with the system prompt in context vs with the generated adapter merged, and payback."""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Iterator

import numpy as np
import torch

from logo.loragen.generator import GeneratedLora


def chat_prompt(tokenizer, text: str, system: str | None) -> str:
    """The edge model's prompt: the input as a user turn, after `system` when given (else the template's own)."""
    messages = [{"role": "system", "content": system}] if system is not None else []
    messages.append({"role": "user", "content": text})
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def prompt_tokens(tokenizer, text: str, system: str | None) -> int:
    return len(tokenizer(chat_prompt(tokenizer, text, system), add_special_tokens=False)["input_ids"])


@contextlib.contextmanager
def merged(model: torch.nn.Module, lora: GeneratedLora) -> Iterator[float]:
    """W += B A in every module of the adapter while inside (reparameterised: no extra modules); yields merge ms."""
    saved = {}
    start = time.perf_counter()
    with torch.no_grad():
        for module, (a, b) in lora.factors.items():
            layer = model.get_submodule(module)
            saved[module] = layer.weight.detach().clone()
            delta = torch.from_numpy(b) @ torch.from_numpy(a)  # (d_out, r) @ (r, d_in) -> (d_out, d_in)
            layer.weight += delta.to(layer.weight.device, layer.weight.dtype)
    merge_ms = 1000 * (time.perf_counter() - start)
    try:
        yield merge_ms
    finally:
        with torch.no_grad():
            for module, weight in saved.items():
                model.get_submodule(module).weight.copy_(weight)


def time_request(model, tokenizer, prompt: str, new_tokens: int) -> tuple[float, float]:
    """(time to first token, end to end) in ms of one greedy request of exactly `new_tokens` tokens, batch 1."""
    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(model.device)
    with torch.no_grad():
        start = time.perf_counter()
        model(**ids).logits[:, -1].argmax(-1)  # prefill + the first token
        first = time.perf_counter()
        model.generate(
            **ids,
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
        )
        end = time.perf_counter()
    return 1000 * (first - start), 1000 * (end - first)


def latency_comparison(
    model, tokenizer, text: str, system: str, lora: GeneratedLora, new_tokens: int = 16, repeats: int = 5
) -> dict:
    """The same input, system prompt in context vs adapter merged into a copy (bare input); medians of `repeats`.

    The two kinds of request alternate, so a machine whose load drifts slows both alike.
    """
    adapted_model = copy.deepcopy(model)
    with_context = chat_prompt(tokenizer, text, system)
    bare = chat_prompt(tokenizer, text, None)
    with merged(adapted_model, lora) as merge_ms:
        time_request(model, tokenizer, with_context, new_tokens)  # warm-up of each
        time_request(adapted_model, tokenizer, bare, new_tokens)
        times = [
            (
                time_request(model, tokenizer, with_context, new_tokens),
                time_request(adapted_model, tokenizer, bare, new_tokens),
            )
            for _ in range(repeats)
        ]
    in_context, adapted = (
        {"ttft_ms": float(np.median([t[i][0] for t in times])), "e2e_ms": float(np.median([t[i][1] for t in times]))}
        for i in (0, 1)
    )
    one_off = lora.timings["total_ms"] + merge_ms
    saved = in_context["e2e_ms"] - adapted["e2e_ms"]
    return {
        "new_tokens": new_tokens,
        "repeats": repeats,
        "in_context": {**in_context, "prompt_tokens": prompt_tokens(tokenizer, text, system)},
        "merged": {**adapted, "prompt_tokens": prompt_tokens(tokenizer, text, None)},
        "speedup_e2e": in_context["e2e_ms"] / adapted["e2e_ms"],
        "speedup_ttft": in_context["ttft_ms"] / adapted["ttft_ms"],
        "generate_ms": lora.timings["total_ms"],
        "merge_ms": merge_ms,
        "payback_requests": float(np.ceil(one_off / saved)) if saved > 0 else float("inf"),
    }
