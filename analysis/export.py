"""Writing figures and tables to disk: HTML, PNG / SVG / PDF through Kaleido and Chromium, CSV, and zip bundles.

`ExportFolder` keeps a server's exports private to the user running it and bounded: recent ones only.

Exports for papers: `export_figure(fig, path, fmt, scale=, titles=, metadata=)` writes one figure as png, svg,
pdf or html and embeds `metadata` (see `export_metadata`: prompt, answer, settings, model, the adapters' file
hashes, library versions) in the file itself: a PNG iTXt chunk, an SVG <metadata> element, a PDF Info entry
(an incremental update), an HTML <script type="application/json">; `read_metadata(path)` reads it back.
`export_bundle` writes a zip whose HTML files share one plotly.min.js beside them, and holds metadata.json.

PNG export needs a Chromium-based browser (Kaleido 1.x drives one headless, sandbox off, which also works as
root). We look for it once: `$BROWSER_PATH`, then `chromium`, `chromium-browser`, `google-chrome` on PATH, then
the copy `plotly_get_chrome` downloads. Without one, `export_png` raises `PngExportUnavailable` saying how to
fix it, and `png_export_available()` tells a UI why its button is disabled without rendering anything.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import re
import shutil
import struct
import tempfile
import threading
import time
import weakref
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping
from functools import cache
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
HOW_TO_FIX = "install Chromium: apt-get install chromium, or set BROWSER_PATH to a Chromium or Chrome executable"
DEFAULT_SIZE = (900, 600)  # width, height in layout pixels when a figure does not set its own
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
IMAGE_FORMATS = ("png", "svg", "pdf")
FORMATS = (*IMAGE_FORMATS, "html")
MAX_SCALE = 8  # a PNG of 900 x 600 layout pixels at scale 8 is 7200 x 4800
METADATA_KEY = "logo-export"  # the PNG chunk keyword, the HTML script id, the PDF Info key
METADATA_FILE = "metadata.json"
PLOTLY_JS = "plotly.min.js"
VERSIONED = ("logo-studio", "torch", "transformers", "peft", "safetensors", "plotly", "kaleido", "gradio", "numpy")


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


def _write_pngs(figures: list[go.Figure], paths: list[Path], scale: float, fmt: str = "png") -> None:
    """Render every figure (png, svg or pdf) in one browser session (starting Chromium costs about a second)."""
    _ensure_browser()
    import kaleido
    from kaleido.errors import ChromeNotFoundError

    specs = []
    for fig, path in zip(figures, paths, strict=True):
        width, height = _size(fig)
        options = dict(format=fmt, width=width, height=height, scale=scale)
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


def export_html(fig: go.Figure, path: str | Path, plotlyjs: str = "inline") -> Path:
    """Write `fig` as HTML that fills the browser window (resizes with it).

    plotlyjs="inline": one self-contained file (plotly.js inlined, about 4.8 MB; works offline);
    "shared": the page loads `plotly.min.js` from its own folder (no CDN), written there once, so many figures
    share one copy (export_bundle).
    """
    if plotlyjs not in ("inline", "shared"):
        raise ValueError(f"plotlyjs={plotlyjs!r}: choose 'inline' or 'shared'")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = go.Figure(fig).update_layout(width=None, height=None, autosize=True)
    include = True
    if plotlyjs == "shared":
        include = PLOTLY_JS
        if not (path.parent / PLOTLY_JS).exists():
            from plotly.offline import get_plotlyjs

            (path.parent / PLOTLY_JS).write_text(get_plotlyjs(), encoding="utf-8")
    fig.write_html(
        path,
        include_plotlyjs=include,
        include_mathjax=False,
        full_html=True,
        default_width="100%",
        default_height="100vh",
        config={"responsive": True},
    )
    return path


def without_titles(fig: go.Figure) -> go.Figure:
    """A copy of `fig` without its title (for a paper, whose caption says it); axis titles stay."""
    return go.Figure(fig).update_layout(title_text=None)


def export_figure(
    fig: go.Figure,
    path: str | Path,
    fmt: str,
    *,
    scale: float = 2,
    titles: bool = True,
    metadata: Mapping | None = None,
    plotlyjs: str = "inline",
) -> Path:
    """Write `fig` as `fmt` (png, svg, pdf, html) with `metadata` embedded (see the module docstring).

    scale multiplies the layout size for png (1 to MAX_SCALE); svg and pdf are vector, scale does not apply.
    Raises PngExportUnavailable for png/svg/pdf without Chromium (png_export_available says why).
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}: choose one of {', '.join(FORMATS)}")
    if not (isinstance(scale, int | float) and 0 < scale <= MAX_SCALE):
        raise ValueError(f"export scale {scale!r} must be a number in (0, {MAX_SCALE}]: 2 suits most papers")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = fig if titles else without_titles(fig)
    if fmt == "html":
        export_html(fig, path, plotlyjs=plotlyjs)
    else:
        _write_pngs([fig], [path], scale if fmt == "png" else 1, fmt)
    if metadata is not None:
        embed_metadata(path, metadata)
    return path


