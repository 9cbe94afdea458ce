"""The backtest's HTML report in headless Chromium, offline: its equity chart and the trades
marked on each pair's price are drawn, and nothing overflows sideways at 1400 px or at a
phone's 420 px. One page load per width; screenshots under the test's tmp dir."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from novapulse.backtest import load_files, run
from novapulse.config import Config
from novapulse.reports.html import write_report

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = [ROOT / "data" / "sample" / "ETH_BTC-5m.csv.gz",
           ROOT / "data" / "sample" / "XLM_BTC-5m.csv.gz"]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = pytest.mark.skipif(
    CHROMIUM is None and os.environ.get("CI") != "true",
    reason="Chromium is not installed (apt-get install chromium)")

OVERFLOW = """() => {
  const width = document.documentElement.clientWidth;
  const wide = [...document.querySelectorAll('body *')].filter((el) => {
    const r = el.getBoundingClientRect();
    return r.width > 0 && (r.right > width + 1 || r.left < -1) && !el.closest('.scroll');
  }).map((el) => el.tagName + (el.id ? '#' + el.id : '') + '.' + el.className);
  return {scroll: document.documentElement.scrollWidth, width, wide: wide.slice(0, 5)};
}"""


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = Config()
    result = run(config, load_files(SAMPLES), resume_after=4 * 3600.0, record_prices=True)
    assert result.summary.trades > 0
    return write_report(result, config, tmp_path_factory.mktemp("report"))


async def test_report_renders_its_charts_offline_at_both_widths(report: Path,
                                                                tmp_path: Path) -> None:
    from playwright.async_api import async_playwright, expect

    html = report.read_text()  # noqa: ASYNC240 - a small local file
    assert "http://" not in html and "https://" not in html  # no CDN, nothing fetched
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update"])
        try:
            for width in (1400, 420):
                page = await browser.new_page(viewport={"width": width, "height": 900})
                requests: list[str] = []
                errors: list[str] = []
                page.on("request", lambda r, seen=requests: seen.append(r.url))
                page.on("pageerror", lambda e, seen=errors: seen.append(str(e)))
                await page.goto(report.as_uri())
                chart = page.locator("#equity-chart")
                await expect(chart).to_have_attribute("data-points", _more_than_one())
                prices = page.locator("canvas.price-chart")
                await expect(prices).to_have_count(2)
                markers = [int(await prices.nth(i).get_attribute("data-markers") or 0)
                           for i in range(2)]
                assert sum(markers) > 0
                assert await page.locator("#pairs tbody tr").count() == 2
                assert "BTC" in await page.locator("#kpis").inner_text()
                layout = await page.evaluate(OVERFLOW)
                assert layout["scroll"] <= layout["width"], layout
                assert layout["wide"] == [], layout
                assert errors == []
                assert all(u.startswith("file://") for u in requests), requests
                shot = tmp_path / f"backtest-report-{width}.png"
                await page.screenshot(path=str(shot), full_page=True)
                assert shot.stat().st_size > 10_000
                await page.close()
        finally:
            await browser.close()


def _more_than_one() -> object:
    import re

    return re.compile(r"^([2-9]|\d\d+)$")
