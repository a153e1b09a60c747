"""Registration HTTP API (``/api/v1``): routes translate requests into use cases."""

from __future__ import annotations

import base64
import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import date, datetime
from typing import Annotated, Any, Literal, get_args

from fastapi import APIRouter, Body, Depends, Header, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.registration import certificate_pdf, charts, handlers
from services.registration.domain import (
    CPD_CSV_COLUMNS,
    FIXED_FIELDS,
    INSTITUTION_CSV_REQUIRED,
    REGISTRATION_SORTS,
    AccessibilityNeed,
    Cadre,
    Cancellation,
    Category,
    Certificate,
    CertificateSettings,
    CertificateSettingsChange,
    CheckInRequest,
    Choice,
    ContactPersonSpec,
    DomainError,
    EvaluationForm,
    EvaluationFormSpec,
    Event,
    EventChange,
    EventSpec,
    Institution,
    InstitutionChange,
    InstitutionKind,
    InstitutionSpec,
    Language,
    Question,
    Registration,
    RegistrationChange,
    RegistrationRequest,
    RegistrationSort,
    RegistrationStatus,
    Rejection,
    Via,
    actor_of,
    cpd_row,
    csv_cell,
    csv_columns,
    csv_row,
    sort_key,
    verify_path,
    yes_no_text,
)
from services.registration.registrants_csv import MAX_ROWS, OPTIONAL, REQUIRED
from services.registration.settings import RegistrationSettings
from shared.auth import Principal, credential_from, require_roles
from shared.errors import ApiError, FieldProblem, api_error_of, error_responses
from shared.http import MiB, body_limit
from shared.ratelimit import Limit, client_address, enforce, rate_limited
from shared.text import single_line_text

router = APIRouter(prefix="/api/v1")

# The HTTP status of each domain error code this service answers with something other
# than what ``shared.errors.status_for`` gives (``*_not_found`` 404, else 409).
ERROR_STATUSES: dict[str, int] = {
    "invalid_ticket": 422,
    "idempotency_key_reused": 422,
    "unknown_category": 422,
    "invalid_answers": 422,
    "invalid_categories": 422,
    "import_invalid": 422,
    "not_an_event_day": 422,
    # institutions (issue 13 B)
    "invalid_import": 422,
    "sign_in_link_invalid": 404,
    "institution_session_invalid": 401,
}
# Certificates and evaluation (issue 16).
ERROR_STATUSES.update({"future_day": 422, "invalid_answers": 422, "unknown_template": 422})


def api_error(exc: DomainError) -> ApiError:
    """A domain error in the error shape; every answer at fault is a field of its own."""
    error = api_error_of(exc, ERROR_STATUSES)
    problems = (exc.details or {}).get("fields")
    if problems:
        error.fields = [FieldProblem(field=p["field"], reason=p["reason"]) for p in problems]
    return error


