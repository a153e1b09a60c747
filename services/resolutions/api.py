"""Resolutions HTTP API: coordinators write, everyone reads (without personal data).

Writers send the version they read (``If-Match`` with the ETag, or a ``version``
field); a stale write is 409. Focal persons' contact data is shown to coordinators only.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import date
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from pydantic import BaseModel, EmailStr, Field, ValidationError
from starlette.datastructures import UploadFile

from services.resolutions import csvio, handlers, report
from services.resolutions.domain import (
    STATUS_CATALOGUE,
    ActionChange,
    ActionSpec,
    Conference,
    ConferenceChange,
    ConferenceSpec,
    EvidenceFile,
    FocalPersonIn,
    LongText,
    PendingUpdate,
    ProgressUpdate,
    ReportingRules,
    Resolution,
    ResolutionChange,
    ResolutionSpec,
)
from shared.auth import Principal, credential_from, require_roles
from shared.errors import ApiError, FieldProblem, error_responses
from shared.http import MiB, body_limit

router = APIRouter(prefix="/api/v1")

# The HTTP status of each domain error code this service answers with something other
# than what ``shared.errors.status_for`` gives (``*_not_found`` 404, else 409).
ERROR_STATUSES: dict[str, int] = {
    "actions_not_completed": 422,
    "invalid_csv": 422,
    "invalid_import": 422,
    "nothing_to_change": 422,
    "progress_from_actions": 422,
    "target_before_conference": 422,
    "too_many_actions": 422,
    "unknown_status": 422,
    "import_failed": 503,
    "file_too_large": 413,
    "file_type_refused": 415,
    "file_empty": 422,
    "too_many_files": 422,
    "link_not_found": 404,
    "evidence_unavailable": 503,
}


async def _conference_of(request: Request) -> str | None:
    """The conference a request is about, from its path (None if it names none)."""
    conference_id = request.path_params.get("conference_id")
    if conference_id is None and "resolution_id" in request.path_params:
        conference_id = await handlers.conference_of(
            _ctx(request), request.path_params["resolution_id"]
        )
    return conference_id


def _in_scope(principal: Principal, conference_id: str | None) -> bool:
    """Keys scoped to conference ids reach only those; unscoped keys and admins reach all."""
    if "admin" in principal.roles or not principal.scopes:
        return True
    return conference_id is not None and conference_id in principal.scopes


async def _scoped_coordinator(
    request: Request, principal: Annotated[Principal, Depends(require_roles("coordinator"))]
) -> Principal:
    """A coordinator whose key's scope covers the conference the request is about."""
    conference_id = await _conference_of(request)
    about_nothing = conference_id is None and not (
        {"conference_id", "resolution_id"} & set(request.path_params)
    )
    if about_nothing and request.method == "GET":
        return principal
    if not _in_scope(principal, conference_id):
        if conference_id is None and "resolution_id" in request.path_params:
            return principal  # an unknown resolution: the route answers 404
        raise ApiError(
            403, "out_of_scope", "This key does not cover this conference's resolutions."
        )
    return principal


Coordinator = Annotated[Principal, Depends(_scoped_coordinator)]
IfMatch = Annotated[str | None, Header(alias="If-Match", max_length=40)]
CSV_TYPES = {"text/csv", "text/plain", "application/csv", "application/vnd.ms-excel"}
# A CSV import's body: up to csvio.MAX_ROWS rows of long descriptions. Every other body
# is JSON, bounded by the platform's 64 KiB.
CSV_MAX_BYTES = 2 * MiB


class ConferenceView(BaseModel):
    id: str
    name_sw: str
    name_en: str
    starts_on: date
    ends_on: date
    venue: str
    reporting: ReportingRules


class EvidenceFileView(BaseModel):
    sha256: str
    name: str
    media_type: str
    size: int


