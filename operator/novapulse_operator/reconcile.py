"""One reconcile of a TradingBot: read, decide (pure modules), write children, return status.

Idempotent: every child is applied by name, so a reconcile cut off half-way and run again
(operator restart, a timer tick) converges to the same objects and duplicates nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from novapulse_operator import (
    accounts,
    autopilot,
    database,
    generated,
    holds,
    livegate,
    manifests,
    metrics,
    netpol,
    rendering,
    status,
)
from novapulse_operator.account_book import AccountBook
from novapulse_operator.kube import ApplyConflict, KubeClient, KubeError, secret_values
from novapulse_operator.manifests import Owner, Remedies
from novapulse_operator.spec import BotSpec, Mode, parse_spec, spec_rule_violations

Emit = Callable[[str, str, str], None]  # (type Normal|Warning, reason, message)
_BLOCKED: set[str] = set()
_HOLD_WARNED: dict[str, str] = {}  # uid → the last refusal to hold, warned once


def owner_of(body: Mapping[str, Any]) -> Owner:
    meta = body["metadata"]
    return Owner(name=meta["name"], namespace=meta["namespace"], uid=meta.get("uid", ""))


def identity_of(owner: Owner) -> str:
    return f"{owner.namespace}/{owner.name}"


def _running_mode(prev: Mapping[str, Any]) -> Mode | None:
    mode = prev.get("effectiveMode")
    return mode if mode in ("paper", "canary", "live") else None


async def _read_secrets(client: KubeClient, owner: Owner, spec: BotSpec,
                        ) -> tuple[dict[str, str] | None, dict[str, Any] | None]:
    """The exchange Secret's data and the user's dashboard Secret as read (None: absent)."""
    exchange = dashboard = None
    if spec.exchange_secret is not None:
        exchange = await client.secret_data(owner.namespace, spec.exchange_secret.name)
    if spec.dashboard_secret is not None:
        dashboard = await client.get("v1", "Secret", owner.namespace, spec.dashboard_secret.name)
    return exchange, dashboard


async def _database(client: KubeClient, owner: Owner, spec: BotSpec) -> database.DatabaseState:
    """Whether the bot's database is there (embedded, a URL Secret, CloudNativePG's Secret)
    and where its NetworkPolicy lets it connect (only host and port of a URL are kept)."""
    return await database.read(client, owner.namespace, spec)


async def ensure_generated_dashboard_secret(client: KubeClient, owner: Owner, emit: Emit,
                                            ) -> dict[str, Any] | None:
    """The generated Secrets: the pod's (keys and the password's hash) and the password's own,
    which no pod references. The password is written first: it is never lost. Returns the
    pod's Secret as read or created."""
    name = manifests.generated_dashboard_secret_name(owner)
    existing = await client.get("v1", "Secret", owner.namespace, name)
    if existing is None:
        # ~1 ms (bcrypt at 4 rounds): inline, not queued on the default executor behind
        # DNS lookups of a thousand bots' polls.
        pod_secret, login = generated.dashboard_secrets(owner)
        # Held for the teardown from the start: no second write to add the hold.
        pod_secret["metadata"]["finalizers"] = [holds.finalizer_of(owner.name)]
        # Created once, never applied: nothing may replace a generated password.
        await client.create_if_absent(login)
        created = await client.create_if_absent(pod_secret)
        if created is None:  # created meanwhile by someone else: use theirs
            return await client.get("v1", "Secret", owner.namespace, name)
        emit("Normal", "DashboardSecretGenerated", generated.how_to_read(owner))
        return created
    await _move_password_out(client, owner, existing)
    return existing


async def _move_password_out(client: KubeClient, owner: Owner, existing: Mapping[str, Any],
                             ) -> None:
    """A Secret generated before the split still holds the plaintext password next to what
    the pod uses: move it into the password's own Secret, then drop it from the pod's."""
    key = manifests.PASSWORD_KEY
    data = existing.get("data") or {}
    if key not in data:
        return
    login_name = manifests.generated_login_secret_name(owner)
    if await client.get("v1", "Secret", owner.namespace, login_name) is None:
        password = (await client.secret_data(owner.namespace, existing["metadata"]["name"])
                    or {}).get(key, "")
        await client.create_if_absent(manifests.login_secret(owner, password))
    await client.patch("v1", "Secret", owner.namespace, existing["metadata"]["name"],
                       {"data": {key: None}})


def holds_of(owner: Owner, spec: BotSpec, deployment: dict[str, Any] | None,
             dashboard_secret: dict[str, Any] | None,
             ) -> dict[holds.Ref, dict[str, Any] | None]:
    """What the teardown needs (→ the object as read): the pod's Deployment and the Secret
    with the admin key it pauses the bot with."""
    return {holds.Ref("apps/v1", "Deployment", owner.name): deployment,
            holds.Ref("v1", "Secret", manifests.dashboard_secret_name(owner, spec)):
                dashboard_secret}


