"""Routing as the pool grows: 270 distractors beside the 27 zoo adapters (and the 2 hostile ones).

    python -m analysis.pool_scaling probe    # writes the distractors to out/, probes test inputs with the big pool
    python -m analysis.pool_scaling report   # own-adapter top-1 against N -> assets/results/routing_v2/

Distractors (out/routing_v2/distractors, 90 of each kind, seeded), every one with the zoo's per-module sizes:
  random:    Gaussian A and B, rescaled so that ||s B A||_F equals a zoo adapter's at every module;
  permuted:  a zoo adapter with the input dimensions of A and the output dimensions of B shuffled (same norms);
  perturbed: a zoo adapter plus Gaussian noise of half its factors' size, rescaled to its norms (a near sibling).
Each adapter's raw signal does not depend on the rest of the pool, so one probe of the biggest pool gives every
smaller pool by taking columns. The in-pool score against N needs generation with every pool: not measured here.
"""

from __future__ import annotations

import argparse
import logging

import pandas as pd
import plotly.graph_objects as go
import torch

from analysis.adapter_files import AdapterFactors, read_adapter, write_adapter
from analysis.hostile import HOSTILE_DIR
from analysis.routing_study import (
    CACHE_DIR,
    RESULTS_DIR,
    STUDY_BLOCKS,
    SignalBank,
    Stats,
    StudyConfig,
    cached_reference_stats,
    labelled_prompts,
    load_bank,
    reference_stats,
    scores,
    study_configs,
    study_engine,
    top_k,
)
from zoo.data import ADAPTERS_DIR, load_tasks

log = logging.getLogger(__name__)
DISTRACTOR_DIR = CACHE_DIR / "distractors"
KINDS = ("random", "permuted", "perturbed")
PER_KIND = 90
TEST_LIMIT = 30  # test inputs per pool task
SIZES = (27, 54, 81, 135, 189, 243, 297)
# the paper's preset and the dev-best calibrated configs (assets/results/routing_v2/handwritten.csv)
COMPARED = ("paper", "entropy_zscore_own_b24", "norm_zscore_own_b24", "norm_zscore_own_b-2")


def _resize(factors: dict, target: dict[str, float], scaling: float) -> dict:
    """Rescale A and B of every module equally so that ||s B A||_F matches target[module]."""
    out = {}
    for module, (a, b) in factors.items():
        ratio = (target[module] / (scaling * b @ a).norm().clamp_min(1e-12)) ** 0.5
        out[module] = (a * ratio, b * ratio)
    return out


def distractor(kind: str, template: AdapterFactors, generator: torch.Generator) -> AdapterFactors:
    norms, s = template.delta_norms(), template.scaling
    factors = {}
    for module, (a, b) in template.factors.items():
        if kind == "random":
            factors[module] = (torch.randn(a.shape, generator=generator), torch.randn(b.shape, generator=generator))
        elif kind == "permuted":
            cols = torch.randperm(a.shape[1], generator=generator)
            rows = torch.randperm(b.shape[0], generator=generator)
            factors[module] = (a[:, cols], b[rows])
        elif kind == "perturbed":
            noise_a = torch.randn(a.shape, generator=generator) * a.std() * 0.5
            noise_b = torch.randn(b.shape, generator=generator) * b.std() * 0.5
            factors[module] = (a + noise_a, b + noise_b)
        else:
            raise ValueError(f"unknown distractor kind {kind!r}: choose one of {', '.join(KINDS)}")
    return AdapterFactors(_resize(factors, norms, s), dict(template.config))


def write_distractors(per_kind: int = PER_KIND, seed: int = 0) -> list[str]:
    zoo = sorted(p.parent for p in ADAPTERS_DIR.glob("*/adapter_config.json"))
    generator = torch.Generator().manual_seed(seed)
    names = []
    for kind in KINDS:
        for i in range(per_kind):
            template = zoo[i % len(zoo)]
            name = f"{kind}_{i:03d}"
            card = {"name": name, "distractor": kind, "template": template.name, "seed": seed}
            write_adapter(DISTRACTOR_DIR / name, distractor(kind, read_adapter(template), generator), card)
            names.append(name)
    return names


def probe() -> None:
    write_distractors()
    engine = study_engine([HOSTILE_DIR, DISTRACTOR_DIR])
    reference_stats(engine, STUDY_BLOCKS)
    prompts, _ = labelled_prompts([t for t in load_tasks() if not t.held_out], "test", TEST_LIMIT)
    SignalBank.cached(engine, f"test{TEST_LIMIT}", prompts, STUDY_BLOCKS)


