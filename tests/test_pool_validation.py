"""Bad adapters fail loudly at load time (issue 16): broken files, non-finite or absurd factors, memory, padding."""

from __future__ import annotations

import logging
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from logo import pool as pool_module
from logo.adapters import DELTA_MAX_RATIO, AdapterError
from logo.pool import AdapterPool, load_adapter, stacked_bytes
from tests.tiny import save_random_adapter

WEIGHTS = "adapter_model.safetensors"
CONFIG = "adapter_config.json"
PROMPT = "what is the capital of france ?"


def _copy(world, tmp_path, name="alpha"):
    target = tmp_path / "pool" / name
    shutil.copytree(world.pool_dir / name, target)
    return target


def _edit_tensor(directory, fragment, edit):
    """Apply `edit` to the first tensor whose key contains `fragment`; return that key."""
    tensors = load_file(str(directory / WEIGHTS))
    key = next(k for k in sorted(tensors) if fragment in k)
    tensors[key] = edit(tensors[key].clone())
    save_file(tensors, str(directory / WEIGHTS))
    return key


def _poison(t):
    t[0, 0] = float("nan")
    return t


def _infinite(t):
    t[-1, -1] = float("inf")
    return t


@pytest.mark.parametrize(
    ("fragment", "edit"),
    [
        ("layers.1.self_attn.v_proj.lora_B", _poison),  # not the probe layer: used to load and answer ""
        ("layers.3.self_attn.q_proj.lora_A", _poison),  # the probe layer: used to fail every request of the pool
        ("layers.2.self_attn.o_proj.lora_A", _infinite),
    ],
)
def test_non_finite_factors_are_refused_naming_adapter_and_tensor(tiny_world, tmp_path, fragment, edit):
    directory = _copy(tiny_world, tmp_path)
    key = _edit_tensor(directory, fragment, edit)
    with pytest.raises(AdapterError, match=rf"adapter 'alpha' \(.*{WEIGHTS}\): {key} holds 1 NaN or infinite"):
        load_adapter(directory)


def _truncate(directory):
    data = (directory / WEIGHTS).read_bytes()
    (directory / WEIGHTS).write_bytes(data[: len(data) // 2])


def _empty(directory):
    (directory / WEIGHTS).write_bytes(b"")


def _garbage(directory):
    (directory / WEIGHTS).write_bytes(b"this is not a safetensors file at all" * 10)


def _config_list(directory):
    (directory / CONFIG).write_text("[1, 2, 3]")


def _config_invalid(directory):
    (directory / CONFIG).write_text("{not json")


def _rank_zero(directory):
    tensors = load_file(str(directory / WEIGHTS))
    save_file(
        {k: (v[:0] if ".lora_A" in k else v[:, :0]).contiguous() for k, v in tensors.items()}, str(directory / WEIGHTS)
    )


def _one_dimensional(directory):
    tensors = load_file(str(directory / WEIGHTS))
    key = sorted(tensors)[0]
    tensors[key] = tensors[key].flatten().contiguous()
    save_file(tensors, str(directory / WEIGHTS))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_truncate, rf"{WEIGHTS} is not a readable safetensors file .*truncated, empty"),
        (_empty, rf"{WEIGHTS} is not a readable safetensors file"),
        (_garbage, rf"{WEIGHTS} is not a readable safetensors file"),
        (_config_list, rf"{CONFIG} holds a JSON list, not an object"),
        (_config_invalid, rf"{CONFIG} is not valid JSON"),
        (_rank_zero, r"is a \((0, \d+|\d+, 0)\) torch.float32 tensor; LoRA factors are non-empty 2-D"),
        (_one_dimensional, r"is a \(\d+,\) torch.float32 tensor"),
    ],
)
def test_damaged_files_are_clear_errors_naming_adapter_and_file(tiny_world, tmp_path, damage, message):
    directory = _copy(tiny_world, tmp_path)
    damage(directory)
    with pytest.raises(AdapterError, match=rf"adapter 'alpha'.*{message}") as caught:
        load_adapter(directory)
    assert str(directory) in str(caught.value)


def test_skip_keeps_the_good_adapters_and_records_why_the_others_were_refused(tiny_world, tmp_path):
    for name in ("alpha", "beta", "gamma"):
        _copy(tiny_world, tmp_path, name)
    _garbage(tmp_path / "pool" / "alpha")
    _edit_tensor(tmp_path / "pool" / "gamma", "layers.2.self_attn.v_proj.lora_B", _poison)
    with pytest.raises(AdapterError, match="adapter 'alpha'"):
        AdapterPool.load([str(tmp_path / "pool")], tiny_world.model)
    pool = AdapterPool.load([str(tmp_path / "pool"), str(tmp_path / "missing")], tiny_world.model, on_error="skip")
    assert pool.names == ("beta",)
    reasons = dict(pool.refused)
    assert set(reasons) == {str(tmp_path / "pool" / n) for n in ("alpha", "gamma")} | {str(tmp_path / "missing")}
    assert "not a readable safetensors file" in reasons[str(tmp_path / "pool" / "alpha")]
    assert "NaN or infinite" in reasons[str(tmp_path / "pool" / "gamma")]
    assert "does not exist" in reasons[str(tmp_path / "missing")]


