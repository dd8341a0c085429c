"""Re-route time in a real browser against the same route through the web API, and the bytes each one ships.

    python -m bench.browser [--tiny] [--n 8] [--port 7870]

Launches the Studio (the zoo on the embedded model, or the test suite's tiny world with --tiny), opens it in
Debian's Chromium (Playwright), types a prompt, then N times types a new k into the k number box and presses
Enter; each re-route is timed from the key press until the routing table shows k selected rows AND the heatmap
has been redrawn for that k (its layout.meta). The same routings go through `/route` with gradio_client.
Prints medians, min and max of both, their ratio, the bytes received per re-route (Chrome's network events)
and the first page load's bytes.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

PROMPT = "Translate to French: the cat is black and the dog is white."
TINY_PROMPT = "sort the words cat dog bird"
DRAWN = """(k) => {
  const plot = document.querySelector('#plot-heatmap .js-plotly-plot');
  const meta = plot && plot.layout && plot.layout.meta;
  const ticks = (document.querySelector('#routing-table').innerText.match(/✓/g) || []).length;
  return !!meta && meta.k === k && meta.selected.length === k && ticks === k;
}"""


def launch(tiny: bool, port: int):
    """(demo, engine, prompt, k values) of a launched Studio."""
    from app.ui import build_demo, launch_options

    if tiny:
        from tests.test_ui import EXAMPLES, HashEmbedder, tiny_engine, write_tiny_assets
        from tests.tiny import build_tiny_world

        root = Path(tempfile.mkdtemp(prefix="logo-bench-browser-"))
        engine = tiny_engine(build_tiny_world(root / "tiny"), root / "cache")
        assets = write_tiny_assets(root / "assets")
        demo = build_demo(engine, examples=EXAMPLES, assets_dir=assets, embedder=HashEmbedder())
        prompt, ks = TINY_PROMPT, (1, 2)
    else:
        import importlib.util

        spec = importlib.util.spec_from_file_location("logo_studio_app", Path(__file__).parents[1] / "app.py")
        app = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(app)
        config = app.engine_config_from_env()
        engine = app.build_engine(config)
        demo = build_demo(engine)
        prompt, ks = PROMPT, (2, 3)
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True, **launch_options())
    return demo, engine, prompt, ks


def summary(name: str, values: list[float], unit: str = "ms") -> str:
    return (
        f"{name}: median {statistics.median(values):,.0f} {unit}, min {min(values):,.0f}, max {max(values):,.0f} "
        f"(n = {len(values)})"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="the tests' tiny model and pool (seconds, not minutes)")
    parser.add_argument("--n", type=int, default=8, help="re-routes to time")
    parser.add_argument("--port", type=int, default=7870)
    args = parser.parse_args(argv)
    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("bench.browser needs Debian's chromium on PATH: apt-get install -y chromium")
    from gradio_client import Client
    from playwright.sync_api import sync_playwright

    demo, engine, prompt, ks = launch(args.tiny, args.port)
    url = f"http://127.0.0.1:{args.port}/"
    received = [0]
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            cdp = page.context.new_cdp_session(page)
            cdp.send("Network.enable")
            cdp.on("Network.dataReceived", lambda event: received.__setitem__(0, received[0] + event["dataLength"]))
            page.set_default_timeout(600_000)
            started = time.perf_counter()
            page.goto(url, wait_until="load")
            page.wait_for_selector("#prompt textarea")
            load_s, load_bytes = time.perf_counter() - started, received[0]
            page.locator("#prompt textarea").fill(prompt)
            box = page.locator("#k input[type=number]")
            box.fill(str(ks[0]))
            box.press("Enter")
            page.wait_for_function(DRAWN, arg=ks[0])  # the first routing (calibration warm-up included)
            browser_ms, sizes = [], []
            for i in range(args.n):
                k = ks[(i + 1) % 2]
                before = received[0]
                box.fill(str(k))
                t0 = time.perf_counter()
                box.press("Enter")
                page.wait_for_function(DRAWN, arg=k, polling="raf")
                browser_ms.append((time.perf_counter() - t0) * 1000)
                time.sleep(0.3)  # late chunks of this event count to it, not to the next
                sizes.append(received[0] - before)
            shot = Path("out") / "bench_browser.png"
            shot.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(shot), full_page=True)
            browser.close()
        client = Client(url, verbose=False)
        api_ms = []
        for i in range(args.n):
            t0 = time.perf_counter()
            client.predict(prompt, k=ks[(i + 1) % 2], api_name="/route")
            api_ms.append((time.perf_counter() - t0) * 1000)
    finally:
        demo.close()
    ratio = statistics.median(browser_ms) / statistics.median(api_ms)
    print(f"page load: {load_s:.1f} s, {load_bytes / 1e6:.2f} MB received")
    print(summary("browser re-route (Enter in the k box -> table and heatmap drawn)", browser_ms))
    print(summary("API /route (gradio_client)", api_ms))
    print(f"ratio browser / API (medians): {ratio:.2f} (target <= 1.5)")
    print(summary("bytes received per re-route", [s / 1000 for s in sizes], unit="kB"))
    print(f"screenshot: {shot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
