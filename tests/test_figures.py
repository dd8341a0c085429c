"""Figures, tables and exports built from the small fixture results in tests/fixtures/analysis/."""

from __future__ import annotations

import json
import re
import struct
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis import export, figures, tables
from analysis.export import (
    PngExportUnavailable,
    export_bundle,
    export_csv,
    export_html,
    export_png,
    png_export_available,
)

FIXTURES = Path(__file__).parent / "fixtures" / "analysis"
CATEGORIES = json.loads((FIXTURES / "categories.json").read_text())
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def signals() -> pd.DataFrame:
    return pd.read_csv(FIXTURES / "signals.csv", index_col="task")


@pytest.fixture(scope="module")
def points() -> pd.DataFrame:
    return pd.read_csv(FIXTURES / "weights.csv")


def prompt_signals(signals: pd.DataFrame) -> dict[str, float]:
    return {adapter: 2.0 * value for adapter, value in signals.loc["german"].items()}


# --- signal heatmap ---------------------------------------------------------------------------------------

GROUPED_ADAPTERS = ["french", "german", "arithmetic", "boolean_expressions", "word_sorting", "capitals", "sentiment"]
GROUPED_TASKS = [*GROUPED_ADAPTERS[:5], "object_counting", "capitals", "sentiment"]  # held-out task ends its group


def test_heatmap_puts_the_prompt_on_top_and_groups_columns_and_rows_by_category(signals):
    prompt = prompt_signals(signals)
    fig = figures.signal_heatmap(
        signals, CATEGORIES["adapters"], CATEGORIES["tasks"], prompt_row=("this prompt", prompt), normalise_rows=False
    )
    heatmap = fig.data[0]
    z = np.asarray(heatmap.z, dtype=float)  # (1 prompt + 1 blank band + 8 tasks, 7 adapters)
    assert list(fig.layout.xaxis.ticktext) == GROUPED_ADAPTERS
    assert list(fig.layout.yaxis.ticktext) == ["this prompt", *GROUPED_TASKS]
    assert z[0] == pytest.approx([prompt[a] for a in GROUPED_ADAPTERS])
    assert np.isnan(z[1]).all()  # the band that separates the prompt from the dataset rows
    expected = signals.reindex(index=GROUPED_TASKS, columns=GROUPED_ADAPTERS).to_numpy()
    assert z[2:] == pytest.approx(expected)
    assert fig.layout.yaxis.range[0] > fig.layout.yaxis.range[1]  # first row drawn on top
    categories = [CATEGORIES["adapters"][a] for a in fig.layout.xaxis.ticktext]
    runs = [c for i, c in enumerate(categories) if i == 0 or categories[i - 1] != c]
    assert len(runs) == len(set(runs)), f"columns not grouped by category: {categories}"
    labels = {a.text for a in fig.layout.annotations}
    assert {"<b>translation</b>", "<b>reasoning</b>", "<b>cbqa</b>", "<b>classification</b>"} <= labels
    own_cells = [s for s in fig.layout.shapes if s.type == "rect"]
    assert len(own_cells) == 7  # every task with its own adapter, not the held-out object_counting


def test_heatmap_rows_are_min_max_normalised_by_default(signals):
    fig = figures.signal_heatmap(signals, CATEGORIES["adapters"], CATEGORIES["tasks"])
    z = np.asarray(fig.data[0].z, dtype=float)
    assert z.min(axis=1) == pytest.approx(np.zeros(len(z)))
    assert z.max(axis=1) == pytest.approx(np.ones(len(z)))
    raw = signals.loc["french", GROUPED_ADAPTERS].to_numpy()
    assert z[0] == pytest.approx((raw - raw.min()) / (raw.max() - raw.min()))
    assert f"signal: {raw[0]:.4g}" in fig.data[0].text[0][0]  # the raw value stays in the hover text


@pytest.mark.parametrize("matrix", [None, pd.DataFrame()])
def test_heatmap_with_only_a_prompt_row(signals, matrix):
    prompt = prompt_signals(signals)
    fig = figures.signal_heatmap(matrix, CATEGORIES["adapters"], prompt_row=("now", prompt), normalise_rows=False)
    z = np.asarray(fig.data[0].z, dtype=float)
    assert z.shape == (1, 7)
    assert z[0] == pytest.approx([prompt[a] for a in GROUPED_ADAPTERS])
    assert list(fig.layout.yaxis.ticktext) == ["now"]