async def _hold(client: KubeClient, owner: Owner, emit: Emit,
                needed: dict[holds.Ref, dict[str, Any] | None], prev: Mapping[str, Any],
                ) -> list[str]:
    """The teardown's holds (see holds.py). Refused (RBAC without patch on Secrets or
    Deployments): the bot runs on, unheld, with a Warning once per message."""
    previous = list(prev.get("teardownHolds") or [])
    try:
        in_place = await holds.keep(client, owner.namespace, owner.name, needed, previous)
    except KubeError as exc:
        if exc.status not in (403, 422):
            raise
        message = (f"cannot hold what the deletion needs ({exc.message}); a namespace "
                   "deletion may take the dashboard Secret before the bot is paused")
        if _HOLD_WARNED.get(owner.uid) != message:
            _HOLD_WARNED[owner.uid] = message
            emit("Warning", "TeardownHoldRefused", message)
        return previous
    _HOLD_WARNED.pop(owner.uid, None)
    return in_place


def remedies_of(prev: Mapping[str, Any]) -> tuple[Remedies, dict[str, int] | None]:
    """What the auto-pilot changed (status.remediation), for the children."""
    rem = prev.get("remediation") or {}
    remedies = Remedies(memory_limit=rem.get("memoryLimit") or None,
                        lock_clear_for=rem.get("lockClear") or None)
    return remedies, (dict(autopilot.RETENTION_STEPS) if rem.get("retentionReduced") else None)


def _events(prev: Mapping[str, Any], new: Mapping[str, Any], emit: Emit) -> None:
    """Events on transitions only, so a periodic resync does not flood the namespace."""
    database.events(prev, new, emit)
    before = status.get_condition(prev, status.LIVE_PREREQUISITES_MET) or {}
    after = status.get_condition(new, status.LIVE_PREREQUISITES_MET) or {}
    if after.get("status") == "False" and after.get("message") != before.get("message"):
        in_use = after.get("reason") == accounts.ACCOUNT_IN_USE
        emit("Warning", accounts.ACCOUNT_IN_USE if in_use else "LivePrerequisitesMissing",
             str(after.get("message")))
    if after.get("status") == "True" and before.get("status") == "False":
        emit("Normal", "LivePrerequisitesMet", str(after.get("message")))
    cfg_before = status.get_condition(prev, status.CONFIG_VALID) or {}
    cfg_after = status.get_condition(new, status.CONFIG_VALID) or {}
    if cfg_after.get("status") == "False" and cfg_after.get("message") != cfg_before.get("message"):
        emit("Warning", "ConfigInvalid", str(cfg_after.get("message")))
    old_hash, new_hash = prev.get("configHash"), new.get("configHash")
    if old_hash and new_hash and old_hash != new_hash:
        rolled = ("the pod is replaced (Recreate: the old one stops first)"
                  if new.get("effectiveMode") and new.get("phase") != "Suspended"
                  else "no pod runs now; the next one starts with it")
        emit("Normal", "ConfigRolledOut",
             f"config changed (hash {old_hash} → {new_hash}): {rolled}")
    if new.get("phase") == "Suspended" and prev.get("phase") != "Suspended":
        emit("Normal", "Suspended",
             "spec.suspended is true: scaled to zero replicas, the data volume is kept")
    if prev.get("phase") == "Suspended" and new.get("phase") not in (None, "Suspended"):
        emit("Normal", "Resumed", "spec.suspended is false: the bot's pod starts again")
    if new.get("liveGateHold") and not prev.get("liveGateHold"):
        emit("Warning", "LiveGateClosed", str(new["liveGateHold"]))
    if "effectiveMode" in new and new.get("effectiveMode") != prev.get("effectiveMode"):
        emit("Normal", "ModeChanged",
             f"running mode: {prev.get('effectiveMode') or 'none'} → "
             f"{new.get('effectiveMode') or 'none'}")


