"""The CRD refuses, on the real API server, what would only fail later when the operator
makes the children: a quantity that is not one, a name that cannot name a Service, two
databases at once — with a message that says what is wrong."""

from __future__ import annotations

from typing import Any

import pytest

from novapulse_operator import spec as s

from .conftest import BOTS, NS, Cluster


def _bot(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "novapulse.io/v1alpha1", "kind": "TradingBot",
            "metadata": {"name": name, "namespace": NS}, "spec": spec}


async def _create(cluster: Cluster, obj: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    async with cluster.http.post(f"{BOTS}?fieldValidation=Strict", json=obj) as resp:
        return resp.status, dict(await resp.json())


QUANTITY = f"must be {s.QUANTITY_HINT}"
LONG_NAME = "bot-" + "x" * 66  # 70 characters: a valid object name, not a Service name


@pytest.mark.parametrize(("name", "spec", "message"), [
    ("bad", {"storage": {"size": "huge"}},
     f'spec.storage.size: Invalid value: "huge": {QUANTITY}'),
    ("bad", {"storage": {"size": "-5Gi"}}, f'spec.storage.size: Invalid value: "-5Gi": {QUANTITY}'),
    ("bad", {"resources": {"limits": {"memory": "lots"}}},
     f'spec.resources.limits[memory]: Invalid value: "lots": {QUANTITY}'),
    ("bad", {"resources": {"requests": {"cpu": "1 core"}}},
     f'spec.resources.requests[cpu]: Invalid value: "1 core": {QUANTITY}'),
    ("bad", {"remediation": {"oom": {"ceiling": "4 GB"}}},
     f'spec.remediation.oom.ceiling: Invalid value: "4 GB": {QUANTITY}'),
    ("paper.eth", {"mode": "paper"}, s.RULE_NAME_MSG),
    (LONG_NAME, {"mode": "paper"}, s.RULE_NAME_MSG),
    ("9lives", {"mode": "paper"}, s.RULE_NAME_MSG),
    ("bad", {"database": {"urlSecretRef": {"name": "db"}, "cnpg": {"cluster": "pg"}}},
     s.RULE_ONE_DATABASE_MSG),
    ("bad", {"database": {"cnpg": {"cluster": "PG_main"}}},
     'spec.database.cnpg.cluster: Invalid value: "PG_main"'),
], ids=["size-huge", "size-negative", "limit-lots", "request-words", "ceiling-spaces",
        "name-with-dot", "name-70-chars", "name-starts-with-digit", "two-databases",
        "cnpg-cluster-name"])
async def test_the_api_server_refuses(real: Cluster, name: str, spec: dict[str, Any],
                                      message: str) -> None:
    status, answer = await _create(real, _bot(name, spec))
    assert status == 422, answer
    assert message in answer["message"], answer["message"]
    assert await real.bot(name) is None


@pytest.mark.parametrize("spec", [
    {"storage": {"size": "5Gi", "storageClassName": "fast"},
     "resources": {"requests": {"cpu": "250m", "memory": "512Mi"},
                   "limits": {"cpu": 1, "memory": "1.5Gi", "ephemeral-storage": "2e9"}},
     "remediation": {"oom": {"ceiling": "8Gi"}}},
    {"storage": {"size": 10737418240}, "database": {"cnpg": {"cluster": "pg-main"}}},
    {"database": {"urlSecretRef": {"name": "db", "key": "URL"}}},
], ids=["quantities", "integer-size-and-cnpg", "url-secret"])
async def test_the_api_server_accepts_good_ones(real: Cluster,
                                                spec: dict[str, Any]) -> None:
    name = "a" * s.NAME_MAX_LENGTH  # as long as a name may be
    status, answer = await _create(real, _bot(name, spec))
    assert status == 201, answer
    stored = answer["spec"]
    for key in ("storage", "resources", "database"):  # stored as given
        assert stored.get(key) == spec.get(key, stored.get(key))
    assert stored["remediation"]["oom"]["ceiling"] == (
        spec.get("remediation", {}).get("oom", {}).get("ceiling", "4Gi"))
