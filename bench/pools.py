"""Random LoRA pools of a given shape, written as real PEFT adapter directories, for benchmarks."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from logo.probe import decoder_blocks


def write_random_pool(
    model: nn.Module,
    directory: Path,
    n_adapters: int,
    rank: int = 8,
    alpha: int = 16,
    targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj"),
    seed: int = 0,
    dtype: torch.dtype = torch.float16,
) -> Path:
    """N adapters with random A and B (std chosen so deltas are about 1% of typical weights) on `targets`."""
    generator = torch.Generator().manual_seed(seed)
    blocks = decoder_blocks(model)
    prefix = next(name for name, m in model.named_modules() if m is blocks)
    shapes = {}
    for index, block in enumerate(blocks):
        for name, module in block.named_modules():
            if isinstance(module, nn.Linear) and name.rsplit(".", 1)[-1] in targets:
                shapes[f"{prefix}.{index}.{name}"] = (module.in_features, module.out_features)
    for i in range(n_adapters):
        tensors = {}
        for module, (d_in, d_out) in shapes.items():
            key = f"base_model.model.{module}"
            tensors[f"{key}.lora_A.weight"] = (torch.randn(rank, d_in, generator=generator) / d_in**0.5).to(dtype)
            tensors[f"{key}.lora_B.weight"] = (torch.randn(d_out, rank, generator=generator) * 0.01).to(dtype)
        out = directory / f"random_{i:04d}"
        out.mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(out / "adapter_model.safetensors"))
        config = {"peft_type": "LORA", "r": rank, "lora_alpha": alpha, "target_modules": list(targets)}
        (out / "adapter_config.json").write_text(json.dumps(config))
    return directory