class TimelineEntry(BaseModel):
    id: str
    at: str
    status: str
    progress: int
    note: str
    evidence: list[str]
    recorded_by: str
    version: int
    action_id: str | None = None
    files: list[EvidenceFileView] = []
    submitted_by: str | None = None
    approved_by: str | None = None


class PendingUpdateView(BaseModel):
    """A focal person's update waiting for a coordinator (coordinators only)."""

    id: str
    resolution_id: str
    resolution_number: int
    submitted_at: str
    submitted_by: str
    submitter_name: str
    status: str | None
    progress: int | None
    note: str
    evidence: list[str]
    files: list[EvidenceFileView]
    read_version: int
    state: str
    resolution_version: int


class Rejection(BaseModel):
    model_config = {"extra": "forbid"}

    reason: LongText = Field("", max_length=1000)


class ActionView(BaseModel):
    id: str
    title: str
    institution: str
    status: str
    progress: int
    weight: int
    updated_at: str


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
    target_date: date | None = None
    status: str
    progress: int
    weight: int
    version: int
    updated_at: str
    actions: list[ActionView] = []
    latest_update: TimelineEntry | None = None
    # Coordinators only: the focal persons' contact data is personal data.
    focal_persons: list[FocalPersonIn] | None = None


class VersionRecord(BaseModel):
    version: int
    at: str
    by: str
    changes: dict[str, Any]
    origin: str | None = None


class ImportReport(BaseModel):
    """A dry run's findings (the first problems, and how many more), or what an import
    wrote."""

    dry_run: bool
    valid: bool | None = None
    rows: int | None = None
    valid_rows: int | None = None
    problems: list[dict[str, Any]] = Field(
        [],
        description=f"At most {csvio.MAX_REPORTED_PROBLEMS}, in file order: row (the header"
        f" is row 1), field (a column, at most {csvio.MAX_ECHO} characters), reason.",
    )
    more_problems: int | None = Field(
        None, description="How many problems were found beyond those listed."
    )
    import_id: str | None = None
    imported: int | None = None
    resolution_ids: list[str] = []


def _ctx(request: Request) -> handlers.Context:
    return request.app.state.context


def _conference(conference: Conference) -> ConferenceView:
    return ConferenceView(**{k: getattr(conference, k) for k in ConferenceView.model_fields})


def _resolution(resolution: Resolution, *, coordinator: bool = False) -> ResolutionView:
    latest = resolution.latest_update
    skip = ("latest_update", "actions", "focal_persons")
    return ResolutionView(
        **{k: getattr(resolution, k) for k in ResolutionView.model_fields if k not in skip},
        actions=[ActionView(**asdict(a)) for a in resolution.actions],
        latest_update=TimelineEntry(**asdict(latest)) if latest else None,
        focal_persons=[FocalPersonIn(**fp.model_dump()) for fp in resolution.focal_persons]
        if coordinator
        else None,
    )


def _pending(resolution: Resolution, pending: PendingUpdate) -> PendingUpdateView:
    return PendingUpdateView(
        **{
            k: v
            for k, v in asdict(pending).items()
            if k in PendingUpdateView.model_fields and k != "files"
        },
        files=[EvidenceFileView(**f) for f in pending.files],
        resolution_id=resolution.id,
        resolution_number=resolution.number,
        resolution_version=resolution.version,
    )


def _with_etag(response: Response, resolution: Resolution) -> None:
    response.headers["ETag"] = f'"{resolution.version}"'


async def _is_coordinator(request: Request) -> bool:
    """Whether an optional credential is a coordinator's; a wrong credential is 401."""
    credential = credential_from(request)
    if credential is None:
        return False
    principal = await request.app.state.authenticator.authenticate(credential)
    if principal is None:
        raise ApiError(401, "unauthenticated", "A valid API key or token is required.")
    return principal.has_any(("coordinator",)) and _in_scope(
        principal, await _conference_of(request)
    )


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


def _expected(if_match: str | None, body_version: int | None) -> int | None:
    return _if_match(if_match) if if_match is not None else body_version


