"""Control endpoints (admin key, or dashboard session with its CSRF token)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, HTTPException, Request
from pydantic import ValidationError

from novapulse.api.auth import Caller
from novapulse.api.context import AdminCaller, ApiContext
from novapulse.api.models import (
    AUTH_ERRORS,
    ClosedAll,
    ControlResult,
    ErrorBody,
    MLRetrainResult,
    PauseRequest,
    ResolveRequest,
    StrategySwitch,
    TradeOut,
    finite,
)
from novapulse.risk import PausedBy

CONTROL_ERRORS: dict[int | str, dict[str, Any]] = {
    **AUTH_ERRORS,
    403: {"model": ErrorBody, "description": "read-only key, or a session without CSRF token"},
}
PausedByHeader = Annotated[
    Literal["manual", "operator"] | None,
    Header(alias="X-Paused-By", description="`operator`: the operator marks its own pause "
                                            "(admin key only)"),
]


PAUSE_BODY: dict[str, Any] = {"requestBody": {
    "required": False,
    "content": {"application/json": {"schema": PauseRequest.model_json_schema()}},
}}


RESOLVE_BODY: dict[str, Any] = {"requestBody": {
    "required": True,
    "content": {"application/json": {"schema": ResolveRequest.model_json_schema()}},
}}


async def _pause_request(request: Request) -> PauseRequest:
    """The optional body, read only once the caller is known to be an admin (an anonymous
    caller learns nothing but 401, whatever it sends)."""
    raw = await request.body()
    if not raw.strip():
        return PauseRequest()
    try:
        return PauseRequest.model_validate_json(raw)
    except ValidationError as exc:
        raise HTTPException(422, "body must be {\"reason\": \"...\"} (1-500 characters)") from exc


def _party(caller: Caller, header: str | None) -> PausedBy | None:
    if header != "operator":
        return None
    if caller.via_session:
        raise HTTPException(403, "X-Paused-By: operator needs the admin key")
    return PausedBy.OPERATOR


def control_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["control"], responses=CONTROL_ERRORS)
    service = ctx.service
    gateway = ctx.gateway

    def result(changed: bool) -> dict[str, Any]:
        status = service.status()
        return {"changed": changed, "paused": status["paused"],
                "paused_by": status["paused_by"], "pause_reason": status["pause_reason"]}

    @router.post("/control/pause", response_model=ControlResult, openapi_extra=PAUSE_BODY,
                 responses={422: {"model": ErrorBody, "description": "the body is not valid"}})
    async def pause(caller: AdminCaller, request: Request,
                    paused_by: PausedByHeader = None) -> Any:
        """Pause new entries. `paused_by` is `manual`, or `operator` with that header. Each
        party holds its own pause: a manual pause taken while the operator holds one is kept
        separately. Already paused by the same party: nothing changes (`changed: false`), its
        first reason stays. The body is optional; without one the reason is "manual pause
        via API".
        """
        by = _party(caller, paused_by) or PausedBy.MANUAL
        reason = (await _pause_request(request)).reason

        async def act() -> dict[str, Any]:
            return result(await service.pause(reason, by))

        return await gateway.run(act)

    @router.post("/control/resume", response_model=ControlResult,
                 responses={409: {"model": ErrorBody,
                                  "description": "X-Paused-By: operator, but someone else "
                                                 "paused"}})
    async def resume(caller: AdminCaller, paused_by: PausedByHeader = None) -> Any:
        """Lift every pause (an admin's resume). With `X-Paused-By: operator`, only the
        operator's and the feed circuit breaker's pauses: a manual or risk-rule pause holds, and
        `paused` stays true. 409 when there was nothing of those to lift and someone else holds
        a pause."""
        by = _party(caller, paused_by)

        async def act() -> dict[str, Any]:
            changed = await service.resume(by)
            return result(changed)

        outcome = await gateway.run(act)
        if by is not None and not outcome["changed"] and outcome["paused"]:
            raise HTTPException(409, f"paused by {outcome['paused_by']}, not by {by}: "
                                     "left as it is")
        return outcome

    @router.post("/control/close_all", response_model=ClosedAll)
    async def close_all(_: AdminCaller) -> Any:
        """Close every open position now; returns the ids of the trades closed."""
        return {"closed": await gateway.run(service.close_all)}

    @router.post("/ml/retrain", response_model=MLRetrainResult)
    async def ml_retrain(_: AdminCaller) -> Any:
        """Retrain the confidence model now from the stored labelled samples; a model worse
        than the current one on the same held-out samples is refused (runbook 8)."""
        return await gateway.run(service.ml_retrain)

    @router.post("/trades/{trade_id}/resolve", response_model=TradeOut,
                 openapi_extra=RESOLVE_BODY,
                 responses={404: {"model": ErrorBody,
                                  "description": "no trade in error with this id"},
                            422: {"model": ErrorBody, "description": "the body is not valid"}})
    async def resolve(trade_id: str, _: AdminCaller, request: Request) -> Any:
        """Close a trade in `error` (its exit gave up, runbook 4) with the exit you made on the
        exchange: `{"exit_price": ..., "fee": ..., "note": ...}`. Replaces the runbook's
        hand-written SQL."""
        try:
            body = ResolveRequest.model_validate_json(await request.body())
        except ValidationError as exc:
            raise HTTPException(422, "body must be {\"exit_price\": > 0, \"fee\": >= 0, "
                                     "\"note\": \"...\"}") from exc
        try:
            return finite(await gateway.run(
                lambda: service.resolve(trade_id, body.exit_price, body.fee, body.note)))
        except KeyError:
            raise HTTPException(404, "no trade in error with this id") from None

    async def switch(name: str, enabled: bool) -> dict[str, Any]:
        try:
            changed = await gateway.run(lambda: service.set_strategy_enabled(name, enabled))
        except KeyError:
            raise HTTPException(404, "no such strategy") from None
        return {"name": name, "enabled": enabled, "changed": changed}

    not_found: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody}}

    @router.post("/strategies/{name}/enable", response_model=StrategySwitch, responses=not_found)
    async def enable(name: str, _: AdminCaller) -> Any:
        return await switch(name, True)

    @router.post("/strategies/{name}/disable", response_model=StrategySwitch,
                 responses=not_found)
    async def disable(name: str, _: AdminCaller) -> Any:
        return await switch(name, False)

    return router
