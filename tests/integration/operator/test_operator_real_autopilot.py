"""The auto-pilot's restart of runbook 2 and the canary → live promotion of runbook 11 on a real
kube-apiserver (+ controller-manager), with the real `novapulse run` process on the replay feed.

No kubelet: the test plays its part. It writes the pods' status (running, Ready, crash
looping) and, when the operator deletes the bot's pod, stops the bot process and starts it
again on the same data — what a kubelet does for the Deployment's replacement pod.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from novapulse.emulators.kraken_rest import KrakenRestEmulator
from novapulse.market.candle_files import load_candles
from novapulse.market.replay_server import ReplayServer
from support.local_http import serving

from .conftest import Cluster, bot_path, eventually, operator
from .faults_support import (
    DASHBOARD,
    ETH_BTC,
    PILOT,
    SLACK,
    PodRecorder,
    bot_launch,
    bot_status,
    cond_is,
    condition,
    crash_loop,
    feed_is,
    history_count,
    history_of,
    holders_of,
    holds_pause,
    new_pod,
    pause_released,
    remediation_of,
    replay_server,
    restore_feed,
    set_container,
    set_running,
    silence_feed,
    stop_bot,
    terminated,
    until,
)

# spec.remediation.feed at the smallest values the CRD allows (resumeAfterHealthy 1s would do,
# but 3 s lets the test tell "after the threshold" from "at once").
PAUSE_AFTER, RESTART_AFTER, RESUME_AFTER = 5, 10, 3
MIN_DURATION = 6  # spec.canary.minDuration: short, yet longer than a few polls


@pytest.fixture()
async def replay() -> AsyncIterator[ReplayServer]:
    async with replay_server() as server:
        yield server


def feed_spec(pause_after: str, restart_after: str) -> dict[str, Any]:
    """A paper bot on the test's dashboard Secret with these feed thresholds."""
    return {"mode": "paper", "pairs": ["ETH/BTC"],
            "dashboard": {"secretRef": {"name": "bot-dash"}},
            "remediation": {"feed": {"pauseAfter": pause_after, "restartAfter": restart_after,
                                     "resumeAfterHealthy": f"{RESUME_AFTER}s"}}}


async def _mirrored(cluster: Cluster, name: str) -> dict[str, Any] | None:
    """The TradingBot once the operator mirrors a connected feed."""
    tb = await cluster.bot(name)
    seen = ((tb or {}).get("status") or {}).get("bot") or {}
    return tb if seen.get("wsConnected") and condition(tb, "FeedHealthy").get(
        "status") == "True" else None


# --- runbook 2: restartAfter, once per episode -------------------------------------------------

