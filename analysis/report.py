"""Builds the committed analysis: dataset-level signals, task similarity, latency and sweeps, each as CSV and figure.

    python -m analysis.report [--runs out/eval] [--out assets/results] [--limit 100] [--sweep-limit 40] [--only ...]

The UI reads signals_{norm,entropy}.csv (the last block), signals_{norm,entropy}_block-2.csv (the recommended
probe block), weight_similarity.csv and task_centroids.json from --out.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
from pathlib import Path

import pandas as pd

from analysis import figures
from analysis.evaluate import DEFAULT_OUT, DEFAULT_RUNS
from logo.calibration import read_reference_prompts
from logo.config import EngineConfig, GenerationConfig, ProbeConfig, RoutingConfig
from logo.engine import LoGoEngine
from logo.probe import block_index
from zoo.data import ADAPTERS_DIR, load_tasks

log = logging.getLogger(__name__)
STEPS = ("centroids", "heatmap", "similarity", "latency", "probe_sweep", "calibration", "k_sweep")
SCATTER_METHODS = ("logo_norm", "logo_entropy_cal")  # the paper's variant and our best; the rest adds size, not insight
HEATMAP_BLOCKS = (-1, -2)  # the paper's probe block (the last) and the recommended one: the Studio's dataset rows
LATENCY_PROMPT = "Write a long, detailed story about a lighthouse keeper and a storm."


def save_figure(fig, out: Path, name: str) -> None:
    """PNG (when a Chromium is available) and HTML sharing one plotly.js file in the folder."""
    from analysis.export import PngExportUnavailable, export_png

    out.mkdir(parents=True, exist_ok=True)
    fig.write_html(out / f"{name}.html", include_plotlyjs="directory", full_html=True)
    try:
        export_png(fig, out / f"{name}.png")
    except PngExportUnavailable as err:
        log.warning("no PNG for %s: %s", name, err)


def centroids(out: Path, tasks) -> dict:
    from analysis.similarity import TaskEmbedder, save_task_centroids

    embedder = TaskEmbedder()
    result = {t.name: embedder.task_centroid([t.prompt(r["input"]) for r in t.examples("dev", 200)]) for t in tasks}
    save_task_centroids(out / "task_centroids.json", result)
    return result


def signals_csv(out: Path, signal: str, block: int = -1) -> Path:
    """Where the heatmap step writes the mean `signal` per (task, adapter) measured at `block` (from the end)."""
    return out / (f"signals_{signal}.csv" if block == -1 else f"signals_{signal}_block{block}.csv")


def mean_signals_by_block(
    engine: LoGoEngine, tasks, limit: int, blocks: tuple[int, ...] = HEATMAP_BLOCKS
) -> dict[int, dict[str, pd.DataFrame]]:
    """block -> signal -> rows = input tasks, columns = adapters: the mean raw signal of the task's first `limit`
    test prompts, at every block from one forward pass (the recommended probe's module, input and aggregation)."""
    probe = ProbeConfig()  # its block is ignored: raw_signals_by_block reads every block in `blocks`
    rows: dict[int, dict[str, dict[str, list[float]]]] = {b: {"norm": {}, "entropy": {}} for b in blocks}
    for task in tasks:
        prompts = [task.prompt(r["input"]) for r in task.examples("test", limit)]
        measured = engine.raw_signals_by_block(prompts, probe, list(blocks))  # block index -> signal -> (P, N)
        for b in blocks:
            for signal, values in measured[block_index(engine.model, b)].items():
                rows[b][signal][task.name] = values.mean(dim=0).tolist()
        log.info("heatmap: %s (%d prompts)", task.name, len(prompts))
    columns = list(engine.adapter_names)
    return {
        b: {s: pd.DataFrame.from_dict(r, orient="index", columns=columns) for s, r in by_signal.items()}
        for b, by_signal in rows.items()
    }


def heatmap(engine: LoGoEngine | None, tasks, out: Path, limit: int) -> None:
    """Mean signal per (input task, adapter) at each of HEATMAP_BLOCKS; with engine=None, redraw the last block's
    figure from the CSVs already in `out`."""
    categories = {t.name: t.category for t in tasks}
    if engine is None:
        matrices = {-1: {s: pd.read_csv(signals_csv(out, s), index_col=0) for s in ("norm", "entropy")}}
    else:
        matrices = mean_signals_by_block(engine, tasks, limit)
        for block, by_signal in matrices.items():
            for signal, matrix in by_signal.items():
                matrix.to_csv(signals_csv(out, signal, block), float_format="%.5g")
    for signal, matrix in matrices[-1].items():
        fig = figures.signal_heatmap(
            matrix,
            {n: categories[n] for n in matrix.columns},
            categories,
            title=f"Mean {signal} signal per adapter (rows: input tasks; raw, last block q_proj)",
        )
        save_figure(fig, out, f"heatmap_{signal}")


def similarity(runs: Path, out: Path, tasks) -> None:
    """One point per (instance, selected adapter) of the LoGo methods: merge weight vs task similarity."""
    from analysis.similarity import load_task_centroids

    cents = load_task_centroids(out / "task_centroids.json")
    points = []
    for path in sorted((runs / "instances").glob("*/logo_*/*.jsonl")):
        if path.parent.name not in SCATTER_METHODS:
            continue
        task = path.stem
        for line in path.read_text().splitlines():
            record = json.loads(line)
            for adapter, weight in zip(record["selected"], record["weights"], strict=True):
                sim = float(cents[adapter] @ cents[task])
                points.append(
                    {
                        "method": path.parent.name,
                        "setting": path.parent.parent.name,
                        "task": task,
                        "adapter": adapter,
                        "weight": weight,
                        "similarity": sim,
                    }
                )
    df = pd.DataFrame(points)
    df.to_csv(out / "weight_similarity.csv", index=False, float_format="%.3f")
    if not df.empty:
        for method, part in df.groupby("method"):
            save_figure(
                figures.weight_similarity_scatter(part, title=f"Merge weight vs task similarity ({method})"),
                out,
                f"weight_similarity_{method}",
            )


def latency(engine: LoGoEngine, out: Path, tokens: int, repeats: int = 3) -> None:
    """Average time per generated token (probe and merge counted) for 1..tokens tokens, on this machine."""
    routing = RoutingConfig(k=3)
    adapter = engine.route(LATENCY_PROMPT, routing)[0].selected[0]
    variants = {
        "base": dict(mixture={}, mode="mixture"),
        "single adapter": dict(mixture={adapter: 1.0}, mode="mixture"),
        "LoGo mixture (k=3)": dict(mixture=None, mode="mixture"),
        "LoGo fused (k=3)": dict(mixture=None, mode="fused"),
    }
    curves, rows = {}, []
    for label, v in variants.items():
        config = GenerationConfig(max_new_tokens=tokens, mode=v["mode"], ignore_eos=True)
        engine.generate(
            LATENCY_PROMPT, routing, GenerationConfig(max_new_tokens=4, mode=v["mode"]), mixture=v["mixture"]
        )
        runs = [
            engine.generate(LATENCY_PROMPT, routing, config, mixture=v["mixture"]).token_times_ms
            for _ in range(repeats)
        ]
        # a repeat that meets eos earlier ends its curve there: the medians cover the tokens every repeat made
        curves[label] = [statistics.median(ts) for ts in zip(*runs, strict=False)]
        rows += [{"variant": label, "tokens": n + 1, "ms_per_token": t / (n + 1)} for n, t in enumerate(curves[label])]
    pd.DataFrame(rows).to_csv(out / "latency.csv", index=False, float_format="%.3f")
    device = str(engine.device)
    save_figure(figures.latency_curve(curves, title=f"Latency amortisation on {device}"), out, "latency")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=DEFAULT_RUNS)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--limit", type=int, default=100, help="test prompts per task for the heatmap")
    parser.add_argument("--sweep-limit", type=int, default=40, help="test prompts per task for the sweeps")
    parser.add_argument("--latency-tokens", type=int, default=256)
    parser.add_argument("--only", nargs="+", choices=STEPS, default=list(STEPS))
    parser.add_argument("--reuse", action="store_true", help="redraw heatmaps and sweeps from the CSVs in --out")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    tasks = load_tasks()
    needs_engine = {"latency"} | (set() if args.reuse else {"heatmap", "probe_sweep", "calibration"})
    engine = LoGoEngine(EngineConfig(adapters=(str(ADAPTERS_DIR),))) if needs_engine & set(args.only) else None
    if "centroids" in args.only:
        centroids(args.out, tasks)
    if "heatmap" in args.only:
        heatmap(None if args.reuse else engine, tasks, args.out, args.limit)
    if "similarity" in args.only:
        similarity(args.runs, args.out, tasks)
    if "latency" in args.only:
        latency(engine, args.out, args.latency_tokens)
    if "probe_sweep" in args.only:
        from analysis.sweeps import probe_sweep

        if args.reuse:
            df = pd.read_csv(args.out / "probe_sweep.csv")
        else:
            df = probe_sweep(engine, tasks, read_reference_prompts(engine.config.reference_prompts), args.sweep_limit)
            df.to_csv(args.out / "probe_sweep.csv", index=False, float_format="%.4f")
        save_figure(figures.probe_sweep(df), args.out, "probe_sweep")
    if "calibration" in args.only and not args.reuse:
        from analysis.methods import EvalContext
        from analysis.sweeps import calibration_sweep

        references = {
            "generic": read_reference_prompts(engine.config.reference_prompts),
            "own": EvalContext(engine).own_reference,
        }
        df = calibration_sweep(engine, tasks, references, limit=args.limit)
        df.to_csv(args.out / "routing_calibration.csv", index=False, float_format="%.4f")
    if "k_sweep" in args.only:
        k_sweep_figure(args.runs, args.out)


def k_sweep_figure(runs: Path, out: Path) -> None:
    """From evaluation runs made with --k K --runs <runs>/k<K>: score and top-1 rate against k."""
    from analysis.evaluate import collect

    tasks = {t.name: t for t in load_tasks()}
    rows = []
    for folder in sorted(runs.glob("k*")):
        if not folder.name[1:].isdigit():
            continue
        k = int(folder.name[1:])
        results, routing = collect(folder, tasks, k)
        for method, part in results[results.setting == "in_pool"].groupby("method"):
            top1 = routing[routing.signal == method.removeprefix("logo_")]["top1_own_rate"].mean()
            rows.append({"k": k, "method": method, "score": part["score"].mean(), "top1_rate": top1})
    if rows:
        df = pd.DataFrame(rows).sort_values(["method", "k"])
        df.to_csv(out / "k_sweep.csv", index=False, float_format="%.4f")
        save_figure(figures.k_sweep(df), out, "k_sweep")


if __name__ == "__main__":
    main()