# --------------------------------------------------------------------------- catalogue


@router.get("/statuses", tags=["resolutions"])
async def statuses() -> dict[str, int | None]:
    """The status catalogue with each status's default progress (null: keep current)."""
    return STATUS_CATALOGUE


# --------------------------------------------------------------------------- conferences


@router.get("/conferences", response_model=list[ConferenceView], tags=["conferences"])
async def list_conferences(request: Request) -> list[ConferenceView]:
    """Every conference, newest first (public)."""
    return [_conference(c) for c in await handlers.list_conferences(_ctx(request))]


@router.post(
    "/conferences",
    response_model=ConferenceView,
    status_code=201,
    tags=["conferences"],
    responses=error_responses(401, 403, 409, 422),
)
async def create_conference(
    spec: ConferenceSpec, request: Request, _: Coordinator
) -> ConferenceView:
    """Create a conference (coordinators)."""
    return _conference(await handlers.create_conference(_ctx(request), spec))


@router.get(
    "/conferences/{conference_id}",
    response_model=ConferenceView,
    tags=["conferences"],
    responses=error_responses(404),
)
async def get_conference(conference_id: str, request: Request) -> ConferenceView:
    """One conference (public)."""
    return _conference(await handlers.get_conference(_ctx(request), conference_id))


@router.patch(
    "/conferences/{conference_id}",
    response_model=ConferenceView,
    tags=["conferences"],
    responses=error_responses(401, 403, 404, 422),
)
async def edit_conference(
    conference_id: str, change: ConferenceChange, request: Request, _: Coordinator
) -> ConferenceView:
    """Change a conference's names, dates or venue (coordinators)."""
    return _conference(await handlers.edit_conference(_ctx(request), conference_id, change))


@router.get(
    "/conferences/{conference_id}/resolutions",
    response_model=list[ResolutionView],
    response_model_exclude_none=True,
    tags=["resolutions"],
    responses=error_responses(404),
)
async def list_resolutions(conference_id: str, request: Request) -> list[ResolutionView]:
    """A conference's resolutions by number (public; focal persons for coordinators)."""
    resolutions = await handlers.list_resolutions(_ctx(request), conference_id)
    coordinator = await _is_coordinator(request)
    return [_resolution(r, coordinator=coordinator) for r in resolutions]


@router.post(
    "/conferences/{conference_id}/resolutions",
    response_model=ResolutionView,
    response_model_exclude_none=True,
    status_code=201,
    tags=["resolutions"],
    responses=error_responses(401, 403, 404, 409, 422),
)
async def create_resolution(
    conference_id: str,
    spec: ResolutionSpec,
    request: Request,
    response: Response,
    principal: Coordinator,
) -> ResolutionView:
    """Add a resolution (coordinators); publishes ResolutionCreated."""
    resolution = await handlers.create_resolution(
        _ctx(request), conference_id, spec, actor=principal.id
    )
    _with_etag(response, resolution)
    return _resolution(resolution, coordinator=True)


async def _csv_body(request: Request) -> bytes:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in CSV_TYPES:
        raise ApiError(
            415,
            "unsupported_media_type",
            "Send the file as text/csv (UTF-8).",
            fields=[FieldProblem(field="content-type", reason=f"got {media or 'none'!r}")],
        )
    return await request.body()


