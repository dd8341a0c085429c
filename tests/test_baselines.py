"""The baselines: selection logic on hand-made embeddings, LoraHub and Arrow on the tiny world, checked against PEFT."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from peft import PeftModel

from analysis.baselines import (
    ArrowBaseline,
    adapter_centroids,
    adaptersoup_weights,
    arrow_adapter_dirs,
    lorahub_objective,
    lorahub_search,
    retriever_mixtures,
    retriever_scores,
    uniform_mixture,
)
from analysis.similarity import TaskEmbedder
from logo import scoring
from logo.config import GenerationConfig
from logo.pool import load_adapter
from zoo.data import TASKS_DIR, load_task

PROMPTS = ["what is the capital of france ?", "sort the words cat dog bird"]
EXAMPLES = [("what is two + three ?", "five"), ("capital of france ?", "paris"), ("sort cat dog", "cat dog")]


class TableEmbedder(TaskEmbedder):
    """A stub: each known text maps to a fixed unit vector (task_centroid is TaskEmbedder's own)."""

    def __init__(self, table: dict[str, list[float]]):
        super().__init__()
        self.table = {text: np.asarray(v, dtype=np.float32) / np.linalg.norm(v) for text, v in table.items()}

    def embed(self, texts):
        return np.stack([self.table[t] for t in texts])


# 4 adapters on the axes of a 4-d space; the prompt "b and c" lies exactly between b and c
CENTROIDS = {name: np.eye(4, dtype=np.float32)[i] for i, name in enumerate("abcd")}
EMBEDDER = TableEmbedder({"near a": [1, 0.5, 0.2, 0], "near d": [0, 0, 0.3, 1], "b and c": [0, 1, 1, 0]})


@pytest.mark.parametrize(
    "prompt, k, exclude, expected",
    [
        ("near a", 1, (), {"a": 1.0}),
        ("near a", 2, (), {"a": 0.5, "b": 0.5}),
        ("near a", 2, ("a",), {"b": 0.5, "c": 0.5}),
        ("near d", 3, (), {"d": 1 / 3, "c": 1 / 3, "a": 1 / 3}),  # a ties with b at 0: pool order decides
        ("b and c", 1, (), {"b": 1.0}),  # a tie again: the first in pool order
    ],
)
def test_retriever_picks_the_nearest_k_with_equal_weights(prompt, k, exclude, expected):
    (mixture,) = retriever_mixtures(EMBEDDER, CENTROIDS, [prompt], k, exclude=exclude)
    assert mixture == pytest.approx(expected)
    assert list(mixture) == list(expected)  # highest similarity first


def test_retriever_scores_are_inner_products_per_prompt_and_adapter():
    scores = retriever_scores(EMBEDDER, CENTROIDS, ["near a", "near d"])
    assert scores.shape == (2, 4)
    np.testing.assert_allclose(scores[0], EMBEDDER.table["near a"], rtol=1e-6)


@pytest.mark.parametrize(
    "k, exclude, error, match",
    [(0, (), ValueError, "k=0"), (4, ("a",), ValueError, r"1\.\.3"), (1, ("zeta",), KeyError, "zeta")],
)
def test_selection_errors_name_the_offender(k, exclude, error, match):
    with pytest.raises(error, match=match):
        retriever_mixtures(EMBEDDER, CENTROIDS, ["near a"], k, exclude=exclude)


def test_uniform_mixture_covers_the_pool_minus_exclude():
    assert uniform_mixture(["a", "b", "c", "d"], exclude=["b"]) == pytest.approx({"a": 1 / 3, "c": 1 / 3, "d": 1 / 3})


def test_adaptersoup_ranks_by_task_centroid_and_its_parameter_average_generates(engine):
    names = list(engine.adapter_names)  # alpha beta delta epsilon gamma
    centroids = {name: np.eye(5, dtype=np.float32)[i] for i, name in enumerate(names)}
    embedder = TableEmbedder({"x": [0.1, 0, 1, 0, 0.6], "y": [0, 0, 1, 0, 0.2]})  # centroid ~ delta, then gamma
    weights = adaptersoup_weights(embedder, centroids, ["x", "y"], k=2)
    assert weights == pytest.approx({"delta": 0.5, "gamma": 0.5})
    assert adaptersoup_weights(embedder, centroids, ["x", "y"], k=2, exclude=["gamma"]) == pytest.approx(
        {"delta": 0.5, "alpha": 0.5}
    )
    out = engine.generate_batch(PROMPTS, generation=GenerationConfig(max_new_tokens=4), parameter_average=weights)
    assert [g.mixture for g in out] == [weights, weights] and all(g.token_ids for g in out)
    assert [g.merge for g in out] == ["parameter_average"] * 2  # not the base model, though no routing chose it
    soup = scoring.logits(engine, PROMPTS[:1], factors=scoring.parameter_average(engine, weights))
    assert not torch.allclose(soup, scoring.logits(engine, PROMPTS[:1], [{}]))  # the merge changed the model


def test_adapter_centroids_with_minilm_retrieve_the_task_s_own_adapter():
    names = ["en_fr", "movie_sentiment", "country_capital"]
    embedder = TaskEmbedder()
    centroids = adapter_centroids(embedder, TASKS_DIR, names, limit=20)
    assert {n: v.shape for n, v in centroids.items()} == dict.fromkeys(names, (384,))
    prompts = [load_task(n).prompt(load_task(n).examples("test", 1)[0]["input"]) for n in names]
    assert [list(m) for m in retriever_mixtures(embedder, centroids, prompts, k=1)] == [[n] for n in names]


def test_lorahub_search_is_bounded_reproducible_and_reports_its_objective(engine):
    names = list(engine.adapter_names)
    first = lorahub_search(engine, EXAMPLES, names, budget=8, bounds=(-1.5, 1.5), seed=3, batch_size=2)
    again = lorahub_search(engine, EXAMPLES, names, budget=8, bounds=(-1.5, 1.5), seed=3, batch_size=2)
    assert first.weights == again.weights and first.history == again.history
    assert list(first.weights) == names and all(-1.5 <= w <= 1.5 for w in first.weights.values())
    assert len(first.history) == 8 and first.loss == min(first.history) and first.seconds > 0
    # the reported loss is the objective recomputed independently at the returned weights
    prompts, answers = [p for p, _ in EXAMPLES], [a for _, a in EXAMPLES]
    factors = scoring.parameter_average(engine, first.weights)
    ce = float(scoring.answer_loss(engine, prompts, answers, factors=factors).mean())
    assert first.cross_entropy == pytest.approx(ce, rel=1e-5)
    assert first.loss == pytest.approx(ce + 0.05 * np.abs(list(first.weights.values())).mean(), rel=1e-5)
    # the search starts at w = 0: its first evaluation is the base model with no penalty
    base = scoring.answer_loss(engine, prompts, answers)
    assert first.history[0] == pytest.approx(float(base.mean()), rel=1e-5)


def test_lorahub_objective_ignores_batching_and_rejects_unknown_adapters(engine):
    weights = {"alpha": 0.7, "gamma": -0.4}
    by_one = lorahub_objective(engine, EXAMPLES, weights, batch_size=1)
    by_all = lorahub_objective(engine, EXAMPLES, weights, batch_size=5)
    assert by_one == pytest.approx(by_all, rel=1e-5)
    with pytest.raises(KeyError, match="omega"):
        lorahub_search(engine, EXAMPLES, ["alpha", "omega"], budget=2)


def test_padded_arrow_copies_load_in_peft_with_the_original_function(tiny_world, tmp_path):
    adapters = [load_adapter(tiny_world.pool_dir / n) for n in ("alpha", "gamma", "delta")]  # ranks 2/8/4, rslora
    dirs = arrow_adapter_dirs(adapters, tmp_path)
    assert all(d.parent == tmp_path for d in dirs), "mixed ranks and modules need rewritten copies"
    ids = tiny_world.tokenizer(PROMPTS[0], return_tensors="pt")
    for adapter, copy_dir in zip(adapters, dirs, strict=True):
        logits = []
        for source in (adapter.source, copy_dir):
            model = PeftModel.from_pretrained(copy.deepcopy(tiny_world.model), source).eval()
            with torch.no_grad():
                logits.append(model(**ids).logits)
        torch.testing.assert_close(logits[1], logits[0], rtol=0, atol=1e-5)
    same = [load_adapter(tiny_world.pool_dir / "beta")]
    assert arrow_adapter_dirs(same, tmp_path) == [tiny_world.pool_dir / "beta"]  # already compatible: originals


def test_arrow_with_one_expert_equals_the_engine_with_that_adapter(engine, tiny_world):
    arrow = ArrowBaseline(engine, k=1, base=tiny_world.base())
    others = [n for n in engine.adapter_names if n != "delta"]
    texts = arrow.generate(PROMPTS, 6, exclude=others)  # softmax over one expert: coefficient 1 on every token
    greedy = GenerationConfig(max_new_tokens=6)
    reference = engine.generate_batch(PROMPTS, generation=greedy, mixtures=[{"delta": 1.0}] * 2)
    assert texts == [g.text for g in reference]


def test_arrow_on_the_whole_pool_generates_and_rebuilds_for_leave_one_out(engine, tiny_world):
    arrow = ArrowBaseline(engine, k=2, base=tiny_world.base(), batch_size=1)
    full = arrow.generate(PROMPTS, 5)
    assert len(full) == 2 and all(text.strip() for text in full)
    assert arrow.prepare() == 0.0  # same excluded set: the model is kept
    without = arrow.generate(PROMPTS, 5, exclude=["alpha"])
    assert without != full  # alpha's expert is gone
    assert arrow.generate(PROMPTS, 5) == full  # unloading restored the base model exactly
    plain = copy.deepcopy(arrow._model).unload()
    assert not any(type(m).__module__.startswith("peft") for m in plain.modules())  # no PEFT layer left
    with pytest.raises(ValueError, match="k=2 is larger"):
        arrow.generate(PROMPTS, 5, exclude=["alpha", "beta", "gamma", "delta"])
    with pytest.raises(KeyError, match="omega"):
        arrow.generate(PROMPTS, 5, exclude=["omega"])
