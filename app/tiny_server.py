"""The Studio on the test suite's tiny model and pool, for the browser benchmark and by-hand checks (seconds to start).

python -m app.tiny_server [port]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from app.ui import build_demo, launch_options


def main(argv: list[str]) -> None:
    from tests.test_ui import EXAMPLES, HashEmbedder, tiny_engine, write_tiny_assets
    from tests.tiny import build_tiny_world

    port = int(argv[0]) if argv else 7860
    root = Path(tempfile.mkdtemp(prefix="logo-tiny-studio-"))
    engine = tiny_engine(build_tiny_world(root / "tiny"), root / "cache")
    demo = build_demo(engine, examples=EXAMPLES, assets_dir=write_tiny_assets(root / "assets"), embedder=HashEmbedder())
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True, **launch_options())
    print(f"serving http://127.0.0.1:{port}/", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main(sys.argv[1:])
