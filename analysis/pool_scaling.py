"""Routing as the pool grows: 270 distractors beside the 27 zoo adapters (and the 2 hostile ones).

    python -m analysis.pool_scaling probe    # writes the distractors to out/, probes test inputs with the big pool
    python -m analysis.pool_scaling report   # own-adapter top-1 against N -> assets/results/routing_v2/
    python -m analysis.pool_scaling loudness # whom the loudness limit leaves out of each pool (no model)
    python -m analysis.pool_scaling score [--limit 30] [--out DIR] [--runs DIR] [--budget-minutes M]
        # in-pool score against N for the paper and recommended presets: generation, a GPU job (resumable)
    python -m analysis.pool_scaling figure   # redraws pool_scaling.html from the committed CSVs

Distractors (out/routing_v2/distractors, 90 of each kind, seeded), every one with the zoo's per-module sizes:
  random:    Gaussian A and B, rescaled so that ||s B A||_F equals a zoo adapter's at every module;
  permuted:  a zoo adapter with the input dimensions of A and the output dimensions of B shuffled (same norms);
  perturbed: a zoo adapter plus Gaussian noise of half its factors' size, rescaled to its norms (a near sibling).
Each adapter's raw signal does not depend on the rest of the pool, so one probe of the biggest pool gives every
smaller pool by taking columns. The in-pool score against N needs generation with every pool: `score` loads the
zoo and all 270 distractors once and, for every mixed pool of SIZES, routes each pool task's first --limit test
inputs with the presets exactly as the engine runs them (the zoo's reference_prompts.txt calibrates
`recommended`), the adapters outside that pool excluded, then answers greedily with the routed mixtures.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import torch

from analysis.adapter_files import AdapterFactors, read_adapter, write_adapter
from analysis.hostile import HOSTILE, HOSTILE_DIR
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
from logo.config import LOUDNESS_LIMIT, RoutingConfig
from zoo.data import ADAPTERS_DIR, Task, load_tasks

log = logging.getLogger(__name__)
DISTRACTOR_DIR = CACHE_DIR / "distractors"
KINDS = ("random", "permuted", "perturbed")
PER_KIND = 90
TEST_LIMIT = 30  # test inputs per pool task
SIZES = (27, 54, 81, 135, 189, 243, 297)
# the paper's preset and the dev-best calibrated configs (assets/results/routing_v2/handwritten.csv)
COMPARED = ("paper", "entropy_zscore_own_b24", "norm_zscore_own_b24", "norm_zscore_own_b-2")
PRESETS = ("paper", "recommended")  # what `score` generates with (recommended = norm_zscore_own_b-2, softmax T=0.3)
SCORE_RUNS = CACHE_DIR / "scores"  # per (N, preset) JSONL of the score step
RECOMMENDED = RoutingConfig.preset("recommended")
RECOMMENDED_STUDY = "norm_zscore_own_b-2"  # recommended's routing in the study's terms (without the loudness limit)


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


def own_rates(
    bank: SignalBank, stats: Stats, labels: list[str], config: StudyConfig, k: int = 3, left_out: Sequence[str] = ()
) -> dict:
    """Own-adapter top-1 and top-k, averaged over tasks; `left_out` adapters are never selected."""
    scored = scores(bank, stats, config).clone()
    scored[:, [bank.adapters.index(a) for a in left_out]] = float("-inf")
    chosen = top_k(scored, k)  # (P, k)
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


def too_loud(stats: Stats, block: int = RECOMMENDED.probe.block, limit: float = LOUDNESS_LIMIT) -> tuple[str, ...]:
    """The adapters the engine's loudness limit leaves out of a pool (its own-reference statistics at `block`)."""
    return stats["own", block % 30].too_loud(limit)


def scaling_table(configs: list[StudyConfig]) -> pd.DataFrame:
    """Own-adapter top-1/top-3 per pool and config; `recommended` is its config with the loudness limit applied."""
    zoo = [t.name for t in load_tasks() if not t.held_out]
    everything = torch.load(CACHE_DIR / f"test{TEST_LIMIT}.pt")["adapters"]
    limited = next(c for c in configs if c.name == RECOMMENDED_STUDY)
    rows = []
    for (kind, n), names in pools(tuple(everything), zoo).items():
        bank, stats, labels = test_view(names)
        runs = [(config.name, config, ()) for config in configs] + [("recommended", limited, too_loud(stats))]
        for name, config, left_out in runs:
            rates = own_rates(bank, stats, labels, config, left_out=left_out)
            rows.append({"distractors": kind, "n_pool": n, "config": name, "too_loud": len(left_out)} | rates)
    return pd.DataFrame(rows)


