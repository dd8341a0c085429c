"""Re-route time in a real browser against the same route through the web API, and the bytes each one ships.

    python -m bench.browser [--tiny] [--n 8] [--port 7870]

Launches the Studio in its own process (app.py: the zoo on the embedded model; --tiny: app/tiny_server.py), opens it in
Debian's Chromium (Playwright), types a prompt, then N times types a new k into the k number box and presses
Enter; each re-route is timed on the page's own clock from the edit (Gradio sends the re-route as the value
changes, before Enter) until the frame in which the routing table shows k selected rows AND the heatmap has been
redrawn for that k (its layout.meta). The same routing goes through `/route` with gradio_client right
after each one (interleaved, so that both see the same load on a shared machine).
Prints medians, min and max of both, their ratio, the bytes received per re-route (Chrome's network events)
and the first page load's bytes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]

PROMPT = "Translate to French: the cat is black and the dog is white."
TINY_PROMPT = "sort the words cat dog bird"
DRAWN = """(k) => {
  const plot = document.querySelector('#plot-heatmap .js-plotly-plot');
  const meta = plot && plot.layout && plot.layout.meta;
  const table = document.querySelector('#routing-table');
  const ticks = table ? (table.innerText.match(/✓/g) || []).length : -1;  // innerText: the visible cells only
  return !!meta && meta.k === k && meta.selected.length === k && ticks === k && performance.now();
}"""
# the page's clock when the k box last changed: the re-route starts there (Gradio sends it on input, before Enter)
EDITED = """() => {
  const box = document.querySelector('#k input[type=number]');
  const edited = () => { window.benchEdited ??= performance.now(); };
  for (const kind of ['input', 'keydown']) box.addEventListener(kind, edited, true);
}"""


def launch(tiny: bool, port: int) -> subprocess.Popen:
    """The Studio in a process of its own (app.py, or app/tiny_server.py with --tiny), once it answers."""
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1"}
    command = [sys.executable, "-m", "app.tiny_server", str(port)] if tiny else [sys.executable, "app.py"]
    server = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the Studio exited with {server.returncode}: run {' '.join(command)} to see why")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(1)
    server.kill()
    raise SystemExit("the Studio did not answer within 15 minutes")


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

    server = launch(args.tiny, args.port)
    prompt, ks = (TINY_PROMPT, (1, 2)) if args.tiny else (PROMPT, (2, 3))
    url = f"http://127.0.0.1:{args.port}/"
    received = [0]
    try:
        client = Client(url, verbose=False)
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
            page.evaluate(EDITED)
            browser_ms, api_ms, sizes = [], [], []
            for i in range(args.n):  # interleaved: both see the same load on a shared machine
                k = ks[(i + 1) % 2]
                before = received[0]
                page.evaluate("() => { window.benchEdited = undefined; }")
                box.fill(str(k))
                box.press("Enter")
                drawn = page.wait_for_function(DRAWN, arg=k, polling="raf").json_value()
                browser_ms.append(drawn - page.evaluate("() => window.benchEdited"))  # the page's own clock
                time.sleep(0.3)  # late chunks of this event count to it, not to the next
                sizes.append(received[0] - before)
                t0 = time.perf_counter()
                client.predict(prompt, k=k, api_name="/route")
                api_ms.append((time.perf_counter() - t0) * 1000)
            shot = Path("out") / "bench_browser.png"
            shot.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(shot), full_page=True)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    ratio = statistics.median(browser_ms) / statistics.median(api_ms)
    print(f"page load: {load_s:.1f} s, {load_bytes / 1e6:.2f} MB received")
    print(summary("browser re-route (k box edited -> table and heatmap drawn)", browser_ms))
    print(summary("API /route (gradio_client)", api_ms))
    print(f"ratio browser / API (medians): {ratio:.2f} (target <= 1.5)")
    print(summary("bytes received per re-route", [s / 1000 for s in sizes], unit="kB"))
    print(f"screenshot: {shot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