class CategoryView(Category):
    """A category as the event shows it: with the seats a newcomer of it could take."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seats_left: int = Field(description="Seats a new participant of this category could take")


class ChoiceView(Choice):
    places_left: int | None = Field(default=None, description="Places left (None: no limit)")


class QuestionView(Question):
    choices: list[ChoiceView] = []  # type: ignore[assignment]


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
    categories: list[CategoryView] = []
    questions: list[QuestionView] = []


class RegistrationCreated(BaseModel):
    id: str
    reference: str
    status: str
    manage_token: str
    waitlist_position: int | None = None


def _ctx(request: Request) -> handlers.Context:
    return request.app.state.context


def _event_view(ctx: handlers.Context, event: Event) -> EventView:
    return EventView(
        id=event.id,
        code=event.code,
        title_sw=event.title_sw,
        title_en=event.title_en,
        description_sw=event.description_sw,
        description_en=event.description_en,
        theme=event.theme,
        venue=event.venue,
        city=event.city,
        starts_at=event.starts_at,
        ends_at=event.ends_at,
        capacity=event.capacity,
        seats_left=event.seats_left,
        registration_open=event.registration_open(ctx.clock()),
        requires_approval=event.requires_approval,
        admitted_cadres=event.admitted_cadres,
        state=event.state,
        categories=[
            CategoryView(**c.model_dump(), seats_left=event.category_seats_left(c.code))
            for c in event.categories
        ],
        questions=[_question_view(event, q) for q in event.questions],
    )


def _question_view(event: Event, question: Question) -> QuestionView:
    data = question.model_dump()
    data["choices"] = [
        ChoiceView(**c.model_dump(), places_left=event.choice_places_left(question.id, c.code))
        for c in question.choices
    ]
    return QuestionView.model_validate(data)


def _limits(request: Request) -> RegistrationSettings:
    return request.app.state.runtime.settings


@rate_limited
async def limit_registrations_by_address(request: Request) -> None:
    """Registrations per client address and minute (429 with Retry-After beyond)."""
    per_min = _limits(request).rate_register_per_address_per_min
    await enforce(request, "register-address", client_address(request), Limit(per_min, 60))


async def limit_registrations_by_email(request: Request, email: str) -> None:
    """Registration attempts per email, per client address and hour: one client cannot
    flood one mailbox with resent confirmations.

    Counted only for attempts that can succeed (the use case calls it once the event is
    known to be open), and keyed on the client address too: nobody can lock a named
    person out of registering by sending attempts with their email from elsewhere.
    """
    per_hour = _limits(request).rate_register_per_email_per_hour
    subject = f"{email}|{client_address(request)}"
    await enforce(request, "register-email", subject, Limit(per_hour, 3600))


@rate_limited
async def limit_self_service(request: Request) -> None:
    """Self-service reads and writes per client address: references cannot be swept."""
    per_min = _limits(request).rate_self_service_per_address_per_min
    await enforce(request, "self-service", client_address(request), Limit(per_min, 60))


@rate_limited
async def limit_checkins(request: Request) -> None:
    """Ticket checks per client (a registrar's scanner), against ticket guessing."""
    per_min = _limits(request).rate_checkin_per_client_per_min
    await enforce(request, "checkin", client_address(request), Limit(per_min, 60))


# Who may see the events that are not published (drafts being prepared, closed and
# cancelled ones): the staff who work on them.
_EVENT_STAFF = ("organiser", "registrar", "auditor")


async def _staff_or_none(request: Request) -> bool:
    """True if the caller is staff of events; a missing or unknown credential is the
    public (these reads are public), never an error."""
    credential = credential_from(request)
    if not credential:
        return False
    principal = await request.app.state.authenticator.authenticate(credential)
    if principal is None:
        return False
    request.state.principal = principal
    return principal.has_any(_EVENT_STAFF)


@router.get(
    "/events",
    response_model=list[EventView],
    tags=["events"],
    responses=error_responses(401, 403, 422),
)
async def list_events(
    request: Request,
    state: Annotated[
        Literal["published", "draft", "closed", "cancelled", "all"],
        Query(
            description="Published events for everyone; the other states (and `all`) "
            "for organisers, registrars and auditors"
        ),
    ] = "published",
) -> list[EventView]:
    """Events, soonest first: the published ones, or (staff) those in another state."""
    ctx = _ctx(request)
    if state != "published":
        await require_roles(*_EVENT_STAFF)(request)
    events = await handlers.list_events(ctx, None if state == "all" else state)
    return [_event_view(ctx, e) for e in events]


@router.get(
    "/events/{event_id}",
    response_model=EventView,
    tags=["events"],
    responses=error_responses(404),
)
async def get_event(event_id: str, request: Request) -> EventView:
    """One event with the seats left and whether registration is open now. A draft is
    found only by the staff (organisers, registrars, auditors); 404 for anyone else."""
    ctx = _ctx(request)
    if await _staff_or_none(request):
        return _event_view(ctx, await handlers.get_event(ctx, event_id))
    return _event_view(ctx, await handlers.get_public_event(ctx, event_id))


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
    ctx = _ctx(request)
    return _event_view(ctx, await handlers.create_event(ctx, spec))


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
    _limited: Annotated[None, Depends(limit_registrations_by_address)],
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
    try:
        outcome = await handlers.register_idempotently(
            _ctx(request),
            event_id,
            body,
            idempotency_key,
            admit=lambda: limit_registrations_by_email(request, body.email),
        )
    except DomainError as exc:
        if exc.code != "idempotency_key_reused":
            raise
        error = api_error_of(exc, ERROR_STATUSES)
        error.fields = [FieldProblem(field="Idempotency-Key", reason="used with another body")]
        raise error from None
    headers = {"Idempotent-Replayed": "true"} if outcome.replayed else None
    if outcome.error is not None:
        error = api_error(outcome.error)
        return JSONResponse(error.body(), status_code=error.status, headers=headers)
    assert outcome.registered is not None
    result = outcome.registered
    created = RegistrationCreated(
        id=result.id,
        reference=result.reference,
        status=result.status,
        manage_token=result.manage_token,
        waitlist_position=result.waitlist_position,
    )
    return JSONResponse(created.model_dump(), status_code=201, headers=headers)


# -- registrations: shared views -------------------------------------------------------------

Reference = Annotated[str, Path(min_length=5, max_length=32, pattern=r"^[A-Za-z0-9-]+$")]
ManageTokenHeader = Annotated[
    str | None,
    Header(
        alias="X-Manage-Token",
        max_length=128,
        description="The manage token returned once at registration.",
    ),
]
ManageTokenQuery = Annotated[
    str | None,
    Query(alias="token", max_length=128, description="The manage token (e.g. from a link)."),
]
Organiser = Annotated[Principal, Depends(require_roles("organiser"))]
Registrar = Annotated[Principal, Depends(require_roles("registrar"))]


class RegistrationView(BaseModel):
    """A registration as its participant sees it."""

    reference: str
    status: RegistrationStatus
    event_id: str
    full_name: str
    email: str
    phone: str
    institution: str
    position: str
    cadre: Cadre
    category: str
    answers: dict[str, Any] = {}
    via: Via = "self"
    institution_code: str | None = None
    region: str | None = None
    accessibility_needs: list[AccessibilityNeed] = []
    accessibility_other: str | None = None
    dietary_needs: str | None = None
    language: Language
    waitlist_position: int | None = None
    checkins: dict[str, str] = {}
    ticket: str | None = None
    created_at: str
    updated_at: str
    # Payments (issue 14): while pending_payment, the fee due and until when; the bill
    # (control_number, amount_tzs, paid_total_tzs, outstanding_tzs, expires_at, status).
    amount_due_tzs: int | None = None
    payment_due_by: str | None = None
    payment: dict[str, Any] = {}


class OrganiserRegistrationView(RegistrationView):
    """A registration as organisers see it: with its id, consent and decisions."""

    id: str
    consent: dict[str, Any]
    rejection_reason: str | None = None
    erased_at: str | None = None


class RegistrationPage(BaseModel):
    items: list[OrganiserRegistrationView]
    next_cursor: str | None = None


class Statistics(BaseModel):
    event_id: str
    capacity: int
    seats_taken: int
    by_status: dict[str, int]
    by_cadre: dict[str, int]
    by_category: dict[str, int] = {}
    by_via: dict[str, int] = {}
    by_institution: dict[str, int]
    by_region: dict[str, int]
    categories: dict[str, dict[str, int | None]] = Field(
        default_factory=dict, description="Per category: confirmed, quota, seats_left"
    )
    answers: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Per question: answered; per choice (yes/no too) how many picked it, "
        "places_left where limited; numbers' min, max, mean",
    )


class CheckInResult(BaseModel):
    reference: str
    full_name: str
    institution: str
    day: str
    checked_in_at: str


class ReconcileResult(BaseModel):
    seats_taken_before: int = Field(description="The counter before the repair")
    recounted: int = Field(description="Confirmed registrations found")
    seats_taken: int = Field(description="The counter now, after promotions")
    promoted: int = Field(description="Waitlisted participants promoted into freed seats")


def _view_fields(ctx: handlers.Context, registration: Registration) -> dict[str, Any]:
    fields = {
        name: getattr(registration, name)
        for name in OrganiserRegistrationView.model_fields
        if name != "ticket"
    }
    return {**fields, "ticket": registration.ticket(ctx.signer)}


def _own_view(ctx: handlers.Context, registration: Registration) -> RegistrationView:
    return RegistrationView.model_validate(_view_fields(ctx, registration))


def _organiser_view(ctx: handlers.Context, registration: Registration) -> OrganiserRegistrationView:
    return OrganiserRegistrationView.model_validate(_view_fields(ctx, registration))


# -- events: organisers ------------------------------------------------------------------------


@router.patch(
    "/events/{event_id}",
    response_model=EventView,
    tags=["events"],
    responses=error_responses(401, 403, 404, 409, 413, 415, 422),
)
async def update_event(
    event_id: str, change: EventChange, request: Request, _: Organiser
) -> EventView:
    """Change an event (organisers): details, capacity, window, state. Announced on the stream."""
    ctx = _ctx(request)
    return _event_view(ctx, await handlers.update_event(ctx, event_id, change))


@router.post(
    "/events/{event_id}/reconcile",
    response_model=ReconcileResult,
    tags=["events"],
    responses=error_responses(401, 403, 404),
)
async def reconcile(event_id: str, request: Request, _: Organiser) -> ReconcileResult:
    """Recount confirmed registrations, repair the seat counter, promote into freed seats."""
    return ReconcileResult(**await handlers.reconcile_seats(_ctx(request), event_id))


class Filters(BaseModel):
    status: RegistrationStatus | None = None
    cadre: Cadre | None = None
    category: str | None = None
    via: Via | None = None
    institution: str | None = None
    region: str | None = None
    q: str | None = None


