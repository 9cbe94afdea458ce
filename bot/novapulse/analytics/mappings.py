"""Index templates with explicit, strict mappings, and the retention policy (ISM).

`dynamic: strict` makes a field the mappings do not name an error the bot logs, rather than a
mapping that grows by accident; a thought's free-form `data` is stored, not indexed, so its
values can never conflict with each other.
"""

from __future__ import annotations

from typing import Any

_DATE = {"type": "date", "format": "epoch_millis"}
_KEYWORD = {"type": "keyword"}
_DOUBLE = {"type": "double"}
_BOOL = {"type": "boolean"}

PROPERTIES: dict[str, dict[str, Any]] = {
    "candles": {
        "@timestamp": _DATE, "pair": _KEYWORD, "interval_s": {"type": "integer"},
        "open": _DOUBLE, "high": _DOUBLE, "low": _DOUBLE, "close": _DOUBLE, "volume": _DOUBLE,
    },
    "trades": {
        "@timestamp": _DATE, "trade_id": _KEYWORD, "pair": _KEYWORD, "side": _KEYWORD,
        "status": _KEYWORD, "strategy": _KEYWORD, "mode": _KEYWORD, "entry_price": _DOUBLE,
        "quantity": _DOUBLE, "entry_fee": _DOUBLE, "exit_price": _DOUBLE, "exit_time": _DATE,
        "exit_fee": _DOUBLE, "pnl": _DOUBLE, "stop_loss": _DOUBLE, "take_profit": _DOUBLE,
        "notes": {"type": "text"}, "order_id": _KEYWORD, "order_kind": _KEYWORD,
        "order_status": _KEYWORD, "order_error": {"type": "text"},
    },
    "thoughts": {
        "@timestamp": _DATE, "kind": _KEYWORD, "pair": _KEYWORD, "message": {"type": "text"},
        "data": {"type": "object", "enabled": False},
    },
    "metrics": {
        "@timestamp": _DATE, "mode": _KEYWORD, "instance": _KEYWORD, "equity": _DOUBLE,
        "daily_pnl": _DOUBLE, "bankroll": _DOUBLE, "open_positions": _DOUBLE,
        "error_trades": _DOUBLE, "paused": _BOOL, "ws_connected": _BOOL, "db_ok": _BOOL,
        "analytics_buffered": _DOUBLE, "analytics_dropped": _DOUBLE,
    },
}


def template_name(prefix: str, kind: str) -> str:
    return f"{prefix}-{kind}"


def index_template(prefix: str, kind: str) -> dict[str, Any]:
    return {
        "index_patterns": [f"{prefix}-{kind}-*"],
        "priority": 100,
        "template": {
            "settings": {"number_of_shards": 1},
            "mappings": {"dynamic": "strict", "properties": PROPERTIES[kind]},
        },
        "_meta": {"managed_by": "novapulse"},
    }


def policy_id(prefix: str) -> str:
    return f"{prefix}-retention"


def retention_policy(prefix: str, retention_days: int) -> dict[str, Any]:
    """ISM: every index of the bot is deleted `retention_days` after it was created (one index
    per day, so that is the age of its data, give or take a day)."""
    return {"policy": {
        "description": f"NovaPulse: delete {prefix}-* indices after {retention_days} days",
        "default_state": "hot",
        "states": [
            {"name": "hot", "actions": [],
             "transitions": [{"state_name": "delete",
                              "conditions": {"min_index_age": f"{retention_days}d"}}]},
            {"name": "delete", "actions": [{"delete": {}}], "transitions": []},
        ],
        "ism_template": [{"index_patterns": [f"{prefix}-*"], "priority": 100}],
    }}


def policy_age(policy: dict[str, Any]) -> str | None:
    """The `min_index_age` of an installed policy as GET returns it, or None."""
    try:
        for state in policy["policy"]["states"]:
            for transition in state.get("transitions", []):
                age = transition.get("conditions", {}).get("min_index_age")
                if age is not None:
                    return str(age)
    except (KeyError, TypeError):
        return None
    return None