_IMPORT_DOC = (
    "Body: the CSV file as `text/csv` (UTF-8, comma-separated, header row first), at most "
    f"{CSV_MAX_BYTES // MiB} MiB (`x-max-body-bytes`; larger: 413) and {csvio.MAX_ROWS} rows. "
    "`?dry_run=true` validates only and answers 200 with the rows' problems (row 1 is the "
    f"header; the first {csvio.MAX_REPORTED_PROBLEMS}, and `more_problems`: how many "
    "more); otherwise a file with any problem is refused with 422 (the same problems as "
    "fields) and nothing is written, and a clean file is written all-or-nothing: 201."
)
# The body the import routes read themselves (FastAPI does not see it), and its bound.
_IMPORT_BODY: dict[str, Any] = {
    **body_limit(CSV_MAX_BYTES),
    "requestBody": {
        "required": True,
        "content": {
            media: {"schema": {"type": "string", "description": "The CSV file (UTF-8)"}}
            for media in ("text/csv", "text/plain")
        },
    },
}
# What an import answers: 200 for a dry run (nothing written), 201 when it wrote.
_IMPORT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": ImportReport, "description": "Dry run: the file's report; nothing written"},
    201: {"description": "Imported: what was written"},
    **error_responses(401, 403, 404, 409, 413, 415, 422),
}


@router.post(
    "/conferences/{conference_id}/resolutions/import",
    response_model=ImportReport,
    response_model_exclude_none=True,
    status_code=201,
    tags=["import and export"],
    responses=_IMPORT_RESPONSES,
    openapi_extra=_IMPORT_BODY,
    description=_IMPORT_DOC
    + f" Columns: {', '.join(csvio.RESOLUTION_REQUIRED)} (required); "
    + f"{', '.join(csvio.RESOLUTION_OPTIONAL)} (optional). Lists are separated by ';'.",
)
async def import_resolutions(
    conference_id: str,
    request: Request,
    response: Response,
    principal: Coordinator,
    dry_run: bool = False,
) -> ImportReport:
    """Import a conference's resolutions from CSV (coordinators)."""
    body = await _csv_body(request)
    result = await handlers.import_resolutions(
        _ctx(request), conference_id, body, dry_run=dry_run, actor=principal.id
    )
    response.status_code = 200 if dry_run else 201
    return ImportReport(**result)


@router.post(
    "/conferences/{conference_id}/updates/import",
    response_model=ImportReport,
    response_model_exclude_none=True,
    status_code=201,
    tags=["import and export"],
    responses=_IMPORT_RESPONSES,
    openapi_extra=_IMPORT_BODY,
    description=_IMPORT_DOC
    + f" Columns: {', '.join(csvio.PROGRESS_REQUIRED)} (required); "
    + f"{', '.join(csvio.PROGRESS_OPTIONAL)} (optional); one row per resolution. "
    + "`version` (the version read) makes the row refuse a resolution changed since.",
)
async def import_progress(
    conference_id: str,
    request: Request,
    response: Response,
    principal: Coordinator,
    dry_run: bool = False,
) -> ImportReport:
    """Record progress on many resolutions from CSV (coordinators)."""
    body = await _csv_body(request)
    result = await handlers.import_progress(
        _ctx(request), conference_id, body, dry_run=dry_run, actor=principal.id
    )
    response.status_code = 200 if dry_run else 201
    return ImportReport(**result)


def _wants(format_: str | None, request: Request, default: str) -> str:
    if format_:
        return format_
    accept = request.headers.get("accept", "")
    if "text/csv" in accept:
        return "csv"
    if "application/json" in accept and "text/html" not in accept:
        return "json"
    return default


@router.get(
    "/conferences/{conference_id}/resolutions/export",
    tags=["import and export"],
    responses={
        200: {"content": {"text/csv": {}, "application/json": {}}},
        **error_responses(404),
    },
)
async def export_resolutions(
    conference_id: str,
    request: Request,
    format: Annotated[Literal["csv", "json"] | None, Query()] = None,  # noqa: A002
) -> Response:
    """A conference's resolutions as CSV (the import's columns, plus state) or JSON."""
    if _wants(format, request, "json") == "csv":
        rows = await handlers.export_rows(_ctx(request), conference_id)
        return PlainTextResponse(
            csvio.render_csv(rows, csvio.EXPORT_COLUMNS),
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="{conference_id}-resolutions.csv"'
            },
        )
    resolutions = await handlers.list_resolutions(_ctx(request), conference_id)
    views = [_resolution(r).model_dump(mode="json", exclude_none=True) for r in resolutions]
    return JSONResponse(views)


