"""LoGo Studio in a real Chromium (Playwright): pick an example, toggle entropy, generate, see the plots, export."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from analysis.export import png_export_available
from app.ui import build_demo, launch_options
from tests.test_ui import EXAMPLES, HashEmbedder, free_port, tiny_engine, write_tiny_assets

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOT_FOR_THE_LEAD = Path("/tmp/logo_ui_screenshot.png")
PLOT_TRACES = "() => [...document.querySelectorAll('.js-plotly-plot')].map(p => (p.data || []).length)"


@pytest.fixture(scope="module")
def url(tiny_world, tmp_path_factory):
    engine = tiny_engine(tiny_world, tmp_path_factory.mktemp("cache"))
    assets = write_tiny_assets(tmp_path_factory.mktemp("assets"))
    demo = build_demo(engine, examples=EXAMPLES, assets_dir=assets, embedder=HashEmbedder())
    port = free_port()
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True, **launch_options())
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


@pytest.fixture(scope="module")
def page(url):
    if CHROMIUM is None:
        pytest.skip("BROWSER TEST SKIPPED: no `chromium` on PATH; install it with `apt-get install -y chromium`")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1600, "height": 1000}, accept_downloads=True)
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.goto(url)
        page.wait_for_selector("#prompt textarea")
        yield page
        browser.close()


def download(page, name: str, folder: Path) -> Path:
    """Click the link of one file in the Downloads list and save what the browser receives."""
    link = page.locator(f"#downloads a[download='{name}']")
    link.wait_for()
    with page.expect_download() as info:
        link.click()
    path = folder / info.value.suggested_filename
    info.value.save_as(path)
    return path


def test_example_entropy_generate_plots_and_exports(page, tmp_path):
    from playwright.sync_api import expect

    # pick an example: the prompt fills in and the routing shows at once
    page.locator("#example input").click()
    page.get_by_role("option", name=EXAMPLES[1].label).click()
    expect(page.locator("#prompt textarea")).to_have_value(EXAMPLES[1].prompt)
    expect(page.locator("#routing-table")).to_contain_text("epsilon")

    # toggle entropy, then generate: the answer streams in, the three plots draw
    page.locator("#signal").get_by_text("entropy", exact=True).click()
    page.locator("#generate").click()
    page.wait_for_function(f"() => ({PLOT_TRACES})().length === 3 && ({PLOT_TRACES})().every(n => n > 0)")
    page.wait_for_function("() => document.querySelector('#answer textarea').value.length > 0")
    expect(page.locator("#status")).to_contain_text("tokens")
    traces = page.evaluate(PLOT_TRACES)
    assert len(traces) == 3 and all(n > 0 for n in traces), traces
    names = page.evaluate("() => [...document.querySelectorAll('.js-plotly-plot')].map(p => p.data.map(t => t.name))")
    assert ["LoGo (mixture, k=3)", "base model"] in names

    # exports: HTML always, PNG where Chromium renders
    page.locator("#export-html").click()
    html = download(page, "latency.html", tmp_path)
    assert "plotly" in html.read_text(encoding="utf-8")[:300_000].lower()
    if png_export_available()[0]:
        page.locator("#export-png").click()
        png = download(page, "signal_heatmap.png", tmp_path)
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        assert page.locator("#export-png").is_disabled()

    shot = tmp_path / "logo_ui.png"
    page.screenshot(path=str(shot), full_page=True)
    shutil.copy(shot, SCREENSHOT_FOR_THE_LEAD)
    assert shot.stat().st_size > 10_000
