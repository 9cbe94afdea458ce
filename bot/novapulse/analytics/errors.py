"""OpenSearch failures, each as one clear sentence for the log and the status (runbook 12).

A wrong address, a stalled server, refused credentials, a full disk
(`cluster_block_exception`) and a mapping conflict each name their cause and what to check.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from opensearchpy import exceptions as os_errors


class Problem(enum.StrEnum):
    UNREACHABLE = "unreachable"
    TIMEOUT = "timeout"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    BLOCKED = "cluster_block"
    NOT_OPENSEARCH = "not_opensearch"
    MAPPING = "mapping_conflict"
    OVERLOADED = "overloaded"
    OTHER = "error"


@dataclass(frozen=True, slots=True)
class Failure:
    problem: Problem
    message: str


def _error_type(info: Any) -> str:
    """The `type` of an OpenSearch error body (its root cause's when there is one)."""
    if isinstance(info, dict):
        error = info.get("error", info)
        if isinstance(error, dict):
            causes = error.get("root_cause")
            if isinstance(causes, list) and causes and isinstance(causes[0], dict):
                return str(causes[0].get("type", error.get("type", "")))
            return str(error.get("type", ""))
        if isinstance(error, str):
            return error
    return ""


def _reason(info: Any) -> str:
    if isinstance(info, dict):
        error = info.get("error", info)
        if isinstance(error, dict):
            return str(error.get("reason", ""))[:300]
        return str(error)[:300]
    return str(info)[:300]


BLOCKED_HINT = ("OpenSearch refuses writes: cluster_block_exception ({reason}) — usually the "
                "disk passed the flood-stage watermark: free disk space or delete old indices, "
                "then clear index.blocks.read_only_allow_delete (runbook 12)")
MAPPING_HINT = ("mapping conflict in {index}: {type}: {reason} — the index's mapping does not "
                "fit the bot's documents (an index made by hand or by an older template?); "
                "those documents are dropped")


def describe(exc: BaseException, url: str, timeout_s: float) -> Failure:
    """One sentence for a failed request. Never includes credentials (`url` has none)."""
    if isinstance(exc, os_errors.ConnectionTimeout | TimeoutError):
        return Failure(Problem.TIMEOUT, f"OpenSearch at {url} did not answer within "
                                        f"{timeout_s:g}s (stalled or overloaded)")
    if isinstance(exc, os_errors.SSLError):
        return Failure(Problem.UNREACHABLE, f"TLS to OpenSearch at {url} failed: "
                                            f"{_cause(exc)} (analytics.verify_certs?)")
    if isinstance(exc, os_errors.ConnectionError):
        return Failure(Problem.UNREACHABLE, f"cannot reach OpenSearch at {url}: {_cause(exc)} "
                                            "— check analytics.url and that OpenSearch runs")
    if isinstance(exc, os_errors.AuthenticationException):
        return Failure(Problem.UNAUTHORIZED, f"OpenSearch at {url} refused the credentials "
                                             "(401) — check OPENSEARCH_USERNAME and "
                                             "OPENSEARCH_PASSWORD")
    if isinstance(exc, os_errors.AuthorizationException):
        return Failure(Problem.FORBIDDEN, f"OpenSearch at {url} forbids this user (403): "
                                          f"{_reason(exc.info)} — it needs rights on the "
                                          "bot's indices, templates and ISM policy")
    if isinstance(exc, os_errors.TransportError):
        kind = _error_type(exc.info)
        if "cluster_block_exception" in kind or "cluster_block_exception" in str(exc.info):
            return Failure(Problem.BLOCKED, BLOCKED_HINT.format(reason=_reason(exc.info)))
        if exc.status_code == 429:
            return Failure(Problem.OVERLOADED, f"OpenSearch at {url} is overloaded (429): "
                                               f"{_reason(exc.info)}")
        if exc.status_code in (404, 405) and not kind:
            return Failure(Problem.NOT_OPENSEARCH, f"{url} answered {exc.status_code}: is it "
                                                   "OpenSearch? (check analytics.url)")
        return Failure(Problem.OTHER, f"OpenSearch at {url} answered {exc.status_code}: "
                                      f"{kind or 'error'}: {_reason(exc.info)}")
    return Failure(Problem.OTHER, f"OpenSearch at {url}: {type(exc).__name__}: {exc}")


def _cause(exc: os_errors.TransportError) -> str:
    info = exc.info
    if isinstance(info, BaseException):
        return f"{type(info).__name__}: {info}"[:300]
    return str(exc.error)[:300]


@dataclass(frozen=True, slots=True)
class ItemVerdict:
    retry: bool  # send again later (a block lifts, an overload passes); else dropped
    problem: Problem
    message: str


def bulk_item_verdict(index: str, status: int, error: dict[str, Any]) -> ItemVerdict:
    """What to do with one document a bulk request refused."""
    kind = str(error.get("type", ""))
    reason = str(error.get("reason", ""))[:300]
    caused = error.get("caused_by")
    if isinstance(caused, dict) and caused.get("reason"):
        reason = f"{reason} ({str(caused.get('reason'))[:200]})"
    if kind == "cluster_block_exception":
        return ItemVerdict(True, Problem.BLOCKED, BLOCKED_HINT.format(reason=reason))
    if status == 429 or kind in ("es_rejected_execution_exception",
                                 "circuit_breaking_exception"):
        return ItemVerdict(True, Problem.OVERLOADED, f"OpenSearch is overloaded: {kind}: "
                                                     f"{reason}")
    if kind in ("mapper_parsing_exception", "strict_dynamic_mapping_exception",
                "illegal_argument_exception", "document_parsing_exception") or status == 400:
        return ItemVerdict(False, Problem.MAPPING,
                           MAPPING_HINT.format(index=index, type=kind, reason=reason))
    return ItemVerdict(status >= 500, Problem.OTHER,
                       f"OpenSearch refused a document for {index}: {status} {kind}: {reason}")
