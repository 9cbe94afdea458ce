"""The analytics sink: documents in through a bounded buffer, out in bulk to OpenSearch.

The decision loop only ever calls the hand-offs (`candle`, `execution`, `thought`): a
dictionary built and appended to a deque, never a wait. A background task (`run`) sets up the
index templates and the retention policy, bulk-indexes, and when OpenSearch is down, stalled
or refusing writes, keeps the newest `buffer_maxlen` documents, counts what it drops, backs
off and tries again — setting up again first, as a restarted OpenSearch may have lost it all.
Nothing here raises into the caller: analytics is `required: false` (runbook 12).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from opensearchpy import AsyncOpenSearch
from opensearchpy import exceptions as os_errors

from novapulse.analytics.buffer import DropOldestBuffer
from novapulse.analytics.documents import (
    KINDS,
    Doc,
    candle_doc,
    index_name,
    metrics_doc,
    thought_doc,
    trade_doc,
)
from novapulse.analytics.errors import Failure, Problem, bulk_item_verdict, describe
from novapulse.analytics.mappings import index_template, template_name
from novapulse.analytics.retention import Retention, install_retention, sweep_expired
from novapulse.config import AnalyticsConfig
from novapulse.models import Candle, Order, Thought, Trade

log = logging.getLogger("novapulse.analytics")
# opensearch-py logs every request at INFO (a line a second while healthy) and every failed
# one with a traceback at WARNING; the sink's own lines say what failed and what to check.
logging.getLogger("opensearch").setLevel(logging.ERROR)

# The same failure is logged again at most this often (with what was dropped meanwhile).
REPEAT_LOG_SECONDS = 60.0
# Without ISM the bot deletes its expired indices itself, this often.
SWEEP_SECONDS = 3600.0

StatusSource = Callable[[], Mapping[str, Any]]


def safe_url(url: str) -> str:
    """The URL without any user:password in it, for logs and status."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@dataclass(frozen=True, slots=True)
class AnalyticsHealth:
    ok: bool | None  # None: not tried yet
    state: str  # starting | ok | failed
    detail: str
    dropped: int
    buffered: int
    indexed: int
    rejected: int
    retention: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "state": self.state, "detail": self.detail,
                "dropped": self.dropped, "buffered": self.buffered, "indexed": self.indexed,
                "rejected": self.rejected, "retention": self.retention}


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: such numbers go as null, at any depth."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


BULK_FILTER = "errors,items.*.status,items.*._index,items.*.error"


def bulk_body(prefix: str, batch: list[Doc]) -> str:
    """The bulk request's NDJSON: an action line and a source line per document."""
    lines = []
    for doc in batch:
        action: dict[str, Any] = {"_index": index_name(prefix, doc.kind, doc.ts)}
        if doc.doc_id is not None:
            action["_id"] = doc.doc_id
        lines.append(json.dumps({"index": action}, separators=(",", ":")))
        lines.append(json.dumps(_finite(doc.body), separators=(",", ":"), default=str,
                                allow_nan=False))
    return "\n".join(lines) + "\n"


