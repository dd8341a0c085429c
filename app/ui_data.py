"""What LoGo Studio shows beside each answer, read from disk once: examples, categories, dataset-level results.

Every source is optional: a missing file or folder gives an empty value and the UI says what is missing.
Layout read (all under the assets folder):
  adapters/<name>/card.json            {"category": ...}            (or card.json next to any adapter)
  tasks/<task>/task.json               {"name", "category", "instruction", "held_out", ...}
  tasks/<task>/test.jsonl, dev.jsonl   {"input": ..., ...} per line
  results/signals_{norm|entropy}.csv   rows = tasks, columns = adapters (measured at the last block)
  results/signals_{norm|entropy}_block{B}.csv   the same at block B (negative: from the end, e.g. -2)
  results/weight_similarity.csv        columns weight, similarity, adapter, task
  results/task_centroids.json          task -> MiniLM embedding of the task
  results/routing_v2/adapter_map.csv   adapter -> pca_x, pca_y, tsne_x, tsne_y, category
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from logo.config import SIGNALS
from zoo.data import ASSETS_DIR, Task, load_tasks

DEFAULT_ASSETS_DIR = ASSETS_DIR
UNKNOWN_CATEGORY = "unknown"
DEV_INPUTS = 32  # dev inputs per fallback task centroid: enough for a mean, ~10 s of MiniLM for 35 tasks on 2 cores
EXAMPLES_PER_TASK = 1  # one test prompt per task keeps the picker short; every category and held-out task shows up


@dataclass(frozen=True)
class Example:
    """One example prompt from a task's test set."""

    task: str
    category: str
    held_out: bool
    prompt: str  # instruction + "\n\n" + input, exactly what the user would type

    @property
    def label(self) -> str:
        """What the example picker shows: category, task, a held-out mark and the start of the input."""
        tail = " ".join(self.prompt.rsplit("\n\n", 1)[-1].split())
        tail = tail if len(tail) <= 48 else tail[:47] + "…"
        held = " · held out" if self.held_out else ""
        return f"[{self.category}] {self.task}{held}: {tail}"


def read_tasks(tasks_dir: Path) -> dict[str, Task]:
    """Every tasks/<task>/task.json, by task name; {} when the folder is missing."""
    return {task.name: task for task in load_tasks(tasks_dir)} if tasks_dir.is_dir() else {}


def task_inputs_or_none(task: Task, split: str, limit: int | None) -> list[str]:
    """The inputs of the task's split, or [] when the split is not there (train splits are not committed)."""
    if not (task.directory / f"{split}.jsonl").is_file():
        return []
    return [row["input"] for row in task.examples(split, limit)]


def examples_from_tasks(tasks: Mapping[str, Task], per_task: int = EXAMPLES_PER_TASK) -> list[Example]:
    """`per_task` test prompts of every task, grouped by category, held-out tasks last within a category."""
    examples = [
        Example(task.name, task.category, task.held_out, task.prompt(text))
        for task in tasks.values()
        for text in task_inputs_or_none(task, "test", per_task)
    ]
    return sorted(examples, key=lambda e: (e.category, e.held_out, e.task))


def adapter_cards(adapter_dirs: Iterable[tuple[str, str]], assets_dir: Path) -> dict[str, dict]:
    """adapter -> its card.json (beside the adapter, else assets/adapters/<name>/card.json), {} when it has none."""
    cards = {}
    for name, source in adapter_dirs:
        cards[name] = {}
        for card in (Path(source) / "card.json", assets_dir / "adapters" / name / "card.json"):
            if card.is_file():
                cards[name] = json.loads(card.read_text(encoding="utf-8"))
                break
    return cards


def adapter_categories(adapter_dirs: Iterable[tuple[str, str]], assets_dir: Path) -> dict[str, str]:
    """adapter -> category from its card, else unknown."""
    cards = adapter_cards(adapter_dirs, assets_dir)
    return {name: card.get("category", UNKNOWN_CATEGORY) for name, card in cards.items()}


