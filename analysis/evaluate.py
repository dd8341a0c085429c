"""The evaluation harness: every method on every task of the zoo, resumable, written as the paper's tables.

    python -m analysis.evaluate [--methods ...] [--tasks ...] [--setting in_pool|held_out|both] [--k K]
                                [--limit N] [--out DIR] [--runs DIR] [--budget-minutes M] [--summarize]

Each (setting, method, task) cell writes per-instance JSONL under --runs (not committed: it holds every
signal); finished cells are skipped, so an interrupted run resumes, and --budget-minutes stops starting cells
after M minutes (run the same command again to go on). The summary files go to --out: results.csv (with
bootstrap 95% CIs per task), results_intervals.csv (task, category and average intervals), results_paired.csv
(`recommended` minus every baseline on the same instances, with paired bootstrap p-values), routing.csv and
results.md; --summarize writes them from --runs alone, without a model.

Several GPUs of one host: `accelerate launch --multi_gpu --num_processes 2 -m analysis.evaluate ...` shards the
cells over the processes (one GPU each); the files written are the same as a single process writes. Without
GPUs, start CPU processes with `python -m torch.distributed.run --nproc_per_node 2 -m analysis.evaluate ...`
(`accelerate launch --cpu` starts processes that do not know of each other: each would run every cell).
`python -m bench.scaleout -- ARGS` times a job on one process and on several.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from accelerate import PartialState
from tqdm.auto import tqdm

from analysis.intervals import N_BOOT, intervals, intervals_markdown, paired_differences
from analysis.methods import IN_POOL_ONLY, METHODS, ROUTED, EvalContext
from analysis.tables import results_table_markdown
from logo.config import DTYPES, EngineConfig
from logo.engine import LoGoEngine
from zoo.data import ADAPTERS_DIR, ASSETS_DIR, REPO_ROOT, TASKS_DIR, Task, load_tasks
from zoo.metrics import score

log = logging.getLogger(__name__)
SETTINGS = ("in_pool", "held_out")
DEFAULT_OUT = ASSETS_DIR / "results"
DEFAULT_RUNS = REPO_ROOT / "out" / "eval"


@dataclass(frozen=True)
class Cell:
    setting: str
    method: str
    task: Task

    @property
    def exclude(self) -> list[str]:
        """Held-out setting: a pool task is evaluated with its own adapter removed (leave-one-out)."""
        return [self.task.name] if self.setting == "held_out" and not self.task.held_out else []

    def path(self, runs: Path) -> Path:
        return runs / "instances" / self.setting / self.method / f"{self.task.name}.jsonl"


def plan(tasks: list[Task], methods: list[str], settings: list[str]) -> list[Cell]:
    """in_pool: the pool tasks, all adapters available. held_out: held-out tasks plus leave-one-out pool tasks."""
    cells = []
    for setting in settings:
        for method in methods:
            if setting == "held_out" and method in IN_POOL_ONLY:
                continue
            for task in tasks:
                if setting == "in_pool" and task.held_out:
                    continue
                cells.append(Cell(setting, method, task))
    return cells


def _rounded(signals: dict[str, float] | None) -> dict[str, float] | None:
    """Signals at 5 significant digits: the runs of a full evaluation stay small enough to carry."""
    return None if signals is None else {a: float(f"{v:.5g}") for a, v in signals.items()}


def run_cell(ctx: EvalContext, cell: Cell, limit: int | None, runs: Path) -> None:
    rows = cell.task.examples("test", limit)
    prompts = [cell.task.prompt(r["input"]) for r in rows]
    out = METHODS[cell.method](ctx, cell.task, prompts, cell.exclude)
    path = cell.path(runs)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        for i, (row, text) in enumerate(zip(rows, out.texts, strict=True)):
            record = {
                "input": row["input"],
                "target": row["target"],
                "output": text,
                "score": score(cell.task.metric, text, row["target"]),
                "selected": out.selected[i],
                "weights": out.weights[i],
                "signals": _rounded(out.signals[i]) if out.signals else None,
                "timings": out.timings[i] if out.timings else None,
            }
            if i == 0 and out.info:
                record["cell_info"] = out.info
            f.write(json.dumps(record) + "\n")
    tmp.replace(path)  # a cell exists only once it is complete: resumption never reads half a cell


def read_cells(runs: Path, tasks: dict[str, Task]):
    """(setting, method, task, records) of every finished cell under `runs` whose task is known."""
    for path in sorted((runs / "instances").glob("*/*/*.jsonl")):
        setting, method, name = path.parent.parent.name, path.parent.name, path.stem
        if name in tasks:
            yield setting, method, tasks[name], [json.loads(line) for line in path.read_text().splitlines() if line]


def is_routed(method: str) -> bool:
    """LoGo methods, whose first selected adapter is their routing's top-1."""
    return method in ROUTED or method.startswith("logo_")