def test_skip_with_no_good_adapter_is_an_error_listing_every_refusal(tiny_world, tmp_path):
    _garbage(_copy(tiny_world, tmp_path, "alpha"))
    with pytest.raises(AdapterError, match=r"no usable adapter .*alpha.*not a readable safetensors file"):
        AdapterPool.load([str(tmp_path / "pool")], tiny_world.model, on_error="skip")


def test_on_error_must_be_raise_or_skip(tiny_world):
    with pytest.raises(ValueError, match=r"on_error='ignore': choose one of \('raise', 'skip'\)"):
        AdapterPool.load([str(tiny_world.pool_dir)], tiny_world.model, on_error="ignore")


def test_absurdly_scaled_factors_are_refused_and_loud_ones_warned(tiny_world, tmp_path, caplog):
    directory = _copy(tiny_world, tmp_path, "epsilon")  # the quietest tiny adapter: delta 0.66x its base weight
    with caplog.at_level(logging.WARNING, logger="logo.adapters"):
        validate = AdapterPool([load_adapter(directory)], tiny_world.model)
    assert validate.names == ("epsilon",) and not caplog.records
    _edit_tensor(directory, "layers.1.self_attn.q_proj.lora_B", lambda t: t * 4)
    with caplog.at_level(logging.WARNING, logger="logo.adapters"):
        AdapterPool([load_adapter(directory)], tiny_world.model)
    assert "adapter 'epsilon', module 'model.layers.1.self_attn.q_proj': its delta is" in caplog.text
    _edit_tensor(directory, "layers.1.self_attn.q_proj.lora_B", lambda t: torch.full_like(t, 65504.0))
    with pytest.raises(AdapterError, match=rf"delta is .* times the base weight .*refused above {DELTA_MAX_RATIO:g}"):
        AdapterPool([load_adapter(directory)], tiny_world.model)


def test_a_pool_that_will_not_fit_in_memory_is_refused_before_allocating(tiny_world, tmp_path, monkeypatch):
    save_random_adapter(tiny_world.model, tmp_path / "pool" / "wide", 512, 8, ["q_proj"], False, 0.01, seed=5)
    _copy(tiny_world, tmp_path, "alpha")
    adapters = [load_adapter(tmp_path / "pool" / n) for n in ("alpha", "wide")]
    need = stacked_bytes(adapters, tiny_world.model, torch.float32)
    own = sum(a.numel() + b.numel() for a, b in adapters[1].factors.values()) * 4
    assert own < need < own + 2 * stacked_bytes(adapters[:1], tiny_world.model, torch.float32)  # no padding of alpha
    monkeypatch.setattr(pool_module, "available_bytes", lambda device: need // 2)
    with pytest.raises(AdapterError, match=r"needs 0\.\d\d GiB on cpu .*'wide', has rank 512\), but only 0\.\d\d GiB"):
        AdapterPool.load([str(tmp_path / "pool")], tiny_world.model)
    pool = AdapterPool.load([str(tmp_path / "pool")], tiny_world.model, on_error="skip")
    assert pool.names == ("alpha",)
    assert pool.refused[0][0] == str(tmp_path / "pool" / "wide") and "rank 512" in pool.refused[0][1]


MIXTURES = [{"beta": 1.0}, {"gamma": 0.5, "delta": 0.3, "epsilon": 0.2}, {"epsilon": 0.6, "beta": 0.4}]


def test_padded_rows_equal_each_row_alone(engine):
    pool = engine.pool
    index = torch.tensor([[pool.index("beta"), pool.pad_index, pool.pad_index], [2, 3, 1]])
    coef = torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.3, 0.2]])
    alone = pool.mixture_factors(index[:1, :1], coef[:1, :1])
    batch = pool.mixture_factors(index, coef)
    for module, (a_t, b_t) in batch.items():
        r = alone[module][0].shape[-1]
        assert torch.equal(a_t[0, :, :r], alone[module][0][0]) and torch.equal(b_t[0, :r], alone[module][1][0])
        assert torch.count_nonzero(a_t[0, :, r:]) == 0 and torch.count_nonzero(b_t[0, r:]) == 0
    logits = engine.logits([PROMPT] * 3, MIXTURES)
    for row, mixture in enumerate(MIXTURES):
        torch.testing.assert_close(logits[row], engine.logits([PROMPT], [mixture])[0], rtol=0, atol=1e-6)


def test_padding_reads_no_adapters_factors(engine):
    """The engine pads narrow rows with index 0 and weight 0: with NaN in adapter 0, 0 x NaN poisoned the row."""
    first = engine.pool.names[0]
    for stack in engine.pool.modules.values():
        for group in stack.groups:  # adapter 0's own factors, in whichever rank group holds it
            row = int(group.local[0])
            if row >= 0:
                group.a[row].fill_(float("nan"))
                group.b[row].fill_(float("inf"))
    assert first not in MIXTURES[0] and first not in MIXTURES[1]
    logits = engine.logits([PROMPT] * 2, MIXTURES[:2])
    assert torch.isfinite(logits).all()
