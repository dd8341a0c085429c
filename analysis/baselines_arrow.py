"""PEFT's Arrow router over the engine's adapter pool, on its own copy of the base model (a generating baseline)."""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import TYPE_CHECKING

import torch
from safetensors.torch import save_file

from logo.base_model import BaseModel, load_base_model
from logo.config import GenerationConfig
from logo.decoding import decode
from logo.pool import ADAPTER_WEIGHTS, PEFT_PREFIX, LoraAdapter

if TYPE_CHECKING:
    from logo.engine import LoGoEngine


def arrow_adapter_dirs(adapters: Sequence[LoraAdapter], workdir: Path) -> list[Path]:
    """Adapter directories that `create_arrow_model` accepts: the originals, or equivalent copies under `workdir`.

    PEFT's Arrow stacks its experts, so it refuses adapters that differ in rank or in adapted modules.
    When they do, each adapter is rewritten with the same function on a common footprint:
    - rank padded with zeros to the largest rank (B A is unchanged, so is its top singular vector);
    - every module any adapter adapts, with zero factors where this one does not (delta 0, prototype 0,
      so Arrow scores it |<x, 0>| = 0 there and picks it only when fewer than top_k experts have a delta);
    - its scaling (alpha/r or alpha/sqrt(r), per module) folded into B, with lora_alpha = r (scaling 1).
    """
    modules = sorted({m for a in adapters for m in a.factors})
    ranks = {lora_a.shape[0] for a in adapters for lora_a, _ in a.factors.values()}
    if len(ranks) == 1 and all(set(a.factors) == set(modules) for a in adapters):
        return [Path(a.source) for a in adapters]
    rank = max(ranks)
    # module -> (d_out, d_in)
    shapes = {m: (lora_b.shape[0], lora_a.shape[1]) for a in adapters for m, (lora_a, lora_b) in a.factors.items()}
    return [_write_padded_copy(a, modules, shapes, rank, Path(workdir) / a.name) for a in adapters]


def _write_padded_copy(
    adapter: LoraAdapter, modules: list[str], shapes: dict[str, tuple[int, int]], rank: int, directory: Path
) -> Path:
    from peft import LoraConfig

    dtype = next(iter(adapter.factors.values()))[0].dtype
    tensors = {}
    for module in modules:
        d_out, d_in = shapes[module]
        a, b = torch.zeros(rank, d_in, dtype=dtype), torch.zeros(d_out, rank, dtype=dtype)  # (r, d_in), (d_out, r)
        if module in adapter.factors:
            a0, b0 = adapter.factors[module]
            a[: a0.shape[0]] = a0
            b[:, : b0.shape[1]] = (b0.double() * adapter.scalings[module]).to(dtype)
        tensors[f"{PEFT_PREFIX}{module}.lora_A.weight"] = a
        tensors[f"{PEFT_PREFIX}{module}.lora_B.weight"] = b
    directory.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(directory / ADAPTER_WEIGHTS))
    config = LoraConfig(r=rank, lora_alpha=rank, target_modules=modules, lora_dropout=0.0, bias="none")
    config.save_pretrained(directory)
    return directory


