"""Routing presets and weighting options: each option changes the selection or the weights as specified."""

from __future__ import annotations

import math

import pytest
import torch

from logo.cli import parse_args, routing_config
from logo.config import POOL_REFERENCE_PROMPTS, EngineConfig, ProbeConfig, RoutingConfig
from logo.engine import LoGoEngine
from logo.signals import select_top_k

SCORES = torch.tensor([[3.0, 2.5, 1.0, 0.0], [1.0, -1.0, -2.0, 0.5]])  # (B=2, N=4)


def softmax(values: list[float], temperature: float) -> list[float]:
    exps = [math.exp(v / temperature) for v in values]
    return [e / sum(exps) for e in exps]


@pytest.mark.parametrize(
    ("k", "options", "index", "weights"),
    [
        # linear (the paper): w = c / sum c over the top-k, negative scores clipped at 0
        (3, {}, [[0, 1, 2], [0, 3, 1]], [[3 / 6.5, 2.5 / 6.5, 1 / 6.5], [1 / 1.5, 0.5 / 1.5, 0.0]]),
        (1, {}, [[0], [0]], [[1.0], [1.0]]),
        # softmax over the selected scores / T
        (3, {"weighting": "softmax", "temperature": 1.0}, [[0, 1, 2], [0, 3, 1]],
         [softmax([3, 2.5, 1], 1.0), softmax([1, 0.5, -1], 1.0)]),
        (3, {"weighting": "softmax", "temperature": 0.1}, [[0, 1, 2], [0, 3, 1]],
         [softmax([3, 2.5, 1], 0.1), softmax([1, 0.5, -1], 0.1)]),
        # adaptive k by margin: keep scores >= best - margin (the best always), at most k
        (3, {"score_margin": 1.0}, [[0, 1, -1], [0, 3, -1]], [[3 / 5.5, 2.5 / 5.5, 0.0], [1 / 1.5, 0.5 / 1.5, 0.0]]),
        (3, {"score_margin": 0.1}, [[0, -1, -1], [0, -1, -1]], [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]),
        (2, {"score_margin": 10.0}, [[0, 1], [0, 3]], [[3 / 5.5, 2.5 / 5.5], [1.0 / 1.5, 0.5 / 1.5]]),
        # adaptive k by ratio: keep scores >= ratio * best
        (3, {"min_score_ratio": 0.5}, [[0, 1, -1], [0, 3, -1]], [[3 / 5.5, 2.5 / 5.5, 0.0], [1 / 1.5, 0.5 / 1.5, 0.0]]),
        (3, {"min_score_ratio": 0.9}, [[0, -1, -1], [0, -1, -1]], [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]),
        # both rules: a slot must pass each
        (3, {"score_margin": 2.5, "min_score_ratio": 0.3}, [[0, 1, 2], [0, 3, -1]],
         [[3 / 6.5, 2.5 / 6.5, 1 / 6.5], [1 / 1.5, 0.5 / 1.5, 0.0]]),
        # softmax over the adaptive selection only
        (3, {"weighting": "softmax", "temperature": 1.0, "score_margin": 1.0}, [[0, 1, -1], [0, 3, -1]],
         [[*softmax([3, 2.5], 1.0), 0.0], [*softmax([1, 0.5], 1.0), 0.0]]),
    ],
)  # fmt: skip
def test_weighting_options(k, options, index, weights):
    got_index, got_weights = select_top_k(SCORES, k, **options)
    assert got_index.tolist() == index
    torch.testing.assert_close(got_weights, torch.tensor(weights), rtol=0, atol=1e-6)
    torch.testing.assert_close(got_weights.sum(dim=1), torch.ones(2), rtol=0, atol=1e-6)


def test_lower_temperature_sharpens_the_weights():
    tops = [select_top_k(SCORES, 3, weighting="softmax", temperature=t)[1][0, 0].item() for t in (3.0, 1.0, 0.3, 0.1)]
    assert tops == sorted(tops) and tops[-1] > 0.99


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("weighting", "max", "unknown weighting 'max': choose one of linear, softmax"),
        ("temperature", 0.0, "temperature must be > 0"),
        ("temperature", float("nan"), "temperature must be a finite number"),
        ("score_margin", -1.0, "score_margin must be >= 0 or None"),
        ("score_margin", "1", "score_margin must be a number"),
        ("min_score_ratio", 1.5, r"min_score_ratio must be in \[0, 1\] or None"),
    ],
)
def test_bad_weighting_fields_are_refused(field, value, match):
    with pytest.raises(ValueError, match=match):
        RoutingConfig(**{field: value})


def test_paper_preset_is_the_paper_exactly():
    paper = RoutingConfig.preset("paper")
    assert paper == RoutingConfig(
        signal="norm",
        calibration="none",
        k=3,
        weighting="linear",
        temperature=1.0,
        probe=ProbeConfig(block=-1, module="self_attn.q_proj", probe_input="module", aggregate="last"),
        loudness_limit=None,
    )
    assert paper.score_margin is None and paper.min_score_ratio is None and not paper.uses_reference


def test_recommended_preset_is_the_default_and_fields_override_presets():
    assert RoutingConfig.preset("recommended") == RoutingConfig()
    assert RoutingConfig().calibration == "zscore" and RoutingConfig().probe.block == -2
    assert (RoutingConfig().weighting, RoutingConfig().temperature, RoutingConfig().k) == ("softmax", 0.3, 3)
    assert RoutingConfig.preset("paper", k=1, block=-2) == RoutingConfig.preset("paper").with_(k=1, block=-2)
    with pytest.raises(ValueError, match="unknown routing preset 'fast': choose one of paper, recommended"):
        RoutingConfig.preset("fast")


