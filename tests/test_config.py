"""The config dataclasses: one place for every default and help text, and a clear error for every bad value."""

from __future__ import annotations

import math

import pytest
import torch

from logo.base_model import cpu_has_native_bf16, resolve_dtype
from logo.config import (
    EngineConfig,
    GenerationConfig,
    ProbeConfig,
    RoutingConfig,
    as_int,
    check_text,
    field_default,
    field_help,
)


def test_field_default_and_help_read_the_dataclass():
    assert field_default(RoutingConfig, "k") == RoutingConfig().k == 3
    assert field_default(ProbeConfig, "module") == ProbeConfig().module
    assert field_default(EngineConfig, "cache_dir") == EngineConfig().cache_dir  # a default_factory is called
    assert field_default(EngineConfig, "adapters") == ()  # the engine knows nothing of any repository's zoo
    assert "top-k" in field_help(RoutingConfig, "k")
    with pytest.raises(ValueError, match="RoutingConfig has no field 'kk'"):
        field_default(RoutingConfig, "kk")


def test_every_field_has_help_text():
    from dataclasses import fields

    for config in (ProbeConfig, RoutingConfig, GenerationConfig, EngineConfig):
        for spec in fields(config):
            assert spec.name == "probe" or field_help(config, spec.name), f"{config.__name__}.{spec.name}"


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: GenerationConfig(temperature=math.nan), "temperature must be a finite number, got nan"),
        (lambda: GenerationConfig(temperature=math.inf), "temperature must be a finite number, got inf"),
        (lambda: GenerationConfig(temperature="0.5"), r"temperature must be a number, got '0.5' \(a str\)"),
        (lambda: GenerationConfig(temperature=True), "temperature must be a number, got True"),
        (lambda: GenerationConfig(top_p=math.nan), "top_p must be a finite number, got nan"),
        (lambda: GenerationConfig(top_p=-math.inf), "top_p must be a finite number, got -inf"),
        (lambda: GenerationConfig(top_p=0), r"top_p must be in \(0, 1\]"),
        (lambda: GenerationConfig(top_k=-1), "top_k must be an integer >= 0"),
        (lambda: GenerationConfig(top_k=1.5), "top_k .* not a whole number"),
        (lambda: GenerationConfig(max_new_tokens=2.5), "max_new_tokens must be a positive integer, got 2.5"),
        (lambda: GenerationConfig(max_new_tokens=math.inf), "max_new_tokens .* not a whole number"),
        (lambda: GenerationConfig(seed=-1), "seed must be an integer in"),
        (lambda: GenerationConfig(seed=2**64), "seed must be an integer in"),
        (lambda: GenerationConfig(seed=0.5), "seed .* not a whole number"),
        (lambda: GenerationConfig(ignore_eos="yes"), "ignore_eos must be True or False"),
        (lambda: GenerationConfig(cuda_graph=1), "cuda_graph must be True or False"),
        (lambda: RoutingConfig(k=2.7), "k must be a positive integer .*got 2.7: it is not a whole number"),
        (lambda: RoutingConfig(k=True), r"k must be a positive integer .*got True \(a bool\)"),
        (lambda: RoutingConfig(k="3"), r"k must be a positive integer .*\(a str\)"),
        (lambda: RoutingConfig(k=math.nan), "k must be a positive integer .* not a whole number"),
        (lambda: RoutingConfig(probe="last"), "probe must be a ProbeConfig"),
        (lambda: ProbeConfig(block=1.5), "probe block must be an integer"),
        (lambda: ProbeConfig(module=None), "is not a dotted module path"),
        (lambda: EngineConfig(device="tpu"), "unknown device 'tpu': use 'cpu', 'cuda' or 'mps'"),
        (lambda: EngineConfig(device="cuda:x"), "unknown device 'cuda:x'"),
        (lambda: EngineConfig(device="CPU"), "unknown device 'CPU'"),
        (lambda: EngineConfig(device=0), "unknown device 0"),
        (lambda: EngineConfig(max_prompt_tokens=0), "max_prompt_tokens must be a positive integer"),
        (lambda: EngineConfig(max_new_tokens_cap=10.5), "max_new_tokens_cap .* not a whole number"),
        (lambda: EngineConfig(adapters=("pool\udcff",)), "an adapter path holds '\\\\udcff' at character 4"),
    ],
)
def test_bad_values_raise_clear_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("device", [None, "cpu", "cuda", "cuda:0", "cuda:12", "mps", "cpu:0"])
def test_known_devices_are_accepted(device):
    assert EngineConfig(device=device).device == device


def test_integral_floats_become_ints_and_ints_become_floats():
    """A slider or a JSON client sends 3.0 for 3: accepted as exactly 3; temperature=1 is 1.0."""
    config = RoutingConfig(k=3.0).with_(block=-2.0)
    assert config.k == 3 and type(config.k) is int
    assert config.probe.block == -2 and type(config.probe.block) is int
    generation = GenerationConfig(temperature=1, max_new_tokens=8.0, seed=7.0)
    assert type(generation.temperature) is float and generation.max_new_tokens == 8 and generation.seed == 7
    assert RoutingConfig(k=3.0) == RoutingConfig(k=3)


def test_as_int_names_the_value_and_what_is_wanted():
    assert as_int("n", 4.0, 1) == 4
    with pytest.raises(ValueError, match="n must be an integer >= 1, got 0"):
        as_int("n", 0, 1)
    with pytest.raises(ValueError, match=r"n must be an integer, got 2\.7: it is not a whole number"):
        as_int("n", 2.7)


def test_check_text_refuses_lone_surrogates_and_non_strings():
    assert check_text("héllo ✓", "the prompt") == "héllo ✓"
    with pytest.raises(ValueError, match=r"the prompt holds '\\udcff' at character 2, a lone surrogate"):
        check_text("ab\udcffcd", "the prompt")
    with pytest.raises(ValueError, match="the prompt is a bytes, not text"):
        check_text(b"abc", "the prompt")


def test_auto_dtype_is_bf16_where_the_cpu_multiplies_bf16_natively(tmp_path):
    plain, native = tmp_path / "cpuinfo_plain", tmp_path / "cpuinfo_bf16"
    plain.write_text("processor : 0\nflags : fpu sse2 avx2 avx512f avx512_vnni\n")
    native.write_text("processor : 0\nflags : fpu sse2 avx2 avx512f avx512_bf16\n")
    assert not cpu_has_native_bf16(plain) and cpu_has_native_bf16(native)
    assert not cpu_has_native_bf16(tmp_path / "missing")  # no /proc/cpuinfo (macOS, Windows): float32
    here = torch.bfloat16 if cpu_has_native_bf16() else torch.float32
    assert resolve_dtype("auto", torch.device("cpu")) == here
    assert resolve_dtype("auto", torch.device("cuda")) == torch.bfloat16
    assert resolve_dtype("float32", torch.device("cpu")) == torch.float32
