"""Tests of the task zoo: registry coverage, deterministic small builds, and the committed assets/tasks files."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest

from zoo.build_tasks import HELD_OUT_SIZES, POOL_SIZES, build_task, draw_unique_examples
from zoo.tasks import (
    CATEGORIES,
    METRICS,
    TASKS,
    cbqa,
    classification,
    code,
    common,
    nli,
    reasoning,
    struct2text,
    task_rng,
    translation,
)

ASSETS = Path(__file__).resolve().parent.parent / "assets" / "tasks"
TASK_JSON_KEYS = {
    "name",
    "category",
    "description",
    "instruction",
    "metric",
    "held_out",
    "source",
    "n_train",
    "n_dev",
    "n_test",
}
ALL_TASKS = sorted(TASKS)
# Built from the stdlib sources of the running Python: another patch release may change it, so its committed
# files are not compared with a rebuild.
PYTHON_DEPENDENT = {"code_summarization"}


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _answers(target) -> list[str]:
    return [target] if isinstance(target, str) else target


# --- Registry --------------------------------------------------------------------------------------


def test_task_names_unique_across_modules():
    specs = [s for m in (reasoning, translation, struct2text, cbqa, nli, code, classification) for s in m.SPECS]
    assert len(specs) == len(TASKS)


@pytest.mark.parametrize("category", CATEGORIES)
def test_category_coverage(category):
    pool = [s for s in TASKS.values() if s.category == category and not s.held_out]
    held_out = [s for s in TASKS.values() if s.category == category and s.held_out]
    assert len(pool) >= 3, category
    assert len(held_out) >= 1, category


def test_pool_and_held_out_counts():
    assert sum(not s.held_out for s in TASKS.values()) >= 24
    assert sum(s.held_out for s in TASKS.values()) >= 6


@pytest.mark.parametrize("name", ALL_TASKS)
def test_spec_metadata(name):
    spec = TASKS[name]
    assert spec.name == name and name.isidentifier() and name == name.lower()
    assert spec.category in CATEGORIES and spec.metric in METRICS
    assert spec.description.endswith(".") and spec.description.count(". ") == 0  # one sentence
    assert spec.instruction.strip() and spec.source.strip()


@pytest.mark.parametrize("name", ALL_TASKS)
def test_generated_examples_are_well_formed(name):
    spec = TASKS[name]
    rng = random.Random(1234)
    for _ in range(50):
        text, target = spec.generate(rng)
        assert isinstance(text, str) and text.strip()
        answers = _answers(target)
        assert answers and all(isinstance(a, str) and a.strip() and "\n" not in a for a in answers)


def test_task_rng_is_stable_and_task_specific():
    assert task_rng(0, "en_fr").random() == task_rng(0, "en_fr").random()
    assert task_rng(0, "en_fr").random() != task_rng(0, "en_de").random()
    assert task_rng(0, "en_fr").random() != task_rng(1, "en_fr").random()
    # A fixed value: the seed must not depend on Python's salted hash() or on the process.
    assert task_rng(0, "en_fr").getrandbits(32) == 3456076572


# --- Small builds ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_TASKS)
def test_small_build_is_deterministic_and_disjoint(name, tmp_path):
    spec = TASKS[name]
    first = build_task(spec, tmp_path / "a", seed=0, n_train=30, n_dev=10, n_test=10)
    build_task(spec, tmp_path / "b", seed=0, n_train=30, n_dev=10, n_test=10)
    for file in ("task.json", "train.jsonl", "dev.jsonl", "test.jsonl"):
        assert (tmp_path / "a" / name / file).read_bytes() == (tmp_path / "b" / name / file).read_bytes()
    assert (first["n_train"], first["n_dev"], first["n_test"]) == (30, 10, 10)
    splits = {
        s: {r["input"] for r in _read_jsonl(tmp_path / "a" / name / f"{s}.jsonl")} for s in ("train", "dev", "test")
    }
    assert not splits["train"] & splits["dev"] and not splits["train"] & splits["test"]
    assert not splits["dev"] & splits["test"]


def test_seed_changes_the_data(tmp_path):
    spec = TASKS["en_fr"]
    build_task(spec, tmp_path / "a", seed=0, n_train=0, n_dev=5, n_test=5)
    build_task(spec, tmp_path / "b", seed=1, n_train=0, n_dev=5, n_test=5)
    assert (tmp_path / "a/en_fr/test.jsonl").read_bytes() != (tmp_path / "b/en_fr/test.jsonl").read_bytes()


def test_exhausted_input_space_shortens_train_only():
    spec = TASKS["element_symbol"]
    examples = draw_unique_examples(spec, seed=0, n=100_000)
    assert len(examples) == len({text for text, _ in examples}) < 100_000  # stops when no new inputs appear


# --- Committed assets ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_TASKS)
def test_committed_task(name):
    task_dir = ASSETS / name
    meta = json.loads((task_dir / "task.json").read_text(encoding="utf-8"))
    spec = TASKS[name]
    assert set(meta) == TASK_JSON_KEYS
    assert meta["category"] in CATEGORIES and meta["metric"] in METRICS and isinstance(meta["held_out"], bool)
    for key in ("name", "category", "description", "instruction", "metric", "held_out", "source"):
        assert meta[key] == getattr(spec, key), key
    sizes = HELD_OUT_SIZES if spec.held_out else POOL_SIZES
    assert (meta["n_dev"], meta["n_test"]) == (sizes.dev, sizes.test)
    assert meta["n_train"] >= (sizes.train if name not in PYTHON_DEPENDENT else 2000)

    splits = {s: _read_jsonl(task_dir / f"{s}.jsonl") for s in ("dev", "test")}
    if (task_dir / "train.jsonl").exists():  # not committed; present after `make zoo`
        splits["train"] = _read_jsonl(task_dir / "train.jsonl")
    for split, rows in splits.items():
        assert len(rows) == meta[f"n_{split}"], split
        inputs = [r["input"] for r in rows]
        assert len(set(inputs)) == len(inputs), f"duplicate input in {split}"
        for row in rows:
            assert set(row) == {"input", "target"} and row["input"].strip()
            assert all(a.strip() for a in _answers(row["target"]))
    inputs = {split: {r["input"] for r in rows} for split, rows in splits.items()}
    for a, b in (("dev", "test"), ("train", "dev"), ("train", "test")):
        if a in inputs and b in inputs:
            assert not inputs[a] & inputs[b], f"{a}/{b} overlap"


def test_no_stale_task_folders():
    assert sorted(p.name for p in ASSETS.iterdir() if p.is_dir()) == ALL_TASKS


@pytest.mark.parametrize("name", sorted(set(ALL_TASKS) - PYTHON_DEPENDENT))
def test_committed_dev_test_match_generator(name, tmp_path):
    """dev/test are drawn before train, so a build without train reproduces the committed files byte for byte."""
    build_task(TASKS[name], tmp_path, seed=0, n_train=0)
    for split in ("dev", "test"):
        assert (tmp_path / name / f"{split}.jsonl").read_bytes() == (ASSETS / name / f"{split}.jsonl").read_bytes()


def test_labels_roughly_balanced_in_test():
    """Classification-style tasks should not let a constant answer score well."""
    for name in (
        "boolean_expressions",
        "movie_sentiment",
        "spam_detection",
        "answer_check",
        "numeric_nli",
        "lexical_nli",
        "news_topic",
        "intent_detection",
        "product_sentiment",
        "quantifier_nli",
    ):
        counts = Counter(r["target"] for r in _read_jsonl(ASSETS / name / "test.jsonl"))
        assert max(counts.values()) / sum(counts.values()) < 0.6, (name, counts)


# --- Data files ------------------------------------------------------------------------------------

TASK_MODULES = (reasoning, translation, struct2text, cbqa, nli, code, classification, common)


def test_every_data_file_is_read_by_the_zoo():
    """zoo/tasks/data/ holds the word lists and lexicons; a file no zoo module names is stale."""
    zoo_dir = common.DATA_DIR.parent.parent
    sources = "\n".join(p.read_text(encoding="utf-8") for p in zoo_dir.rglob("*.py"))
    shipped = sorted(p.name for p in common.DATA_DIR.glob("*.json"))
    assert shipped, f"no data files in {common.DATA_DIR}"
    assert [name for name in shipped if f'"{name}"' not in sources] == []
    task_sources = "\n".join(Path(m.__file__).read_text(encoding="utf-8") for m in TASK_MODULES)
    assert 'load_json("translation.json")' in task_sources and 'load_json("names.json")' in task_sources


@pytest.mark.parametrize("name", sorted(p.name for p in common.DATA_DIR.glob("*.json")))
def test_data_file_is_a_table_of_plain_values(name):
    table = common.load_json(name)
    assert isinstance(table, dict | list) and table, f"{name} is empty"
    assert common.load_json(name) is table  # read once per process


def test_unknown_data_file_names_the_folder_and_the_files_there():
    with pytest.raises(FileNotFoundError, match=r"no task data file 'nouns\.json' in .*data.*names\.json"):
        common.load_json("nouns.json")


def test_loaded_lexicon_keeps_the_set_and_tuple_semantics_of_its_callers():
    """JSON has neither sets nor tuples: the loaders turn tags back into sets and counted objects into tuples."""
    assert all(isinstance(entry["tags"], frozenset) for entry in translation.THINGS.values())
    accepted = {type(entry["objects"]) for entry in translation.VERBS.values()}
    assert accepted <= {str, type(None), frozenset} and frozenset in accepted
    pairs = [pair for items in reasoning.COUNTABLE_OBJECTS.values() for pair in items]
    assert all(isinstance(pair, tuple) and len(pair) == 2 for pair in pairs)
