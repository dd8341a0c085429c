"""Bootstrap intervals of the results tables: per task, per category and for the average, and paired differences.

Resampling (Efron & Tibshirani's percentile bootstrap, stratified by task):
1. For every task of a setting, draw `n_boot` resamples of its instance positions with replacement, once: every
   method of that setting reuses the same draws, so differences between methods are paired (same instances).
2. A resample's task score is the mean score of its instances; a category's is the mean of its tasks' scores and
   the average is the mean of the categories', the way the results table averages (every category weighs the same).
3. The 95% interval is the 2.5 and 97.5 percentiles of the resampled statistic.
4. Paired difference `reference - baseline`: the same statistic of both methods from the same draws. Its two-sided
   p-value tests "no difference" by shifting the bootstrap distribution to the null: the share of resampled
   differences at least as far from the observed one as the observed one is from 0 (never reported below 1/n_boot).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

N_BOOT = 2000
SCOPES = ("task", "category", "avg")
INSTANCE_COLUMNS = ("setting", "method", "task", "category", "position", "input", "score")


def percentile_ci(draws: np.ndarray) -> tuple[float, float]:
    """95% percentile interval of bootstrap replicates (n_boot,)."""
    low, high = np.percentile(draws, [2.5, 97.5])
    return float(low), float(high)


def bootstrap_mean_ci(values: Sequence[float], n_boot: int = N_BOOT, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of the mean of per-instance values (scores, 0/1 hits)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        raise ValueError("a bootstrap interval needs at least one value")
    draws = np.random.default_rng(seed).integers(len(values), size=(n_boot, len(values)))  # (n_boot, n)
    return percentile_ci(values[draws].mean(axis=1))


def shifted_p_value(observed: float, draws: np.ndarray) -> float:
    """Two-sided bootstrap p-value of H0 "the statistic is 0": the replicates shifted to mean 0 (step 4)."""
    extreme = np.abs(draws - observed) >= abs(observed)
    return max(float(extreme.mean()), 1.0 / len(draws))


def _replicates(instances: pd.DataFrame, n_boot: int, seed: int) -> dict:
    """setting -> method -> scope -> name -> (observed, replicates (n_boot,)) from one set of draws per task."""
    out: dict = {}
    rng = np.random.default_rng(seed)
    for setting, rows in instances.groupby("setting", sort=True):
        categories = rows.drop_duplicates("task").set_index("task")["category"].to_dict()
        sizes = rows.groupby("task")["position"].nunique().to_dict()
        draws = {task: rng.integers(n, size=(n_boot, n)) for task, n in sorted(sizes.items())}  # step 1
        per_method: dict = {}
        for method, part in rows.groupby("method", sort=False):
            tasks: dict[str, tuple[float, np.ndarray]] = {}
            for task, cell in part.groupby("task", sort=True):
                scores = cell.sort_values("position")["score"].to_numpy(dtype=np.float64)
                if len(scores) != sizes[task]:
                    continue  # a cell of another --limit: it cannot share the draws
                tasks[task] = (float(scores.mean()), scores[draws[task]].mean(axis=1))  # step 2
            by_category: dict[str, list[str]] = {}
            for task in tasks:
                by_category.setdefault(categories[task], []).append(task)
            cats = {
                c: (float(np.mean([tasks[t][0] for t in ts])), np.mean([tasks[t][1] for t in ts], axis=0))
                for c, ts in sorted(by_category.items())
            }
            complete = set(tasks) == set(sizes)  # the average only over every task of the setting
            avg = {
                "avg": (float(np.mean([v[0] for v in cats.values()])), np.mean([v[1] for v in cats.values()], axis=0))
            }
            per_method[method] = {"task": tasks, "category": cats, "avg": avg if complete and cats else {}}
        out[setting] = per_method
    return out


def check_instances(instances: pd.DataFrame) -> None:
    missing = sorted(set(INSTANCE_COLUMNS) - set(instances.columns))
    if missing:
        raise ValueError(f"instance rows need columns {missing}")


def intervals(instances: pd.DataFrame, n_boot: int = N_BOOT, seed: int = 0) -> pd.DataFrame:
    """Per (setting, method): every task, category and the average with its 95% interval."""
    check_instances(instances)
    rows = []
    counts = instances.groupby(["setting", "method", "task"]).size().to_dict()
    for setting, methods in _replicates(instances, n_boot, seed).items():
        for method, scopes in methods.items():
            for scope in SCOPES:
                for name, (mean, draws) in scopes[scope].items():
                    low, high = percentile_ci(draws)  # step 3
                    n = counts[setting, method, name] if scope == "task" else None
                    rows.append(
                        {
                            "setting": setting,
                            "method": method,
                            "scope": scope,
                            "name": name,
                            "score": mean,
                            "ci_low": low,
                            "ci_high": high,
                            "n": n,
                        }
                    )
    return pd.DataFrame(rows)


def paired_differences(
    instances: pd.DataFrame, reference: str = "recommended", n_boot: int = N_BOOT, seed: int = 0
) -> pd.DataFrame:
    """`reference` minus every other method on the same instances, per task, category and average, with p-values."""
    check_instances(instances)
    _check_same_instances(instances)
    rows = []
    for setting, methods in _replicates(instances, n_boot, seed).items():
        if reference not in methods:
            continue
        mine = methods[reference]
        for baseline, theirs in methods.items():
            if baseline == reference:
                continue
            for scope in SCOPES:
                for name in sorted(set(mine[scope]) & set(theirs[scope])):
                    diff = mine[scope][name][0] - theirs[scope][name][0]
                    draws = mine[scope][name][1] - theirs[scope][name][1]  # paired: the same draws
                    low, high = percentile_ci(draws)
                    rows.append(
                        {
                            "setting": setting,
                            "reference": reference,
                            "baseline": baseline,
                            "scope": scope,
                            "name": name,
                            "difference": diff,
                            "ci_low": low,
                            "ci_high": high,
                            "p_value": shifted_p_value(diff, draws),
                            "n_boot": n_boot,
                        }
                    )
    return pd.DataFrame(rows)


def _check_same_instances(instances: pd.DataFrame) -> None:
    """Paired differences need every method of a (setting, task) to have answered the same inputs in one order."""
    for (setting, task), part in instances.groupby(["setting", "task"]):
        inputs = {m: tuple(c.sort_values("position")["input"]) for m, c in part.groupby("method")}
        lengths = {len(v) for v in inputs.values()}
        if len(lengths) == 1 and len(set(inputs.values())) > 1:
            raise ValueError(
                f"{setting}/{task}: the methods answered different inputs in the same positions: the runs mix "
                f"different task splits; rerun them into one --runs folder"
            )


def _cell(mean: float, low: float, high: float, bold: bool = False) -> str:
    text = f"{mean:.1f} [{low:.1f}, {high:.1f}]"
    return f"**{text}**" if bold else text


def intervals_markdown(table: pd.DataFrame, paired: pd.DataFrame, reference: str = "recommended") -> str:
    """Per setting: methods x (categories, avg) as `mean [95% CI]`, then reference - baseline with p-values."""
    if table.empty:
        return "_No results yet._\n"
    sections = []
    for setting, rows in table.groupby("setting", sort=True):
        columns = [*sorted(rows.loc[rows.scope == "category", "name"].unique()), "avg"]
        cells = rows[rows.scope.isin(["category", "avg"])].set_index(["method", "name"])
        best = cells.groupby("name")["score"].max()
        lines = [f"### {setting} (mean [bootstrap 95% CI])", "", "| method | " + " | ".join(columns) + " |"]
        lines.append("|---|" + "---:|" * len(columns))
        for method in dict.fromkeys(rows["method"]):
            values = []
            for column in columns:
                if (method, column) not in cells.index:
                    values.append("–")
                    continue
                c = cells.loc[(method, column)]
                values.append(_cell(c.score, c.ci_low, c.ci_high, np.isclose(c.score, best[column])))
            lines.append(f"| {method} | " + " | ".join(values) + " |")
        part = paired[(paired.setting == setting) & paired.scope.isin(["category", "avg"])] if len(paired) else paired
        if len(part):
            lines += ["", f"{reference} minus each baseline on the same instances (paired bootstrap; p two-sided):", ""]
            lines.append("| baseline | " + " | ".join(columns) + " | p (avg) |")
            lines.append("|---|" + "---:|" * (len(columns) + 1))
            diffs = part.set_index(["baseline", "name"])
            for baseline in dict.fromkeys(part["baseline"]):
                values = []
                for column in columns:
                    if (baseline, column) in diffs.index:
                        d = diffs.loc[(baseline, column)]
                        values.append(f"{d.difference:+.1f} [{d.ci_low:+.1f}, {d.ci_high:+.1f}]")
                    else:
                        values.append("–")
                p = diffs.loc[(baseline, "avg")] if (baseline, "avg") in diffs.index else None
                values.append("–" if p is None else _p_text(p.p_value, int(p.n_boot)))
                lines.append(f"| {baseline} | " + " | ".join(values) + " |")
        sections.append("\n".join(lines))
    return "\n\n".join(sections) + "\n"


def _p_text(p: float, n_boot: int) -> str:
    return f"< {1 / n_boot:.4f}" if p <= 1 / n_boot else f"{p:.4f}"