async def test_feed_down_past_restart_after_restarts_the_pod_once_per_episode(
        real: Cluster, replay: ReplayServer, pg_dsn: str, tmp_path: Path) -> None:
    cluster = real
    launch = bot_launch("paper", replay.url, pg_dsn, tmp_path)
    bot = await launch.start()
    try:
        await cluster.create_secret("bot-dash", DASHBOARD)
        spec = feed_spec(f"{PAUSE_AFTER}s", f"{RESTART_AFTER}s")
        async with operator(PILOT):
            await cluster.create_bot("restartbot", spec, {"novapulse.io/bot-endpoint": bot.url})
            await eventually(lambda: _mirrored(cluster, "restartbot"), within=60,
                             what="status.bot mirrored, FeedHealthy=True")
            first = await new_pod(cluster, "restartbot")
            await set_running(cluster, first)
            first_uid = first["metadata"]["uid"]

            async with PodRecorder(cluster, "restartbot") as recorded:
                silence_feed(replay)
                down_at = await until(lambda: feed_is(bot, False), 30, "the bot's feed down")
                paused_at = await until(lambda: holds_pause(bot, "operator"),
                                        PAUSE_AFTER + SLACK + 5, "the operator's pause")
                assert PAUSE_AFTER - 1.5 <= paused_at - down_at <= PAUSE_AFTER + SLACK

                # Still down at restartAfter: the pod is deleted, the Deployment makes another.
                second = await new_pod(cluster, "restartbot", {first_uid},
                                       within=RESTART_AFTER + SLACK + 5)
                restarted_at = time.monotonic()
                assert RESTART_AFTER - 1.5 <= restarted_at - down_at <= RESTART_AFTER + SLACK
                tb = await eventually(
                    lambda: history_count(cluster, "restartbot", "RestartPod", 1), within=15,
                    what="the restart in the history")
                restart = remediation_of(tb)["history"][-1]
                assert (restart["reason"], restart["pod"]) == ("FeedDownRestart",
                                                               first["metadata"]["name"])
                assert "market feed down" in restart["message"]

                # The kubelet's part: the old container stops, the new pod's starts on the same
                # data. The feed is still down; the operator's pause came back with the bot.
                await stop_bot(bot)
                bot = await launch.start()
                await set_running(cluster, second)
                status = await bot_status(bot)
                assert status["ws_connected"] is False and "operator" in holders_of(status)

                # The same episode: no second restart however long it lasts (watched for
                # another restartAfter and a few polls).
                await asyncio.sleep(max(0.0, restarted_at + RESTART_AFTER + 3 - time.monotonic()))
                tb = await cluster.bot("restartbot")
                assert history_of(tb) == ["Pause:FeedDownPaused", "RestartPod:FeedDownRestart"]
                assert recorded.created == [first_uid, second["metadata"]["uid"]]
                assert recorded.deleted == [first_uid]
                assert await feed_is(bot, False)  # it really was down all along

                # The feed returns: the operator's pause is lifted after resumeAfterHealthy.
                restore_feed(replay)
                up_at = await until(lambda: feed_is(bot, True), 30, "the bot's feed back")
                resumed_at = await until(lambda: pause_released(bot),
                                         RESUME_AFTER + SLACK + 5, "the operator's resume")
                assert RESUME_AFTER - 1.5 <= resumed_at - up_at <= RESUME_AFTER + SLACK
                tb = await eventually(lambda: history_count(cluster, "restartbot", "Resume", 1),
                                      within=15, what="the resume in the history")
                assert history_of(tb) == ["Pause:FeedDownPaused", "RestartPod:FeedDownRestart",
                                          "Resume:FeedHealthyResumed"]
                assert len(remediation_of(tb)["restarts"]) == 1  # one of the hour's budget
                assert recorded.created == [first_uid, second["metadata"]["uid"]]
            status = await bot_status(bot)
            assert status["paused"] is False and status["ws_connected"] is True
            reasons = [e["reason"] for e in await cluster.events()]
            assert [reasons.count(r) for r in ("FeedDownPaused", "FeedDownRestart",
                                               "FeedHealthyResumed")] == [1, 1, 1]
            restarts = await cluster.events("FeedDownRestart")
            assert restarts[0]["type"] == "Warning" and restarts[0].get("count", 1) == 1
    finally:
        await stop_bot(bot)


# --- runbook 2: the bot's own breaker paused; its manual resume, automated ------------------