class AnalyticsSink:
    def __init__(self, config: AnalyticsConfig, *, username: str | None = None,
                 password: str | None = None, status_source: StatusSource | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        assert config.url is not None, "analytics.url is required"
        self.config = config
        self.url = safe_url(config.url)
        self._raw_url = config.url
        self._auth = (username, password) if username and password else None
        self._status_source = status_source
        self._clock = clock
        self._buffer: DropOldestBuffer[Doc] = DropOldestBuffer(config.buffer_maxlen)
        self._wake = asyncio.Event()
        self._client: AsyncOpenSearch | None = None
        self._ready = False
        self._state = "starting"
        self._failure: Failure | None = None
        self._last_logged: dict[str, float] = {}
        self._dropped_at_failure = 0
        self.indexed = 0
        self.rejected = 0
        self.last_rejection: str | None = None
        self.retention: Retention | None = None
        self._next_metrics = 0.0
        self._next_sweep = 0.0
        self._delay = config.reconnect_initial_seconds

    # --- hand-offs from the decision loop: O(1), never wait, never raise --------------------
    def offer(self, doc: Doc) -> None:
        self._buffer.put(doc)
        if len(self._buffer) >= self.config.batch_size:
            self._wake.set()

    def candle(self, candle: Candle) -> None:
        self.offer(candle_doc(candle))

    def execution(self, trade: Trade, order: Order | None) -> None:
        self.offer(trade_doc(trade, order))

    def thought(self, thought: Thought) -> None:
        self.offer(thought_doc(thought))

    # --- health ------------------------------------------------------------------------------
    @property
    def dropped(self) -> int:
        return self._buffer.dropped

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def health(self) -> AnalyticsHealth:
        counts = (f"{self.indexed} indexed, {self.buffered} buffered, {self.dropped} dropped"
                  + (f", {self.rejected} refused by the mappings" if self.rejected else ""))
        if self._state == "failed" and self._failure is not None:
            detail = f"failed: {self._failure.message} ({counts})"
            ok: bool | None = False
        elif self._state == "ok":
            detail = f"ok: indexing into {self.url} ({counts})"
            if self.last_rejection:
                detail += f"; last refused: {self.last_rejection}"
            ok = True
        else:
            detail = f"connecting to {self.url} ({counts})"
            ok = None
        return AnalyticsHealth(ok, self._state, detail, self.dropped, self.buffered,
                               self.indexed, self.rejected,
                               None if self.retention is None else str(self.retention))

    # --- the background task ----------------------------------------------------------------
    def _make_client(self) -> AsyncOpenSearch:
        return AsyncOpenSearch(
            hosts=[self._raw_url], http_auth=self._auth,
            timeout=self.config.request_timeout_seconds, max_retries=0,
            retry_on_timeout=False, verify_certs=self.config.verify_certs, ssl_show_warn=False)

    async def run(self) -> None:
        """Until cancelled. Never raises anything else: a bug here must not stop trading."""
        self._client = self._make_client()
        log.info("analytics: sending to OpenSearch at %s (indices %s-*, buffer %d)", self.url,
                 self.config.index_prefix, self.config.buffer_maxlen)
        try:
            while True:
                try:
                    await self._step()
                except asyncio.CancelledError:
                    raise
                except Exception:  # a bug, not OpenSearch: say so, back off, carry on
                    log.exception("analytics: unexpected error; trading is not affected")
                    self._ready = False
                    await asyncio.sleep(self._next_delay())
        finally:
            await self.close()

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                await client.close()
            except Exception as exc:  # closing a dead connection: nothing to do
                log.debug("analytics: closing the client: %s", exc)

    async def _step(self) -> None:
        if not self._ready:
            if not await self._attempt(self._setup):
                await asyncio.sleep(self._next_delay())
                return
            self._ready = True
        await self._wait_for_work()
        now = self._clock()
        self._snapshot(now)
        if self.retention is Retention.BOT and time.monotonic() >= self._next_sweep:
            self._next_sweep = time.monotonic() + SWEEP_SECONDS
            await self._attempt(self._sweep)
        batch = self._buffer.take(self.config.batch_size)
        if batch and not await self._send(batch):
            await asyncio.sleep(self._next_delay())

    async def _wait_for_work(self) -> None:
        if len(self._buffer) >= self.config.batch_size:
            return
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self.config.flush_interval_seconds)

    def _snapshot(self, now: float) -> None:
        if self._status_source is None or now < self._next_metrics:
            return
        self._next_metrics = now + self.config.metrics_interval_seconds
        try:
            status = self._status_source()
        except Exception as exc:
            log.warning("analytics: no metrics snapshot: %s", exc)
            return
        self.offer(metrics_doc(dict(status), now, {"analytics_buffered": float(self.buffered),
                                                   "analytics_dropped": float(self.dropped)}))

    def _next_delay(self) -> float:
        delay = self._delay
        self._delay = min(self._delay * 2, self.config.reconnect_max_seconds)
        return delay

    async def _attempt(self, action: Callable[[], Any]) -> bool:
        try:
            await asyncio.wait_for(action(), self.config.request_timeout_seconds * 4 + 1)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._failed(describe(exc, self.url, self.config.request_timeout_seconds))
            self._ready = False
            return False
        return True

    async def _setup(self) -> None:
        client = self._client
        assert client is not None
        info = await client.info()
        if not isinstance(info, dict) or "version" not in info:
            raise ValueError(f"{self.url} does not answer like OpenSearch (no version)")
        prefix = self.config.index_prefix
        for kind in KINDS:
            await client.indices.put_index_template(
                name=template_name(prefix, kind), body=index_template(prefix, kind))
        retention = await install_retention(client, prefix, self.config.retention_days)
        if retention != self.retention:
            self.retention = retention
            if retention is Retention.ISM:
                log.info("analytics: ISM policy %s-retention deletes indices after %d days",
                         prefix, self.config.retention_days)
            else:
                log.warning("analytics: OpenSearch at %s has no Index State Management; the "
                            "bot deletes its indices older than %d days itself", self.url,
                            self.config.retention_days)
        self._succeeded()

    async def _sweep(self) -> None:
        client = self._client
        assert client is not None
        deleted = await sweep_expired(client, self.config.index_prefix,
                                      self.config.retention_days, self._clock())
        if deleted:
            log.info("analytics: retention deleted %s", ", ".join(deleted))

    async def _send(self, batch: list[Doc]) -> bool:
        client = self._client
        assert client is not None
        try:
            # Serialised off the event loop, and only what `_settle` reads comes back: a
            # batch never holds the decision loop for the milliseconds its JSON takes.
            body = await asyncio.to_thread(bulk_body, self.config.index_prefix, batch)
            response = await asyncio.wait_for(
                client.bulk(body=body, filter_path=BULK_FILTER),
                self.config.request_timeout_seconds + 1)
        except asyncio.CancelledError:
            self._buffer.put_back(batch)
            raise
        except os_errors.RequestError as exc:  # 400 for the request as a whole: never
            self.rejected += len(batch)  # going to land, so not retried forever
            self.last_rejection = f"a bulk request refused as a whole: {exc.error}"
            self._log_once("bulk400", logging.ERROR, "analytics: OpenSearch refused a bulk "
                           "request of %d documents (400 %s); they are dropped", len(batch),
                           exc.error)
            return True
        except Exception as exc:
            self._buffer.put_back(batch)
            self._failed(describe(exc, self.url, self.config.request_timeout_seconds))
            self._ready = False
            return False
        return self._settle(batch, response)

    def _settle(self, batch: list[Doc], response: Mapping[str, Any]) -> bool:
        """Count what landed, drop what the mappings refuse, keep what may land later."""
        if not response.get("errors"):
            self.indexed += len(batch)
            self._succeeded()
            return True
        retry: list[Doc] = []
        blocked: Failure | None = None
        for doc, item in zip(batch, response.get("items", []), strict=False):
            result = next(iter(item.values())) if item else {}
            error = result.get("error")
            if error is None:
                self.indexed += 1
                continue
            index = str(result.get("_index", ""))
            verdict = bulk_item_verdict(index, int(result.get("status", 0)),
                                        error if isinstance(error, dict) else {"reason": error})
            if verdict.retry:
                retry.append(doc)
                blocked = blocked or Failure(verdict.problem, verdict.message)
            else:
                self.rejected += 1
                self.last_rejection = verdict.message
                self._log_once(f"{verdict.problem}:{index}", logging.ERROR,
                               "analytics: %s", verdict.message)
        if retry:
            self._buffer.put_back(retry)
            assert blocked is not None
            self._failed(blocked)
            return False
        self._succeeded()
        return True

    # --- state changes, logged once --------------------------------------------------------
    def _failed(self, failure: Failure) -> None:
        if self._state != "failed":
            self._dropped_at_failure = self.dropped
        if self._state != "failed" or self._failure != failure:
            self._last_logged.pop("failure", None)
        self._state, self._failure = "failed", failure
        self._log_once("failure", logging.ERROR, "analytics: %s; trading goes on, documents "
                       "are buffered (%d buffered, %d dropped so far)", failure.message,
                       self.buffered, self.dropped)

    def _succeeded(self) -> None:
        self._delay = self.config.reconnect_initial_seconds
        if self._state == "failed":
            log.info("analytics: OpenSearch at %s takes documents again; indexing resumes "
                     "(%d buffered, %d dropped while it failed)", self.url, self.buffered,
                     self.dropped - self._dropped_at_failure)
        elif self._state == "starting":
            log.info("analytics: connected to OpenSearch at %s", self.url)
        self._state, self._failure = "ok", None

    def _log_once(self, key: str, level: int, message: str, *args: Any) -> bool:
        now = time.monotonic()
        last = self._last_logged.get(key)
        if last is not None and now - last < REPEAT_LOG_SECONDS:
            return False
        self._last_logged[key] = now
        log.log(level, message, *args)
        return True


def build_sink(config: AnalyticsConfig, environ: Mapping[str, str],
               status_source: StatusSource | None = None) -> AnalyticsSink | None:
    """The sink when analytics is enabled, else None."""
    if not config.enabled or not config.url:
        return None
    return AnalyticsSink(config, username=environ.get("OPENSEARCH_USERNAME"),
                         password=environ.get("OPENSEARCH_PASSWORD"),
                         status_source=status_source)


__all__ = ["AnalyticsHealth", "AnalyticsSink", "Problem", "build_sink", "safe_url"]
