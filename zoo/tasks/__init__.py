"""Registry of all zoo tasks: TASKS maps a task name to its TaskSpec (pool and held-out tasks of every category)."""

from __future__ import annotations

from . import cbqa, classification, code, nli, reasoning, struct2text, translation
from .common import CATEGORIES, METRICS, TaskSpec, task_rng

TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for module in (reasoning, translation, struct2text, cbqa, nli, code, classification)
    for spec in module.SPECS
}

__all__ = ["CATEGORIES", "METRICS", "TASKS", "TaskSpec", "task_rng"]