@router.get(
    "/conferences/{conference_id}/report",
    tags=["report"],
    responses={
        200: {"content": {"text/html": {}, "text/csv": {}, "application/json": {}}},
        **error_responses(404),
    },
)
async def implementation_report(
    conference_id: str,
    request: Request,
    lang: Annotated[Literal["sw", "en", "both"], Query()] = "both",
    format: Annotated[Literal["html", "csv", "json"] | None, Query()] = None,  # noqa: A002
) -> Response:
    """The implementation report: HTML for the projector and print, or CSV, or JSON."""
    data = await handlers.implementation_report(_ctx(request), conference_id)
    wanted = _wants(format, request, "html")
    if wanted == "json":
        return JSONResponse(data)
    if wanted == "csv":
        return PlainTextResponse(
            report.render_report_csv(data),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{conference_id}-report.csv"'},
        )
    return HTMLResponse(report.render_html(data, lang))


# --------------------------------------------------------------------------- resolutions


@router.get(
    "/resolutions/{resolution_id}",
    response_model=ResolutionView,
    response_model_exclude_none=True,
    tags=["resolutions"],
    responses=error_responses(404),
)
async def get_resolution(
    resolution_id: str, request: Request, response: Response
) -> ResolutionView:
    """One resolution with its actions and latest update; the ETag is its version."""
    resolution = await handlers.get_resolution(_ctx(request), resolution_id)
    _with_etag(response, resolution)
    return _resolution(resolution, coordinator=await _is_coordinator(request))


@router.patch(
    "/resolutions/{resolution_id}",
    response_model=ResolutionView,
    response_model_exclude_none=True,
    tags=["resolutions"],
    responses=error_responses(401, 403, 404, 409, 422, 428),
)
async def edit_resolution(
    resolution_id: str,
    change: ResolutionChange,
    request: Request,
    response: Response,
    principal: Coordinator,
    if_match: IfMatch = None,
) -> ResolutionView:
    """Edit a resolution's details (coordinators). Send the version you read."""
    resolution = await handlers.edit_resolution(
        _ctx(request),
        resolution_id,
        change,
        expected_version=_expected(if_match, change.version),
        actor=principal.id,
    )
    _with_etag(response, resolution)
    return _resolution(resolution, coordinator=True)


@router.get(
    "/resolutions/{resolution_id}/timeline",
    response_model=list[TimelineEntry],
    tags=["resolutions"],
    responses=error_responses(404),
)
async def get_timeline(resolution_id: str, request: Request) -> list[TimelineEntry]:
    """The dated progress updates, oldest first (public; append-only)."""
    resolution = await handlers.get_resolution(_ctx(request), resolution_id)
    return [TimelineEntry(**asdict(e)) for e in resolution.timeline]


@router.get(
    "/resolutions/{resolution_id}/versions",
    response_model=list[VersionRecord],
    response_model_exclude_none=True,
    tags=["resolutions"],
    responses=error_responses(401, 403, 404),
)
async def get_versions(resolution_id: str, request: Request, _: Coordinator) -> list[VersionRecord]:
    """Every version with what changed (coordinators: changes may hold personal data)."""
    resolution = await handlers.get_resolution(_ctx(request), resolution_id)
    return [VersionRecord(**asdict(v)) for v in resolution.versions]


@router.post(
    "/resolutions/{resolution_id}/updates",
    response_model=ResolutionView,
    response_model_exclude_none=True,
    status_code=201,
    tags=["resolutions"],
    responses=error_responses(401, 403, 404, 409, 422, 428),
)
async def record_update(
    resolution_id: str,
    update: ProgressUpdate,
    request: Request,
    response: Response,
    principal: Coordinator,
    if_match: IfMatch = None,
) -> ResolutionView:
    """Record progress: a dated, append-only timeline entry. Send the version you read."""
    resolution = await handlers.record_update(
        _ctx(request),
        resolution_id,
        update,
        expected_version=_expected(if_match, update.version),
        actor=principal.id,
    )
    _with_etag(response, resolution)
    return _resolution(resolution, coordinator=True)


