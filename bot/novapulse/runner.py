"""A live run: instance guard → store → restore → feed → engine → store, until stopped.

Order of start-up matters: the file lock first (cheap, local), then the store and its advisory
lock (the guard that holds across hosts), and only then the feed. Every execution is written
to the store before the next candle is decided on, so a crash loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from novapulse.account import lock_identity
from novapulse.analytics import AnalyticsSink, build_sink
from novapulse.api.app import create_app
from novapulse.api.auth import AuthSettings
from novapulse.api.gateway import BotGateway
from novapulse.api.metrics import BotMetrics
from novapulse.api.server import ApiServer, ApiServerError
from novapulse.config import Config
from novapulse.engine import Engine, Execution
from novapulse.execution.live import LiveExecution, build_kraken_venue
from novapulse.execution.paper import PaperExecutor
from novapulse.instance_lock import HolderInfo, InstanceAlreadyRunning, InstanceLock
from novapulse.market.candle_files import CandleFileError, describe_file, load_candles
from novapulse.market.kraken_ws import KrakenWsClient
from novapulse.market.replay_server import ReplayServer
from novapulse.market.warmup import fetch_warmup
from novapulse.models import Candle
from novapulse.notify import TelegramBot, build_telegram
from novapulse.risk import PausedBy
from novapulse.secrets import (
    CREDENTIALS_FILE,
    DashboardSecrets,
    dashboard_secrets,
    login_banner,
    startup_problems,
    write_generated,
)
from novapulse.service import BotService
from novapulse.store.embedded import start_embedded_postgres
from novapulse.store.postgres import Store
from novapulse.thoughts import ThoughtLog

log = logging.getLogger("novapulse.runner")

EXIT_OK = 0
EXIT_CONFIG = 2
EXIT_ALREADY_RUNNING = 3
EXIT_LOCK_LOST = 4
EXIT_STARTUP = 5
HOUSEKEEPING_SECONDS = 1.0
# Thoughts and metrics past `monitoring.metrics_retention_hours` are deleted this often.
PRUNE_EVERY_SECONDS = 600.0
# The database is reported ok only if a round trip succeeded this recently.
DB_OK_WITHIN_SECONDS = 5.0
STATUS_LINE_SECONDS = 10.0
STORE_RETRY_SECONDS = (0.5, 1.0, 2.0, 5.0)


class FeedSpecError(ValueError):
    pass


@dataclass(frozen=True)
class FeedSpec:
    kind: str  # "kraken" | "replay" | "url"
    files: tuple[Path, ...] = ()
    url: str | None = None
    speed: float = 300.0


def parse_feed_spec(text: str, speed: float = 300.0) -> FeedSpec:
    if text == "kraken":
        return FeedSpec("kraken", speed=speed)
    if text.startswith(("ws://", "wss://")):
        return FeedSpec("url", url=text, speed=speed)
    if text.startswith("replay:"):
        files = tuple(Path(p) for p in text[len("replay:"):].split(",") if p)
        if not files:
            raise FeedSpecError("--feed replay: needs at least one candle file")
        for path in files:
            if not path.is_file():
                raise FeedSpecError(f"--feed replay: no such file: {path}")
            try:
                describe_file(path)
            except CandleFileError as exc:
                raise FeedSpecError(str(exc)) from exc
        return FeedSpec("replay", files=files, speed=speed)
    raise FeedSpecError(f"--feed {text!r}: expected kraken, replay:FILE[,FILE...] or ws://URL")


EQUITY_SAMPLE_SECONDS = 5.0
EQUITY_CURVE_POINTS = 5_000
PRICE_POINTS = 1_000  # closes kept per pair for the dashboard's price charts


@dataclass
class RunnerState:
    started_at: float = field(default_factory=time.time)
    last_loop_tick: float = field(default_factory=time.monotonic)
    candles: int = 0
    db_ok: bool = False
    db_ok_at: float | None = None  # monotonic time of the last store round trip that worked
    warmed_up: bool = False
    equity_curve: deque[tuple[float, float]] = field(
        default_factory=lambda: deque(maxlen=EQUITY_CURVE_POINTS))
    prices: dict[str, deque[tuple[float, float]]] = field(default_factory=dict)

    def record_price(self, candle: Candle) -> None:
        """The candle's close at its close time, for the dashboard's price chart."""
        series = self.prices.get(candle.pair)
        if series is None:
            series = self.prices[candle.pair] = deque(maxlen=PRICE_POINTS)
        series.append((float(candle.close_ts), candle.close))


class BotRunner:
    def __init__(self, config: Config, feed: FeedSpec,
                 dashboard: DashboardSecrets | None = None) -> None:
        """`dashboard`: the API's secrets; without them the bot runs with no API (tests)."""
        self.config = config
        self.dashboard = dashboard
        self.feed_spec = feed
        self.data_dir = Path(config.instance.data_dir)
        self.thoughts = ThoughtLog(config.dashboard.thought_feed_max)
        # Paper fills inline; canary and live send intents to the exchange (`LiveExecution`).
        paper = config.trading.mode == "paper"
        self.engine = Engine(
            config, PaperExecutor(config.trading.fee_rate, config.trading.slippage_bps)
            if paper else None, self.thoughts,
        )
        self.live: LiveExecution | None = None
        self.state = RunnerState()
        self.queue: asyncio.Queue[tuple[Candle, bool, float, float]] = asyncio.Queue()
        self.stopping = asyncio.Event()
        self.exit_code = EXIT_OK
        self.store: Store | None = None
        self.client: KrakenWsClient | None = None
        self.replay: ReplayServer | None = None
        self.pairs = list(config.trading.pairs)
        self.instance_name = (os.environ.get("NOVAPULSE_POD_NAME") or os.environ.get("POD_NAME")
                              or socket.gethostname())
        self.metrics = BotMetrics()
        self.metrics.watch_loop(lambda: self.state.last_loop_tick)
        self.thoughts.subscribe(self.metrics.thought)
        self.service = BotService(self)
        # Soft dependencies (runbook 12): fed through O(1) hand-offs, run as background tasks.
        self.analytics: AnalyticsSink | None = build_sink(config.analytics, os.environ,
                                                          self.service.status)
        self.telegram: TelegramBot | None = build_telegram(config.telegram, os.environ,
                                                           self.service)
        if self.analytics is not None:
            self.thoughts.subscribe(self.analytics.thought)
        if self.telegram is not None:
            self.thoughts.subscribe(self.telegram.on_thought)
        self.api: ApiServer | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        # The confidence model (runbook 8): loaded now, never fatal; a soft part below.
        from novapulse.ml.runtime import MLRuntime

        self.ml = MLRuntime(config, self.engine, lambda: self.store)

    @property
    def heartbeat_seconds(self) -> float:
        """How often the main loop proves it is alive: well inside the stall limit."""
        return min(HOUSEKEEPING_SECONDS, self.config.monitoring.main_loop_stall_seconds / 4)

    # --- lifecycle --------------------------------------------------------------------------
    async def run(self) -> int:
        # First thing: a SIGTERM during start-up must stop cleanly, never kill mid-write.
        self._install_signal_handlers()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        identity = lock_identity(self.config, os.environ)
        file_lock = InstanceLock(self.data_dir / "instance.lock", HolderInfo.current(identity))
        try:
            file_lock.acquire()
        except InstanceAlreadyRunning as exc:
            log.error("refusing to start: %s", exc)
            return EXIT_ALREADY_RUNNING
        embedded = None
        try:
            dsn = self.config.database.url
            if dsn is None:
                log.info("no DATABASE_URL: starting the embedded PostgreSQL in %s", self.data_dir)
                embedded = await asyncio.to_thread(start_embedded_postgres, self.data_dir)
                dsn = embedded.dsn
            self.store = store = await Store.connect(
                dsn, identity=self.config.instance.identity,
                lock_timeout_s=self.config.database.lock_timeout_seconds)
            self._store_answered()
            applied = await store.migrate()
            if applied:
                log.info("applied migrations: %s", ", ".join(applied))
            if not await store.acquire_instance_lock(identity):
                log.error("refusing to start: another NovaPulse instance holds the database lock "
                          "for identity %r — two bots on one account would place double orders",
                          identity)
                return EXIT_ALREADY_RUNNING
            try:
                await self.start_api()
            except ApiServerError as exc:
                log.error("refusing to start: %s", exc)
                return EXIT_STARTUP
            await self._restore(store)
            if self.config.trading.mode != "paper":
                await self._start_live()
            await self._start_feed()
            return await self._main(store, file_lock)
        finally:
            await self._shutdown()
            file_lock.release()
            if embedded is not None:
                await asyncio.to_thread(embedded.stop)

    async def start_api(self) -> None:
        """Serve the API on its own thread (see `novapulse.api.server`) and start the main
        loop's heartbeat that its health endpoint watches."""
        self._heartbeat = asyncio.create_task(self._beat(), name="heartbeat")
        if self.dashboard is None:
            return
        dashboard = self.config.dashboard
        settings = AuthSettings.from_secrets(
            self.dashboard, trusted_proxies=tuple(dashboard.trusted_proxies),
            metrics_require_key=dashboard.metrics_require_key)
        app = create_app(self.service, settings,
                         metrics=self.metrics,
                         gateway=BotGateway(asyncio.get_running_loop(),
                                            timeout_s=min(5.0, self.heartbeat_seconds * 4)))
        self.api = ApiServer(app, dashboard.host, dashboard.port)
        await self.api.start()
        log.info("API listening on %s:%d", dashboard.host, self.api.port)
        # The console only, once: a generated password never reaches a log handler or the store,
        # and reaches the console only when it is a terminal (in a container it is the log).
        print(self._login_banner(self.api.url, self.dashboard), file=sys.stderr, flush=True)

    def _login_banner(self, url: str, dash: DashboardSecrets) -> str:
        reveal = sys.stderr.isatty()
        saved = self.data_dir / CREDENTIALS_FILE
        if dash.generated and not reveal:
            saved.parent.mkdir(parents=True, exist_ok=True)
            write_generated(dash, saved)
        else:
            saved.unlink(missing_ok=True)  # an earlier session's values are void now
        return login_banner(url, dash, reveal=reveal, saved_to=saved,
                            pod=os.environ.get("POD_NAME"))

    async def _beat(self) -> None:
        while True:
            self.state.last_loop_tick = time.monotonic()
            await asyncio.sleep(self.heartbeat_seconds)

    async def _restore(self, store: Store) -> None:
        trades = await store.all_trades()
        checkpoint = await store.load_checkpoint()
        self._store_answered()
        self.engine.restore(trades, checkpoint)
        if self.engine.positions:
            log.info("restored %d open position(s): %s", len(self.engine.positions),
                     ", ".join(t.trade_id for t in self.engine.positions.values()))
        if self.engine.risk.pause.paused:
            pause = self.engine.risk.pause
            log.warning("still paused by %s: %s (resume via the API)", pause.paused_by,
                        pause.reason)

    async def _start_live(self) -> None:
        """Canary and live trade on the exchange, or not at all: never a silent paper run."""
        venue = build_kraken_venue(self.config, os.environ)
        self.live = live = LiveExecution(self.engine, venue, self.commit, self.config)
        await live.check_account()
        live.resume_in_flight()

    async def _start_feed(self) -> None:
        spec = self.feed_spec
        interval: int = self.config.trading.timeframe_minutes
        url = self.config.feed.ws_url
        if spec.kind == "replay":
            warmup = self.config.trading.warmup_bars
            sources: list[tuple[Path, str | None]] = [(p, None) for p in spec.files]
            for path in spec.files:
                history = load_candles(path)
                await self._catch_up(history[:warmup])
            self.pairs = [describe_file(p)[0] for p in spec.files]
            interval = describe_file(spec.files[0])[1] // 60
            self.replay = ReplayServer(sources, host="127.0.0.1", port=0, speed=spec.speed,
                                       start_index=warmup)
            await self.replay.start()
            self.state.warmed_up = True
            url = self.replay.url
            log.info("replay feed: %s at %gx on %s", ", ".join(self.pairs), spec.speed, url)
        elif spec.kind == "url":
            url = spec.url or url
        else:
            fetched = await fetch_warmup(self.pairs, interval, self.config.trading.warmup_bars,
                                         rest_url=self.config.exchange.rest_url)
            await self._catch_up(sorted((c for candles in fetched.values() for c in candles),
                                        key=lambda c: (c.ts, c.pair)))
            self.state.warmed_up = True
        self.client = KrakenWsClient(url, self.pairs, interval, self._on_candle, self.config.feed)

    async def _catch_up(self, history: list[Candle]) -> None:
        """Warm the indicators on candles already past; a restored position's stops are judged
        on those the bot missed while it was down, so a stop crossed meanwhile is honoured."""
        for candle in history:
            await self._judge_missed(candle)
            self.engine.warm_up(candle)

    async def _judge_missed(self, candle: Candle) -> None:
        executions = self.engine.check_exits_while_down(candle)
        for execution in executions:
            log.warning("%s: exit on a candle missed while down: %s", execution.trade.trade_id,
                        execution.trade.notes)
        await self.commit(executions)
        self.dispatch()

    def _on_candle(self, candle: Candle) -> None:
        # Judged on arrival, not when dequeued: a backlog must not turn live candles into history.
        client = self.client
        history = client is not None and client.is_history(candle)
        lag = client.market_lag(candle) if client is not None else 0.0
        self.queue.put_nowait((candle, history, time.perf_counter(), lag))

    def _install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop)

    def stop(self) -> None:
        self.stopping.set()

    async def _main(self, store: Store, file_lock: InstanceLock) -> int:
        assert self.client is not None
        tasks = [
            asyncio.create_task(self.client.run(), name="feed"),
            asyncio.create_task(self._decide_loop(store), name="decide"),
            asyncio.create_task(self._housekeeping(store, file_lock), name="housekeeping"),
        ]
        if self.live is not None:
            tasks += [asyncio.create_task(self.live.worker.run(), name="execution"),
                      asyncio.create_task(self.live.reconcile_forever(), name="reconcile")]
        # Not among `tasks`: a soft dependency ending, for whatever reason, stops nothing.
        soft = [asyncio.create_task(part.run(), name=name)
                for name, part in (("analytics", self.analytics), ("telegram", self.telegram),
                                   ("ml", self.ml))
                if part is not None]
        stop_wait = asyncio.create_task(self.stopping.wait())
        lock_lost = asyncio.create_task(store.instance_lock_lost.wait())
        done, _ = await asyncio.wait([stop_wait, lock_lost, *tasks],
                                     return_when=asyncio.FIRST_COMPLETED)
        if lock_lost in done:
            self.engine.pause("database instance lock lost", PausedBy.RISK_RULE, time.time())
            log.critical("instance lock lost: stopped trading at once")
            self.exit_code = EXIT_LOCK_LOST
        for task in done:
            if task in tasks and task.exception() is not None:
                log.error("%s stopped: %r", task.get_name(), task.exception())
                self.exit_code = EXIT_STARTUP
        self.client.stop()
        for task in [*tasks, stop_wait, lock_lost]:
            task.cancel()
        await asyncio.gather(*tasks, stop_wait, lock_lost, return_exceptions=True)
        for task in soft:
            task.cancel()
        await asyncio.gather(*soft, return_exceptions=True)
        await self._flush(store)
        if self.live is not None:
            await self.live.venue.close()
        return self.exit_code

    # --- the decision loop ------------------------------------------------------------------
    async def _decide_loop(self, store: Store) -> None:
        engine = self.engine
        while True:
            candle, history, received, market_lag = await self.queue.get()
            if history:  # a snapshot after (re)connect: old news, not a signal to enter on
                await self._judge_missed(candle)
                engine.warm_up(candle)
                continue
            # Data age in market time (how late the candle closed), plus the time it waited here.
            age = market_lag + (time.perf_counter() - received)
            executions = engine.on_candle(candle, age)
            self.state.record_price(candle)
            if self.analytics is not None:
                self.analytics.candle(candle)
            self.state.warmed_up = True
            self.metrics.decision(time.perf_counter() - received)
            self.state.candles += 1
            await self.commit(executions)
            self.dispatch()

    async def commit(self, executions: list[Execution]) -> None:
        """Store one engine step — each order's new state with its trade, and the checkpoint —
        in one transaction, retrying until the store takes it: a fill is never dropped, and a
        crash never leaves the risk counters and the books apart."""
        if not executions:
            return
        store = self.store
        assert store is not None
        rows = [(dataclasses.replace(e.trade), e.order) for e in executions]
        checkpoint = self.engine.checkpoint()
        held = [dataclasses.replace(t) for t in self.engine.positions.values()]
        attempt = 0
        while True:
            try:
                await store.commit_step(rows, checkpoint, held)
                for execution in executions:
                    self.metrics.order_recorded(execution.order)
                if self.analytics is not None:
                    for trade, order in rows:
                        self.analytics.execution(trade, order)
                return
            except Exception as exc:  # the store is down: keep the step, retry, say so
                self.metrics.store_error()
                delay = STORE_RETRY_SECONDS[min(attempt, len(STORE_RETRY_SECONDS) - 1)]
                log.error("could not record %s (%s); retrying in %.1fs",
                          ", ".join(sorted({e.trade.trade_id for e in executions})), exc, delay)
                attempt += 1
                await asyncio.sleep(delay)

    def dispatch(self) -> None:
        """Hand the intents just stored to the exchange (paper has none: it filled inline)."""
        intents = self.engine.drain_outbox()
        if intents and self.live is not None:
            self.live.dispatch(intents)

    # --- housekeeping -----------------------------------------------------------------------
    async def _housekeeping(self, store: Store, file_lock: InstanceLock) -> None:
        next_heartbeat = 0.0
        next_status = time.monotonic() + STATUS_LINE_SECONDS
        next_prune = 0.0
        while True:
            await asyncio.sleep(HOUSEKEEPING_SECONDS)
            now = time.monotonic()
            self._circuit_breaker()
            try:
                await self._flush(store)
                if now >= next_prune:
                    await self._prune(store)
                    next_prune = now + PRUNE_EVERY_SECONDS
                self._store_answered()
            except Exception as exc:
                self.metrics.store_error()
                self.state.db_ok = False
                log.error("store housekeeping failed: %s", exc)
            curve = self.state.equity_curve
            if not curve or time.time() - curve[-1][0] >= EQUITY_SAMPLE_SECONDS:
                curve.append((time.time(), self.engine.equity()))
            if now >= next_heartbeat:
                await asyncio.to_thread(file_lock.heartbeat)
                next_heartbeat = now + self.config.instance.heartbeat_seconds
            if now >= next_status:
                log.info(self.status_line())
                next_status = now + STATUS_LINE_SECONDS

    def _store_answered(self) -> None:
        self.state.db_ok = True
        self.state.db_ok_at = time.monotonic()

    def db_ok(self) -> bool:
        """The store answered its last round trip, and did so within the last seconds."""
        answered = self.state.db_ok_at
        return (self.state.db_ok and answered is not None
                and time.monotonic() - answered <= DB_OK_WITHIN_SECONDS)

    async def _prune(self, store: Store) -> None:
        """Retention (runbook 6): thoughts and metrics older than
        `monitoring.metrics_retention_hours` go; trades and orders are the books and stay."""
        hours = self.config.monitoring.metrics_retention_hours
        deleted = await store.prune(time.time() - hours * 3600.0)
        if any(deleted.values()):
            log.info("retention: deleted %d thought(s) and %d metric row(s) older than %dh "
                     "(monitoring.metrics_retention_hours)", deleted["thoughts"],
                     deleted["metrics"], hours)

    def _circuit_breaker(self) -> None:
        if self.client is None:
            return
        down_for = self.client.health.down_for(time.time())
        limit = self.config.feed.circuit_breaker_seconds
        if down_for >= limit:  # a pause of its own, whoever else holds one
            self.engine.pause(f"WebSocket disconnected for {down_for:.0f}s "
                              f"(circuit breaker after {limit}s)", PausedBy.CIRCUIT_BREAKER,
                              time.time())

    async def _flush(self, store: Store) -> None:
        thoughts = self.thoughts.drain_unsaved()
        if thoughts:
            await store.record_thoughts(thoughts)
        # The open positions' stops and marks move between fills: saved with the checkpoint.
        await store.save_checkpoint(self.engine.checkpoint(),
                                    open_positions=list(self.engine.positions.values()))

    def status_line(self) -> str:
        engine = self.engine
        health = self.client.health if self.client else None
        pause = engine.risk.pause
        why = f" ({pause.paused_by}: {pause.reason})" if pause.paused else ""
        connected = bool(health and health.ws_connected)
        return (f"status: equity={engine.equity():.2f} cash={engine.cash:.2f} "
                f"open={len(engine.positions)} closed={engine.closed_count} "
                f"pnl={engine.realized_pnl:+.4f} ws_connected={connected} "
                f"paused={pause.paused}{why} candles={self.state.candles}")

    async def stop_api(self) -> None:
        if self.api is not None:
            await self.api.stop()
            self.api = None
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
            self._heartbeat = None

    async def _shutdown(self) -> None:
        await self.stop_api()
        if self.replay is not None:
            await self.replay.stop()
        if self.store is not None:
            with contextlib.suppress(Exception):
                await self.store.release_instance_lock()
            await self.store.close()


def run_bot(config: Config, feed: FeedSpec, environ: Mapping[str, str] | None = None) -> int:
    """Check the secrets first (runbook 11: live and canary refuse to start without every one,
    before any lock or database), then run."""
    env = os.environ if environ is None else environ
    mode = config.trading.mode
    problems = startup_problems(mode, env)
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        print(f"novapulse: refusing to start in {mode} mode:\n{lines}", file=sys.stderr,
              flush=True)
        return EXIT_CONFIG
    runner = BotRunner(config, feed, dashboard_secrets(env))
    try:
        return asyncio.run(runner.run())
    except KeyboardInterrupt:
        return EXIT_OK
