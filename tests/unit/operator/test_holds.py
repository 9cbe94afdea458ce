"""The teardown's holds: which children carry the finalizer, when it is let go, and how one
finalizer is added or removed without losing anyone else's (a stale read is retried)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import kopf
import pytest
from aiohttp import web

from novapulse_operator import holds, manifests, rendering
from novapulse_operator.kube import KubeClient, KubeError
from novapulse_operator.manifests import Owner
from novapulse_operator.spec import parse_spec
from support.local_http import serving

HOLD = holds.finalizer_of("bot1")
OTHER = "kubernetes.io/pvc-protection"


def obj(finalizers: list[str] | None = None, deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "x", "finalizers": finalizers or []}
    if deleting:
        meta["deletionTimestamp"] = "2026-12-02T10:00:00Z"
    return {"metadata": meta}


@pytest.mark.parametrize(("found", "namespace_ending", "expected"), [
    (None, False, None),                                  # absent: nothing to hold
    (obj(), False, "add"),                                # not held yet
    (obj([OTHER]), False, "add"),                         # others' finalizers kept
    (obj([HOLD]), False, None),                           # held already
    (obj([HOLD], deleting=True), True, None),             # the namespace goes: kept
    (obj([HOLD], deleting=True), False, "release"),       # deleted on purpose
    (obj([], deleting=True), False, None),                # no finalizer on the way out
    (obj([], deleting=True), True, None),
])
def test_decide(found: dict[str, Any] | None, namespace_ending: bool,
                expected: holds.Decision) -> None:
    assert holds.decide(found, HOLD, namespace_ending) == expected


def test_only_a_held_child_being_deleted_asks_about_its_namespace() -> None:
    assert holds.needs_namespace_check(obj([HOLD], deleting=True), HOLD)
    assert not holds.needs_namespace_check(obj([HOLD]), HOLD)
    assert not holds.needs_namespace_check(obj([OTHER], deleting=True), HOLD)
    assert not holds.needs_namespace_check(None, HOLD)


def test_each_bot_holds_under_its_own_name_and_refs_round_trip() -> None:
    assert holds.finalizer_of("a") != holds.finalizer_of("b")  # a shared Secret: one each
    ref = holds.Ref("apps/v1", "Deployment", "bot1")
    assert holds.Ref.parse(ref.text) == ref
    assert holds.Ref.parse("Secret/dash") == holds.Ref("v1", "Secret", "dash")
    assert holds.Ref.parse("ConfigMap/c") is None and holds.Ref.parse("Secret/") is None


def test_the_deployment_is_created_with_its_hold() -> None:
    spec = parse_spec({"mode": "paper"})
    owner = Owner(name="bot1", namespace="ns", uid="u")
    made = manifests.deployment(owner, spec, rendering.render(spec, "paper", "ns/bot1"), "paper")
    assert made["metadata"]["finalizers"] == [HOLD]


def test_an_apply_refused_for_a_child_being_deleted_is_told_apart() -> None:
    message = ('Deployment.apps "bot1" is invalid: metadata.finalizers: Forbidden: no new '
               "finalizers can be added if the object is being deleted, found new finalizers "
               '[]string{"teardown.novapulse.io/bot1"}')
    assert holds.refused_while_deleted(KubeError(422, message))
    assert not holds.refused_while_deleted(KubeError(422, "spec.replicas: Invalid value"))
    assert not holds.refused_while_deleted(KubeError(409, message))


class FinalizerServer:
    """One Secret; merge patches honour the resourceVersion they carry (409 when stale)."""

    def __init__(self) -> None:
        self.secret: dict[str, Any] | None = {"apiVersion": "v1", "kind": "Secret", "metadata": {
            "name": "dash", "namespace": "ns", "resourceVersion": "1", "finalizers": [OTHER]}}
        self.patches: list[dict[str, Any]] = []
        self.sneak_in: str | None = None  # a finalizer someone adds just before our patch
        self.forbidden = False

    async def get(self, _: web.Request) -> web.Response:
        if self.secret is None:
            return web.json_response({"code": 404, "message": "not found"}, status=404)
        return web.json_response(self.secret)

    async def patch(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.patches.append(body)
        if self.forbidden:
            return web.json_response({"code": 403, "message": "cannot patch secrets"},
                                     status=403)
        if self.secret is None:
            return web.json_response({"code": 404, "message": "not found"}, status=404)
        meta = self.secret["metadata"]
        if self.sneak_in:
            meta["finalizers"] = [*meta["finalizers"], self.sneak_in]
            meta["resourceVersion"] = str(int(meta["resourceVersion"]) + 1)
            self.sneak_in = None
        if body["metadata"]["resourceVersion"] != meta["resourceVersion"]:
            return web.json_response({"code": 409, "message": "the object has been modified"},
                                     status=409)
        meta["finalizers"] = body["metadata"]["finalizers"] or []
        meta["resourceVersion"] = str(int(meta["resourceVersion"]) + 1)
        return web.json_response(self.secret)


@pytest.fixture()
async def server() -> AsyncIterator[tuple[FinalizerServer, KubeClient]]:
    fake = FinalizerServer()
    app = web.Application()
    app.router.add_get("/api/v1/namespaces/ns/secrets/dash", fake.get)
    app.router.add_patch("/api/v1/namespaces/ns/secrets/dash", fake.patch)
    async with serving(app) as url:
        client = KubeClient(kopf.ConnectionInfo(server=url, scheme="Bearer", token="t"))
        try:
            yield fake, client
        finally:
            await client.close()


KEY = ("v1", "Secret", "ns", "dash")


async def test_a_finalizer_is_added_and_removed_keeping_the_others(
        server: tuple[FinalizerServer, KubeClient]) -> None:
    fake, client = server
    assert await client.set_finalizer(KEY, None, HOLD, present=True)
    assert fake.secret is not None and fake.secret["metadata"]["finalizers"] == [OTHER, HOLD]
    assert not await client.set_finalizer(KEY, None, HOLD, present=True)  # already there
    assert await client.set_finalizer(KEY, None, HOLD, present=False)
    assert fake.secret["metadata"]["finalizers"] == [OTHER]
    assert len(fake.patches) == 2


async def test_a_finalizer_written_meanwhile_is_not_lost(
        server: tuple[FinalizerServer, KubeClient]) -> None:
    fake, client = server
    stale = await client.get(*KEY)
    fake.sneak_in = "example.com/backup"
    assert await client.set_finalizer(KEY, stale, HOLD, present=True)
    assert fake.secret is not None
    assert fake.secret["metadata"]["finalizers"] == [OTHER, "example.com/backup", HOLD]
    assert len(fake.patches) == 2  # refused once (stale), then written from a fresh read


async def test_a_gone_object_needs_no_release(server: tuple[FinalizerServer, KubeClient],
                                              ) -> None:
    fake, client = server
    fake.secret = None
    assert not await client.set_finalizer(KEY, None, HOLD, present=False)


async def test_a_refusal_that_is_not_a_conflict_is_raised(
        server: tuple[FinalizerServer, KubeClient]) -> None:
    fake, client = server
    fake.forbidden = True  # RBAC without patch on Secrets: the caller warns, nothing retried
    with pytest.raises(KubeError) as raised:
        await client.set_finalizer(KEY, None, HOLD, present=True)
    assert raised.value.status == 403 and len(fake.patches) == 1
