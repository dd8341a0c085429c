"""`logo gen` and `logo generate --adapter` on the tiny model: a PEFT directory out, its answer, bad inputs."""

from __future__ import annotations

import json

import pytest
import torch
from peft import PeftModel

from logo.base_model import load_base_model
from logo.cli import main
from logo.loragen import LoraGenConfig, LoraGenerator
from logo.pool import load_adapter


@pytest.fixture
def model_dir(tiny_world, tmp_path, monkeypatch):
    directory = tmp_path / "tiny-model"
    tiny_world.model.save_pretrained(directory)
    tiny_world.tokenizer.save_pretrained(directory)
    monkeypatch.setenv("LOGO_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("LOGO_GENERATOR", raising=False)
    return directory


@pytest.fixture
def checkpoint(model_dir, tmp_path):
    """A generator for the tiny model saved to disk, its experts non-zero so the adapter changes the answer."""
    config = LoraGenConfig(edge_model=str(model_dir), reader_model=str(model_dir), router_hidden=16)
    generator = LoraGenerator.build(config, device="cpu")
    with torch.no_grad():
        for p in generator.model.experts.parameters():
            p.normal_(0, 0.1)
    return generator.save_checkpoint(tmp_path / "generator")


def _run(capsys, *args):
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_gen_writes_a_peft_adapter_and_generate_answers_with_it_merged(capsys, checkpoint, model_dir, tmp_path):
    demos = tmp_path / "demos.jsonl"
    demos.write_text('{"input": "cat dog", "output": "two"}\n{"input": "red", "target": ["blue", "navy"]}\n')
    out = tmp_path / "adapter"
    code, stdout, err = _run(
        capsys, "gen", "count the words", "--demos", demos, "--out", out, "--generator", checkpoint, "--json"
    )
    assert code == 0, err
    card = json.loads(stdout)
    assert card["out"] == str(out) and card["n_demos"] == 2 and len(card["gates"]) == 4
    assert sorted(p.name for p in out.iterdir()) == ["adapter_config.json", "adapter_model.safetensors", "card.json"]
    assert json.loads((out / "card.json").read_text())["description_hash"] == card["description_hash"]

    prompt = "count one two"
    args = ("--base-model", model_dir, "--device", "cpu", "--max-new-tokens", "4", "--ignore-eos", "--raw", "--json")
    code, stdout, err = _run(capsys, "generate", prompt, "--adapter", out, *args)
    assert code == 0, err
    ours = json.loads(stdout)
    assert ours["mode"] == "fused" and ours["selected"] == ["adapter"] and ours["weights"] == [1.0]
    assert ours["signals"] == {}  # merged, not routed
    edge = load_base_model(str(model_dir), device="cpu", dtype="float32")
    peft = PeftModel.from_pretrained(edge.model, str(out)).eval()
    ids = edge.tokenizer(prompt, return_tensors="pt")
    with torch.no_grad():
        tokens = peft.generate(**ids, max_new_tokens=4, min_new_tokens=4, do_sample=False)
    assert ours["text"] == edge.tokenizer.decode(tokens[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)


def test_gen_prints_a_summary_with_the_kept_experts_and_reads_the_generator_from_the_environment(
    capsys, checkpoint, tmp_path, monkeypatch
):
    monkeypatch.setenv("LOGO_GENERATOR", str(checkpoint))
    code, stdout, err = _run(capsys, "gen", "sort the words", "--out", tmp_path / "a")
    assert code == 0, err
    rows = [line for line in stdout.splitlines() if line.strip()[:1].isdigit()]
    assert len(rows) == 4 and all(line.count("expert_") == 2 for line in rows)  # K = 2 per layer
    assert "logo generate --adapter" in stdout


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("gen", "   ", "--out", "{tmp}/a", "--generator", "{ckpt}"), "task description is empty"),
        (("gen", "count", "--out", "{tmp}/a"), "no generator given: pass --generator DIR"),
        (("gen", "count", "--out", "{tmp}/a", "--generator", "{tmp}/nowhere"), "is no generator checkpoint"),
        (("gen", "count", "--out", "{tmp}/a", "--generator", "{ckpt}", "--demos", "{tmp}/bad.jsonl"), "line 2"),
        (("gen", "count", "--out", "{tmp}/a", "--generator", "{ckpt}", "--demos", "{tmp}/none.json"), "not exist"),
        (("gen", "count", "--out", "{tmp}/bad.jsonl", "--generator", "{ckpt}"), "is a file: give a directory"),
        (("gen", "the cat " * 400, "--out", "{tmp}/a", "--generator", "{short}"), "over the limit of 64"),
        (("gen", "count", "--out", "{tmp}/a", "--generator", "{other}"), "trained for an edge model"),
        (("generate", "hi", "--adapter", "{tmp}/a", "--adapters", "{tmp}/b"), "either --adapter"),
    ],
)
def test_bad_gen_input_exits_2_with_a_clear_error(capsys, checkpoint, tmp_path, args, match):
    (tmp_path / "bad.jsonl").write_text('{"input": "a", "output": "b"}\n{oops\n')
    meta = json.loads((checkpoint / "generator_config.json").read_text())
    for name, change in (("short", {"max_description_tokens": 64}), ("other", None)):
        variant = tmp_path / name
        variant.mkdir()
        (variant / "generator.safetensors").write_bytes((checkpoint / "generator.safetensors").read_bytes())
        edited = json.loads(json.dumps(meta))
        if change:
            edited["config"].update(change)
        else:
            edited["edge_signature"]["layers"] = 30  # a generator for SmolLM2's 30 layers
        (variant / "generator_config.json").write_text(json.dumps(edited))
    filled = [a.format(tmp=tmp_path, ckpt=checkpoint, short=tmp_path / "short", other=tmp_path / "other") for a in args]
    code, stdout, err = _run(capsys, *filled)
    assert code == 2 and stdout == ""
    assert match in err


def test_gen_with_a_zoo_experts_generator_takes_its_adapters_from_experts_and_names_them(
    capsys, tiny_world, model_dir, tmp_path
):
    adapters = sorted(p for p in tiny_world.pool_dir.iterdir() if (p / "adapter_config.json").is_file())
    config = LoraGenConfig(edge_model=str(model_dir), reader_model=str(model_dir), router_hidden=16, experts="zoo")
    experts = [load_adapter(p) for p in adapters]
    saved = LoraGenerator.build(config, expert_adapters=experts, device="cpu").save_checkpoint(tmp_path / "zoo-gen")
    code, _, err = _run(capsys, "gen", "count", "--out", tmp_path / "a", "--generator", saved)
    assert code == 2 and "--experts DIR" in err
    empty = tmp_path / "empty-pool"
    empty.mkdir()
    code, _, err = _run(capsys, "gen", "count", "--out", tmp_path / "a", "--generator", saved, "--experts", empty)
    assert code == 2 and f"lacks {len(adapters)} of the generator's experts" in err
    args = ("gen", "count", "--out", tmp_path / "a", "--generator", saved, "--experts", tiny_world.pool_dir, "--json")
    code, stdout, _ = _run(capsys, *args)
    assert code == 0 and json.loads(stdout)["expert_names"] == [a.name for a in experts]