def loudness_table() -> pd.DataFrame:
    """Per pool (mixed distractors by N, and each kind alone), with and without the two hostile adapters: how many
    adapters the loudness limit leaves out at the recommended block, how many of them are zoo adapters, whether
    both hostile ones are among them, and what the same multiple of the pool's median would have left out."""
    zoo = [t.name for t in load_tasks() if not t.held_out]
    everything = tuple(torch.load(CACHE_DIR / f"test{TEST_LIMIT}.pt")["adapters"])
    hostile = [a for a in everything if a in HOSTILE]
    block = RECOMMENDED.probe.block
    rows = []
    for (kind, _), names in pools(everything, zoo).items():
        for pool in (names, names + hostile):
            stats = cached_reference_stats(pool)["own", block % 30]
            loud = set(stats.too_loud(LOUDNESS_LIMIT))
            norms = dict(zip(stats.adapters, stats.mean["norm"], strict=True))
            median = statistics.median(norms.values())
            by_median = {a for a, m in norms.items() if m > LOUDNESS_LIMIT * median}
            rows.append(
                {
                    "distractors": kind,
                    "n_pool": len(pool),
                    "hostile_in_pool": len(pool) > len(names),
                    "block": block,
                    "too_loud": len(loud),
                    "zoo_too_loud": len(loud & set(zoo)),
                    "hostile_left_out": all(h in loud for h in hostile) if len(pool) > len(names) else None,
                    "median_rule_too_loud": len(by_median),
                    "median_rule_zoo_too_loud": len(by_median & set(zoo)),
                }
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


def score_unit_path(runs: Path, n: int, preset: str) -> Path:
    return runs / f"n{n:03d}_{preset}.jsonl"


def score_pools(engine_names: tuple[str, ...], sizes: tuple[int, ...] = SIZES) -> dict[int, list[str]]:
    """N -> the mixed pool of that size (as in the routing table) among the loaded adapters."""
    zoo = [t.name for t in load_tasks() if not t.held_out]
    return {n: names for (kind, n), names in pools(engine_names, zoo).items() if kind == "mixed" and n in sizes}


def score_unit(engine, tasks: list[Task], pool: list[str], preset: str, limit: int, batch_size: int) -> list[dict]:
    """Route every pool task's test inputs within `pool` with a preset, answer, score: one record per input."""
    from logo.config import GenerationConfig
    from zoo.metrics import score

    exclude = [a for a in engine.adapter_names if a not in set(pool)]
    rows = [(t, r) for t in tasks for r in t.examples("test", limit)]
    prompts = [t.prompt(r["input"]) for t, r in rows]
    routings = engine.route(prompts, RoutingConfig.preset(preset), exclude=exclude)
    records: list[dict | None] = [None] * len(rows)
    for budget in sorted({t.max_new_tokens for t in tasks}):  # one generation run per answer length
        index = [i for i, (t, _) in enumerate(rows) if t.max_new_tokens == budget]
        answers = engine.generate_batch(
            [prompts[i] for i in index],
            generation=GenerationConfig(max_new_tokens=budget),
            mixtures=[routings[i].mixture for i in index],
            batch_size=batch_size,
        )
        for i, answer in zip(index, answers, strict=True):
            task, row = rows[i]
            records[i] = {
                "task": task.name,
                "category": task.category,
                "input": row["input"],
                "score": score(task.metric, answer.text, row["target"]),
                "selected": list(routings[i].selected),
                "weights": [round(w, 5) for w in routings[i].weights],
                "reference": (routings[i].config.get("reference") or {}).get("source"),
            }
    return records


def score(
    limit: int,
    runs: Path,
    out: Path,
    batch_size: int,
    budget_minutes: float | None,
    device: str | None = None,
    sizes: tuple[int, ...] = SIZES,
) -> None:
    """The score step (see the module docstring); finished (N, preset) units are skipped, so it resumes."""
    from logo.config import EngineConfig
    from logo.engine import LoGoEngine

    started = time.monotonic()
    if not (DISTRACTOR_DIR / f"perturbed_{PER_KIND - 1:03d}").is_dir():
        write_distractors()
    engine = LoGoEngine(EngineConfig(adapters=(str(ADAPTERS_DIR), str(DISTRACTOR_DIR)), device=device))
    tasks = [t for t in load_tasks() if not t.held_out]
    pools_by_n = score_pools(engine.adapter_names, sizes)
    units = [(n, preset) for n in pools_by_n for preset in PRESETS]
    runs.mkdir(parents=True, exist_ok=True)
    for n, preset in units:
        path = score_unit_path(runs, n, preset)
        if path.is_file():
            continue
        if budget_minutes is not None and time.monotonic() - started > 60 * budget_minutes:
            log.info("budget of %g minutes spent: run again to go on", budget_minutes)
            break
        records = score_unit(engine, tasks, pools_by_n[n], preset, limit, batch_size)
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in records))
        tmp.replace(path)
        log.info("N=%d %s: mean score %.1f", n, preset, sum(r["score"] for r in records) / len(records))
    write_score_table(runs, out)


