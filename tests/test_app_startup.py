"""app.py starts with the good adapters of a damaged pool and says which were refused and why."""

from __future__ import annotations

import importlib.util
import logging
import shutil
from pathlib import Path

import pytest

from logo.config import EngineConfig

REPO = Path(__file__).resolve().parents[1]


def _load_app_py():
    spec = importlib.util.spec_from_file_location("logo_studio_app_startup", REPO / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _config(world, pool_dir, tmp_path) -> EngineConfig:
    return EngineConfig(
        base_model="tiny",
        adapters=(str(pool_dir),),
        device="cpu",
        dtype="float32",
        cache_dir=tmp_path / "cache",
        reference_prompts=world.reference_file,
    )


def test_app_starts_with_the_good_adapters_and_logs_the_refused(tiny_world, tmp_path, caplog):
    pool_dir = tmp_path / "pool"
    for name in ("alpha", "beta", "epsilon"):
        shutil.copytree(tiny_world.pool_dir / name, pool_dir / name)
    (pool_dir / "beta" / "adapter_model.safetensors").write_bytes(b"")  # used to kill start-up: SafetensorError
    (pool_dir / "epsilon" / "adapter_config.json").write_text("[]")  # used to kill start-up: AttributeError
    with caplog.at_level(logging.WARNING, logger="logo_studio"):
        engine = _load_app_py().build_engine(_config(tiny_world, pool_dir, tmp_path), base=tiny_world.base())
    assert engine.adapter_names == ("alpha",)
    refused = dict(engine.pool.refused)
    assert "not a readable safetensors file" in refused[str(pool_dir / "beta")]
    assert "holds a JSON list" in refused[str(pool_dir / "epsilon")]
    assert f"starts without the adapter {pool_dir / 'beta'}" in caplog.text and "2 refused" in caplog.text
    assert engine.generate("what is the capital of france ?").text is not None


def test_app_with_only_bad_adapters_exits_naming_each(tiny_world, tmp_path):
    pool_dir = tmp_path / "pool"
    shutil.copytree(tiny_world.pool_dir / "alpha", pool_dir / "alpha")
    (pool_dir / "alpha" / "adapter_model.safetensors").write_bytes(b"garbage" * 20)
    with pytest.raises(SystemExit, match=r"no usable adapter .*alpha.*not a readable safetensors file.*make zoo"):
        _load_app_py().build_engine(_config(tiny_world, pool_dir, tmp_path), base=tiny_world.base())
