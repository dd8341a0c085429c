"""The LoGo engine: one probe pass routes each prompt to a weighted top-k of the pool, then generates with it.

Algorithm (LoGo, arXiv 2511.07129, with the corrections of ../shared/LOGO.md):
  1. Probe: run the base model alone up to the probe module of block T and read its input h.
  2. Aggregate h over tokens (last non-padding token by default).
  3. Signal: o_i = s_i B_i A_i h for all N adapters at once; norm ||o_i|| or inverse entropy of softmax(o_i).
     Optionally calibrate it against the adapter's own statistics on reference prompts.
  4. Select the top-k adapters (adaptive k optionally drops those far below the best one).
  5. Weights w_i = score_i / sum_j score_j over the selection (the paper), or a softmax of the scores.
  6. Generate with y = W0 x + sum_i w_i s_i B_i A_i x in every adapted module: as a per-row stacked
     low-rank product ("mixture") or merged into W0 for the request ("fused").
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from . import scoring
from .base_model import BaseModel, load_base_model
from .calibration import (
    CalibrationStats,
    calibration_key,
    load_cached,
    read_reference_prompts,
    save_cached,
)
from .config import (
    GENERIC_REFERENCE_PROMPTS,
    POOL_REFERENCE_PROMPTS,
    EngineConfig,
    GenerationConfig,
    ProbeConfig,
    RoutingConfig,
    check_text,
)
from .decoding import decode
from .export import export_mixture
from .llama_step import StepGraphs
from .mixture import AdaptedModel, Factors
from .pool import AdapterPool
from .probe import block_index, decoder_blocks, probe_inputs_at_blocks, probe_module_name
from .prompts import format_prompt, left_pad, prompt_pieces, token_ids, with_answer
from .results import Generation, Routing, Timings
from .signals import calibrate, select_top_k, signal_from_outputs
from .streaming import GenerationStream

PROBE_BATCH = 32  # prompts per probe forward: bounds activation memory for long prompt lists
Progress = Callable[[int, int], None]  # (prompts done, prompts in all), called after each probe batch


@dataclass
class QueueClock:
    """Milliseconds one request has waited for other requests (for the model's lock), summed over its waits."""

    ms: float = 0.0


class LoGoEngine:
    """Routes prompts over an adapter pool and generates with the weighted mixture. Thread-safe.

    Several engines may share one base model: the wrapped layers, the active mixture and the lock belong to
    the model (`AdaptedModel.of(model)`), so each engine's mixtures apply as when it is alone.
    """

    def __init__(
        self, config: EngineConfig | None = None, *, base: BaseModel | None = None, pool: AdapterPool | None = None
    ):
        self.config = config or EngineConfig()
        self.base = base or load_base_model(
            self.config.base_model, device=self.config.device, dtype=self.config.dtype, cache_dir=self.config.cache_dir
        )
        self.model, self.tokenizer = self.base.model, self.base.tokenizer
        self.pool = pool if pool is not None else AdapterPool.load(self.config.adapters, self.model)
        self.adapted = AdaptedModel.of(self.model)  # the model's request state, shared with other engines on it
        self.adapted.wrap(self.pool.modules)
        self.step_graphs = StepGraphs.of(self.model)  # the decode step's buffers and graphs, shared like `adapted`
        # the running request's queue clock, per thread (a request's lock waits add to it)
        self._queue: contextvars.ContextVar[QueueClock | None] = contextvars.ContextVar(
            f"logo-queue-{id(self)}", default=None
        )
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
        """The recommended preset (RoutingConfig's defaults) with k = 3, or the whole pool when it is smaller."""
        return RoutingConfig(k=min(RoutingConfig().k, len(self.pool)))

    @property
    def reference_file(self) -> tuple[Path, str]:
        """The calibration prompts' file and where it came from: 'file' (EngineConfig.reference_prompts), 'pool'
        (a pool directory's own reference_prompts.txt: the first among the adapter sources) or 'generic'."""
        if self.config.reference_prompts is not None:
            path = self.config.reference_prompts
            return path, "generic" if path.resolve() == GENERIC_REFERENCE_PROMPTS else "file"
        for source in self.config.adapters:
            candidate = Path(source).expanduser() / POOL_REFERENCE_PROMPTS
            if candidate.is_file():
                return candidate, "pool"
        return GENERIC_REFERENCE_PROMPTS, "generic"

    def reference_set(self, prompts: Sequence[str] | None = None) -> tuple[list[str], dict]:
        """The calibration prompts (`prompts` if given, else the reference file's) and a record of them for results."""
        if prompts is not None:
            prompts, record = list(prompts), {"source": "given", "path": None}
        else:
            path, source = self.reference_file
            prompts, record = read_reference_prompts(path), {"source": source, "path": str(path)}
        digest = hashlib.sha256("\n".join(prompts).encode()).hexdigest()[:16]
        return prompts, {**record, "n_prompts": len(prompts), "sha256": digest}

    @property
    def n_blocks(self) -> int:
        """Number of transformer blocks of the base model (probe blocks are 0..n_blocks-1, or negative from the end)."""
        return len(decoder_blocks(self.model))

    def probe_modules(self, block: int = -1) -> list[str]:
        """Module paths inside a block that every adapter adapts (the only ones the probe can score), sorted."""
        target = decoder_blocks(self.model)[block_index(self.model, block)]
        prefix = next(name for name, m in self.model.named_modules() if m is target) + "."
        return sorted(
            name.removeprefix(prefix)
            for name, stack in self.pool.modules.items()
            if name.startswith(prefix) and all(stack.covered)
        )

    # ---------------------------------------------------------------- prompts

    def format_prompt(self, prompt: str) -> str:
        """The text the model actually reads: the prompt inside the chat template, unless disabled."""
        return format_prompt(self.tokenizer, prompt, self.config.chat_template)

    def _check_prompts(self, prompts: str | Sequence[str]) -> list[str]:
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        if not prompts:
            raise ValueError("no prompts given: pass at least one prompt")
        for i, prompt in enumerate(prompts):
            if not isinstance(prompt, str):
                raise TypeError(f"prompt {i} is a {type(prompt).__name__}, not a string")
            check_text(prompt, f"prompt {i}")
            if not prompt.strip():
                raise ValueError(f"prompt {i} is empty: type a question or an instruction")
        return prompts

    @property
    def _templated(self) -> bool:
        return self.config.chat_template and bool(self.tokenizer.chat_template)

    def _prompt_ids(self, prompts: list[str]) -> list[list[int]]:
        """Token ids of each templated prompt, the user's special-token strings kept as plain text."""
        rows = []
        for i, prompt in enumerate(prompts):
            pieces = prompt_pieces(self.tokenizer, prompt, self.config.chat_template)
            rows.append(token_ids(self.tokenizer, pieces, add_special_tokens=not self._templated))
            if len(rows[-1]) > self.config.max_prompt_tokens:
                raise ValueError(
                    f"prompt {i} is {len(rows[-1])} tokens long, over the limit of {self.config.max_prompt_tokens} "
                    f"(EngineConfig.max_prompt_tokens): shorten it or raise the limit"
                )
        return rows

    def encode(self, prompts: str | Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-padded token ids and attention mask of the templated prompts, (B, T) each, on the engine's device.

        What the model reads for these prompts: the chat template (unless disabled) with the user's text, whose
        special-token strings (e.g. `<|im_start|>`) stay plain text, so a user cannot forge a turn.
        """
        ids, mask = left_pad(self._prompt_ids(self._check_prompts(prompts)), self.pad_id)
        return ids.to(self.device), mask.to(self.device)

    def encode_answers(
        self, prompts: str | Sequence[str], answers: str | Sequence[str]
    ) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
        """Each prompt followed by its answer and the end of turn: left-padded ids and mask (B, T), and the number
        of prompt tokens of each row (the answer's tokens are the rest of the row). For scoring answers."""
        prompts = self._check_prompts(prompts)
        answers = [answers] if isinstance(answers, str) else list(answers)
        if len(answers) != len(prompts):
            raise ValueError(f"{len(prompts)} prompts but {len(answers)} answers: give one answer per prompt")
        eos = self.tokenizer.eos_token or ""
        prompt_lengths = [len(ids) for ids in self._prompt_ids(prompts)]
        rows = []
        for prompt, answer in zip(prompts, answers, strict=True):
            pieces = with_answer(prompt_pieces(self.tokenizer, prompt, self.config.chat_template), answer + eos)
            rows.append(token_ids(self.tokenizer, pieces, add_special_tokens=False))
        ids, mask = left_pad(rows, self.pad_id)
        return ids.to(self.device), mask.to(self.device), prompt_lengths

    # ---------------------------------------------------------------- probe

    def _probe_stack(self, probe: ProbeConfig):
        name = probe_module_name(self.model, probe)
        stack = self.pool.modules.get(name)
        missing = (
            [n for n, c in zip(self.pool.names, stack.covered, strict=True) if not c]
            if stack
            else list(self.pool.names)
        )
        if missing:
            raise ValueError(
                f"adapters {missing} do not adapt the probe module {name!r}, so they cannot be scored there: "
                f"probe a module that every adapter adapts (--probe-module / ProbeConfig.module) or drop them"
            )
        return stack

    def raw_signals(
        self, prompts: str | Sequence[str], probe: ProbeConfig | None = None, progress: Progress | None = None
    ) -> dict[str, torch.Tensor]:
        """Both raw signals of every adapter for every prompt: signal -> (P, N) float32 on the CPU."""
        probe = probe or ProbeConfig()
        by_block = self.raw_signals_by_block(prompts, probe, [probe.block], progress)
        return by_block[block_index(self.model, probe.block)]

    def raw_signals_by_block(
        self,
        prompts: str | Sequence[str],
        probe: ProbeConfig,
        blocks: Sequence[int],
        progress: Progress | None = None,
    ) -> dict[int, dict[str, torch.Tensor]]:
        """Raw signals at several probe blocks from one forward pass: block -> signal -> (P, N) on the CPU.

        probe.block is ignored; module, probe input and aggregation apply to every block (for probe sweeps).
        `progress(done, total)` is called with the prompts probed so far after each batch of PROBE_BATCH.
        """
        prompts = self._check_prompts(prompts)
        stacks = {block_index(self.model, b): self._probe_stack(replace(probe, block=b)) for b in blocks}
        chunks: dict[int, dict[str, list[torch.Tensor]]] = {b: {"norm": [], "entropy": []} for b in stacks}
        for start in range(0, len(prompts), PROBE_BATCH):
            ids, mask = self.encode(prompts[start : start + PROBE_BATCH])
            with self.adapted.applied(None) as waited_ms:  # the probe always sees the base weights only
                self._waited(waited_ms)
                inputs = probe_inputs_at_blocks(self.model, ids, mask, probe, list(stacks))  # block -> (B, d_in)
                for b, stack in stacks.items():
                    h = inputs[b].to(stack.dtype)  # (B, d_in)
                    outputs = stack.outputs(h)  # (B, N, d_out): scaling_i B_i A_i h, stacked per rank
                    for signal in chunks[b]:
                        chunks[b][signal].append(signal_from_outputs(outputs, signal).cpu())
            if progress is not None:
                progress(min(start + PROBE_BATCH, len(prompts)), len(prompts))
        return {b: {s: torch.cat(parts) for s, parts in by_signal.items()} for b, by_signal in chunks.items()}

    def calibration_stats(
        self,
        probe: ProbeConfig | None = None,
        prompts: Sequence[str] | None = None,
        progress: Progress | None = None,
    ) -> CalibrationStats:
        """Per-adapter mean/std of both signals on reference prompts (`reference_set` by default); cached.

        `progress(done, total)` follows the reference prompts' probe pass when the statistics must be computed.
        """
        probe = probe or ProbeConfig()
        prompts, _ = self.reference_set(prompts)
        key = calibration_key(self.base.fingerprint, self.pool.digest, probe, self.config.chat_template, prompts)
        started = time.perf_counter()
        with self._calibration_lock:  # another request computing the same statistics: waiting for it is queueing
            self._waited((time.perf_counter() - started) * 1000)
            stats = self._calibration.get(key) or load_cached(self.config.cache_dir, key, self.pool.names)
            if stats is None:
                signals = self.raw_signals(prompts, probe, progress)
                stats = CalibrationStats.from_signals(key, self.pool.names, signals)
                save_cached(self.config.cache_dir, stats)
            self._calibration[key] = stats
        return stats

    def calibration_cached(self, probe: ProbeConfig | None = None) -> bool:
        """Whether `calibration_stats(probe)` on the reference set returns without a probe pass (memory or disk)."""
        probe = probe or ProbeConfig()
        prompts, _ = self.reference_set()
        key = calibration_key(self.base.fingerprint, self.pool.digest, probe, self.config.chat_template, prompts)
        return key in self._calibration or load_cached(self.config.cache_dir, key, self.pool.names) is not None

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
        with self._queue_clock() as queue:
            return self._route(prompts, config, reference, exclude, queue)

    def _route(
        self,
        prompts: str | Sequence[str],
        config: RoutingConfig | None,
        reference: Sequence[str] | None,
        exclude: Sequence[str],
        queue: QueueClock,
    ) -> list[Routing]:
        config = config or self.default_routing
        prompts = self._check_prompts(prompts)
        for name in exclude:
            self.pool.index(name)  # an unknown name is an error, not a silent no-op
        started, queued_before = time.perf_counter(), queue.ms
        # which prompts calibrated this routing, if any did, and the adapters left out as too loud
        recorded = {**config.to_dict(), "reference": None, "too_loud": []}
        stats = None
        if config.uses_reference:
            reference, recorded["reference"] = self.reference_set(reference)
            stats = self.calibration_stats(config.probe, reference)
            if config.loudness_limit is not None:
                recorded["too_loud"] = list(stats.too_loud(config.loudness_limit))
        left_out = {*exclude, *recorded["too_loud"]}
        allowed = [i for i, name in enumerate(self.pool.names) if name not in left_out]
        if config.k > len(allowed):
            loud = recorded["too_loud"]
            left = f", {len(loud)} left out as too loud ({', '.join(loud)})" if loud else ""
            fix = " or loudness_limit=None to let the loud ones be selected" if loud else ""
            raise ValueError(
                f"k={config.k} is larger than the pool of {len(allowed)} selectable adapters{left}: "
                f"choose k <= {len(allowed)}{fix}"
            )
        signals = self.raw_signals(prompts, config.probe)[config.signal]  # (P, N)
        mean = std = None
        if config.calibration != "none":
            mean, std = stats.tensors(config.signal, signals.device)
        scores = calibrate(signals, mean, std, config.calibration)  # (P, N)
        # (P, k) each, positions among `allowed`; slots dropped by adaptive k are -1 (always the last of a row)
        index, weights = select_top_k(scores[:, allowed], config.k, **config.selection())
        queue_ms = queue.ms - queued_before
        probe_ms = ((time.perf_counter() - started) * 1000 - queue_ms) / len(prompts)
        names = self.pool.names
        return [
            Routing(
                prompt=prompt,
                adapters=names,
                signals=tuple(signals[row].tolist()),
                scores=tuple(scores[row].tolist()),
                selected=tuple(names[allowed[i]] for i in index[row].tolist() if i >= 0),
                weights=tuple(w for i, w in zip(index[row].tolist(), weights[row].tolist(), strict=True) if i >= 0),
                config=recorded,
                probe_ms=probe_ms,
                queue_ms=queue_ms,
            )
            for row, prompt in enumerate(prompts)
        ]

    # ---------------------------------------------------------------- queue time

    @contextlib.contextmanager
    def _queue_clock(self) -> Iterator[QueueClock]:
        """The clock this thread's waits for the model add to: the running request's, or a new one for a new request."""
        clock = self._queue.get()
        if clock is not None:  # a call inside a request (route inside generate): one clock for the whole request
            yield clock
            return
        clock = QueueClock()
        token = self._queue.set(clock)
        try:
            yield clock
        finally:
            self._queue.reset(token)

    def _waited(self, ms: float) -> None:
        clock = self._queue.get()
        if clock is not None:
            clock.ms += ms

    # ---------------------------------------------------------------- mixtures

    def mixture_factors(self, mixtures: Sequence[Mapping[str, float]]) -> Factors | None:
        """Stacked low-rank factors for a batch of mixtures (adapter -> weight, one per row); None when all are empty.

        Rows with fewer adapters than the widest get slots of weight 0, which the pool reads as no adapter
        (AdapterPool.mixture_factors); the engine assumes nothing else about padding.
        """
        width = max((len(m) for m in mixtures), default=0)
        if width == 0:
            return None
        index = torch.zeros(len(mixtures), width, dtype=torch.long)
        coef = torch.zeros(len(mixtures), width, dtype=torch.float32)
        for row, mixture in enumerate(mixtures):
            for col, (name, weight) in enumerate(mixture.items()):
                if not torch.isfinite(torch.tensor(float(weight))):
                    raise ValueError(f"weight of adapter {name!r} is {weight}: weights must be finite")
                index[row, col] = self.pool.index(name)
                coef[row, col] = float(weight)
        return self.pool.mixture_factors(index.to(self.device), coef.to(self.device))

    def export_mixture(self, routing: Routing | Mapping[str, float], directory: Path | str) -> Path:
        """Write a routed mixture (or adapter -> weight) as ONE standard PEFT LoRA adapter directory (logo/export.py).

        PEFT, or any LoRA server, loading it on the same base model computes what this engine computes with it.
        """
        return export_mixture(self.pool, routing, directory, base_model=self.config.base_model)

    def logits(
        self,
        prompts: str | Sequence[str],
        mixtures: Sequence[Mapping[str, float]] = (),
        mode: str = "mixture",
        *,
        factors: Factors | None = None,
    ) -> torch.Tensor:
        """Next-token logits over each whole prompt with per-row mixtures: (B, T, V), left-padded.

        The same as `logo.scoring.logits(engine, ...)`, where the other scoring functions live.
        """
        return scoring.logits(self, prompts, mixtures, mode, factors=factors)

    def parameter_average_factors(self, weights: Mapping[str, float]) -> Factors:
        """Factors of one adapter whose A and B are w-weighted sums of the pool's (the LoraHub / AdapterSoup merge)."""
        for name, weight in weights.items():
            self.pool.index(name)  # an unknown name is an error
            if not torch.isfinite(torch.tensor(float(weight))):
                raise ValueError(f"weight of adapter {name!r} is {weight}: weights must be finite")
        if not weights:
            raise ValueError("a parameter average needs at least one adapter weight")
        return self.pool.parameter_average(dict(weights))

    @contextlib.contextmanager
    def _activated(
        self,
        mixtures: Sequence[Mapping[str, float]] = (),
        mode: str = "mixture",
        *,
        factors: Factors | None = None,
    ) -> Iterator[float]:
        """Within the block, forward passes of this thread use the given per-row mixtures (or precomputed factors).

        'mixture' applies them per row on the fly (other threads are unaffected); 'fused' merges the one
        mixture into the base weights and holds the model exclusively until the block exits.
        Yields the milliseconds spent waiting for other requests.
        """
        if factors is None:
            factors = self.mixture_factors(mixtures)
        elif mixtures:
            raise ValueError("give either mixtures or factors, not both")
        if mode == "fused" and factors is not None:
            if any(dict(m) != dict(mixtures[0]) for m in mixtures):
                raise ValueError("fused mode needs one mixture for the whole batch: group rows by mixture")
            single = {name: (a[:1], b[:1]) for name, (a, b) in factors.items()}
            with self.adapted.merged(single) as waited_ms:
                yield waited_ms
            return
        with self.adapted.applied(factors) as waited_ms:
            yield waited_ms

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
        parameter_average: Mapping[str, float] | None = None,
        batch_size: int = 16,
    ) -> list[Generation]:
        """Answer many prompts, each with its own selection; rows are batched `batch_size` at a time.

        `parameter_average` (adapter -> weight) answers every row with ONE adapter whose A and B are the weighted
        sums of the pool's (LoraHub, AdapterSoup) instead of routing; the Generations say so (merge).
        """
        prompts = self._check_prompts(prompts)
        if mixtures is not None and parameter_average is not None:
            raise ValueError("give either mixtures or parameter_average, not both")
        if mixtures is not None and len(mixtures) != len(prompts):
            raise ValueError(f"{len(prompts)} prompts but {len(mixtures)} mixtures: give one mixture per prompt")
        average = None
        if parameter_average is not None:
            average = (dict(parameter_average), self.parameter_average_factors(parameter_average))
        results: list[Generation] = []
        for start in range(0, len(prompts), batch_size):
            chunk_mixtures = None if mixtures is None else mixtures[start : start + batch_size]
            results.extend(
                self._run(prompts[start : start + batch_size], routing, generation, chunk_mixtures, average=average)
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
        average: tuple[dict[str, float], Factors] | None = None,
    ) -> list[Generation]:
        """Steps 1-6 for one batch: route (unless mixtures or a parameter average are given), then decode."""
        generation = generation or GenerationConfig()
        self._check_generation(generation)
        started = time.perf_counter()
        with self._queue_clock() as queue:  # one clock for the whole request, routing included
            routings: list[Routing | None] = [None] * len(prompts)
            if average is not None:
                if generation.mode != "mixture":
                    raise ValueError(
                        "a parameter average is applied in mixture mode only: use GenerationConfig(mode='mixture')"
                    )
                mixtures = [average[0]] * len(prompts)
            elif mixtures is None:
                routings = self.route(prompts, routing)
                mixtures = [r.mixture for r in routings]
            elif len(mixtures) != len(prompts):
                raise ValueError(f"{len(prompts)} prompts but {len(mixtures)} mixtures: give one mixture per prompt")
            probe_ms = (time.perf_counter() - started) * 1000 - queue.ms

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
                ids, mask = self.encode([prompts[r] for r in rows])
                merge_started = time.perf_counter()
                if average is not None:
                    activated = self._activated(factors=average[1])
                else:
                    activated = self._activated([mixtures[r] for r in rows], generation.mode)
                with activated as waited_ms:
                    self._waited(waited_ms)
                    merge_ms = (time.perf_counter() - merge_started) * 1000 - waited_ms
                    steps = (self.eos_ids, self.pad_id, started, on_token, cancel, self.step_graphs)
                    trace = decode(self.model, ids, mask, generation, *steps)
                total_ms = (time.perf_counter() - started) * 1000
                timings = Timings(probe_ms, merge_ms, trace.prefill_ms, trace.decode_ms, total_ms, queue_ms=queue.ms)
                for i, row in enumerate(rows):
                    mixture = dict(mixtures[row])
                    results[row] = Generation(
                        prompt=prompts[row],
                        text=self.tokenizer.decode(trace.tokens[i], skip_special_tokens=True),
                        routing=routings[row],
                        mixture=mixture,
                        merge="parameter_average" if average is not None else generation.mode if mixture else "none",
                        mode=generation.mode,
                        token_ids=tuple(trace.tokens[i]),
                        token_times_ms=tuple(trace.times_ms[i]),
                        timings=timings,
                        config=asdict(generation),
                    )
            return [results[row] for row in range(len(prompts))]
