"""One auto-pilot round for one TradingBot: poll the bot, read its pods, decide
(`autopilot.decide`), record intent, act, record outcomes; returns the status to write.

Bounded: polls share one HTTP session and a semaphore; a bot's pods come from one list per
namespace per round (a cache), not one request per bot.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp

from novapulse_operator import (
    autopilot,
    botapi,
    botview,
    canary,
    manifests,
    metrics,
    podview,
    status,
)
from novapulse_operator.autopilot import Action
from novapulse_operator.kube import KubeClient, KubeError
from novapulse_operator.reconcile import Emit, owner_of
from novapulse_operator.spec import (
    API_VERSION,
    DEFAULT_RESOURCES,
    PLURAL,
    parse_remediation,
    parse_spec,
)

POD_SELECTOR = "app.kubernetes.io/managed-by=novapulse-operator"
Warning = "Warning"


@dataclass(frozen=True)
class PilotSettings:
    endpoint_template: str = botapi.DEFAULT_ENDPOINT_TEMPLATE
    allow_endpoint_annotation: bool = False  # see botapi.endpoint_for
    poll_seconds: float = 5.0  # how often each bot is looked at
    status_refresh_seconds: float = 30.0  # equity, PnL, feed age: written at most this often
    concurrency: int = 64  # bots polled at once
    timeout: float = 3.0


@dataclass
class TickResult:
    status: dict[str, Any]  # keys of .status to write (bot, remediation, conditions)
    reapply: bool = False  # the children must change now (memory, retention, lock)
    pods_ready: bool | None = None  # a bot pod reports Ready (None: no pod seen)
    wake_at: datetime | None = None  # a feed threshold is reached then: look again at once


@dataclass
class _PodCache:
    at: float = 0.0
    pods: dict[tuple[str, str], list[podview.PodView]] = field(default_factory=dict)


class Pilot:
    def __init__(self, settings: PilotSettings) -> None:
        self.settings = settings
        self._sem = asyncio.Semaphore(settings.concurrency)
        self._session: aiohttp.ClientSession | None = None
        self._keys: dict[str, str | None] = {}  # uid → admin key, read once per pilot
        self._pods: dict[str, _PodCache] = {}
        self._pod_locks: dict[str, asyncio.Lock] = {}
        # status.remediation as this process last wrote it, by bot: it is the only writer, and
        # a watch that lags our own write must not make a finished action look undone.
        self._written: dict[str, dict[str, Any]] = {}
        self._canary: dict[str, dict[str, Any]] = {}  # uid → canary progress, newest first

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def forget(self, uid: str) -> None:
        self._keys.pop(uid, None)
        self._written.pop(uid, None)
        self._canary.pop(uid, None)

    def learn_admin_key(self, uid: str, dashboard: Mapping[str, str]) -> None:
        """The dashboard Secret's data as a reconcile just read it: the key to use."""
        self._keys[uid] = dashboard.get("DASHBOARD_ADMIN_KEY")

    def known_admin_key(self, uid: str) -> str | None:
        """The admin key last read for this bot (None: never read)."""
        return self._keys.get(uid)

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.settings.concurrency))
        return self._session

    # --- reading ----------------------------------------------------------------------------
    async def _admin_key(self, body: Mapping[str, Any], client: KubeClient) -> str | None:
        uid = str(body["metadata"].get("uid"))
        if uid not in self._keys:
            owner = owner_of(body)
            name = manifests.dashboard_secret_name(owner, parse_spec(body.get("spec") or {}))
            data = await client.secret_data(owner.namespace, name)
            self._keys[uid] = (data or {}).get("DASHBOARD_ADMIN_KEY")
        return self._keys[uid]

    async def bot_client(self, body: Mapping[str, Any], client: KubeClient) -> botapi.BotClient:
        owner = owner_of(body)
        url = botapi.endpoint_for(owner.name, owner.namespace,
                                  body["metadata"].get("annotations") or {},
                                  self.settings.endpoint_template,
                                  self.settings.allow_endpoint_annotation)
        return botapi.BotClient(url, await self._admin_key(body, client),
                                timeout=self.settings.timeout, session=self._http())

    async def poll(self, body: Mapping[str, Any], client: KubeClient) -> botview.BotView:
        """Health and status of one bot (outside any lock: a slow bot delays nobody)."""
        async with self._sem:
            bot = await self.bot_client(body, client)
            healthy, status_, error = await bot.probe()
            if status_ is None and "HTTP 401" in error:
                self.forget(str(body["metadata"].get("uid")))  # the key changed: read again
        metrics.BOT_POLLS.labels("ok" if status_ is not None else "unreachable").inc()
        return botview.BotView(healthy=healthy, status=status_, error=error,
                               answered_at=datetime.now(UTC))

    async def pods(self, client: KubeClient, namespace: str, name: str,
                   ) -> list[podview.PodView]:
        """The bot's pods, from one list of the namespace's bot pods per round."""
        lock = self._pod_locks.setdefault(namespace, asyncio.Lock())
        async with lock:
            cache = self._pods.setdefault(namespace, _PodCache())
            if time.monotonic() - cache.at >= self.settings.poll_seconds * 0.8:
                found: dict[tuple[str, str], list[podview.PodView]] = {}
                try:
                    async for pod in client.pods(namespace, POD_SELECTOR):
                        key = podview.index_key(pod)
                        if key is not None:
                            found.setdefault(key, []).append(podview.pod_view(pod))
                except KubeError:
                    found = {}  # no pods served (an emulator): nothing to act on
                cache.pods, cache.at = found, time.monotonic()
            return list(cache.pods.get((namespace, name), []))

    # --- one round --------------------------------------------------------------------------
    async def tick(self, body: Mapping[str, Any], client: KubeClient, emit: Emit,
                   view: botview.BotView | None, now: datetime) -> TickResult:
        owner = owner_of(body)
        spec = parse_spec(body.get("spec") or {})
        policy = parse_remediation(body.get("spec") or {})
        prev: Mapping[str, Any] = body.get("status") or {}
        running = prev.get("effectiveMode") in ("paper", "canary", "live") and not spec.suspended
        pods = await self.pods(client, owner.namespace, owner.name)
        pod = podview.current(pods)
        uid = str(body["metadata"].get("uid"))
        remediation = dict(self._written.get(uid) or prev.get("remediation") or {})
        holder_exists = await self._holder_exists(client, owner.namespace, pod)
        limit = (remediation.get("memoryLimit")
                 or (spec.resources.get("limits") or {}).get("memory")
                 or DEFAULT_RESOURCES["limits"]["memory"])
        obs = autopilot.Observation(now=now, running=running, view=view, pod=pod,
                                    memory_limit=str(limit), holder_exists=holder_exists,
                                    gate_hold=prev.get("liveGateHold") or None)
        decision = autopilot.decide(policy, obs, remediation)
        entries: list[dict[str, Any]] = []
        for action in decision.done:
            emit(Warning if action.kind == autopilot.REDUCE_RETENTION else "Normal",
                 action.reason, action.message)
            metrics.REMEDIATIONS.labels(action.kind, "done").inc()
            entries.append(autopilot.history_entry(action, "done", now))
        for reason, message in decision.warnings:
            emit(Warning, reason, message)
            metrics.REMEDIATIONS.labels("Warn", reason).inc()
            entries.append(autopilot.history_entry(Action("Warn", reason, message), "warned",
                                                   now))
        new_rem = dict(decision.state)
        new_rem["history"] = autopilot.with_history(remediation, entries)
        if decision.actions:
            # Intent first: an operator that dies now finds these and finishes them.
            new_rem["pending"] = [a.as_dict() for a in decision.actions]
            await client.patch_status(API_VERSION, PLURAL, owner.namespace, owner.name,
                                      {"status": {"remediation": new_rem}})
            self._written[uid] = new_rem
            retry: list[Action] = []
            for action in decision.actions:
                outcome = await self._act(body, client, action)
                if outcome.startswith("failed"):
                    # Not done: it stays pending and is tried again next round.
                    retry.append(action)
                    emit(Warning, "RemediationFailed", f"{action.message}: {outcome}; "
                         "tried again")
                    metrics.REMEDIATIONS.labels(action.kind, "failed").inc()
                    continue
                emit(Warning if action.kind == autopilot.RESTART_POD else "Normal",
                     action.reason, f"{action.message} ({outcome})")
                metrics.REMEDIATIONS.labels(action.kind, "done").inc()
                entries.append(autopilot.history_entry(action, outcome, now))
            new_rem["history"] = autopilot.with_history(remediation, entries)
            # Done: null it, whatever the watch has shown us yet; failed ones stay.
            new_rem["pending"] = [a.as_dict() for a in retry] or None
        self._written[uid] = {k: v for k, v in new_rem.items() if v is not None}
        out: dict[str, Any] = {"remediation": new_rem}
        out["conditions"] = self._conditions(prev, view, running, new_rem, now,
                                             podview.first_start(pod))
        progress = self._canary_progress(uid, prev, running, view, pod, out["conditions"], now)
        if progress is not None or prev.get("canary"):
            out["canary"] = progress
        bot = self._bot_block(prev, view, now)
        if bot is not None:
            out["bot"] = bot
        ready = None if pod is None else pod.ready
        return TickResult(status=out, reapply=decision.reapply, pods_ready=ready,
                          wake_at=decision.wake_at)

    def _canary_progress(self, uid: str, prev: Mapping[str, Any], running: bool,
                         view: botview.BotView | None,
                         pod: podview.PodView | None, conditions: list[dict[str, Any]],
                         now: datetime) -> dict[str, Any] | None:
        """`status.canary` (canary.progress), counted in memory on every poll and written when
        its reason changes or at most every status_refresh_seconds."""
        written = prev.get("canary") or None
        effective = prev.get("effectiveMode")
        if effective != "canary" or not running:
            self._canary.pop(uid, None)
            return None
        new = canary.progress(self._canary.get(uid) or written, effective=effective, now=now,
                              view=view, pod_ready=None if pod is None else pod.ready,
                              conditions=conditions)
        assert new is not None
        self._canary[uid] = new
        if written is None or written.get("notCounting") != new.get("notCounting") or (
                abs(float(new["creditedSeconds"]) - float(written.get("creditedSeconds") or 0))
                >= self.settings.status_refresh_seconds):
            return new
        return dict(written)

    async def _holder_exists(self, client: KubeClient, namespace: str,
                             pod: podview.PodView | None) -> bool | None:
        if pod is None or pod.last is None or pod.last.exit_code != podview.EXIT_LOCK_HELD:
            return None
        holder = autopilot.lock_holder(pod.last.message)
        if holder is None or holder == pod.name:
            return None
        return await client.get("v1", "Pod", namespace, holder) is not None

    async def _act(self, body: Mapping[str, Any], client: KubeClient, action: Action) -> str:
        """Run one action; its outcome in words. Each is safe to run twice."""
        owner = owner_of(body)
        try:
            if action.kind == autopilot.PAUSE:
                why = (autopilot.GATE_PAUSE_REASON if action.reason == autopilot.GATE_PAUSED
                       else autopilot.FEED_PAUSE_REASON)
                await (await self.bot_client(body, client)).pause(why)
                return "paused"
            if action.kind == autopilot.RESUME:
                lifted = await (await self.bot_client(body, client)).resume_own()
                return "resumed" if lifted else "the operator held no pause: nothing lifted"
            if action.kind == autopilot.RESTART_POD:
                deleted = await client.delete("v1", "Pod", owner.namespace, action.pod,
                                              action.uid or None)
                return "pod deleted; its Deployment starts a new one" if deleted else \
                    "the pod was already gone"
        except (botapi.BotUnreachable, KubeError) as exc:
            return f"failed: {exc}"
        return "unknown action"

    def _conditions(self, prev: Mapping[str, Any], view: botview.BotView | None, running: bool,
                    remediation: Mapping[str, Any], now: datetime, starting: bool,
                    ) -> list[dict[str, Any]]:
        gen = int(prev.get("observedGeneration") or 0)
        conds = [dict(c) for c in prev.get("conditions") or ()]
        values = botview.conditions(view or botview.BotView(False, None, "not polled"), running,
                                    starting)
        for type_, (value, reason, message) in values.items():
            conds = status.set_condition(conds, type_, value, reason, message, gen, now)
        return status.ready_block(conds, remediation, gen, now)

    def _bot_block(self, prev: Mapping[str, Any], view: botview.BotView | None,
                   now: datetime) -> dict[str, Any] | None:
        """The new `status.bot`, or None to leave it: numbers refresh at most every
        status_refresh_seconds, anything else is written when it changes."""
        if view is None:
            return None
        new = botview.mirror(view, autopilot.ts(now))
        old = prev.get("bot") or {}
        if new is None:
            return None
        seen = autopilot.parse_ts(old.get("lastSeen"))
        fresh = seen is not None and (now - seen).total_seconds() < \
            self.settings.status_refresh_seconds
        if fresh and botview.significant(new) == botview.significant(old):
            return None
        return new
