"""Resolutions HTTP API: coordinators write, everyone reads (without personal data)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request, Response
from pydantic import BaseModel

from services.resolutions import handlers
from services.resolutions.domain import (
    STATUS_CATALOGUE,
    ConferenceSpec,
    DomainError,
    ProgressUpdate,
    ResolutionSpec,
)
from shared.auth import Principal, require_roles
from shared.errors import ApiError, FieldProblem, error_responses

router = APIRouter(prefix="/api/v1")


class ConferenceView(BaseModel):
    id: str
    name_sw: str
    name_en: str
    starts_on: date
    ends_on: date
    venue: str


class TimelineEntry(BaseModel):
    id: str
    at: str
    status: str
    progress: int
    note: str
    evidence: list[str]
    recorded_by: str
    version: int


class ResolutionView(BaseModel):
    id: str
    conference_id: str
    number: int
    title_sw: str
    title_en: str
    description_sw: str
    description_en: str
    lead_institution: str
    supporting_institutions: list[str]
    target_date: date | None
    status: str
    progress: int
    weight: int
    version: int
    updated_at: str
    latest_update: TimelineEntry | None = None


def _ctx(request: Request) -> handlers.Context:
    return request.app.state.context


def _error(exc: DomainError) -> ApiError:
    fields = [FieldProblem(field=exc.field, reason=exc.message)] if exc.field else None
    return ApiError(exc.status, exc.code, exc.message, fields=fields)


def _conference(doc: dict[str, Any]) -> ConferenceView:
    return ConferenceView(
        id=doc["_id"], **{k: doc[k] for k in ConferenceView.model_fields if k != "id"}
    )


def _resolution(doc: dict[str, Any]) -> ResolutionView:
    timeline = doc.get("timeline") or []
    return ResolutionView(
        id=doc["_id"],
        **{k: doc.get(k) for k in ResolutionView.model_fields if k not in ("id", "latest_update")},
        latest_update=TimelineEntry(**timeline[-1]) if timeline else None,
    )


@router.get("/statuses", tags=["resolutions"])
async def statuses() -> dict[str, int | None]:
    """The status catalogue with each status's default progress (null: keep current)."""
    return STATUS_CATALOGUE


@router.get("/conferences", response_model=list[ConferenceView], tags=["conferences"])
async def list_conferences(request: Request) -> list[ConferenceView]:
    return [_conference(d) for d in await _ctx(request).store.list_conferences()]


@router.post(
    "/conferences",
    response_model=ConferenceView,
    status_code=201,
    tags=["conferences"],
    responses=error_responses(401, 403, 409, 422),
)
async def create_conference(
    spec: ConferenceSpec,
    request: Request,
    _: Annotated[Principal, Depends(require_roles("coordinator"))],
) -> ConferenceView:
    try:
        return _conference(await handlers.create_conference(_ctx(request), spec))
    except DomainError as exc:
        raise _error(exc) from exc


@router.get(
    "/conferences/{conference_id}",
    response_model=ConferenceView,
    tags=["conferences"],
    responses=error_responses(404),
)
async def get_conference(conference_id: str, request: Request) -> ConferenceView:
    doc = await _ctx(request).store.get_conference(conference_id)
    if doc is None:
        raise ApiError(404, "conference_not_found", "No such conference.")
    return _conference(doc)


@router.get(
    "/conferences/{conference_id}/resolutions",
    response_model=list[ResolutionView],
    tags=["resolutions"],
    responses=error_responses(404),
)
async def list_resolutions(conference_id: str, request: Request) -> list[ResolutionView]:
    store = _ctx(request).store
    if await store.get_conference(conference_id) is None:
        raise ApiError(404, "conference_not_found", "No such conference.")
    return [_resolution(d) for d in await store.list_resolutions(conference_id)]


@router.post(
    "/conferences/{conference_id}/resolutions",
    response_model=ResolutionView,
    status_code=201,
    tags=["resolutions"],
    responses=error_responses(401, 403, 404, 409, 422),
)
async def create_resolution(
    conference_id: str,
    spec: ResolutionSpec,
    request: Request,
    response: Response,
    principal: Annotated[Principal, Depends(require_roles("coordinator"))],
) -> ResolutionView:
    try:
        doc = await handlers.create_resolution(
            _ctx(request), conference_id, spec, actor=principal.id
        )
    except DomainError as exc:
        raise _error(exc) from exc
    response.headers["ETag"] = f'"{doc["version"]}"'
    return _resolution(doc)


@router.get(
    "/resolutions/{resolution_id}",
    response_model=ResolutionView,
    tags=["resolutions"],
    responses=error_responses(404),
)
async def get_resolution(
    resolution_id: str, request: Request, response: Response
) -> ResolutionView:
    doc = await _ctx(request).store.get_resolution(resolution_id)
    if doc is None:
        raise ApiError(404, "resolution_not_found", "No such resolution.")
    response.headers["ETag"] = f'"{doc["version"]}"'
    return _resolution(doc)


@router.get(
    "/resolutions/{resolution_id}/timeline",
    response_model=list[TimelineEntry],
    tags=["resolutions"],
    responses=error_responses(404),
)
async def get_timeline(resolution_id: str, request: Request) -> list[TimelineEntry]:
    doc = await _ctx(request).store.get_resolution(resolution_id)
    if doc is None:
        raise ApiError(404, "resolution_not_found", "No such resolution.")
    return [TimelineEntry(**e) for e in doc.get("timeline") or []]


def _if_match(value: str | None) -> int | None:
    if value is None:
        return None
    raw = value.strip().removeprefix("W/").strip('"')
    if not raw.isdigit():
        raise ApiError(
            422,
            "validation_error",
            "If-Match must carry the version read (the ETag).",
            fields=[FieldProblem(field="If-Match", reason="not a version")],
        )
    return int(raw)


@router.post(
    "/resolutions/{resolution_id}/updates",
    response_model=ResolutionView,
    status_code=201,
    tags=["resolutions"],
    responses=error_responses(401, 403, 404, 409, 422, 428),
)
async def record_update(
    resolution_id: str,
    update: ProgressUpdate,
    request: Request,
    response: Response,
    principal: Annotated[Principal, Depends(require_roles("coordinator"))],
    if_match: Annotated[str | None, Header(alias="If-Match", max_length=40)] = None,
) -> ResolutionView:
    """Record progress: a dated, append-only timeline entry. Send the version you read."""
    expected = _if_match(if_match) if if_match is not None else update.version
    try:
        doc = await handlers.record_update(
            _ctx(request), resolution_id, update, expected_version=expected, actor=principal.id
        )
    except DomainError as exc:
        raise _error(exc) from exc
    response.headers["ETag"] = f'"{doc["version"]}"'
    return _resolution(doc)
