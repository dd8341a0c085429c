"""The official LoGo implementation's approach, rebuilt as the benchmarks' reference: PEFT multi-adapter serving.

What archon159/LoGo does per instance (batch size 1), and what this class repeats:
  1. Probe: a full forward of the prompt with output_hidden_states, then a Python loop over the N adapters,
     each computing its LoRA output s_i B_i A_i h at the probe module from h = hidden_states[T][last token].
  2. Signals from those outputs; top-k; weights = normalised signals.
  3. set_adapter(selected) on a PeftMixedModel holding all N adapters, each selected adapter's scaling
     multiplied by its weight, then HF `generate` (which runs the prefill again).
Two deliberate departures, both in the reference's favour or needed for a fair comparison:
  - the probe runs with the adapters disabled (the official probe runs under the previous instance's
    selection, which makes a probe depend on the input before it);
  - the PEFT layers share the pool's bf16 tensors instead of holding fp32 copies (PEFT's default upcast),
    so the reference fits beside the engine at N = 1000 and does no extra arithmetic; they are mounted
    layer by layer rather than by N calls of add_adapter (quadratic in N), which changes nothing at run time.
The signal, top-k and normalisation are the engine's functions (app/signals.py): the maths is written once;
what this class measures is the approach around it (Python loops, PEFT's per-adapter forward).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from peft import LoraConfig, get_peft_model
from torch import nn
from transformers.generation.streamers import BaseStreamer

from logo.mixture import MixtureLinear
from logo.pool import AdapterPool
from logo.probe import block_index
from logo.signals import select_top_k, signal_from_outputs


class TokenClock(BaseStreamer):
    """An HF `generate` streamer that timestamps every new token (the first `put` is the prompt)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._prompt_seen = False

    def put(self, value) -> None:
        if self._prompt_seen:
            self.times.append(time.perf_counter())
        self._prompt_seen = True

    def end(self) -> None:
        pass


@dataclass(frozen=True)
class ReferenceResult:
    selected: tuple[str, ...]
    weights: tuple[float, ...]
    signals: tuple[float, ...]
    token_ids: tuple[int, ...]
    probe_ms: float
    total_ms: float
    token_times_ms: tuple[float, ...]  # since the request began, probe included


def hf_generate(model: nn.Module, ids: torch.Tensor, mask: torch.Tensor, max_new_tokens: int, ignore_eos: bool):
    """Greedy HF generate of one prompt; returns (new token ids, TokenClock)."""
    clock = TokenClock()
    extra = {"min_new_tokens": max_new_tokens} if ignore_eos else {}
    out = model.generate(
        input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False, streamer=clock, **extra
    )
    return out[0, ids.shape[1] :].tolist(), clock


def _linear_path(model: nn.Module, name: str) -> str:
    """Where the nn.Linear of an adapted module lives (inside our MixtureLinear when an engine wrapped it)."""
    return f"{name}.base" if isinstance(model.get_submodule(name), MixtureLinear) else name


def _mount(layer, name: str, a: torch.Tensor, b: torch.Tensor, scaling: float) -> None:
    """One adapter in one PEFT LoRA layer, in the per-adapter state PEFT's LoraLayer.update_layer sets."""
    rank = a.shape[0]
    lora_a = nn.Linear(a.shape[1], rank, bias=False, device="meta")
    lora_b = nn.Linear(rank, b.shape[0], bias=False, device="meta")
    lora_a.weight = nn.Parameter(a, requires_grad=False)
    lora_b.weight = nn.Parameter(b, requires_grad=False)
    layer.lora_A[name], layer.lora_B[name], layer.lora_dropout[name] = lora_a, lora_b, nn.Identity()
    layer.r[name], layer.lora_alpha[name], layer.scaling[name] = rank, rank * scaling, scaling
    layer.lora_bias[name] = layer.use_rslora[name] = layer.use_dora[name] = False


