"""PEFT LoRA adapter directories as plain factor dicts: read one, write one (fp16 safetensors), measure its norms.

For the study's synthetic adapters (hostile, distractors); the engine reads them like any other adapter.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

PREFIX = "base_model.model."


@dataclass(frozen=True)
class AdapterFactors:
    """module -> (A (r, d_in), B (d_out, r)) in float32, and the adapter_config.json it was saved with."""

    factors: dict[str, tuple[torch.Tensor, torch.Tensor]]
    config: dict

    @property
    def scaling(self) -> float:
        r, alpha = self.config["r"], self.config["lora_alpha"]
        return alpha / r**0.5 if self.config.get("use_rslora") else alpha / r

    def delta_norms(self) -> dict[str, float]:
        """module -> ||scaling * B A||_F, the size of the weight change the adapter makes there."""
        return {m: (self.scaling * b @ a).norm().item() for m, (a, b) in self.factors.items()}


def read_adapter(directory: Path) -> AdapterFactors:
    config = json.loads((directory / "adapter_config.json").read_text())
    if config.get("rank_pattern") or config.get("alpha_pattern"):
        raise ValueError(f"{directory}: per-module rank/alpha patterns are not supported by the study's generators")
    tensors = load_file(str(directory / "adapter_model.safetensors"))
    factors = {}
    for key, a in tensors.items():
        if key.endswith(".lora_A.weight"):
            module = key.removeprefix(PREFIX).removesuffix(".lora_A.weight")
            b = tensors[key.replace(".lora_A.", ".lora_B.")]
            factors[module] = (a.float(), b.float())
    return AdapterFactors(factors, config)


def write_adapter(directory: Path, adapter: AdapterFactors, card: dict) -> Path:
    """adapter_config.json, adapter_model.safetensors (fp16) and card.json saying what the adapter is."""
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for module, (a, b) in adapter.factors.items():
        tensors[f"{PREFIX}{module}.lora_A.weight"] = a.half().contiguous()
        tensors[f"{PREFIX}{module}.lora_B.weight"] = b.half().contiguous()
    save_file(tensors, str(directory / "adapter_model.safetensors"))
    (directory / "adapter_config.json").write_text(json.dumps(adapter.config, indent=2))
    (directory / "card.json").write_text(json.dumps(card, indent=2))
    return directory