def _filters(
    status: RegistrationStatus | None = None,
    cadre: Cadre | None = None,
    category: Annotated[str | None, Query(max_length=40, pattern=r"^[a-z][a-z0-9_]{1,39}$")] = None,
    via: Via | None = None,
    institution: Annotated[str | None, Query(max_length=200)] = None,
    region: Annotated[str | None, Query(max_length=60)] = None,
    q: Annotated[
        str | None, Query(max_length=100, description="Free text: name, email, reference…")
    ] = None,
) -> dict[str, Any]:
    return Filters(
        status=status,
        cadre=cadre,
        category=category,
        via=via,
        institution=institution,
        region=region,
        q=q,
    ).model_dump(exclude_none=True)


# A cursor is the base64url of the JSON keyset of the last registration of a page
# (``domain.sort_key``): ``[created_us, id]`` for the default ``created`` sort (the format
# cursors always had, so that those stay valid), ``[sort, *key]`` for the others:
# ``["-created", created_us, id]``, ``["name", name_key, created_us, id]``,
# ``["status", status, created_us, id]``.
_MAX_CREATED_US = 2**63 - 1  # a BSON int64: anything larger cannot even be queried
_MAX_ID_LENGTH = 64
_MAX_NAME_KEY_LENGTH = 600  # a 120-character name, case-folded and decomposed
_STATUSES = frozenset(get_args(RegistrationStatus))


def encode_cursor(registration: Registration, sort: RegistrationSort = "created") -> str:
    key = list(sort_key(registration, sort))
    value = key if sort == "created" else [sort, *key]
    raw = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _bad_cursor(reason: str = "not a cursor from this API") -> ApiError:
    return ApiError(
        422,
        "validation_error",
        "Some fields are missing or invalid.",
        fields=[FieldProblem(field="cursor", reason=reason)],
    )


def _created_and_id(created_us: Any, last_id: Any) -> bool:
    return (
        type(created_us) is int  # not a bool, not a float
        and 0 <= created_us <= _MAX_CREATED_US
        and isinstance(last_id, str)
        and 0 < len(last_id) <= _MAX_ID_LENGTH
    )


