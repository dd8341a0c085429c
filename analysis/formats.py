"""One method's answers in two weight formats on the same test inputs: identical answers and paired score differences.

    python -m analysis.formats RUNS_A RUNS_B [--names float32 bfloat16] [--method recommended] [--out FILE.csv]
        [--tasks-dir DIR]

RUNS_A and RUNS_B are two --runs folders of analysis.evaluate, the same cells run with different --dtype (as
packed on a GPU machine and unpacked here). Per setting it prints how many answers are the same text, and A minus
B per category and on the average with a paired bootstrap 95% interval and p-value (analysis.intervals: the same
draws of instances for both formats). It is what decides whether a faster format keeps the scores.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from analysis.evaluate import instance_scores, read_cells
from analysis.intervals import paired_differences
from zoo.data import TASKS_DIR, load_tasks


def identical_answers(runs_a: Path, runs_b: Path, tasks: dict, method: str) -> dict[str, tuple[int, int]]:
    """setting -> (answers with the same text, answers compared) over the cells both folders finished."""
    first = {(s, t.name): records for s, m, t, records in read_cells(runs_a, tasks) if m == method}
    counts: dict[str, tuple[int, int]] = {}
    for setting, m, task, records in read_cells(runs_b, tasks):
        mine = first.get((setting, task.name))
        if m != method or mine is None:
            continue
        if [r["input"] for r in mine] != [r["input"] for r in records]:
            raise ValueError(f"{setting}/{task.name}: the two runs answered different inputs; run the same --limit")
        same = sum(a["output"] == b["output"] for a, b in zip(mine, records, strict=True))
        equal, total = counts.get(setting, (0, 0))
        counts[setting] = (equal + same, total + len(records))
    return counts


def compare(runs_a: Path, runs_b: Path, tasks: dict, names: tuple[str, str], method: str, n_boot: int) -> pd.DataFrame:
    """Paired differences names[0] minus names[1] of `method`, per task, category and average."""
    frames = []
    for runs, name in zip((runs_a, runs_b), names, strict=True):
        scores = instance_scores(runs, tasks)
        frames.append(scores[scores["method"] == method].assign(method=name))
    both = pd.concat(frames, ignore_index=True)
    if both.empty:
        raise ValueError(f"no finished {method!r} cells in {runs_a} and {runs_b}")
    return paired_differences(both, reference=names[0], n_boot=n_boot)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs_a", type=Path)
    parser.add_argument("runs_b", type=Path)
    parser.add_argument("--names", nargs=2, default=("float32", "bfloat16"), metavar=("A", "B"))
    parser.add_argument("--method", default="recommended")
    parser.add_argument("--n-boot", type=int, default=2000)
    parser.add_argument("--out", type=Path, help="write every paired difference (tasks too) to this CSV")
    parser.add_argument("--tasks-dir", type=Path, default=TASKS_DIR)
    args = parser.parse_args(argv)
    for runs in (args.runs_a, args.runs_b):
        if not (runs / "instances").is_dir():
            parser.error(f"{runs} has no instances/ folder: give two --runs folders of analysis.evaluate")
    names = tuple(args.names)
    tasks = {t.name: t for t in load_tasks(args.tasks_dir, held_out=None)}
    same = identical_answers(args.runs_a, args.runs_b, tasks, args.method)
    table = compare(args.runs_a, args.runs_b, tasks, names, args.method, args.n_boot)
    print(f"# {args.method}: {names[0]} ({args.runs_a}) minus {names[1]} ({args.runs_b}), paired bootstrap 95% CI")
    print("setting | scope | name | difference [95% CI] | p")
    for row in table[table["scope"] != "task"].itertuples():
        print(
            f"{row.setting} | {row.scope} | {row.name} | {row.difference:+.2f} [{row.ci_low:+.2f}, {row.ci_high:+.2f}]"
            f" | {row.p_value:.3f}"
        )
    for setting, (equal, total) in sorted(same.items()):
        print(f"# {setting}: identical answers {equal}/{total} ({equal / total:.1%})")
    if args.out:
        table.to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
