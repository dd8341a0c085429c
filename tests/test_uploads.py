"""Your own adapters: an upload joins its session's pool only and is routed; every bad upload gets a clear message."""

from __future__ import annotations

import copy
import json
import zipfile

import pytest
import torch
from safetensors.torch import load_file, save_file

from app import uploads
from app.uploads import SessionAdapters, UploadError, add_upload, remove_upload, session_engine
from logo.config import GenerationConfig, RoutingConfig
from tests.tiny import save_random_adapter

PROMPT = "Translate to French: good night."


def adapter_files(tiny_world, tmp_path, name="mine", targets=("q_proj", "v_proj"), seed=3):
    directory = save_random_adapter(tiny_world.model, tmp_path / name, 4, 8, list(targets), False, 0.5, seed)
    return [directory / "adapter_config.json", directory / "adapter_model.safetensors"]


def edit_tensors(path, edit):
    tensors = load_file(str(path))
    save_file({k: edit(k, v) for k, v in tensors.items()}, str(path))


def test_upload_is_routed_in_its_session_only(engine, tiny_world, tmp_path):
    progress = []
    state, message = add_upload(
        SessionAdapters(),
        engine,
        files=adapter_files(tiny_world, tmp_path),
        name="mine",
        progress=lambda f, desc: progress.append(desc),
    )
    assert state.names == ("mine",) and "Added **mine**" in message
    assert any("calibration statistics" in d for d in progress) and progress[-1] == "ready"
    mine = session_engine(engine, state)
    assert mine.pool.names == (*engine.pool.names, "mine") and "mine" not in engine.pool.names
    everything = RoutingConfig(k=len(mine.pool))
    routing = mine.route(PROMPT, everything)[0]
    assert "mine" in routing.selected and len(routing.scores) == len(mine.pool)
    other = copy.deepcopy(SessionAdapters())  # another browser session: Gradio copies the empty initial value
    assert "mine" not in session_engine(engine, other).route(PROMPT, RoutingConfig(k=len(engine.pool)))[0].adapters
    assert copy.deepcopy(state).engine is mine  # a copy of this session's value keeps its engine
    generation = mine.generate(PROMPT, generation=GenerationConfig(max_new_tokens=3), mixture={"mine": 1.0})
    assert generation.mixture == {"mine": 1.0}
    state, message = remove_upload(state, engine, "mine")
    assert state.names == () and session_engine(engine, state) is engine


def test_zip_with_a_folder_is_accepted_and_hashed(engine, tiny_world, tmp_path):
    config, weights = adapter_files(tiny_world, tmp_path)
    archive = tmp_path / "my-lora.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.write(config, "my-lora/adapter_config.json")
        z.write(weights, "my-lora/adapter_model.safetensors")
        z.writestr("my-lora/README.md", "hello")
    state, _ = add_upload(None, engine, files=[archive])
    assert state.names == ("my-lora",)
    assert len(state.hashes["my-lora"]["adapter_model.safetensors"]) == 64
    assert "my-lora" in state.describe()


def refused(engine, match, state=None, **kwargs):
    with pytest.raises(UploadError, match=match):
        add_upload(state or SessionAdapters(), engine, **kwargs)


def test_pickle_weights_are_refused(engine, tiny_world, tmp_path):
    config, weights = adapter_files(tiny_world, tmp_path)
    pickle = weights.with_name("adapter_model.bin")
    weights.rename(pickle)
    refused(engine, r"adapter_model.bin: pickle weights are never loaded .* upload that", files=[config, pickle])
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.write(config, "adapter_config.json")
        z.write(pickle, "adapter_model.bin")
    refused(engine, "pickle weights are never loaded", files=[archive])


def test_zip_with_path_traversal_or_links_is_refused(engine, tiny_world, tmp_path):
    config, weights = adapter_files(tiny_world, tmp_path)
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.write(config, "../adapter_config.json")
        z.write(weights, "adapter_model.safetensors")
    refused(engine, r"holds '../adapter_config.json', a path outside the archive: refused", files=[archive])
    assert not (tmp_path.parent / "adapter_config.json").exists()
    with zipfile.ZipFile(archive, "w") as z:
        link = zipfile.ZipInfo("adapter_config.json")
        link.external_attr = (0o120777) << 16
        z.writestr(link, "/etc/passwd")
        z.write(weights, "adapter_model.safetensors")
    refused(engine, "a symbolic link: refused", files=[archive])
    (tmp_path / "garbage.zip").write_bytes(b"not a zip")
    refused(engine, "garbage.zip is not a readable zip file", files=[tmp_path / "garbage.zip"])


