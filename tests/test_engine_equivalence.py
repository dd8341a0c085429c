"""The engine against independent references: PEFT's own forward, and the signals recomputed from the matrices."""

from __future__ import annotations

import copy
import json
import shutil

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file, save_file

from logo import scoring
from logo.calibration import NORM_STD_FLOOR
from logo.config import ProbeConfig, RoutingConfig
from logo.pool import load_adapter
from logo.signals import signal_from_outputs

PROMPTS = [
    "what is the capital of france ?",
    "sort the words cat dog bird",
    "is the movie review good or bad ?",
    "count one two three",
]


def peft_reference_logits(world, prompt: str, mixture: dict[str, float]) -> torch.Tensor:
    """Logits of PEFT with the selected adapters active together, each scaling multiplied by its weight.

    This is how the official LoGo code merges; it is an independent implementation of the mixture.
    """
    names = list(mixture)
    model = PeftModel.from_pretrained(copy.deepcopy(world.model), world.pool_dir / names[0], adapter_name=names[0])
    for name in names[1:]:
        model.load_adapter(world.pool_dir / name, adapter_name=name)
    model.base_model.set_adapter(names)
    for module in model.modules():
        if hasattr(module, "scaling") and isinstance(module.scaling, dict):
            for name in names:
                if name in module.scaling:
                    module.scaling[name] *= mixture[name]
    model.eval()
    text = world.tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
    )
    ids = world.tokenizer(text, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        return model(**ids).logits[0]  # (T, V)


def test_mixture_logits_equal_peft_for_a_batch_with_different_selections(engine, tiny_world):
    routings = engine.route(PROMPTS, RoutingConfig(k=3))
    mixtures = [r.mixture for r in routings]
    assert len({tuple(m) for m in mixtures}) > 1, "the test needs rows with different selections"
    logits = scoring.logits(engine, PROMPTS, mixtures)  # (B, T, V), left-padded
    mask = engine.encode(PROMPTS)[1]
    for row, (prompt, mixture) in enumerate(zip(PROMPTS, mixtures, strict=True)):
        reference = peft_reference_logits(tiny_world, prompt, mixture)
        ours = logits[row][mask[row].bool()]
        torch.testing.assert_close(ours, reference, rtol=0, atol=1e-5)


def test_explicit_mixture_with_an_adapter_that_skips_modules_equals_peft(engine, tiny_world):
    mixture = {"gamma": 0.7, "epsilon": 0.2, "delta": 0.1}  # gamma has no k/o, epsilon no k/v, delta adds up_proj
    ours = scoring.logits(engine, [PROMPTS[0]], [mixture])[0]
    torch.testing.assert_close(ours, peft_reference_logits(tiny_world, PROMPTS[0], mixture), rtol=0, atol=1e-5)


def test_fused_equals_mixture(engine):
    mixture = engine.route(PROMPTS[1], RoutingConfig(k=3))[0].mixture
    mixed = scoring.logits(engine, [PROMPTS[1]], [mixture], mode="mixture")
    fused = scoring.logits(engine, [PROMPTS[1]], [mixture], mode="fused")
    scale = mixed.abs().max()
    torch.testing.assert_close(fused, mixed, rtol=0, atol=float(1e-5 * scale))


def test_fused_restores_the_base_weights_exactly(engine):
    before = {n: p.detach().clone() for n, p in engine.model.named_parameters()}
    scoring.logits(engine, [PROMPTS[0]], [{"alpha": 0.5, "beta": 0.5}], mode="fused")
    for name, param in engine.model.named_parameters():
        assert torch.equal(param, before[name]), name
    assert not any(layer.merged for layer in engine.adapted.layers.values())


def test_empty_mixture_is_the_base_model(engine, tiny_world):
    text = tiny_world.tokenizer.apply_chat_template(
        [{"role": "user", "content": PROMPTS[0]}], tokenize=False, add_generation_prompt=True
    )
    ids = tiny_world.tokenizer(text, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        reference = tiny_world.model(**ids).logits[0]
    torch.testing.assert_close(scoring.logits(engine, [PROMPTS[0]], [{}])[0], reference, rtol=0, atol=1e-6)


def _probe_hidden(world, prompt: str, block: int, probe_input: str) -> torch.Tensor:
    """The probed input recomputed with output_hidden_states (residual) or a hook on the module (module)."""
    model = world.model
    text = world.tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
    )
    ids = world.tokenizer(text, return_tensors="pt", add_special_tokens=False)
    captured = {}
    layer = model.model.layers[block]
    handle = layer.self_attn.q_proj.register_forward_pre_hook(lambda m, a: captured.setdefault("h", a[0]))
    with torch.no_grad():
        out = model(**ids, output_hidden_states=True)
    handle.remove()
    if probe_input == "residual":
        return out.hidden_states[block][0]  # the official code's hidden_states[T]: the input of block T
    return captured["h"][0]


@pytest.mark.parametrize("signal", ["norm", "entropy"])
@pytest.mark.parametrize("probe_input", ["module", "residual"])
@pytest.mark.parametrize("block", [-1, 1])
@pytest.mark.parametrize("aggregate", ["last", "mean"])
def test_signals_equal_a_direct_recomputation(engine, tiny_world, signal, probe_input, block, aggregate):
    probe = ProbeConfig(block=block, probe_input=probe_input, aggregate=aggregate)
    ours = engine.raw_signals(PROMPTS, probe)[signal]  # (P, N)
    n_blocks = len(tiny_world.model.model.layers)
    for row, prompt in enumerate(PROMPTS):
        h = _probe_hidden(tiny_world, prompt, block % n_blocks, probe_input)  # (T, d)
        h = h[-1] if aggregate == "last" else h.mean(dim=0)
        for col, name in enumerate(engine.adapter_names):
            adapter = load_adapter(tiny_world.pool_dir / name)
            module = f"model.layers.{block % n_blocks}.self_attn.q_proj"
            a, b = adapter.factors[module]
            o = adapter.scalings[module] * (b @ (a @ h))  # one adapter at a time, the paper's formula
            if signal == "norm":
                expected = o.norm()
            else:
                p = torch.softmax(o, dim=-1)
                expected = 1 / (-(p * torch.log(p + 1e-8)).sum() + 1e-6)
            torch.testing.assert_close(ours[row, col], expected, rtol=1e-5, atol=1e-6)


def test_signal_formulas_on_hand_made_outputs():
    uniform = torch.zeros(1, 4)  # softmax is uniform: H = log 4
    assert signal_from_outputs(uniform, "entropy").item() == pytest.approx(
        1 / (torch.log(torch.tensor(4.0)).item() + 1e-6), rel=1e-5
    )
    assert signal_from_outputs(torch.tensor([[3.0, 4.0]]), "norm").item() == pytest.approx(5.0)


def test_weights_are_normalised_signals_of_the_top_k(engine):
    routing = engine.route(PROMPTS[0], RoutingConfig.preset("paper", k=3))[0]
    scores = routing.score_by_adapter
    top = sorted(scores, key=scores.get, reverse=True)[:3]
    assert list(routing.selected) == top
    total = sum(scores[n] for n in top)
    assert routing.weights == pytest.approx(tuple(scores[n] / total for n in top), rel=1e-6)
    assert routing.scores == routing.signals  # no calibration


@pytest.mark.parametrize("method", ["mean", "zscore"])
@pytest.mark.parametrize("signal", ["norm", "entropy"])
def test_calibrated_scores_equal_a_recomputation_from_the_cached_statistics(engine, tiny_world, method, signal):
    config = RoutingConfig(k=2, signal=signal, calibration=method, weighting="linear")  # the weights checked below
    routing = engine.route(PROMPTS[2], config)[0]
    cache_files = list((engine.config.cache_dir / "calibration").glob("*.json"))
    assert len(cache_files) == 1
    stats = json.loads(cache_files[0].read_text())
    reference_prompts = [line for line in tiny_world.reference_file.read_text().splitlines() if line.strip()]
    raw = engine.raw_signals(reference_prompts, config.probe)[signal]
    assert stats["mean"][signal] == pytest.approx(raw.mean(dim=0).tolist(), rel=1e-5)
    std = raw.std(dim=0)
    if signal == "norm":  # logo.calibration.NORM_STD_FLOOR: a barely varying adapter's std is floored
        std = torch.maximum(std, NORM_STD_FLOOR * raw.mean(dim=0))
    assert stats["std"][signal] == pytest.approx(std.tolist(), rel=1e-5)
    for col, s in enumerate(routing.signals):
        mean, std = stats["mean"][signal][col], stats["std"][signal][col]
        expected = s / mean if method == "mean" else (s - mean) / std
        assert routing.scores[col] == pytest.approx(expected, rel=1e-5, abs=1e-6)
    positive = {n: max(routing.score_by_adapter[n], 0) for n in routing.selected}
    if sum(positive.values()) > 0:
        assert routing.weights == pytest.approx(tuple(v / sum(positive.values()) for v in positive.values()), rel=1e-5)


def test_calibration_cache_is_reused_and_invalidated(make_engine, tiny_world, tmp_path):
    engine = make_engine()
    engine.route(PROMPTS[0], RoutingConfig(calibration="mean"))
    folder = engine.config.cache_dir / "calibration"
    assert len(list(folder.glob("*.json"))) == 1

    # a second engine on the same pool reuses the file
    make_engine().route(PROMPTS[0], RoutingConfig(calibration="mean"))
    assert len(list(folder.glob("*.json"))) == 1

    # another probe location is another key
    engine.route(PROMPTS[0], RoutingConfig(calibration="mean").with_(block=1))
    assert len(list(folder.glob("*.json"))) == 2

    # changing one adapter's weights changes the key
    pool = tmp_path / "pool"
    shutil.copytree(tiny_world.pool_dir, pool)
    weights = pool / "alpha" / "adapter_model.safetensors"
    tensors = {k: v * 1.5 for k, v in load_file(str(weights)).items()}
    save_file(tensors, str(weights))
    original_key = engine.calibration_stats(ProbeConfig()).key
    changed = make_engine(adapters=[str(pool)])
    stats = changed.calibration_stats(ProbeConfig())
    assert stats.key != original_key
    assert len(list(folder.glob("*.json"))) == 3


def test_parameter_average_merges_a_and_b_separately(engine, tiny_world):
    """LoraHub's merge: delta = s (sum_i w_i B_i)(sum_i w_i A_i) with the adapters' common scaling."""
    weights = {"alpha": 0.6, "beta": -0.3}  # both r<=4 on q,k,v,o with scaling 2 and 1: sqrt(s) folded in
    factors = scoring.parameter_average(engine, weights)
    module = "model.layers.1.self_attn.v_proj"
    a_t, b_t = factors[module]
    ours = (a_t[0] @ b_t[0]).T  # (d_out, d_in)
    adapters = {n: load_adapter(tiny_world.pool_dir / n) for n in weights}
    r = max(adapters[n].factors[module][0].shape[0] for n in weights)
    a_sum = sum(
        w
        * adapters[n].scalings[module] ** 0.5
        * torch.nn.functional.pad(
            adapters[n].factors[module][0], (0, 0, 0, r - adapters[n].factors[module][0].shape[0])
        )
        for n, w in weights.items()
    )
    b_sum = sum(
        w
        * adapters[n].scalings[module] ** 0.5
        * torch.nn.functional.pad(adapters[n].factors[module][1], (0, r - adapters[n].factors[module][1].shape[1]))
        for n, w in weights.items()
    )
    torch.testing.assert_close(ours, b_sum @ a_sum, rtol=1e-5, atol=1e-6)
    single = scoring.parameter_average(engine, {"beta": 1.0})
    torch.testing.assert_close(
        scoring.logits(engine, [PROMPTS[0]], factors=single),
        scoring.logits(engine, [PROMPTS[0]], [{"beta": 1.0}]),
        rtol=0,
        atol=1e-5,
    )


def test_answer_loss_is_the_cross_entropy_of_the_answer(engine, tiny_world):
    prompt, answer = PROMPTS[0], " paris ."
    loss = scoring.answer_loss(engine, [prompt, PROMPTS[1]], [answer, " cat dog"])[0]
    text = tiny_world.tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
    )
    prompt_ids = tiny_world.tokenizer(text, add_special_tokens=False)["input_ids"]
    full = tiny_world.tokenizer(text + answer + "<eos>", return_tensors="pt", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = tiny_world.model(full).logits[0]
    expected = torch.nn.functional.cross_entropy(logits[len(prompt_ids) - 1 : -1], full[0, len(prompt_ids) :])
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize("probe_input", ["module", "residual"])
def test_signals_of_all_blocks_in_one_pass_equal_one_block_at_a_time(engine, probe_input):
    probe = ProbeConfig(probe_input=probe_input, aggregate="mean")
    together = engine.raw_signals_by_block(PROMPTS, probe, [0, 1, 2, 3])
    for block in range(4):
        alone = engine.raw_signals(PROMPTS, ProbeConfig(block=block, probe_input=probe_input, aggregate="mean"))
        for signal in ("norm", "entropy"):
            torch.testing.assert_close(together[block][signal], alone[signal], rtol=1e-6, atol=1e-7)
