"""The LoGo engine: one probe pass routes each prompt to a weighted top-k of the pool, then generates with it.

Algorithm (LoGo, arXiv 2511.07129, with the corrections of ../shared/LOGO.md):
  1. Probe: run the base model alone up to the probe module of block T and read its input h.
  2. Aggregate h over tokens (last non-padding token by default).
  3. Signal: o_i = s_i B_i A_i h for all N adapters at once; norm ||o_i|| or inverse entropy of softmax(o_i).
     Optionally calibrate it against the adapter's own statistics on reference prompts.
  4. Select the top-k adapters.
  5. Weights w_i = score_i / sum_j score_j over the selection.
  6. Generate with y = W0 x + sum_i w_i s_i B_i A_i x in every adapted module: as a per-row stacked
     low-rank product ("mixture") or merged into W0 for the request ("fused").
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, replace

import torch

from .base_model import BaseModel, load_base_model
from .calibration import (
    CalibrationStats,
    calibration_key,
    load_cached,
    read_reference_prompts,
    save_cached,
)
from .config import EngineConfig, GenerationConfig, ProbeConfig, RoutingConfig
from .decoding import decode
from .mixture import Factors, ReadWriteLock, fused, wrap_modules
from .pool import AdapterPool
from .probe import block_index, position_ids, probe_inputs_at_blocks, probe_module_name
from .results import Generation, Routing, Timings
from .signals import calibrate, lora_outputs, select_top_k, signal_from_outputs
from .streaming import GenerationStream

PROBE_BATCH = 32  # prompts per probe forward: bounds activation memory for long prompt lists


class LoGoEngine:
    """Routes prompts over an adapter pool and generates with the weighted mixture. Thread-safe."""

    def __init__(
        self, config: EngineConfig | None = None, *, base: BaseModel | None = None, pool: AdapterPool | None = None
    ):
        self.config = config or EngineConfig()
        self.base = base or load_base_model(
            self.config.base_model, device=self.config.device, dtype=self.config.dtype, cache_dir=self.config.cache_dir
        )
        self.model, self.tokenizer = self.base.model, self.base.tokenizer
        self.pool = pool if pool is not None else AdapterPool.load(self.config.adapters, self.model)
        self._active: contextvars.ContextVar[Factors | None] = contextvars.ContextVar(
            f"logo-mixture-{id(self)}", default=None
        )
        self._layers = wrap_modules(self.model, list(self.pool.modules), self._active)
        self._lock = ReadWriteLock()
        self._calibration: dict[str, CalibrationStats] = {}
        self._calibration_lock = threading.Lock()
        self.device = next(self.model.parameters()).device
        eos = self.model.generation_config.eos_token_id
        eos = eos if eos is not None else self.tokenizer.eos_token_id
        self.eos_ids = set(eos) if isinstance(eos, (list, tuple)) else {eos}
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else min(self.eos_ids)

    @property
    def adapter_names(self) -> tuple[str, ...]:
        return self.pool.names

    @property
    def default_routing(self) -> RoutingConfig:
        """The paper's method (raw norm, last block q_proj) with k = 3, or the whole pool when it is smaller."""
        return RoutingConfig(k=min(3, len(self.pool)))

    # ---------------------------------------------------------------- prompts

    def format_prompt(self, prompt: str) -> str:
        """The text the model actually reads: the prompt inside the chat template, unless disabled."""
        if self.config.chat_template and self.tokenizer.chat_template:
            return self.tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
            )
        return prompt

    def _check_prompts(self, prompts: str | Sequence[str]) -> list[str]:
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        if not prompts:
            raise ValueError("no prompts given: pass at least one prompt")
        for i, prompt in enumerate(prompts):
            if not isinstance(prompt, str):
                raise TypeError(f"prompt {i} is a {type(prompt).__name__}, not a string")
            if not prompt.strip():
                raise ValueError(f"prompt {i} is empty: type a question or an instruction")
        return prompts

    def _encode(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-padded token ids and attention mask, (B, T) each."""
        templated = self.config.chat_template and bool(self.tokenizer.chat_template)
        batch = self.tokenizer(
            [self.format_prompt(p) for p in prompts],
            return_tensors="pt",
            padding=True,
            add_special_tokens=not templated,  # the template already holds the special tokens
        )
        lengths = batch["attention_mask"].sum(dim=1).tolist()
        for i, n in enumerate(lengths):
            if n > self.config.max_prompt_tokens:
                raise ValueError(
                    f"prompt {i} is {n} tokens long, over the limit of {self.config.max_prompt_tokens} "
                    f"(EngineConfig.max_prompt_tokens): shorten it or raise the limit"
                )
        return batch["input_ids"].to(self.device), batch["attention_mask"].to(self.device)

    # ---------------------------------------------------------------- probe

    def _probe_stack(self, probe: ProbeConfig):
        name = probe_module_name(self.model, probe)
        stack = self.pool.modules.get(name)
        missing = [n for n, c in zip(self.pool.names, stack.covered) if not c] if stack else list(self.pool.names)
        if missing:
            raise ValueError(
                f"adapters {missing} do not adapt the probe module {name!r}, so they cannot be scored there: "
                f"probe a module that every adapter adapts (--probe-module / ProbeConfig.module) or drop them"
            )
        return stack

    def raw_signals(self, prompts: str | Sequence[str], probe: ProbeConfig | None = None) -> dict[str, torch.Tensor]:
        """Both raw signals of every adapter for every prompt: signal -> (P, N) float32 on the CPU."""
        probe = probe or ProbeConfig()
        return self.raw_signals_by_block(prompts, probe, [probe.block])[block_index(self.model, probe.block)]

    def raw_signals_by_block(
        self, prompts: str | Sequence[str], probe: ProbeConfig, blocks: Sequence[int]
    ) -> dict[int, dict[str, torch.Tensor]]:
        """Raw signals at several probe blocks from one forward pass: block -> signal -> (P, N) on the CPU.

        probe.block is ignored; module, probe input and aggregation apply to every block (for probe sweeps).
        """
        prompts = self._check_prompts(prompts)
        stacks = {block_index(self.model, b): self._probe_stack(replace(probe, block=b)) for b in blocks}
        chunks: dict[int, dict[str, list[torch.Tensor]]] = {b: {"norm": [], "entropy": []} for b in stacks}
        for start in range(0, len(prompts), PROBE_BATCH):
            ids, mask = self._encode(prompts[start : start + PROBE_BATCH])
            token = self._active.set(None)  # the probe always sees the base weights only
            try:
                with self._lock.read():
                    inputs = probe_inputs_at_blocks(self.model, ids, mask, probe, list(stacks))  # block -> (B, d_in)
                    for b, stack in stacks.items():
                        outputs = lora_outputs(
                            inputs[b].to(stack.a.dtype), stack.a, stack.b, stack.scaling
                        )  # (B, N, d_out)
                        for signal in chunks[b]:
                            chunks[b][signal].append(signal_from_outputs(outputs, signal).cpu())
            finally:
                self._active.reset(token)
        return {b: {s: torch.cat(parts) for s, parts in by_signal.items()} for b, by_signal in chunks.items()}

    def calibration_stats(
        self, probe: ProbeConfig | None = None, prompts: Sequence[str] | None = None
    ) -> CalibrationStats:
        """Per-adapter mean/std of both signals on reference prompts (the generic set by default); cached."""
        probe = probe or ProbeConfig()
        prompts = list(prompts) if prompts is not None else read_reference_prompts(self.config.reference_prompts)
        key = calibration_key(self.base.fingerprint, self.pool.digest, probe, self.config.chat_template, prompts)
        with self._calibration_lock:
            stats = self._calibration.get(key) or load_cached(self.config.cache_dir, key)
            if stats is None:
                stats = CalibrationStats.from_signals(key, self.pool.names, self.raw_signals(prompts, probe))
                save_cached(self.config.cache_dir, stats)
            self._calibration[key] = stats
        return stats

    def route(
        self,
        prompts: str | Sequence[str],
        config: RoutingConfig | None = None,
        *,
        reference: Sequence[str] | None = None,
        exclude: Sequence[str] = (),
    ) -> list[Routing]:
        """Score every adapter for every prompt and pick the weighted top-k (steps 1-5 of the algorithm).

        `exclude` names adapters that may not be selected (leave-one-out evaluation); they are still scored.
        """
        config = config or self.default_routing
        prompts = self._check_prompts(prompts)
        allowed = [i for i, name in enumerate(self.pool.names) if name not in set(exclude)]
        for name in exclude:
            self.pool.index(name)  # an unknown name is an error, not a silent no-op
        if config.k > len(allowed):
            raise ValueError(
                f"k={config.k} is larger than the pool of {len(allowed)} selectable adapters: choose k <= {len(allowed)}"
            )
        started = time.perf_counter()
        signals = self.raw_signals(prompts, config.probe)[config.signal]  # (P, N)
        mean = std = None
        if config.calibration != "none":
            mean, std = self.calibration_stats(config.probe, reference).tensors(config.signal, signals.device)
        scores = calibrate(signals, mean, std, config.calibration)  # (P, N)
        index, weights = select_top_k(scores[:, allowed], config.k)  # (P, k) each, positions among `allowed`
        index = torch.tensor(allowed)[index]
        probe_ms = (time.perf_counter() - started) * 1000 / len(prompts)
        names = self.pool.names
        return [
            Routing(
                prompt=prompt,
                adapters=names,
                signals=tuple(signals[row].tolist()),
                scores=tuple(scores[row].tolist()),
                selected=tuple(names[i] for i in index[row].tolist()),
                weights=tuple(weights[row].tolist()),
                config=config.to_dict(),
                probe_ms=probe_ms,
            )
            for row, prompt in enumerate(prompts)
        ]

    # ---------------------------------------------------------------- mixtures

    def _factors(self, mixtures: Sequence[Mapping[str, float]]) -> Factors | None:
        """Stacked low-rank factors for a batch of mixtures (adapter -> weight); None when all are empty."""
        width = max((len(m) for m in mixtures), default=0)
        if width == 0:
            return None
        index = torch.zeros(len(mixtures), width, dtype=torch.long)
        coef = torch.zeros(len(mixtures), width, dtype=torch.float32)  # padding: weight 0 contributes nothing
        for row, mixture in enumerate(mixtures):
            for col, (name, weight) in enumerate(mixture.items()):
                if not torch.isfinite(torch.tensor(float(weight))):
                    raise ValueError(f"weight of adapter {name!r} is {weight}: weights must be finite")
                index[row, col] = self.pool.index(name)
                coef[row, col] = float(weight)
        return self.pool.mixture_factors(index.to(self.device), coef.to(self.device))

    @contextlib.contextmanager
    def activated(
        self, mixtures: Sequence[Mapping[str, float]] = (), mode: str = "mixture", *, factors: Factors | None = None
    ) -> Iterator[None]:
        """Within the block, forward passes of this thread use the given per-row mixtures (or precomputed factors).

        'mixture' applies them per row on the fly (other threads are unaffected); 'fused' merges the one
        mixture into the base weights and holds the engine exclusively until the block exits.
        """
        if factors is None:
            factors = self._factors(mixtures)
        elif mixtures:
            raise ValueError("give either mixtures or factors, not both")
        if mode == "fused" and factors is not None:
            if any(dict(m) != dict(mixtures[0]) for m in mixtures):
                raise ValueError("fused mode needs one mixture for the whole batch: group rows by mixture")
            single = {name: (a[:1], b[:1]) for name, (a, b) in factors.items()}
            with self._lock.write(), fused(self._layers, single):
                yield
            return
        token = self._active.set(factors)
        try:
            with self._lock.read():
                yield
        finally:
            self._active.reset(token)

    @torch.inference_mode()
    def logits(
        self,
        prompts: str | Sequence[str],
        mixtures: Sequence[Mapping[str, float]] = (),
        mode: str = "mixture",
        *,
        factors: Factors | None = None,
    ) -> torch.Tensor:
        """Next-token logits over the whole prompt with per-row mixtures (or given factors): (B, T, V), left-padded."""
        prompts = self._check_prompts(prompts)
        if factors is None and len(mixtures) != len(prompts):
            raise ValueError(f"{len(prompts)} prompts but {len(mixtures)} mixtures: give one mixture per prompt")
        ids, mask = self._encode(prompts)
        with self.activated(mixtures, mode, factors=factors):
            return self.model(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask)).logits

    @torch.inference_mode()
    def answer_loss(
        self, prompts: Sequence[str], answers: Sequence[str], *, factors: Factors | None = None
    ) -> torch.Tensor:
        """Mean cross-entropy of each answer (plus end of turn) after its prompt, under `factors`: (B,) on the CPU.

        The objective of LoraHub's weight search (lower is better).
        """
        prompts = self._check_prompts(prompts)
        eos = self.tokenizer.eos_token or ""
        texts = [self.format_prompt(p) + a + eos for p, a in zip(prompts, answers, strict=True)]
        prompt_lengths = [
            len(self.tokenizer(self.format_prompt(p), add_special_tokens=False)["input_ids"]) for p in prompts
        ]
        batch = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        ids, mask = batch["input_ids"].to(self.device), batch["attention_mask"].to(self.device)
        with self.activated(factors=factors):
            logits = self.model(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask)).logits
        log_probs = torch.log_softmax(logits[:, :-1].float(), dim=-1)  # (B, T-1, V): predicts token t+1
        token_lp = log_probs.gather(-1, ids[:, 1:, None]).squeeze(-1)  # (B, T-1)
        losses = []
        for row, prompt_len in enumerate(prompt_lengths):
            real = int(mask[row].sum())
            start = ids.shape[1] - real + prompt_len  # left padding: the answer starts after pad + prompt
            losses.append(-token_lp[row, start - 1 :].mean())
        return torch.stack(losses).cpu()

    def parameter_average(self, weights: Mapping[str, float]) -> Factors:
        """One adapter whose A and B are weighted sums of the pool's (the LoraHub / AdapterSoup merge)."""
        return self.pool.parameter_average(dict(weights))

    # ---------------------------------------------------------------- generation

    def generate(
        self,
        prompt: str,
        routing: RoutingConfig | None = None,
        generation: GenerationConfig | None = None,
        *,
        mixture: Mapping[str, float] | None = None,
    ) -> Generation:
        """Route one prompt (unless `mixture` is given: adapter -> weight, {} for the base model) and answer it."""
        mixtures = None if mixture is None else [mixture]
        return self.generate_batch([prompt], routing, generation, mixtures=mixtures)[0]

    def generate_batch(
        self,
        prompts: Sequence[str],
        routing: RoutingConfig | None = None,
        generation: GenerationConfig | None = None,
        *,
        mixtures: Sequence[Mapping[str, float]] | None = None,
        factors: Factors | None = None,
        batch_size: int = 16,
    ) -> list[Generation]:
        """Answer many prompts, each with its own selection; rows are batched `batch_size` at a time.

        `factors` (e.g. from parameter_average) applies one precomputed merge to every row instead of routing.
        """
        prompts = self._check_prompts(prompts)
        results: list[Generation] = []
        for start in range(0, len(prompts), batch_size):
            chunk_mixtures = None if mixtures is None else mixtures[start : start + batch_size]
            results.extend(
                self._run(prompts[start : start + batch_size], routing, generation, chunk_mixtures, factors=factors)
            )
        return results

    def stream(
        self,
        prompt: str,
        routing: RoutingConfig | None = None,
        generation: GenerationConfig | None = None,
        *,
        mixture: Mapping[str, float] | None = None,
    ) -> GenerationStream:
        """Like generate, but yields text pieces as they are decoded; `.result` holds the Generation."""
        self._check_prompts(prompt)
        self._check_generation(generation or GenerationConfig())
        mixtures = None if mixture is None else [mixture]

        def run(on_token, cancel):
            return self._run([prompt], routing, generation, mixtures, on_token=on_token, cancel=cancel)[0]

        return GenerationStream(run, self.tokenizer)

    def _check_generation(self, generation: GenerationConfig) -> None:
        if generation.max_new_tokens > self.config.max_new_tokens_cap:
            raise ValueError(
                f"max_new_tokens={generation.max_new_tokens} is over the cap of {self.config.max_new_tokens_cap} "
                f"(EngineConfig.max_new_tokens_cap): ask for fewer tokens"
            )

    def _run(
        self,
        prompts: list[str],
        routing: RoutingConfig | None,
        generation: GenerationConfig | None,
        mixtures: Sequence[Mapping[str, float]] | None,
        on_token: Callable[[list[list[int]]], None] | None = None,
        cancel: threading.Event | None = None,
        factors: Factors | None = None,
    ) -> list[Generation]:
        generation = generation or GenerationConfig()
        self._check_generation(generation)
        started = time.perf_counter()
        routings: list[Routing | None] = [None] * len(prompts)
        if factors is not None:
            if generation.mode != "mixture":
                raise ValueError("precomputed factors are applied in mixture mode only")
            mixtures = [{} for _ in prompts]
        elif mixtures is None:
            routings = self.route(prompts, routing)
            mixtures = [r.mixture for r in routings]
        elif len(mixtures) != len(prompts):
            raise ValueError(f"{len(prompts)} prompts but {len(mixtures)} mixtures: give one mixture per prompt")
        probe_ms = (time.perf_counter() - started) * 1000

        # fused mode merges one mixture at a time, so it runs each distinct mixture as its own group
        if generation.mode == "fused":
            groups: dict[tuple, list[int]] = {}
            for row, mixture in enumerate(mixtures):
                groups.setdefault(tuple(mixture.items()), []).append(row)
            row_groups = list(groups.values())
        else:
            row_groups = [list(range(len(prompts)))]

        results: dict[int, Generation] = {}
        for rows in row_groups:
            ids, mask = self._encode([prompts[r] for r in rows])
            merge_started = time.perf_counter()
            with self.activated(
                [mixtures[r] for r in rows] if factors is None else (), generation.mode, factors=factors
            ):
                merge_ms = (time.perf_counter() - merge_started) * 1000
                trace = decode(self.model, ids, mask, generation, self.eos_ids, self.pad_id, started, on_token, cancel)
            total_ms = (time.perf_counter() - started) * 1000
            timings = Timings(probe_ms, merge_ms, trace.prefill_ms, trace.decode_ms, total_ms)
            for i, row in enumerate(rows):
                results[row] = Generation(
                    prompt=prompts[row],
                    text=self.tokenizer.decode(trace.tokens[i], skip_special_tokens=True),
                    routing=routings[row],
                    mixture=dict(mixtures[row]),
                    mode=generation.mode,
                    token_ids=tuple(trace.tokens[i]),
                    token_times_ms=tuple(trace.times_ms[i]),
                    timings=timings,
                    config=asdict(generation),
                )
        return [results[row] for row in range(len(prompts))]
