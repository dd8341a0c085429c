"""LoRA-Gen latency: one request with the system prompt in context vs with the generated adapter merged, and payback."""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Iterator, Mapping

import numpy as np
import torch

from logo.loragen.generator import GeneratedLora
from logo.loragen.prompts import edge_prompt


def chat_prompt(tokenizer, text: str, system: str | None) -> str:
    """The edge model's prompt: the input as a user turn, after `system` when given (else the template's own)."""
    return edge_prompt(tokenizer, text, system)


def prompt_tokens(tokenizer, text: str, system: str | None) -> int:
    return len(tokenizer(chat_prompt(tokenizer, text, system), add_special_tokens=False)["input_ids"])


def _linear(model: torch.nn.Module, module: str) -> torch.nn.Linear:
    """The nn.Linear at `module`, also when an engine has wrapped it (its MixtureLinear keeps it as .base)."""
    layer = model.get_submodule(module)
    return getattr(layer, "base", layer)


@contextlib.contextmanager
def merged_factors(model: torch.nn.Module, factors: Mapping) -> Iterator[float]:
    """W += B A for every module -> (A (r, d_in), B (d_out, r)) while inside (scaling folded into B), restored
    exactly on exit; yields the merge's milliseconds (synchronised on a GPU)."""
    saved = {}
    device = next(model.parameters()).device
    _sync(device)
    start = time.perf_counter()
    with torch.no_grad():
        for module, (a, b) in factors.items():
            layer = _linear(model, module)
            saved[module] = layer.weight.detach().clone()
            a, b = (torch.as_tensor(x).to(layer.weight.device, torch.float32) for x in (a, b))
            layer.weight += (b @ a).to(layer.weight.dtype)  # (d_out, r) @ (r, d_in) -> (d_out, d_in)
    _sync(device)
    merge_ms = 1000 * (time.perf_counter() - start)
    try:
        yield merge_ms
    finally:
        with torch.no_grad():
            for module, weight in saved.items():
                _linear(model, module).weight.copy_(weight)


def merged(model: torch.nn.Module, lora: GeneratedLora):
    """A generated adapter merged into the edge weights (reparameterised: no extra modules); yields merge ms."""
    return merged_factors(model, lora.factors)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_request(model, tokenizer, prompt: str, new_tokens: int) -> tuple[float, float]:
    """(time to first token, end to end) in ms of one greedy request of exactly `new_tokens` tokens, batch 1."""
    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(model.device)
    with torch.no_grad():
        _sync(model.device)
        start = time.perf_counter()
        model(**ids).logits[:, -1].argmax(-1).item()  # prefill + the first token (.item() waits for a GPU)
        first = time.perf_counter()
        model.generate(
            **ids,
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
        )
        _sync(model.device)
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
