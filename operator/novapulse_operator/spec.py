"""The TradingBot spec as a typed value, with the CRD's defaults applied (pure).

The API server applies the CRD defaults; the operator applies them again so that it behaves
the same against a server that does not (an emulator, an older stored object).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from novapulse.config import FeedConfig, TradingConfig

GROUP = "novapulse.io"
VERSION = "v1alpha1"
PLURAL = "tradingbots"
KIND = "TradingBot"
API_VERSION = f"{GROUP}/{VERSION}"

DEFAULT_IMAGE = "novapulse:0.1.0"
MODES = ("paper", "canary", "live")
ON_DELETE = ("closePositions", "leaveOpen")
BOT_PORT = 8090

Mode = Literal["paper", "canary", "live"]
# The CRD's pattern for every duration field (with minLength 1: the pattern alone allows "").
DURATION_PATTERN = r"^(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?$"


def parse_duration(text: str) -> int:
    """'1h30m' → 5400 seconds. Raises ValueError on anything else."""
    match = re.fullmatch(DURATION_PATTERN, text.strip())
    if not text.strip() or match is None:
        raise ValueError(f"not a duration like 1h30m: {text!r}")
    hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


@dataclass(frozen=True)
class SecretRef:
    name: str
    key: str | None = None


@dataclass(frozen=True)
class CanaryPolicy:
    max_notional: float | None = None
    min_duration_seconds: int = 0
    required_before_live: bool = False


@dataclass(frozen=True)
class BotSpec:
    mode: Mode = "paper"
    suspended: bool = False
    image: str = DEFAULT_IMAGE
    image_pull_policy: str = "IfNotPresent"
    pairs: tuple[str, ...] = ()
    exchange_secret: SecretRef | None = None
    dashboard_secret: SecretRef | None = None
    database_secret: SecretRef | None = None  # spec.database.urlSecretRef
    database_cnpg: str | None = None  # spec.database.cnpg.cluster: a CloudNativePG Cluster
    canary: CanaryPolicy = field(default_factory=CanaryPolicy)
    resources: Mapping[str, Any] = field(default_factory=dict)
    storage_size: str = "5Gi"
    storage_class: str | None = None
    config: Mapping[str, Any] = field(default_factory=dict)
    on_delete: Literal["closePositions", "leaveOpen"] = "closePositions"
    ingress_from: tuple[Mapping[str, Any], ...] = ()  # more NetworkPolicy peers for :8090
    analytics: AnalyticsSpec | None = None  # OpenSearch (runbook 12): rendered and in env
    telegram: TelegramSpec | None = None  # Telegram control and notifications


@dataclass(frozen=True)
class AnalyticsSpec:
    endpoint: str  # OpenSearch base URL → config analytics.url (enabled)
    credentials: SecretRef | None = None  # OPENSEARCH_USERNAME / OPENSEARCH_PASSWORD


@dataclass(frozen=True)
class TelegramSpec:
    token: SecretRef  # its key (default TELEGRAM_BOT_TOKEN) → env TELEGRAM_BOT_TOKEN
    chat_ids: tuple[int, ...] = ()  # → config telegram.allowed_chat_ids (enabled)


DEFAULT_RESOURCES: dict[str, Any] = {
    "requests": {"cpu": "250m", "memory": "512Mi"},
    "limits": {"cpu": "1", "memory": "1Gi"},
}


def _ref(node: Any, key: str) -> SecretRef | None:
    if not isinstance(node, Mapping):
        return None
    ref = node.get(key)
    if not isinstance(ref, Mapping) or not ref.get("name"):
        return None
    return SecretRef(name=str(ref["name"]), key=str(ref["key"]) if ref.get("key") else None)


def parse_spec(spec: Mapping[str, Any]) -> BotSpec:
    """A BotSpec from `.spec`; unknown or ill-typed values fall back to the defaults."""
    mode = spec.get("mode", "paper")
    on_delete = spec.get("onDelete", "closePositions")
    canary = spec.get("canary") or {}
    storage = spec.get("storage") or {}
    duration = canary.get("minDuration")
    return BotSpec(
        mode=mode if mode in MODES else "paper",
        suspended=bool(spec.get("suspended", False)),
        image=str(spec.get("image") or DEFAULT_IMAGE),
        image_pull_policy=str(spec.get("imagePullPolicy") or "IfNotPresent"),
        pairs=tuple(str(p) for p in spec.get("pairs") or ()),
        exchange_secret=_ref(spec.get("exchange"), "credentialsSecretRef"),
        dashboard_secret=_ref(spec.get("dashboard"), "secretRef"),
        database_secret=_ref(spec.get("database"), "urlSecretRef"),
        database_cnpg=_cnpg_cluster(spec.get("database")),
        canary=CanaryPolicy(
            max_notional=float(canary["maxNotional"]) if "maxNotional" in canary else None,
            min_duration_seconds=parse_duration(duration) if duration else 0,
            required_before_live=bool(canary.get("requiredBeforeLive", False)),
        ),
        resources=dict(spec.get("resources") or DEFAULT_RESOURCES),
        storage_size=str(storage.get("size") or "5Gi"),
        storage_class=str(storage["storageClassName"]) if storage.get("storageClassName") else None,
        config=dict(spec.get("config") or {}),
        on_delete=on_delete if on_delete in ON_DELETE else "closePositions",
        ingress_from=tuple(dict(p) for p in (spec.get("network") or {}).get("ingressFrom") or ()
                           if isinstance(p, Mapping)),
        analytics=_analytics(spec.get("analytics")),
        telegram=_telegram(spec.get("telegram")),
    )


def _cnpg_cluster(node: Any) -> str | None:
    cnpg = node.get("cnpg") if isinstance(node, Mapping) else None
    cluster = cnpg.get("cluster") if isinstance(cnpg, Mapping) else None
    return str(cluster) if cluster else None


def _analytics(node: Any) -> AnalyticsSpec | None:
    if not isinstance(node, Mapping) or not node.get("endpoint"):
        return None
    return AnalyticsSpec(endpoint=str(node["endpoint"]),
                         credentials=_ref(node, "credentialsSecretRef"))


def _telegram(node: Any) -> TelegramSpec | None:
    token = _ref(node, "tokenSecretRef")
    if not isinstance(node, Mapping) or token is None:
        return None
    chats = tuple(int(c) for c in node.get("chatIds") or () if isinstance(c, int))
    return TelegramSpec(token=token, chat_ids=chats)


def spec_rule_violations(spec: Mapping[str, Any]) -> list[str]:
    """The CRD's CEL rules, evaluated in Python (same logic, same messages).

    The API server enforces the CEL rules; this mirror lets tests check them without one,
    and lets the operator refuse an object stored before a rule existed.
    """
    errors: list[str] = []
    mode = spec.get("mode", "paper")
    exchange = spec.get("exchange") or {}
    dashboard = spec.get("dashboard") or {}
    if mode != "paper" and not exchange.get("credentialsSecretRef"):
        errors.append(f"{RULE_LIVE_EXCHANGE_MSG}")
    if mode != "paper" and not dashboard.get("secretRef"):
        errors.append(f"{RULE_LIVE_DASHBOARD_MSG}")
    endpoint = (spec.get("analytics") or {}).get("endpoint")
    if endpoint is not None and not re.fullmatch(ANALYTICS_ENDPOINT_PATTERN, str(endpoint)):
        errors.append(RULE_ANALYTICS_ENDPOINT_MSG)
    database = spec.get("database") or {}
    if "urlSecretRef" in database and "cnpg" in database:
        errors.append(RULE_ONE_DATABASE_MSG)
    config = spec.get("config") or {}
    if "url" in (config.get("database") or {}):
        errors.append(RULE_NO_DB_URL_MSG)
    canary = spec.get("canary") or {}
    if canary.get("requiredBeforeLive") and re.fullmatch(
            ZERO_DURATION_PATTERN, str(canary.get("minDuration", ""))):
        errors.append(RULE_CANARY_DURATION_MSG)
    feed = config.get("feed") or {}
    initial = feed.get("reconnect_initial_seconds", DEFAULT_RECONNECT_INITIAL)
    maximum = feed.get("reconnect_max_seconds", DEFAULT_RECONNECT_MAX)
    if float(initial) > float(maximum):
        errors.append(RULE_RECONNECT_MSG)
    trading = config.get("trading") or {}
    currency = trading.get("account_currency", DEFAULT_ACCOUNT_CURRENCY)
    pairs = spec["pairs"] if "pairs" in spec else trading.get("pairs", DEFAULT_PAIRS)
    if not all(str(pair).endswith(f"/{currency}") for pair in pairs):
        errors.append(RULE_PAIR_QUOTE_MSG)
    return errors


# The bot's defaults, which the CEL rules assume for settings spec.config leaves out.
DEFAULT_RECONNECT_INITIAL = FeedConfig().reconnect_initial_seconds
DEFAULT_RECONNECT_MAX = FeedConfig().reconnect_max_seconds
DEFAULT_ACCOUNT_CURRENCY = TradingConfig().account_currency
DEFAULT_PAIRS = tuple(TradingConfig().pairs)


# A duration that is nothing, or zero in every unit ("0s", "0m0s"): no canary time at all.
ZERO_DURATION_PATTERN = r"^(0+h)?(0+m)?(0+s)?$"
RULE_CANARY_DURATION_MSG = (
    "spec.canary.requiredBeforeLive needs a spec.canary.minDuration above zero: without it "
    "the canary would be promoted to live at once, before its pod was ever Ready"
)
RULE_LIVE_EXCHANGE_MSG = "canary and live modes need spec.exchange.credentialsSecretRef"
RULE_LIVE_DASHBOARD_MSG = "canary and live modes need spec.dashboard.secretRef"
RULE_RECONNECT_MSG = (
    "spec.config.feed.reconnect_initial_seconds must not exceed reconnect_max_seconds "
    f"(defaults {DEFAULT_RECONNECT_INITIAL:g} and {DEFAULT_RECONNECT_MAX:g})"
)
RULE_PAIR_QUOTE_MSG = (
    "every pair (spec.pairs, else spec.config.trading.pairs) must be quoted in the account "
    f"currency spec.config.trading.account_currency (default {DEFAULT_ACCOUNT_CURRENCY}): "
    "the bot does not convert between currencies"
)
# http(s)://host[:port][/path], no user:password@ (it would land in the ConfigMap).
ANALYTICS_ENDPOINT_PATTERN = r"^https?://[^\s/@]+(/.*)?$"
RULE_ANALYTICS_ENDPOINT_MSG = (
    "spec.analytics.endpoint must be an http(s) URL without user:password@ (it would land in "
    "a ConfigMap): use spec.analytics.credentialsSecretRef"
)
RULE_NO_DB_URL_MSG = (
    "spec.config.database.url is not allowed (it would land in a ConfigMap): "
    "use spec.database.urlSecretRef"
)
RULE_ONE_DATABASE_MSG = (
    "spec.database: set urlSecretRef or cnpg, not both (one database per bot)"
)
# A TradingBot's name names its Service (a DNS-1035 label) and is a label value (≤ 63).
NAME_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
NAME_MAX_LENGTH = 63
RULE_NAME_MSG = (
    "metadata.name must be a DNS-1035 label of at most 63 characters: lower-case letters, "
    "digits and '-', starting with a letter, ending with a letter or digit, no dots (it names "
    "the bot's Service and is the value of its labels)"
)
QUANTITY_HINT = "a quantity like 5Gi, 512Mi, 250m or 2 (Kubernetes quantity syntax, not negative)"
# Kubernetes' quantity syntax (resource.Quantity), without a sign: none of these is negative.
QUANTITY_PATTERN = (r"^(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|"
                    r"([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$")


def name_violations(name: str) -> list[str]:
    """The CRD's rule on metadata.name, in Python."""
    ok = len(name) <= NAME_MAX_LENGTH and re.fullmatch(NAME_PATTERN, name) is not None
    return [] if ok else [RULE_NAME_MSG]