# ---------------------------------------------------------------- metadata


def library_versions() -> dict[str, str | None]:
    """Versions of Python and the libraries an export depends on (None: not installed)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


_HASHES: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes, cached by (path, size, mtime)."""
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _HASHES:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(2**20), b""):
                digest.update(block)
        _HASHES[key] = digest.hexdigest()
    return _HASHES[key]


def adapter_hashes(sources: Mapping[str, str | Path | None]) -> dict[str, dict[str, str] | None]:
    """Adapter name -> {file name: sha256} of its adapter_config.json and adapter_model.safetensors.

    A source that is not a directory (a random pool, an uploaded adapter kept in memory) maps to None.
    """
    hashes: dict[str, dict[str, str] | None] = {}
    for name, source in sources.items():
        directory = Path(source) if source else None
        if directory is None or not directory.is_dir():
            hashes[name] = None
            continue
        files = ("adapter_config.json", "adapter_model.safetensors")
        hashes[name] = {f: file_sha256(directory / f) for f in files if (directory / f).is_file()}
    return hashes


def export_metadata(
    *,
    prompt: str | None,
    answer: str | None,
    settings: Mapping,
    model: str,
    adapters: Mapping[str, str | Path | None],
    extra: Mapping | None = None,
) -> dict:
    """What reproduces an export: prompt, answer, all settings, the model, the adapters' file hashes, versions.

    adapters: name -> directory (or None) of every adapter in the pool the figure was made with; a value may
    also be an already computed {file: sha256} dict (an uploaded adapter whose files are gone).
    """
    hashes = adapter_hashes({n: s for n, s in adapters.items() if not isinstance(s, Mapping)})
    hashes.update({n: dict(s) for n, s in adapters.items() if isinstance(s, Mapping)})
    return {
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "prompt": prompt,
        "answer": answer,
        "settings": dict(settings),
        "model": model,
        "adapters": {n: hashes[n] for n in adapters},
        "versions": library_versions(),
        **({"extra": dict(extra)} if extra else {}),
    }


def _metadata_json(metadata: Mapping) -> str:
    return json.dumps(metadata, indent=2, sort_keys=True, default=str, ensure_ascii=False)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _pdf_string(text: str) -> bytes:
    """A PDF text string: UTF-16BE with its BOM, as a hex string (no escaping needed)."""
    return b"<" + ("\ufeff" + text).encode("utf-16-be").hex().upper().encode() + b">"


def embed_metadata(path: str | Path, metadata: Mapping) -> Path:
    """Put `metadata` (JSON) inside the file at `path`, by its format (the suffix): png, svg, pdf or html."""
    path = Path(path)
    text = _metadata_json(metadata)
    fmt = path.suffix.lower().lstrip(".")
    data = path.read_bytes()
    if fmt == "png":  # an iTXt chunk before IEND: keyword, no compression, UTF-8 text
        end = data.rindex(b"IEND") - 4
        chunk = _png_chunk(b"iTXt", METADATA_KEY.encode() + b"\0\0\0\0\0" + text.encode())
        data = data[:end] + chunk + data[end:]
    elif fmt == "svg":
        close = data.rindex(b"</svg>")
        escaped = text.replace("]]>", "]]]]><![CDATA[>")
        data = data[:close] + f'<metadata id="{METADATA_KEY}"><![CDATA[{escaped}]]></metadata>'.encode() + data[close:]
    elif fmt == "html":
        close = data.rindex(b"</body>")
        escaped = text.replace("</", "<\\/")
        tag = f'<script type="application/json" id="{METADATA_KEY}">{escaped}</script>\n'
        data = data[:close] + tag.encode() + data[close:]
    elif fmt == "pdf":
        data = _pdf_with_info(data, text)
    else:
        raise ValueError(f"cannot embed metadata in {path.name}: use png, svg, pdf or html")
    path.write_bytes(data)
    return path


