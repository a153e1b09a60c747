"""Notification HTTP API, for organisers: the delivery log and resends, reminder rules,
announcements."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.notification import handlers
from services.notification.domain import Notification
from shared.auth import require_roles
from shared.errors import ApiError, DomainError, FieldProblem, error_responses
from shared.text import plain_text, single_line_text

router = APIRouter(prefix="/api/v1", tags=["notifications"])

# The domain's error codes and their HTTP statuses (shared.errors.status_for would give
# the same; listed so that the map is complete and explicit).
ERROR_STATUSES: dict[str, int] = {
    "notification_not_found": 404,
    "announcement_not_found": 404,
    "recipient_erased": 409,
    "delivery_in_progress": 409,
    "sms_not_configured": 409,
    "concurrent_update": 409,
    "invalid_audience": 422,
}


class NotificationView(BaseModel):
    id: str
    channel: str
    template: str
    language: str
    status: str
    attempts: int
    last_error: str | None = None
    registration_id: str | None = None
    resolution_id: str | None = None
    cause_event_id: str
    cause_event_type: str
    created_at: str
    sent_at: str | None = None
    segments: int | None = None
    announcement_id: str | None = None
    resend_count: int = 0


def _view(n: Notification) -> NotificationView:
    return NotificationView(
        id=n.id,
        channel=n.channel,
        template=n.template,
        language=n.language,
        status=n.status,
        attempts=n.attempts,
        last_error=n.last_error,
        registration_id=n.registration_id,
        resolution_id=n.resolution_id,
        cause_event_id=n.cause_event_id,
        cause_event_type=n.cause_event_type,
        created_at=n.created_at,
        sent_at=n.sent_at,
        segments=n.segments,
        announcement_id=n.announcement_id,
        resend_count=n.resend_count,
    )


def _ctx(request: Request) -> handlers.Context:
    return request.app.state.context


@router.get(
    "/notifications",
    response_model=list[NotificationView],
    responses=error_responses(401, 403, 422),
)
async def list_notifications(
    request: Request,
    _: Annotated[Any, Depends(require_roles("organiser", "auditor"))],
    registration_id: Annotated[str | None, Query(max_length=64)] = None,
    channel: Literal["email", "sms"] | None = None,
    status: Literal["pending", "sending", "retry", "sent", "failed", "cancelled"] | None = None,
    event_id: Annotated[str | None, Query(max_length=64)] = None,
    announcement_id: Annotated[str | None, Query(max_length=64)] = None,
    template: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[NotificationView]:
    """The delivery log, newest first, with attempts and the last error."""
    filters = {
        "registration_id": registration_id,
        "channel": channel,
        "status": status,
        "event_id": event_id,
        "announcement_id": announcement_id,
        "template": template,
    }
    return [_view(n) for n in await handlers.list_notifications(_ctx(request), filters, limit)]


@router.post(
    "/notifications/{notification_id}/resend",
    response_model=NotificationView,
    status_code=202,
    responses=error_responses(401, 403, 404, 409),
)
async def resend_notification(
    notification_id: Annotated[str, Path(max_length=64)],
    request: Request,
    _: Annotated[Any, Depends(require_roles("organiser"))],
) -> NotificationView:
    """Send a notification again (a fresh attempt cycle on the same log entry)."""
    return _view(await handlers.resend(_ctx(request), notification_id))


# --------------------------------------------------------------------------- reminder rules

MAX_OFFSET_S = 365 * 86400


class ReminderRules(BaseModel):
    """Seconds before the event's start at which participants are reminded.

    ``null`` goes back to the service's defaults (7 days and 1 day); ``[]`` turns reminders
    off for this event.
    """

    model_config = ConfigDict(extra="forbid")

    offsets_s: list[Annotated[int, Field(ge=60, le=MAX_OFFSET_S)]] | None = Field(
        ..., max_length=10, examples=[[604800, 86400]]
    )

    @field_validator("offsets_s")
    @classmethod
    def _unique(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError("offsets must be unique")
        return sorted(value, reverse=True) if value is not None else None


class ReminderView(BaseModel):
    id: str
    offset_s: int
    due_at: str
    status: str
    notifications: int


class ReminderRulesView(BaseModel):
    event_id: str
    offsets_s: list[int]
    source: Literal["event", "default"]
    event_known: bool
    reminders: list[ReminderView]


EventId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]


@router.put(
    "/events/{event_id}/reminder-rules",
    response_model=ReminderRulesView,
    tags=["reminders"],
    responses=error_responses(401, 403, 422),
)
async def put_reminder_rules(
    event_id: EventId,
    body: ReminderRules,
    request: Request,
    _: Annotated[Any, Depends(require_roles("organiser"))],
) -> dict[str, Any]:
    """Set an event's reminder rules; its pending reminders are rescheduled at once."""
    return await handlers.set_reminder_rules(_ctx(request), event_id, body.offsets_s)