# --- spec.remediation: the auto-pilot's policy (runbooks 1, 2, 6) ------------------------------

@dataclass(frozen=True)
class FeedPolicy:
    pause_after: int = 60  # seconds of feed down before the operator pauses trading
    restart_after: int = 300  # ...before it restarts the pod (once per episode)
    resume_after_healthy: int = 120  # seconds of healthy feed before it lifts its own pause


@dataclass(frozen=True)
class RemediationPolicy:
    feed: FeedPolicy = field(default_factory=FeedPolicy)
    max_restarts_per_hour: int = 3
    unhealthy_after: int = 60  # /health failing this long while the pod runs → restart
    oom_growth_factor: float = 1.5
    oom_ceiling: str = "4Gi"
    stale_lock_enabled: bool = True


REMEDIATION_DEFAULTS: dict[str, dict[str, Any]] = {
    "feed": {"pauseAfter": "1m", "restartAfter": "5m", "resumeAfterHealthy": "2m"},
    "restarts": {"maxPerHour": 3, "unhealthyAfter": "1m"},
    "oom": {"growthFactor": 1.5, "ceiling": "4Gi"},
    "staleLock": {"enabled": True},
}
RULE_FEED_ORDER_MSG = ("spec.remediation.feed.pauseAfter must not exceed restartAfter: trading "
                       "is paused before the pod is restarted")