def score_instances(runs: Path) -> pd.DataFrame:
    """Every scored input of the score step: n_pool, preset, task, category, position, input, score, own_top1."""
    rows = []
    for path in sorted(runs.glob("n*_*.jsonl")):
        n, preset = path.stem.split("_", 1)
        positions: dict[str, int] = {}
        for line in path.read_text().splitlines():
            r = json.loads(line)
            position = positions[r["task"]] = positions.get(r["task"], -1) + 1
            own = bool(r["selected"]) and r["selected"][0] == r["task"]
            rows.append(
                {
                    "n_pool": int(n[1:]),
                    "preset": preset,
                    "task": r["task"],
                    "category": r["category"],
                    "position": position,
                    "input": r["input"],
                    "score": r["score"],
                    "own_top1": float(own),
                }
            )
    return pd.DataFrame(rows)


def write_score_table(runs: Path, out: Path) -> pd.DataFrame:
    """pool_scaling_scores.csv: per N and preset, the in-pool score (category average) with its bootstrap 95% CI."""
    from analysis.intervals import intervals

    frame = score_instances(runs)
    if frame.empty:
        log.info("no finished score units under %s", runs)
        return frame
    rows = []
    for (n, preset), part in frame.groupby(["n_pool", "preset"]):
        cis = intervals(part.assign(setting="in_pool", method=preset))
        avg = cis[cis.scope == "avg"]
        if avg.empty:
            continue
        rows.append(
            {
                "n_pool": n,
                "preset": preset,
                "score": avg.score.iloc[0],
                "ci_low": avg.ci_low.iloc[0],
                "ci_high": avg.ci_high.iloc[0],
                "own_top1": part.groupby("task")["own_top1"].mean().mean(),
                "n_tasks": part.task.nunique(),
                "n_per_task": part.groupby("task").size().min(),
            }
        )
    table = pd.DataFrame(rows).sort_values(["preset", "n_pool"])
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "pool_scaling_scores.csv", index=False, float_format="%.4f")
    log.info("%s", table.to_string(index=False))
    return table


# one colour and name per routing config, the same in both panels (the presets strong, the other configs muted)
LOOK = {
    "paper": ("paper (raw norm, last block)", "#d62728"),
    "recommended": ("recommended (norm z-score, own references, block -2, loudness limit)", "#1f77b4"),
    "norm_zscore_own_b24": ("norm z-score, own references, block 24", "#9ecae1"),
    "entropy_zscore_own_b24": ("entropy z-score, own references, block 24", "#bcbd22"),
}
PRESET_CONFIG = {"paper": "paper", "recommended": "recommended"}