def test_paper_preset_routes_as_the_raw_norm_config(engine):
    prompts = ["what is the capital of france ?", "sort the words cat dog bird", "count one two three"]
    explicit = RoutingConfig(signal="norm", calibration="none", k=3, weighting="linear", probe=ProbeConfig(block=-1))
    for preset, plain in zip(
        engine.route(prompts, RoutingConfig.preset("paper")), engine.route(prompts, explicit), strict=True
    ):
        assert (preset.selected, preset.weights, preset.scores) == (plain.selected, plain.weights, plain.scores)
        assert preset.config["reference"] is None  # raw signals: no reference set calibrated them


def test_engine_default_is_recommended_with_k_capped_at_the_pool(make_engine, tiny_world):
    engine = make_engine(adapters=[str(tiny_world.pool_dir / "alpha"), str(tiny_world.pool_dir / "beta")])
    assert engine.default_routing == RoutingConfig(k=2)
    routing = engine.route("count one two three")[0]
    assert routing.config["calibration"] == "zscore" and len(routing.selected) == 2


@pytest.mark.parametrize(
    ("options", "most"),
    [({"k": 4}, 4), ({"k": 4, "score_margin": 0.0}, 1), ({"k": 4, "min_score_ratio": 1.0}, 1)],
)
def test_adaptive_k_in_the_engine_drops_adapters_from_the_routing(engine, options, most):
    config = RoutingConfig.preset("paper", **options)
    for routing in engine.route(["what is the capital of france ?", "count one two three"], config):
        assert 1 <= len(routing.selected) == len(routing.weights) <= most
        assert sum(routing.weights) == pytest.approx(1.0)
        assert routing.config["score_margin"] == options.get("score_margin")


def test_every_routing_records_its_reference_set(make_engine, tiny_world, tmp_path):
    engine = make_engine()
    routing = engine.route("count one two three", RoutingConfig(calibration="zscore"))[0]
    reference = routing.config["reference"]
    assert reference["source"] == "file" and reference["path"] == str(tiny_world.reference_file)
    assert reference["n_prompts"] == 6 and len(reference["sha256"]) == 16
    given = engine.route("count one two three", reference=["one two", "three four"])[0].config["reference"]
    assert given["source"] == "given" and given["n_prompts"] == 2 and given["sha256"] != reference["sha256"]


def test_a_pool_directory_with_its_own_reference_prompts_is_preferred(tiny_world, tmp_path):
    pool = tmp_path / "pool"
    pool.mkdir()
    for name in ("alpha", "beta", "gamma"):
        (pool / name).symlink_to(tiny_world.pool_dir / name)

    def unset_reference() -> LoGoEngine:
        config = EngineConfig(base_model="tiny", adapters=(str(pool),), device="cpu", cache_dir=tmp_path / "cache")
        return LoGoEngine(config, base=tiny_world.base())

    assert unset_reference().route("count one two three")[0].config["reference"]["source"] == "generic"
    (pool / "reference_prompts.txt").write_text("count the apple and pear\nwhat is two + three ?\nsort b a\n")
    own = unset_reference()
    reference = own.route("count one two three")[0].config["reference"]
    assert reference["source"] == "pool" and reference["n_prompts"] == 3


def test_the_zoo_ships_its_own_sample_inputs_where_the_engine_looks_for_them(tiny_world, tmp_path):
    from logo.calibration import read_reference_prompts
    from zoo.data import ADAPTERS_DIR, REFERENCE_PROMPTS, load_tasks

    assert REFERENCE_PROMPTS == ADAPTERS_DIR / POOL_REFERENCE_PROMPTS  # logo route --adapters assets/adapters finds it
    samples = [
        " ".join(task.prompt(row["input"]).split("\n"))
        for task in load_tasks()
        if not task.held_out
        for row in task.examples("dev", 4)
    ]
    assert read_reference_prompts(REFERENCE_PROMPTS) == samples  # 4 dev inputs per pool task, no test input
    pool = tmp_path / "pool"  # the tiny adapters beside the zoo's file: the engine picks it and records it
    pool.mkdir()
    (pool / "alpha").symlink_to(tiny_world.pool_dir / "alpha")
    (pool / "beta").symlink_to(tiny_world.pool_dir / "beta")
    (pool / POOL_REFERENCE_PROMPTS).symlink_to(REFERENCE_PROMPTS)
    config = EngineConfig(base_model="tiny", adapters=(str(pool),), device="cpu", cache_dir=tmp_path / "cache")
    reference = LoGoEngine(config, base=tiny_world.base()).route("count one two three")[0].config["reference"]
    assert reference["source"] == "pool" and reference["n_prompts"] == len(samples)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], RoutingConfig()),
        (["--preset", "paper"], RoutingConfig.preset("paper")),
        (["--preset", "paper", "--calibration", "zscore", "--probe-block", "-2"],
         RoutingConfig.preset("paper", calibration="zscore", block=-2)),
        (["--weighting", "softmax", "--softmax-temperature", "0.3", "--score-margin", "1"],
         RoutingConfig(weighting="softmax", temperature=0.3, score_margin=1.0)),
        (["--preset", "recommended", "--min-score-ratio", "0.5", "--k", "2"], RoutingConfig(k=2, min_score_ratio=0.5)),
    ],
)  # fmt: skip
def test_cli_preset_with_explicit_fields_overriding_it(argv, expected):
    args = parse_args(["route", "a prompt", "--adapters", "pool", *argv])
    assert routing_config(args) == expected