def _pdf_with_info(data: bytes, text: str) -> bytes:
    """`data` plus an incremental update whose trailer points to a new Info dictionary holding `text`."""
    start = int(re.findall(rb"startxref\s+(\d+)", data)[-1])
    sizes = re.findall(rb"/Size\s+(\d+)", data)
    roots = re.findall(rb"/Root\s+(\d+\s+\d+\s+R)", data)
    if not sizes or not roots:
        raise ValueError("this PDF has no readable trailer (/Size, /Root): metadata cannot be added")
    number = max(int(n) for n in sizes)
    body = data if data.endswith(b"\n") else data + b"\n"
    offset = len(body)
    obj = (
        f"{number} 0 obj\n<< /Producer (LoGo Studio) /{METADATA_KEY.replace('-', '')} ".encode()
        + _pdf_string(text)
        + b" >>\nendobj\n"
    )
    xref_at = offset + len(obj)
    xref = f"xref\n{number} 1\n{offset:010d} 00000 n \n".encode()
    trailer = (
        f"trailer\n<< /Size {number + 1} /Root {roots[-1].decode()} /Info {number} 0 R /Prev {start} >>\n"
        f"startxref\n{xref_at}\n%%EOF\n"
    ).encode()
    return body + obj + xref + trailer


def read_metadata(path: str | Path) -> dict:
    """The metadata `embed_metadata` put in a png, svg, pdf or html file (or a bundle's metadata.json)."""
    path = Path(path)
    data = path.read_bytes()
    fmt = path.suffix.lower().lstrip(".")
    if fmt == "json":
        return json.loads(data)
    if fmt == "zip":
        with zipfile.ZipFile(path) as archive:
            return json.loads(archive.read(METADATA_FILE))
    if fmt == "png":
        at = 8
        while at < len(data):
            (length,), kind = struct.unpack(">I", data[at : at + 4]), data[at + 4 : at + 8]
            body = data[at + 8 : at + 8 + length]
            if kind == b"iTXt" and body.startswith(METADATA_KEY.encode() + b"\0"):
                return json.loads(body[len(METADATA_KEY) + 5 :])
            at += 12 + length
    elif fmt == "svg":
        found = re.search(
            rb'<metadata id="' + METADATA_KEY.encode() + rb'"><!\[CDATA\[(.*)\]\]></metadata>', data, re.S
        )
        if found:
            return json.loads(found.group(1).replace(b"]]]]><![CDATA[>", b"]]>"))
    elif fmt == "html":
        found = re.search(
            rb'<script type="application/json" id="' + METADATA_KEY.encode() + rb'">(.*?)</script>', data, re.S
        )
        if found:
            return json.loads(found.group(1).replace(b"<\\/", b"</"))
    elif fmt == "pdf":
        found = re.findall(rb"/" + METADATA_KEY.replace("-", "").encode() + rb" <([0-9A-F]+)>", data)
        if found:
            return json.loads(bytes.fromhex(found[-1].decode()).decode("utf-16-be").lstrip("\ufeff"))
    raise ValueError(f"{path.name} holds no LoGo export metadata")


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
    figures: dict[str, go.Figure],
    tables: dict[str, pd.DataFrame],
    path_zip: str | Path,
    scale: float = 2,
    *,
    formats: tuple[str, ...] = ("html", "png"),
    titles: bool = True,
    metadata: Mapping | None = None,
) -> Path:
    """One zip: per figure `<name>.<fmt>` for each of `formats`, per table `<name>.csv`, and `metadata.json`.

    The HTML files share one `plotly.min.js` beside them (no CDN; about 4.8 MB once, not per figure). Without
    Chromium the images are left out and the zip holds `PNG_SKIPPED.txt` with the reason, so their absence is
    explained. Each image and HTML file carries the metadata too.
    """
    _check_names([*figures, *tables])
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValueError(f"unknown export formats {unknown}: choose among {', '.join(FORMATS)}")
    path_zip = Path(path_zip)
    path_zip.parent.mkdir(parents=True, exist_ok=True)
    png_ok, reason = png_export_available()
    figures = figures if titles else {name: without_titles(fig) for name, fig in figures.items()}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        members = []
        if "html" in formats:
            members += [export_html(fig, folder / f"{name}.html", plotlyjs="shared") for name, fig in figures.items()]
            if figures:
                members.append(folder / PLOTLY_JS)
        images = [f for f in formats if f in IMAGE_FORMATS]
        if figures and images and png_ok:
            for fmt in images:
                paths = [folder / f"{name}.{fmt}" for name in figures]
                _write_pngs(list(figures.values()), paths, scale if fmt == "png" else 1, fmt)
                members += paths
        elif figures and images:
            (folder / "PNG_SKIPPED.txt").write_text(f"images were not rendered: {reason}\n", encoding="utf-8")
            members.append(folder / "PNG_SKIPPED.txt")
        if metadata is not None:
            for member in members:
                if member.suffix in (".png", ".svg", ".pdf", ".html"):
                    embed_metadata(member, metadata)
            (folder / METADATA_FILE).write_text(_metadata_json(metadata), encoding="utf-8")
            members.append(folder / METADATA_FILE)
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
