"""LoRA-Gen training and evaluation examples from the zoo: description paraphrases + 0-5 train demos, bare input."""

from __future__ import annotations

import json
import random
from pathlib import Path

from logo.loragen import LoraGenerator
from logo.loragen.generator import CONFIG, experts_named_by
from logo.loragen.prompts import system_prompt
from logo.loragen.train import TrainExample
from logo.pool import discover_adapters, load_adapter
from zoo.data import ADAPTERS_DIR, TASKS_DIR, Task, canonical_target, load_tasks

DESCRIPTIONS = Path(__file__).resolve().parent / "tasks" / "data" / "descriptions.json"
MAX_DEMOS = 5


def load_descriptions(path: Path = DESCRIPTIONS) -> dict[str, list[str]]:
    """Task -> at least 8 paraphrases of its description (each says what goes in, what comes out)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    short = {name: len(v) for name, v in data.items() if len(v) < 8}
    if short:
        raise ValueError(f"{path}: tasks with fewer than 8 description paraphrases: {short}")
    return data


def demos_from(rows: list[dict], n: int, rng: random.Random, exclude: int | None = None) -> list[tuple[str, str]]:
    pool = [i for i in range(len(rows)) if i != exclude]
    return [(rows[i]["input"], canonical_target(rows[i]["target"])) for i in rng.sample(pool, n)]


def training_examples(
    tasks_dir: Path = TASKS_DIR, seed: int = 0, per_task: int | None = None, held_out_ok: bool = False
) -> list[TrainExample]:
    """Every pool task's train split as (paraphrase + 0-5 demos, bare input, target). Held-out tasks never."""
    descriptions = load_descriptions()
    rng = random.Random(seed)
    examples = []
    for task in load_tasks(tasks_dir, held_out=None if held_out_ok else False):
        rows = task.examples("train", per_task)
        for i, row in enumerate(rows):
            demos = demos_from(rows, rng.randint(0, min(MAX_DEMOS, len(rows) - 1)), rng, exclude=i)
            text = system_prompt(rng.choice(descriptions[task.name]), demos)
            examples.append(TrainExample(text, row["input"], canonical_target(row["target"])))
    rng.shuffle(examples)
    return examples


def task_description(task: Task, index: int = 0) -> str:
    """The evaluation description of a task: its paraphrase number `index`."""
    return load_descriptions()[task.name][index]


def zoo_experts() -> list:
    """The zoo's task adapters in the pool directory's order: the experts of an experts='zoo' generator."""
    return [load_adapter(d) for d in discover_adapters([str(ADAPTERS_DIR)])]


def load_generator(directory: Path, device: str | None = None) -> LoraGenerator:
    """A trained generator; one with zoo experts gets the zoo's adapters (its checkpoint names them only)."""
    config = (
        json.loads((Path(directory) / CONFIG).read_text())["config"] if (Path(directory) / CONFIG).is_file() else {}
    )
    experts = experts_named_by(directory, ADAPTERS_DIR) if config.get("experts") == "zoo" else []
    return LoraGenerator.load(directory, expert_adapters=experts, device=device)
