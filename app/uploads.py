"""Your own adapters: a PEFT LoRA adapter uploaded in the page joins the pool for that browser session only.

Contract for the page (app/ui.py wires it; nothing here draws unless `upload_panel` is called):

- Keep one `SessionAdapters` per browser session in a `gr.State(SessionAdapters())`. Gradio copies the initial
  value for each new session (an empty one), so no session ever sees another's uploads.
- `add_upload(state, engine, files=..., hub_id=..., name=..., progress=...) -> (state, message)`: files are the
  paths Gradio gives for a `gr.File(file_count="multiple")` (one .zip, or adapter_config.json +
  adapter_model.safetensors); or a hub id. It reads and validates the adapter against the base model with the
  engine's own checks (logo/adapters.py), builds the session's engine and computes the calibration statistics of
  the default routing, reporting progress through `progress(fraction, desc=...)` (a `gr.Progress()` works).
  On a bad input it raises `UploadError` whose message names the problem and the fix: show it (`gr.Warning`)
  and keep the old state.
- `remove_upload(state, engine, name) -> (state, message)`.
- `session_engine(engine, state) -> LoGoEngine`: the engine to route and generate with for this session: the
  shared engine itself when nothing was uploaded, else an engine on the same base model whose pool is the zoo's
  followed by the session's adapters (the zoo's stacks are shared, not copied; see AdapterPool.with_adapters).
  Route and generate with it exactly as with the shared engine; its calibration statistics are its own.
- `state.names` (the uploaded adapters' names), `state.describe()` (markdown: each adapter, its rank, modules
  and file hashes), `state.hashes` (name -> {file: sha256}, for analysis.export.export_metadata).
- Limits: `UPLOAD_MAX_BYTES` per upload (also what `max_file_size` of `launch()` should be),
  `MAX_SESSION_ADAPTERS` per session; the pool's memory check refuses adapters that do not fit.
- `upload_panel(engine, state)`: a ready-made gr.Column (file input, hub id, name, add / remove buttons and a
  status markdown) with its events wired; returns the components as a dict for tests and further wiring.
  `state` is the page's `gr.State`; after a change the page should re-route (listen to `components["changed"]`,
  a gr.State that is updated after each successful upload or removal).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from logo.adapters import ADAPTER_CONFIG, ADAPTER_WEIGHTS, AdapterError, LoraAdapter, load_adapter
from logo.engine import LoGoEngine
from logo.probe import probe_module_name

UPLOAD_MAX_BYTES = 64 * 2**20  # one upload (a zip or the two files together); LoRA of a small model: a few MB
MAX_SESSION_ADAPTERS = 4
MAX_ZIP_MEMBERS = 16
NEEDED = (ADAPTER_CONFIG, ADAPTER_WEIGHTS)
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,39}$")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")

Progress = Callable[..., object]


class UploadError(ValueError):
    """An upload that is refused; the message names the problem and the fix (show it in the page)."""


@dataclass
class SessionAdapters:
    """One browser session's uploaded adapters and the engine that routes over the zoo and them.

    Copies (Gradio copies a State's value) share the adapters and the engine: both belong to this session.
    """

    adapters: tuple[LoraAdapter, ...] = ()
    hashes: dict[str, dict[str, str]] = field(default_factory=dict)
    engine: LoGoEngine | None = field(default=None, repr=False)

    def __deepcopy__(self, memo) -> SessionAdapters:
        return SessionAdapters(self.adapters, dict(self.hashes), self.engine)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.adapters)

    def describe(self) -> str:
        """Markdown: each uploaded adapter, its rank, how many modules it adapts and its weights' sha256."""
        if not self.adapters:
            return "No adapter of yours yet: upload a PEFT LoRA adapter (a .zip, or its two files) or give a hub id."
        lines = []
        for a in self.adapters:
            ranks = sorted({f[0].shape[0] for f in a.factors.values()})
            digest = self.hashes.get(a.name, {}).get(ADAPTER_WEIGHTS, "")[:12]
            lines.append(f"- **{a.name}**: rank {'/'.join(map(str, ranks))}, {len(a.factors)} modules, sha256 {digest}")
        return "Your adapters (this session only):\n" + "\n".join(lines)


def session_engine(engine: LoGoEngine, state: SessionAdapters | None) -> LoGoEngine:
    """The engine for this session: `engine` itself without uploads, else the session's engine (built once)."""
    if state is None or not state.adapters:
        return engine
    if state.engine is None or state.engine.pool.names != (*engine.pool.names, *state.names):
        pool = engine.pool.with_adapters(list(state.adapters), engine.model)
        state.engine = LoGoEngine(engine.config, base=engine.base, pool=pool)
    return state.engine


def _noop(*args, **kwargs) -> None:
    return None


def add_upload(
    state: SessionAdapters | None,
    engine: LoGoEngine,
    files: Sequence[str | Path] | str | Path | None = None,
    hub_id: str | None = None,
    name: str | None = None,
    progress: Progress | None = None,
) -> tuple[SessionAdapters, str]:
    """Read, validate and add one adapter to this session; (new state, message). Raises UploadError."""
    progress = progress or _noop
    state = state or SessionAdapters()
    if len(state.adapters) >= MAX_SESSION_ADAPTERS:
        raise UploadError(
            f"this session already has {len(state.adapters)} adapters of yours, the most allowed "
            f"({MAX_SESSION_ADAPTERS}): remove one first"
        )
    files = [files] if isinstance(files, str | Path) else list(files or [])
    hub_id = (hub_id or "").strip()
    if bool(files) == bool(hub_id):
        raise UploadError(
            "give either files (a .zip, or adapter_config.json and adapter_model.safetensors) or a hub id, not "
            + ("both" if files else "neither")
        )
    progress(0.05, desc="reading the adapter")
    with tempfile.TemporaryDirectory(prefix="logo-upload-") as tmp:  # mode 0700; deleted with the files in it
        directory = Path(tmp) / "adapter"
        directory.mkdir(mode=0o700)
        fetch = _fetch_hub if hub_id else _gather_files
        default_name = fetch(hub_id or [Path(f) for f in files], directory)
        name = _check_name((name or "").strip() or _clean_name(default_name), engine, state)
        hashes = {f: hashlib.sha256((directory / f).read_bytes()).hexdigest() for f in NEEDED}
        try:
            adapter = load_adapter(directory, name=name)
        except (AdapterError, FileNotFoundError) as err:
            raise UploadError(_without_paths(str(err), tmp)) from None
    adapter = replace(adapter, source=f"upload:{name}")
    progress(0.3, desc="checking it against the base model")
    candidate = SessionAdapters((*state.adapters, adapter), {**state.hashes, name: hashes})
    try:
        session = session_engine(engine, candidate)
        probe = engine.default_routing.probe
        session._probe_stack(probe)
    except AdapterError as err:
        raise UploadError(_without_paths(str(err), "")) from None
    except ValueError as err:  # the probe module is not adapted
        module = probe_module_name(engine.model, probe)
        raise UploadError(
            f"adapter {name!r} does not adapt {module!r}, the module routing probes ({err}): train it with "
            f"target_modules including {probe.module.rsplit('.', 1)[-1]!r}"
        ) from None
    n = len(session.reference_set()[0])
    progress(0.5, desc=f"computing calibration statistics for the pool with {name!r} ({n} reference prompts)")
    if engine.default_routing.uses_reference:
        session.calibration_stats(probe)
    progress(1.0, desc="ready")
    ranks = sorted({f[0].shape[0] for f in adapter.factors.values()})
    return candidate, (
        f"Added **{name}** (rank {'/'.join(map(str, ranks))}, {len(adapter.factors)} modules) to your session's "
        f"pool of {len(session.pool)} adapters; it is routed like the zoo's and only you see it."
    )


def remove_upload(state: SessionAdapters | None, engine: LoGoEngine, name: str) -> tuple[SessionAdapters, str]:
    """This session without adapter `name`; (new state, message). Raises UploadError for an unknown name."""
    state = state or SessionAdapters()
    if name not in state.names:
        raise UploadError(f"no adapter of yours named {name!r}; yours: {', '.join(state.names) or 'none'}")
    kept = tuple(a for a in state.adapters if a.name != name)
    state = SessionAdapters(kept, {n: h for n, h in state.hashes.items() if n != name})
    session_engine(engine, state)
    return state, f"Removed **{name}**."


# ---------------------------------------------------------------- reading uploads


def _clean_name(stem: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_-]+", "_", stem).strip("_-")[:40] or "my_adapter"
    return cleaned if cleaned[0].isalpha() else f"my_{cleaned}"[:40]


def _check_name(name: str, engine: LoGoEngine, state: SessionAdapters) -> str:
    if not _NAME.match(name):
        raise UploadError(
            f"adapter name {name!r} is not allowed: use 1-40 letters, digits, '_' or '-', starting with a letter"
        )
    if name in engine.pool.names or name in state.names:
        raise UploadError(f"the pool already has an adapter named {name!r}: give your adapter another name")
    return name


def _without_paths(message: str, tmp: str) -> str:
    """The engine's message without the private temporary folder's path (the user never saw it)."""
    return message.replace(f"{tmp}/adapter/", "").replace(f"{tmp}/adapter", "the upload") if tmp else message


def _check_pickle(name: str) -> None:
    if name.lower().endswith(PICKLE_SUFFIXES):
        raise UploadError(
            f"{name}: pickle weights are never loaded (they can run code): convert the adapter to "
            f"{ADAPTER_WEIGHTS} (PeftModel.save_pretrained(..., safe_serialization=True)) and upload that"
        )


def _gather_files(files: list[Path], directory: Path) -> str:
    """Put the upload's adapter_config.json and adapter_model.safetensors into `directory`; a default name."""
    total = sum(f.stat().st_size for f in files if f.is_file())
    if total > UPLOAD_MAX_BYTES:
        raise UploadError(
            f"the upload is {total / 2**20:.1f} MiB, over the limit of {UPLOAD_MAX_BYTES / 2**20:.0f} MiB: "
            f"upload a smaller adapter (lower rank or fewer target modules)"
        )
    for f in files:
        _check_pickle(f.name)
    zips = [f for f in files if f.suffix.lower() == ".zip"]
    if zips:
        if len(files) != 1:
            raise UploadError(
                "upload one .zip alone, or the two files adapter_config.json and adapter_model.safetensors"
            )
        _unzip(zips[0], directory)
        return zips[0].stem
    by_role = {}
    for f in files:
        role = (
            ADAPTER_CONFIG if f.suffix.lower() == ".json" else ADAPTER_WEIGHTS if f.suffix == ".safetensors" else None
        )
        if role is None or role in by_role:
            raise UploadError(
                f"{f.name}: expected exactly one adapter_config.json (.json) and one adapter_model.safetensors "
                f"(.safetensors), or one .zip holding them"
            )
        by_role[role] = f
    missing = [r for r in NEEDED if r not in by_role]
    if missing:
        raise UploadError(
            f"the upload lacks {' and '.join(missing)}: a PEFT LoRA adapter needs both {' and '.join(NEEDED)}"
        )
    for role, f in by_role.items():
        shutil.copyfile(f, directory / role)
        (directory / role).chmod(0o600)
    return "my_adapter"


def _unzip(path: Path, directory: Path) -> None:
    """Copy the zip's adapter_config.json and adapter_model.safetensors (at its top or in one folder) out of it.

    Nothing is extracted by its own name: members with '..', absolute paths or links are refused, and only the
    two files' bytes are read, within the size limit.
    """
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        raise UploadError(f"{path.name} is not a readable zip file ({err}): zip the adapter's folder again") from None
    with archive:
        members = [m for m in archive.infolist() if not m.is_dir()]
        if len(members) > MAX_ZIP_MEMBERS:
            raise UploadError(
                f"{path.name} holds {len(members)} files, more than {MAX_ZIP_MEMBERS}: zip only the adapter's "
                f"{' and '.join(NEEDED)}"
            )
        found: dict[str, zipfile.ZipInfo] = {}
        for m in members:
            parts = m.filename.replace("\\", "/").split("/")
            if m.filename.startswith(("/", "\\")) or ".." in parts or re.match(r"^[A-Za-z]:", m.filename):
                raise UploadError(f"{path.name} holds {m.filename!r}, a path outside the archive: refused")
            if stat.S_ISLNK(m.external_attr >> 16):
                raise UploadError(f"{path.name} holds {m.filename!r}, a symbolic link: refused")
            _check_pickle(parts[-1])
            if parts[-1] in NEEDED and len(parts) <= 2:
                if parts[-1] in found:
                    raise UploadError(f"{path.name} holds two {parts[-1]}: zip one adapter only")
                found[parts[-1]] = m
        missing = [f for f in NEEDED if f not in found]
        if missing:
            raise UploadError(
                f"{path.name} has no {' and no '.join(missing)} (at its top or in one folder): a PEFT LoRA adapter "
                f"needs both {' and '.join(NEEDED)}"
            )
        total = sum(m.file_size for m in found.values())
        if total > UPLOAD_MAX_BYTES:
            raise UploadError(
                f"{path.name} unpacks to {total / 2**20:.1f} MiB, over the limit of "
                f"{UPLOAD_MAX_BYTES / 2**20:.0f} MiB: upload a smaller adapter"
            )
        for role, m in found.items():
            with archive.open(m) as source, open(directory / role, "wb") as target:
                copied = _copy_limited(source, target)
            if copied != m.file_size:
                raise UploadError(f"{path.name}: {m.filename} is damaged (its size does not match): zip it again")
            (directory / role).chmod(0o600)


def _copy_limited(source, target) -> int:
    """Copy at most UPLOAD_MAX_BYTES (+1, to notice more); the number of bytes copied."""
    copied = 0
    while block := source.read(min(2**20, UPLOAD_MAX_BYTES + 1 - copied)):
        target.write(block)
        copied += len(block)
        if copied > UPLOAD_MAX_BYTES:
            raise UploadError(f"the upload unpacks to more than {UPLOAD_MAX_BYTES / 2**20:.0f} MiB: refused")
    return copied


def _fetch_hub(hub_id: str, directory: Path) -> str:
    """Download a hub adapter's config and safetensors into `directory` (never a local path); a default name."""
    if not _HUB_ID.match(hub_id) or ".." in hub_id:
        raise UploadError(f"{hub_id!r} is not a hub id: write it as owner/name, e.g. someone/my-lora")
    try:
        from huggingface_hub import snapshot_download

        fetched = Path(
            snapshot_download(hub_id, allow_patterns=list(NEEDED), local_dir=directory / "hub", etag_timeout=5)
        )
    except Exception as err:  # the hub's errors come in many types; all mean "could not fetch"
        raise UploadError(
            f"could not fetch {hub_id!r} from the Hugging Face hub ({err.__class__.__name__}): the hub is not "
            f"reachable from this server or the repository does not exist; upload the adapter's files instead"
        ) from None
    for role in NEEDED:
        if not (fetched / role).is_file():
            raise UploadError(f"hub repository {hub_id!r} has no {role}: it is not a PEFT LoRA adapter in safetensors")
        if (fetched / role).stat().st_size > UPLOAD_MAX_BYTES:
            raise UploadError(f"{hub_id!r}: {role} is over the limit of {UPLOAD_MAX_BYTES / 2**20:.0f} MiB")
        shutil.move(fetched / role, directory / role)
    shutil.rmtree(directory / "hub", ignore_errors=True)
    return hub_id.rsplit("/", 1)[-1]


def adapter_config_summary(state: SessionAdapters) -> str:
    """The uploaded adapters' configs as JSON (name -> r, lora_alpha, target_modules), for the page's details."""
    return json.dumps(
        {
            a.name: {k: a.config.get(k) for k in ("r", "lora_alpha", "target_modules", "use_rslora")}
            for a in state.adapters
        },
        indent=2,
        default=str,
    )


# ---------------------------------------------------------------- the panel


def upload_panel(engine: LoGoEngine, state) -> dict:
    """A ready-made upload panel inside the current gr.Blocks; its components, events wired (see the contract)."""
    import gradio as gr

    with gr.Column() as column:
        gr.Markdown(
            f"**Your own adapter**: a PEFT LoRA adapter of `{engine.config.base_model}` as a .zip or its two files "
            f"(safetensors only, at most {UPLOAD_MAX_BYTES // 2**20} MiB; up to {MAX_SESSION_ADAPTERS} per "
            f"session), or a hub id. It is routed like the zoo's adapters, for you only."
        )
        files = gr.File(file_count="multiple", file_types=[".zip", ".json", ".safetensors"], label="Adapter files")
        with gr.Row():
            hub_id = gr.Textbox(label="or a hub id", placeholder="owner/name")
            name = gr.Textbox(label="name (optional)", placeholder="my_adapter")
        with gr.Row():
            add = gr.Button("Add adapter", variant="primary")
            remove_name = gr.Dropdown(choices=[], label="remove", allow_custom_value=False)
            remove = gr.Button("Remove")
        status = gr.Markdown(SessionAdapters().describe())
        changed = gr.State(0)

    def on_add(current, paths, hub, label, counter, progress=gr.Progress()):  # noqa: B008 (Gradio's idiom)
        try:
            new, message = add_upload(current, engine, files=paths, hub_id=hub, name=label, progress=progress)
        except UploadError as err:
            raise gr.Error(str(err), print_exception=False) from None
        return new, f"{message}\n\n{new.describe()}", gr.update(choices=list(new.names)), None, counter + 1

    def on_remove(current, label, counter):
        try:
            new, message = remove_upload(current, engine, label)
        except UploadError as err:
            raise gr.Error(str(err), print_exception=False) from None
        return new, f"{message}\n\n{new.describe()}", gr.update(choices=list(new.names), value=None), counter + 1

    add.click(on_add, [state, files, hub_id, name, changed], [state, status, remove_name, files, changed])
    remove.click(on_remove, [state, remove_name, changed], [state, status, remove_name, changed])
    return {
        "column": column,
        "files": files,
        "hub_id": hub_id,
        "name": name,
        "add": add,
        "remove_name": remove_name,
        "remove": remove,
        "status": status,
        "changed": changed,
    }
