"""The dashboard in headless Chromium against the real bot process on the replay feed:
log in, see status, positions, price charts with trades, the equity curve and closed trades,
pause (by an admin), resume; nothing overflows sideways at 1400 px nor on a 420 px phone.
One page load per width; screenshots under the test's tmp dir."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import pytest

from novapulse.market.replay_server import ReplayServer
from support.bot_env import bot_environment, free_port

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "data" / "sample"
# Elements wider than the page, outside the containers that scroll on purpose.
OVERFLOW = """() => {
  const width = document.documentElement.clientWidth;
  const wide = [...document.querySelectorAll('body *')].filter((el) => {
    const r = el.getBoundingClientRect();
    return r.width > 0 && (r.right > width + 1 || r.left < -1)
      && !el.closest('.table-wrap, .thoughts, dialog');
  }).map((el) => el.tagName + (el.id ? '#' + el.id : '') + '.' + el.className);
  return {scroll: document.documentElement.scrollWidth, width, wide: wide.slice(0, 5)};
}"""
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PASSWORD = "correct horse battery staple"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(CHROMIUM is None and os.environ.get("CI") != "true",
                       reason="Chromium is not installed (apt-get install chromium)"),
]


@dataclass
class RunningBot:
    url: str
    proc: asyncio.subprocess.Process
    log_path: Path


@pytest.fixture
async def bot(pg_dsn: str, tmp_path: Path) -> AsyncIterator[RunningBot]:
    replay = ReplayServer([(SAMPLES / "ETH_BTC-5m.csv.gz", None),
                           (SAMPLES / "LTC_BTC-5m.csv.gz", None)],
                          speed=3000, start_index=300, snapshot_size=300)
    await replay.start()
    port = free_port()
    env = bot_environment(pg_dsn, "[ETH/BTC, LTC/BTC]", **{
        "DASHBOARD_ADMIN_KEY": "k" * 40,
        "DASHBOARD_SESSION_SECRET": "s" * 48,
        "DASHBOARD_ADMIN_PASSWORD_HASH": bcrypt.hashpw(PASSWORD.encode(),
                                                       bcrypt.gensalt(4)).decode(),
        "NOVAPULSE__DASHBOARD__HOST": "127.0.0.1",
    })
    log_path = tmp_path / "bot.log"
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "novapulse.cli", "run", "--mode", "paper", "--feed",
            replay.url, "--data-dir", str(tmp_path / "data"), "--port", str(port),
            env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        yield RunningBot(url, proc, log_path)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 30)
        await replay.stop()


async def wait_for_api(bot: RunningBot) -> None:
    for _ in range(300):
        if bot.proc.returncode is not None:
            break
        try:
            port = int(bot.url.rsplit(":")[-1])
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            await writer.wait_closed()
            return
        except OSError:
            await asyncio.sleep(0.1)
    raise AssertionError(f"the bot's API never came up:\n{bot.log_path.read_text()[-3000:]}")


async def assert_fits(page: object, width: int) -> None:
    layout = await page.evaluate(OVERFLOW)  # type: ignore[attr-defined]
    assert layout["scroll"] <= layout["width"], (width, layout)
    assert layout["wide"] == [], (width, layout)


async def test_login_see_state_pause_and_resume(bot: RunningBot, tmp_path: Path) -> None:
    from playwright.async_api import async_playwright, expect

    await wait_for_api(bot)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"])
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 900})
            await page.goto(bot.url + "/")
            await expect(page).to_have_url(f"{bot.url}/login")

            await page.fill("#password", "wrong password")
            await page.click("#login-button")
            await expect(page.locator("#login-error")).to_be_visible()

            await page.fill("#password", PASSWORD)
            await page.click("#login-button")
            await expect(page).to_have_url(f"{bot.url}/")
            await expect(page.locator("#mode")).to_have_text("mode paper", timeout=20_000)
            await expect(page.locator("#feed-state")).to_have_text("feed connected",
                                                                   timeout=20_000)
            await expect(page.locator("#positions tbody tr").first).to_be_visible(
                timeout=60_000)
            await expect(page.locator("#thoughts li").first).to_be_visible()
            await expect(page.locator("#strategies tbody tr")).to_have_count(5)
            await expect(page.locator("#equity-chart")).to_have_attribute(
                "data-points", re.compile(r"^([2-9]|\d\d+)$"), timeout=20_000)
            prices = page.locator("canvas.price-chart")
            await expect(prices).to_have_count(2, timeout=20_000)
            await expect(prices.first).to_have_attribute(
                "data-points", re.compile(r"^([2-9]|\d\d+)$"), timeout=20_000)
            # Amounts carry the account currency; a strategy without losses never shows 100.
            await expect(page.locator("#equity")).to_have_text(re.compile(r" BTC$"))
            await expect(page.locator("#daily-pnl")).to_have_text(re.compile(r"BTC$"))
            pf = await page.locator("#strategies tbody td:nth-child(5)").all_inner_texts()
            assert "100.00" not in pf, pf
            closed = await page.locator("#closed-trades tbody tr").count()
            assert closed > 0 or await page.locator("#no-closed-trades").is_visible()
            favicon = await page.request.get(bot.url + "/favicon.ico")
            assert favicon.status == 200 and "svg" in favicon.headers["content-type"]
            await assert_fits(page, 1400)
            await page.screenshot(path=str(tmp_path / "dashboard-1400.png"), full_page=True)

            await page.click("#pause-button")
            await page.fill("#reason-input", "checking the exchange")
            await page.click("#confirm-ok")
            await expect(page.locator("#pause-banner")).to_be_visible()
            await expect(page.locator("#paused-by")).to_have_text("an admin (manual pause)")
            await expect(page.locator("#pause-reason")).to_have_text("checking the exchange")
            await expect(page.locator("#trading-state")).to_have_text("paused")
            await page.screenshot(path=str(tmp_path / "dashboard-paused.png"), full_page=True)

            await page.click("#resume-button")
            await page.click("#confirm-ok")
            await expect(page.locator("#pause-banner")).to_be_hidden()
            await expect(page.locator("#trading-state")).to_have_text("trading")

            # A phone: the one page load at 420 px.
            await page.set_viewport_size({"width": 420, "height": 900})
            await page.reload()
            await expect(page.locator("#strategies tbody tr")).to_have_count(5)
            await expect(page.locator("canvas.price-chart")).to_have_count(2, timeout=20_000)
            await expect(page.locator("#equity-chart")).to_have_attribute(
                "data-points", re.compile(r"^([2-9]|\d\d+)$"), timeout=20_000)
            await assert_fits(page, 420)
            await page.screenshot(path=str(tmp_path / "dashboard-420.png"), full_page=True)
        finally:
            await browser.close()
