"""A routed mixture of k adapters written as ONE standard PEFT LoRA adapter, so any LoRA server can serve it exactly.

The mixture is linear: sum_i w_i s_i B_i A_i = B' A' with A' = [A_1; ...; A_k] (rows stacked) and
B' = [w_1 s_1 B_1, ..., w_k s_k B_k] (columns side by side), a LoRA of rank sum_i r_i whose scaling is 1
(lora_alpha = r). Per module:
  1. take the adapters of the mixture that adapt it, at their own rank (no padding);
  2. stack their A's (r_i, d_in) into A' (R, d_in) and their B's, each times w_i * s_i, into B' (d_out, R);
  3. write A' and B' in float32 under PEFT's key names, and r = lora_alpha = R (rank_pattern and alpha_pattern
     name the modules whose R differs from the most common one).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import save_file

from .adapters import ADAPTER_CONFIG, ADAPTER_WEIGHTS, PEFT_PREFIX
from .pool import AdapterPool
from .results import Routing

CARD = "card.json"


def mixture_factors(pool: AdapterPool, mixture: Mapping[str, float]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Steps 1-2: module -> (A' (R, d_in), B' (d_out, R)) in float32, with w_i * s_i folded into B'."""
    factors = {}
    for module, stack in pool.modules.items():
        a_parts, b_parts = [], []
        for name, weight in mixture.items():
            i = pool.index(name)
            if not stack.covered[i]:
                continue  # this adapter leaves the module alone
            a, b = _own_factors(pool, i, module)  # (r_i, d_in), (d_out, r_i)
            a_parts.append(a.float())
            b_parts.append(b.float() * (float(weight) * float(stack.scaling[i])))
        if a_parts:
            factors[module] = (torch.cat(a_parts, dim=0), torch.cat(b_parts, dim=1))  # (R, d_in), (d_out, R)
    return factors


def _own_factors(pool: AdapterPool, i: int, module: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Adapter i's factors at its own rank: from its files when the pool kept them, else from the padded stack."""
    if pool.adapters:
        a, b = pool.adapters[i].factors[module]
        return a.cpu(), b.cpu()
    stack = pool.modules[module]
    return stack.a[i].cpu(), stack.b[i].cpu()  # a random pool: one rank for all, no padding


def peft_config(factors: Mapping[str, tuple[torch.Tensor, torch.Tensor]], base_model: str) -> dict:
    """Step 3: a plain LoRA adapter_config.json whose scaling is 1 at every module (lora_alpha = r)."""
    ranks = {module: a.shape[0] for module, (a, _) in factors.items()}
    common = Counter(ranks.values()).most_common(1)[0][0]
    pattern = {module: r for module, r in ranks.items() if r != common}
    return {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base_model,
        "r": common,
        "lora_alpha": common,
        "rank_pattern": pattern,
        "alpha_pattern": dict(pattern),
        "target_modules": sorted(factors),
        "lora_dropout": 0.0,
        "bias": "none",
        "fan_in_fan_out": False,
        "use_rslora": False,
        "init_lora_weights": True,
        "modules_to_save": None,
    }


def export_mixture(
    pool: AdapterPool, mixture: Routing | Mapping[str, float], directory: Path | str, base_model: str = ""
) -> Path:
    """Write the mixture (a Routing, or adapter -> weight) as one PEFT LoRA adapter directory; return the directory.

    The directory gets adapter_model.safetensors, adapter_config.json and card.json (the mixture, where each
    adapter came from and, for a Routing, the routing itself). It must be new or empty.
    """
    routing = mixture if isinstance(mixture, Routing) else None
    weights = dict(routing.mixture if routing else mixture)
    if not weights:
        raise ValueError("the mixture is empty (the base model): there is no adapter to export")
    for name, weight in weights.items():
        pool.index(name)  # an unknown name is a KeyError naming the pool's adapters
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
            raise ValueError(f"weight of adapter {name!r} is {weight!r}: weights must be finite numbers")
    directory = Path(directory)
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise FileExistsError(f"{directory} exists and is not an empty directory: export into a new directory")
    factors = mixture_factors(pool, weights)
    tensors = {}
    for module, (a, b) in factors.items():
        tensors[f"{PEFT_PREFIX}{module}.lora_A.weight"] = a.contiguous()
        tensors[f"{PEFT_PREFIX}{module}.lora_B.weight"] = b.contiguous()
    directory.mkdir(parents=True, exist_ok=True)
    save_file(tensors, directory / ADAPTER_WEIGHTS, metadata={"format": "pt"})
    (directory / ADAPTER_CONFIG).write_text(json.dumps(peft_config(factors, base_model), indent=2) + "\n")
    card = {
        "what": "a LoGo routed mixture as one LoRA: delta = sum_i w_i s_i B_i A_i, scaling 1, rank sum_i r_i",
        "mixture": weights,
        "sources": {name: _source(pool, name) for name in weights},
        "routing": routing.to_dict() if routing else None,
    }
    (directory / CARD).write_text(json.dumps(card, indent=2) + "\n")
    return directory


def _source(pool: AdapterPool, name: str) -> str | None:
    return pool.adapters[pool.index(name)].source if pool.adapters else None
