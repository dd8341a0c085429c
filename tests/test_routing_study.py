"""Routing v2 study (analysis/routing_study.py and its steps): configs, hand-written prompts, hostile adapters."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from analysis.adapter_files import AdapterFactors, read_adapter, write_adapter
from analysis.adapter_map import adapter_map_figure, project
from analysis.handwritten import category_hits, load_handwritten
from analysis.hostile import constructed, loudest_delta, scaled
from analysis.pool_scaling import KINDS, distractor, own_rates
from analysis.routing_study import PAPER, SignalBank, StudyConfig, bank_stats, bootstrap_ci, scores, top_k
from analysis.supervised_router import fit_router, task_mean
from logo.calibration import read_reference_prompts
from tests.tiny import save_random_adapter
from zoo.data import load_tasks

PROMPTS = ["what is the capital of france ?", "sort the words cat dog bird", "count the apple and pear", "two + three"]


def test_handwritten_prompts_are_many_distinct_and_cover_every_category():
    rows = load_handwritten()
    categories = {t.category for t in load_tasks()}
    assert len(rows) >= 110
    assert len({r["prompt"] for r in rows}) == len(rows)
    assert {r["category"] for r in rows} == categories
    assert sum(r["task"] is not None for r in rows) >= 90


@pytest.mark.parametrize(
    "row, match",
    [
        ({"prompt": "hi", "category": "poetry", "task": None}, "unknown category 'poetry'"),
        ({"prompt": "hi", "category": "code", "task": "en_fr"}, "not a pool task of category 'code'"),
        ({"prompt": " ", "category": "code", "task": None}, "non-empty 'prompt'"),
    ],
)
def test_handwritten_file_errors_name_the_line_and_fix(tmp_path, row, match):
    path = tmp_path / "hand.jsonl"
    path.write_text(json.dumps({"prompt": "ok", "category": "code", "task": None}) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(ValueError, match=f"hand.jsonl:2: .*{match}"):
        load_handwritten(path)


def test_category_hits_compares_the_top1_adapter_category():
    selected = torch.tensor([[0, 1], [1, 0], [2, 0]])
    hits = category_hits(
        selected, ("en_fr", "python_eval", "en_de"), {"en_fr": "t", "python_eval": "c", "en_de": "t"}, ["t", "t", "t"]
    )
    assert hits.tolist() == [True, False, True]


def test_bootstrap_interval_brackets_the_mean():
    hits = torch.tensor([1] * 80 + [0] * 20)
    low, high = bootstrap_ci(hits)
    assert 0.7 < low < 0.8 < high < 0.9


@pytest.mark.parametrize(
    "config",
    [PAPER, StudyConfig("z", "entropy", "zscore", "own", -1), StudyConfig("m", "norm", "mean", "own", -2)],
)
def test_study_scores_select_what_the_engine_routes(engine, tiny_world, config):
    """The offline study (one bank, many configs) picks exactly the adapters engine.route picks."""
    reference = read_reference_prompts(tiny_world.reference_file)
    bank = SignalBank.compute(engine, PROMPTS, [-1, -2])
    stats = bank_stats(SignalBank.compute(engine, reference, [-1, -2]), "own")
    chosen = top_k(scores(bank, stats, config), 2)
    routed = engine.route(PROMPTS, config.routing(k=2), reference=reference)
    assert [[engine.adapter_names[i] for i in row] for row in chosen.tolist()] == [list(r.selected) for r in routed]


def test_bank_columns_follow_the_requested_order(engine):
    bank = SignalBank.compute(engine, PROMPTS, [-1])
    names = tuple(reversed(engine.adapter_names))
    sub = bank.columns(names)
    assert torch.equal(sub.at(-1, "norm"), bank.at(-1, "norm").flip(1))
    with pytest.raises(KeyError, match="block 0 was not probed"):
        bank.at(0, "norm")


# ---------------------------------------------------------------- hostile adapters


def _tiny_pool_with(tiny_world, tmp_path, extra: dict[str, AdapterFactors]) -> Path:
    """A copy of the tiny pool plus the given adapters, as one pool directory."""
    pool = tmp_path / "pool"
    shutil.copytree(tiny_world.pool_dir, pool)
    for name, adapter in extra.items():
        write_adapter(pool / name, adapter, {"name": name})
    return pool


def test_b_times_ten_wins_the_raw_norm_and_calibration_neutralises_it(make_engine, tiny_world, tmp_path):
    quiet_dir = save_random_adapter(tiny_world.model, tmp_path / "quiet", 4, 8, ["q_proj", "v_proj"], False, 1.0, 7)
    quiet = read_adapter(quiet_dir)
    prompts = PROMPTS + read_reference_prompts(tiny_world.reference_file) + ["the red cat is not a dog", "sum of list"]
    chosen = {}
    for tag, adapter in (("quiet", quiet), ("loud", scaled(quiet, 10.0))):
        engine = make_engine([str(_tiny_pool_with(tiny_world, tmp_path / tag, {"extra": adapter}))])
        reference = read_reference_prompts(tiny_world.reference_file)
        for calibration in ("none", "zscore"):
            config = StudyConfig(calibration, "norm", calibration, "own", -1).routing(k=2)
            chosen[tag, calibration] = [r.selected for r in engine.route(prompts, config, reference=reference)]
    assert all(selected[0] == "extra" for selected in chosen["loud", "none"])  # loud on every input
    assert chosen["loud", "zscore"] == chosen["quiet", "zscore"]  # calibrated: as if it were never scaled
    assert sum(s[0] == "extra" for s in chosen["loud", "zscore"]) < len(prompts) / 2


def test_loudest_delta_has_the_asked_size_and_beats_random_deltas():
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(50, 16, generator=generator) + 3.0  # a shared direction, as hidden states have
    delta = loudest_delta(inputs, 8, size=2.0)
    assert delta.norm().item() == pytest.approx(2.0, rel=1e-5)
    assert (inputs @ delta.T)[:, 0].min() > 0  # a positive spike on output 0 for every input
    for _ in range(20):
        other = torch.randn(8, 16, generator=generator)
        other *= 2.0 / other.norm()
        assert (inputs @ other.T).norm() <= (inputs @ delta.T).norm()


def test_constructed_adapter_keeps_the_template_shapes_and_target_norms(tiny_world):
    template = read_adapter(tiny_world.pool_dir / "beta")
    inputs = {m: torch.randn(30, a.shape[1]) + 1.0 for m, (a, _) in template.factors.items()}
    sizes = {m: 0.5 + i for i, m in enumerate(template.factors)}
    loud = constructed(template, inputs, sizes)
    assert {m: tuple(a.shape) for m, (a, _) in loud.factors.items()} == {
        m: tuple(a.shape) for m, (a, _) in template.factors.items()
    }
    assert loud.delta_norms() == pytest.approx(sizes, rel=1e-5)


# ---------------------------------------------------------------- distractors, supervised router, adapter map


@pytest.mark.parametrize("kind", KINDS)
def test_distractors_match_the_template_norms_but_not_its_direction(tiny_world, kind):
    template = read_adapter(tiny_world.pool_dir / "alpha")
    fake = distractor(kind, template, torch.Generator().manual_seed(0))
    assert fake.delta_norms() == pytest.approx(template.delta_norms(), rel=1e-4)
    module = next(iter(template.factors))
    a, b = template.factors[module]
    fa, fb = fake.factors[module]
    assert not torch.allclose(fb @ fa, b @ a, atol=1e-3)


def test_unknown_distractor_kind_is_named(tiny_world):
    with pytest.raises(ValueError, match="unknown distractor kind 'clone'"):
        distractor("clone", read_adapter(tiny_world.pool_dir / "alpha"), torch.Generator())


def test_supervised_router_learns_separable_labels_and_task_mean_weighs_tasks_equally():
    generator = torch.Generator().manual_seed(0)
    centres = torch.eye(3) * 5
    x = torch.cat([centres[i] + torch.randn(20, 3, generator=generator) for i in range(3)]).numpy()
    labels = [name for name in ("a", "b", "c") for _ in range(20)]
    assert (fit_router(x, labels).predict(x) == np.array(labels)).mean() > 0.95
    assert task_mean(np.array([1, 1, 1, 0]), ["a", "a", "a", "b"]) == pytest.approx(0.5)


def test_adapter_map_projects_every_adapter_and_colours_by_category():
    generator = torch.Generator().manual_seed(0)
    profiles = pd.DataFrame(torch.randn(9, 6, generator=generator).numpy(), index=[f"a{i}" for i in range(9)])
    coords = project(profiles)
    assert list(coords.columns) == ["pca_x", "pca_y", "tsne_x", "tsne_y"] and len(coords) == 9
    categories = {f"a{i}": ("x", "y", "z")[i % 3] for i in range(9)}
    fig = adapter_map_figure(coords, categories, "pca")
    assert sorted(t.name for t in fig.data) == ["x", "y", "z"]
    assert sum(len(t.x) for t in fig.data) == 9
    with pytest.raises(ValueError, match="unknown projection 'umap'"):
        adapter_map_figure(coords, categories, "umap")


def test_pool_scaling_scores_route_within_each_pool_and_record_the_reference(engine, tmp_path):
    from analysis.pool_scaling import score_unit, score_unit_path, write_score_table

    tasks = []
    for name, rows in {"alpha": [("count one two", "two")], "beta": [("translate the cat", "le chat")]}.items():
        folder = tmp_path / "tasks" / name
        folder.mkdir(parents=True)
        meta = {
            "name": name,
            "category": "reasoning" if name == "alpha" else "translation",
            "description": name,
            "instruction": "please answer :",
            "metric": "exact_match",
            "held_out": False,
            "source": "test",
        }
        (folder / "task.json").write_text(json.dumps(meta))
        (folder / "test.jsonl").write_text("".join(json.dumps({"input": i, "target": t}) + "\n" for i, t in rows * 3))
    tasks = load_tasks(tmp_path / "tasks")
    pool = ["alpha", "beta", "gamma"]
    runs = tmp_path / "runs"
    runs.mkdir()
    for preset in ("paper", "recommended"):
        records = score_unit(engine, tasks, pool, preset, limit=3, batch_size=4)
        assert len(records) == 6 and all(set(r["selected"]) <= set(pool) for r in records)
        assert {r["reference"] for r in records} == ({None} if preset == "paper" else {"file"})
        path = score_unit_path(runs, len(pool), preset)
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
    table = write_score_table(runs, tmp_path / "out")
    assert list(table.preset) == ["paper", "recommended"] and set(table.n_pool) == {3}
    assert ((table.ci_low <= table.score + 1e-9) & (table.score <= table.ci_high + 1e-9)).all()
    assert (tmp_path / "out" / "pool_scaling_scores.csv").is_file()


def test_floored_zscore_ignores_a_constant_scale_and_bounds_a_barely_varying_adapter():
    from analysis.hostile import floored_zscore

    reference = torch.tensor([[1.0, 10.0], [1.2, 10.1], [0.8, 9.9]])  # (R, N): adapter 1 barely varies (CV 0.01)
    mean, std = reference.mean(0), reference.std(0)
    raw = torch.tensor([[1.1, 10.5]])  # 10% and 5% above the usual level
    plain = floored_zscore(raw, mean, std, 0.0)
    assert plain[0, 1] > 5 * plain[0, 0]  # the plain z-score makes a 5% wobble of the steady adapter a big win
    floored = floored_zscore(raw, mean, std, 0.1)
    assert floored[0, 1] == pytest.approx(0.5) and floored[0, 0] == pytest.approx(plain[0, 0])  # 5% -> 0.5
    scaled = floored_zscore(
        raw * torch.tensor([1.0, 10.0]), mean * torch.tensor([1.0, 10.0]), std * 10 ** torch.tensor([0.0, 1.0]), 0.1
    )
    assert torch.allclose(scaled, floored)  # B x 10 on one adapter changes nothing


def test_calibration_floors_the_norm_std_of_a_barely_varying_adapter_but_not_a_constant_scale():
    from logo.calibration import NORM_STD_FLOOR, CalibrationStats
    from logo.signals import calibrate

    norm = torch.tensor([[1.0, 10.0], [1.2, 10.1], [0.8, 9.9]])  # (R, N): adapter 1 varies by 1% of its level
    entropy = torch.tensor([[2.0, 3.0], [2.001, 3.0001], [1.999, 2.9999]])
    stats = CalibrationStats.from_signals("k", ("usual", "steady"), {"norm": norm, "entropy": entropy})
    assert stats.std["norm"][0] == pytest.approx(norm[:, 0].std().item())  # a zoo-like adapter: untouched
    assert stats.std["norm"][1] == pytest.approx(NORM_STD_FLOOR * 10.0)  # the steady one: floored
    assert stats.std["entropy"] == pytest.approx(tuple(entropy.std(0).tolist()))  # entropy: never floored
    mean, std = stats.tensors("norm", "cpu")
    scores = calibrate(torch.tensor([[1.1, 10.5]]), mean, std, "zscore")
    assert scores[0, 1] == pytest.approx(0.5) and scores[0, 1] < scores[0, 0]  # a 5% wobble no longer wins
    loud = CalibrationStats.from_signals("k", ("usual", "steady"), {"norm": norm * 10, "entropy": entropy})
    loud_mean, loud_std = loud.tensors("norm", "cpu")
    assert torch.allclose(calibrate(torch.tensor([[11.0, 105.0]]), loud_mean, loud_std, "zscore"), scores)  # B x 10


def test_the_scaling_figure_gives_each_config_one_colour_and_one_legend_entry_across_panels():
    from analysis.pool_scaling import LOOK, RECOMMENDED_STUDY, scaling_figure

    table = pd.DataFrame(
        [
            {"distractors": "mixed", "n_pool": n, "config": c, "own_top1": 0.5}
            for n in (27, 54)
            for c in ("paper", RECOMMENDED_STUDY, "recommended")  # the study config and the preset with its limit
        ]
    )
    scores = pd.DataFrame(
        [
            {"n_pool": n, "preset": p, "score": 50.0, "ci_low": 45.0, "ci_high": 55.0}
            for n in (27, 54)
            for p in ("paper", "recommended")
        ]
    )
    fig = scaling_figure(table, scores)
    colours = {}
    for trace in fig.data:
        colours.setdefault(trace.legendgroup, set()).add(trace.line.color)
    assert colours == {"paper": {LOOK["paper"][1]}, "recommended": {LOOK["recommended"][1]}}  # its twin not drawn
    shown = [t.name for t in fig.data if t.showlegend is not False]
    assert sorted(shown) == sorted({LOOK["paper"][0], LOOK["recommended"][0]})


def test_own_rates_never_select_the_adapters_left_out():
    raw = torch.tensor([[9.0, 2.0, 1.0], [9.0, 1.0, 2.0]])  # "loud" first on both prompts
    bank = SignalBank(("loud", "b", "c"), 30, {29: {"norm": raw}})
    labels = ["b", "c"]
    assert own_rates(bank, {}, labels, PAPER, k=1) == {"own_top1": 0.0, "own_top3": 0.0}
    assert own_rates(bank, {}, labels, PAPER, k=1, left_out=["loud"]) == {"own_top1": 1.0, "own_top3": 1.0}