def scaling_figure(table: pd.DataFrame, scores: pd.DataFrame | None = None):
    """Own-adapter top-1 against pool size, one line per config (mixed distractors); with `scores`
    (pool_scaling_scores.csv), a second panel: the presets' in-pool score with its bootstrap 95% interval. A
    config keeps its colour and legend entry across both panels."""
    import plotly.graph_objects as go  # here: the GPU machine that runs `score` has no plotly
    from plotly.subplots import make_subplots

    panels = 1 if scores is None or scores.empty else 2
    titles = ["own adapter ranked first (test inputs)", "in-pool score, 0-100 (bootstrap 95% CI)"][:panels]
    fig = make_subplots(rows=1, cols=panels, subplot_titles=titles, horizontal_spacing=0.1)
    # recommended's study config without the limit is drawn as `recommended` (identical on these pools: the limit
    # leaves nobody out of them, pool_scaling_loudness.csv)
    mixed = table[(table["distractors"] == "mixed") & (table["config"] != RECOMMENDED_STUDY)]
    for config, rows in mixed.groupby("config", sort=False):
        name, colour = LOOK.get(config, (config, None))
        line = {"color": colour, "width": 3 if config in PRESET_CONFIG.values() else 1.5}
        trace = go.Scatter(
            x=rows["n_pool"], y=rows["own_top1"], mode="lines+markers", name=name, legendgroup=config, line=line
        )
        fig.add_trace(trace, 1, 1)
    if panels == 2:
        for preset, rows in scores.groupby("preset", sort=False):
            config = PRESET_CONFIG.get(preset, preset)
            name, colour = LOOK.get(config, (preset, None))
            error = {"type": "data", "array": rows.ci_high - rows.score, "arrayminus": rows.score - rows.ci_low}
            trace = go.Scatter(
                x=rows.n_pool, y=rows.score, error_y=error, mode="lines+markers", name=name, legendgroup=config,
                line={"color": colour, "width": 3}, showlegend=config not in set(mixed["config"]),
            )  # fmt: skip
            fig.add_trace(trace, 1, 2)
        fig.update_yaxes(range=[0, 100], title_text="score", row=1, col=2)
        fig.update_xaxes(title_text="adapters in the pool (N)", row=1, col=2)
    fig.update_yaxes(range=[0, 1], title_text="own-adapter top-1", row=1, col=1)
    fig.update_xaxes(title_text="adapters in the pool (N)", row=1, col=1)
    fig.update_layout(
        template="plotly_white",
        title="Routing as the pool grows (27 zoo adapters + distractors)",
        height=560,
        legend={"orientation": "h", "y": -0.2, "x": 0},
        margin={"b": 140},
    )
    return fig


def draw(results: Path = RESULTS_DIR) -> None:
    """pool_scaling.html from the committed pool_scaling.csv (and pool_scaling_scores.csv when present)."""
    scores_path = results / "pool_scaling_scores.csv"
    scores = pd.read_csv(scores_path) if scores_path.is_file() else None
    fig = scaling_figure(pd.read_csv(results / "pool_scaling.csv"), scores)
    fig.write_html(results / "pool_scaling.html", include_plotlyjs="../plotly.min.js")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=("probe", "report", "hostile", "score", "figure", "loudness"))
    parser.add_argument("--limit", type=int, default=TEST_LIMIT, help="score: test inputs per pool task")
    parser.add_argument("--runs", type=Path, default=SCORE_RUNS, help="score: per (N, preset) JSONL, resumable")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="score: where pool_scaling_scores.csv goes")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--budget-minutes", type=float, help="score: start no new unit after this many minutes")
    parser.add_argument("--device", help="score: the engine's device (default: CUDA when available)")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="score: pool sizes N")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.step == "score":
        score(args.limit, args.runs, args.out, args.batch_size, args.budget_minutes, args.device, tuple(args.sizes))
        return
    if args.step == "probe":
        probe()
        return
    if args.step == "hostile":
        report_hostile()
        return
    if args.step == "figure":
        draw()
        return
    if args.step == "loudness":
        table = loudness_table()
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        table.to_csv(RESULTS_DIR / "pool_scaling_loudness.csv", index=False)
        log.info("%s", table.to_string(index=False))
        return
    table = scaling_table([c for c in study_configs() if c.name in COMPARED])
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    table.to_csv(RESULTS_DIR / "pool_scaling.csv", index=False, float_format="%.4f")
    draw()
    log.info("%s", table.to_string(index=False))


if __name__ == "__main__":
    main()
