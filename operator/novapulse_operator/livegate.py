"""The live gate of runbook 11 (pure): may this bot run with real money?

Inputs are the decoded data of the referenced Secrets (None when the Secret is absent);
the result names exactly what is missing and never contains a secret value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from novapulse.secrets import is_bcrypt_hash, secret_weakness
from novapulse_operator.accounts import ACCOUNT_IN_USE
from novapulse_operator.spec import BotSpec, Mode

EXCHANGE_KEYS = ("KRAKEN_API_KEY", "KRAKEN_API_SECRET")
DASHBOARD_KEYS = (
    "DASHBOARD_ADMIN_KEY", "DASHBOARD_SESSION_SECRET", "DASHBOARD_ADMIN_PASSWORD_HASH",
)
HASH_KEY = "DASHBOARD_ADMIN_PASSWORD_HASH"

SecretData = Mapping[str, str] | None


def weakness(key: str, value: str) -> str | None:
    """Why a secret value is not a real one (None when it is fine). Never echoes the value.
    The strength rules are the bot's own, so the gate and the bot's start-up checks agree."""
    stripped = value.strip()
    if not stripped:
        return f"{key} is empty"
    if key == HASH_KEY:
        return None if is_bcrypt_hash(stripped) else f"{key} is not a well-formed bcrypt hash"
    return secret_weakness(key, stripped)


def _check_secret(
    label: str, name: str | None, data: SecretData, keys: tuple[str, ...],
) -> list[str]:
    if name is None:
        return [f"spec.{label} is not set"]
    if data is None:
        return [f"Secret {name} not found"]
    problems: list[str] = []
    missing = [k for k in keys if k not in data]
    if missing:
        problems.append(f"Secret {name} lacks {', '.join(missing)}")
    for key in keys:
        if key in data:
            problem = weakness(key, data[key])
            if problem:
                problems.append(f"Secret {name}: {problem}")
    return problems


@dataclass(frozen=True)
class GateResult:
    met: bool
    problems: tuple[str, ...]
    reason: str

    @property
    def message(self) -> str:
        if self.met and self.reason == "PaperMode":
            return ("paper mode trades no real money: the live prerequisites of runbook 11 do "
                    "not apply")
        if self.met:
            return "all live prerequisites of runbook 11 are met"
        return "; ".join(self.problems)


def secrets_problems(spec: BotSpec, exchange: SecretData, dashboard: SecretData) -> list[str]:
    ex_name = spec.exchange_secret.name if spec.exchange_secret else None
    dash_name = spec.dashboard_secret.name if spec.dashboard_secret else None
    return _check_secret("exchange.credentialsSecretRef", ex_name, exchange, EXCHANGE_KEYS) + (
        _check_secret("dashboard.secretRef", dash_name, dashboard, DASHBOARD_KEYS)
    )


def evaluate(
    spec: BotSpec,
    exchange: SecretData,
    dashboard: SecretData,
    *,
    running_mode: Mode | None,
    canary_seconds: float | None,
    database_problem: str | None = None,
) -> GateResult:
    """Whether `spec.mode` may run now. Paper always may. `canary_seconds`: the canary time
    that counts towards `canary.minDuration` (`canary.progress`: Ready, trading, clean).
    `database_problem`: what is missing of the database's Secret (`database.DatabaseState`:
    a urlSecretRef's Secret or key, CloudNativePG's CLUSTER-app), None when it is there."""
    if spec.mode == "paper":
        return GateResult(True, (), "PaperMode")
    problems = secrets_problems(spec, exchange, dashboard)
    if database_problem:
        problems.append(database_problem)
    if problems:
        return GateResult(False, tuple(problems), "SecretsIncomplete")
    if spec.mode == "live" and spec.canary.required_before_live and running_mode != "live":
        needed = spec.canary.min_duration_seconds
        if running_mode != "canary" or canary_seconds is None:
            return GateResult(False, (f"canary first: run canary for {needed}s before live",),
                              "CanaryRequired")
        if canary_seconds < needed:
            left = int(needed - canary_seconds)
            return GateResult(False, (
                f"canary first: {left}s of canary left before live (only time the canary "
                "pod is Ready and trading counts; an error trade starts it again)",),
                "CanaryRequired")
    return GateResult(True, (), "PrerequisitesMet")


def refused_for_account(gate: GateResult, why: str) -> GateResult:
    """The gate closed because another TradingBot uses the exchange account (`why` names it);
    any other problem the gate found is kept after it."""
    return GateResult(False, (why, *gate.problems), ACCOUNT_IN_USE)


def effective_mode(requested: Mode, gate: GateResult, running: Mode | None) -> Mode | None:
    """The mode that actually runs: the requested one, or — while the gate is closed — the
    previous one (never a more dangerous one), or none. Refused the exchange account, no
    canary either: it trades on that account too."""
    if gate.met:
        return requested
    if gate.reason == ACCOUNT_IN_USE:
        return "paper" if running == "paper" else None
    rank = {"paper": 0, "canary": 1, "live": 2}
    if running is not None and rank[running] < rank[requested]:
        return running
    return None


REAL_MONEY: tuple[Mode, ...] = ("canary", "live")


def hold_real_money(requested: Mode, gate: GateResult, running: Mode | None,
                    effective: Mode | None, bot: Mapping[str, object]) -> str | None:
    """The gate closed under a running canary/live bot (a Secret removed or weakened): why its
    pod is kept, or None to let the gate's decision stand.

    The operator never stops a real-money bot silently: it pauses it through the API first
    (the auto-pilot, on this message) and keeps the pod while the bot holds open positions —
    stopped, nobody could close them. Once the last mirrored status shows it paused by the
    operator and flat, the gate's decision (no pod, or the lower mode) applies. A spec that
    asks for a lower mode is a human's decision and is never held."""
    if gate.met or running not in REAL_MONEY or effective == running:
        return None
    if requested == "paper" or (requested == "canary" and running == "live"):
        return None
    raw_holders = bot.get("pausedByAll")
    holders = [str(h) for h in raw_holders] if isinstance(raw_holders, list) else []
    raw_open = bot.get("openPositions")
    open_positions = int(raw_open) if isinstance(raw_open, int | float) else None
    if "operator" in holders and open_positions == 0:
        return None
    held = (f"it holds {open_positions} open position(s)" if open_positions else
            "its positions are not yet known to be closed" if open_positions is None else
            "the operator's pause is not confirmed yet")
    return (f"live prerequisites no longer met ({gate.message}): the {running} bot is paused "
            f"by the operator and keeps running because {held}; it is stopped once paused "
            "and flat. Restore the Secret, or close the positions "
            "(POST /api/v1/control/close_all)")
