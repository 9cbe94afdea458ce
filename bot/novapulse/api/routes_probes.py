"""No-auth endpoints: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

import contextlib

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from novapulse.api.context import ApiContext
from novapulse.api.gateway import BotLoopUnresponsive
from novapulse.api.metrics import CONTENT_TYPE_LATEST
from novapulse.api.models import ErrorBody, Probe


def probes_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(tags=["probes"])
    service = ctx.service

    @router.get("/api/v1/health", response_model=Probe,
                responses={503: {"model": Probe, "description": "the main loop is stuck"}})
    async def health() -> JSONResponse:
        """Liveness. Answered from the API's own thread off the main loop's heartbeat, so a
        blocked main loop gives 503 instead of silence."""
        ok, detail = service.health()
        return JSONResponse(Probe(ok=ok, detail=detail).model_dump(),
                            status_code=200 if ok else 503)

    @router.get("/api/v1/ready", response_model=Probe,
                responses={503: {"model": Probe, "description": "not ready yet"}})
    async def ready() -> JSONResponse:
        """Readiness: store connected and warm-up done."""
        try:
            ok, detail = await ctx.gateway.read(service.ready)
        except BotLoopUnresponsive as exc:
            ok, detail = False, str(exc)
        return JSONResponse(Probe(ok=ok, detail=detail).model_dump(),
                            status_code=200 if ok else 503)

    @router.get("/metrics", response_class=Response,
                responses={200: {"content": {CONTENT_TYPE_LATEST: {}},
                                 "description": "Prometheus text format"},
                           503: {"model": ErrorBody}})
    async def metrics(request: Request) -> Response:
        """Prometheus metrics. Gauges come from a fresh status snapshot; when the main loop
        does not answer, the last values are served with the loop lag telling why. No auth
        unless `dashboard.metrics_require_key` (then the read key, e.g. as a bearer token)."""
        if not ctx.auth.metrics_allowed(request):
            return JSONResponse({"detail": "send the read key (Authorization: Bearer)"},
                                status_code=401, headers={"WWW-Authenticate": "Bearer"})
        ok, _ = service.health()
        if ok:
            with contextlib.suppress(BotLoopUnresponsive):
                ctx.metrics.set_status(await ctx.gateway.read(service.status))
        return Response(ctx.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return router
