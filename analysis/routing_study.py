"""Routing v2 study, shared parts: named routing configs, raw-signal banks at several blocks, calibrated scores.

One probe forward gives both raw signals of every adapter at every block (engine.raw_signals_by_block), so a
bank of a prompt set is computed once and every config is scored from it with logo.signals.calibrate: the same
maths as engine.route (tests/test_routing_study.py checks that the two select the same adapters).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from logo.calibration import CalibrationStats, read_reference_prompts
from logo.config import GENERIC_REFERENCE_PROMPTS, EngineConfig, ProbeConfig, RoutingConfig
from logo.engine import LoGoEngine
from logo.signals import calibrate
from zoo.data import ADAPTERS_DIR, ASSETS_DIR, REFERENCE_PROMPTS, REPO_ROOT, Task

RESULTS_DIR = ASSETS_DIR / "results" / "routing_v2"
CACHE_DIR = REPO_ROOT / "out" / "routing_v2"  # signal banks (ignored by git): later steps reuse earlier probes
REFERENCE_FILES = {"own": REFERENCE_PROMPTS, "generic": GENERIC_REFERENCE_PROMPTS}
STUDY_BLOCKS = (-1, -2, -3, 24)  # the paper's last block, 28 and 27 of 0..29 (the probe sweep's best), 24
OWN_REFERENCE_ROWS = 4  # REFERENCE_PROMPTS holds the first 4 dev inputs of each pool task: dev prompts skip them


@dataclass(frozen=True)
class StudyConfig:
    """One routing config: signal, calibration, reference set and probe block (module input, last token)."""

    name: str
    signal: str
    calibration: str
    reference: str  # key of REFERENCE_FILES; "-" for raw signals
    block: int

    def routing(self, k: int = 3) -> RoutingConfig:
        """The engine's config of this signal and calibration alone (no loudness limit, as the study measured)."""
        probe = ProbeConfig(block=self.block)
        return RoutingConfig(signal=self.signal, calibration=self.calibration, k=k, probe=probe, loudness_limit=None)


PAPER = StudyConfig("paper", "norm", "none", "-", -1)


def study_configs() -> list[StudyConfig]:
    """`paper`, raw entropy, then every calibrated signal x calibration x reference x block of STUDY_BLOCKS."""
    configs = [PAPER, StudyConfig("raw_entropy", "entropy", "none", "-", -1)]
    for signal, calibration, reference, block in itertools.product(
        ("entropy", "norm"), ("zscore", "mean"), ("own", "generic"), STUDY_BLOCKS
    ):
        name = f"{signal}_{calibration}_{reference}_b{block}"
        configs.append(StudyConfig(name, signal, calibration, reference, block))
    return configs


def study_engine(extra_adapters: Sequence[str | Path] = ()) -> LoGoEngine:
    """The embedded model on the CPU with the zoo's 27 adapters (plus `extra_adapters`, e.g. hostile ones)."""
    sources = (str(ADAPTERS_DIR), *(str(a) for a in extra_adapters))
    return LoGoEngine(EngineConfig(adapters=sources, device="cpu", dtype="float32"))


@dataclass(frozen=True)
class SignalBank:
    """Raw signals of one prompt set: signals[block][signal] is (P, N), blocks as indices 0..depth-1."""

    adapters: tuple[str, ...]
    depth: int  # transformer blocks of the model: resolves negative block numbers
    signals: dict[int, dict[str, torch.Tensor]]

    @classmethod
    def compute(cls, engine: LoGoEngine, prompts: Sequence[str], blocks: Sequence[int]) -> SignalBank:
        signals = engine.raw_signals_by_block(list(prompts), ProbeConfig(), list(blocks))
        return cls(engine.adapter_names, num_blocks(engine), signals)

    @classmethod
    def cached(cls, engine: LoGoEngine, name: str, prompts: Sequence[str], blocks: Sequence[int]) -> SignalBank:
        """compute(), saved under CACHE_DIR/<name>.pt; a cache of other adapters, prompts or blocks is recomputed."""
        path = CACHE_DIR / f"{name}.pt"
        depth = num_blocks(engine)
        wanted = sorted({b % depth for b in blocks})
        if path.is_file():
            data = torch.load(path)
            covers = set(engine.adapter_names) <= set(data["adapters"]) and set(wanted) <= set(data["signals"])
            if covers and data["prompts"] == list(prompts):  # a bank of a larger pool serves any sub-pool
                bank = cls(tuple(data["adapters"]), depth, {b: data["signals"][b] for b in wanted})
                return bank.columns(engine.adapter_names)
        bank = cls.compute(engine, prompts, wanted)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"adapters": bank.adapters, "prompts": list(prompts), "signals": bank.signals}, path)
        return bank

    def at(self, block: int, signal: str) -> torch.Tensor:
        """(P, N) raw signal at a block (negative counts from the end)."""
        index = block % self.depth
        if index not in self.signals:
            raise KeyError(f"block {block} was not probed for this bank (blocks {sorted(self.signals)}): add it")
        return self.signals[index][signal]

    def columns(self, names: Sequence[str]) -> SignalBank:
        """The same bank restricted to some adapters, in the given order (for pools grown or shrunk offline)."""
        index = torch.tensor([self.adapters.index(n) for n in names])
        signals = {b: {s: v[:, index] for s, v in by.items()} for b, by in self.signals.items()}
        return SignalBank(tuple(names), self.depth, signals)