@router.post(
    "/resolutions/{resolution_id}/actions",
    response_model=ResolutionView,
    response_model_exclude_none=True,
    status_code=201,
    tags=["actions"],
    responses=error_responses(401, 403, 404, 409, 422, 428),
)
async def add_action(
    resolution_id: str,
    spec: ActionSpec,
    request: Request,
    response: Response,
    principal: Coordinator,
    if_match: IfMatch = None,
) -> ResolutionView:
    """Add an action (one level); the resolution's progress becomes the actions' roll-up."""
    resolution, action = await handlers.add_action(
        _ctx(request),
        resolution_id,
        spec,
        expected_version=_expected(if_match, spec.version),
        actor=principal.id,
    )
    _with_etag(response, resolution)
    response.headers["Location"] = f"/api/v1/resolutions/{resolution_id}/actions/{action.id}"
    return _resolution(resolution, coordinator=True)


@router.patch(
    "/resolutions/{resolution_id}/actions/{action_id}",
    response_model=ResolutionView,
    response_model_exclude_none=True,
    tags=["actions"],
    responses=error_responses(401, 403, 404, 409, 422, 428),
)
async def change_action(
    resolution_id: str,
    action_id: str,
    change: ActionChange,
    request: Request,
    response: Response,
    principal: Coordinator,
    if_match: IfMatch = None,
) -> ResolutionView:
    """Change an action's status, progress, weight or names; the roll-up is recomputed."""
    resolution = await handlers.change_action(
        _ctx(request),
        resolution_id,
        action_id,
        change,
        expected_version=_expected(if_match, change.version),
        actor=principal.id,
    )
    _with_etag(response, resolution)
    return _resolution(resolution, coordinator=True)


@router.delete(
    "/resolutions/{resolution_id}/actions/{action_id}",
    response_model=ResolutionView,
    response_model_exclude_none=True,
    tags=["actions"],
    responses=error_responses(401, 403, 404, 409, 428),
)
async def remove_action(
    resolution_id: str,
    action_id: str,
    request: Request,
    response: Response,
    principal: Coordinator,
    if_match: IfMatch = None,
) -> ResolutionView:
    """Remove an action; the roll-up is recomputed from the others."""
    resolution = await handlers.remove_action(
        _ctx(request),
        resolution_id,
        action_id,
        expected_version=_if_match(if_match),
        actor=principal.id,
    )
    _with_etag(response, resolution)
    return _resolution(resolution, coordinator=True)


# --------------------------------------------------------------------------- focal persons


@router.get(
    "/conferences/{conference_id}/pending-updates",
    response_model=list[PendingUpdateView],
    tags=["focal persons"],
    responses=error_responses(401, 403, 404),
)
async def list_pending_updates(
    conference_id: str, request: Request, _: Coordinator
) -> list[PendingUpdateView]:
    """Focal persons' updates waiting for approval, oldest first (coordinators)."""
    found = await handlers.pending_updates(_ctx(request), conference_id)
    return [_pending(r, p) for r, p in found]


@router.get(
    "/resolutions/{resolution_id}/pending-updates",
    response_model=list[PendingUpdateView],
    tags=["focal persons"],
    responses=error_responses(401, 403, 404),
)
async def resolution_pending_updates(
    resolution_id: str, request: Request, _: Coordinator
) -> list[PendingUpdateView]:
    """One resolution's focal-person updates waiting for approval (coordinators)."""
    resolution = await handlers.get_resolution(_ctx(request), resolution_id)
    return [_pending(resolution, p) for p in resolution.pending_updates]


