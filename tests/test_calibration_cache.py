"""The calibration cache survives damage: wrong entries are recomputed and repaired, a read-only cache is no error."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import asdict

import pytest
import torch

from logo.calibration import CalibrationStats, load_cached, save_cached
from logo.config import SIGNALS, EngineConfig, RoutingConfig
from logo.engine import LoGoEngine

NAMES = ("alpha", "beta", "gamma")


def _stats(key="k1", names=NAMES) -> CalibrationStats:
    generator = torch.Generator().manual_seed(0)
    signals = {s: torch.rand(5, len(names), generator=generator) + 0.5 for s in SIGNALS}
    return CalibrationStats.from_signals(key, names, signals)


def _short(d):
    d["mean"]["norm"] = d["mean"]["norm"][:-1]
    return d


def _nan(d):
    d["mean"]["entropy"][1] = float("nan")
    return d


def _zero_std(d):
    d["std"]["norm"][0] = 0.0
    return d


def _other_adapters(d):
    d["adapters"] = ["alpha", "beta", "omega"]
    return d


def _other_key(d):
    d["key"] = "k2"
    return d


def _missing_signal(d):
    del d["std"]["entropy"]
    return d


def _list(d):
    return [d]


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (_short, r"mean\['norm'\] has 2 values for 3 adapters"),
        (_nan, r"mean\['entropy'\] holds non-finite values"),
        (_zero_std, r"std\['norm'\] holds values <= 0"),
        (_other_adapters, r"statistics of adapters \['alpha', 'beta', 'omega'\], not of the pool"),
        (_other_key, r"its key is 'k2', not 'k1'"),
        (_missing_signal, r"std covers signals \['norm'\]"),
        (_list, r"unreadable"),
    ],
)
def test_wrong_entries_are_not_trusted(tmp_path, caplog, damage, reason):
    save_cached(tmp_path, _stats())
    assert load_cached(tmp_path, "k1", NAMES) == _stats()
    path = tmp_path / "calibration" / "k1.json"
    path.write_text(json.dumps(damage(json.loads(path.read_text()))))
    with caplog.at_level(logging.WARNING, logger="logo.calibration"):
        assert load_cached(tmp_path, "k1", NAMES) is None
    assert re.search(reason, caplog.text), caplog.text


def test_engine_recomputes_and_repairs_a_wrong_entry(engine):
    stats = engine.calibration_stats()
    path = engine.config.cache_dir / "calibration" / f"{stats.key}.json"
    data = json.loads(path.read_text())
    data["std"]["norm"] = [0.0] * len(data["std"]["norm"])  # every calibrated z-score request used to divide by 0
    path.write_text(json.dumps(data))
    fresh = LoGoEngine(engine.config, base=engine.base)  # a fresh process: only the file is left
    routing = fresh.route("what is the capital of france ?", RoutingConfig(k=2, calibration="zscore"))[0]
    assert all(abs(s) < 1e6 for s in routing.scores)
    assert json.loads(path.read_text()) == json.loads(json.dumps(asdict(stats)))  # the file is repaired


def test_engine_does_not_trust_a_consistent_entry_of_other_adapters(engine):
    """A self-consistent entry of fewer or other adapters than the pool (found by bench.bad_inputs)."""
    stats = engine.calibration_stats()
    path = engine.config.cache_dir / "calibration" / f"{stats.key}.json"
    data = json.loads(path.read_text())
    data["adapters"] = data["adapters"][:-1]
    data["mean"] = {s: v[:-1] for s, v in data["mean"].items()}
    data["std"] = {s: v[:-1] for s, v in data["std"].items()}
    path.write_text(json.dumps(data))
    fresh = LoGoEngine(engine.config, base=engine.base)
    assert fresh.calibration_stats() == stats
    assert json.loads(path.read_text()) == json.loads(json.dumps(asdict(stats)))


def test_a_read_only_cache_keeps_statistics_in_memory_and_says_so_once(tiny_world, tmp_path, caplog):
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the cache directory should be: no one, not even root, can write under it")
    assert save_cached(blocked, _stats()) is False
    config = EngineConfig(
        base_model="tiny",
        adapters=(str(tiny_world.pool_dir),),
        device="cpu",
        dtype="float32",
        cache_dir=blocked,
        reference_prompts=tiny_world.reference_file,
    )
    engine = LoGoEngine(config, base=tiny_world.base())
    calls = []
    original = engine.raw_signals
    engine.raw_signals = lambda *args, **kwargs: calls.append(1) or original(*args, **kwargs)
    with caplog.at_level(logging.WARNING, logger="logo.calibration"):
        for _ in range(3):
            engine.route("what is the capital of france ?", RoutingConfig(k=2, calibration="mean"))
    assert len(calls) == 3 + 1  # three probes, one calibration: later requests reuse the statistics in memory
    warnings = [r for r in caplog.records if "cannot be written" in r.getMessage()]
    assert len(warnings) == 1 and "LOGO_CACHE" in warnings[0].getMessage()
