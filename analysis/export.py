"""Writing figures and tables to disk: self-contained HTML, PNG through Kaleido and Chromium, CSV, and zip bundles.

`ExportFolder` keeps a server's exports private to the user running it and bounded: recent ones only.

PNG export needs a Chromium-based browser (Kaleido 1.x drives one headless, sandbox off, which also works as
root). We look for it once: `$BROWSER_PATH`, then `chromium`, `chromium-browser`, `google-chrome` on PATH, then
the copy `plotly_get_chrome` downloads. Without one, `export_png` raises `PngExportUnavailable` saying how to
fix it, and `png_export_available()` tells a UI why its button is disabled without rendering anything.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shutil
import tempfile
import threading
import time
import weakref
import zipfile
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
HOW_TO_FIX = "install Chromium: apt-get install chromium, or set BROWSER_PATH to a Chromium or Chrome executable"
DEFAULT_SIZE = (900, 600)  # width, height in layout pixels when a figure does not set its own
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class PngExportUnavailable(RuntimeError):
    """PNG export cannot run here (no Kaleido or no Chromium); the message says how to fix it."""


def _find_browser() -> str | None:
    """Path of a Chromium-based browser, or None; `$BROWSER_PATH` wins when it points to an executable."""
    override = os.environ.get("BROWSER_PATH")
    if override:
        return override if os.access(override, os.X_OK) else None
    for name in BROWSER_NAMES:
        if path := shutil.which(name):
            return path
    try:  # the browser that `plotly_get_chrome` / `kaleido_get_chrome` downloads into the package
        from choreographer.browsers.chromium import Chromium

        return Chromium.find_browser(skip_local=False, skip_typical=False)
    except (ImportError, RuntimeError, OSError):
        return None


@cache
def png_export_available() -> tuple[bool, str]:
    """(True, browser path) when PNG export can run, else (False, why and how to fix). Cached; renders nothing.

    Call `png_export_available.cache_clear()` after installing a browser in a running process.
    """
    if importlib.util.find_spec("kaleido") is None:
        return False, "PNG export needs the kaleido package (pip install 'kaleido>=1.0')"
    override = os.environ.get("BROWSER_PATH")
    if override and not os.access(override, os.X_OK):
        return False, f"BROWSER_PATH={override!r} is not an executable; {HOW_TO_FIX}"
    browser = _find_browser()
    if browser is None:
        return False, f"no Chromium found for PNG export; {HOW_TO_FIX}"
    return True, browser


def _ensure_browser() -> None:
    """Raise PngExportUnavailable unless a browser is found; point Kaleido at it through BROWSER_PATH."""
    available, reason = png_export_available()
    if not available:
        raise PngExportUnavailable(reason)
    os.environ.setdefault("BROWSER_PATH", reason)


def _size(fig: go.Figure) -> tuple[int, int]:
    return fig.layout.width or DEFAULT_SIZE[0], fig.layout.height or DEFAULT_SIZE[1]


def _write_pngs(figures: list[go.Figure], paths: list[Path], scale: float) -> None:
    """Render every figure in one browser session (starting Chromium costs about a second)."""
    _ensure_browser()
    import kaleido
    from kaleido.errors import ChromeNotFoundError

    specs = []
    for fig, path in zip(figures, paths, strict=True):
        width, height = _size(fig)
        options = dict(format="png", width=width, height=height, scale=scale)
        specs.append(dict(fig=fig.to_dict(), path=path, opts=options))
    try:
        # mathjax off: its default is a CDN URL, and the figures need no LaTeX; plotly.js comes from the
        # installed plotly package, so rendering works offline
        kaleido.write_fig_from_object_sync(specs, kopts=dict(mathjax=False))
    except ChromeNotFoundError as error:
        raise PngExportUnavailable(f"Kaleido could not start Chromium ({error}); {HOW_TO_FIX}") from error


def export_png(fig: go.Figure, path: str | Path, scale: float = 2) -> Path:
    """Write `fig` as a PNG at its layout size times `scale`; raises PngExportUnavailable without Chromium."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_pngs([fig], [path], scale)
    return path


def export_html(fig: go.Figure, path: str | Path) -> Path:
    """Write `fig` as one self-contained HTML file (plotly.js inlined, about 4.8 MB; works offline)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.write_html(path, include_plotlyjs=True, include_mathjax=False, full_html=True)
    return path


def export_csv(df: pd.DataFrame, path: str | Path) -> Path:
    """Write `df` as CSV; the index is kept unless it is the default 0..n-1 range (e.g. a task x adapter matrix)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    default_index = isinstance(df.index, pd.RangeIndex) and df.index.name is None
    df.to_csv(path, index=not default_index)
    return path


