"""Routing sweeps the paper leaves open: probe block x aggregation x probe input x calibration, reference sets, k.

Signals come from the engine (one forward pass gives every block); scores and top-k use logo.signals.
"""

from __future__ import annotations

import itertools

import pandas as pd
import torch
from tqdm.auto import tqdm

from logo.calibration import CalibrationStats
from logo.config import AGGREGATES, CALIBRATIONS, PROBE_INPUTS, SIGNALS, ProbeConfig
from logo.engine import LoGoEngine
from logo.signals import calibrate
from zoo.data import Task


def _own_rank(scores: torch.Tensor, own: int, k: int) -> tuple[float, float]:
    """Share of rows whose own adapter is ranked first / within the top-k. scores: (P, N)."""
    order = scores.argsort(dim=1, descending=True)
    return (order[:, 0] == own).float().mean().item(), (order[:, :k] == own).any(dim=1).float().mean().item()


def _stats(
    engine: LoGoEngine, reference: list[str], probe: ProbeConfig, blocks: list[int]
) -> dict[int, CalibrationStats]:
    signals = engine.raw_signals_by_block(reference, probe, blocks)
    return {b: CalibrationStats.from_signals("sweep", engine.adapter_names, s) for b, s in signals.items()}


def task_signals(
    engine: LoGoEngine,
    tasks: list[Task],
    limit: int,
    probe: ProbeConfig,
    blocks: list[int],
    split: str = "test",
    offset: int = 0,
):
    """task -> block -> signal -> (P, N) raw signals of `limit` prompts of a split, from row `offset` on."""
    out = {}
    for task in tqdm(tasks, desc=f"signals {probe.probe_input}/{probe.aggregate}", leave=False):
        prompts = [task.prompt(r["input"]) for r in task.examples(split, offset + limit)[offset:]]
        out[task.name] = engine.raw_signals_by_block(prompts, probe, blocks)
    return out


def probe_sweep(
    engine: LoGoEngine,
    tasks: list[Task],
    reference: list[str],
    limit: int = 40,
    k: int = 3,
    split: str = "test",
    offset: int = 0,
) -> pd.DataFrame:
    """Top-1 / top-k own-adapter rate of every pool task for every probe setting, on `limit` prompts of a split.

    Columns: block, aggregate, probe_input, calibration, signal, top1_rate, topk_rate.
    """
    pool_tasks = [t for t in tasks if t.name in engine.adapter_names]
    blocks = list(range(engine.n_blocks))
    rows = []
    for probe_input, aggregate in itertools.product(PROBE_INPUTS, AGGREGATES):
        probe = ProbeConfig(probe_input=probe_input, aggregate=aggregate)
        stats = _stats(engine, reference, probe, blocks)
        signals = task_signals(engine, pool_tasks, limit, probe, blocks, split, offset)
        for block, signal, calibration in itertools.product(blocks, SIGNALS, CALIBRATIONS):
            mean, std = stats[block].tensors(signal, "cpu")
            rates = [
                _own_rank(
                    calibrate(signals[t.name][block][signal], mean, std, calibration), engine.pool.index(t.name), k
                )
                for t in pool_tasks
            ]
            rows.append(
                {
                    "block": block,
                    "aggregate": aggregate,
                    "probe_input": probe_input,
                    "calibration": calibration,
                    "signal": signal,
                    "top1_rate": sum(r[0] for r in rates) / len(rates),
                    "topk_rate": sum(r[1] for r in rates) / len(rates),
                }
            )
    return pd.DataFrame(rows)


def calibration_sweep(
    engine: LoGoEngine,
    tasks: list[Task],
    references: dict[str, list[str]],
    limit: int = 100,
    k: int = 3,
    probe: ProbeConfig | None = None,
) -> pd.DataFrame:
    """Per pool task: own-adapter rates for every signal x calibration x reference set at one probe location."""
    probe = probe or ProbeConfig(block=-1)  # the paper's probe location, as the committed results
    block = probe.block % engine.n_blocks
    pool_tasks = [t for t in tasks if t.name in engine.adapter_names]
    signals = task_signals(engine, pool_tasks, limit, probe, [block])
    rows = []
    for reference_name, reference in references.items():
        stats = _stats(engine, reference, probe, [block])[block]
        for signal, calibration in itertools.product(SIGNALS, CALIBRATIONS):
            if calibration == "none" and reference_name != next(iter(references)):
                continue  # raw signals do not depend on the reference set
            mean, std = stats.tensors(signal, "cpu")
            for t in pool_tasks:
                sig = signals[t.name][block][signal]
                top1, topk = _own_rank(calibrate(sig, mean, std, calibration), engine.pool.index(t.name), k)
                rows.append(
                    {
                        "signal": signal,
                        "calibration": calibration,
                        "reference": reference_name if calibration != "none" else "-",
                        "task": t.name,
                        "top1_own_rate": top1,
                        "topk_own_rate": topk,
                        "n": sig.shape[0],
                    }
                )
    return pd.DataFrame(rows)


def mean_signal_matrix(
    engine: LoGoEngine, tasks: list[Task], signal: str, limit: int = 100, probe: ProbeConfig | None = None
) -> pd.DataFrame:
    """Rows = input tasks, columns = adapters: the mean raw signal over the task's test prompts (the heatmap)."""
    probe = probe or ProbeConfig(block=-1)  # the paper's probe location, as the committed results
    rows = {}
    for task in tqdm(tasks, desc=f"heatmap {signal}", leave=False):
        prompts = [task.prompt(r["input"]) for r in task.examples("test", limit)]
        rows[task.name] = engine.raw_signals(prompts, probe)[signal].mean(dim=0).tolist()
    return pd.DataFrame.from_dict(rows, orient="index", columns=list(engine.adapter_names))