class OfficialReference:
    """All N adapters of `pool` mounted in a PeftMixedModel around `model` (in place), served the official way."""

    def __init__(
        self, model: nn.Module, pool: AdapterPool, probe_block: int = -1, probe_module: str = "self_attn.q_proj"
    ):
        self.pool = pool
        self.names = list(pool.names)
        targets = {_linear_path(model, name): name for name in pool.modules}
        rank = next(iter(pool.modules.values())).a.shape[1]
        config = LoraConfig(
            r=rank, lora_alpha=rank, target_modules=sorted(targets), lora_dropout=0.0, init_lora_weights=False
        )
        self.model = get_peft_model(model, config, adapter_name=self.names[0], mixed=True)
        # The other N-1 adapters go straight into each LoRA layer's per-adapter dicts, as PEFT's update_layer
        # fills them: add_adapter walks the whole model per adapter and update_layer revisits every mounted
        # adapter, both quadratic in N (260 adapters took 8.5 minutes). The layers share the pool's tensors.
        self.layers = {}
        for path, module_name in targets.items():
            layer = self.model.base_model.model.get_submodule(path)
            stack = pool.modules[module_name]
            for i, (name, scaling) in enumerate(zip(self.names, stack.scaling.tolist(), strict=True)):
                _mount(layer, name, stack.a[i], stack.b[i], scaling)  # (r, d_in), (d_out, r)
            self.layers[module_name] = layer
        for name in self.names[1:]:
            self.model.peft_config[name] = config
        self.model.requires_grad_(False)
        self.model.eval()
        self._scaling = {m: dict(layer.scaling) for m, layer in self.layers.items()}
        self.block = block_index(model, probe_block)
        self.probe_layer = next(
            layer for m, layer in self.layers.items() if m.endswith(f".{self.block}.{probe_module}")
        )

    @torch.inference_mode()
    def probe(self, ids: torch.Tensor, mask: torch.Tensor, signal: str) -> torch.Tensor:
        """Step 1-2: full forward, hidden_states[T] at the last token, one adapter at a time. -> (N,)"""
        with self.model.disable_adapter():
            out = self.model(input_ids=ids, attention_mask=mask, output_hidden_states=True, logits_to_keep=1)
        h = out.hidden_states[self.block][0, -1]  # (d_in,): the residual stream before block T
        layer = self.probe_layer
        outputs = [layer.lora_B[n](layer.lora_A[n](h)) * layer.scaling[n] for n in self.names]  # N x (d_out,)
        return signal_from_outputs(torch.stack(outputs)[None].float(), signal)[0]

    def generate(
        self, ids: torch.Tensor, mask: torch.Tensor, k: int, signal: str, max_new_tokens: int, ignore_eos: bool = False
    ) -> ReferenceResult:
        """One instance, the official way: probe, then set_adapter with scaled scalings, then HF generate."""
        started = time.perf_counter()
        signals = self.probe(ids, mask, signal)
        index, weights = select_top_k(signals[None].cpu(), k)  # (1, k) each
        selected = [self.names[i] for i in index[0].tolist()]
        probe_ms = (time.perf_counter() - started) * 1000
        self.model.set_adapter(selected)
        try:
            for module, layer in self.layers.items():
                for name, weight in zip(selected, weights[0].tolist(), strict=True):
                    layer.scaling[name] = self._scaling[module][name] * weight
            with torch.inference_mode():
                tokens, clock = hf_generate(self.model, ids, mask, max_new_tokens, ignore_eos)
        finally:
            for module, layer in self.layers.items():
                layer.scaling.update(self._scaling[module])
        return ReferenceResult(
            selected=tuple(selected),
            weights=tuple(weights[0].tolist()),
            signals=tuple(signals.tolist()),
            token_ids=tuple(tokens),
            probe_ms=probe_ms,
            total_ms=(time.perf_counter() - started) * 1000,
            token_times_ms=tuple((t - started) * 1000 for t in clock.times),
        )

    def generate_many(
        self, batches: Sequence[tuple[torch.Tensor, torch.Tensor]], k: int, signal: str, max_new_tokens: int
    ) -> list[ReferenceResult]:
        """The per-instance loop the official code runs over an evaluation set."""
        return [self.generate(ids, mask, k, signal, max_new_tokens, ignore_eos=True) for ids, mask in batches]
