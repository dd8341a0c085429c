"""LoRA-Gen evaluation rows 6 and 7 and the zoo-experts generator on the tiny model (CPU, no downloads)."""

from __future__ import annotations

import copy
import shutil

import pytest
import torch
from peft import PeftModel

from analysis.loragen_eval import (
    conditions_of,
    demo_mixture,
    main,
    multitask_factors,
    read_run,
    run_name,
    write_run,
)
from analysis.loragen_latency import latency_comparison, merged_factors
from logo.loragen import LoraGenConfig, LoraGenerator, TrainConfig
from logo.loragen.train import TrainExample, train
from logo.pool import load_adapter, validate_adapter
from zoo.data import ASSETS_DIR
from zoo.loragen_multitask import MultitaskConfig, train_multitask

EXAMPLES = [
    TrainExample("count the words", "count cat dog", "two"),
    TrainExample("name the colour", "what is red", "blue"),
    TrainExample("answer the sum", "what is two + three ?", "five"),
]


def test_demo_mixture_is_the_average_of_the_engines_recommended_routings(engine):
    demos = ["sort the words cat dog bird", "what is two + three ?", "count the apple and pear"]
    mixture = demo_mixture(engine, demos)
    routings = engine.route(demos)  # the engine's default: the recommended preset
    expected: dict[str, float] = {}
    for r in routings:
        for name, w in zip(r.selected, r.weights, strict=True):
            expected[name] = expected.get(name, 0.0) + w / len(demos)
    assert mixture == pytest.approx(expected)
    assert sum(mixture.values()) == pytest.approx(1.0)
    assert list(mixture.values()) == sorted(mixture.values(), reverse=True)
    assert len(mixture) > engine.default_routing.k  # several demos route to more adapters than one input


def test_multitask_lora_trains_saves_fp16_and_merges_as_peft_computes(tiny_world, tmp_path):
    base = tiny_world.base()
    config = MultitaskConfig(steps=12, batch_size=3, lr=3e-2, max_length=64)
    card = train_multitask(base, EXAMPLES * 2, config, tmp_path / "mt")
    assert (
        card["training"]["steps_done"] == 12 and card["training"]["last_loss_mean100"] < card["training"]["first_loss"]
    )
    adapter = load_adapter(tmp_path / "mt")
    assert {m.rsplit(".", 1)[-1] for m in adapter.factors} == {"gate_proj", "up_proj", "down_proj"}
    assert all(a.dtype == torch.float16 for a, _ in adapter.factors.values())
    validate_adapter(adapter, tiny_world.model)
    ids = tiny_world.tokenizer(["<user> count the words <user> count cat dog <assistant>"], return_tensors="pt")
    peft = PeftModel.from_pretrained(copy.deepcopy(tiny_world.model), tmp_path / "mt").eval()
    model = copy.deepcopy(tiny_world.model)
    with torch.no_grad():
        theirs, before = peft(**ids).logits, model(**ids).logits
        with merged_factors(model, multitask_factors(tmp_path / "mt")):
            ours = model(**ids).logits
        after = model(**ids).logits
    assert not torch.allclose(theirs, before, atol=1e-4)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
    torch.testing.assert_close(after, before, atol=0, rtol=0)  # undone exactly


def test_merging_into_an_engine_wrapped_model_reaches_the_wrapped_linear(make_engine, tiny_world, tmp_path):
    engine = make_engine()  # wraps q/k/v/o (and up_proj) of its model in the engine's mixture layers
    factors = multitask_factors(tiny_world.pool_dir / "alpha")  # q/k/v/o: modules the engine has wrapped
    prompt = ["what is the capital of france ?"]
    with torch.no_grad():
        before = engine.logits(prompt, [{}])
        with merged_factors(engine.model, factors):
            inside = engine.logits(prompt, [{}])  # the base path, over the merged weights
        routed = engine.logits(prompt, [{"alpha": 1.0}])  # the engine's own mixture of the adapter
        after = engine.logits(prompt, [{}])
    assert not torch.allclose(inside, before, atol=1e-4)
    torch.testing.assert_close(inside, routed, atol=1e-4, rtol=0)
    torch.testing.assert_close(after, before, atol=0, rtol=0)


