"""LoRA-Gen evaluation statistics: per-task and averaged scores (mean and harmonic) with bootstrap 95% CIs."""

from __future__ import annotations

import numpy as np
import pandas as pd

RESAMPLES = 1000
SEED = 0


def harmonic_mean(values: np.ndarray) -> float:
    """The paper's harmonic mean over tasks; one task at 0 makes it 0."""
    values = np.asarray(values, dtype=float)
    if (values <= 0).any():
        return 0.0
    return float(len(values) / np.sum(1.0 / values))


def bootstrap_task(scores: np.ndarray, resamples: int = RESAMPLES, seed: int = SEED) -> tuple[float, float, float]:
    """(mean, low, high): the 95% percentile interval of the mean over instances resampled with replacement."""
    scores = np.asarray(scores, dtype=float)
    rng = np.random.default_rng(seed)
    means = scores[rng.integers(0, len(scores), size=(resamples, len(scores)))].mean(axis=1)  # (resamples,)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(scores.mean()), float(low), float(high)


def bootstrap_average(
    per_task: list[np.ndarray], resamples: int = RESAMPLES, seed: int = SEED
) -> dict[str, tuple[float, float, float]]:
    """Mean and harmonic mean over tasks, each (value, low, high); instances are resampled within each task."""
    rng = np.random.default_rng(seed)
    draws = np.stack(
        [s[rng.integers(0, len(s), size=(resamples, len(s)))].mean(axis=1) for s in map(np.asarray, per_task)],
        axis=1,
    )  # (resamples, tasks)
    means = [float(np.mean(s)) for s in per_task]
    out = {}
    for name, reduce in (("mean", np.mean), ("harmonic", harmonic_mean)):
        values = np.array([reduce(row) for row in draws])
        low, high = np.percentile(values, [2.5, 97.5])
        out[name] = (float(reduce(np.array(means))), float(low), float(high))
    return out


def score_table(instances: pd.DataFrame) -> pd.DataFrame:
    """Rows (setting, condition, task) with mean, ci_low, ci_high, n; plus per (setting, condition) the rows
    task='MEAN' and task='HARMONIC' over its tasks. `instances` has setting, condition, task, score."""
    rows = []
    for (setting, condition), group in instances.groupby(["setting", "condition"], sort=False):
        per_task = []
        for task, cell in group.groupby("task", sort=True):
            scores = cell["score"].to_numpy(dtype=float)
            per_task.append(scores)
            mean, low, high = bootstrap_task(scores)
            rows.append(
                dict(
                    setting=setting, condition=condition, task=task, mean=mean, ci_low=low, ci_high=high, n=len(scores)
                )
            )
        for name, (value, low, high) in bootstrap_average(per_task).items():
            rows.append(
                dict(
                    setting=setting,
                    condition=condition,
                    task=name.upper(),
                    mean=value,
                    ci_low=low,
                    ci_high=high,
                    n=int(sum(map(len, per_task))),
                )
            )
    return pd.DataFrame(rows)


def summary_markdown(table: pd.DataFrame, labels: dict[str, str]) -> str:
    """One markdown table per setting: condition x (mean [CI], harmonic [CI])."""
    parts = []
    for setting, group in table.groupby("setting", sort=False):
        parts += [f"### {setting}", "", "| condition | mean [95% CI] | harmonic mean [95% CI] |", "|---|---|---|"]
        for condition, cell in group.groupby("condition", sort=False):
            mean = cell[cell.task == "MEAN"].iloc[0]
            harm = cell[cell.task == "HARMONIC"].iloc[0]
            parts.append(
                f"| {labels.get(condition, condition)} | {mean['mean']:.1f} [{mean.ci_low:.1f}, {mean.ci_high:.1f}] "
                f"| {harm['mean']:.1f} [{harm.ci_low:.1f}, {harm.ci_high:.1f}] |"
            )
        parts.append("")
    return "\n".join(parts)


def per_task_markdown(table: pd.DataFrame, setting: str, conditions: list[str]) -> str:
    """Task x condition means for one setting."""
    cells = table[(table.setting == setting) & ~table.task.isin(["MEAN", "HARMONIC"])]
    if cells.empty:
        return f"(no {setting} tasks in this run)"
    wide = cells.pivot(index="task", columns="condition", values="mean")[conditions]
    lines = ["| task | " + " | ".join(conditions) + " |", "|---" * (len(conditions) + 1) + "|"]
    for task, row in wide.iterrows():
        lines.append(f"| {task} | " + " | ".join(f"{v:.1f}" for v in row) + " |")
    return "\n".join(lines)