def decode_cursor(cursor: str, sort: RegistrationSort = "created") -> tuple[Any, ...]:
    """The keyset a cursor of this API names, for the list in the order ``sort``; anything
    else (a cursor of another sort too) is 422 ``cursor``."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = json.loads(raw)
    except (ValueError, TypeError, RecursionError):  # not base64, not UTF-8, not JSON
        raise _bad_cursor() from None
    if not isinstance(value, list) or not value:
        raise _bad_cursor()
    issued_for = value[0] if isinstance(value[0], str) and value[0] in REGISTRATION_SORTS else None
    if issued_for is None and len(value) == 2:
        issued_for = "created"
    if issued_for is None or (issued_for == "created" and len(value) != 2):
        raise _bad_cursor()
    if issued_for != sort:
        raise _bad_cursor(f"a cursor of the sort {issued_for}, not {sort}: start from page one")
    key = value if sort == "created" else value[1:]
    if sort in ("created", "-created"):
        if len(key) != 2 or not _created_and_id(*key):
            raise _bad_cursor()
        return key[0], key[1]
    if len(key) != 3 or not _created_and_id(key[1], key[2]):
        raise _bad_cursor()
    first = key[0]
    if sort == "name":
        if not isinstance(first, str) or len(first) > _MAX_NAME_KEY_LENGTH:
            raise _bad_cursor()
    elif not isinstance(first, str) or first not in _STATUSES:
        raise _bad_cursor()
    return first, key[1], key[2]


@router.get(
    "/events/{event_id}/registrations",
    response_model=RegistrationPage,
    tags=["organisers"],
    responses=error_responses(401, 403, 404, 422),
)
async def list_registrations(
    event_id: str,
    request: Request,
    _: Organiser,
    filters: Annotated[dict[str, Any], Depends(_filters)],
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    sort: Annotated[
        RegistrationSort,
        Query(
            description="The order of the whole list: ``created`` oldest first (the "
            "default), ``-created`` newest first, ``name`` A to Z by full name (case and "
            "accents ignored), ``status`` by status code, then oldest first"
        ),
    ] = "created",
    cursor: Annotated[
        str | None, Query(max_length=1200, description="``next_cursor`` of the same sort")
    ] = None,
) -> RegistrationPage:
    """Registrations of an event, filtered, in the order ``sort`` (oldest first by default);
    follow ``next_cursor`` (with the same ``sort`` and filters) for more."""
    ctx = _ctx(request)
    after = decode_cursor(cursor, sort) if cursor else None
    docs = await handlers.registrations_page(ctx, event_id, filters, after, limit + 1, sort)
    more = len(docs) > limit
    docs = docs[:limit]
    return RegistrationPage(
        items=[_organiser_view(ctx, d) for d in docs],
        next_cursor=encode_cursor(docs[-1], sort) if more and docs else None,
    )


@router.get(
    "/events/{event_id}/registrations.csv",
    tags=["organisers"],
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}, **error_responses(401, 403, 404, 422)},
)
async def export_registrations(
    event_id: str,
    request: Request,
    _: Organiser,
    filters: Annotated[dict[str, Any], Depends(_filters)],
) -> StreamingResponse:
    """CSV export (UTF-8 with BOM for spreadsheets), streamed row by row from a cursor:
    the fixed columns, then one ``answers.<question id>`` column per question of the event
    (multiple choices joined with ``;``, yes/no as ``yes``/``no``)."""
    registrations = await handlers.export_registrations(_ctx(request), event_id, filters)
    questions = (await handlers.event_for_organisers(_ctx(request), event_id)).questions

    async def rows() -> AsyncIterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(csv_columns(questions))
        yield "\ufeff" + _drain(buffer)  # the BOM lets spreadsheets read UTF-8 names
        count = 0
        async for registration in registrations:
            writer.writerow(csv_row(registration, questions))
            count += 1
            if count % 200 == 0:  # send in chunks, never the whole file at once
                yield _drain(buffer)
        yield _drain(buffer)

    return StreamingResponse(
        rows(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{event_id}-registrations.csv"'},
    )


def _drain(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text


@router.get(
    "/events/{event_id}/statistics",
    response_model=Statistics,
    tags=["organisers"],
    responses=error_responses(401, 403, 404),
)
async def statistics(event_id: str, request: Request, _: Organiser) -> Statistics:
    """Counts by status; active registrations by cadre, institution and region."""
    return Statistics(**await handlers.event_statistics(_ctx(request), event_id))


class HistoryEntry(BaseModel):
    """One status change: when, which step, from → to, who (``staff:<user>``,
    ``participant``, ``institution:<code>``, ``system`` or an API key's id), why."""

    model_config = ConfigDict(populate_by_name=True)

    at: str
    action: str = Field(
        description="created, waitlisted, promoted, approved, rejected, cancelled, "
        "withdrawn, replaced, paid, expired_unpaid, checked_in, walk_in (readers accept "
        "values added later)"
    )
    from_status: str | None = Field(None, alias="from")
    to_status: str | None = Field(None, alias="to")
    by: str | None = None
    reason: str | None = None
    day: str | None = None


class RegistrationHistory(BaseModel):
    registration_id: str
    reference: str
    event_id: str
    status: RegistrationStatus
    history: list[HistoryEntry]


@router.get(
    "/registrations/{registration_id}/history",
    response_model=RegistrationHistory,
    response_model_by_alias=True,
    tags=["organisers"],
    responses=error_responses(401, 403, 404),
)
async def registration_history(
    registration_id: Annotated[str, Path(max_length=64)],
    request: Request,
    _: Annotated[Principal, Depends(require_roles("organiser", "registrar"))],
) -> RegistrationHistory:
    """A registration's status history, oldest first (organisers and registrars)."""
    registration = await handlers.registration_history(_ctx(request), registration_id)
    return RegistrationHistory(
        registration_id=registration.id,
        reference=registration.reference,
        event_id=registration.event_id,
        status=registration.status,  # type: ignore[arg-type]
        history=[HistoryEntry.model_validate(e) for e in registration.history_view()],
    )


@router.post(
    "/registrations/{registration_id}/approve",
    response_model=OrganiserRegistrationView,
    tags=["organisers"],
    responses=error_responses(401, 403, 404, 409),
)
async def approve(
    registration_id: Annotated[str, Path(max_length=64)], request: Request, who: Organiser
) -> OrganiserRegistrationView:
    """Approve a nomination: confirmed if a seat is left, else waitlisted."""
    ctx = _ctx(request)
    doc = await handlers.approve_registration(ctx, registration_id, who.id)
    return _organiser_view(ctx, doc)


@router.post(
    "/registrations/{registration_id}/reject",
    response_model=OrganiserRegistrationView,
    tags=["organisers"],
    responses=error_responses(401, 403, 404, 409, 422),
)
async def reject(
    registration_id: Annotated[str, Path(max_length=64)],
    body: Rejection,
    request: Request,
    who: Organiser,
) -> OrganiserRegistrationView:
    """Reject a nomination with a reason."""
    ctx = _ctx(request)
    doc = await handlers.reject_registration(ctx, registration_id, who.id, body.reason)
    return _organiser_view(ctx, doc)


@router.post(
    "/events/{event_id}/registrations/{registration_id}/cancel",
    response_model=OrganiserRegistrationView,
    tags=["organisers"],
    responses=error_responses(401, 403, 404, 409, 422),
)
async def cancel_registration(
    event_id: str,
    registration_id: Annotated[str, Path(max_length=64)],
    body: Cancellation,
    request: Request,
    who: Organiser,
) -> OrganiserRegistrationView:
    """Cancel one participant's registration, with a reason they are told; a confirmed
    seat goes to the first on the waiting list."""
    ctx = _ctx(request)
    doc = await handlers.cancel_registration(
        ctx,
        registration_id,
        by="organiser",
        reason=body.reason,
        event_id=event_id,
        actor=actor_of(who.id),
    )
    return _organiser_view(ctx, doc)


# -- walk-ins and imports ----------------------------------------------------------------------


class WalkIn(RegistrationRequest):
    """A registration taken at the door, and the day it is checked in for."""

    day: date | None = Field(
        default=None, description="One of the event's days (venue time); today by default"
    )


class WalkInCreated(RegistrationCreated):
    day: str
    checked_in_at: str
    ticket: str | None = None


@router.post(
    "/events/{event_id}/walk-ins",
    response_model=WalkInCreated,
    status_code=201,
    tags=["check-in"],
    responses=error_responses(401, 403, 404, 409, 413, 415, 422),
)
async def register_walk_in(
    event_id: str,
    body: WalkIn,
    request: Request,
    principal: Annotated[Principal, Depends(require_roles("registrar", "organiser"))],
) -> WalkInCreated:
    """Register someone at the door (registrars, organisers): recorded as ``walk_in``,
    confirmed with a seat of their category (409 ``event_full`` when none is left) and
    checked in at once for ``day``. Their confirmation email carries the ticket."""
    ctx = _ctx(request)
    registration = RegistrationRequest.model_validate(body.model_dump(exclude={"day"}))
    try:
        result = await handlers.register_walk_in(
            ctx,
            event_id,
            registration,
            day=body.day.isoformat() if body.day else None,
            by=actor_of(principal.id, "staff"),
        )
    except DomainError as exc:
        raise api_error(exc) from None
    registered, written = result.registered, result.registration
    return WalkInCreated(
        id=registered.id,
        reference=registered.reference,
        status=registered.status,
        manage_token=registered.manage_token,
        day=result.day,
        checked_in_at=written.checkins[result.day],
        ticket=written.ticket(ctx.signer),
    )


IMPORT_MAX_BYTES = 2 * MiB


class RegistrantsImportReport(BaseModel):
    """A dry run's findings, or what an import registered."""

    dry_run: bool
    valid: bool
    rows: int
    valid_rows: int
    problems: list[dict[str, Any]] = Field(
        default_factory=list,
        description="In file order (the header is row 1): row, field (the column), reason; "
        "at most 100",
    )
    more_problems: int | None = None
    imported: int | None = None
    by_status: dict[str, int] | None = None
    references: list[str] | None = None
    failed: list[dict[str, Any]] | None = Field(
        default=None, description="Rows a concurrent writer took first (race only)"
    )


@router.post(
    "/events/{event_id}/registrations/import",
    response_model=RegistrantsImportReport,
    response_model_exclude_none=True,
    status_code=201,
    tags=["organisers"],
    responses={
        200: {"model": RegistrantsImportReport, "description": "Dry run: nothing written"},
        **error_responses(401, 403, 404, 409, 413, 415, 422),
    },
    openapi_extra={
        **body_limit(IMPORT_MAX_BYTES),
        "requestBody": {
            "required": True,
            "content": {
                media: {"schema": {"type": "string", "description": "The CSV file (UTF-8)"}}
                for media in ("text/csv", "text/plain")
            },
        },
    },
    description=(
        "Body: the CSV file as `text/csv` (UTF-8, header row first), at most "
        f"{IMPORT_MAX_BYTES // MiB} MiB and {MAX_ROWS} rows. Columns: "
        f"{', '.join(REQUIRED)} (required); {', '.join(OPTIONAL)} (optional; lists "
        "separated by ';'); `answers.<question id>` per question. `consent_confirmed=true` "
        "says the organiser holds each person's consent (required). `?dry_run=true` "
        "answers 200 with every row's problems and writes nothing; otherwise a file with "
        "any problem is refused with 422 (`import_invalid`, each problem a field `row N: "
        "column`) and nothing is written, and a clean file registers every row (201): each "
        "person is told as if they had registered."
    ),
)
async def import_registrants(
    event_id: str,
    request: Request,
    response: Response,
    principal: Organiser,
    dry_run: bool = False,
    consent_confirmed: bool = False,
) -> RegistrantsImportReport:
    """Import registrants from CSV (organisers), all or nothing."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in CSV_TYPES:
        raise ApiError(
            415,
            "unsupported_media_type",
            "Send the file as text/csv (UTF-8).",
            fields=[FieldProblem(field="content-type", reason=f"got {media or 'none'!r}")],
        )
    if not consent_confirmed:
        raise ApiError(
            422,
            "validation_error",
            "Confirm that each person in the file consented to the processing of their data.",
            fields=[FieldProblem(field="consent_confirmed", reason="must be true")],
        )
    body = await request.body()
    result = await handlers.import_registrants(
        _ctx(request), event_id, body, dry_run=dry_run, by=actor_of(principal.id, "staff")
    )
    response.status_code = 200 if dry_run else 201
    return RegistrantsImportReport(**result)


# -- self-service ------------------------------------------------------------------------------


async def _own(
    ctx: handlers.Context, reference: str, header: str | None, query: str | None
) -> Registration:
    return await handlers.find_own_registration(ctx, reference, header or query or "")


@router.get(
    "/registrations/{reference}",
    dependencies=[Depends(limit_self_service)],
    response_model=RegistrationView,
    tags=["self-service"],
    responses=error_responses(404),
)
async def get_own_registration(
    reference: Reference,
    request: Request,
    x_manage_token: ManageTokenHeader = None,
    token: ManageTokenQuery = None,
) -> RegistrationView:
    """A participant's own registration (reference + manage token), with the ticket."""
    ctx = _ctx(request)
    return _own_view(ctx, await _own(ctx, reference, x_manage_token, token))


_CHANGE_SCHEMA = RegistrationChange.model_json_schema()


@router.patch(
    "/registrations/{reference}",
    dependencies=[Depends(limit_self_service)],
    response_model=RegistrationView,
    tags=["self-service"],
    responses=error_responses(404, 409, 413, 415, 422),
    openapi_extra={"requestBody": {"content": {"application/json": {"schema": _CHANGE_SCHEMA}}}},
)
async def update_own_registration(
    reference: Reference,
    request: Request,
    body: Annotated[dict[str, Any], Body()],
    x_manage_token: ManageTokenHeader = None,
    token: ManageTokenQuery = None,
) -> RegistrationView:
    """Change phone, position, needs or language. Other fields are refused."""
    ctx = _ctx(request)
    doc = await _own(ctx, reference, x_manage_token, token)
    fixed = sorted(k for k in body if k in FIXED_FIELDS)
    if fixed:
        raise ApiError(
            422,
            "field_not_changeable",
            "These fields cannot be changed here; contact the organisers.",
            fields=[FieldProblem(field=k, reason="cannot be changed") for k in fixed],
        )
    try:
        change = RegistrationChange.model_validate(body)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
        ) from None
    written = await handlers.update_own_registration(ctx, doc.id, change)
    return _own_view(ctx, written)


