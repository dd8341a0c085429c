"""Dev sweep of merge weightings (linear, softmax, adaptive k) at the best calibrated routing: chooses `recommended`.

    python -m analysis.weighting_sweep generate --out runs.jsonl [--device cuda] [--per-task 6]
    python -m analysis.weighting_sweep report runs.jsonl      # scores, CSV and figure under assets/results/weighting/

Inputs are dev rows 4.. of every task (the zoo's reference set, assets/reference_prompts_zoo.txt, is dev rows 0-3
of the pool tasks), never test rows. Settings as in analysis/evaluate.py: in_pool (pool tasks, every adapter)
and held_out (held-out tasks with every adapter, plus pool tasks without their own adapter). Each prompt is routed
once per routing config with every adapter scored; each weighting option then turns those scores into a mixture
with logo.signals.select_top_k (the engine's own function), and identical (prompt, mixture) pairs are generated
once. `generate` needs no scorer, so it can run where rouge_score is not installed; `report` scores.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from logo import EngineConfig, GenerationConfig, LoGoEngine, ProbeConfig, RoutingConfig
from logo.signals import select_top_k
from zoo.data import ADAPTERS_DIR, ASSETS_DIR, REFERENCE_PROMPTS, Task, load_tasks
from zoo.metrics import score

log = logging.getLogger(__name__)
OUT_DIR = ASSETS_DIR / "results" / "weighting"
FIRST_DEV_ROW = 4  # rows 0-3 of each pool task's dev split are the zoo's reference (calibration) prompts
PAPER = RoutingConfig(signal="norm", calibration="none", probe=ProbeConfig(block=-1))
# the best calibrated routing of the routing-v2 study on dev (assets/results/routing_v2/handwritten.csv:
# own-adapter top-1 0.940 on dev rows 4-23, hand-written category accuracy 0.875; the next best differ by < 0.003)
CALIBRATED = RoutingConfig(signal="norm", calibration="zscore", probe=ProbeConfig(block=-2))


@dataclass(frozen=True)
class Option:
    """One weighting option: a routing config (signal, calibration, block) and the select_top_k arguments."""

    name: str
    routing: RoutingConfig
    k: int = 3
    select: dict = field(default_factory=dict)  # weighting, temperature, score_margin, min_score_ratio


OPTIONS = (  # a handful: the shared 2-core CPU generates about one answer a second
    Option("paper (raw norm, linear k=3)", PAPER),
    Option("linear k=3", CALIBRATED),
    Option("linear k=1", CALIBRATED, k=1),
    Option("softmax T=0.3", CALIBRATED, select={"weighting": "softmax", "temperature": 0.3}),
    Option("softmax T=1", CALIBRATED, select={"weighting": "softmax", "temperature": 1.0}),
    Option("linear k<=3, margin 1", CALIBRATED, select={"score_margin": 1.0}),
)


@dataclass(frozen=True)
class Case:
    """One dev input in one setting; `exclude` is the own adapter of a pool task in the held-out setting."""

    setting: str
    task: Task
    row: int
    prompt: str
    target: object
    exclude: str | None


def cases(per_task: int, held_out_per_task: int, leave_one_out: bool = False) -> list[Case]:
    """`per_task` dev inputs of every pool task, `held_out_per_task` of every held-out task; held_out holds the
    held-out tasks (and, with `leave_one_out`, the pool tasks without their own adapter, as analysis/evaluate.py:
    twice the generations, too many for a shared CPU)."""
    out = []
    for task in load_tasks():
        n = held_out_per_task if task.held_out else per_task
        rows = task.examples("dev", FIRST_DEV_ROW + n)[FIRST_DEV_ROW:]
        settings = [("held_out", None)] if task.held_out else [("in_pool", None)]
        if leave_one_out and not task.held_out:
            settings.append(("held_out", task.name))
        for setting, exclude in settings:
            for i, row in enumerate(rows, start=FIRST_DEV_ROW):
                out.append(Case(setting, task, i, task.prompt(row["input"]), row["target"], exclude))
    return out


def mixtures(engine: LoGoEngine, all_cases: list[Case], option: Option, scores: torch.Tensor) -> list[dict]:
    """The option's mixture (adapter -> weight) of every case, from the full score table (cases, N)."""
    names = engine.adapter_names
    out = []
    for case, row in zip(all_cases, scores, strict=True):
        allowed = [i for i, n in enumerate(names) if n != case.exclude]
        index, weights = select_top_k(row[allowed][None], option.k, **option.select)  # (1, k) each
        out.append(
            {names[allowed[i]]: w for i, w in zip(index[0].tolist(), weights[0].tolist(), strict=True) if i >= 0}
        )
    return out


