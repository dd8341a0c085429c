"""The committed zoo: every adapter is valid, small, proven on its own task, and loads into the engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from logo.config import EngineConfig
from logo.engine import LoGoEngine
from tests.tiny import WORDS
from zoo.data import ADAPTERS_DIR, Task, load_tasks
from zoo.train import TrainConfig, train_adapter

ADAPTERS = sorted(p for p in ADAPTERS_DIR.iterdir() if (p / "adapter_config.json").is_file())
CATEGORIES = {"reasoning", "translation", "struct2text", "cbqa", "nli", "code", "classification"}


def test_every_pool_task_has_an_adapter_and_no_held_out_task_has_one():
    names = {p.name for p in ADAPTERS}
    assert names == {t.name for t in load_tasks(held_out=False)}
    assert not names & {t.name for t in load_tasks(held_out=True)}
    assert len(names) >= 24


def test_sizes_stay_within_budget():
    adapters = sum(f.stat().st_size for f in ADAPTERS_DIR.rglob("*") if f.is_file())
    assets = sum(f.stat().st_size for f in (ADAPTERS_DIR.parent).rglob("*") if f.is_file() and f.name != "train.jsonl")
    generator = sum(f.stat().st_size for f in (ADAPTERS_DIR.parent / "loragen").rglob("*") if f.is_file())
    assert adapters < 25e6, f"adapters take {adapters / 1e6:.1f} MB"
    assert generator < 12e6, f"the LoRA-Gen generator takes {generator / 1e6:.1f} MB (issue 12: under 12 MB)"
    # every call to the GPU machine carries the working tree (64 MiB in all, the base model's parts included)
    assert assets < 50e6, f"assets take {assets / 1e6:.1f} MB"


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda p: p.name)
def test_adapter_files_and_card(adapter: Path):
    tensors = load_file(str(adapter / "adapter_model.safetensors"))
    assert tensors and all(t.dtype == torch.float16 for t in tensors.values())
    assert any(".q_proj.lora_A" in k for k in tensors), "q_proj must be adapted (the probe reads it)"
    card = json.loads((adapter / "card.json").read_text())
    assert card["name"] == adapter.name and card["category"] in CATEGORIES and card["description"]
    assert {"rank", "alpha", "targets", "steps", "lr", "seed", "machine", "minutes"} <= set(card["training"])
    assert card["metric"] in {"exact_match", "rouge_l", "bleu"}


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda p: p.name)
def test_adapter_meets_the_quality_bar(adapter: Path):
    """+15 exact-match points over the base model, or at least double its ROUGE-L / BLEU (measured on test)."""
    card = json.loads((adapter / "card.json").read_text())
    base, score = card["base_score"], card["adapter_score"]
    if card["metric"] == "exact_match":
        assert score >= base + 15, card
    else:
        assert score >= 2 * base, card


@pytest.mark.slow
def test_every_committed_adapter_loads_into_the_engine(tmp_path):
    engine = LoGoEngine(EngineConfig(adapters=(str(ADAPTERS_DIR),), device="cpu", cache_dir=tmp_path))
    assert set(engine.adapter_names) == {p.name for p in ADAPTERS}
    routing = engine.route("Translate to French: The cat is black.")[0]
    assert routing.selected[0] == "en_fr"


def test_training_runs_two_steps_on_the_cpu(tiny_world, tmp_path):
    task_dir = tmp_path / "tasks" / "toy"
    task_dir.mkdir(parents=True)
    rows = [
        {"input": f"sort {a} {b}", "target": " ".join(sorted([a, b]))}
        for a, b in zip(WORDS[:20], WORDS[20:40], strict=True)
    ]
    (task_dir / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    task = Task("toy", "reasoning", "Sort two words.", "sort the words", "exact_match", False, task_dir)
    base = tiny_world.base()
    before = {n: p.clone() for n, p in base.model.named_parameters()}
    card = train_adapter(base, task, TrainConfig(steps=2, batch_size=4, rank=2, alpha=4), tmp_path / "out")
    saved = load_file(str(tmp_path / "out" / "toy" / "adapter_model.safetensors"))
    assert saved and all(t.dtype == torch.float16 for t in saved.values())
    assert card["training"]["steps"] == 2 and card["training"]["examples"] == 20
    for name, param in base.model.named_parameters():  # the base model is left clean for the next task
        assert torch.equal(param, before[name]), name