async def test_the_feed_breakers_pause_is_lifted_by_the_operator_once_the_feed_is_back(
        real: Cluster, replay: ReplayServer, pg_dsn: str, tmp_path: Path) -> None:
    cluster = real
    # The bot's breaker trips after 2 s of feed down, long before the operator's pauseAfter.
    launch = bot_launch("paper", replay.url, pg_dsn, tmp_path,
                        NOVAPULSE__FEED__CIRCUIT_BREAKER_SECONDS="2")
    bot = await launch.start()
    try:
        await cluster.create_secret("bot-dash", DASHBOARD)
        spec = feed_spec("60s", "1h")
        async with operator(PILOT):
            await cluster.create_bot("breakerbot", spec, {"novapulse.io/bot-endpoint": bot.url})
            await eventually(lambda: _mirrored(cluster, "breakerbot"), within=60,
                             what="status.bot mirrored, FeedHealthy=True")
            silence_feed(replay)
            await until(lambda: holds_pause(bot, "circuit_breaker"), 30, "the breaker's pause")
            assert holders_of(await bot_status(bot)) == ["circuit_breaker"]  # not the operator

            restore_feed(replay)
            up_at = await until(lambda: feed_is(bot, True), 30, "the bot's feed back")

            async def released() -> bool:
                return not (await bot_status(bot))["paused"]

            resumed_at = await until(released, RESUME_AFTER + SLACK + 5, "the breaker lifted")
            assert RESUME_AFTER - 1.5 <= resumed_at - up_at <= RESUME_AFTER + SLACK
            tb = await eventually(lambda: history_count(cluster, "breakerbot", "Resume", 1),
                                  within=15, what="the resume in the history")
            assert history_of(tb) == ["Resume:FeedHealthyResumed"]  # no pause of its own
            assert "the feed circuit breaker's pause lifted" in \
                remediation_of(tb)["history"][-1]["message"]
    finally:
        await stop_bot(bot)


# --- runbook 2: a threshold between two polls ----------------------------------------------------

@contextlib.asynccontextmanager
async def relay(target: str, polls: list[float]) -> AsyncIterator[str]:
    """An HTTP relay in front of the real bot that notes when the operator polls it (each
    GET /api/v1/status): the test can then lose the feed right after a poll."""
    async with aiohttp.ClientSession() as session:
        async def forward(request: web.Request) -> web.Response:
            if request.method == "GET" and request.path == "/api/v1/status":
                polls.append(time.monotonic())
            headers = {k: v for k, v in request.headers.items()
                       if k.lower() in ("x-api-key", "x-paused-by", "content-type")}
            async with session.request(request.method, target + request.path_qs,
                                       headers=headers, data=await request.read()) as resp:
                return web.Response(status=resp.status, body=await resp.read(),
                                    content_type=resp.content_type)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", forward)
        async with serving(app) as url:
            yield url


async def test_a_feed_threshold_between_two_polls_is_acted_on_at_its_moment(
        real: Cluster, replay: ReplayServer, pg_dsn: str, tmp_path: Path) -> None:
    """Polls 5 s apart, pauseAfter 5 s, the feed lost just after a poll: the bot notices about
    a second later, the next poll (~4 s after that) is short of the threshold and the one
    after it ~4 s past it. The pause comes 5 s after the bot saw its feed go down, by its
    own count (`ws_down_s`), in a round of its own between the polls."""
    cluster = real
    poll = 5.0
    polls: list[float] = []
    launch = bot_launch("paper", replay.url, pg_dsn, tmp_path)
    bot = await launch.start()
    try:
        await cluster.create_secret("bot-dash", DASHBOARD)
        spec = feed_spec(f"{PAUSE_AFTER}s", "1h")
        async with relay(bot.url, polls) as via, \
                operator(dataclasses.replace(PILOT, bot_poll_seconds=poll, resync_seconds=poll)):
            await cluster.create_bot("edgebot", spec, {"novapulse.io/bot-endpoint": via})
            await eventually(lambda: _mirrored(cluster, "edgebot"), within=60,
                             what="status.bot mirrored, FeedHealthy=True")
            seen = len(polls)
            await eventually(lambda: len(polls) > seen, within=2 * poll,
                             what="the operator's next poll")
            silence_feed(replay)
            lost_at = polls[-1]
            down: list[float] = []

            async def seen_down() -> bool:
                status = await bot_status(bot)
                if status["ws_connected"]:
                    return False
                down.append(time.time() - float(status["ws_down_s"]))
                return True

            await until(seen_down, 30, "the bot's feed down")
            await until(lambda: holds_pause(bot, "operator"), PAUSE_AFTER + 2 * poll + SLACK,
                        "the operator's pause")
            status = await bot_status(bot)
            paused = next(p["since"] for p in status["pauses"] if p["by"] == "operator")
            assert PAUSE_AFTER - 0.2 <= paused - down[0] <= PAUSE_AFTER + 2
            # The regular polls came at the timer's pace; the pause was not one of them.
            regular = [t - lost_at for t in polls if t > lost_at]
            assert any(poll - 1 <= t <= poll + 1 for t in regular), regular
            tb = await eventually(lambda: cond_is(cluster, "edgebot", "FeedHealthy", "False"),
                                  within=15, what="FeedHealthy=False")
            tb = await eventually(lambda: history_count(cluster, "edgebot", "Pause", 1),
                                  within=15, what="the pause in the history")
            assert history_of(tb) == ["Pause:FeedDownPaused"]

            restore_feed(replay)
            await until(lambda: feed_is(bot, True), 30, "the bot's feed back")
            await until(lambda: pause_released(bot), RESUME_AFTER + poll + SLACK,
                        "the operator's resume")
            tb = await eventually(lambda: history_count(cluster, "edgebot", "Resume", 1),
                                  within=15, what="the resume in the history")
            assert history_of(tb) == ["Pause:FeedDownPaused", "Resume:FeedHealthyResumed"]
    finally:
        await stop_bot(bot)