@router.post(
    "/resolutions/{resolution_id}/pending-updates/{pending_id}/approve",
    response_model=ResolutionView,
    response_model_exclude_none=True,
    tags=["focal persons"],
    responses=error_responses(401, 403, 404, 409, 422, 428),
)
async def approve_pending_update(
    resolution_id: str,
    pending_id: str,
    request: Request,
    response: Response,
    principal: Coordinator,
    if_match: IfMatch = None,
) -> ResolutionView:
    """Approve a focal person's update: it becomes a timeline entry and counts in the
    report (``ResolutionUpdated``). Send the resolution's version you read (If-Match)."""
    resolution = await handlers.approve_pending(
        _ctx(request),
        resolution_id,
        pending_id,
        expected_version=_if_match(if_match),
        actor=principal.id,
    )
    _with_etag(response, resolution)
    return _resolution(resolution, coordinator=True)


@router.post(
    "/resolutions/{resolution_id}/pending-updates/{pending_id}/reject",
    response_model=ResolutionView,
    response_model_exclude_none=True,
    tags=["focal persons"],
    responses=error_responses(401, 403, 404, 409, 422),
)
async def reject_pending_update(
    resolution_id: str,
    pending_id: str,
    rejection: Rejection,
    request: Request,
    response: Response,
    principal: Coordinator,
) -> ResolutionView:
    """Reject a focal person's update: it never counts."""
    resolution = await handlers.reject_pending(
        _ctx(request), resolution_id, pending_id, reason=rejection.reason, actor=principal.id
    )
    _with_etag(response, resolution)
    return _resolution(resolution, coordinator=True)


class FocalPersonErasure(BaseModel):
    model_config = {"extra": "forbid"}

    email: EmailStr = Field(description="The focal person's email, as their resolutions hold it")


class FocalPersonErasureResult(BaseModel):
    resolutions: list[str] = Field(description="The resolutions their data was erased from")


@router.post(
    "/focal-persons/erase",
    response_model=FocalPersonErasureResult,
    tags=["focal persons"],
    responses=error_responses(401, 403, 422),
)
async def erase_focal_person(
    erasure: FocalPersonErasure,
    request: Request,
    principal: Annotated[Principal, Depends(require_roles("coordinator"))],
) -> FocalPersonErasureResult:
    """PDPA erasure of a focal person (coordinators; a scoped key within its conferences).

    They leave every resolution they follow; their name leaves their pending updates and
    their contact the versions' history (their updates stay, marked by their key only);
    the notification service drops its copies of their address. Idempotent: asking again
    erases nothing more and answers an empty list."""
    erased = await handlers.erase_focal_person(
        _ctx(request),
        str(erasure.email),
        reach=lambda conference_id: _in_scope(principal, conference_id),
        actor=principal.id,
    )
    return FocalPersonErasureResult(resolutions=erased)


async def _evidence_reader(
    request: Request,
    principal: Annotated[Principal, Depends(require_roles("coordinator", "auditor"))],
) -> Principal:
    """A coordinator or auditor whose key's scope covers the resolution's conference."""
    if not _in_scope(principal, await _conference_of(request)):
        raise ApiError(
            403, "out_of_scope", "This key does not cover this conference's resolutions."
        )
    return principal


def file_response(file: EvidenceFile) -> Response:
    """An evidence file as a download: its checked type, never sniffed or run inline."""
    name = file.name.replace('"', "")
    return Response(
        file.data,
        media_type=file.media_type,
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}",
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, no-store",
            "ETag": f'"{file.sha256}"',
        },
    )


EVIDENCE_FORM_MAX_BYTES = 5 * 10 * MiB + MiB


