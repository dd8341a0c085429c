"""RoutingConfig.loudness_limit: adapters loud on every input are left out of selection (recommended), not by paper."""

from __future__ import annotations

import shutil
from dataclasses import replace

import pytest

from analysis.adapter_files import read_adapter, write_adapter
from analysis.hostile import scaled
from app.ui_data import StudioData
from app.ui_handlers import Controls, Studio, route_view
from app.ui_overrides import Override
from logo.calibration import CalibrationStats, read_reference_prompts
from logo.config import RoutingConfig
from tests.test_ui import HashEmbedder
from tests.tiny import save_random_adapter

PROMPTS = ["the cat is red", "sort the words cat dog bird", "what is the capital of france ?", "count one two"]


def _engine_with_extra(make_engine, tiny_world, tmp_path, factor: float):
    """The tiny pool plus 'extra': a random adapter of ordinary size with its B multiplied by `factor`."""
    quiet = save_random_adapter(tiny_world.model, tmp_path / "quiet", 4, 8, ["q_proj", "v_proj"], False, 1.0, 7)
    pool = tmp_path / f"pool_x{factor:g}"
    shutil.copytree(tiny_world.pool_dir, pool)
    write_adapter(pool / "extra", scaled(read_adapter(quiet), factor), {"name": "extra"})
    return make_engine([str(pool)])


def test_b_times_ten_is_left_out_by_recommended_and_wins_paper(make_engine, tiny_world, tmp_path):
    engine = _engine_with_extra(make_engine, tiny_world, tmp_path, 10.0)
    prompts = PROMPTS + read_reference_prompts(tiny_world.reference_file)
    recommended = engine.route(prompts, RoutingConfig())
    assert all("extra" not in r.selected for r in recommended)
    assert recommended[0].config["too_loud"] == ["extra"] and recommended[0].config["loudness_limit"] == 3.0
    paper = engine.route(prompts, RoutingConfig.preset("paper"))
    assert all(r.selected[0] == "extra" for r in paper)  # the raw norm: loud on every input, first on every input
    assert paper[0].config["too_loud"] == []
    unlimited = engine.route(prompts, RoutingConfig(loudness_limit=None))
    assert unlimited[0].config["too_loud"] == [] and any("extra" in r.selected for r in unlimited)
    assert [r.scores for r in unlimited] == [r.scores for r in recommended]  # scored alike, only not selectable


def test_the_same_adapter_unscaled_is_not_too_loud(make_engine, tiny_world, tmp_path):
    engine = _engine_with_extra(make_engine, tiny_world, tmp_path, 1.0)
    routings = engine.route(PROMPTS + read_reference_prompts(tiny_world.reference_file), RoutingConfig())
    assert routings[0].config["too_loud"] == [] and any("extra" in r.selected for r in routings)


def test_k_above_the_selectable_pool_names_the_loud_ones_and_the_fix(make_engine, tiny_world, tmp_path):
    engine = _engine_with_extra(make_engine, tiny_world, tmp_path, 10.0)  # 6 adapters, 1 too loud
    with pytest.raises(
        ValueError,
        match=r"k=6 is larger than the pool of 5 selectable adapters, 1 left out as too "
        r"loud \(extra\): choose k <= 5 or loudness_limit=None",
    ):
        engine.route(PROMPTS[0], RoutingConfig(k=6))
    assert len(engine.route(PROMPTS[0], RoutingConfig(k=6, loudness_limit=None))[0].selected) == 6


def test_the_studio_pins_a_too_loud_adapter_and_says_which_are_left_out(make_engine, tiny_world, tmp_path):
    engine = _engine_with_extra(make_engine, tiny_world, tmp_path, 10.0)
    data = StudioData.load(tmp_path, [(a.name, a.source) for a in engine.pool.adapters])
    studio = Studio(engine, data, HashEmbedder())
    free = route_view(studio, PROMPTS[1], Controls(k=2))
    assert "extra" not in free.routing.selected
    assert any("left out as too loud" in note and "extra" in note for note in free.notes)
    pinned = route_view(studio, PROMPTS[1], Controls(k=2), Override(pin=("extra",))).routing
    assert "extra" in pinned.selected
    assert len(pinned.selected) == 2 and sum(pinned.weights) == pytest.approx(1.0)
    off = route_view(studio, PROMPTS[1], replace(Controls(k=2), loudness_limit=0))  # the page's 0: off
    assert off.routing.config["loudness_limit"] is None and not any("too loud" in n for n in off.notes)


def _stats(norms: list[float]) -> CalibrationStats:
    names = tuple(f"a{i}" for i in range(len(norms)))
    ones = [1.0] * len(norms)
    return CalibrationStats(
        "key", names, mean={"norm": norms, "entropy": ones}, std={"norm": ones, "entropy": ones}, n_prompts=8
    )


def test_too_loud_is_relative_to_the_pools_upper_quartile():
    stats = _stats([1.0, 2.0, 3.0, 4.0, 40.0])  # upper quartile: the 4th of 5 sorted, 4.0
    assert stats.too_loud(3.0) == ("a4",)  # 40 > 3 x 4
    assert stats.too_loud(9.9) == ("a4",) and stats.too_loud(10.0) == () and stats.too_loud(1.2) == ("a4",)
    assert stats.too_loud(0.9) == ("a3", "a4")
    assert _stats([5.0]).too_loud(3.0) == ()  # a pool of one is never too loud for itself


def test_a_pool_mostly_quiet_does_not_make_ordinary_adapters_loud():
    # 10 random-like adapters that barely respond to real inputs beside 8 trained ones and one B x 10
    stats = _stats([0.1] * 10 + [1.0, 1.2, 1.4, 1.6, 1.8, 2.0, 2.2, 2.4] + [12.0])
    assert stats.too_loud(3.0) == ("a18",)  # 3x the median (0.1) would have left out every trained adapter too


@pytest.mark.parametrize("bad", [1.0, 0.5, float("nan"), "loud"])
def test_a_limit_that_would_leave_out_the_median_is_an_error(bad):
    with pytest.raises((ValueError, TypeError), match="loudness_limit"):
        RoutingConfig(loudness_limit=bad)


def test_the_cli_turns_the_limit_off_with_none():
    from logo.cli import parse_args, routing_config

    base = ["route", "hello", "--adapters", "pool"]
    assert routing_config(parse_args(base)).loudness_limit == 3.0
    assert routing_config(parse_args([*base, "--loudness-limit", "none"])).loudness_limit is None
    assert routing_config(parse_args([*base, "--loudness-limit", "5"])).loudness_limit == 5.0
    assert routing_config(parse_args([*base, "--preset", "paper"])).loudness_limit is None
