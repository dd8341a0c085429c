"""Exports for papers: each format's file type (magic bytes), its embedded metadata, scale, titles, shared plotly.js."""

from __future__ import annotations

import hashlib
import json
import struct
import zipfile

import plotly.graph_objects as go
import pytest

from analysis import export

MAGIC = {"png": b"\x89PNG\r\n\x1a\n", "pdf": b"%PDF-", "svg": b"<svg", "html": b"<!DOCTYPE html>"}
needs_browser = pytest.mark.skipif(not export.png_export_available()[0], reason="no Chromium for Kaleido here")


def figure() -> go.Figure:
    return go.Figure(go.Scatter(x=[1, 2, 3], y=[3, 1, 2])).update_layout(title="Routing scores", width=400, height=300)


def metadata(tmp_path) -> dict:
    adapter = tmp_path / "adapters" / "en_fr"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text('{"r": 4}')
    (adapter / "adapter_model.safetensors").write_bytes(b"weights")
    return export.export_metadata(
        prompt="Translate </script> ]]> to French: good night.",
        answer="bonne nuit",
        settings={"k": 3, "signal": "norm", "block": -2},
        model="HuggingFaceTB/SmolLM2-135M-Instruct",
        adapters={"en_fr": adapter, "uploaded": None},
    )


def test_metadata_holds_prompt_settings_model_hashes_and_versions(tmp_path):
    md = metadata(tmp_path)
    assert md["prompt"].startswith("Translate") and md["answer"] == "bonne nuit" and md["settings"]["k"] == 3
    assert md["adapters"]["en_fr"]["adapter_model.safetensors"] == hashlib.sha256(b"weights").hexdigest()
    assert md["adapters"]["uploaded"] is None
    assert md["versions"]["plotly"] and md["versions"]["python"]
    json.dumps(md)  # plain JSON


@pytest.mark.parametrize(
    "fmt",
    [
        "html",
        pytest.param("png", marks=needs_browser),
        pytest.param("svg", marks=needs_browser),
        pytest.param("pdf", marks=needs_browser),
    ],
)
def test_each_format_has_its_file_type_and_carries_the_metadata(tmp_path, fmt):
    md = metadata(tmp_path)
    path = export.export_figure(figure(), tmp_path / f"scores.{fmt}", fmt, metadata=md)
    data = path.read_bytes()
    assert data[: len(MAGIC[fmt])].lower() == MAGIC[fmt].lower()
    assert export.read_metadata(path) == md


@needs_browser
def test_png_scale_and_titles(tmp_path):
    small = export.export_figure(figure(), tmp_path / "s.png", "png", scale=1)
    large = export.export_figure(figure(), tmp_path / "l.png", "png", scale=3)
    size = lambda p: struct.unpack(">II", p.read_bytes()[16:24])  # noqa: E731  (the IHDR width, height)
    assert size(small) == (400, 300) and size(large) == (1200, 900)
    titled = export.export_figure(figure(), tmp_path / "t.svg", "svg").read_text()
    bare = export.export_figure(figure(), tmp_path / "b.svg", "svg", titles=False).read_text()
    assert "Routing scores" in titled and "Routing scores" not in bare


def test_html_shares_plotly_js_and_fills_the_window(tmp_path):
    md = metadata(tmp_path)
    path = export.export_bundle(
        {"heatmap": figure(), "scatter": figure()}, {}, tmp_path / "x.zip", formats=("html",), metadata=md
    )
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        assert sorted(names) == ["heatmap.html", "metadata.json", "plotly.min.js", "scatter.html"]
        page = archive.read("heatmap.html").decode()
        assert len(page) < 100_000 and '<script charset="utf-8" src="plotly.min.js"></script>' in page
        assert "cdn" not in page.lower() and "100vh" in page and '"responsive": true' in page
        assert json.loads(archive.read("metadata.json")) == md
    assert export.read_metadata(path) == md


@needs_browser
def test_bundle_holds_every_chosen_format(tmp_path):
    path = export.export_bundle(
        {"scores": figure()}, {}, tmp_path / "x.zip", formats=("png", "svg", "pdf"), metadata=metadata(tmp_path)
    )
    with zipfile.ZipFile(path) as archive:
        assert sorted(archive.namelist()) == ["metadata.json", "scores.pdf", "scores.png", "scores.svg"]
        assert archive.read("scores.pdf").startswith(b"%PDF-")


def test_bad_format_and_scale_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown export format 'jpg': choose one of png, svg, pdf, html"):
        export.export_figure(figure(), tmp_path / "x.jpg", "jpg")
    with pytest.raises(ValueError, match=r"export scale 0 must be a number in \(0, 8\]"):
        export.export_figure(figure(), tmp_path / "x.png", "png", scale=0)