def test_view(names: list[str]) -> tuple[SignalBank, Stats, list[str]]:
    """The cached test bank and reference statistics restricted to a pool `names`, and each prompt's task."""
    prompts, labels = labelled_prompts([t for t in load_tasks() if not t.held_out], "test", TEST_LIMIT)
    return load_bank(f"test{TEST_LIMIT}", prompts, names), cached_reference_stats(names), labels


def own_rates(bank: SignalBank, stats: Stats, labels: list[str], config: StudyConfig, k: int = 3) -> dict:
    """Own-adapter top-1 and top-k, averaged over tasks."""
    chosen = top_k(scores(bank, stats, config), k)  # (P, k)
    own = torch.tensor([bank.adapters.index(t) for t in labels])
    frame = pd.DataFrame(
        {"task": labels, "top1": (chosen[:, 0] == own).numpy(), "topk": (chosen == own[:, None]).any(1).numpy()}
    )
    means = frame.groupby("task")[["top1", "topk"]].mean().mean()
    return {"own_top1": float(means["top1"]), "own_top3": float(means["topk"])}


def pools(all_names: tuple[str, ...], zoo: list[str], seed: int = 1) -> dict[tuple[str, int], list[str]]:
    """(distractor kind, N) -> pool: the zoo plus N - 27 distractors of mixed kinds (a seeded order), or of one kind."""
    distractors = [a for a in all_names if a.startswith(KINDS)]
    order = [distractors[i] for i in torch.randperm(len(distractors), generator=torch.Generator().manual_seed(seed))]
    grown = {("mixed", n): zoo + order[: n - len(zoo)] for n in SIZES if n - len(zoo) <= len(order)}
    for kind in KINDS:
        kind_names = [a for a in distractors if a.startswith(kind)]
        grown[(kind, len(zoo) + len(kind_names))] = zoo + kind_names
    return grown


def scaling_table(configs: list[StudyConfig]) -> pd.DataFrame:
    zoo = [t.name for t in load_tasks() if not t.held_out]
    everything = torch.load(CACHE_DIR / f"test{TEST_LIMIT}.pt")["adapters"]
    rows = []
    for (kind, n), names in pools(tuple(everything), zoo).items():
        bank, stats, labels = test_view(names)
        for config in configs:
            rows.append(
                {"distractors": kind, "n_pool": n, "config": config.name} | own_rates(bank, stats, labels, config)
            )
    return pd.DataFrame(rows)


def report_hostile() -> None:
    """Selection rates of the hostile adapters in the zoo + hostile pool, for every study config."""
    from analysis.hostile import selection_rates

    zoo = [t.name for t in load_tasks() if not t.held_out]
    hostile = ["loud_scaled", "loud_constructed"]
    bank, stats, labels = test_view(zoo + hostile)
    rows = []
    for config in study_configs():
        chosen = top_k(scores(bank, stats, config), 3)
        rates = selection_rates(chosen, bank.adapters, labels, hostile)
        rows.append({"config": config.name} | rates | own_rates(bank, stats, labels, config))
    table = pd.DataFrame(rows).assign(n_test=len(labels))
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    table.to_csv(RESULTS_DIR / "hostile.csv", index=False, float_format="%.4f")
    log.info("%s", table.to_string(index=False))


def scaling_figure(table: pd.DataFrame) -> go.Figure:
    """Own-adapter top-1 against pool size, one line per config (mixed distractors)."""
    fig = go.Figure()
    mixed = table[table["distractors"] == "mixed"]
    for config, rows in mixed.groupby("config", sort=False):
        fig.add_trace(go.Scatter(x=rows["n_pool"], y=rows["own_top1"], mode="lines+markers", name=config))
    fig.update_layout(
        template="plotly_white",
        title="Own adapter ranked first as the pool grows (27 zoo adapters + distractors; test inputs)",
        xaxis_title="adapters in the pool (N)",
        yaxis_title="own-adapter top-1",
        yaxis_range=[0, 1],
        width=900,
        height=550,
    )
    return fig


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=("probe", "report", "hostile"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.step == "probe":
        probe()
        return
    if args.step == "hostile":
        report_hostile()
        return
    table = scaling_table([c for c in study_configs() if c.name in COMPARED])
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    table.to_csv(RESULTS_DIR / "pool_scaling.csv", index=False, float_format="%.4f")
    scaling_figure(table).write_html(RESULTS_DIR / "pool_scaling.html", include_plotlyjs="../plotly.min.js")
    log.info("%s", table.to_string(index=False))


if __name__ == "__main__":
    main()