@router.get(
    "/registrations/{reference}/data",
    dependencies=[Depends(limit_self_service)],
    tags=["personal data"],
    responses=error_responses(404),
)
async def download_own_data(
    reference: Reference,
    request: Request,
    x_manage_token: ManageTokenHeader = None,
    token: ManageTokenQuery = None,
) -> JSONResponse:
    """Everything held about the participant (PDPA 2022: the right of access)."""
    ctx = _ctx(request)
    doc = await _own(ctx, reference, x_manage_token, token)
    return JSONResponse(
        await handlers.export_own_data(ctx, doc.id),
        headers={"Content-Disposition": f'attachment; filename="mkutano-{reference}.json"'},
    )


class ErasureResult(BaseModel):
    reference: str
    status: str
    erased_at: str


@router.post(
    "/registrations/{reference}/erase",
    dependencies=[Depends(limit_self_service)],
    response_model=ErasureResult,
    tags=["personal data"],
    responses=error_responses(404),
)
async def erase_own_data(
    reference: Reference,
    request: Request,
    x_manage_token: ManageTokenHeader = None,
    token: ManageTokenQuery = None,
) -> ErasureResult:
    """Erase one's personal data (cancels the registration first if it is active).

    Every service removes its copy when it reads the ``PersonalDataErased`` event. The
    manage token stops working: keep the reference for your records.
    """
    ctx = _ctx(request)
    doc = await _own(ctx, reference, x_manage_token, token)
    written = await handlers.erase_registration(ctx, doc.id, reason="participant_request")
    assert written.erased_at is not None
    return ErasureResult(
        reference=written.reference, status=written.status, erased_at=written.erased_at
    )


class RetentionResult(BaseModel):
    erased: int
    retention_days: int


@router.post(
    "/admin/retention/run",
    response_model=RetentionResult,
    tags=["personal data"],
    responses=error_responses(401, 403),
)
async def run_retention(
    request: Request, _: Annotated[Principal, Depends(require_roles("admin"))]
) -> RetentionResult:
    """Apply the retention rule now (it also runs on its own every hour)."""
    days = _limits(request).retention_days
    erased = await handlers.apply_retention(_ctx(request), days)
    return RetentionResult(erased=erased, retention_days=days)


@router.post(
    "/registrations/{reference}/cancel",
    dependencies=[Depends(limit_self_service)],
    response_model=RegistrationView,
    tags=["self-service"],
    responses=error_responses(404, 409),
)
async def cancel_own_registration(
    reference: Reference,
    request: Request,
    x_manage_token: ManageTokenHeader = None,
    token: ManageTokenQuery = None,
) -> RegistrationView:
    """Cancel one's own registration; the seat goes to the first on the waiting list."""
    ctx = _ctx(request)
    doc = await _own(ctx, reference, x_manage_token, token)
    written = await handlers.cancel_registration(ctx, doc.id, by="participant")
    return _own_view(ctx, written)


# -- check-in ----------------------------------------------------------------------------------


@router.post(
    "/checkins",
    dependencies=[Depends(limit_checkins)],
    response_model=CheckInResult,
    status_code=201,
    tags=["check-in"],
    responses=error_responses(401, 403, 404, 409, 422),
)
async def check_in(body: CheckInRequest, request: Request, who: Registrar) -> CheckInResult:
    """Record attendance for today from a scanned ticket (registrars), or for an earlier
    ``day`` of the event (attendance recorded late); with ``event_id`` (the event at the
    door), a ticket of another event is refused (``wrong_event``)."""
    result = await handlers.check_in(
        _ctx(request), body.ticket, body.day, event_id=body.event_id, by=actor_of(who.id)
    )
    registration = result.registration
    return CheckInResult(
        reference=registration.reference,
        full_name=registration.full_name,
        institution=registration.institution,
        day=result.day,
        checked_in_at=result.checked_in_at,
    )


# == certificates of attendance, CPD, evaluation (issue 16) =================================


@rate_limited
async def limit_verification(request: Request) -> None:
    """Certificate checks per client address: serials cannot be probed in bulk."""
    per_min = _limits(request).rate_verify_per_address_per_min
    await enforce(request, "verify", client_address(request), Limit(per_min, 60))


Serial = Annotated[str, Path(min_length=8, max_length=40, pattern=r"^[A-Za-z0-9-]+$")]


