"""Reads the zoo's task folders (task.json + JSONL splits) and builds the prompt a model sees for an example."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

# the zoo is this repository's content: it alone knows where the checkout keeps it
REPO_ROOT = Path(__file__).resolve().parent.parent
ASSETS_DIR = REPO_ROOT / "assets"
TASKS_DIR = ASSETS_DIR / "tasks"
ADAPTERS_DIR = ASSETS_DIR / "adapters"
# 4 dev inputs per pool task, the zoo's own samples: inside the pool directory, so that the engine calibrates on them
# whenever it is given the zoo (logo route --adapters assets/adapters ...)
REFERENCE_PROMPTS = ADAPTERS_DIR / "reference_prompts.txt"


@dataclass(frozen=True)
class Task:
    name: str
    category: str
    description: str
    instruction: str
    metric: str
    held_out: bool
    directory: Path

    @property
    def max_new_tokens(self) -> int:
        """Generation budget: short answers for exact match, a sentence for ROUGE-L / BLEU."""
        return 24 if self.metric == "exact_match" else 64

    def prompt(self, text: str) -> str:
        """The zero-shot prompt: the task's instruction, a blank line, then the input."""
        return f"{self.instruction}\n\n{text}"

    def examples(self, split: str, limit: int | None = None) -> list[dict]:
        """[{'input': ..., 'target': str | list[str]}, ...] of one split ('train', 'dev' or 'test')."""
        path = self.directory / f"{split}.jsonl"
        if not path.is_file():
            hint = (
                " (train splits are not committed: run `make zoo` or `python -m zoo.build_tasks`)"
                if split == "train"
                else ""
            )
            raise FileNotFoundError(f"{path} is missing{hint}")
        rows = []
        with open(path) as f:
            for line in f:
                if line.strip():
                    rows.append(json.loads(line))
                    if limit is not None and len(rows) >= limit:
                        break
        return rows


def load_task(name: str, tasks_dir: Path = TASKS_DIR) -> Task:
    directory = tasks_dir / name
    path = directory / "task.json"
    if not path.is_file():
        raise FileNotFoundError(f"no task {name!r}: {path} is missing")
    meta = json.loads(path.read_text())
    return Task(
        name=meta["name"],
        category=meta["category"],
        description=meta["description"],
        instruction=meta["instruction"],
        metric=meta["metric"],
        held_out=bool(meta["held_out"]),
        directory=directory,
    )


def load_tasks(tasks_dir: Path = TASKS_DIR, held_out: bool | None = None) -> list[Task]:
    """Every task under tasks_dir (sorted by name); held_out filters pool (False) or held-out (True) tasks."""
    tasks = [load_task(p.parent.name, tasks_dir) for p in sorted(tasks_dir.glob("*/task.json"))]
    return [t for t in tasks if held_out is None or t.held_out == held_out]


def canonical_target(target: str | list[str]) -> str:
    """The training target: the first of several acceptable answers."""
    return target[0] if isinstance(target, list) else target
