"""Adapter loading and validation: what is accepted, and the clear error for everything that is not."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from logo.pool import AdapterPool, discover_adapters, load_adapter
from tests.tiny import save_random_adapter, tiny_model


def test_pool_stacks_mixed_ranks_and_targets(engine):
    pool = engine.pool
    assert pool.names == ("alpha", "beta", "delta", "epsilon", "gamma")
    k_proj = pool.modules["model.layers.0.self_attn.k_proj"]
    assert k_proj.covered == (True, True, True, False, False)  # epsilon and gamma do not adapt k_proj
    assert k_proj.a.shape == (5, 4, 64)  # padded to the largest rank among adapters of k_proj
    assert torch.count_nonzero(k_proj.a[3]) == 0 and torch.count_nonzero(k_proj.b[4]) == 0
    up = pool.modules["model.layers.0.mlp.up_proj"]
    assert up.covered == (False, False, True, False, False)


def test_scalings_follow_alpha_over_rank_and_rslora(tiny_world):
    gamma = load_adapter(tiny_world.pool_dir / "gamma")  # r=8, alpha=16, rslora: 16 / sqrt(8)
    alpha = load_adapter(tiny_world.pool_dir / "alpha")  # r=2, alpha=4: 2
    assert list(gamma.scalings.values()) == pytest.approx([16 / 8**0.5] * len(gamma.scalings))
    assert set(alpha.scalings.values()) == {2.0}


def test_alpha_pattern_is_honoured(tiny_world, tmp_path):
    adapter_dir = tmp_path / "patterned"
    shutil.copytree(tiny_world.pool_dir / "beta", adapter_dir)
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    config["alpha_pattern"] = {"v_proj": 16}
    (adapter_dir / "adapter_config.json").write_text(json.dumps(config))
    adapter = load_adapter(adapter_dir)
    assert adapter.scalings["model.layers.0.self_attn.v_proj"] == 4.0  # 16 / 4
    assert adapter.scalings["model.layers.0.self_attn.q_proj"] == 1.0  # 4 / 4


def _copy(world, tmp_path, name="alpha"):
    target = tmp_path / "pool" / name
    shutil.copytree(world.pool_dir / name, target)
    return target


def test_bin_only_adapter_is_refused(tiny_world, tmp_path):
    adapter_dir = _copy(tiny_world, tmp_path)
    (adapter_dir / "adapter_model.safetensors").rename(adapter_dir / "adapter_model.bin")
    with pytest.raises(ValueError, match=r"only pickle \(.bin\) weights"):
        load_adapter(adapter_dir)


def test_dora_adapter_is_refused(tiny_world, tmp_path):
    adapter_dir = _copy(tiny_world, tmp_path)
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    (adapter_dir / "adapter_config.json").write_text(json.dumps({**config, "use_dora": True}))
    with pytest.raises(ValueError, match="use_dora"):
        load_adapter(adapter_dir)


def test_missing_and_empty_directories_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        discover_adapters([str(tmp_path / "nowhere")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no adapter"):
        discover_adapters([str(tmp_path / "empty")])


def test_adapter_for_another_hidden_size_is_refused(tiny_world, tmp_path):
    other = tiny_model(len(tiny_world.tokenizer), hidden=32)
    save_random_adapter(other, tmp_path / "narrow", 4, 8, ["q_proj"], False, 1.0, seed=1)
    with pytest.raises(
        ValueError, match=r"'narrow', module 'model.layers.0.self_attn.q_proj': expected lora_A \(4, 64\)"
    ):
        AdapterPool([load_adapter(tmp_path / "narrow")], tiny_world.model)


def test_adapter_for_a_deeper_model_is_refused(tiny_world, tmp_path):
    deeper = tiny_model(len(tiny_world.tokenizer), layers=6)
    save_random_adapter(deeper, tmp_path / "deep", 4, 8, ["q_proj"], False, 1.0, seed=1)
    with pytest.raises(
        ValueError, match=r"targets 'model\.layers\.4\.self_attn\.q_proj', but the base model has no such module"
    ):
        AdapterPool([load_adapter(tmp_path / "deep")], tiny_world.model)


def test_duplicate_names_are_refused(tiny_world, tmp_path):
    first = load_adapter(tiny_world.pool_dir / "alpha")
    second = load_adapter(_copy(tiny_world, tmp_path))
    with pytest.raises(ValueError, match=r"unique; repeated: \['alpha'\]"):
        AdapterPool([first, second], tiny_world.model)


def test_a_probe_module_every_adapter_adapts_can_be_chosen(make_engine, tiny_world, tmp_path):
    save_random_adapter(tiny_world.model, tmp_path / "values" / "v_only", 4, 8, ["v_proj"], False, 1.0, seed=3)
    engine = make_engine(adapters=[str(tiny_world.pool_dir / "alpha"), str(tmp_path / "values" / "v_only")])
    from logo.config import RoutingConfig

    with pytest.raises(ValueError, match=r"\['v_only'\] do not adapt the probe module"):
        engine.route("what is the capital of france ?", RoutingConfig(k=1))
    routing = engine.route("what is the capital of france ?", RoutingConfig(k=1).with_(module="self_attn.v_proj"))[0]
    assert len(routing.selected) == 1
