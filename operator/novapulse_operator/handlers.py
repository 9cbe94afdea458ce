"""Kopf handlers: thin glue from kopf's events to reconcile() and teardown()."""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import kopf

from novapulse_operator import (
    botapi,
    metrics,
    netpol,
    pilot,
    reconcile,
    status,
    teardown,
    webhook,
)
from novapulse_operator.account_book import AccountBook, index_entries
from novapulse_operator.kube import KubeClient
from novapulse_operator.spec import API_VERSION, GROUP, PLURAL, VERSION

FINALIZER = "novapulse.io/finalizer"
ANNOTATION_PREFIX = "novapulse.io"
RESOURCE = (GROUP, VERSION, PLURAL)
SETTLED_PHASES = ("Running", "Suspended")  # a resync of these only corrects drift
SETTLED_FACTOR = 10
# Set once the delete handler has paused the bot (and closed or left its positions): kopf may
# call the handler again after that, and a finished teardown must not pause the bot twice.
TEARDOWN_ANNOTATION = f"{ANNOTATION_PREFIX}/teardown"
TEARDOWN_DONE = "done"
# How often kopf checks whether a resync caught mid-run by a deletion has exited (default 60 s):
# the finalizer stays until it has, and no watch event may come to wake kopf earlier.
TIMER_EXIT_POLL_SECONDS = 1.0
# Where kopf kept its diff-base and progress before they moved to status.kopf.
LEGACY_KOPF_ANNOTATIONS = (f"{ANNOTATION_PREFIX}/last-handled-configuration",)
ACCOUNTS_INDEX = "exchange_accounts"  # kopf passes the index to handlers under this name


@dataclass(frozen=True)
class OperatorConfig:
    resync_seconds: float = 30.0
    endpoint_template: str = botapi.DEFAULT_ENDPOINT_TEMPLATE
    flat_wait_seconds: float = 60.0
    delete_retry_seconds: float = 30.0
    poll_seconds: float = 1.0
    server_timeout: int = 300
    client_timeout: int = 330
    connect_timeout: int = 30
    peering_name: str = "novapulse"
    priority: int = 0
    metrics_port: int = 0
    connection: kopf.ConnectionInfo | None = None  # explicit; else service account/kubeconfig
    bot_poll_seconds: float = 5.0  # the auto-pilot looks at each bot this often
    status_refresh_seconds: float = 30.0  # equity, PnL, feed age written at most this often
    poll_concurrency: int = 64
    # At most this many reconciles at once: a burst of a thousand new bots would otherwise
    # hold a thousand snapshots, manifests and answers in memory together, all waiting for
    # the same connection pool. (kopf's worker_limit would also stall its watch stream.)
    reconcile_concurrency: int = 32
    # Honour novapulse.io/bot-endpoint (local runs, tests): the admin key goes where it points.
    allow_endpoint_annotation: bool = False
    # The operator's own pods, the only ones (with spec.network.ingressFrom) that reach a bot.
    operator_peer: netpol.OperatorPeer = field(default_factory=netpol.OperatorPeer)
    webhook: webhook.WebhookConfig | None = None  # the admission webhook's server; None: off


@dataclass
class _State:
    info: kopf.ConnectionInfo | None = None
    client: KubeClient | None = None
    locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    last_resync: dict[str, float] = field(default_factory=dict)
    last_drift: dict[str, float] = field(default_factory=dict)  # every child last applied
    accounts: AccountBook = field(default_factory=AccountBook)
    pilot: pilot.Pilot | None = None
    endpoint_warned: dict[str, str] = field(default_factory=dict)  # uid → ignored annotation

    def kube(self) -> KubeClient:
        if self.client is None:
            if self.info is None:
                raise kopf.TemporaryError("not logged in yet", delay=1)
            self.client = KubeClient(self.info)
        return self.client

    def lock(self, uid: str) -> asyncio.Lock:
        return self.locks.setdefault(uid, asyncio.Lock())

    async def close(self) -> None:
        if self.pilot is not None:
            await self.pilot.close()
        if self.client is not None:
            await self.client.close()
            self.client = None


@dataclass(frozen=True)
class _Round:
    status: dict[str, Any]  # the status a resync found
    wake_at: datetime | None  # a threshold asks for a round then
    polled_at: datetime


def _diff_into(out: MutableMapping[str, Any], current: Mapping[str, Any],
               new: Mapping[str, Any]) -> None:
    for key, value in new.items():
        if current.get(key) != value:
            out[key] = status.merge_diff(current.get(key), value)


def _emitter(body: Mapping[str, Any], logger: logging.Logger | logging.LoggerAdapter[Any],
             ) -> reconcile.Emit:
    def emit(type_: str, reason: str, message: str) -> None:
        kopf.event(body, type=type_, reason=reason, message=message)  # type: ignore[arg-type]
        logger.info("event %s %s: %s", type_, reason, message)
    return emit


