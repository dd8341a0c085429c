"""Paper-style results tables as markdown, from plain result rows (no plotting dependencies)."""

from __future__ import annotations

import numpy as np
import pandas as pd

METRIC_LABELS = {"exact_match": "EM", "rouge_l": "ROUGE-L", "bleu": "BLEU"}


def results_table_markdown(results: pd.DataFrame) -> str:
    """One markdown table per setting: rows = methods, columns = categories, best per column in bold.

    `results` has rows `setting, method, task, category, metric, score, n`. A cell is the mean score over the
    tasks of that category (several rows of one task are averaged first); "avg" is the mean over the
    category columns, so every category weighs the same. Column headers name the metric(s) in use.
    """
    missing = sorted({"setting", "method", "task", "category", "metric", "score", "n"} - set(results.columns))
    if missing:
        raise ValueError(f"results_table_markdown needs columns {missing}")
    if results.empty:
        return "_No results yet._\n"
    sections = []
    for setting, rows in results.groupby("setting", sort=False):
        per_task = rows.groupby(["method", "category", "task"], sort=False)["score"].mean().reset_index()
        table = per_task.pivot_table(index="method", columns="category", values="score", aggfunc="mean", sort=False)
        table = table.reindex(index=list(dict.fromkeys(rows["method"])), columns=list(dict.fromkeys(rows["category"])))
        table["avg"] = table.mean(axis=1, skipna=False)
        headers = []
        for category in table.columns[:-1]:
            metrics = dict.fromkeys(rows.loc[rows["category"] == category, "metric"])
            headers.append(f"{category} ({'/'.join(METRIC_LABELS.get(m, m) for m in metrics)})")
        headers.append("avg")
        best = table.max(axis=0)
        lines = [f"### {setting}", "", "| method | " + " | ".join(headers) + " |"]
        lines.append("|---|" + "---:|" * len(headers))
        for method, values in table.iterrows():
            cells = []
            for column, value in values.items():
                if pd.isna(value):
                    cells.append("–")
                elif np.isclose(value, best[column]):
                    cells.append(f"**{value:.1f}**")
                else:
                    cells.append(f"{value:.1f}")
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        sections.append("\n".join(lines))
    return "\n\n".join(sections) + "\n"
