"""The model cache survives damage: stale staging folders are cleaned, an unwritable cache falls back with a warning."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time

from logo.base_model import STAGING_PREFIX, STALE_STAGING_S, clean_stale_staging, writable_models_dir


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_stale_staging_folders_are_removed_and_live_ones_kept(tmp_path):
    models = tmp_path / "models"
    killed = models / f"{STAGING_PREFIX}{_dead_pid()}-abc"  # kill -9 during dequantisation left 439 MB here
    running = models / f"{STAGING_PREFIX}{os.getpid()}-def"
    old_style = models / f"{STAGING_PREFIX}x1y2z3"
    new_style = models / f"{STAGING_PREFIX}q9w8e7"
    model = models / "SmolLM2-135M-Instruct-0123456789abcdef"
    for folder in (killed, running, old_style, new_style, model):
        folder.mkdir(parents=True)
        (folder / "model.safetensors").write_bytes(b"0" * 1024)
    past = time.time() - STALE_STAGING_S - 60
    os.utime(old_style, (past, past))
    assert sorted(clean_stale_staging(models)) == sorted([killed, old_style])
    assert sorted(p.name for p in models.iterdir()) == sorted(p.name for p in (running, new_style, model))


def test_a_cache_that_cannot_be_written_falls_back_to_a_temporary_folder(tmp_path, caplog):
    blocked = tmp_path / "cache"
    blocked.write_text("a file where the cache directory should be: not even root can create folders under it")
    with caplog.at_level(logging.WARNING, logger="logo.base_model"):
        folder, persistent = writable_models_dir(blocked)
    assert not persistent and folder.is_dir() and not folder.is_relative_to(blocked)
    (folder / "probe").write_text("writable")
    assert "cannot be written" in caplog.text and "set LOGO_CACHE" in caplog.text
    shutil.rmtree(folder)  # deleted at exit too; not left for the length of the test session


def test_a_writable_cache_is_used_and_left_clean(tmp_path):
    folder, persistent = writable_models_dir(tmp_path / "cache")
    assert persistent and folder == tmp_path / "cache" / "models"
    assert list(folder.iterdir()) == []