def collect(runs: Path, tasks: dict[str, Task], k: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """results (setting, method, task, category, metric, score, n) and routing rates from every finished cell."""
    results, routing = [], []
    for setting, method, task, records in read_cells(runs, tasks):
        name = task.name
        results.append(
            {
                "setting": setting,
                "method": method,
                "task": name,
                "category": task.category,
                "metric": task.metric,
                "score": sum(r["score"] for r in records) / len(records),
                "n": len(records),
            }
        )
        if setting == "in_pool" and is_routed(method):
            routing.append(
                {
                    "signal": method.removeprefix("logo_"),
                    "task": name,
                    "top1_own_rate": sum(bool(r["selected"]) and r["selected"][0] == name for r in records)
                    / len(records),
                    "topk_own_rate": sum(name in r["selected"][:k] for r in records) / len(records),
                    "n": len(records),
                }
            )
    return pd.DataFrame(results), pd.DataFrame(routing)


def instance_scores(runs: Path, tasks: dict[str, Task]) -> pd.DataFrame:
    """One row per scored instance (setting, method, task, category, position, input, score): the bootstrap's input."""
    rows = [
        {
            "setting": setting,
            "method": method,
            "task": task.name,
            "category": task.category,
            "position": i,
            "input": r["input"],
            "score": r["score"],
        }
        for setting, method, task, records in read_cells(runs, tasks)
        for i, r in enumerate(records)
    ]
    return pd.DataFrame(rows, columns=["setting", "method", "task", "category", "position", "input", "score"])


def write_summary(
    results: pd.DataFrame,
    routing: pd.DataFrame,
    out: Path,
    instances: pd.DataFrame | None = None,
    n_boot: int = N_BOOT,
) -> None:
    """The summary files; with `instances`, the bootstrap intervals and the paired differences too."""
    out.mkdir(parents=True, exist_ok=True)
    table, paired = pd.DataFrame(), pd.DataFrame()
    if instances is not None and not instances.empty:
        table = intervals(instances, n_boot)
        paired = paired_differences(instances, "recommended", n_boot)
        cis = table[table.scope == "task"].rename(columns={"name": "task"})[
            ["setting", "method", "task", "ci_low", "ci_high"]
        ]
        results = results.merge(cis, on=["setting", "method", "task"], how="left")
        table.to_csv(out / "results_intervals.csv", index=False, float_format="%.3f")
        paired.to_csv(out / "results_paired.csv", index=False, float_format="%.4f")
    results.to_csv(out / "results.csv", index=False, float_format="%.2f")
    routing.to_csv(out / "routing.csv", index=False, float_format="%.3f")
    text = results_table_markdown(results) if not results.empty else "(no finished cells)\n"
    if not table.empty:
        text += "\n\n## With bootstrap 95% confidence intervals (instances resampled within tasks)\n\n"
        text += intervals_markdown(table, paired)
    if not routing.empty:
        rates = routing.groupby("signal")[["top1_own_rate", "topk_own_rate"]].mean()
        text += "\n\n### Own adapter ranked first / in the top-k (in-pool test inputs)\n\n"
        text += "| signal | top-1 | top-k |\n|---|---|---|\n"
        text += "".join(f"| {s} | {r.top1_own_rate:.3f} | {r.topk_own_rate:.3f} |\n" for s, r in rates.iterrows())
    (out / "results.md").write_text(text)


def available_methods(methods: list[str]) -> list[str]:
    """`methods` without those whose dependencies are missing here (each named in the log)."""
    if "lorahub" in methods and importlib.util.find_spec("nevergrad") is None:
        log.warning("skipping lorahub: it needs nevergrad (pip install nevergrad, or the eval extra)")
        methods = [m for m in methods if m != "lorahub"]
    return methods


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Evaluate LoGo and the baselines on the zoo.")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--tasks", nargs="+", help="task names (default: all)")
    parser.add_argument("--setting", choices=(*SETTINGS, "both"), default="both")
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--limit", type=int, help="test instances per task (default: all)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--dtype", default="auto", choices=DTYPES, help="the weight format (auto: logo.base_model.resolve_dtype)"
    )
    parser.add_argument("--adapters", default=str(ADAPTERS_DIR))
    parser.add_argument("--tasks-dir", type=Path, default=TASKS_DIR)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="summary tables (committed)")
    parser.add_argument("--runs", type=Path, default=DEFAULT_RUNS, help="per-instance JSONL (not committed)")
    parser.add_argument("--embeddings", type=Path, help="MiniLM embeddings cache to use instead of the model")
    parser.add_argument(
        "--budget-minutes",
        type=float,
        help="start no new cell after this many minutes (each process), then write the summary; run the same "
        "command again to go on",
    )
    parser.add_argument("--summarize", action="store_true", help="only write the summary files from --runs")
    parser.add_argument(
        "--pack",
        type=Path,
        metavar="DIR",
        help="at the end, write the finished cells as DIR/runs_<setting>.tar.gz without their signals (small "
        "enough to bring back from a GPU machine; unpack with tar xzf FILE -C RUNS)",
    )
    parser.add_argument("--n-boot", type=int, default=N_BOOT, help="bootstrap resamples of the intervals")
    parser.add_argument(
        "--write-embeddings",
        type=Path,
        metavar="FILE",
        help="only embed every text the retriever and AdapterSoup need (test prompts within --limit, 200 dev "
        "prompts per task) into FILE, for a machine without MiniLM, and exit",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    all_tasks = {t.name: t for t in load_tasks(args.tasks_dir)}
    unknown = sorted(set(args.tasks or []) - set(all_tasks))
    if unknown:
        raise SystemExit(f"error: unknown tasks {unknown}; known: {', '.join(all_tasks)}")
    tasks = [all_tasks[n] for n in args.tasks] if args.tasks else list(all_tasks.values())
    if args.write_embeddings:
        from analysis.similarity import CachedEmbedder, TaskEmbedder

        texts = [t.prompt(r["input"]) for t in all_tasks.values() for r in t.examples("dev", 200)]
        texts += [t.prompt(r["input"]) for t in tasks for r in t.examples("test", args.limit)]
        CachedEmbedder.build(TaskEmbedder(), texts, args.write_embeddings)
        return
    if args.summarize:
        summarize(args.runs, all_tasks, args.k, args.out, args.n_boot)
        return
    started = time.monotonic()
    settings = list(SETTINGS) if args.setting == "both" else [args.setting]
    args.methods = available_methods(args.methods)
    # Data-parallel under `accelerate launch`: process i of n runs every n-th unfinished cell on its own device;
    # a cell is one file, so the shards write exactly the files a single process would. Alone: all cells.
    state = PartialState(cpu=not torch.cuda.is_available())
    pending = [c for c in plan(tasks, args.methods, settings) if not c.path(args.runs).is_file()]
    cells = pending[state.process_index :: state.num_processes]
    log.info(
        "%d cells to run (finished cells are skipped); process %d of %d takes %d",
        len(pending),
        state.process_index + 1,
        state.num_processes,
        len(cells),
    )
    if cells:
        device = str(state.device) if state.num_processes > 1 else None
        engine = LoGoEngine(EngineConfig(adapters=(args.adapters,), device=device, dtype=args.dtype))
        ctx = EvalContext(
            engine, k=args.k, batch_size=args.batch_size, tasks_dir=args.tasks_dir, embeddings=args.embeddings
        )
        for done, cell in enumerate(
            tqdm(cells, desc=f"cells [{state.process_index}]", disable=not state.is_local_main_process)
        ):
            if args.budget_minutes is not None and time.monotonic() - started > 60 * args.budget_minutes:
                log.info(
                    "budget of %g minutes spent: %d cells left, run again to go on",
                    args.budget_minutes,
                    len(cells) - done,
                )
                break
            run_cell(ctx, cell, args.limit, args.runs)
    state.wait_for_everyone()
    if state.is_main_process:
        summarize(args.runs, all_tasks, args.k, args.out, args.n_boot)
        left = sum(not c.path(args.runs).is_file() for c in plan(tasks, args.methods, settings))
        log.info("%d cells of this command left unrun%s", left, ": run it again" if left else "")
        if args.pack:
            for path in pack(args.runs, args.pack):
                log.info("packed %s (%.1f MB)", path, path.stat().st_size / 1e6)
    state.destroy_process_group()  # a no-op alone; under a launcher it closes the process group cleanly


def pack(runs: Path, folder: Path) -> list[Path]:
    """Every finished cell's JSONL, signals dropped, in one tar.gz per setting (members: instances/<setting>/...)."""
    import io
    import tarfile

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for setting_dir in sorted((runs / "instances").glob("*")):
        target = folder / f"runs_{setting_dir.name}.tar.gz"
        with tarfile.open(target, "w:gz") as archive:
            for path in sorted(setting_dir.glob("*/*.jsonl")):
                records = [json.loads(line) for line in path.read_text().splitlines() if line]
                data = "".join(json.dumps({**r, "signals": None}) + "\n" for r in records).encode()
                info = tarfile.TarInfo(str(path.relative_to(runs)))
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
        written.append(target)
    return written


def summarize(runs: Path, tasks: dict[str, Task], k: int, out: Path, n_boot: int = N_BOOT) -> None:
    results, routing = collect(runs, tasks, k)
    write_summary(results, routing, out, instance_scores(runs, tasks), n_boot)
    print((out / "results.md").read_text())


if __name__ == "__main__":
    main()