class ArrowBaseline:
    """Arrow (Ostapenko et al., 2024) as PEFT implements it (`ArrowConfig`, `create_arrow_model`), per token and layer:

    1. Prototype of adapter i in each adapted module: v_i = top right singular vector of B_i A_i
       (power iteration, seeded by `seed`).
    2. For each token's input x of that module: scores |<x, v_i>| for all adapters.
    3. Keep the top_k = k adapters; coefficients c = softmax(scores / router_temperature) over them.
    4. y = W0 x + sum_i c_i s_i B_i A_i x.

    PEFT wraps the base model's layers itself, so Arrow runs on a separate copy of the base model: `base`
    (handed over: PEFT modifies it in place) or, by default, a fresh load of the engine's base model, device and
    dtype. Prompts are wrapped and tokenised as the engine does, and decoded with the engine's greedy loop.

    Leave-one-out: Arrow cannot mask experts, so a model is built per excluded set. Only the latest is kept:
    a new set unloads PEFT's layers (restoring the base model) and loads the remaining adapters again.
    Not thread-safe: one caller at a time.
    """

    def __init__(
        self,
        engine: LoGoEngine,
        k: int = 3,
        router_temperature: float = 1.0,
        *,
        base: BaseModel | None = None,
        seed: int | None = 0,
        batch_size: int = 16,
    ):
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= len(engine.pool):
            raise ValueError(f"k={k!r} must be an integer in 1..{len(engine.pool)} (the pool size)")
        if router_temperature <= 0:
            raise ValueError(f"router_temperature must be > 0, got {router_temperature}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.engine = engine
        self.k = k
        self.router_temperature = router_temperature
        self.seed = seed
        self.batch_size = batch_size
        self._base = base
        self._model = None  # the PEFT Arrow model for `_excluded`, built on first use
        self._excluded: frozenset[str] | None = None

    def prepare(self, exclude: Collection[str] = ()) -> float:
        """Build (or keep) the Arrow model for the pool minus `exclude`; returns the seconds spent building."""
        excluded = frozenset(exclude)
        for name in excluded:
            self.engine.pool.index(name)  # an unknown name is an error, not a silent no-op
        if self._model is not None and excluded == self._excluded:
            return 0.0
        from peft import ArrowConfig, create_arrow_model

        started = time.perf_counter()
        adapters = [a for a in self.engine.pool.adapters if a.name not in excluded]
        if self.k > len(adapters):
            raise ValueError(
                f"k={self.k} is larger than the {len(adapters)} adapters left after excluding {sorted(excluded)}"
            )
        if self._model is not None:
            self._model.unload()  # takes PEFT's layers out of the base model, in place
            self._model = self._excluded = None
        config = ArrowConfig(top_k=self.k, router_temperature=self.router_temperature, rng_seed=self.seed)
        with TemporaryDirectory(prefix="arrow-adapters-") as workdir:  # copies are read into memory, then dropped
            paths = arrow_adapter_dirs(adapters, Path(workdir))
            self._model = create_arrow_model(self._load_base().model, [str(p) for p in paths], config).eval()
        self._excluded = excluded
        return time.perf_counter() - started

    def _load_base(self) -> BaseModel:
        if self._base is None:
            cfg = self.engine.config
            self._base = load_base_model(cfg.base_model, device=cfg.device, dtype=cfg.dtype, cache_dir=cfg.cache_dir)
        return self._base

    def generate(self, prompts: Sequence[str], max_new_tokens: int, exclude: Collection[str] = ()) -> list[str]:
        """Greedy answers of the Arrow-routed model, `batch_size` prompts at a time (left-padded)."""
        prompts = list(prompts)
        if not prompts:
            raise ValueError("no prompts given: pass at least one prompt")
        self.prepare(exclude)
        # eager steps: PEFT's Arrow router copies host tensors to the GPU in its forward, which a CUDA graph cannot hold
        config = GenerationConfig(max_new_tokens=max_new_tokens, cuda_graph=False)
        device = next(self._model.parameters()).device
        texts: list[str] = []
        for start in range(0, len(prompts), self.batch_size):
            # the engine's chat template, tokenisation and padding, so both read the same tokens
            ids, mask = self.engine.encode(prompts[start : start + self.batch_size])  # (B, T) each
            trace = decode(  # the engine's greedy loop (decode runs under inference_mode)
                self._model,
                ids.to(device),
                mask.to(device),
                config,
                self.engine.eos_ids,
                self.engine.pad_id,
                time.perf_counter(),
            )
            texts += [self.engine.tokenizer.decode(tokens, skip_special_tokens=True) for tokens in trace.tokens]
        return texts