# --- runbook 11: canary → live ------------------------------------------------------------------

API_KEY = "Qm7Zt2Lx9Rv4Kp1Ws8Nc3Bf6Hj0Dg5AyQm7Zt2Lx9Rv4Kp1Ws8Nc3Bf6"
API_SECRET = base64.b64encode(bytes(range(7, 71))).decode()
EXCHANGE = {"KRAKEN_API_KEY": API_KEY, "KRAKEN_API_SECRET": API_SECRET}
START = 300  # the replay's first candle (replay_server)


@pytest.fixture()
async def exchange(replay: ReplayServer) -> AsyncIterator[KrakenRestEmulator]:
    """The Kraken REST emulator on the replay's clock, holding the canary's account."""
    candles = load_candles(ETH_BTC)
    emulator = KrakenRestEmulator(
        [(ETH_BTC, None)], now=lambda: float(candles[START + replay.step - 1].ts),
        api_key=API_KEY, api_secret=API_SECRET, balances={"BTC": Decimal(10_000)})
    await emulator.start()
    try:
        yield emulator
    finally:
        await emulator.stop()


async def _canary(cluster: Cluster, name: str) -> dict[str, Any]:
    return dict(((await cluster.bot(name) or {}).get("status") or {}).get("canary") or {})


async def _deployed_mode(cluster: Cluster, name: str) -> str | None:
    dep = await cluster.child("apps/v1", "deployments", name)
    if dep is None or int(dep["spec"]["replicas"]) != 1:
        return None
    return str(dep["spec"]["template"]["metadata"]["labels"]["novapulse.io/mode"])


