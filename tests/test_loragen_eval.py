"""The LoRA-Gen evaluation's statistics, prompt counting and in-place merge (no model downloads, tiny model)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from analysis.loragen_latency import chat_prompt, merged, prompt_tokens
from analysis.loragen_stats import bootstrap_average, bootstrap_task, harmonic_mean, per_task_markdown, score_table
from logo.loragen import LoraGenConfig, LoraGenerator


@pytest.mark.parametrize(("values", "expected"), [([50, 50], 50.0), ([100, 25], 40.0), ([80, 0], 0.0), ([10], 10.0)])
def test_harmonic_mean(values, expected):
    assert harmonic_mean(np.array(values)) == pytest.approx(expected)


def test_bootstrap_interval_holds_the_mean_narrows_with_n_and_is_seeded():
    rng = np.random.default_rng(1)
    small, large = rng.integers(0, 2, 10) * 100, rng.integers(0, 2, 1000) * 100
    mean, low, high = bootstrap_task(small)
    assert low <= mean <= high and mean == small.mean()
    _, low_l, high_l = bootstrap_task(large)
    assert high_l - low_l < high - low
    assert bootstrap_task(small) == (mean, low, high)  # same seed, same interval
    assert bootstrap_task(np.full(5, 100.0)) == (100.0, 100.0, 100.0)


def test_bootstrap_average_gives_mean_and_harmonic_over_tasks():
    out = bootstrap_average([np.array([100.0, 100.0]), np.array([0.0, 50.0])])
    assert out["mean"][0] == pytest.approx(62.5)
    assert out["harmonic"][0] == pytest.approx(2 / (1 / 100 + 1 / 25))
    assert out["harmonic"][1] == 0.0  # resamples of task 2 that are all zeros make the harmonic mean 0


def test_score_table_has_every_task_and_the_two_averages():
    instances = pd.DataFrame(
        [dict(setting="unseen", condition=c, task=t, score=s) for c in ("a", "b") for t in ("x", "y") for s in (0, 100)]
    )
    table = score_table(instances)
    assert len(table) == 2 * (2 + 2)
    assert set(table.task) == {"x", "y", "MEAN", "HARMONIC"}
    assert (table["mean"] == 50.0).all() and (table["n"][table.task == "MEAN"] == 4).all()


def test_the_description_replaces_the_templates_system_prompt(tiny_world):
    tok = tiny_world.tokenizer
    bare, described = chat_prompt(tok, "count one two", None), chat_prompt(tok, "count one two", "count words")
    assert "count words" in described and "count words" not in bare
    assert prompt_tokens(tok, "count one two", "count words " * 10) > prompt_tokens(tok, "count one two", None)


def test_merged_adds_the_adapter_to_the_weights_and_restores_them(tiny_world):
    config = LoraGenConfig(edge_model="tiny", reader_model="tiny", router_hidden=16)
    generator = LoraGenerator.build(config, edge=tiny_world.base(), reader=tiny_world.base())
    with torch.no_grad():
        for p in generator.model.experts.parameters():
            p.normal_(0, 0.1)
    lora = generator.generate("sort the words")
    model = generator.edge.model
    ids = tiny_world.tokenizer(["sort cat dog"], return_tensors="pt")
    before = model(**ids).logits
    hooked = generator.edge_logits(ids["input_ids"], ids["attention_mask"], torch.tensor(lora.gate_array)[None])
    with torch.no_grad(), merged(model, lora) as merge_ms:
        inside = model(**ids).logits
    assert merge_ms >= 0
    torch.testing.assert_close(inside, hooked, atol=1e-5, rtol=0)  # the reparameterised model is the adapted one
    torch.testing.assert_close(model(**ids).logits, before, atol=0, rtol=0)  # and it is undone exactly


def test_per_task_table_of_a_setting_without_tasks_says_so():
    instances = pd.DataFrame([dict(setting="unseen", condition="a", task="x", score=100.0)])
    table = score_table(instances)
    assert per_task_markdown(table, "seen", ["a"]) == "(no seen tasks in this run)"
    assert "| x | 100.0 |" in per_task_markdown(table, "unseen", ["a"])
