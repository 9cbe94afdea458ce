"""The bot's database (pure): embedded, a URL Secret, or a CloudNativePG cluster — whether it
is there, what the pod gets, where the NetworkPolicy lets the bot connect, what status says."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import kubernetes_validate
import pytest

from novapulse_operator import database, manifests, netpol, rendering, status
from novapulse_operator.livegate import GateResult
from novapulse_operator.manifests import Owner
from novapulse_operator.spec import BotSpec, Mode, parse_spec

OWNER = Owner("bot1", "trading", "uid-1")
NOW = datetime(2026, 1, 1, tzinfo=UTC)
URI = "postgresql://app:Zq8s3cretPw@pg-rw.trading:5432/app"
CNPG = parse_spec({"database": {"cnpg": {"cluster": "pg"}}})
URL = parse_spec({"database": {"urlSecretRef": {"name": "db"}}})
URL_KEYED = parse_spec({"database": {"urlSecretRef": {"name": "db", "key": "URL"}}})
EMBEDDED = parse_spec({})


@pytest.mark.parametrize(("spec", "data", "ready", "reason", "problem"), [
    (EMBEDDED, None, True, "Embedded", None),
    (CNPG, {"uri": URI, "password": "x"}, True, "CnpgSecretReady", None),
    (CNPG, None, False, "CnpgSecretMissing",
     "Secret pg-app of the CloudNativePG cluster pg not found"),
    (CNPG, {"password": "x"}, False, "CnpgSecretMissing",
     "Secret pg-app of the CloudNativePG cluster pg lacks uri"),
    (CNPG, {"uri": " "}, False, "CnpgSecretMissing",
     "Secret pg-app of the CloudNativePG cluster pg: uri is empty"),
    (URL, {"DATABASE_URL": URI}, True, "UrlSecretReady", None),
    (URL, None, False, "DatabaseSecretMissing",
     "Secret db (spec.database.urlSecretRef) not found"),
    (URL, {"URL": URI}, False, "DatabaseSecretMissing",
     "Secret db (spec.database.urlSecretRef) lacks DATABASE_URL"),
    (URL_KEYED, {"URL": URI}, True, "UrlSecretReady", None),
], ids=["embedded", "cnpg-ready", "cnpg-no-secret", "cnpg-no-uri", "cnpg-empty-uri",
        "url-ready", "url-no-secret", "url-wrong-key", "url-own-key"])
def test_is_the_database_there(spec: BotSpec, data: dict[str, str] | None, ready: bool,
                               reason: str, problem: str | None) -> None:
    state = database.decide(spec, OWNER.namespace, data)
    assert (state.ready, state.reason, state.problem) == (ready, reason, problem)
    if problem is not None:
        assert state.message.startswith(problem)
        assert "never falls back on its embedded PostgreSQL" in state.message
    assert URI not in state.message and "s3cret" not in repr(state)


def test_a_missing_cnpg_secret_says_who_makes_it() -> None:
    message = database.decide(CNPG, OWNER.namespace, None).message
    assert "Secret pg-app" in message and "CloudNativePG creates it" in message


@pytest.mark.parametrize(("mode", "ready", "expected"), [
    ("paper", True, "paper"), ("paper", False, None), ("live", False, None), (None, True, None)])
def test_no_pod_while_the_database_is_missing(mode: Mode | None, ready: bool,
                                              expected: Mode | None) -> None:
    state = database.DatabaseState(ready, "r", "m")
    assert database.wait(state, mode) == expected


def _children(spec: BotSpec, egress: netpol.Database | None) -> dict[str, dict[str, Any]]:
    rendered = rendering.render(spec, "paper", "trading/bot1")
    built = manifests.children(OWNER, spec, rendered, "paper", None, None, egress)
    return {m["kind"]: m for m in built}


def _env(children: dict[str, dict[str, Any]], name: str) -> list[dict[str, Any]]:
    container = children["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    return [e for e in container["env"] if e["name"] == name]


@pytest.mark.parametrize(("spec", "expected"), [
    (CNPG, [{"name": "DATABASE_URL",
             "valueFrom": {"secretKeyRef": {"name": "pg-app", "key": "uri"}}}]),
    (URL, [{"name": "DATABASE_URL",
            "valueFrom": {"secretKeyRef": {"name": "db", "key": "DATABASE_URL"}}}]),
    (URL_KEYED, [{"name": "DATABASE_URL",
                  "valueFrom": {"secretKeyRef": {"name": "db", "key": "URL"}}}]),
    (EMBEDDED, []),
], ids=["cnpg", "url", "url-own-key", "embedded"])
def test_the_pod_gets_database_url_by_reference_only(spec: BotSpec,
                                                     expected: list[dict[str, Any]]) -> None:
    state = database.decide(spec, OWNER.namespace, {"uri": URI, "DATABASE_URL": URI, "URL": URI})
    children = _children(spec, state.egress)
    assert _env(children, "DATABASE_URL") == expected
    assert URI not in json.dumps(children)  # in no ConfigMap, env value or annotation


def _db_rules(policy: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in policy["spec"]["egress"]
            if any(p["port"] not in (53, 443) for p in r["ports"])]


def test_the_network_policy_opens_the_cnpg_clusters_pods_on_5432() -> None:
    state = database.decide(CNPG, OWNER.namespace, {"uri": URI})
    policy = _children(CNPG, state.egress)["NetworkPolicy"]
    kubernetes_validate.validate(policy, "1.33", strict=True)
    # CLUSTER-rw selects the primary among these pods: all of them, for a switchover.
    assert _db_rules(policy) == [{
        "ports": [{"protocol": "TCP", "port": 5432}],
        "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "trading"}},
                "podSelector": {"matchLabels": {"cnpg.io/cluster": "pg"}}}],
    }]


def test_no_database_egress_while_waiting_or_embedded() -> None:
    for spec, data in [(CNPG, None), (EMBEDDED, None)]:
        state = database.decide(spec, OWNER.namespace, data)
        assert _db_rules(_children(spec, state.egress)["NetworkPolicy"]) == []


def test_a_url_secret_keeps_its_hosts_rule() -> None:
    state = database.decide(URL, OWNER.namespace,
                            {"DATABASE_URL": "postgresql://u:p@pg.db.svc:6432/np"})
    assert state.egress == netpol.Database(port=6432, namespace="db")


def _observation(state: database.DatabaseState, effective: Mode | None) -> status.Observation:
    return status.Observation(
        generation=2, requested="paper", suspended=False, config_errors=(),
        gate=GateResult(True, (), "PaperMode"), effective=effective, deployment_ready=False,
        config_hash="h", database=state)


def _condition(new: dict[str, Any]) -> dict[str, Any]:
    return dict(status.get_condition(new, database.DATABASE_READY) or {})


def test_status_while_the_cnpg_secret_is_missing_then_there() -> None:
    waiting = database.decide(CNPG, OWNER.namespace, None)
    first = status.compute_status({}, _observation(waiting, None), NOW)
    cond = _condition(first)
    assert (cond["status"], cond["reason"]) == ("False", "CnpgSecretMissing")
    assert "Secret pg-app" in cond["message"] and cond["observedGeneration"] == 2
    assert first["phase"] == "Blocked"
    ready_cond = status.get_condition(first, status.READY) or {}
    assert "waits for its database (Secret pg-app of the CloudNativePG cluster pg not " \
           "found)" in str(ready_cond.get("message"))

    there = database.decide(CNPG, OWNER.namespace, {"uri": URI})
    second = status.compute_status(first, _observation(there, "paper"), NOW)
    cond = _condition(second)
    assert (cond["status"], cond["reason"]) == ("True", "CnpgSecretReady")
    assert cond["message"] == ("DATABASE_URL from Secret pg-app of the CloudNativePG cluster "
                               "pg, key uri")
    assert second["phase"] == "Starting"
    assert URI not in json.dumps(second)


def test_events_on_transitions_only() -> None:
    emitted: list[tuple[str, str, str]] = []

    def emit(type_: str, reason: str, message: str) -> None:
        emitted.append((type_, reason, message))

    waiting = status.compute_status(
        {}, _observation(database.decide(CNPG, "trading", None), None), NOW)
    there = status.compute_status(
        waiting, _observation(database.decide(CNPG, "trading", {"uri": URI}), "paper"), NOW)
    database.events({}, waiting, emit)
    database.events(waiting, waiting, emit)  # a resync: nothing new
    database.events(waiting, there, emit)
    assert [(t, r) for t, r, _ in emitted] == [("Warning", "DatabaseNotReady"),
                                               ("Normal", "DatabaseReady")]
    assert "Secret pg-app" in emitted[0][2]
