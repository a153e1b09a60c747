"""Registration HTTP API (``/api/v1``): routes translate requests into use cases."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from services.registration import handlers
from services.registration.domain import (
    DomainError,
    EventSpec,
    RegistrationRequest,
    registration_window_open,
)
from shared.auth import require_roles
from shared.errors import ApiError, FieldProblem, error_responses
from shared.timeutil import now_iso, utcnow

router = APIRouter(prefix="/api/v1")


class EventView(BaseModel):
    id: str
    code: str
    title_sw: str
    title_en: str
    description_sw: str = ""
    description_en: str = ""
    theme: str = ""
    venue: str
    city: str
    starts_at: datetime
    ends_at: datetime
    timezone: str = "Africa/Dar_es_Salaam"
    capacity: int
    seats_left: int
    registration_open: bool
    requires_approval: bool
    admitted_cadres: list[str]
    state: str


class RegistrationCreated(BaseModel):
    id: str
    reference: str
    status: str
    manage_token: str
    waitlist_position: int | None = None


def _ctx(request: Request) -> handlers.Context:
    return request.app.state.context


def _event_view(doc: dict[str, Any]) -> EventView:
    return EventView(
        id=doc["_id"],
        code=doc["code"],
        title_sw=doc["title_sw"],
        title_en=doc["title_en"],
        description_sw=doc.get("description_sw", ""),
        description_en=doc.get("description_en", ""),
        theme=doc.get("theme", ""),
        venue=doc["venue"],
        city=doc["city"],
        starts_at=doc["starts_at"],
        ends_at=doc["ends_at"],
        capacity=doc["capacity"],
        seats_left=max(0, doc["capacity"] - doc.get("seats_taken", 0)),
        registration_open=doc["state"] == "published" and registration_window_open(doc, utcnow()),
        requires_approval=doc.get("requires_approval", False),
        admitted_cadres=doc.get("admitted_cadres", []),
        state=doc["state"],
    )


def _domain_error(exc: DomainError) -> ApiError:
    return ApiError(exc.status, exc.code, exc.message)


@router.get("/events", response_model=list[EventView], tags=["events"])
async def list_events(request: Request) -> list[EventView]:
    """Published events, soonest first."""
    return [_event_view(d) for d in await _ctx(request).store.list_events("published")]


@router.get(
    "/events/{event_id}",
    response_model=EventView,
    tags=["events"],
    responses=error_responses(404),
)
async def get_event(event_id: str, request: Request) -> EventView:
    """One event with the seats left and whether registration is open now."""
    doc = await _ctx(request).store.get_event(event_id)
    if doc is None or doc["state"] == "draft":
        raise ApiError(404, "event_not_found", "No such event.")
    return _event_view(doc)


@router.post(
    "/events",
    response_model=EventView,
    status_code=201,
    tags=["events"],
    responses=error_responses(401, 403, 409, 422),
)
async def create_event(
    spec: EventSpec,
    request: Request,
    _: Annotated[Any, Depends(require_roles("organiser"))],
) -> EventView:
    """Create an event (organisers)."""
    try:
        doc = await handlers.create_event(_ctx(request), spec)
    except DomainError as exc:
        raise _domain_error(exc) from exc
    return _event_view(doc)


@router.post(
    "/events/{event_id}/registrations",
    response_model=RegistrationCreated,
    status_code=201,
    tags=["registrations"],
    responses=error_responses(400, 404, 409, 413, 415, 422),
)
async def register(
    event_id: str,
    body: RegistrationRequest,
    request: Request,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            max_length=128,
            description="A retried POST with the same key and body returns the first answer.",
        ),
    ] = None,
) -> JSONResponse:
    """Register a participant. The ``manage_token`` is shown once; keep it."""
    ctx = _ctx(request)
    if idempotency_key is None:
        status, payload = await _register(ctx, event_id, body)
        return JSONResponse(payload, status_code=status)

    key = f"{event_id}:{idempotency_key}"
    fingerprint = handlers.request_fingerprint(event_id, body.model_dump(mode="json"))
    previous = await ctx.store.claim_idempotency_key(key, fingerprint, now_iso())
    if previous is not None:
        if previous.get("request_hash") != fingerprint:
            raise ApiError(
                422,
                "idempotency_key_reused",
                "This Idempotency-Key was used with a different request.",
                fields=[FieldProblem(field="Idempotency-Key", reason="used with another body")],
            )
        if previous.get("state") != "done":
            raise ApiError(
                409,
                "request_in_progress",
                "The first request with this key is still being processed.",
            )
        return JSONResponse(
            await _replay(ctx, previous),
            status_code=previous["status"],
            headers={"Idempotent-Replayed": "true"},
        )
    try:
        status, payload = await _register(ctx, event_id, body)
    except Exception:
        await ctx.store.release_idempotency_key(key)
        raise
    stored = {k: v for k, v in payload.items() if k != "manage_token"}
    await ctx.store.complete_idempotency_key(key, status, stored)
    return JSONResponse(payload, status_code=status)


async def _register(
    ctx: handlers.Context, event_id: str, body: RegistrationRequest
) -> tuple[int, dict[str, Any]]:
    try:
        result = await handlers.register_participant(ctx, event_id, body)
    except DomainError as exc:
        return exc.status, _domain_error(exc).body()
    return 201, RegistrationCreated(
        id=result.id,
        reference=result.reference,
        status=result.status,
        manage_token=result.manage_token,
        waitlist_position=result.waitlist_position,
    ).model_dump()


async def _replay(ctx: handlers.Context, record: dict[str, Any]) -> dict[str, Any]:
    """The first answer again. The manage token is stored only as a hash, so a replayed
    201 carries a fresh token (the registration's token is rotated to it)."""
    body = dict(record.get("response") or {})
    if record.get("status") == 201 and body.get("id"):
        from services.registration.domain import hash_token, new_manage_token

        token = new_manage_token()
        await ctx.store.registrations.update_one(
            {"_id": body["id"]}, {"$set": {"manage_token_hash": hash_token(token)}}
        )
        body["manage_token"] = token
    return body