async def test_canary_counts_only_ready_trading_time_then_goes_live(
        real: Cluster, replay: ReplayServer, exchange: KrakenRestEmulator, pg_dsn: str,
        tmp_path: Path) -> None:
    cluster = real
    bot = await bot_launch("canary", replay.url, pg_dsn, tmp_path, {**DASHBOARD, **EXCHANGE},
                           KRAKEN_REST_URL=exchange.url,
                           NOVAPULSE__RISK__STALE_DATA_SECONDS="100000").start()
    try:
        await cluster.create_secret("canary-dash", DASHBOARD)
        await cluster.create_secret("kraken", EXCHANGE)
        spec = {"mode": "canary", "pairs": ["ETH/BTC"],
                "exchange": {"credentialsSecretRef": {"name": "kraken"}},
                "dashboard": {"secretRef": {"name": "canary-dash"}},
                "canary": {"requiredBeforeLive": True, "minDuration": f"{MIN_DURATION}s"}}
        async with operator(PILOT):
            await cluster.create_bot("canarybot", spec, {"novapulse.io/bot-endpoint": bot.url})
            await eventually(lambda: _mirrored(cluster, "canarybot"), within=60,
                             what="the canary's status mirrored")
            assert await _deployed_mode(cluster, "canarybot") == "canary"
            first = await new_pod(cluster, "canarybot")

            # Live asked for: refused until the canary has run minDuration; the canary runs on.
            await cluster.patch(bot_path("canarybot"), {"spec": {"mode": "live"}})
            tb = await eventually(lambda: cond_is(cluster, "canarybot", "LivePrerequisitesMet",
                                                  "False"), within=30, what="live refused")
            gate = condition(tb, "LivePrerequisitesMet")
            assert gate["reason"] == "CanaryRequired" and "canary first" in gate["message"]

            # A crash-looping canary (never Ready) earns nothing, however long it runs — while
            # the bot's API answers, its feed is up and it trades unpaused.
            refused_at = time.monotonic()
            await set_container(cluster, first, 3, crash_loop(), terminated("Error", 1))
            await eventually(lambda: history_count(cluster, "canarybot", "RestartPod", 1),
                             within=30, what="the crash loop restarted (runbook 1)")
            replacement = await new_pod(cluster, "canarybot", {first["metadata"]["uid"]})
            await asyncio.sleep(max(0.0, refused_at + MIN_DURATION + 3 - time.monotonic()))
            tb = await cluster.bot("canarybot")
            assert tb is not None and tb["status"]["effectiveMode"] == "canary", tb
            progress = tb["status"].get("canary") or {}
            assert (progress.get("creditedSeconds"), progress.get("notCounting")) == (
                0, "the canary pod is not Ready"), progress
            assert condition(tb, "LivePrerequisitesMet")["reason"] == "CanaryRequired"
            assert await _deployed_mode(cluster, "canarybot") == "canary"
            status = await bot_status(bot)
            assert status["ws_connected"] is True and status["paused"] is False

            # Ready and trading: the clock runs. A manual pause stops it without resetting it.
            await set_running(cluster, replacement)
            ready_at = time.monotonic()

            async def counting() -> dict[str, Any] | None:
                found = await _canary(cluster, "canarybot")
                return found if found.get("creditedSeconds", 0) > 0 else None
            await eventually(counting, within=15, what="canary time counted")
            resp = await bot.api("POST", "/api/v1/control/pause", json={"reason": "look"})
            assert resp.status_code == 200, resp.text
            paused_at = time.monotonic()

            async def stopped() -> dict[str, Any] | None:
                found = await _canary(cluster, "canarybot")
                return found if found.get("notCounting") == "trading is paused by manual" \
                    else None
            held = await eventually(stopped, within=15, what="the clock stopped by the pause")
            await asyncio.sleep(2.0)  # the clock stands still meanwhile
            assert (await _canary(cluster, "canarybot"))["creditedSeconds"] == \
                held["creditedSeconds"] < MIN_DURATION
            assert await _deployed_mode(cluster, "canarybot") == "canary"
            resp = await bot.api("POST", "/api/v1/control/resume")
            assert resp.status_code == 200, resp.text
            pause = time.monotonic() - paused_at

            # minDuration of Ready, trading time: promoted to live.
            async def live() -> dict[str, Any] | None:
                tb = await cluster.bot("canarybot")
                return tb if ((tb or {}).get("status") or {}).get("effectiveMode") == "live" \
                    else None
            tb = await eventually(live, within=MIN_DURATION + pause + SLACK + 10,
                                  what="promoted to live")
            promoted = time.monotonic() - ready_at
            assert MIN_DURATION + pause - 1.5 <= promoted <= MIN_DURATION + pause + SLACK
            await eventually(lambda: _is_live(cluster), within=15, what="a live Deployment")
            tb = await eventually(lambda: cond_is(cluster, "canarybot", "LivePrerequisitesMet",
                                                  "True"), within=15, what="the gate open")
            assert condition(tb, "LivePrerequisitesMet")["reason"] == "PrerequisitesMet"
            changes = [e["message"] for e in await cluster.events("ModeChanged")]
            assert "running mode: canary → live" in changes
    finally:
        await stop_bot(bot)


async def _is_live(cluster: Cluster) -> bool:
    return await _deployed_mode(cluster, "canarybot") == "live"
