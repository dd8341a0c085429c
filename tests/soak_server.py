"""A LoGo Studio server on the tiny world, for bench.soak in tests: python -m tests.soak_server [FOLDER].

Listens where GRADIO_SERVER_NAME / GRADIO_SERVER_PORT say (as app.py does) until it is terminated.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from app.ui import build_demo, launch_options
from tests.test_ui import EXAMPLES, HashEmbedder, tiny_engine, write_tiny_assets
from tests.tiny import build_tiny_world


def main(argv: list[str]) -> None:
    root = Path(argv[0]) if argv else Path(tempfile.mkdtemp(prefix="logo-soak-"))
    world = build_tiny_world(root / "tiny")
    engine = tiny_engine(world, root / "cache", max_prompt_tokens=200)
    demo = build_demo(engine, examples=EXAMPLES, assets_dir=write_tiny_assets(root / "assets"), embedder=HashEmbedder())
    demo.launch(quiet=True, **launch_options())


if __name__ == "__main__":
    main(sys.argv[1:])
