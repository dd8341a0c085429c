"""Metrics on hand-made cases (first line, official normalisation, 0..100 scale) and MiniLM task similarity."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from analysis.similarity import (
    TaskEmbedder,
    centroid_similarity,
    load_task_centroids,
    save_task_centroids,
    task_inputs,
)
from zoo.metrics import METRICS, bleu, exact_match, first_line, normalise, rouge_l, score

FIXTURES = Path(__file__).parent / "fixtures" / "analysis"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Paris", "Paris"),
        ("  Paris  \nLondon", "Paris"),
        ("\n\n   \n  Lima is the answer.\nmore", "Lima is the answer."),
        ("", ""),
        (" \n\t\n", ""),
        ("a\r\nb", "a"),
    ],
)
def test_first_line(text, expected):
    assert first_line(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Paris.", "paris"),
        ("  U.S.A.  ", "usa"),
        ("3.14", "314"),
        ("Hello World", "hello world"),
        ("a .", "a "),  # as the official code: strip first, then drop dots (no second strip)
    ],
)
def test_normalise_as_the_official_code(text, expected):
    assert normalise(text) == expected


@pytest.mark.parametrize(
    "prediction, target, expected",
    [
        ("Paris", "paris", 100.0),
        ("Paris.", "Paris", 100.0),
        ("  Paris \nThe capital of France is Paris.", "Paris", 100.0),
        ("\n\nParis\nLondon", "London", 0.0),  # only the first non-empty line counts
        ("Lima", ["Tokyo", "lima."], 100.0),
        ("Kyoto", ["Tokyo", "Tōkyō"], 0.0),
        ("U.S.A.", "usa", 100.0),
        ("Paris is the capital", "Paris", 0.0),
        ("", "Paris", 0.0),
        ("True", "False", 0.0),
    ],
)
def test_exact_match(prediction, target, expected):
    assert exact_match(prediction, target) == expected


@pytest.mark.parametrize(
    "prediction, target, expected",
    [
        ("the cat sat on the mat", "the cat sat on the mat", 100.0),
        # LCS 3, precision 3/3, recall 3/6: F1 = 2 * 1 * 0.5 / 1.5
        ("the cat sat", "the cat sat on the mat", 200 / 3),
        ("the cat sat\nand then some unrelated words", "the cat sat on the mat", 200 / 3),
        ("cats running", "cat run", 100.0),  # Porter stemmer, as the official code
        ("dog", "the cat sat", 0.0),
        ("the cat sat", ["a dog", "the cat sat on the mat"], 200 / 3),  # best target wins
    ],
)
def test_rouge_l(prediction, target, expected):
    assert rouge_l(prediction, target) == pytest.approx(expected)


def test_bleu_scale_first_line_and_references():
    sentence = "the quick brown fox jumps over the lazy dog"
    assert bleu(sentence, sentence) == pytest.approx(100.0)
    assert bleu(sentence + "\nsecond line ignored", sentence) == pytest.approx(100.0)
    assert bleu("zebra", sentence) == pytest.approx(0.0)
    partial = bleu("the quick brown fox jumps over a sleepy cat", sentence)
    assert 0.0 < partial < 100.0
    # several targets are references of one multi-reference BLEU, never worse than the best single one
    references = [sentence, "a quick brown fox jumped over a sleepy cat"]
    multi = bleu("the quick brown fox jumps over a sleepy cat", references)
    assert multi >= max(bleu("the quick brown fox jumps over a sleepy cat", r) for r in references)


@pytest.mark.parametrize("metric", METRICS)
def test_score_dispatches_on_a_0_to_100_scale(metric):
    assert score(metric, "le chat est noir", "le chat est noir") == pytest.approx(100.0)
    assert score(metric, "xyz", "le chat est noir") == pytest.approx(0.0)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: score("accuracy", "a", "a"), r"unknown metric 'accuracy': choose one of exact_match, rouge_l, bleu"),
        (lambda: exact_match("a", []), "no target"),
        (lambda: rouge_l("a", []), "no target"),
    ],
)
def test_metric_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# --- task similarity --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def embedder():
    return TaskEmbedder(device="cpu")


def test_embedder_is_lazy_and_vectors_are_unit_length(embedder):
    assert TaskEmbedder()._model is None  # nothing loaded before the first call
    vectors = embedder.embed(["Translate to French: the cat", "What is 17 + 25?"])
    assert vectors.shape == (2, 384)
    assert np.linalg.norm(vectors, axis=1) == pytest.approx([1.0, 1.0], abs=1e-5)
    assert embedder.embed([]).shape == (0, 384)


def test_similar_sentences_score_higher_than_unrelated_ones(embedder):
    anchor = "Translate this sentence into French: the weather is nice today."
    similar = "Please translate into French: I would like a cup of coffee."
    unrelated = "Compute the value of (17 + 25) * 3 - 8."
    assert embedder.similarity(anchor, similar) > embedder.similarity(anchor, unrelated) + 0.1
    vector = embedder.embed([anchor])[0]
    assert embedder.similarity(vector, anchor) == pytest.approx(1.0, abs=1e-5)


def test_task_centroids_separate_tasks_and_survive_a_json_round_trip(embedder, tmp_path):
    centroids = {task: embedder.task_centroid(task_inputs(FIXTURES / "tasks", task)) for task in ("french", "capitals")}
    german = ["Translate to German: the dog is small", "Translate to German: I eat bread"]
    centroids["german"] = embedder.task_centroid(german)
    assert all(np.linalg.norm(v) == pytest.approx(1.0, abs=1e-5) for v in centroids.values())
    sims = centroid_similarity(centroids)
    assert sims.loc["french", "german"] > sims.loc["french", "capitals"]
    assert np.diag(sims.to_numpy()) == pytest.approx([1.0] * 3, abs=1e-5)

    path = save_task_centroids(tmp_path / "centroids.json", centroids)
    raw = json.loads(path.read_text())
    assert set(raw) == {"french", "capitals", "german"} and len(raw["french"]) == 384
    assert all(round(x, 5) == x for x in raw["french"])
    loaded = load_task_centroids(path)
    for task, vector in centroids.items():
        assert loaded[task] == pytest.approx(vector, abs=1e-5)


def test_task_centroid_needs_texts(embedder):
    with pytest.raises(ValueError, match="at least one input"):
        embedder.task_centroid([])


def test_task_inputs_reads_the_task_format():
    inputs = task_inputs(FIXTURES / "tasks", "capitals")
    assert inputs == [
        "What is the capital of Peru?",
        "What is the capital of Japan?",
        "What is the capital of Kenya?",
    ]  # the blank line in the file is skipped; list targets do not matter here
    assert task_inputs(FIXTURES / "tasks", "capitals", limit=2) == inputs[:2]


def test_task_inputs_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no 'test' split for task 'french'"):
        task_inputs(FIXTURES / "tasks", "french", split="test")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "dev.jsonl").write_text('{"question": "x", "target": "y"}\n')
    with pytest.raises(ValueError, match=r"dev.jsonl:1: a task line needs an 'input' field"):
        task_inputs(tmp_path, "broken")
