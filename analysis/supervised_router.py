"""A supervised router as an upper bound for training-free routing (scikit-learn logistic regression).

    python -m analysis.supervised_router

Features: each adapter's z-scored signals of both kinds (against the zoo's own reference set) at a probe block,
or at all study blocks; label: the pool task the input came from. Trained on dev inputs (rows after the 4 own
reference ones), evaluated top-1 on test inputs, beside the training-free configs on the same test inputs.
Needs the cached banks of analysis.handwritten (dev) and analysis.pool_scaling probe (test).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from analysis.routing_study import (
    RESULTS_DIR,
    STUDY_BLOCKS,
    SignalBank,
    Stats,
    StudyConfig,
    bootstrap_ci,
    cached_reference_stats,
    labelled_prompts,
    load_bank,
    scores,
    study_configs,
    top_k,
)
from zoo.data import load_tasks

log = logging.getLogger(__name__)
DEV_LIMIT, TEST_LIMIT = 30, 30


def features(bank: SignalBank, stats: Stats, blocks) -> np.ndarray:
    """(P, 2 N len(blocks)): z-scored norm and entropy of every adapter at every block."""
    parts = []
    for block in blocks:
        for signal in ("norm", "entropy"):
            config = StudyConfig("features", signal, "zscore", "own", block)
            parts.append(scores(bank, stats, config))
    return torch.cat(parts, dim=1).numpy()


def fit_router(x: np.ndarray, labels: list[str], c: float = 1.0):
    """Standardised features, multinomial logistic regression (L2, C=c)."""
    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000)).fit(x, labels)


def task_mean(hits: np.ndarray, labels: list[str]) -> float:
    """Mean over tasks of the per-task hit rate (every task weighs the same)."""
    return float(pd.Series(hits, index=labels).groupby(level=0).mean().mean())


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    pool_tasks = [t for t in load_tasks() if not t.held_out]
    zoo = tuple(t.name for t in pool_tasks)
    stats = cached_reference_stats(zoo)
    dev_prompts, dev_labels = labelled_prompts(pool_tasks, "dev", DEV_LIMIT)
    test_prompts, test_labels = labelled_prompts(pool_tasks, "test", TEST_LIMIT)
    dev = load_bank(f"dev{DEV_LIMIT}", dev_prompts, zoo)
    test = load_bank(f"test{TEST_LIMIT}", test_prompts, zoo)
    rows = []
    feature_sets = {f"b{b}": [b] for b in STUDY_BLOCKS} | {"all_study_blocks": list(STUDY_BLOCKS)}
    for name, blocks in feature_sets.items():
        router = fit_router(features(dev, stats, blocks), dev_labels)
        predicted = router.predict(features(test, stats, blocks))
        hits = predicted == np.array(test_labels)
        low, high = bootstrap_ci(torch.tensor(hits))
        rows.append(
            {"router": f"logreg_{name}", "own_top1": task_mean(hits, test_labels), "ci_low": low, "ci_high": high}
        )
    for config in study_configs():
        chosen = top_k(scores(test, stats, config), 1)[:, 0]
        hits = np.array([zoo[i] == t for i, t in zip(chosen.tolist(), test_labels, strict=True)])
        low, high = bootstrap_ci(torch.tensor(hits))
        rows.append({"router": config.name, "own_top1": task_mean(hits, test_labels), "ci_low": low, "ci_high": high})
    table = pd.DataFrame(rows).assign(n_test=len(test_labels), n_train=len(dev_labels))
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    table.to_csv(RESULTS_DIR / "supervised_router.csv", index=False, float_format="%.4f")
    log.info("%s", table.sort_values("own_top1", ascending=False).to_string(index=False))


if __name__ == "__main__":
    main()