class CertificateSettingsView(BaseModel):
    event_id: str
    cpd_hours: dict[str, float]
    template: str
    issued_at: str | None = None


def _settings_view(settings: CertificateSettings) -> CertificateSettingsView:
    return CertificateSettingsView(
        event_id=settings.event_id,
        cpd_hours=settings.cpd_hours,
        template=settings.template,
        issued_at=settings.issued_at,
    )


@router.get(
    "/events/{event_id}/certificate-settings",
    response_model=CertificateSettingsView,
    tags=["certificates"],
    responses=error_responses(401, 403, 404),
)
async def get_certificate_settings(
    event_id: str, request: Request, _: Organiser
) -> CertificateSettingsView:
    """The event's certificate settings: CPD hours per day, the template."""
    return _settings_view(await handlers.certificate_settings(_ctx(request), event_id))


@router.put(
    "/events/{event_id}/certificate-settings",
    response_model=CertificateSettingsView,
    tags=["certificates"],
    responses=error_responses(401, 403, 404, 409, 413, 415, 422),
)
async def put_certificate_settings(
    event_id: str, body: CertificateSettingsChange, request: Request, _: Organiser
) -> CertificateSettingsView:
    """Set the CPD hours of each event day (a day without hours counts 0) and the
    template (a folder of ``templates/certificates/``)."""
    if body.template not in certificate_pdf.template_names():
        raise DomainError(
            "unknown_template",
            f"No certificate template {body.template!r}.",
            field="template",
        )
    ctx = _ctx(request)
    return _settings_view(await handlers.change_certificate_settings(ctx, event_id, body))


class IssueResult(BaseModel):
    issued: int
    already_issued: int
    awaiting_evaluation: int
    not_attended: int


@router.post(
    "/events/{event_id}/certificates/issue",
    response_model=IssueResult,
    tags=["certificates"],
    responses=error_responses(401, 403, 404, 409),
)
async def issue_certificates(event_id: str, request: Request, who: Organiser) -> IssueResult:
    """Issue the certificates now (they are also issued when the event ends): every
    participant who checked in and has none yet gets one, emailed to them."""
    report = await handlers.issue_certificates(_ctx(request), event_id, by=who.id)
    return IssueResult(**report.__dict__)


class CertificateView(BaseModel):
    """A certificate as organisers see it."""

    serial: str
    registration_id: str
    event_id: str
    status: str
    full_name: str
    institution: str
    days: list[str]
    hours_by_day: dict[str, float]
    cpd_hours: float
    issued_at: str
    revoked_at: str | None = None
    revocation_reason: str | None = None
    replaces: str | None = None
    replaced_by: str | None = None
    verify_url: str


def _certificate_view(ctx: handlers.Context, c: Certificate) -> CertificateView:
    return CertificateView(
        serial=c.serial,
        registration_id=c.registration_id,
        event_id=c.event_id,
        status=c.status,
        full_name=c.full_name,
        institution=c.institution,
        days=c.days,
        hours_by_day=c.hours_by_day,
        cpd_hours=c.cpd_hours,
        issued_at=c.issued_at,
        revoked_at=c.revoked_at,
        revocation_reason=c.revocation_reason,
        replaces=c.replaces,
        replaced_by=c.replaced_by,
        verify_url=f"{ctx.public_url}{verify_path(c.serial)}",
    )


@router.get(
    "/events/{event_id}/certificates",
    response_model=list[CertificateView],
    tags=["certificates"],
    responses=error_responses(401, 403, 404),
)
async def list_certificates(event_id: str, request: Request, _: Organiser) -> list[CertificateView]:
    """Every certificate of the event, revoked ones included."""
    ctx = _ctx(request)
    return [_certificate_view(ctx, c) for c in await handlers.list_certificates(ctx, event_id)]


@router.get(
    "/events/{event_id}/certificates/cpd.csv",
    tags=["certificates"],
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}, **error_responses(401, 403, 404)},
)
async def cpd_export(event_id: str, request: Request, _: Organiser) -> StreamingResponse:
    """CPD export for the professional body: name, professional registration number
    (when the participant gave one) and CPD hours of each valid certificate."""
    certificates = await handlers.cpd_export(_ctx(request), event_id)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CPD_CSV_COLUMNS)
    for certificate in certificates:
        writer.writerow(cpd_row(certificate))
    return StreamingResponse(
        iter(["\ufeff" + buffer.getvalue()]),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{event_id}-cpd.csv"'},
    )


class Verification(BaseModel):
    """All a verification answers: valid or revoked, the name, the event, the days."""

    serial: str
    status: Literal["valid", "revoked"]
    full_name: str | None = Field(description="None once the holder's data was erased")
    event: dict[str, str | None]
    days: list[str]


@router.get(
    "/certificates/{serial}",
    dependencies=[Depends(limit_verification)],
    response_model=Verification,
    tags=["certificates"],
    responses=error_responses(404),
)
async def verify_certificate(serial: Serial, request: Request) -> Verification:
    """Public: whether a certificate is valid or revoked, whose, for which event and
    days — nothing more."""
    certificate = await handlers.verify_certificate(_ctx(request), serial)
    return Verification(**certificate.verification())


class Reissue(BaseModel):
    model_config = {"extra": "forbid"}

    full_name: single_line_text(min_length=2, max_length=120) | None = None
    institution: single_line_text(min_length=1, max_length=200) | None = None


@router.post(
    "/certificates/{serial}/reissue",
    response_model=CertificateView,
    status_code=201,
    tags=["certificates"],
    responses=error_responses(401, 403, 404, 409, 422),
)
async def reissue_certificate(
    serial: Serial, request: Request, who: Organiser, body: Reissue | None = None
) -> CertificateView:
    """A new certificate with a new serial (after a name correction: ``full_name``,
    ``institution``); the old serial then answers "revoked" (reason ``reissued``)."""
    body = body or Reissue()
    ctx = _ctx(request)
    new = await handlers.reissue_certificate(
        ctx,
        serial,
        by=who.id,
        full_name=body.full_name,
        institution=body.institution,
    )
    return _certificate_view(ctx, new)


@router.post(
    "/certificates/{serial}/revoke",
    response_model=CertificateView,
    tags=["certificates"],
    responses=error_responses(401, 403, 404, 409),
)
async def revoke_certificate(serial: Serial, request: Request, who: Organiser) -> CertificateView:
    """Revoke a certificate: its serial answers "revoked" from now on."""
    ctx = _ctx(request)
    return _certificate_view(ctx, await handlers.revoke_certificate(ctx, serial, by=who.id))


# -- evaluation ------------------------------------------------------------------------------


class EvaluationFormView(BaseModel):
    event_id: str
    questions: list[Question]
    required_for_certificate: bool
    invitations_sent_at: str | None = None
    answers: int


def _form_view(form: EvaluationForm) -> EvaluationFormView:
    return EvaluationFormView(
        event_id=form.event_id,
        questions=form.parsed(),
        required_for_certificate=form.required_for_certificate,
        invitations_sent_at=form.invitations_sent_at,
        answers=form.answers_count,
    )


