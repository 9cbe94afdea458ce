"""The admission webhook's decision (pure): the bot's own validation, every error at once."""

from __future__ import annotations

from typing import Any

from novapulse_operator.webhook import admission_errors, refusal


def bot(config: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "novapulse.io/v1alpha1", "kind": "TradingBot",
            "metadata": {"name": "paper-eth", "namespace": "bots"},
            "spec": {"mode": "paper", "config": config or {}, **spec}}


CROSS_FIELD = {"risk": {"stop_loss_pct": 8.0, "take_profit_pct": 1.0}}


def test_a_valid_paper_bot_is_admitted() -> None:
    assert admission_errors(bot({"risk": {"stop_loss_pct": 2.0}})) == []


def test_a_cross_field_error_of_the_bot_model_is_refused_with_its_path() -> None:
    errors = admission_errors(bot(CROSS_FIELD))
    assert any("take_profit_pct must be more than a quarter of stop_loss_pct" in e
               for e in errors), errors


def test_every_error_is_named_at_once() -> None:
    errors = admission_errors(bot({"risk": {"stop_loss_pct": 8.0, "take_profit_pct": 1.0},
                                   "trading": {"pairs": ["ETH/USD"]}}))
    message = refusal(errors)
    assert len(errors) >= 2, errors
    assert f"({len(errors)} errors)" in message
    assert all(e in message for e in errors)


def test_an_unchanged_spec_is_admitted_so_a_stored_bad_config_can_still_be_deleted() -> None:
    old = bot(CROSS_FIELD)
    new = bot(CROSS_FIELD)
    new["metadata"]["finalizers"] = []
    assert admission_errors(new, old) == []
    deleting = bot(CROSS_FIELD)
    deleting["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert admission_errors(deleting, None) == []


def test_changing_a_spec_into_a_bad_one_is_refused() -> None:
    assert admission_errors(bot(CROSS_FIELD), bot()) != []


def test_a_generated_name_without_namespace_is_validated() -> None:
    body = bot(CROSS_FIELD)
    body["metadata"] = {"generateName": "tb-"}
    assert admission_errors(body, namespace="bots") != []
