"""The baselines of the results table decide adapters and weights; the engine merges and generates with them.

Every baseline returns plain weights (adapter -> float). The caller applies them with the engine's own code:
`engine.generate_batch(prompts, mixtures=[...])` for output-space mixtures (y = W0 x + sum_i w_i s_i B_i A_i x)
or `engine.generate_batch(prompts, parameter_average=weights)` for parameter averaging
(A and B averaged separately). Nothing here touches a tensor of the model.

- `uniform_mixture`: equal weights over the pool.
- `retriever_mixtures` (LoraRetriever-style, mixture): per prompt, top-k adapters by MiniLM similarity, 1/k each.
- `adaptersoup_weights` (AdapterSoup-style): per task, top-k adapters by task-centroid similarity, 1/k each,
  to be parameter-averaged.
- `lorahub_search` (LoraHub, in `analysis.baselines_lorahub`): per task, a gradient-free search over weights.
- `ArrowBaseline` (PEFT's Arrow router, in `analysis.baselines_arrow`): per token and layer; generates itself.

How each deviates from its original is said in the docstring of each function and in the README.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

import numpy as np

from analysis.baselines_arrow import ArrowBaseline, arrow_adapter_dirs
from analysis.baselines_lorahub import LoraHubResult, lorahub_objective, lorahub_search
from analysis.similarity import TaskEmbedder
from zoo.data import load_task

__all__ = [
    "ArrowBaseline",
    "LoraHubResult",
    "adapter_centroids",
    "adaptersoup_weights",
    "arrow_adapter_dirs",
    "lorahub_objective",
    "lorahub_search",
    "retriever_mixtures",
    "retriever_scores",
    "select_equal_top_k",
    "uniform_mixture",
]


def adapter_centroids(
    embedder: TaskEmbedder, tasks_dir: str | Path, names: Sequence[str], split: str = "dev", limit: int | None = 200
) -> dict[str, np.ndarray]:
    """Per adapter, the MiniLM centroid of its task's sample inputs, as the model reads them: name -> (384,).

    An adapter is named after the task it was trained on (the zoo's convention). The samples are the first
    `limit` inputs of the task's *dev* split wrapped in the task's instruction (`task.prompt(input)`, no chat
    template): the dev split is committed, the train splits are not. LoraRetriever embeds samples of each
    adapter's training data; dev inputs come from the same generator and are never test inputs.
    The centroid is `embedder.task_centroid` (mean of unit vectors, normalised again), so inner products
    with a unit prompt embedding are cosines.
    """
    centroids = {}
    for name in names:
        task = load_task(name, Path(tasks_dir))  # FileNotFoundError names the adapter without a task
        rows = task.examples(split, limit)
        if not rows:
            raise ValueError(f"task {name!r} has no {split!r} examples to embed: pick another split")
        centroids[name] = embedder.task_centroid([task.prompt(row["input"]) for row in rows])
    return centroids


def _selectable(names: Sequence[str], exclude: Collection[str], k: int) -> list[int]:
    """Positions of `names` not excluded; checks the excluded names and k against them."""
    unknown = sorted(set(exclude) - set(names))
    if unknown:
        raise KeyError(f"cannot exclude {unknown}: no such adapter; known: {', '.join(names)}")
    allowed = [i for i, name in enumerate(names) if name not in set(exclude)]
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= len(allowed):
        raise ValueError(f"k={k!r} must be an integer in 1..{len(allowed)} (the selectable adapters)")
    return allowed


def select_equal_top_k(
    scores: np.ndarray, names: Sequence[str], k: int, exclude: Collection[str] = ()
) -> list[dict[str, float]]:
    """Per row of scores (P, N), the k highest-scoring adapters not excluded, 1/k each, highest first.

    Ties keep pool order (a stable sort), so the selection is deterministic.
    """
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float64))  # (P, N)
    if scores.shape[1] != len(names):
        raise ValueError(f"scores have {scores.shape[1]} columns but there are {len(names)} adapter names")
    allowed = np.array(_selectable(names, exclude, k))
    order = np.argsort(-scores[:, allowed], axis=1, kind="stable")[:, :k]  # (P, k), positions among `allowed`
    return [{names[i]: 1.0 / k for i in allowed[row]} for row in order]


def retriever_scores(embedder: TaskEmbedder, centroids: Mapping[str, np.ndarray], prompts: Sequence[str]) -> np.ndarray:
    """Inner product of each prompt's embedding with each adapter centroid: (P, N), columns in `centroids` order."""
    if not centroids:
        raise ValueError("no adapter centroids given: build them with adapter_centroids(...)")
    queries = np.asarray(embedder.embed(list(prompts)), dtype=np.float32)  # (P, 384), unit rows
    keys = np.stack([np.asarray(v, dtype=np.float32) for v in centroids.values()])  # (N, 384)
    return queries @ keys.T  # (P, N)


def retriever_mixtures(
    embedder: TaskEmbedder,
    centroids: Mapping[str, np.ndarray],
    prompts: Sequence[str],
    k: int,
    exclude: Collection[str] = (),
) -> list[dict[str, float]]:
    """LoraRetriever-style selection, one output-space mixture per prompt (generate with `mixtures=`).

    1. Embed each prompt (MiniLM, unit norm).
    2. Score every adapter by the inner product with its centroid (`retriever_scores`).
    3. Keep the top-k adapters not in `exclude`, weight 1/k each: LoraRetriever's "mixture" composition
       averages the selected adapters' outputs, which is the engine's mixture with equal weights.

    Deviations: LoraRetriever embeds with an instruction-tuned encoder (Instructor, fine-tuned for retrieval,
    with the instruction "Represent the sentence for similar task retrieval") and keeps each adapter's plain mean
    embedding; we use all-MiniLM-L6-v2 without instruction and a re-normalised centroid (inner product = cosine).
    """
    if not prompts:
        raise ValueError("no prompts given: pass at least one prompt")
    return select_equal_top_k(retriever_scores(embedder, centroids, prompts), list(centroids), k, exclude)


def adaptersoup_weights(
    embedder: TaskEmbedder,
    centroids: Mapping[str, np.ndarray],
    task_inputs: Sequence[str],
    k: int,
    exclude: Collection[str] = (),
) -> dict[str, float]:
    """AdapterSoup-style selection for one task: equal weights over the k adapters nearest the task's centroid.

    1. Centroid of the task's inputs (prompt texts, e.g. its dev inputs; no labels used).
    2. Cosine with every adapter centroid; keep the top-k not in `exclude`, weight 1/k each.
    3. The caller averages their parameters: `engine.generate_batch(..., parameter_average=weights)`
       (A and B averaged separately).

    Deviations: AdapterSoup (Chronopoulou et al., 2023) averages bottleneck adapters of domain-adapted LMs and
    selects them by sentence-embedding similarity or clustering of the domains' text; here the "soup" is LoRA
    factors averaged separately (delta = (sum w B)(sum w A), not the average of deltas) and selection uses MiniLM
    centroids of the task's dev inputs.
    """
    if not task_inputs:
        raise ValueError("no task inputs given: pass the task's sample prompts")
    task = np.asarray(embedder.task_centroid(list(task_inputs)), dtype=np.float32)  # (384,)
    keys = np.stack([np.asarray(v, dtype=np.float32) for v in centroids.values()])  # (N, 384)
    return select_equal_top_k(keys @ task, list(centroids), k, exclude)[0]


def uniform_mixture(names: Sequence[str], exclude: Collection[str] = ()) -> dict[str, float]:
    """Equal weights over the pool minus `exclude` (the "average every adapter" baseline)."""
    allowed = _selectable(names, exclude, k=1)
    return {names[i]: 1.0 / len(allowed) for i in allowed}
