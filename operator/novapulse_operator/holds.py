"""Finalizers on what a TradingBot's teardown needs: the Deployment that runs the bot and the
Secret that holds its admin key.

Deleting a namespace deletes everything in it at once. Without a hold the dashboard Secret
is gone before the operator's deletion handler reads it (the pause is refused with HTTP 401
and the bot is not paused), and the Deployment is gone with it. Each hold is a finalizer
named after its TradingBot (`teardown.novapulse.io/NAME`): two bots that share one dashboard
Secret hold it each and each lets go of its own.

The Deployment is created and applied with its hold; the Secret gets it at creation (the
generated one) or by a patch (a user's). A hold is let go when the teardown is done, when
the child is no longer what the teardown needs (the dashboard Secret was renamed), and when
someone deletes the child on purpose while the bot lives on (not a namespace deletion): a
user replacing a Secret by delete and create is not kept waiting, and a deleted Deployment
is recreated as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from novapulse_operator import manifests
from novapulse_operator.kube import KubeClient, KubeError

Decision = Literal["add", "release"] | None
finalizer_of = manifests.teardown_finalizer


@dataclass(frozen=True)
class Ref:
    """A held child: its API version, kind and name (in the TradingBot's namespace)."""

    api_version: str
    kind: str
    name: str

    @property
    def text(self) -> str:  # as status.teardownHolds lists it
        return f"{self.kind}/{self.name}"

    @staticmethod
    def parse(text: str) -> Ref | None:
        kind, _, name = text.partition("/")
        api = {"Secret": "v1", "Deployment": "apps/v1"}.get(kind)
        return Ref(api, kind, name) if api and name else None


def _meta(obj: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return (obj or {}).get("metadata") or {}


def held(obj: Mapping[str, Any] | None, finalizer: str) -> bool:
    return finalizer in (_meta(obj).get("finalizers") or ())


def needs_namespace_check(obj: Mapping[str, Any] | None, finalizer: str) -> bool:
    """Whether deciding on `obj` needs to know if its namespace is being deleted: only for a
    held child that is itself being deleted."""
    return held(obj, finalizer) and bool(_meta(obj).get("deletionTimestamp"))


def decide(obj: Mapping[str, Any] | None, finalizer: str,
           namespace_terminating: bool = False) -> Decision:
    """What to do with the hold on a child the teardown needs (`obj` as read; None: it does
    not exist). `namespace_terminating` matters only for a held child being deleted (see
    `needs_namespace_check`)."""
    if obj is None:
        return None
    is_held = held(obj, finalizer)
    if _meta(obj).get("deletionTimestamp"):
        # A namespace deletion: kept until the teardown is done. Anything else is someone
        # deleting the child on purpose: let it go. (A finalizer cannot be added to an
        # object being deleted, so an unheld one stays unheld.)
        return "release" if is_held and not namespace_terminating else None
    return None if is_held else "add"


def refused_while_deleted(exc: KubeError) -> bool:
    """Whether an apply was refused because it carries the hold to a child being deleted
    (the API server adds no finalizer to such an object): it is recreated once gone."""
    return exc.status == 422 and "being deleted" in exc.message


async def namespace_terminating(client: KubeClient, namespace: str) -> bool:
    found = await client.get_namespace(namespace)
    return found is None or bool(_meta(found).get("deletionTimestamp")) or (
        (found.get("status") or {}).get("phase") == "Terminating")


async def keep(client: KubeClient, namespace: str, bot_name: str,
               needed: Mapping[Ref, Mapping[str, Any] | None], previous: list[str],
               ) -> list[str]:
    """Hold each child in `needed` (Ref → the object as just read), let go of the ones in
    `previous` (status.teardownHolds) no longer needed; returns the holds now in place."""
    finalizer = finalizer_of(bot_name)
    in_place: list[str] = []
    terminating: bool | None = None
    for ref, obj in needed.items():
        key = (ref.api_version, ref.kind, namespace, ref.name)
        if needs_namespace_check(obj, finalizer) and terminating is None:
            terminating = await namespace_terminating(client, namespace)
        decision = decide(obj, finalizer, bool(terminating))
        if decision is not None:
            await client.set_finalizer(key, obj, finalizer, decision == "add")
        if decision == "add" or (decision is None and held(obj, finalizer)):
            in_place.append(ref.text)
    for text in previous:
        old = Ref.parse(text)
        if old is not None and old not in needed:
            await client.set_finalizer((old.api_version, old.kind, namespace, old.name), None,
                                       finalizer, present=False)
    return in_place


async def release(client: KubeClient, namespace: str, bot_name: str,
                  refs: list[Ref]) -> None:
    """Let go of every hold of the bot on `refs` (the teardown is done): idempotent."""
    finalizer = finalizer_of(bot_name)
    for ref in dict.fromkeys(refs):
        await client.set_finalizer((ref.api_version, ref.kind, namespace, ref.name), None,
                                   finalizer, present=False)
