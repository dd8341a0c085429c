"""Build assets/tasks/<task>/ (task.json, train/dev/test.jsonl) from the seeded generators in zoo.tasks."""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

from zoo.tasks import TASKS, TaskSpec, task_rng
from zoo.tasks.common import Target

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "assets" / "tasks"
# Stop drawing after this many duplicates in a row: the task's input space is used up (code_summarization
# has fewer stdlib functions than the pool sizes ask for). Drawing is cheap, so a high bar costs little.
MAX_CONSECUTIVE_DUPLICATES = 20_000


@dataclass(frozen=True)
class SplitSizes:
    train: int
    dev: int
    test: int


POOL_SIZES = SplitSizes(train=3000, dev=200, test=300)
# Held-out tasks train no adapter; their train split (a pool of demonstrations) is as large as a pool task's minimum.
HELD_OUT_SIZES = SplitSizes(train=2000, dev=200, test=300)


def default_sizes(spec: TaskSpec) -> SplitSizes:
    return HELD_OUT_SIZES if spec.held_out else POOL_SIZES


def _normalise_target(target: Target) -> Target:
    """A single answer is stored as a string, several acceptable answers as a list (canonical first)."""
    answers = [target] if isinstance(target, str) else list(dict.fromkeys(target))
    if not answers or not all(isinstance(a, str) and a.strip() for a in answers):
        raise ValueError(f"empty or non-string target: {target!r}")
    return answers[0] if len(answers) == 1 else answers


def draw_unique_examples(spec: TaskSpec, seed: int, n: int) -> list[tuple[str, Target]]:
    """Up to n examples with distinct inputs, in draw order (fewer only if the input space runs out)."""
    rng = task_rng(seed, spec.name)
    seen: set[str] = set()
    examples: list[tuple[str, Target]] = []
    misses = 0
    while len(examples) < n and misses < MAX_CONSECUTIVE_DUPLICATES:
        text, target = spec.generate(rng)
        if text in seen:
            misses += 1
            continue
        misses = 0
        seen.add(text)
        examples.append((text, _normalise_target(target)))
    return examples


def _write_jsonl(path: Path, rows: list[tuple[str, Target]]) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as f:
        for text, target in rows:
            f.write(json.dumps({"input": text, "target": target}, ensure_ascii=False) + "\n")


def build_task(
    spec: TaskSpec,
    out_dir: Path,
    seed: int = 0,
    n_train: int | None = None,
    n_dev: int | None = None,
    n_test: int | None = None,
) -> dict:
    """Write out_dir/<task>/ and return its task.json content.

    Test is taken first, then dev, then train from one stream of unique draws, so dev/test do not depend on
    the train size and a short input space only shortens train.
    """
    sizes = default_sizes(spec)
    n_train = sizes.train if n_train is None else n_train
    n_dev = sizes.dev if n_dev is None else n_dev
    n_test = sizes.test if n_test is None else n_test
    examples = draw_unique_examples(spec, seed, n_test + n_dev + n_train)
    if len(examples) < n_test + n_dev:
        raise ValueError(f"{spec.name}: only {len(examples)} unique inputs, dev+test need {n_test + n_dev}")
    test, dev, train = examples[:n_test], examples[n_test : n_test + n_dev], examples[n_test + n_dev :]

    task_dir = Path(out_dir) / spec.name
    task_dir.mkdir(parents=True, exist_ok=True)
    meta = {
        "name": spec.name,
        "category": spec.category,
        "description": spec.description,
        "instruction": spec.instruction,
        "metric": spec.metric,
        "held_out": spec.held_out,
        "source": spec.source,
        "n_train": len(train),
        "n_dev": len(dev),
        "n_test": len(test),
    }
    (task_dir / "task.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    _write_jsonl(task_dir / "train.jsonl", train)
    _write_jsonl(task_dir / "dev.jsonl", dev)
    _write_jsonl(task_dir / "test.jsonl", test)
    return meta


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: assets/tasks)")
    parser.add_argument("--tasks", nargs="+", choices=sorted(TASKS), metavar="TASK", help="build only these tasks")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-train", type=int, help="override the train size of every built task")
    parser.add_argument("--n-dev", type=int, help="override the dev size")
    parser.add_argument("--n-test", type=int, help="override the test size")
    args = parser.parse_args(argv)
    for name in args.tasks or list(TASKS):
        spec = TASKS[name]
        start = time.perf_counter()
        meta = build_task(spec, args.out, args.seed, args.n_train, args.n_dev, args.n_test)
        print(
            f"{name:<26} {spec.category:<14} {'held-out' if spec.held_out else 'pool':<8} "
            f"train={meta['n_train']:>5} dev={meta['n_dev']} test={meta['n_test']} "
            f"({time.perf_counter() - start:.1f}s)"
        )


if __name__ == "__main__":
    main()