@router.put(
    "/events/{event_id}/evaluation",
    response_model=EvaluationFormView,
    tags=["evaluation"],
    responses=error_responses(401, 403, 404, 409, 413, 415, 422),
)
async def attach_evaluation(
    event_id: str, body: EvaluationFormSpec, request: Request, _: Organiser
) -> EvaluationFormView:
    """Attach the evaluation form (or replace it until someone answers). Attendees are
    asked by email and SMS after the last day; ``required_for_certificate`` holds each
    certificate until its holder answers."""
    return _form_view(await handlers.attach_evaluation(_ctx(request), event_id, body))


@router.get(
    "/events/{event_id}/evaluation",
    response_model=EvaluationFormView,
    tags=["evaluation"],
    responses=error_responses(401, 403, 404),
)
async def get_evaluation(event_id: str, request: Request, _: Organiser) -> EvaluationFormView:
    return _form_view(await handlers.evaluation_form(_ctx(request), event_id))


class InvitationResult(BaseModel):
    invited: int


@router.post(
    "/events/{event_id}/evaluation/invitations",
    response_model=InvitationResult,
    tags=["evaluation"],
    responses=error_responses(401, 403, 404),
)
async def invite_to_evaluation(event_id: str, request: Request, _: Organiser) -> InvitationResult:
    """Ask the attendees now (each one once; it also happens after the last day)."""
    return InvitationResult(invited=await handlers.invite_to_evaluation(_ctx(request), event_id))


@router.get(
    "/events/{event_id}/evaluation/results",
    tags=["evaluation"],
    responses=error_responses(401, 403, 404),
)
async def evaluation_results_view(event_id: str, request: Request, _: Organiser) -> dict[str, Any]:
    """Response rate, each question's distribution (with the URL of its SVG chart) and
    the free-text answers. No one's identity."""
    summary = await handlers.evaluation_summary(_ctx(request), event_id)
    for question in summary["questions"]:
        if "distribution" in question:
            question["chart_url"] = (
                f"/api/v1/events/{event_id}/evaluation/charts/{question['id']}.svg"
            )
    return summary


@router.get(
    "/events/{event_id}/evaluation/charts/{question_id}.svg",
    tags=["evaluation"],
    response_class=Response,
    responses={200: {"content": {"image/svg+xml": {}}}, **error_responses(401, 403, 404)},
)
async def evaluation_chart(
    event_id: str,
    question_id: str,
    request: Request,
    _: Organiser,
    lang: Annotated[Literal["sw", "en"], Query()] = "en",
) -> Response:
    """One question's distribution as a bar chart (SVG, drawn on the server)."""
    summary = await handlers.evaluation_summary(_ctx(request), event_id)
    for question in summary["questions"]:
        if question["id"] == question_id and "distribution" in question:
            return Response(charts.bar_chart(question, lang), media_type="image/svg+xml")
    raise DomainError("question_not_found", "No chart for this question.")


@router.get(
    "/events/{event_id}/evaluation/responses.csv",
    tags=["evaluation"],
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}, **error_responses(401, 403, 404)},
)
async def evaluation_export(event_id: str, request: Request, _: Organiser) -> StreamingResponse:
    """Every answer, one row per response, one column per question: no name, no id, no
    time (nothing that says whose)."""
    form, rows = await handlers.evaluation_answers(_ctx(request), event_id)
    questions = form.parsed()
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([q.id for q in questions])
    for row in rows:
        writer.writerow(
            [
                csv_cell(
                    yes_no_text(row[q.id]) if q.type == "yes_no" and q.id in row else row.get(q.id)
                )
                for q in questions
            ]
        )
    return StreamingResponse(
        iter(["\ufeff" + buffer.getvalue()]),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{event_id}-evaluation.csv"'},
    )


# -- institutions (issue 13 B) -----------------------------------------------------------------
# The registry is public reading (names, kinds, regions: what a registration form's
# institution picker needs); its contact persons are personal data, shown to organisers
# (and admins) only. Organisers change it, one by one or from a CSV file with a dry run.

INSTITUTIONS_CSV_MAX_BYTES = 2 * 1024 * 1024
CSV_TYPES = ("text/csv", "text/plain", "application/csv")


class ContactPersonView(BaseModel):
    id: str
    full_name: str
    email: str
    phone: str | None = None
    language: Language


class InstitutionView(BaseModel):
    """An institution as anyone may read it (no contact persons)."""

    code: str
    name_sw: str
    name_en: str
    kind: InstitutionKind
    region: str | None = None
    created_at: str
    updated_at: str


class InstitutionDetailView(InstitutionView):
    """An institution as organisers see it: with its contact persons."""

    contacts: list[ContactPersonView] = []


class InstitutionImportLine(BaseModel):
    row: int = Field(description="The file's line (the header is line 1)")
    code: str
    action: Literal["create", "update", "unchanged"]
    changed_fields: list[str] = []


class InstitutionImportReport(BaseModel):
    dry_run: bool
    applied: bool = Field(description="Whether anything was written")
    valid: bool
    rows: list[InstitutionImportLine] = []
    problems: list[dict[str, Any]] = Field(
        [], description="Each problem: row (the header is row 1), field (a column), reason."
    )


def _institution_view(institution: Institution) -> InstitutionView:
    return InstitutionView(**{k: getattr(institution, k) for k in InstitutionView.model_fields})


def _institution_detail(institution: Institution) -> InstitutionDetailView:
    fields = {k: getattr(institution, k) for k in InstitutionView.model_fields}
    return InstitutionDetailView(
        **fields, contacts=[ContactPersonView(**c) for c in institution.contacts]
    )


InstitutionCodePath = Annotated[str, Path(min_length=2, max_length=32, pattern=r"^[A-Za-z0-9-]+$")]


@router.get("/institutions", response_model=list[InstitutionView], tags=["institutions"])
async def list_institutions(
    request: Request,
    kind: Annotated[InstitutionKind | None, Query()] = None,
    region: Annotated[str | None, Query(max_length=60)] = None,
) -> list[InstitutionView]:
    """The registry of institutions, by code (public: no contact persons)."""
    found = await handlers.list_institutions(_ctx(request), kind=kind, region=region)
    return [_institution_view(i) for i in found]


@router.get(
    "/institutions/{code}",
    response_model=InstitutionView,
    tags=["institutions"],
    responses=error_responses(404),
)
async def get_institution(code: InstitutionCodePath, request: Request) -> InstitutionView:
    """One institution (public: no contact persons)."""
    return _institution_view(await handlers.get_institution(_ctx(request), code))


@router.get(
    "/institutions/{code}/contacts",
    response_model=InstitutionDetailView,
    tags=["institutions"],
    responses=error_responses(401, 403, 404),
)
async def get_institution_contacts(
    code: InstitutionCodePath, request: Request, _: Organiser
) -> InstitutionDetailView:
    """One institution with its contact persons (organisers: personal data)."""
    return _institution_detail(await handlers.get_institution(_ctx(request), code))