def card_markdown(name: str, card: Mapping) -> str:
    """An adapter's card as a few lines: task, category, measured scores, training."""
    if not card:
        return f"**{name}**: no card.json (no task or scores recorded)."
    lines = [f"**{name}** · {card.get('category', UNKNOWN_CATEGORY)}", card.get("description", "")]
    if "adapter_score" in card:
        lines.append(
            f"Measured on {card.get('n_test', '?')} test inputs ({card.get('metric', 'score')}): "
            f"adapter **{card['adapter_score']:.1f}** vs base {card.get('base_score', float('nan')):.1f}"
        )
    training = card.get("training") or {}
    if training:
        lines.append(
            f"Trained: rank {training.get('rank')}, targets {', '.join(training.get('targets', []))}, "
            f"{training.get('steps')} steps on {training.get('examples')} examples"
        )
    return "  \n".join(filter(None, lines))


def read_signal_matrices(results: Path) -> dict[tuple[str, int], pd.DataFrame]:
    """(signal, block from the end) -> the committed signals_<signal>[_block<B>].csv; the plain name is the last
    block's (-1)."""
    matrices = {}
    for signal in SIGNALS:
        for path in sorted(results.glob(f"signals_{signal}*.csv")):
            suffix = path.stem.removeprefix(f"signals_{signal}")
            if suffix == "":
                matrices[(signal, -1)] = pd.read_csv(path, index_col=0)
            elif suffix.startswith("_block") and suffix[6:].lstrip("-").isdigit() and int(suffix[6:]) < 0:
                matrices[(signal, int(suffix[6:]))] = pd.read_csv(path, index_col=0)
    return matrices


def _read_csv(path: Path, **kwargs) -> pd.DataFrame | None:
    return pd.read_csv(path, **kwargs) if path.is_file() else None


@dataclass
class StudioData:
    """The static data of the UI. Built by `load` from the assets folder, or directly in tests."""

    adapter_categories: dict[str, str]
    cards: dict[str, dict] = field(default_factory=dict)  # adapter -> card.json
    task_categories: dict[str, str] = field(default_factory=dict)
    tasks: dict[str, Task] = field(default_factory=dict)
    examples: list[Example] = field(default_factory=list)
    # (signal, block from the end) -> tasks x adapters, as analysis/report.py measured them
    signal_matrices: dict[tuple[str, int], pd.DataFrame] = field(default_factory=dict)
    weight_similarity: pd.DataFrame | None = None  # dataset-level scatter points
    centroids_path: Path | None = None  # results/task_centroids.json when present
    adapter_map: pd.DataFrame | None = None  # results/routing_v2/adapter_map.csv: adapter -> PCA/t-SNE xy

    @classmethod
    def load(
        cls, assets_dir: Path, adapter_dirs: Sequence[tuple[str, str]], examples: Sequence[Example] | None = None
    ) -> StudioData:
        """Read everything under `assets_dir`; `examples` replaces the test-set examples when given."""
        results = assets_dir / "results"
        tasks = read_tasks(assets_dir / "tasks")
        centroids = results / "task_centroids.json"
        return cls(
            adapter_categories=adapter_categories(adapter_dirs, assets_dir),
            cards=adapter_cards(adapter_dirs, assets_dir),
            task_categories={t.name: t.category for t in tasks.values()},
            tasks=tasks,
            examples=list(examples) if examples is not None else examples_from_tasks(tasks),
            signal_matrices=read_signal_matrices(results),
            weight_similarity=_read_csv(results / "weight_similarity.csv"),
            centroids_path=centroids if centroids.is_file() else None,
            adapter_map=_read_csv(results / "routing_v2" / "adapter_map.csv", index_col="adapter"),
        )

    def dataset_blocks(self, signal: str) -> list[int]:
        """The blocks (from the end, -1 the last) at which the dataset rows of `signal` were measured."""
        return [block for s, block in self.signal_matrices if s == signal]

    def dataset_matrix(self, signal: str, adapters: Sequence[str], block: int = -1) -> pd.DataFrame | None:
        """The dataset heatmap at `block` restricted to the pool's adapters (pool order); None when it shares none
        or was not measured there."""
        matrix = self.signal_matrices.get((signal, block))
        if matrix is None:
            return None
        shared = [a for a in adapters if a in matrix.columns]
        return matrix[shared] if shared else None

    def dev_centroids(
        self, adapters: Sequence[str], centroid: Callable[[list[str]], np.ndarray]
    ) -> dict[str, np.ndarray]:
        """Centroid of each adapter's task dev inputs (adapters are named after their task); absent when none."""
        centroids = {}
        for name in adapters:
            task = self.tasks.get(name)
            texts = task_inputs_or_none(task, "dev", DEV_INPUTS) if task else []
            if texts:
                centroids[name] = centroid(texts)  # (D,)
        return centroids