def test_a_zoo_experts_generator_trains_routes_over_tasks_and_reloads(tiny_world, tmp_path):
    adapters = [load_adapter(tiny_world.pool_dir / n) for n in ("alpha", "beta", "gamma")]
    config = LoraGenConfig(edge_model="tiny", reader_model="tiny", experts="zoo", router_hidden=16)
    gen = LoraGenerator.build(config, edge=tiny_world.base(), reader=tiny_world.base(), expert_adapters=adapters)
    assert gen.expert_names == ("alpha", "beta", "gamma")
    result = train(gen, EXAMPLES * 4, TrainConfig(steps=4, batch_size=4, warmup_steps=1, lr=1e-2))
    assert result.finished
    gen.save_checkpoint(tmp_path / "zoo_gen")
    lora = gen.generate("sort the words")
    again = LoraGenerator.load(
        tmp_path / "zoo_gen", edge=tiny_world.base(), reader=tiny_world.base(), expert_adapters=adapters
    ).generate("sort the words")
    assert ((lora.gate_array > 0).sum(1) == 2).all()
    assert abs(again.gate_array - lora.gate_array).max() < 2e-2  # an fp16 checkpoint
    with pytest.raises(ValueError, match="routes over experts"):
        LoraGenerator.load(
            tmp_path / "zoo_gen", edge=tiny_world.base(), reader=tiny_world.base(), expert_adapters=adapters[::-1]
        )


def test_latency_comparison_reports_both_requests_and_the_break_even(tiny_world):
    gen = LoraGenerator.build(
        LoraGenConfig(edge_model="tiny", reader_model="tiny", router_hidden=16),
        edge=tiny_world.base(),
        reader=tiny_world.base(),
    )
    system = "count the words " * 8
    lora = gen.generate(system)
    out = latency_comparison(gen.edge.model, gen.edge.tokenizer, "count cat dog", system, lora, new_tokens=2, repeats=1)
    assert out["in_context"]["prompt_tokens"] > out["merged"]["prompt_tokens"]
    assert out["payback_requests"] >= 1 and out["speedup_e2e"] > 0


@pytest.mark.parametrize(
    ("setting", "present", "absent"),
    [("seen", "oracle", "ctl_random"), ("unseen", "ctl_random", "oracle_bare")],
)
def test_each_setting_runs_its_own_conditions(setting, present, absent):
    conditions = conditions_of(setting, ("base_desc0", "oracle", "oracle_bare", "ctl_random"))
    assert present in conditions and absent not in conditions and "base_desc0" in conditions


def test_run_files_of_dev_never_collide_with_test():
    assert run_name("test", "seen", "en_fr", 40) == "seen-en_fr-40.json.gz"
    assert run_name("dev", "seen", "en_fr", 40) != run_name("test", "seen", "en_fr", 40)


def test_a_run_file_reads_back_as_written_and_the_same_run_gives_the_same_bytes(tmp_path):
    part = {"instances": [{"task": "en_fr", "prediction": "le chat", "score": 100.0}], "device": "cpu"}
    first, second = tmp_path / "a.json.gz", tmp_path / "b.json.gz"
    write_run(first, part)
    write_run(second, part)
    assert read_run(first) == part and first.read_bytes() == second.read_bytes()


def test_the_committed_loragen_tables_are_what_the_committed_answers_give(tmp_path):
    """results.md is rebuilt from runs/ alone (no model): a table edited by hand, or runs/ changed without
    re-tabling, fails here; the devices named are the ones the answers were produced on."""
    committed = ASSETS_DIR / "results" / "loragen"
    out = tmp_path / "loragen"
    shutil.copytree(committed / "runs", out / "runs")
    main(["--score-only", "--unseen-limit", "100", "--seen-limit", "40", "--out", str(out)])
    assert (out / "results.md").read_text() == (committed / "results.md").read_text()
    assert "float32 on cuda;" in (out / "results.md").read_text()
