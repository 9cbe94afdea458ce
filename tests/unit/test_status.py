"""`/api/v1/status` tells the truth about the parts it cannot vouch for: analytics is null
until OpenSearch was tried, a model that failed to load is false with the reason, and the
database is ok only if it answered within the last seconds."""

from __future__ import annotations

import time
from typing import Any

from novapulse.config import load_config
from novapulse.runner import DB_OK_WITHIN_SECONDS, BotRunner, FeedSpec


def status_with(**sections: Any) -> dict[str, Any]:
    runner = BotRunner(load_config(None, environ={}, overrides=sections), FeedSpec("kraken"))
    runner.state.db_ok, runner.state.db_ok_at = True, time.monotonic()
    return runner.service.status()


def test_enabled_analytics_is_not_ok_before_it_tried_and_a_missing_model_says_so(
        tmp_path: Any) -> None:
    status = status_with(analytics={"enabled": True, "url": "http://127.0.0.1:9"},
                         ml={"enabled": True, "model_path": str(tmp_path / "absent.tflite")})
    assert status["analytics_ok"] is None and status["ml_ok"] is False
    assert status["analytics_detail"].startswith("connecting to http://127.0.0.1:9")
    assert status["analytics"]["dropped"] == 0
    assert status["ml_detail"].startswith("failed: model file")
    assert "absent.tflite missing" in status["ml_detail"]
    assert status["ml"]["state"] == "failed" and status["ml"]["version"] is None


def test_disabled_analytics_and_model_say_disabled() -> None:
    status = status_with(analytics={"enabled": False}, ml={"enabled": False})
    assert (status["analytics_ok"], status["analytics_detail"]) == (None, "disabled")
    assert (status["ml_ok"], status["ml_detail"]) == (None, "disabled")


def test_db_ok_only_while_the_store_keeps_answering() -> None:
    runner = BotRunner(load_config(None, environ={}), FeedSpec("kraken"))
    assert runner.service.status()["db_ok"] is False  # never checked
    runner.state.db_ok, runner.state.db_ok_at = True, time.monotonic()
    assert runner.service.status()["db_ok"] is True
    runner.state.db_ok_at = time.monotonic() - DB_OK_WITHIN_SECONDS - 1  # a hung round trip
    assert runner.service.status()["db_ok"] is False