@router.post(
    "/resolutions/{resolution_id}/updates/with-files",
    response_model=ResolutionView,
    response_model_exclude_none=True,
    status_code=201,
    tags=["resolutions"],
    responses=error_responses(401, 403, 404, 409, 413, 415, 422, 428),
    openapi_extra={
        **body_limit(EVIDENCE_FORM_MAX_BYTES),
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "status": {"type": "string"},
                            "progress": {"type": "integer", "minimum": 0, "maximum": 100},
                            "note": {"type": "string"},
                            "evidence": {"type": "array", "items": {"type": "string"}},
                            "version": {"type": "integer"},
                            "files": {
                                "type": "array",
                                "items": {"type": "string", "format": "binary"},
                            },
                        },
                    }
                }
            },
        },
    },
)
async def record_update_with_files(
    resolution_id: str,
    request: Request,
    response: Response,
    principal: Coordinator,
    if_match: IfMatch = None,
) -> ResolutionView:
    """Record progress with evidence files (`multipart/form-data`: status, progress,
    note, evidence links, version, files). Files are checked by content (PDF, images,
    office documents; 10 MiB each, five at most): a refused one is 415/413 naming it,
    and nothing is written."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "multipart/form-data":
        raise ApiError(
            415,
            "unsupported_media_type",
            "Send the update as multipart/form-data.",
            fields=[FieldProblem(field="content-type", reason=f"got {media or 'none'!r}")],
        )
    form = await request.form(max_files=6, max_fields=30)
    uploads = [
        (item.filename or "evidence", await item.read())
        for item in form.getlist("files")
        if isinstance(item, UploadFile) and (item.filename or item.size)
    ]
    raw: dict[str, Any] = {
        k: str(form.get(k)) for k in ("status", "progress", "note") if form.get(k) not in (None, "")
    }
    raw["evidence"] = [str(u) for u in form.getlist("evidence") if str(u).strip()]
    if uploads and not any(k in raw for k in ("status", "progress", "note")):
        raw["note"] = "Evidence added"
    try:
        update = ProgressUpdate.model_validate(raw)
    except ValidationError as exc:
        raise ApiError(
            422,
            "validation_error",
            "The update is not valid.",
            fields=[
                FieldProblem(field=str(e["loc"][0]) if e["loc"] else "body", reason=e["msg"])
                for e in exc.errors()
            ],
        ) from exc
    version = str(form.get("version") or "")
    resolution = await handlers.record_update_with_files(
        _ctx(request),
        resolution_id,
        update,
        uploads,
        expected_version=_expected(if_match, int(version) if version.isdigit() else None),
        actor=principal.id,
    )
    _with_etag(response, resolution)
    return _resolution(resolution, coordinator=True)


@router.get(
    "/resolutions/{resolution_id}/evidence/{sha256}",
    tags=["focal persons"],
    responses={
        200: {"content": {"application/octet-stream": {}}},
        **error_responses(401, 403, 404),
    },
)
async def get_evidence(
    resolution_id: str,
    sha256: Annotated[str, Path(pattern="^[0-9a-f]{64}$")],
    request: Request,
    _: Annotated[Principal, Depends(_evidence_reader)],
) -> Response:
    """An evidence file of the resolution's timeline (coordinators and auditors; focal
    persons through their report link). Anonymous readers are refused (401)."""
    return file_response(await handlers.evidence_for_reader(_ctx(request), resolution_id, sha256))


@router.get(
    "/reports/conferences",
    tags=["report"],
    responses={200: {"content": {"text/html": {}, "application/json": {}}}, **error_responses(404)},
)
async def conferences_report(
    request: Request,
    conference: Annotated[list[str] | None, Query(max_length=20)] = None,
    lang: Annotated[Literal["sw", "en", "both"], Query()] = "both",
    format: Annotated[Literal["html", "json"] | None, Query()] = None,  # noqa: A002
) -> Response:
    """Conferences side by side (``?conference=a&conference=b…``; all of them if none):
    each one's counts, overall progress, statuses and resolutions (public)."""
    data = await handlers.conferences_side_by_side(_ctx(request), conference or [])
    if _wants(format, request, "html") == "json":
        return JSONResponse(data)
    return HTMLResponse(report.render_across_html(data, lang))