def test_wrong_shapes_are_refused_with_the_engines_message(engine, tiny_world, tmp_path):
    config, weights = adapter_files(tiny_world, tmp_path)
    edit_tensors(weights, lambda k, v: torch.cat([v, v], dim=1) if "lora_A" in k else v)
    refused(engine, r"adapter 'my_adapter', module .*: expected lora_A \(4, 64\)", files=[config, weights])


def test_wrong_target_modules_are_refused(engine, tiny_world, tmp_path):
    config, weights = adapter_files(tiny_world, tmp_path)
    data = json.loads(config.read_text())
    config.write_text(json.dumps({**data, "target_modules": ["q_proj", "c_attn"]}))
    refused(engine, r"targets \['c_attn'\], but the base model has no such module", files=[config, weights])


def test_an_adapter_that_the_probe_cannot_score_is_refused(engine, tiny_world, tmp_path):
    files = adapter_files(tiny_world, tmp_path, targets=("v_proj",))
    refused(
        engine,
        r"does not adapt '.*q_proj', the module routing probes .* target_modules including 'q_proj'",
        files=files,
    )


def test_nan_is_refused(engine, tiny_world, tmp_path):
    config, weights = adapter_files(tiny_world, tmp_path)
    first = sorted(load_file(str(weights)))[0]
    edit_tensors(weights, lambda k, v: v.clone().fill_(float("nan")) if k == first else v)
    refused(engine, r"holds \d+ NaN or infinite value\(s\) .* retrain or re-export it", files=[config, weights])


def test_too_large_and_too_many_are_refused(engine, tiny_world, tmp_path, monkeypatch):
    files = adapter_files(tiny_world, tmp_path)
    monkeypatch.setattr(uploads, "UPLOAD_MAX_BYTES", 1000)
    refused(engine, r"the upload is 0.\d MiB, over the limit of 0 MiB: upload a smaller adapter", files=files)
    monkeypatch.setattr(uploads, "UPLOAD_MAX_BYTES", 2**20)
    monkeypatch.setattr(uploads, "MAX_SESSION_ADAPTERS", 1)
    state, _ = add_upload(None, engine, files=files, name="mine")
    refused(engine, r"already has 1 adapters of yours, the most allowed \(1\): remove one first", state, files=files)


def test_hub_unreachable_names_clashes_and_missing_files(engine, tiny_world, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    refused(
        engine,
        r"could not fetch 'someone/my-lora' from the Hugging Face hub .* upload the adapter's files",
        hub_id="someone/my-lora",
    )
    refused(engine, r"'/etc/passwd' is not a hub id", hub_id="/etc/passwd")
    refused(engine, "give either files .* or a hub id, not neither")
    config, weights = adapter_files(tiny_world, tmp_path)
    refused(engine, r"the upload lacks adapter_model.safetensors", files=[config])
    refused(engine, r"already has an adapter named 'alpha'", files=[config, weights], name="alpha")
    refused(engine, r"adapter name '1 bad' is not allowed", files=[config, weights], name="1 bad")


def test_upload_panel_builds_and_its_add_event_updates_the_session(engine, tiny_world, tmp_path):
    import gradio as gr

    with gr.Blocks() as demo:
        state = gr.State(SessionAdapters())
        panel = uploads.upload_panel(engine, state)
    assert {"files", "hub_id", "add", "status", "changed"} <= set(panel)
    fns = demo.fns.values() if isinstance(demo.fns, dict) else demo.fns
    add = next(f for f in fns if f.name == "on_add")
    files = [str(p) for p in adapter_files(tiny_world, tmp_path)]
    new, status, _, cleared, counter = add.fn(SessionAdapters(), files, "", "mine", 0, progress=lambda *a, **k: None)
    assert new.names == ("mine",) and "Added **mine**" in status and cleared is None and counter == 1
    with pytest.raises(gr.Error, match="give either files"):
        add.fn(new, None, "", "", 1, progress=lambda *a, **k: None)