def load_bank(name: str, prompts: Sequence[str], adapters: Sequence[str] | None = None, depth: int = 30) -> SignalBank:
    """A cached bank without loading the model (CACHE_DIR/<name>.pt), optionally restricted to some adapters."""
    path = CACHE_DIR / f"{name}.pt"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run the step that probes it (see the analysis module's usage)")
    data = torch.load(path)
    if data["prompts"] != list(prompts):
        raise ValueError(f"{path} holds other prompts than asked for: delete it and probe again")
    bank = SignalBank(tuple(data["adapters"]), depth, data["signals"])
    return bank.columns(adapters) if adapters is not None else bank


def cached_reference_stats(adapters: Sequence[str], depth: int = 30) -> Stats:
    """reference_stats from the cached reference banks, restricted to `adapters` (no model needed)."""
    stats = {}
    for reference, path in REFERENCE_FILES.items():
        bank = load_bank(f"reference_{reference}", read_reference_prompts(path), adapters, depth)
        stats.update(bank_stats(bank, reference))
    return stats


def num_blocks(engine: LoGoEngine) -> int:
    return len(engine.model.get_decoder().layers)


Stats = dict[tuple[str, int], CalibrationStats]


def reference_stats(engine: LoGoEngine, blocks: Sequence[int], cache_tag: str = "") -> Stats:
    """(reference name, block index) -> per-adapter mean/std of both signals on that reference set."""
    stats = {}
    for reference, path in REFERENCE_FILES.items():
        bank = SignalBank.cached(engine, f"reference_{reference}{cache_tag}", read_reference_prompts(path), blocks)
        stats.update(bank_stats(bank, reference))
    return stats


def bank_stats(bank: SignalBank, reference: str) -> Stats:
    """Calibration statistics of a bank of reference prompts, per block."""
    return {
        (reference, block): CalibrationStats.from_signals(reference, bank.adapters, signals)
        for block, signals in bank.signals.items()
    }


def scores(bank: SignalBank, stats: Stats, config: StudyConfig) -> torch.Tensor:
    """(P, N) scores of a config: its raw signal at its block, calibrated against its reference set."""
    raw = bank.at(config.block, config.signal)
    if config.calibration == "none":
        return raw
    reference = stats[config.reference, config.block % bank.depth]
    if reference.adapters != bank.adapters:
        raise ValueError("calibration statistics and signal bank cover different adapters: compute both on one pool")
    mean, std = reference.tensors(config.signal, "cpu")
    return calibrate(raw, mean, std, config.calibration)


def top_k(scores: torch.Tensor, k: int) -> torch.Tensor:
    """(P, k) adapter indices, best first (torch.topk, as logo.signals.select_top_k)."""
    return torch.topk(scores, k, dim=1).indices


def task_prompts(task: Task, split: str, limit: int) -> list[str]:
    """Prompts of a split: dev skips the rows that the zoo's own reference set already holds."""
    offset = OWN_REFERENCE_ROWS if split == "dev" else 0
    return [task.prompt(r["input"]) for r in task.examples(split, offset + limit)[offset:]]


def labelled_prompts(tasks: Sequence[Task], split: str, limit: int) -> tuple[list[str], list[str]]:
    """All tasks' prompts of a split and the task each came from, in task order."""
    prompts, labels = [], []
    for task in tasks:
        rows = task_prompts(task, split, limit)
        prompts += rows
        labels += [task.name] * len(rows)
    return prompts, labels


def bootstrap_ci(hits: torch.Tensor, n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean of per-instance values (e.g. 0/1 hits)."""
    generator = torch.Generator().manual_seed(seed)
    values = hits.float()
    draws = torch.randint(len(values), (n_boot, len(values)), generator=generator)  # (n_boot, P)
    means = values[draws].mean(dim=1)
    return means.quantile(0.025).item(), means.quantile(0.975).item()