def _key(setting: str, task: str, row: int, mixture) -> tuple:
    return setting, task, row, tuple((name, round(weight, 6)) for name, weight in dict(mixture).items())


def generate(engine: LoGoEngine, all_cases: list[Case], batch_size: int, done: set = frozenset()) -> Iterator[dict]:
    """One record per (case, option): the mixture and the generated text, yielded batch by batch, case by case
    (so that a run stopped early holds every option for the cases it reached). `done` (_key) are skipped."""
    prompts = [c.prompt for c in all_cases]
    scores = {}  # routing config -> (cases, N) calibrated scores of every adapter
    for option in OPTIONS:
        key = json.dumps(option.routing.to_dict(), sort_keys=True)
        if key not in scores:
            config = option.routing.with_(k=len(engine.pool))
            routings = engine.route(prompts, config)  # calibrated on the engine's reference set: the zoo's
            scores[key] = torch.tensor([r.scores for r in routings])
    plan: dict[tuple[int, tuple], list[str]] = {}  # (case, mixture) -> options that use it
    for option in OPTIONS:
        key = json.dumps(option.routing.to_dict(), sort_keys=True)
        for i, mixture in enumerate(mixtures(engine, all_cases, option, scores[key])):
            plan.setdefault((i, tuple(mixture.items())), []).append(option.name)
    log.info("%d cases x %d options = %d distinct generations", len(all_cases), len(OPTIONS), len(plan))
    for budget in sorted({c.task.max_new_tokens for c in all_cases}):
        todo = sorted(
            (i, m)
            for i, m in plan
            if all_cases[i].task.max_new_tokens == budget
            and _key(all_cases[i].setting, all_cases[i].task.name, all_cases[i].row, m) not in done
        )
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            results = engine.generate_batch(
                [all_cases[i].prompt for i, _ in chunk],
                generation=GenerationConfig(max_new_tokens=budget),
                mixtures=[dict(m) for _, m in chunk],
                batch_size=batch_size,
            )
            log.info("%d tokens: %d / %d generated", budget, start + len(chunk), len(todo))
            for (i, mixture), result in zip(chunk, results, strict=True):
                case = all_cases[i]
                for name in plan[(i, mixture)]:
                    yield {
                        "option": name,
                        "setting": case.setting,
                        "task": case.task.name,
                        "row": case.row,
                        "exclude": case.exclude,
                        "mixture": dict(mixture),
                        "text": result.text,
                    }


def scored(records: list[dict]) -> pd.DataFrame:
    """Each record with its score (zoo.metrics.score against the dev target) and whether its top-1 is its own task."""
    tasks = {t.name: t for t in load_tasks()}
    targets = {}
    rows = []
    for record in records:
        task = tasks[record["task"]]
        if task.name not in targets:
            targets[task.name] = task.examples("dev")
        target = targets[task.name][record["row"]]["target"]
        top1 = next(iter(record["mixture"]))
        rows.append(
            {
                "option": record["option"],
                "setting": record["setting"],
                "task": task.name,
                "row": record["row"],
                "score": score(task.metric, record["text"], target),
                "own_top1": float(top1 == task.name),
                "n_selected": len(record["mixture"]),
                "top_weight": max(record["mixture"].values()),
            }
        )
    return pd.DataFrame(rows)


def summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Per option and setting: the mean over tasks of each task's mean score (as analysis/evaluate.py averages).

    Only inputs that every option answered count, so that a run stopped early compares like with like.
    """
    counts = frame.groupby(["setting", "task", "row"])["option"].transform("nunique")
    frame = frame[counts == frame["option"].nunique()]
    per_task = frame.groupby(["option", "setting", "task"], as_index=False).mean(numeric_only=True)
    table = per_task.groupby(["option", "setting"], as_index=False).agg(
        score=("score", "mean"),
        own_top1=("own_top1", "mean"),  # in_pool only: a held-out input has no own adapter
        n_selected=("n_selected", "mean"),
        top_weight=("top_weight", "mean"),
        n_tasks=("task", "nunique"),
    )
    wide = table.pivot(index="option", columns="setting")
    wide.columns = [f"{setting}_{what}" for what, setting in wide.columns]
    wide = wide.drop(columns=["held_out_own_top1"])
    wide["dev_mean"] = (wide["in_pool_score"] + wide["held_out_score"]) / 2
    wide["n_inputs"] = frame.groupby("option").size()
    order = [o.name for o in OPTIONS if o.name in wide.index]
    return wide.loc[order].reset_index().round(4)


def figure(table: pd.DataFrame):
    import plotly.graph_objects as go

    fig = go.Figure()
    for column, label in (("in_pool_score", "in-pool"), ("held_out_score", "held-out"), ("dev_mean", "mean")):
        fig.add_bar(name=label, x=table["option"], y=table[column], text=table[column].round(1), textposition="outside")
    fig.update_layout(
        title="Merge weightings on dev (z-scored norm, own reference set, block -2; paper = raw norm, last block)",
        yaxis_title="dev score (mean over tasks)",
        barmode="group",
        template="plotly_white",
        width=1100,
        height=520,
    )
    return fig


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="route and generate every (dev input, option); JSONL out")
    gen.add_argument("--out", type=Path, required=True)
    gen.add_argument("--device", default=None)
    gen.add_argument("--dtype", default="float32", help="float32 everywhere: the CPU's numbers on a GPU too")
    gen.add_argument("--per-task", type=int, default=6, help="dev inputs per pool task")
    gen.add_argument("--held-out-per-task", type=int, default=6, help="dev inputs per held-out task")
    gen.add_argument("--batch-size", type=int, default=32)
    gen.add_argument("--leave-one-out", action="store_true", help="held_out also holds pool tasks minus their adapter")
    rep = sub.add_parser("report", help="score the generations; write the CSV and figure")
    rep.add_argument("generations", type=Path)
    rep.add_argument("--out-dir", type=Path, default=OUT_DIR)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.command == "generate":
        config = EngineConfig(
            adapters=(str(ADAPTERS_DIR),), reference_prompts=REFERENCE_PROMPTS, device=args.device, dtype=args.dtype
        )
        engine = LoGoEngine(config)
        done = set()  # a rerun into the same file continues where the last one stopped
        if args.out.is_file():
            for line in args.out.read_text().splitlines():
                r = json.loads(line)
                done.add(_key(r["setting"], r["task"], r["row"], r["mixture"]))
        with open(args.out, "a") as out:
            all_cases = cases(args.per_task, args.held_out_per_task, args.leave_one_out)
            for record in generate(engine, all_cases, args.batch_size, done):
                out.write(json.dumps(record) + "\n")
                out.flush()
        return
    records = [json.loads(line) for line in args.generations.read_text().splitlines() if line.strip()]
    frame = scored(records)
    table = summary(frame)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.out_dir / "weighting_dev_instances.csv", index=False)
    table.to_csv(args.out_dir / "weighting_sweep.csv", index=False)
    fig = figure(table)
    fig.write_html(args.out_dir / "weighting_sweep.html", include_plotlyjs="../plotly.min.js")
    try:
        fig.write_image(args.out_dir / "weighting_sweep.png", scale=1)
    except Exception as err:  # kaleido needs a browser; the HTML is the figure of record
        log.warning("no PNG (%s): the HTML figure is written", err)
    log.info("%s", table.to_string(index=False))


if __name__ == "__main__":
    main()
