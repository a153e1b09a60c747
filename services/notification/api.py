"""Notification HTTP API: the delivery log and resends, for organisers."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from services.notification import handlers
from shared.auth import require_roles
from shared.errors import ApiError, error_responses

router = APIRouter(prefix="/api/v1", tags=["notifications"])


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


def _view(doc: dict[str, Any]) -> NotificationView:
    return NotificationView(
        id=doc["_id"],
        channel=doc["channel"],
        template=doc["template"],
        language=doc["language"],
        status=doc["status"],
        attempts=doc.get("attempts", 0),
        last_error=doc.get("last_error"),
        registration_id=doc.get("registration_id"),
        resolution_id=doc.get("resolution_id"),
        cause_event_id=doc["cause_event_id"],
        cause_event_type=doc["cause_event_type"],
        created_at=doc["created_at"],
        sent_at=doc.get("sent_at"),
        segments=doc.get("segments"),
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
    status: Literal["pending", "sending", "retry", "sent", "failed"] | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[NotificationView]:
    """The delivery log, newest first, with attempts and the last error."""
    query: dict[str, Any] = {}
    if registration_id:
        query["registration_id"] = registration_id
    if channel:
        query["channel"] = channel
    if status:
        query["status"] = status
    docs = (
        await _ctx(request)
        .store.notifications.find(query, sort=[("created_at", -1)], limit=limit)
        .to_list()
    )
    return [_view(d) for d in docs]


@router.post(
    "/notifications/{notification_id}/resend",
    response_model=NotificationView,
    status_code=202,
    responses=error_responses(401, 403, 404),
)
async def resend_notification(
    notification_id: str,
    request: Request,
    _: Annotated[Any, Depends(require_roles("organiser"))],
) -> NotificationView:
    """Send a notification again."""
    doc = await handlers.resend(_ctx(request), notification_id)
    if doc is None:
        raise ApiError(404, "notification_not_found", "No such notification.")
    return _view(doc)
