"""The validating admission webhook: the bot's own config validation at `kubectl apply`.

The CRD's schema and CEL refuse bad types, bounds and modes; cross-field rules of the bot's
config model (e.g. take-profit vs. stop-loss) need the model itself. This webhook runs the
same check the reconciler runs (`spec_rule_violations` + `rendering.validate`) and refuses
the object with every `field.path: message` at once.

The chart registers the `ValidatingWebhookConfiguration` (with `failurePolicy: Ignore`: the
webhook lives in the operator, and the reconciler's own check — `ConfigValid=False`, the
config never ships — stays for when it is down) and the serving certificate, mounted as
`tls.crt`/`tls.key`. Kopf serves one path per handler id: `/validate-config`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kopf

from novapulse_operator import rendering
from novapulse_operator.spec import GROUP, PLURAL, VERSION, parse_spec, spec_rule_violations

HANDLER_ID = "validate-config"  # the URL path the chart's webhook configuration names
CERT_FILE = "tls.crt"
KEY_FILE = "tls.key"


@dataclass(frozen=True)
class WebhookConfig:
    port: int
    cert_dir: Path
    addr: str = "0.0.0.0"


def admission_errors(body: Mapping[str, Any], old: Mapping[str, Any] | None = None,
                     namespace: str = "") -> list[str]:
    """Every problem of the object's config as 'field.path: message'; [] admits it.

    An object being deleted, or an update that leaves `.spec` as it was (finalizers,
    annotations, labels), is admitted: a config stored before the webhook existed must never
    hold up its own deletion."""
    meta = body.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return []
    spec: Mapping[str, Any] = body.get("spec") or {}
    if old is not None and (old.get("spec") or {}) == spec:
        return []
    bot = parse_spec(spec)
    name = meta.get("name") or meta.get("generateName") or "new"
    identity = f"{meta.get('namespace') or namespace or 'default'}/{name}"
    return spec_rule_violations(spec) + rendering.validate(bot, bot.mode, identity)


def refusal(errors: list[str]) -> str:
    count = "1 error" if len(errors) == 1 else f"{len(errors)} errors"
    return f"spec.config is invalid ({count}): " + "; ".join(errors)


def server(cfg: WebhookConfig) -> kopf.WebhookServer:
    return kopf.WebhookServer(addr=cfg.addr, port=cfg.port,
                              certfile=cfg.cert_dir / CERT_FILE,
                              pkeyfile=cfg.cert_dir / KEY_FILE)


def register(registry: kopf.OperatorRegistry, cfg: WebhookConfig) -> None:
    """The webhook server and its one handler, into `registry`."""

    @kopf.on.startup(registry=registry)
    def webhook_server(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.admission.server = server(cfg)
        settings.admission.managed = None  # the chart owns the webhook configuration

    @kopf.on.validate(GROUP, VERSION, PLURAL, id=HANDLER_ID, registry=registry,
                      operations=["CREATE", "UPDATE"])
    def validate_config(body: kopf.Body, namespace: str | None, **kwargs: Any) -> None:
        old: Mapping[str, Any] | None = kwargs.get("old")  # absent on CREATE
        errors = admission_errors(body, old, namespace=namespace or "")
        if errors:
            raise kopf.AdmissionError(refusal(errors), code=422)