def _seconds(node: Mapping[str, Any], key: str, default: int) -> int:
    try:
        return parse_duration(str(node[key])) if key in node else default
    except ValueError:
        return default


def parse_remediation(spec: Mapping[str, Any]) -> RemediationPolicy:
    """The policy from `.spec.remediation`, defaults filled in (as the CRD's defaulting does)."""
    node = spec.get("remediation") or {}
    feed = node.get("feed") or {}
    restarts = node.get("restarts") or {}
    oom = node.get("oom") or {}
    lock = node.get("staleLock") or {}
    d = RemediationPolicy()
    return RemediationPolicy(
        feed=FeedPolicy(
            pause_after=_seconds(feed, "pauseAfter", d.feed.pause_after),
            restart_after=_seconds(feed, "restartAfter", d.feed.restart_after),
            resume_after_healthy=_seconds(feed, "resumeAfterHealthy",
                                          d.feed.resume_after_healthy),
        ),
        max_restarts_per_hour=int(restarts.get("maxPerHour", d.max_restarts_per_hour)),
        unhealthy_after=_seconds(restarts, "unhealthyAfter", d.unhealthy_after),
        oom_growth_factor=float(oom.get("growthFactor", d.oom_growth_factor)),
        oom_ceiling=str(oom.get("ceiling", d.oom_ceiling)),
        stale_lock_enabled=bool(lock.get("enabled", d.stale_lock_enabled)),
    )


def remediation_rule_violations(remediation: Mapping[str, Any]) -> list[str]:
    """The CEL rule on spec.remediation.feed, in Python."""
    feed = remediation.get("feed") or {}
    pause = _seconds(feed, "pauseAfter", FeedPolicy().pause_after)
    restart = _seconds(feed, "restartAfter", FeedPolicy().restart_after)
    return [RULE_FEED_ORDER_MSG] if pause > restart else []