@router.post(
    "/institutions",
    response_model=InstitutionDetailView,
    status_code=201,
    tags=["institutions"],
    responses=error_responses(401, 403, 409, 413, 415, 422),
)
async def create_institution(
    spec: InstitutionSpec, request: Request, _: Organiser
) -> InstitutionDetailView:
    """Add an institution (organisers); 409 ``institution_exists`` if its code is taken."""
    return _institution_detail(await handlers.create_institution(_ctx(request), spec))


@router.patch(
    "/institutions/{code}",
    response_model=InstitutionDetailView,
    tags=["institutions"],
    responses=error_responses(401, 403, 404, 409, 413, 415, 422),
)
async def update_institution(
    code: InstitutionCodePath, change: InstitutionChange, request: Request, _: Organiser
) -> InstitutionDetailView:
    """Change names, kind, region or the contact persons (``contacts`` replaces the
    list; a person kept, by email, keeps their id)."""
    return _institution_detail(await handlers.update_institution(_ctx(request), code, change))


@router.post(
    "/institutions/{code}/contacts",
    response_model=InstitutionDetailView,
    status_code=201,
    tags=["institutions"],
    responses=error_responses(401, 403, 404, 409, 413, 415, 422),
)
async def add_contact_person(
    code: InstitutionCodePath, contact: ContactPersonSpec, request: Request, _: Organiser
) -> InstitutionDetailView:
    """Add a contact person (or update the one with that email)."""
    return _institution_detail(await handlers.add_contact_person(_ctx(request), code, contact))


@router.delete(
    "/institutions/{code}/contacts/{contact_id}",
    status_code=204,
    tags=["personal data"],
    responses=error_responses(401, 403, 404),
)
async def erase_contact_person(
    code: InstitutionCodePath,
    contact_id: Annotated[str, Path(max_length=64)],
    request: Request,
    _: Organiser,
) -> Response:
    """Erase a contact person (PDPA): their details and sign-in records are deleted and
    their session, if any, stops."""
    await handlers.erase_contact_person(_ctx(request), code, contact_id)
    return Response(status_code=204)


@router.post(
    "/institutions/import",
    response_model=InstitutionImportReport,
    status_code=201,
    tags=["institutions"],
    responses={
        200: {"model": InstitutionImportReport, "description": "Dry run: nothing written"},
        **error_responses(401, 403, 413, 415, 422),
    },
    openapi_extra={
        **body_limit(INSTITUTIONS_CSV_MAX_BYTES),
        "requestBody": {
            "required": True,
            "content": {
                media: {"schema": {"type": "string", "description": "The CSV file (UTF-8)"}}
                for media in ("text/csv", "text/plain")
            },
        },
    },
    description="Load or update the registry from a CSV file (`text/csv`, UTF-8, header "
    f"first). Columns: {', '.join(INSTITUTION_CSV_REQUIRED)} (required); region, "
    "contact_name, contact_email, contact_phone, contact_language (optional: a row's "
    "contact person is added, or the one with that email updated). `?dry_run=true` "
    "answers 200 with what each row would do and every problem (row, field, reason); "
    "otherwise a file with any problem is refused with 422 naming each row and field "
    "and nothing is written, and a clean file is written: 201.",
)
async def import_institutions(
    request: Request, response: Response, _: Organiser, dry_run: bool = False
) -> InstitutionImportReport:
    """Load or update the registry from CSV (organisers)."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in CSV_TYPES:
        raise ApiError(
            415,
            "unsupported_media_type",
            "Send the file as text/csv (UTF-8).",
            fields=[FieldProblem(field="content-type", reason=f"got {media or 'none'!r}")],
        )
    try:
        text = (await request.body()).decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(
            422,
            "invalid_import",
            "The file is not UTF-8 text.",
            fields=[FieldProblem(field="body", reason="not UTF-8")],
        ) from None
    report = await handlers.import_institutions(_ctx(request), text, dry_run=dry_run)
    response.status_code = 200 if dry_run else 201
    return InstitutionImportReport(
        dry_run=report.dry_run,
        applied=report.applied,
        valid=not report.problems,
        rows=[InstitutionImportLine(**vars(line)) for line in report.lines],
        problems=[{"row": p.row, "field": p.field, "reason": p.reason} for p in report.problems],
    )


# -- the door: what a registrar's scanner needs (the staff console) ------------------------------


class TicketPublicKey(BaseModel):
    """The key that verifies ``MK2`` tickets on a registrar's device, offline."""

    algorithm: str = Field("Ed25519", description="Ed25519 (RFC 8032)")
    format: str = Field(
        "MK2",
        description='A ticket is "MK2" + base32(16-byte registration id + 64-byte signature '
        'of "MK2" + the id), unpadded.',
    )
    public_key: str = Field(description="The raw 32-byte public key, base64url, unpadded")
    jwk: dict[str, str] = Field(description="The same key as a JWK (OKP, Ed25519)")


@router.get("/tickets/public-key", response_model=TicketPublicKey, tags=["check-in"])
async def ticket_public_key(request: Request) -> TicketPublicKey:
    """The public key of the tickets: scanners verify a ticket with it alone."""
    raw = base64.urlsafe_b64encode(_ctx(request).signer.public_key()).decode().rstrip("=")
    return TicketPublicKey(
        public_key=raw, jwk={"kty": "OKP", "crv": "Ed25519", "x": raw, "use": "sig"}
    )


class DoorEntry(BaseModel):
    """A confirmed participant as the door sees them: enough to greet and check in."""

    id: str
    reference: str
    full_name: str
    institution: str
    category: str
    checkins: dict[str, str] = {}
    ticket: str | None = None


class DoorList(BaseModel):
    event_id: str
    items: list[DoorEntry]


@router.get(
    "/events/{event_id}/door-list",
    response_model=DoorList,
    tags=["check-in"],
    responses=error_responses(401, 403, 404, 422),
)
async def door_list(
    event_id: str,
    request: Request,
    _: Annotated[Principal, Depends(require_roles("registrar", "organiser"))],
    q: Annotated[str | None, Query(max_length=100, description="Name, reference or phone")] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 5000,
) -> DoorList:
    """The event's confirmed participants for the registrars' scanners (registrars and
    organisers): the list a phone keeps for the day, and the search by name, reference
    or phone. No email, phone or answers: only what the door shows."""
    ctx = _ctx(request)
    filters: dict[str, Any] = {"status": "confirmed"}
    if q:
        filters["q"] = q
    items: list[DoorEntry] = []
    async for registration in await handlers.export_registrations(ctx, event_id, filters):
        items.append(
            DoorEntry(
                id=registration.id,
                reference=registration.reference,
                full_name=registration.full_name,
                institution=registration.institution,
                category=str(getattr(registration, "category", None) or registration.cadre),
                checkins=dict(registration.checkins),
                ticket=registration.ticket(ctx.signer),
            )
        )
        if len(items) >= limit:
            break
    return DoorList(event_id=event_id, items=items)
