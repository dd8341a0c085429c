"""Adapter map: a 2-D projection (PCA and t-SNE) of each adapter's signal profile over the dev inputs.

    python -m analysis.adapter_map   # assets/results/routing_v2/adapter_map.{csv,html}

An adapter's profile is its mean z-scored signal (norm and entropy, own reference set, probe block B28) on each
pool task's dev inputs: 2 x 27 numbers. Adapters that sit together are the ones routing confuses.
`adapter_map_figure` is a plain plotly figure the Studio can show.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from sklearn.preprocessing import StandardScaler

from analysis.routing_study import (
    RESULTS_DIR,
    SignalBank,
    Stats,
    StudyConfig,
    cached_reference_stats,
    labelled_prompts,
    load_bank,
    scores,
)
from zoo.data import load_tasks

log = logging.getLogger(__name__)
MAP_BLOCK = -2  # block 28: the dev-best probe block of the calibrated configs


def signal_profiles(bank: SignalBank, stats: Stats, labels: list[str], block: int = MAP_BLOCK) -> pd.DataFrame:
    """Rows = adapters, columns = '<signal>:<input task>': mean z-scored signal over that task's inputs."""
    columns = {}
    for signal in ("norm", "entropy"):
        z = scores(bank, stats, StudyConfig("map", signal, "zscore", "own", block)).numpy()  # (P, N)
        means = pd.DataFrame(z, columns=list(bank.adapters)).groupby(np.array(labels)).mean()  # (tasks, N)
        for task, row in means.iterrows():
            columns[f"{signal}:{task}"] = row
    return pd.DataFrame(columns)


def project(profiles: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """PCA and t-SNE coordinates of each adapter's standardised profile: columns pca_x, pca_y, tsne_x, tsne_y."""
    x = StandardScaler().fit_transform(profiles.to_numpy())
    pca = PCA(n_components=2, random_state=seed).fit_transform(x)
    perplexity = min(8.0, (len(x) - 1) / 3)  # t-SNE needs perplexity < n_samples
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)
    return pd.DataFrame(
        {"pca_x": pca[:, 0], "pca_y": pca[:, 1], "tsne_x": tsne[:, 0], "tsne_y": tsne[:, 1]}, index=profiles.index
    )


def adapter_map_figure(coords: pd.DataFrame, categories: dict[str, str], method: str = "tsne") -> go.Figure:
    """Scatter of the adapters in the 2-D map (method 'pca' or 'tsne'), one colour per category, names as labels."""
    if method not in ("pca", "tsne"):
        raise ValueError(f"unknown projection {method!r}: choose pca or tsne")
    fig = go.Figure()
    for i, category in enumerate(sorted({categories.get(a, "other") for a in coords.index})):
        names = [a for a in coords.index if categories.get(a, "other") == category]
        fig.add_trace(
            go.Scatter(
                x=coords.loc[names, f"{method}_x"],
                y=coords.loc[names, f"{method}_y"],
                mode="markers+text",
                text=names,
                textposition="top center",
                textfont=dict(size=10),
                marker=dict(size=11, color=qualitative.T10[i % len(qualitative.T10)]),
                name=category,
                hovertemplate="%{text}<extra>" + category + "</extra>",
            )
        )
    label = {"pca": "PCA", "tsne": "t-SNE"}[method]
    fig.update_layout(
        template="plotly_white",
        title=f"Adapter map ({label} of each adapter's mean z-scored signals per dev task)",
        xaxis_title=f"{label} 1",
        yaxis_title=f"{label} 2",
        width=900,
        height=650,
        legend_title="category",
    )
    return fig


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    pool_tasks = [t for t in load_tasks() if not t.held_out]
    zoo = tuple(t.name for t in pool_tasks)
    prompts, labels = labelled_prompts(pool_tasks, "dev", 30)
    bank = load_bank("dev30", prompts, zoo)
    coords = project(signal_profiles(bank, cached_reference_stats(zoo), labels))
    categories = {t.name: t.category for t in pool_tasks}
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    coords.assign(category=[categories[a] for a in coords.index]).to_csv(
        RESULTS_DIR / "adapter_map.csv", float_format="%.4f", index_label="adapter"
    )
    for method in ("pca", "tsne"):
        fig = adapter_map_figure(coords, categories, method)
        # plotly.js is the one already committed beside the other figures: each HTML stays small
        fig.write_html(RESULTS_DIR / f"adapter_map_{method}.html", include_plotlyjs="../plotly.min.js")
    log.info("%s", coords.round(2).to_string())


if __name__ == "__main__":
    main()
