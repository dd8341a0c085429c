"""A routed mixture exported as one PEFT adapter: PEFT loading it computes the engine's logits with that mixture."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file

from logo import scoring
from logo.cli import main
from logo.config import RoutingConfig
from logo.pool import AdapterPool

PROMPTS = ["what is the capital of france ?", "sort the words cat dog bird"]


def peft_logits(world, directory, prompt: str) -> torch.Tensor:
    """Logits of PEFT with the exported adapter as its only adapter, on a pristine copy of the tiny model."""
    model = PeftModel.from_pretrained(copy.deepcopy(world.model), directory).eval()
    text = world.tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
    )
    ids = world.tokenizer(text, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        return model(**ids).logits[0]  # (T, V)


def test_routed_export_gives_the_engines_logits_in_peft(engine, tiny_world, tmp_path):
    for row, prompt in enumerate(PROMPTS):
        routing = engine.route(prompt, RoutingConfig.preset("paper", k=3))[0]
        directory = engine.export_mixture(routing, tmp_path / f"export{row}")
        ours = scoring.logits(engine, [prompt], [routing.mixture])[0]
        torch.testing.assert_close(peft_logits(tiny_world, directory, prompt), ours, rtol=0, atol=1e-5)
        card = json.loads((directory / "card.json").read_text())
        assert card["mixture"] == routing.mixture
        assert card["routing"]["selected"] == list(routing.selected)


@pytest.mark.parametrize(
    "mixture",
    [
        {"gamma": 0.7, "epsilon": 0.2, "delta": 0.1},  # adapters that skip modules, one that adds up_proj
        {"alpha": 1.0},
        {"beta": 0.5, "alpha": -0.25},  # a negative weight is kept as given
    ],
)
def test_explicit_mixture_export_equals_the_engine(engine, tiny_world, tmp_path, mixture):
    directory = engine.export_mixture(mixture, tmp_path / "export")
    ours = scoring.logits(engine, [PROMPTS[0]], [mixture])[0]
    torch.testing.assert_close(peft_logits(tiny_world, directory, PROMPTS[0]), ours, rtol=0, atol=1e-5)


def test_export_has_rank_sum_and_scaling_one(engine, tmp_path):
    mixture = {"gamma": 0.6, "epsilon": 0.4}
    directory = engine.export_mixture(mixture, tmp_path / "export")
    config = json.loads((directory / "adapter_config.json").read_text())
    tensors = load_file(directory / "adapter_model.safetensors")
    for module, stack in engine.pool.modules.items():
        covered = [n for n in mixture if stack.covered[engine.pool.index(n)]]
        key = f"base_model.model.{module}.lora_A.weight"
        if not covered:
            assert key not in tensors
            continue
        rank = sum(engine.pool.adapters[engine.pool.index(n)].factors[module][0].shape[0] for n in covered)
        assert tensors[key].shape[0] == rank
        assert config["rank_pattern"].get(module, config["r"]) == rank
        assert config["alpha_pattern"].get(module, config["lora_alpha"]) == rank  # scaling alpha / r = 1
    assert config["use_rslora"] is False
    assert all(t.dtype == torch.float32 for t in tensors.values())


def test_the_engine_serves_its_own_export_as_the_mixture(engine, tiny_world, tmp_path):
    mixture = {"gamma": 0.7, "epsilon": 0.2, "delta": 0.1}
    directory = engine.export_mixture(mixture, tmp_path / "mixed")
    pool = AdapterPool.load([str(directory)], engine.model)
    assert pool.names == ("mixed",)
    single = pool.adapters[0]
    for module, (a, b) in single.factors.items():
        assert single.scalings[module] == pytest.approx(1.0)
        delta = b @ a  # (d_out, d_in)
        stack = engine.pool.modules[module]
        index = {n: engine.pool.index(n) for n in mixture}
        expected = sum(
            w * float(stack.scaling[index[n]]) * (stack.b[index[n]] @ stack.a[index[n]]) for n, w in mixture.items()
        )
        torch.testing.assert_close(delta, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    ("mixture", "error", "match"),
    [
        ({}, ValueError, "mixture is empty"),
        ({"nobody": 1.0}, KeyError, "no adapter named 'nobody'"),
        ({"alpha": float("nan")}, ValueError, "weight of adapter 'alpha' is nan"),
    ],
)
def test_bad_mixtures_are_refused(engine, tmp_path, mixture, error, match):
    with pytest.raises(error, match=match):
        engine.export_mixture(mixture, tmp_path / "export")


def test_a_non_empty_directory_is_refused(engine, tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not an empty directory"):
        engine.export_mixture({"alpha": 1.0}, tmp_path / "taken")


@pytest.fixture
def model_dir(tiny_world, tmp_path, monkeypatch):
    directory = tmp_path / "tiny-model"
    tiny_world.model.save_pretrained(directory)
    tiny_world.tokenizer.save_pretrained(directory)
    monkeypatch.setenv("LOGO_CACHE", str(tmp_path / "cache"))
    return directory


def test_cli_route_exports_the_mixture_it_prints(capsys, model_dir, tiny_world, tmp_path):
    common = ["--base-model", str(model_dir), "--adapters", str(tiny_world.pool_dir), "--device", "cpu"]
    code = main(["route", PROMPTS[0], "--preset", "paper", "--json", "--export-mixture", str(tmp_path / "x"), *common])
    printed = json.loads(capsys.readouterr().out)
    assert code == 0
    card = json.loads((tmp_path / "x" / "card.json").read_text())
    assert list(card["mixture"]) == printed["selected"] and list(card["mixture"].values()) == printed["weights"]
    batch = tmp_path / "prompts.txt"
    batch.write_text(f"{PROMPTS[0]}\n{PROMPTS[1]}\n")
    code = main(["route", "--input", str(batch), "--no-progress", "--export-mixture", str(tmp_path / "b"), *common])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0
    for row in rows:
        card = json.loads((tmp_path / "b" / f"line-{row['line']}" / "card.json").read_text())
        assert list(card["mixture"]) == row["selected"]
    code = main(["route", PROMPTS[0], "--export-mixture", str(tmp_path / "x"), *common])
    assert code == 2 and "not an empty directory" in capsys.readouterr().err
