"""Where a TradingBot's database is, and whether the bot may start on it.

Three choices (`spec.database`): absent — the bot's embedded PostgreSQL on its data PVC;
`urlSecretRef` — a PostgreSQL named by a URL in a Secret; `cnpg.cluster` — a CloudNativePG
cluster, whose operator generates the Secret `CLUSTER-app` with the URL under `uri`. With a
Secret, the bot gets `DATABASE_URL` by `secretKeyRef` only: the operator reads the URL for
the NetworkPolicy (host and port) and never writes it anywhere.

While the Secret (or its key) is missing no pod starts: a bot that was told to use a database
never falls back on the embedded one (it would trade on an empty history). The decisions are
pure; `read` is the one API call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from novapulse_operator import netpol
from novapulse_operator.spec import BotSpec, Mode

if TYPE_CHECKING:
    from novapulse_operator.kube import KubeClient

DATABASE_READY = "DatabaseReady"
URL_KEY = "DATABASE_URL"  # the bot's variable, and the default key of urlSecretRef
CNPG_URI_KEY = "uri"  # CloudNativePG's app Secret: postgresql://app:…@CLUSTER-rw.NS:5432/app
CNPG_CLUSTER_LABEL = "cnpg.io/cluster"  # on every instance pod of a CloudNativePG cluster
EMBEDDED = "Embedded"
URL_SECRET_READY = "UrlSecretReady"
URL_SECRET_MISSING = "DatabaseSecretMissing"
CNPG_SECRET_READY = "CnpgSecretReady"
CNPG_SECRET_MISSING = "CnpgSecretMissing"


def cnpg_secret_name(cluster: str) -> str:
    return f"{cluster}-app"


@dataclass(frozen=True)
class UrlRef:
    """The Secret and the key in it that hold the bot's DATABASE_URL."""

    name: str
    key: str


def url_ref(spec: BotSpec) -> UrlRef | None:
    """Where the bot's DATABASE_URL is (None: the embedded PostgreSQL)."""
    if spec.database_cnpg is not None:
        return UrlRef(cnpg_secret_name(spec.database_cnpg), CNPG_URI_KEY)
    if spec.database_secret is not None:
        return UrlRef(spec.database_secret.name, spec.database_secret.key or URL_KEY)
    return None


@dataclass(frozen=True)
class DatabaseState:
    """The database's readiness (the DatabaseReady condition) and where the NetworkPolicy
    lets the bot connect to it (None: nowhere, the embedded PostgreSQL)."""

    ready: bool
    reason: str
    message: str
    problem: str | None = None  # what is missing, in a few words (the live gate's list)
    egress: netpol.Database | None = None


def _what(spec: BotSpec, ref: UrlRef) -> str:
    if spec.database_cnpg is not None:
        return f"Secret {ref.name} of the CloudNativePG cluster {spec.database_cnpg}"
    return f"Secret {ref.name} (spec.database.urlSecretRef)"


def _missing(spec: BotSpec, ref: UrlRef, data: Mapping[str, str] | None) -> str | None:
    what = _what(spec, ref)
    if data is None:
        return f"{what} not found"
    if ref.key not in data:
        return f"{what} lacks {ref.key}"
    if not data[ref.key].strip():
        return f"{what}: {ref.key} is empty"
    return None


def decide(spec: BotSpec, namespace: str, data: Mapping[str, str] | None) -> DatabaseState:
    """The database of `spec`, given the decoded data of its Secret (None: no such Secret)."""
    ref = url_ref(spec)
    if ref is None:
        return DatabaseState(True, EMBEDDED, "the bot's embedded PostgreSQL on its data volume")
    cnpg = spec.database_cnpg
    problem = _missing(spec, ref, data)
    if problem is not None:
        made_by = (" (CloudNativePG creates it once the cluster is ready)"
                   if cnpg is not None else "")
        return DatabaseState(
            False, CNPG_SECRET_MISSING if cnpg is not None else URL_SECRET_MISSING,
            f"{problem}{made_by}: no pod starts until it is there — the bot never falls back "
            "on its embedded PostgreSQL", problem)
    message = f"DATABASE_URL from {_what(spec, ref)}, key {ref.key}"
    if cnpg is not None:
        egress = netpol.Database(port=netpol.POSTGRES_PORT, namespace=namespace,
                                 pods={CNPG_CLUSTER_LABEL: cnpg})
        return DatabaseState(True, CNPG_SECRET_READY, message, egress=egress)
    egress = netpol.database_of((data or {}).get(ref.key), namespace) or netpol.Database()
    return DatabaseState(True, URL_SECRET_READY, message, egress=egress)


async def read(client: KubeClient, namespace: str, spec: BotSpec) -> DatabaseState:
    """`decide` on the Secret as the API server has it now."""
    ref = url_ref(spec)
    data = await client.secret_data(namespace, ref.name) if ref is not None else None
    return decide(spec, namespace, data)


def wait(state: DatabaseState, effective: Mode | None) -> Mode | None:
    """No pod while the database is not there (the live gate's hold of a running real-money
    bot comes after this and may keep it)."""
    return effective if state.ready else None


def env(spec: BotSpec) -> list[dict[str, Any]]:
    """DATABASE_URL by reference to its Secret (none for the embedded PostgreSQL)."""
    ref = url_ref(spec)
    if ref is None:
        return []
    return [{"name": URL_KEY, "valueFrom": {"secretKeyRef": {"name": ref.name,
                                                             "key": ref.key}}}]


def events(prev: Mapping[str, Any], new: Mapping[str, Any],
           emit: Callable[[str, str, str], None]) -> None:
    """A Warning when the database stops being there (or changes why), a Normal when it
    comes: on transitions only."""
    before = _condition(prev) or {}
    after = _condition(new) or {}
    if after.get("status") == "False" and after.get("message") != before.get("message"):
        emit("Warning", "DatabaseNotReady", str(after.get("message")))
    if after.get("status") == "True" and before.get("status") == "False":
        emit("Normal", "DatabaseReady", str(after.get("message")))


def _condition(status: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for cond in status.get("conditions") or ():
        if cond.get("type") == DATABASE_READY:
            return dict(cond)
    return None