def test_heatmap_without_any_signal_says_so():
    fig = figures.signal_heatmap(None, CATEGORIES["adapters"])
    assert not fig.data and "No signals yet" in fig.layout.annotations[0].text


# --- weight against similarity ----------------------------------------------------------------------------


def test_scatter_reports_pearson_and_spearman_computed_independently(points):
    highlight = points[points["task"] == "french"].head(3)
    fig = figures.weight_similarity_scatter(points, highlight, title="weights")
    text = fig.layout.annotations[0].text
    pearson = stats.pearsonr(points["weight"], points["similarity"]).statistic
    spearman = stats.spearmanr(points["weight"], points["similarity"]).statistic
    assert float(re.search(r"Pearson r = (-?[\d.]+)", text).group(1)) == pytest.approx(pearson, abs=5e-4)
    assert float(re.search(r"Spearman ρ = (-?[\d.]+)", text).group(1)) == pytest.approx(spearman, abs=5e-4)
    assert f"n = {len(points)}" in text
    assert fig.layout.meta["pearson_r"] == pytest.approx(pearson)
    on_top = fig.data[1]
    assert on_top.name == "this prompt" and list(on_top.text) == list(highlight["adapter"])
    assert on_top.marker.color == figures.HIGHLIGHT != fig.data[0].marker.color


def test_scatter_with_only_highlighted_points(points):
    highlight = points.head(3)
    fig = figures.weight_similarity_scatter(pd.DataFrame(), highlight)
    assert fig.data[0].name == "this prompt"
    assert "this prompt, n = 3" in fig.layout.annotations[0].text
    two = figures.weight_similarity_scatter(None, points.head(2))
    assert "correlation undefined" in two.layout.annotations[0].text


# --- latency ----------------------------------------------------------------------------------------------


def test_latency_curve_plots_t_n_over_n():
    curves = json.loads((FIXTURES / "latency.json").read_text())
    fig = figures.latency_curve(curves)
    assert [trace.name for trace in fig.data] == list(curves)
    for trace, times in zip(fig.data, curves.values(), strict=True):
        n = np.arange(1, len(times) + 1)
        assert list(trace.x) == list(n)
        assert np.asarray(trace.y) == pytest.approx(np.asarray(times) / n)
    assert figures.amortised_ms_per_token([100.0, 120.0, 150.0]) == pytest.approx([100.0, 60.0, 50.0])


def test_latency_rejects_decreasing_timestamps():
    with pytest.raises(ValueError, match="token 3 is ready before token 2"):
        figures.amortised_ms_per_token([10.0, 20.0, 15.0])


# --- sweeps and tables ------------------------------------------------------------------------------------


def test_k_sweep_draws_score_and_top1_per_method():
    df = pd.read_csv(FIXTURES / "k_sweep.csv")
    fig = figures.k_sweep(df)
    methods = list(dict.fromkeys(df["method"]))
    assert len(fig.data) == 2 * len(methods)
    score = next(t for t in fig.data if t.name == "LoGo entropy" and t.xaxis == "x")
    top1 = next(t for t in fig.data if t.name == "LoGo entropy" and t.xaxis == "x2")
    rows = df[df["method"] == "LoGo entropy"].sort_values("k")
    assert list(score.x) == list(rows["k"]) and list(score.y) == pytest.approx(list(rows["score"]))
    assert list(top1.y) == pytest.approx(list(rows["top1_rate"]))


def test_probe_sweep_has_one_line_per_combination_and_a_panel_per_signal():
    df = pd.read_csv(FIXTURES / "probe_sweep.csv")
    fig = figures.probe_sweep(df)
    combinations = df.groupby(["aggregate", "probe_input", "calibration"]).ngroups
    assert len(fig.data) == df["signal"].nunique() * combinations
    assert {a.text for a in fig.layout.annotations} >= {"signal: norm", "signal: entropy"}
    line = next(t for t in fig.data if t.name == "zscore / residual / last" and t.xaxis == "x2")
    keys = {"signal": "entropy", "calibration": "zscore", "probe_input": "residual", "aggregate": "last"}
    rows = df[(df[list(keys)] == pd.Series(keys)).all(axis=1)]
    assert list(line.y) == pytest.approx(list(rows.sort_values("block")["top1_rate"]))


