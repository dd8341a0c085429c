"""Routing v2 study (analysis/routing_study.py and its steps): configs, hand-written prompts, hostile adapters."""

from __future__ import annotations

import json

import pytest
import torch

from analysis.handwritten import category_hits, load_handwritten
from analysis.routing_study import PAPER, SignalBank, StudyConfig, bank_stats, bootstrap_ci, scores, top_k
from logo.calibration import read_reference_prompts
from zoo.data import load_tasks

PROMPTS = ["what is the capital of france ?", "sort the words cat dog bird", "count the apple and pear", "two + three"]


def test_handwritten_prompts_are_many_distinct_and_cover_every_category():
    rows = load_handwritten()
    categories = {t.category for t in load_tasks()}
    assert len(rows) >= 110
    assert len({r["prompt"] for r in rows}) == len(rows)
    assert {r["category"] for r in rows} == categories
    assert sum(r["task"] is not None for r in rows) >= 90


@pytest.mark.parametrize(
    "row, match",
    [
        ({"prompt": "hi", "category": "poetry", "task": None}, "unknown category 'poetry'"),
        ({"prompt": "hi", "category": "code", "task": "en_fr"}, "not a pool task of category 'code'"),
        ({"prompt": " ", "category": "code", "task": None}, "non-empty 'prompt'"),
    ],
)
def test_handwritten_file_errors_name_the_line_and_fix(tmp_path, row, match):
    path = tmp_path / "hand.jsonl"
    path.write_text(json.dumps({"prompt": "ok", "category": "code", "task": None}) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(ValueError, match=f"hand.jsonl:2: .*{match}"):
        load_handwritten(path)


def test_category_hits_compares_the_top1_adapter_category():
    selected = torch.tensor([[0, 1], [1, 0], [2, 0]])
    hits = category_hits(
        selected, ("en_fr", "python_eval", "en_de"), {"en_fr": "t", "python_eval": "c", "en_de": "t"}, ["t", "t", "t"]
    )
    assert hits.tolist() == [True, False, True]


def test_bootstrap_interval_brackets_the_mean():
    hits = torch.tensor([1] * 80 + [0] * 20)
    low, high = bootstrap_ci(hits)
    assert 0.7 < low < 0.8 < high < 0.9


@pytest.mark.parametrize(
    "config",
    [PAPER, StudyConfig("z", "entropy", "zscore", "own", -1), StudyConfig("m", "norm", "mean", "own", -2)],
)
def test_study_scores_select_what_the_engine_routes(engine, tiny_world, config):
    """The offline study (one bank, many configs) picks exactly the adapters engine.route picks."""
    reference = read_reference_prompts(tiny_world.reference_file)
    bank = SignalBank.compute(engine, PROMPTS, [-1, -2])
    stats = bank_stats(SignalBank.compute(engine, reference, [-1, -2]), "own")
    chosen = top_k(scores(bank, stats, config), 2)
    routed = engine.route(PROMPTS, config.routing(k=2), reference=reference)
    assert [[engine.adapter_names[i] for i in row] for row in chosen.tolist()] == [list(r.selected) for r in routed]


def test_bank_columns_follow_the_requested_order(engine):
    bank = SignalBank.compute(engine, PROMPTS, [-1])
    names = tuple(reversed(engine.adapter_names))
    sub = bank.columns(names)
    assert torch.equal(sub.at(-1, "norm"), bank.at(-1, "norm").flip(1))
    with pytest.raises(KeyError, match="block 0 was not probed"):
        bank.at(0, "norm")