@router.get(
    "/events/{event_id}/reminder-rules",
    response_model=ReminderRulesView,
    tags=["reminders"],
    responses=error_responses(401, 403, 422),
)
async def get_reminder_rules(
    event_id: EventId,
    request: Request,
    _: Annotated[Any, Depends(require_roles("organiser", "auditor"))],
) -> dict[str, Any]:
    """An event's reminder rules and its scheduled reminders with their status."""
    return await handlers.reminder_rules_view(_ctx(request), event_id)


# --------------------------------------------------------------------------- announcements


Subject = single_line_text(min_length=1, max_length=200)
Body = plain_text(min_length=1, max_length=5000)


AudienceStatus = Literal["confirmed", "pending_approval", "pending_payment", "waitlisted"]
Code = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]


class AnnouncementIn(BaseModel):
    """A message to an event's participants: those in ``statuses`` (default confirmed),
    narrowed to one ``cadre``, to ``categories`` and to ``institution_codes`` where given."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    event_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    cadre: str | None = Field(None, min_length=1, max_length=64)
    statuses: list[AudienceStatus] = Field(
        default_factory=lambda: ["confirmed"], min_length=1, max_length=4
    )
    # The event's category codes and the nominating institutions' codes (empty: all).
    categories: list[Code] = Field(default_factory=list, max_length=100)
    institution_codes: list[Code] = Field(default_factory=list, max_length=500)
    # The subjects become email headers: one line. The bodies are plain text.
    subject_sw: Subject
    subject_en: Subject
    body_sw: Body
    body_en: Body
    channels: list[Literal["email", "sms"]] = Field(
        default_factory=lambda: ["email"], min_length=1, max_length=2
    )

    @field_validator("channels", "statuses", "categories", "institution_codes")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        return sorted(set(value))


class AudienceView(BaseModel):
    """How many people an announcement to this audience would reach now."""

    event_id: str
    statuses: list[str]
    cadre: str | None = None
    categories: list[str]
    institution_codes: list[str]
    count: int


class AnnouncementView(BaseModel):
    id: str
    event_id: str
    cadre: str | None = None
    statuses: list[str] = ["confirmed"]
    categories: list[str] = []
    institution_codes: list[str] = []
    channels: list[str]
    status: Literal["sending", "done"]
    fan_out: Literal["fanning_out", "done"]
    total: int
    queued: int
    sent: int
    failed: int
    pending: int
    skipped: int
    created_at: str
    completed_at: str | None = None


@router.post(
    "/announcements",
    response_model=AnnouncementView,
    status_code=202,
    tags=["announcements"],
    responses=error_responses(401, 403, 409, 422),
)
async def post_announcement(
    body: AnnouncementIn,
    request: Request,
    _: Annotated[Any, Depends(require_roles("organiser"))],
) -> dict[str, Any]:
    """Announce to an event's confirmed participants; fanned out at a bounded rate."""
    try:
        return await handlers.create_announcement(_ctx(request), body.model_dump())
    except DomainError as exc:
        if exc.code != "sms_not_configured":
            raise
        raise ApiError(
            409,
            exc.code,
            exc.message,
            fields=[FieldProblem(field="channels", reason="sms is not available")],
        ) from exc


def _audience_query(
    event_id: Annotated[str, Query(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")],
    statuses: Annotated[list[AudienceStatus] | None, Query(max_length=4)] = None,
    cadre: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    categories: Annotated[list[Code] | None, Query(max_length=100)] = None,
    institution_codes: Annotated[list[Code] | None, Query(max_length=500)] = None,
) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "statuses": sorted(set(statuses or ["confirmed"])),
        "cadre": cadre,
        "categories": sorted(set(categories or [])),
        "institution_codes": sorted(set(institution_codes or [])),
    }


@router.get(
    "/announcements/audience",
    response_model=AudienceView,
    tags=["announcements"],
    responses=error_responses(401, 403, 422),
)
async def get_announcement_audience(
    spec: Annotated[dict[str, Any], Depends(_audience_query)],
    request: Request,
    _: Annotated[Any, Depends(require_roles("organiser"))],
) -> dict[str, Any]:
    """The size of an audience before sending (the same filters as
    ``POST /announcements``; repeat a list parameter for several values)."""
    return await handlers.announcement_audience(_ctx(request), spec)


@router.get(
    "/announcements/{announcement_id}",
    response_model=AnnouncementView,
    tags=["announcements"],
    responses=error_responses(401, 403, 404),
)
async def get_announcement(
    announcement_id: Annotated[str, Path(max_length=64)],
    request: Request,
    _: Annotated[Any, Depends(require_roles("organiser", "auditor"))],
) -> dict[str, Any]:
    """An announcement's progress: total, queued, sent, failed, pending."""
    return await handlers.announcement_progress(_ctx(request), announcement_id)
