"""Shared fixtures: the tiny offline world and engines built on it."""

from __future__ import annotations

import pytest
import torch

from logo.config import EngineConfig
from logo.engine import LoGoEngine
from tests.tiny import build_tiny_world


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory):
    return build_tiny_world(tmp_path_factory.mktemp("tiny"))


@pytest.fixture
def make_engine(tiny_world, tmp_path):
    """A factory of engines on the tiny model (fresh model copy each), caching under this test's tmp dir."""

    def make(adapters=None, dtype="float32", **config):
        cfg = EngineConfig(
            base_model="tiny",
            adapters=tuple(adapters) if adapters is not None else (str(tiny_world.pool_dir),),
            device="cpu",
            dtype=dtype,
            cache_dir=tmp_path / "cache",
            reference_prompts=tiny_world.reference_file,
            **config,
        )
        base = tiny_world.base()
        base.model.to(getattr(torch, dtype))
        return LoGoEngine(cfg, base=base)

    return make


@pytest.fixture
def engine(make_engine):
    return make_engine()
