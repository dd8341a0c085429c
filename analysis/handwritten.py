"""Hand-written prompts (assets/prompts/handwritten.jsonl): category-level routing accuracy of every study config.

    python -m analysis.handwritten [--dev-limit 30]

Also scores each config on the pool tasks' dev inputs (own adapter first), the split on which a recommended
config may be chosen. Writes assets/results/routing_v2/handwritten.csv and prints the table.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import pandas as pd
import torch

from analysis.routing_study import (
    RESULTS_DIR,
    STUDY_BLOCKS,
    SignalBank,
    Stats,
    StudyConfig,
    bootstrap_ci,
    labelled_prompts,
    reference_stats,
    scores,
    study_configs,
    study_engine,
    top_k,
)
from zoo.data import ASSETS_DIR, Task, load_tasks

log = logging.getLogger(__name__)
HANDWRITTEN = ASSETS_DIR / "prompts" / "handwritten.jsonl"


def load_handwritten(path: Path = HANDWRITTEN, tasks: list[Task] | None = None) -> list[dict]:
    """Rows {"prompt", "category", "task"}; every category is a zoo category and every task a pool task of it."""
    tasks = tasks if tasks is not None else load_tasks()
    pool = {t.name: t.category for t in tasks if not t.held_out}
    categories = {t.category for t in tasks}
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        row = json.loads(line)
        if set(row) != {"prompt", "category", "task"} or not str(row["prompt"]).strip():
            raise ValueError(f"{path}:{number}: expected a non-empty 'prompt', a 'category' and a 'task' (or null)")
        if row["category"] not in categories:
            raise ValueError(f"{path}:{number}: unknown category {row['category']!r}: use one of {sorted(categories)}")
        if row["task"] is not None and pool.get(row["task"]) != row["category"]:
            raise ValueError(
                f"{path}:{number}: task {row['task']!r} is not a pool task of category {row['category']!r}: "
                f"name one of {sorted(n for n, c in pool.items() if c == row['category'])} or null"
            )
        rows.append(row)
    return rows


def category_hits(
    selected: torch.Tensor, adapters: tuple[str, ...], categories: dict[str, str], labels
) -> torch.Tensor:
    """(P,) 1 where the top-1 adapter (selected[:, 0]) belongs to the prompt's labelled category."""
    return torch.tensor(
        [categories[adapters[i]] == label for i, label in zip(selected[:, 0].tolist(), labels, strict=True)]
    )


def own_rates(
    bank: SignalBank, stats: Stats, config: StudyConfig, labels: list[str], k: int = 3
) -> tuple[float, float]:
    """Own-adapter top-1 and top-k rates, averaged over tasks (each task weighs the same)."""
    chosen = top_k(scores(bank, stats, config), k)  # (P, k)
    own = torch.tensor([bank.adapters.index(t) for t in labels])
    top1 = (chosen[:, 0] == own).float()
    topk = (chosen == own[:, None]).any(dim=1).float()
    frame = pd.DataFrame({"task": labels, "top1": top1.numpy(), "topk": topk.numpy()}).groupby("task").mean()
    return float(frame["top1"].mean()), float(frame["topk"].mean())


def handwritten_table(
    hand: SignalBank, rows: list[dict], dev: SignalBank, dev_labels: list[str], stats: Stats, tasks: list[Task]
) -> pd.DataFrame:
    categories = {t.name: t.category for t in tasks}
    labels = [r["category"] for r in rows]
    with_task = torch.tensor([r["task"] is not None for r in rows])
    table = []
    for config in study_configs():
        chosen = top_k(scores(hand, stats, config), 3)
        hits = category_hits(chosen, hand.adapters, categories, labels)
        low, high = bootstrap_ci(hits)
        in_top3 = [
            any(categories[hand.adapters[i]] == c for i in row) for row, c in zip(chosen.tolist(), labels, strict=True)
        ]
        task_hits = [
            hand.adapters[i] == r["task"] for i, r in zip(chosen[:, 0].tolist(), rows, strict=True) if r["task"]
        ]
        dev_top1, dev_top3 = own_rates(dev, stats, config, dev_labels)
        table.append(
            {
                "config": config.name,
                "signal": config.signal,
                "calibration": config.calibration,
                "reference": config.reference,
                "block": config.block,
                "hand_category_top1": hits.float().mean().item(),
                "hand_ci_low": low,
                "hand_ci_high": high,
                "hand_category_in_top3": sum(in_top3) / len(in_top3),
                "hand_task_top1": sum(task_hits) / len(task_hits),
                "dev_own_top1": dev_top1,
                "dev_own_top3": dev_top3,
                "n_hand": len(rows),
                "n_hand_task": int(with_task.sum()),
            }
        )
    return pd.DataFrame(table)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dev-limit", type=int, default=30, help="dev inputs per pool task (after the 4 own ones)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    tasks = load_tasks()
    pool_tasks = [t for t in tasks if not t.held_out]
    rows = load_handwritten(tasks=tasks)
    engine = study_engine()
    stats = reference_stats(engine, STUDY_BLOCKS)
    hand = SignalBank.cached(engine, "handwritten", [r["prompt"] for r in rows], STUDY_BLOCKS)
    dev_prompts, dev_labels = labelled_prompts(pool_tasks, "dev", args.dev_limit)
    dev = SignalBank.cached(engine, f"dev{args.dev_limit}", dev_prompts, STUDY_BLOCKS)
    table = handwritten_table(hand, rows, dev, dev_labels, stats, tasks)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    table.to_csv(RESULTS_DIR / "handwritten.csv", index=False, float_format="%.4f")
    shown = table.sort_values("dev_own_top1", ascending=False)
    log.info("%s", shown.drop(columns=["signal", "calibration", "reference", "block"]).to_string(index=False))


if __name__ == "__main__":
    main()