def configure(settings: kopf.OperatorSettings, cfg: OperatorConfig) -> None:
    settings.watching.server_timeout = cfg.server_timeout
    settings.watching.client_timeout = cfg.client_timeout
    settings.watching.connect_timeout = cfg.connect_timeout
    settings.persistence.finalizer = FINALIZER
    # Kopf's own records in status.kopf: its final write of a change is then one status
    # patch together with ours, where annotations took a second PATCH of the TradingBot (a
    # thousand new bots: a thousand writes fewer of the costliest object the server keeps).
    settings.persistence.progress_storage = kopf.StatusProgressStorage(name="kopf")
    settings.persistence.diffbase_storage = kopf.StatusDiffBaseStorage(name="kopf")
    settings.background.cancellation_polling = TIMER_EXIT_POLL_SECONDS
    settings.peering.priority = cfg.priority
    settings.posting.reporting_component = "novapulse-operator"
    # Only warnings and errors of kopf's own log become Events: at INFO every created bot
    # got two more ("Handler … succeeded", "Creation is processed") and each of ours twice
    # (once as the Event, once as its log line) — a thousand bots' worth of API writes.
    settings.posting.level = logging.WARNING


def register(registry: kopf.OperatorRegistry, cfg: OperatorConfig,
             ) -> Callable[[], Awaitable[None]]:
    """Register every handler of the operator into `registry` (one registry per run).

    Returns the close() of the run's API client: kopf's cleanup calls it, and so can whoever
    cancels the operator (cleanup does not run then)."""
    state = _State()
    state.pilot = pilot.Pilot(pilot.PilotSettings(
        endpoint_template=cfg.endpoint_template,
        allow_endpoint_annotation=cfg.allow_endpoint_annotation,
        poll_seconds=cfg.bot_poll_seconds,
        status_refresh_seconds=cfg.status_refresh_seconds, concurrency=cfg.poll_concurrency))
    autopilot = state.pilot
    teardown_settings = teardown.TeardownSettings(
        endpoint_template=cfg.endpoint_template,
        allow_endpoint_annotation=cfg.allow_endpoint_annotation,
        flat_wait_seconds=cfg.flat_wait_seconds,
        poll_seconds=cfg.poll_seconds,
    )

    @kopf.on.startup(registry=registry)
    def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure(settings, cfg)
        metrics.serve(cfg.metrics_port)

    if cfg.webhook is not None:
        webhook.register(registry, cfg.webhook)

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        await state.close()

    @kopf.on.login(registry=registry)
    def login(settings: kopf.OperatorSettings, **_: Any) -> kopf.ConnectionInfo | None:
        info = (cfg.connection
                or kopf.login_with_service_account(settings=settings)
                or kopf.login_with_kubeconfig(settings=settings))
        state.info = info
        if state.client is not None and info is not None:
            state.client.update_login(info)  # a re-login (e.g. a refreshed token) replaces it
        return info

    @kopf.index(*RESOURCE, id=ACCOUNTS_INDEX, registry=registry)
    def exchange_accounts(body: kopf.Body, **_: Any) -> dict[tuple[str, str], Any]:
        """Each bot's exchange-account claim as its status records it (see account_book)."""
        return index_entries(body)

    changes = asyncio.Semaphore(cfg.reconcile_concurrency)
    # Periodic re-checks get a smaller share: a burst of new bots is not held up behind
    # the re-checks of the bots created just before them.
    rechecks = asyncio.Semaphore(max(1, cfg.reconcile_concurrency // 4))

    def key_learner(uid: str) -> Callable[[Mapping[str, str]], None]:
        return lambda dashboard: autopilot.learn_admin_key(uid, dashboard)

    async def recheck(snapshot: dict[str, Any], emit: reconcile.Emit,
                      drift_check: bool) -> dict[str, Any]:
        async with rechecks:
            return await reconcile.reconcile(
                snapshot, state.kube(), emit, state.accounts, operator=cfg.operator_peer,
                drift_check=drift_check,
                on_dashboard=key_learner(str(snapshot["metadata"].get("uid"))))

    def check_endpoint(body: kopf.Body, emit: reconcile.Emit) -> None:
        """A Warning Event, once per value, for an endpoint annotation the operator ignores."""
        uid = str(body.metadata.uid)
        ignored = botapi.ignored_override(body.metadata.annotations,
                                          cfg.allow_endpoint_annotation)
        if ignored is None:
            state.endpoint_warned.pop(uid, None)
        elif state.endpoint_warned.get(uid) != ignored:
            state.endpoint_warned[uid] = ignored
            emit("Warning", "BotEndpointIgnored",
                 f"annotation {botapi.ENDPOINT_ANNOTATION} is ignored: the operator calls the "
                 "bot (with its admin key) only through its Service unless it was started with "
                 "--allow-bot-endpoint-annotation (local runs and tests)")

    async def run(body: kopf.Body, patch: kopf.Patch, logger: kopf.Logger,
                  indices: Mapping[str, Any]) -> None:
        uid = str(body.metadata.uid)
        check_endpoint(body, _emitter(body, logger))
        state.accounts.observe(indices[ACCOUNTS_INDEX])
        async with state.lock(uid), changes:
            # A timer's body is live (kopf updates it in place): decide on one snapshot,
            # taken only once a reconcile slot is free (a burst holds no thousand copies).
            snapshot = copy.deepcopy(dict(body))
            new = await reconcile.reconcile(snapshot, state.kube(), _emitter(body, logger),
                                            state.accounts, operator=cfg.operator_peer,
                                            on_dashboard=key_learner(uid))
            if not snapshot.get("status"):
                # A new bot: the auto-pilot's first view (no pod yet, not polled) goes out
                # with this status write, not as a second one at the first poll.
                snapshot["status"] = new
                first = await autopilot.tick(snapshot, state.kube(), _emitter(body, logger),
                                             None, datetime.now(UTC))
                new = {**new, **first.status}
            state.last_resync[uid] = state.last_drift[uid] = time.monotonic()
        if body.metadata.get("generation") != snapshot["metadata"].get("generation"):
            return  # the spec changed meanwhile: the newer reconcile writes the status
        patch.status.update(new)
        for key in LEGACY_KOPF_ANNOTATIONS:  # kept in status.kopf now
            if key in body.metadata.annotations:
                patch.metadata.annotations[key] = None

    @kopf.on.resume(*RESOURCE, registry=registry)
    @kopf.on.create(*RESOURCE, registry=registry)
    @kopf.on.update(*RESOURCE, registry=registry)
    async def reconcile_on_change(body: kopf.Body, patch: kopf.Patch, logger: kopf.Logger,
                                  **kwargs: Any) -> None:
        await run(body, patch, logger, kwargs)

    # sharp: every interval on the clock, not an interval after the previous run ended (a
    # 1 s poll would otherwise look every 1.2–1.3 s, and feed thresholds are seconds).
    timer_interval = min(cfg.bot_poll_seconds, cfg.resync_seconds)

    @kopf.timer(*RESOURCE, interval=timer_interval, initial_delay=timer_interval, idle=None,
                sharp=True, registry=registry)
    async def resync(body: kopf.Body, patch: kopf.Patch, logger: kopf.Logger,
                     **kwargs: Any) -> None:
        """Each bot, every few seconds: the auto-pilot (poll the bot, read its pods, heal by
        the runbooks) and, when due, a reconcile — a Secret key added later opens the live
        gate without touching the TradingBot; drift of the children is corrected."""
        if body.metadata.deletion_timestamp:
            return
        uid = str(body.metadata.uid)
        if uid not in state.last_resync and not body.status.get("phase"):
            # Never reconciled yet (a burst of new bots waits for its change handlers): no
            # pod to look at and no bot to poll; a status written now only adds a write
            # and a watch event per bot to the burst.
            return
        now = time.monotonic()
        settled = body.status.get("phase") in SETTLED_PHASES
        period = cfg.resync_seconds * (SETTLED_FACTOR if settled else 1)
        # Not before the change handler's first reconcile (kopf's create or resume): a burst
        # of new bots would otherwise be reconciled by their timers too, at the same time.
        due = uid in state.last_resync and now - state.last_resync[uid] >= period
        # Every child re-applied (drift put back) at the settled pace; between, a resync
        # applies only what changed — a thousand starting bots re-applying every child each
        # 30 s kept the API server busy with no-op applies.
        drift = now - state.last_drift.get(uid, 0.0) >= cfg.resync_seconds * SETTLED_FACTOR
        emit = _emitter(body, logger)
        check_endpoint(body, emit)
        state.accounts.observe(kwargs[ACCOUNTS_INDEX])
        found = await pilot_round(body, emit, due=due, drift=drift, now=now)
        if found is None:
            return
        _diff_into(patch.status, body.status, found.status)
        if found.wake_at is None or (found.wake_at - found.polled_at).total_seconds() >= (
                timer_interval):
            return
        # A feed threshold is reached before the next poll: what this round found is
        # written now, and a round at that very moment acts on time (a pause up to a whole
        # poll late otherwise). kopf's body is live: the round sees the TradingBot as it is
        # then, deleted or changed meanwhile included.
        if patch.status:
            await state.kube().patch_status(
                API_VERSION, PLURAL, str(body.metadata.namespace), str(body.metadata.name),
                {"status": dict(patch.status)})
            del patch["status"]
        await asyncio.sleep(max(0.0, (found.wake_at - datetime.now(UTC)).total_seconds()))
        if body.metadata.deletion_timestamp:
            return
        found = await pilot_round(body, emit, due=False, drift=False, now=time.monotonic())
        if found is not None:
            _diff_into(patch.status, body.status, found.status)

    async def pilot_round(body: Mapping[str, Any], emit: reconcile.Emit, *, due: bool,
                          drift: bool, now: float) -> _Round | None:
        """Poll the bot, then under its lock a reconcile when due and the auto-pilot's
        round. None: nothing to write — the bot is being deleted (nothing may hold a child
        the teardown let go of), or its spec changed meanwhile (the newer reconcile writes
        the status)."""
        uid = str(body["metadata"].get("uid"))
        running = (body.get("status") or {}).get("effectiveMode") is not None
        # The poll only reads the body (kopf swaps in a new one per event, never edits it).
        # Its time is the observation's, on the timer's clock: waiting for the answer and
        # the lock below must not shift when a feed threshold counts from.
        polled_at = datetime.now(UTC)
        view = await autopilot.poll(body, state.kube()) if running else None
        async with state.lock(uid):
            # What the lock's previous holder wrote. Neither reconcile nor the auto-pilot
            # edits what they are given (tests/integration/operator/
            # test_round_leaves_the_body.py), so a shallow copy would do and save a fifth of
            # the CPU of polling a thousand bots; but measured, the operator then keeps ~30
            # MiB more (188 against 157 MiB with 1,000 bots: too close to the 200 MB goal).
            snapshot = copy.deepcopy(dict(body))
            if snapshot["metadata"].get("deletionTimestamp"):
                return None
            new: dict[str, Any] = dict(snapshot.get("status") or {})
            if due:
                state.last_resync[uid] = now
                if drift:
                    state.last_drift[uid] = now
                new.update(await recheck(snapshot, emit, drift_check=drift))
            snapshot["status"] = new
            result = await autopilot.tick(snapshot, state.kube(), emit, view, polled_at)
            new.update(result.status)
            readiness_moved = result.pods_ready is not None and (
                result.pods_ready != (new.get("phase") == "Running")
                and new.get("phase") in ("Running", "Starting"))
            if result.reapply or (readiness_moved and not due):
                snapshot["status"] = new
                new.update(await recheck(snapshot, emit, drift_check=False))
        if body["metadata"].get("generation") != snapshot["metadata"].get("generation"):
            return None
        return _Round(new, result.wake_at, polled_at)

    @kopf.on.delete(*RESOURCE, registry=registry)
    async def delete(body: kopf.Body, patch: kopf.Patch, logger: kopf.Logger,
                     **_: Any) -> None:
        if body.metadata.annotations.get(TEARDOWN_ANNOTATION) == TEARDOWN_DONE:
            # kopf forgets a finished delete handler at once but keeps the finalizer while
            # a resync runs on; each event until then would call this handler again. The
            # holds' release is repeated (idempotent): a crash may have cut it short.
            await teardown.release_holds(body, state.kube())
            return
        emit = _emitter(body, logger)
        check_endpoint(body, emit)
        now = datetime.now(UTC)
        conditions = body.status.get("conditions") or []
        try:
            # Under the bot's lock: a resync that began before the deletion finishes first,
            # so none applies a child or adds a hold after the teardown let go of them.
            async with state.lock(str(body.metadata.uid)):
                await teardown.teardown(body, state.kube(), emit, teardown_settings,
                                        autopilot.known_admin_key(str(body.metadata.uid)))
                await teardown.release_holds(body, state.kube())
        except (teardown.Held, botapi.BotUnreachable) as exc:
            reason = exc.reason if isinstance(exc, teardown.Held) else "BotUnreachable"
            message = exc.message if isinstance(exc, teardown.Held) else str(exc)
            metrics.DELETIONS_BLOCKED.labels(reason).inc()
            patch.status["phase"] = "Terminating"
            patch.status["conditions"] = status.set_condition(
                conditions, status.MANUAL_INTERVENTION, True, reason, message,
                int(body.metadata.get("generation") or 0), now)
            emit("Warning", reason, f"deletion held: {message}")
            raise kopf.TemporaryError(message, delay=cfg.delete_retry_seconds) from exc
        patch.metadata.annotations[TEARDOWN_ANNOTATION] = TEARDOWN_DONE
        reconcile.forget(str(body.metadata.uid))
        state.locks.pop(str(body.metadata.uid), None)
        state.last_resync.pop(str(body.metadata.uid), None)
        state.last_drift.pop(str(body.metadata.uid), None)
        autopilot.forget(str(body.metadata.uid))
        state.endpoint_warned.pop(str(body.metadata.uid), None)
        state.accounts.forget(str(body.metadata.uid))

    return state.close
