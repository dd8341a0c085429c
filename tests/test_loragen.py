"""LoRA-Gen on the tiny model: PEFT equals the hooked merge, gates, determinism, training, bad input."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from peft import PeftModel

from logo.loragen import LoraGenConfig, LoraGenerator, TrainConfig
from logo.loragen.prompts import load_demos
from logo.loragen.train import TrainExample, train
from logo.pool import load_adapter, validate_adapter

TINY = LoraGenConfig(edge_model="tiny", reader_model="tiny", router_hidden=16)


@pytest.fixture
def generator(tiny_world):
    gen = LoraGenerator.build(TINY, edge=tiny_world.base(), reader=tiny_world.base())
    with torch.no_grad():
        for p in gen.model.experts.parameters():
            p.normal_(0, 0.3)  # trained experts start with B = 0: give them a delta to compare
    return gen


def test_saved_adapter_loaded_by_peft_matches_the_hooked_merge(generator, tiny_world, tmp_path):
    lora = generator.generate("translate the sentence to french", demos=[("one", "two")])
    directory = lora.save(tmp_path / "gen")
    ids = tiny_world.tokenizer(["what is the capital of france ?"], return_tensors="pt")
    gates = torch.tensor(lora.gate_array)[None]
    ours = generator.edge_logits(ids["input_ids"], ids["attention_mask"], gates)
    peft = PeftModel.from_pretrained(copy.deepcopy(tiny_world.model), directory).eval()
    with torch.no_grad():
        theirs = peft(**ids).logits
    base = tiny_world.model(**ids).logits
    assert not torch.allclose(ours, base, atol=1e-3)  # the adapter changes something
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
    validate_adapter(load_adapter(directory), tiny_world.model)  # our engine's pool accepts it as is
    card = json.loads((directory / "card.json").read_text())
    assert card["description_hash"] == lora.digest and len(card["gates"]) == 4


def test_gates_sum_to_one_with_k_nonzero_and_generation_is_deterministic(generator, tiny_world):
    first = generator.generate("sort the words")
    other = LoraGenerator(generator.model, generator.edge, generator.reader_tokenizer, TINY)  # a fresh cache
    second = other.generate("sort the words")
    assert first.gates == second.gates
    gates = first.gate_array
    assert gates.shape == (4, 8)
    assert ((gates > 0).sum(1) == TINY.top_k).all()
    assert abs(gates.sum(1) - 1).max() < 1e-6
    assert generator.generate("sort the words") is first  # cached by hash


def test_training_runs_and_lowers_the_loss(generator):
    examples = [TrainExample("count the words", "count cat dog", "two"), TrainExample("red", "what is red", "blue")]
    config = TrainConfig(steps=15, batch_size=4, warmup_steps=2, lr=1e-2, seed=0)
    result = train(generator, examples * 4, config)
    assert result.finished and result.step == 15
    assert result.history[-1].lm_loss < result.history[0].lm_loss


@pytest.mark.parametrize(
    ("description", "error", "match"),
    [
        ("", ValueError, "description is empty"),
        ("   ", ValueError, "description is empty"),
        (3, TypeError, "not a string"),
    ],
)
def test_bad_descriptions_are_refused(generator, description, error, match):
    with pytest.raises(error, match=match):
        generator.generate(description)


def test_a_description_over_the_reader_limit_is_refused(tiny_world):
    gen = LoraGenerator.build(
        LoraGenConfig(edge_model="tiny", reader_model="tiny", max_description_tokens=8),
        edge=tiny_world.base(),
        reader=tiny_world.base(),
    )
    with pytest.raises(ValueError, match="over the limit of 8"):
        gen.generate("the cat " * 20)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("", "is empty"),
        ('{"input": 1}', "give 'input' and 'output'"),
        ("[1, 2]", "demo 0 is 1"),
        ('"text"', "JSON str"),
        ('{"a": 1}\n{oops', "line 1: not valid JSON|line 2"),
        ('[{"input": "x"}]', "give 'input' and 'output'"),
        ('[{"input": "x", "output": ""}]', "empty"),
    ],
)
def test_malformed_demo_files_are_refused(tmp_path, content, match):
    path = tmp_path / "demos.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=match):
        load_demos(path)


def test_a_checkpoint_for_another_edge_model_is_refused(generator, tmp_path):
    from logo.base_model import BaseModel
    from tests.tiny import tiny_model, tiny_tokenizer

    generator.save_checkpoint(tmp_path / "ckpt")
    tok = tiny_tokenizer()
    other = BaseModel(tiny_model(len(tok), layers=2), tok, name="tiny2", fingerprint="tiny2")
    with pytest.raises(ValueError, match="trained for an edge model"):
        LoraGenerator.load(
            tmp_path / "ckpt", edge=other, reader=BaseModel(tiny_model(len(tok), layers=2), tok, "r", "r")
        )