async def reconcile(body: Mapping[str, Any], client: KubeClient, emit: Emit,
                    book: AccountBook, now: datetime | None = None,
                    operator: netpol.OperatorPeer | None = None,
                    drift_check: bool = True,
                    on_dashboard: Callable[[Mapping[str, str]], None] | None = None,
                    ) -> dict[str, Any]:
    """Converge the children of `body`; returns the new `.status` (the operator's keys).
    `on_dashboard` is given the dashboard Secret's data when it was read (the auto-pilot's
    admin key, without a read of its own).

    `drift_check=False` applies only the children whose desired state changed since this
    operator last applied them (a periodic re-check); True applies all of them, which also
    puts back what someone else changed or deleted."""
    started = time.monotonic()
    now = now or datetime.now(UTC)
    owner = owner_of(body)
    generation = int(body["metadata"].get("generation") or 0)
    raw_spec: Mapping[str, Any] = body.get("spec") or {}
    spec = parse_spec(raw_spec)
    prev: Mapping[str, Any] = body.get("status") or {}
    running = _running_mode(prev)
    identity = identity_of(owner)
    errors = tuple(spec_rule_violations(raw_spec) + rendering.validate(spec, spec.mode, identity))

    exchange, dashboard_secret = await _read_secrets(client, owner, spec)
    dashboard = None if dashboard_secret is None else secret_values(dashboard_secret)
    db = await _database(client, owner, spec)
    credit = (prev.get("canary") or {}).get("creditedSeconds")
    gate = livegate.evaluate(spec, exchange, dashboard, running_mode=running,
                             canary_seconds=float(credit) if credit is not None else None,
                             database_problem=db.problem)
    effective = running if errors else livegate.effective_mode(spec.mode, gate, running)
    account = prev.get("exchangeAccount")
    held: str | None = None
    if not errors:  # one bot per exchange account; an invalid config changes nothing
        guarded = book.guard(body, accounts.account_of(exchange), spec.mode, gate, effective)
        gate, effective, account = guarded.gate, guarded.effective, guarded.account
        effective = database.wait(db, effective)  # never on the embedded one instead
        held = livegate.hold_real_money(spec.mode, gate, running, effective,
                                        prev.get("bot") or {})
        if held is not None:
            effective = running  # paused first (the auto-pilot), stopped only once flat
    remedies, retention = remedies_of(prev)
    rendered = rendering.render(spec, effective or "paper", identity, retention)
    ready = False
    refused: str | None = None
    in_place: list[str] = list(prev.get("teardownHolds") or [])
    deployment: dict[str, Any] | None = None
    if not errors:
        kind, name = "Secret", manifests.generated_dashboard_secret_name(owner)
        try:
            if spec.dashboard_secret is None:
                dashboard_secret = await ensure_generated_dashboard_secret(client, owner, emit)
                dashboard = None if dashboard_secret is None else secret_values(dashboard_secret)
            for child in manifests.children(owner, spec, rendered, effective, remedies,
                                            operator, db.egress):
                kind, name = child["kind"], child["metadata"]["name"]
                try:
                    applied = await client.apply(child, only_if_changed=not drift_check)
                except KubeError as exc:
                    if not holds.refused_while_deleted(exc):
                        raise
                    continue  # deleted on purpose and let go (holds.py): made anew once gone
                if applied.action != "unchanged":
                    metrics.CHILDREN_WRITES.labels(child["kind"], applied.action).inc()
                if kind == "Deployment":
                    deployment = applied.obj  # its status as the server answered
            if deployment is None:  # not sent (unchanged) or refused: read it
                deployment = await client.get("apps/v1", "Deployment", owner.namespace,
                                              owner.name)
            ready = int(((deployment or {}).get("status") or {}).get("readyReplicas") or 0) >= 1
            in_place = await _hold(client, owner, emit, holds_of(owner, spec, deployment,
                                                                  dashboard_secret), prev)
        except KubeError as exc:
            if not isinstance(exc, ApplyConflict) and (
                    exc.status < 400 or exc.status >= 500 or exc.status in (401, 403, 409, 429)):
                raise  # not the object's fault: kopf retries
            refused = f"the API server refused {kind} {name}: {exc.message}"
            if isinstance(exc, ApplyConflict):
                refused += (f" — fields the operator manages were changed by "
                            f"{', '.join(sorted(exc.managers))}; the operator does not overwrite"
                            f" them: undo that change (or delete {kind} {name} to let the "
                            f"operator recreate it)")
            metrics.CHILDREN_WRITES.labels(kind, "refused").inc()

    if dashboard is not None and on_dashboard is not None:
        on_dashboard(dashboard)
    observation = status.Observation(
        generation=generation,
        requested=spec.mode,
        suspended=spec.suspended,
        config_errors=errors,
        gate=gate,
        effective=effective,
        deployment_ready=ready,
        config_hash=rendered.hash,
        exchange_account=account,
        refused=refused,
        held=held,
        database=db,
    )
    new = status.compute_status(prev, observation, now)
    new["teardownHolds"] = in_place
    _events(prev, new, emit)
    if refused and refused != (status.get_condition(prev, status.READY) or {}).get("message"):
        emit("Warning", "ChildRefused", refused)
    (_BLOCKED.discard if gate.met else _BLOCKED.add)(owner.uid)
    metrics.LIVE_GATE_BLOCKED.set(len(_BLOCKED))
    metrics.RECONCILES.labels(
        "config_invalid" if errors else "child_refused" if refused else "ok").inc()
    metrics.RECONCILE_SECONDS.observe(time.monotonic() - started)
    return new


def forget(uid: str) -> None:
    _BLOCKED.discard(uid)
    _HOLD_WARNED.pop(uid, None)
    metrics.LIVE_GATE_BLOCKED.set(len(_BLOCKED))