def test_results_table_averages_tasks_per_category_and_bolds_the_best():
    rows = [
        ("main", "A", "t1", "c1", "exact_match", 10.0),
        ("main", "A", "t2", "c1", "exact_match", 30.0),
        ("main", "A", "t3", "c2", "bleu", 50.0),
        ("main", "B", "t1", "c1", "exact_match", 40.0),
        ("main", "B", "t2", "c1", "exact_match", 40.0),
        ("main", "B", "t3", "c2", "bleu", 20.0),
        ("other", "A", "t1", "c1", "exact_match", 5.0),
    ]
    results = pd.DataFrame(rows, columns=["setting", "method", "task", "category", "metric", "score"]).assign(n=40)
    table = tables.results_table_markdown(results)
    assert "### main" in table and "### other" in table
    assert "| method | c1 (EM) | c2 (BLEU) | avg |" in table
    assert "| A | 20.0 | **50.0** | **35.0** |" in table
    assert "| B | **40.0** | 20.0 | 30.0 |" in table


def test_results_table_from_the_fixture_has_a_table_per_setting():
    results = pd.read_csv(FIXTURES / "results.csv")
    table = tables.results_table_markdown(results)
    for setting in results["setting"].unique():
        assert f"### {setting}" in table
    assert table.count("**") >= 2 * 5 * results["setting"].nunique()  # at least one bold cell per column


# --- exports ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def heatmap(signals):
    prompt = ("this prompt", prompt_signals(signals))
    return figures.signal_heatmap(signals, CATEGORIES["adapters"], CATEGORIES["tasks"], prompt)


def test_html_export_is_self_contained(heatmap, tmp_path):
    html = export_html(heatmap, tmp_path / "heatmap.html").read_text(encoding="utf-8")
    assert "Plotly.newPlot" in html
    assert "plotly.js v" in html  # the inlined library's header
    assert len(html) > 1_000_000
    assert not re.search(r"<script[^>]*\bsrc=[\"']?https?:", html), "HTML loads a script from the network"


def test_csv_export_keeps_a_meaningful_index_only(signals, points, tmp_path):
    matrix = pd.read_csv(export_csv(signals, tmp_path / "signals.csv"), index_col=0)
    assert list(matrix.index) == list(signals.index)
    flat = pd.read_csv(export_csv(points, tmp_path / "points.csv"))
    assert list(flat.columns) == list(points.columns)


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_MAGIC, "not a PNG file"
    return struct.unpack(">II", data[16:24])  # IHDR width, height


def test_png_export_renders_a_real_png(heatmap, tmp_path):
    available, reason = png_export_available()
    if not available:
        pytest.skip(f"NO CHROMIUM, PNG EXPORT NOT TESTED: {reason}")
    data = export_png(heatmap, tmp_path / "heatmap.png", scale=2).read_bytes()
    assert len(data) > 10_000
    assert _png_size(data) == (2 * heatmap.layout.width, 2 * heatmap.layout.height)


def test_png_export_without_a_browser_says_how_to_fix_it(heatmap, tmp_path, monkeypatch):
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-such-chromium"))
    export.png_export_available.cache_clear()
    try:
        available, reason = png_export_available()
        assert not available and "apt-get install chromium" in reason
        with pytest.raises(PngExportUnavailable, match="apt-get install chromium, or set BROWSER_PATH"):
            export_png(heatmap, tmp_path / "heatmap.png")
        assert not (tmp_path / "heatmap.png").exists()
    finally:
        export.png_export_available.cache_clear()


def test_bundle_holds_every_figure_and_table(heatmap, signals, tmp_path):
    latency = figures.latency_curve(json.loads((FIXTURES / "latency.json").read_text()))
    path = export_bundle({"heatmap": heatmap, "latency": latency}, {"signals": signals}, tmp_path / "out" / "b.zip")
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        expected = {"heatmap.html", "latency.html", "plotly.min.js", "signals.csv"}  # the pages share one plotly.js
        if png_export_available()[0]:
            expected |= {"heatmap.png", "latency.png"}
            assert archive.read("latency.png")[:8] == PNG_MAGIC
        else:
            expected |= {"PNG_SKIPPED.txt"}
        assert names == expected
        assert archive.read("signals.csv").decode().startswith("task,")


def test_bundle_rejects_names_that_are_not_file_stems(heatmap, tmp_path):
    with pytest.raises(ValueError, match=r"bundle member name '\.\./evil' must be a plain file stem"):
        export_bundle({"../evil": heatmap}, {}, tmp_path / "b.zip")