def _check_names(names: list[str]) -> None:
    for name in names:
        if not _SAFE_NAME.match(name):
            raise ValueError(f"bundle member name {name!r} must be a plain file stem (letters, digits, '_', '-', '.')")


def export_bundle(
    figures: dict[str, go.Figure], tables: dict[str, pd.DataFrame], path_zip: str | Path, scale: float = 2
) -> Path:
    """One zip with `<name>.html` (+ `<name>.png` when PNG export is available) per figure and `<name>.csv` per table.

    Without Chromium the zip also holds `PNG_SKIPPED.txt` with the reason, so its absence is explained.
    """
    _check_names([*figures, *tables])
    path_zip = Path(path_zip)
    path_zip.parent.mkdir(parents=True, exist_ok=True)
    png_ok, reason = png_export_available()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        members = [export_html(fig, folder / f"{name}.html") for name, fig in figures.items()]
        if figures and png_ok:
            pngs = [folder / f"{name}.png" for name in figures]
            _write_pngs(list(figures.values()), pngs, scale)
            members += pngs
        elif figures:
            (folder / "PNG_SKIPPED.txt").write_text(f"PNG images were not rendered: {reason}\n", encoding="utf-8")
            members.append(folder / "PNG_SKIPPED.txt")
        members += [export_csv(df, folder / f"{name}.csv") for name, df in tables.items()]
        with zipfile.ZipFile(path_zip, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for member in members:
                archive.write(member, arcname=member.name)
    return path_zip


class ExportFolder:
    """A private folder of recent exports: one sub-folder per export, the oldest deleted beyond the limits.

    1. The folder is made by `tempfile.mkdtemp` (mode 0o700) and each export's sub-folder likewise; the files
       written into one are made 0o600 (they hold the user's prompt), so no other local user can read them.
    2. After each export, sub-folders older than `max_age_s` are deleted, then the oldest ones until at most
       `max_exports` remain and they hold at most `max_bytes` together. The export just made is always kept.
    3. The whole folder is deleted when this object is garbage-collected or the process exits.
    """

    def __init__(
        self,
        parent: str | Path | None = None,
        *,
        max_exports: int = 16,
        max_bytes: int = 128 * 2**20,
        max_age_s: float = 15 * 60,
        clock: Callable[[], float] = time.time,
    ):
        for name, value in (("max_exports", max_exports), ("max_bytes", max_bytes), ("max_age_s", max_age_s)):
            if not value > 0:
                raise ValueError(f"ExportFolder {name} must be positive, got {value!r}")
        if parent is not None:
            Path(parent).mkdir(parents=True, exist_ok=True)
        self.root = Path(tempfile.mkdtemp(prefix="logo-studio-exports-", dir=parent))
        self.max_exports, self.max_bytes, self.max_age_s = max_exports, max_bytes, max_age_s
        self.clock = clock
        self._lock = threading.Lock()
        self._finalizer = weakref.finalize(self, shutil.rmtree, self.root, True)

    @contextlib.contextmanager
    def new(self) -> Iterator[Path]:
        """A fresh private sub-folder to write one export into; made private and pruned on exit (removed on error)."""
        with self._lock:  # the name starts with the creation time (ns), so names sort oldest first
            folder = Path(tempfile.mkdtemp(prefix=f"{int(self.clock() * 1e9):020d}-", dir=self.root))
        try:
            yield folder
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        for path in folder.rglob("*"):
            path.chmod(0o700 if path.is_dir() else 0o600)
        self.prune(keep=folder)

    def exports(self) -> list[Path]:
        """The export sub-folders, oldest first."""
        return sorted(p for p in self.root.iterdir() if p.is_dir())

    def prune(self, keep: Path | None = None) -> list[Path]:
        """Delete expired exports, then the oldest beyond max_exports / max_bytes (never `keep`); the deleted."""
        with self._lock:
            now_ns = int(self.clock() * 1e9)
            folders = [(p, _folder_bytes(p), int(p.name.split("-")[0])) for p in self.exports()]
            deleted = [p for p, _, born in folders if p != keep and now_ns - born > self.max_age_s * 1e9]
            kept = [(p, size) for p, size, _ in folders if p not in deleted]
            while len(kept) > self.max_exports or sum(size for _, size in kept) > self.max_bytes:
                oldest = next((entry for entry in kept if entry[0] != keep), None)
                if oldest is None:  # only the export just made is left: it stays however large it is
                    break
                kept.remove(oldest)
                deleted.append(oldest[0])
            for folder in deleted:
                shutil.rmtree(folder, ignore_errors=True)
            return deleted

    def close(self) -> None:
        """Delete the folder and every export in it now."""
        self._finalizer()


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
