"""Server-side apply in the operator's client: a conflict with the operator's own earlier
writes is taken over (forced); one with any other manager is raised, never forced; the
answer says whether the child was created, patched or left unchanged."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import kopf
import pytest
from aiohttp import web

from novapulse_operator.kube import APPLY_PATCH, FIELD_MANAGER, ApplyConflict, KubeClient
from support.local_http import serving

CHILD = {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": "c", "namespace": "ns"}, "data": {"k": "v"}}


def _conflict(manager: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 409,
            "reason": "Conflict",
            "message": f'Apply failed with 1 conflict: conflict with "{manager}": .data.k',
            "details": {"causes": [{"reason": "FieldManagerConflict", "field": ".data.k",
                                    "message": f'conflict with "{manager}"'}]}}


class FakeServer:
    """Answers applies as the API server would for one object owned by `owner`."""

    def __init__(self) -> None:
        self.owner: str | None = None  # a manager owning .data.k with another value
        self.version = 0
        self.calls: list[tuple[str, str, str]] = []

    async def handle(self, request: web.Request) -> web.Response:
        assert request.headers["Content-Type"] == APPLY_PATCH
        force = request.query.get("force", "false")
        self.calls.append((request.query["fieldManager"], force, request.method))
        if self.owner is not None and force != "true":
            return web.json_response(_conflict(self.owner), status=409)
        created = self.version == 0
        body = await request.json()
        if created or self.owner is not None:
            self.version += 1
        self.owner = None
        body["metadata"]["resourceVersion"] = str(self.version)
        return web.json_response(body, status=201 if created else 200)

    async def pods(self, request: web.Request) -> web.Response:
        """Five pods, `limit` a page, the next page named by the continue token."""
        start, limit = int(request.query.get("continue") or 0), int(request.query["limit"])
        names = [f"p{i}" for i in range(start, min(start + limit, 5))]
        self.calls.append(("", request.query.get("continue", ""), request.method))
        more = str(start + limit) if start + limit < 5 else ""
        return web.json_response({"metadata": {"continue": more},
                                  "items": [{"metadata": {"name": n}} for n in names]})


@pytest.fixture()
async def server() -> AsyncIterator[tuple[FakeServer, KubeClient]]:
    fake = FakeServer()
    app = web.Application()
    app.router.add_patch("/{tail:.*}", fake.handle)
    app.router.add_get("/api/v1/namespaces/ns/pods", fake.pods)
    async with serving(app) as url:
        client = KubeClient(kopf.ConnectionInfo(server=url, scheme="Bearer", token="t"))
        try:
            yield fake, client
        finally:
            await client.close()


async def test_created_then_unchanged_then_patched(server: tuple[FakeServer, KubeClient],
                                                  ) -> None:
    fake, client = server
    created = await client.apply(CHILD)
    assert created.action == "created" and created.obj is not None
    assert created.obj["data"] == {"k": "v"}  # the object as the server answered
    assert (await client.apply(CHILD)).action == "unchanged"
    fake.owner = FIELD_MANAGER  # e.g. the operator's own merge patch: taken over
    assert (await client.apply(CHILD)).action == "patched"
    assert fake.calls[-2:] == [(FIELD_MANAGER, "false", "PATCH"),
                               (FIELD_MANAGER, "true", "PATCH")]


async def test_another_managers_field_is_never_forced(server: tuple[FakeServer, KubeClient],
                                                      ) -> None:
    fake, client = server
    await client.apply(CHILD)
    fake.owner = "kubectl-edit"
    with pytest.raises(ApplyConflict) as raised:
        await client.apply(CHILD)
    assert raised.value.managers == frozenset({"kubectl-edit"})
    assert raised.value.status == 409
    assert 'conflict with "kubectl-edit"' in raised.value.message
    assert all(force == "false" for _, force, _ in fake.calls)


async def test_a_periodic_apply_of_an_unchanged_child_sends_nothing(
        server: tuple[FakeServer, KubeClient]) -> None:
    fake, client = server
    await client.apply(CHILD)
    skipped = await client.apply(CHILD, only_if_changed=True)
    assert (skipped.action, skipped.obj) == ("unchanged", None)
    assert len(fake.calls) == 1  # no request: this state was applied already
    changed = {**CHILD, "data": {"k": "w"}}
    await client.apply(changed, only_if_changed=True)
    assert len(fake.calls) == 2  # a changed desired state is applied


async def test_pods_are_listed_a_page_at_a_time(server: tuple[FakeServer, KubeClient]) -> None:
    fake, client = server
    names = [pod["metadata"]["name"] async for pod in client.pods("ns", "app=bot", page=2)]
    assert names == ["p0", "p1", "p2", "p3", "p4"]
    assert [token for _, token, _ in fake.calls] == ["", "2", "4"]  # three pages
