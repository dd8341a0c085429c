"""Exports stay private and bounded: ExportFolder's modes, limits and expiry; the UI's exports use it in place."""

from __future__ import annotations

import stat
from pathlib import Path

import gradio as gr
import pandas as pd
import pytest
from gradio import processing_utils

from analysis.export import ExportFolder
from app.ui import EXPORT_SWEEP, Actions, build_demo
from app.ui_data import StudioData
from app.ui_handlers import Controls, Sampling, Studio, generate_stream
from tests.test_ui import EXAMPLES, HashEmbedder, write_tiny_assets


class Clock:
    """A settable clock for ExportFolder (seconds)."""

    def __init__(self, now: float = 1_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def write_export(folder: ExportFolder, size: int = 10, name: str = "routing.csv") -> Path:
    with folder.new() as directory:
        (directory / name).write_bytes(b"x" * size)
    return directory


def test_exports_are_private_to_the_user(tmp_path):
    folder = ExportFolder(tmp_path / "cache")
    directory = write_export(folder)
    with folder.new() as nested:
        (nested / "sub").mkdir()
        (nested / "sub" / "plot.html").write_text("<html>")
    assert folder.root.parent == tmp_path / "cache"  # the parent is made when missing
    assert mode(folder.root) == 0o700 and mode(directory) == 0o700 and mode(nested / "sub") == 0o700
    assert mode(directory / "routing.csv") == 0o600 and mode(nested / "sub" / "plot.html") == 0o600


def test_the_oldest_exports_go_beyond_the_count(tmp_path):
    clock = Clock()
    folder = ExportFolder(tmp_path, max_exports=3, clock=clock)
    made = []
    for _ in range(5):
        clock.now += 1
        made.append(write_export(folder))
    assert folder.exports() == made[2:]
    assert not made[0].exists() and not made[1].exists()


def test_the_oldest_exports_go_beyond_the_size_but_the_newest_stays(tmp_path):
    clock = Clock()
    folder = ExportFolder(tmp_path, max_bytes=250, clock=clock)
    made = []
    for size in (100, 100, 100):
        clock.now += 1
        made.append(write_export(folder, size))
    assert folder.exports() == made[1:]  # 300 bytes > 250: the oldest goes
    clock.now += 1
    huge = write_export(folder, 1000)
    assert folder.exports() == [huge]  # over the limit alone, but the export just made is kept


def test_exports_expire(tmp_path):
    clock = Clock()
    folder = ExportFolder(tmp_path, max_age_s=60, clock=clock)
    first = write_export(folder)
    clock.now += 30
    second = write_export(folder)
    assert folder.exports() == [first, second]
    clock.now += 40  # first is 70 s old, second 40 s
    assert folder.prune() == [first] and folder.exports() == [second]


def test_a_failed_export_leaves_nothing(tmp_path):
    folder = ExportFolder(tmp_path)
    with pytest.raises(RuntimeError, match="render failed"), folder.new() as directory:
        (directory / "half.html").write_text("<ht")
        raise RuntimeError("render failed")
    assert folder.exports() == [] and not directory.exists()


def test_close_deletes_every_export(tmp_path):
    folder = ExportFolder(tmp_path)
    write_export(folder)
    folder.close()
    assert not folder.root.exists()


@pytest.mark.parametrize(
    "limits, match",
    [
        ({"max_exports": 0}, "max_exports must be positive, got 0"),
        ({"max_bytes": -1}, "max_bytes must be positive, got -1"),
        ({"max_age_s": 0.0}, "max_age_s must be positive, got 0.0"),
    ],
)
def test_bad_limits_are_named(tmp_path, limits, match):
    with pytest.raises(ValueError, match=match):
        ExportFolder(tmp_path, **limits)


def test_fifty_ui_exports_keep_only_the_newest_in_place(engine, tmp_path):
    """50 exports left 169.5 MB in the temp dir and a copy of each in Gradio's cache; now a bounded, private set."""
    assets = write_tiny_assets(tmp_path / "assets")
    studio = Studio(engine, StudioData.load(assets, [(a.name, a.source) for a in engine.pool.adapters]), HashEmbedder())
    downloads = gr.File(file_count="multiple")
    downloads.GRADIO_CACHE = str(tmp_path / "gradio-cache")  # what the page's Downloads component uses
    folder = ExportFolder(downloads.GRADIO_CACHE, max_exports=4)
    actions = Actions(studio, folder)
    *_, (_, view) = generate_stream(studio, "what is two + three ?", Controls(), Sampling("fused", 4))
    shown = view.kept()
    for _ in range(50):
        served = actions.export(shown, "table (CSV)", "png", 2, True)
    assert len(folder.exports()) == 4
    assert served["visible"] is True
    path, metadata = served["value"]  # the download first, its reproducibility record beside it
    assert Path(metadata).name == "metadata.json" and Path(metadata).parent == Path(path).parent
    assert Path(path).parent in folder.exports() and mode(Path(path)) == 0o600
    pd.testing.assert_frame_equal(pd.read_csv(path), view.table, check_dtype=False)
    # Gradio serves a file inside the component's cache where it is: no second copy
    moved = processing_utils.move_files_to_cache(downloads.postprocess([path, metadata]), downloads, postprocess=True)
    assert [entry["path"] for entry in moved] == [path, metadata]
    assert downloads.temp_files == {path, metadata}  # so Gradio's delete_cache sweeps them
    assert sorted(p.name for p in Path(downloads.GRADIO_CACHE).iterdir()) == [folder.root.name]


def test_the_page_sweeps_gradio_cache_and_exports_inside_it(engine, tmp_path):
    demo = build_demo(engine, examples=EXAMPLES, assets_dir=write_tiny_assets(tmp_path), embedder=HashEmbedder())
    assert demo.delete_cache == EXPORT_SWEEP
    exports = [
        fn.fn.__self__
        for fn in demo.fns.values()
        if fn.name == "export" and isinstance(getattr(fn.fn, "__self__", None), Actions)
    ]
    assert len(exports) == 1  # one Download button for every figure, format, the table and the zip
    downloads = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "downloads")
    assert exports[0].exports.root.parent == Path(downloads.GRADIO_CACHE)
