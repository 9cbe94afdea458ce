"""Schemathesis over the API's own OpenAPI schema: generated requests (valid and invalid) to
every operation, as the admin and as nobody; no 5xx, every response as the schema says."""

from __future__ import annotations

from typing import Any

import bcrypt
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from novapulse.api import AuthSettings, create_app
from novapulse.config import load_config
from novapulse.runner import BotRunner, FeedSpec

ADMIN_KEY = "admin-Zq8vN3kL1pX7rT5wB2mC9dF4"
STREAM = "/api/v1/thoughts/stream"  # never ends by design; tested over a real socket
PROBES = ("/api/v1/health", "/api/v1/ready")  # 503 is their documented "not ok" answer


def _app() -> object:
    runner = BotRunner(load_config(None, environ={}), FeedSpec("kraken"))
    settings_ = AuthSettings(admin_key=ADMIN_KEY, session_secret="s" * 40,
                             password_hash=bcrypt.hashpw(b"pw", bcrypt.gensalt(4)))
    return create_app(runner.service, settings_, metrics=runner.metrics)


schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", _app()).exclude(path=STREAM)
FUZZ = settings(max_examples=30, deadline=None, derandomize=True,
                suppress_health_check=list(HealthCheck))


def _excluded(case: schemathesis.Case) -> list[Any]:
    return [not_a_server_error] if case.path in PROBES else []


@schema.parametrize()
@FUZZ
def test_as_admin_no_5xx_and_schema_conformance(case: schemathesis.Case) -> None:
    case.call_and_validate(headers={"X-API-Key": ADMIN_KEY}, excluded_checks=_excluded(case))


@schema.parametrize()
@FUZZ
def test_without_key_no_5xx_and_schema_conformance(case: schemathesis.Case) -> None:
    response = case.call_and_validate(excluded_checks=_excluded(case))
    public = ("/api/v1/health", "/api/v1/ready", "/metrics")
    if case.path not in public and case.method == case.operation.method.upper():
        assert response.status_code == 401, (case.method, case.path)


def test_schema_lists_every_endpoint_of_the_contract() -> None:
    paths = set(schema.raw_schema["paths"])
    for path in ("/api/v1/health", "/api/v1/ready", "/api/v1/status", "/api/v1/thoughts",
                 "/api/v1/risk", "/api/v1/strategies", "/api/v1/positions", "/api/v1/trades",
                 "/api/v1/performance", "/api/v1/equity", "/api/v1/control/pause",
                 "/api/v1/control/resume", "/api/v1/control/close_all", "/metrics",
                 "/api/v1/strategies/{name}/enable", "/api/v1/strategies/{name}/disable",
                 "/api/v1/trades/{trade_id}/resolve"):
        assert path in paths
    status = schema.raw_schema["components"]["schemas"]["Status"]
    assert set(status["required"]) == {
        "mode", "paused", "pause_reason", "paused_by", "ws_connected", "feed", "open_positions",
        "equity", "daily_pnl", "bankroll", "strategies_disabled", "error_trades", "db_ok",
        "analytics_ok", "analytics_detail", "ml_ok", "ml_detail", "version", "instance",
        "uptime_s", "error_trade_list", "pauses", "closing", "exchange"}


pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
