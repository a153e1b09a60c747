"""Webhooks HTTP API (``/api/v1``, role ``admin``): routes translate requests into use cases."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, EmailStr, Field

from services.webhooks import handlers
from services.webhooks.domain import Delivery, DeliveryStatus, Subscription
from shared.auth import Principal, require_roles
from shared.errors import error_responses

router = APIRouter(prefix="/api/v1")

# The HTTP status of each domain error code this service answers with something other
# than what ``shared.errors.status_for`` gives (``*_not_found`` 404, else 409).
ERROR_STATUSES: dict[str, int] = {
    "invalid_target_url": 422,
    "target_not_allowed": 422,
    "target_unresolvable": 422,
    "invalid_event_type": 422,
    "event_types_required": 422,
    "purpose_required": 422,
    "subscription_paused": 409,
    "subscription_active": 409,
    "delivery_in_flight": 409,
    "personal_data_not_granted": 409,
}

Admin = Annotated[Principal, Depends(require_roles("admin"))]


class PersonalDataRequest(BaseModel):
    """Grant personal data (names, emails, phones…) to this subscription (PDPA)."""

    purpose: str = Field(min_length=3, max_length=500, description="What the data is used for.")


class SubscriptionCreate(BaseModel):
    url: str = Field(max_length=2000, description="http(s) URL the events are POSTed to.")
    event_types: list[str] = Field(
        min_length=1,
        max_length=50,
        description="CloudEvent types or patterns, e.g. tz.go.ega.registration.*",
    )
    label: str = Field(min_length=1, max_length=200)
    owner_email: EmailStr = Field(description="Told when the subscription is paused.")
    personal_data: PersonalDataRequest | None = Field(
        None, description="Without a grant, personal fields are left out of the payloads."
    )


class SubscriptionPatch(BaseModel):
    """Only the fields given change."""

    url: str | None = Field(None, max_length=2000)
    event_types: list[str] | None = Field(None, min_length=1, max_length=50)
    label: str | None = Field(None, min_length=1, max_length=200)
    owner_email: EmailStr | None = None


class GrantView(BaseModel):
    purpose: str
    granted_by: str
    granted_at: datetime


class SubscriptionView(BaseModel):
    id: str
    url: str
    event_types: list[str]
    label: str
    owner_email: str
    status: Literal["active", "paused"]
    paused_reason: str | None = None
    paused_at: datetime | None = None
    personal_data: GrantView | None = None
    consecutive_failures: int
    previous_secret_valid_until: datetime | None = Field(
        None, description="During a rotation's overlap: deliveries carry both signatures."
    )
    created_at: datetime
    updated_at: datetime
    last_success_at: datetime | None = None
    last_failure_at: datetime | None = None


class SubscriptionCreated(SubscriptionView):
    secret: str = Field(description="The signing secret (whsec_…). Shown this once.")


class RotateSecret(BaseModel):
    overlap_s: float | None = Field(
        None, ge=0, le=7 * 86400, description="How long the old secret stays valid."
    )


class SecretRotated(BaseModel):
    id: str
    secret: str = Field(description="The new signing secret (whsec_…). Shown this once.")
    previous_secret_valid_until: datetime | None


class AttemptView(BaseModel):
    number: int
    at: datetime
    latency_ms: int
    status_code: int | None = None
    error: str | None = None


class DeliveryView(BaseModel):
    event_id: str = Field(description="The CloudEvent id, sent as webhook-id.")
    event_type: str
    key: str
    status: DeliveryStatus
    personal_data: bool
    attempts_count: int
    attempts: list[AttemptView]
    last_error: str | None = None
    last_status_code: int | None = None
    last_latency_ms: int | None = None
    next_attempt_at: datetime | None = None
    recorded_at: datetime
    delivered_at: datetime | None = None
    replays: int


class ReplayRange(BaseModel):
    since: datetime
    until: datetime | None = None
    scope: Literal["failed", "all"] = Field(
        "failed", description="failed: only what gave up; all: every finished delivery."
    )


class Replayed(BaseModel):
    replayed: int


def _ctx(request: Request) -> handlers.Context:
    return request.app.state.context


def _epoch(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


def _view(s: Subscription, now: datetime) -> dict:
    previous = [x.expires_at for x in s.secrets if x.expires_at is not None and x.valid_at(now)]
    grant = s.personal_data
    return {
        "id": s.id,
        "url": s.url,
        "event_types": s.event_types,
        "label": s.label,
        "owner_email": s.owner_email,
        "status": s.status,
        "paused_reason": s.paused_reason,
        "paused_at": s.paused_at,
        "personal_data": (
            GrantView(
                purpose=grant.purpose, granted_by=grant.granted_by, granted_at=grant.granted_at
            )
            if grant
            else None
        ),
        "consecutive_failures": s.consecutive_failures,
        "previous_secret_valid_until": max(previous) if previous else None,
        "created_at": s.created_at,
        "updated_at": s.updated_at,
        "last_success_at": s.last_success_at,
        "last_failure_at": s.last_failure_at,
    }


def _delivery_view(d: Delivery) -> DeliveryView:
    last = d.attempts[-1] if d.attempts else None
    return DeliveryView(
        event_id=d.event_id,
        event_type=d.event_type,
        key=d.key,
        status=d.status,
        personal_data=d.personal_data,
        attempts_count=d.attempts_count,
        attempts=[AttemptView(**a.__dict__) for a in d.attempts],
        last_error=d.last_error,
        last_status_code=last.status_code if last else None,
        last_latency_ms=last.latency_ms if last else None,
        next_attempt_at=(
            _epoch(d.next_attempt_at) if d.status == "pending" and d.next_attempt_at else None
        ),
        recorded_at=_epoch(d.recorded_at),
        delivered_at=d.delivered_at,
        replays=d.replays,
    )


@router.post(
    "/subscriptions",
    response_model=SubscriptionCreated,
    status_code=201,
    tags=["subscriptions"],
    responses=error_responses(401, 403, 413, 415, 422),
)
async def create_subscription(
    body: SubscriptionCreate, request: Request, principal: Admin
) -> SubscriptionCreated:
    """Subscribe a URL to event types; the answer holds the signing secret, once."""
    ctx = _ctx(request)
    spec = handlers.SubscriptionSpec(
        url=body.url,
        event_types=body.event_types,
        label=body.label,
        owner_email=str(body.owner_email),
        personal_data_purpose=body.personal_data.purpose if body.personal_data else None,
    )
    subscription, secret = await handlers.create_subscription(ctx, spec, by=principal.id)
    return SubscriptionCreated(**_view(subscription, ctx.clock()), secret=secret)


@router.get(
    "/subscriptions",
    response_model=list[SubscriptionView],
    tags=["subscriptions"],
    responses=error_responses(401, 403),
)
async def list_subscriptions(request: Request, _: Admin) -> list[SubscriptionView]:
    """Every subscription, oldest first (secrets are never shown again)."""
    ctx = _ctx(request)
    now = ctx.clock()
    return [SubscriptionView(**_view(s, now)) for s in await handlers.list_subscriptions(ctx)]


@router.get(
    "/subscriptions/{subscription_id}",
    response_model=SubscriptionView,
    tags=["subscriptions"],
    responses=error_responses(401, 403, 404),
)
async def get_subscription(subscription_id: str, request: Request, _: Admin) -> SubscriptionView:
    """One subscription."""
    ctx = _ctx(request)
    return SubscriptionView(
        **_view(await handlers.get_subscription(ctx, subscription_id), ctx.clock())
    )


@router.patch(
    "/subscriptions/{subscription_id}",
    response_model=SubscriptionView,
    tags=["subscriptions"],
    responses=error_responses(401, 403, 404, 409, 413, 415, 422),
)
async def change_subscription(
    subscription_id: str, body: SubscriptionPatch, request: Request, _: Admin
) -> SubscriptionView:
    """Change the target URL, the event types, the label or the owner."""
    ctx = _ctx(request)
    change = handlers.SubscriptionChange(
        url=body.url,
        event_types=body.event_types,
        label=body.label,
        owner_email=str(body.owner_email) if body.owner_email is not None else None,
    )
    subscription = await handlers.change_subscription(ctx, subscription_id, change)
    return SubscriptionView(**_view(subscription, ctx.clock()))


@router.put(
    "/subscriptions/{subscription_id}/personal-data",
    response_model=SubscriptionView,
    tags=["subscriptions"],
    responses=error_responses(401, 403, 404, 409, 413, 415, 422),
)
async def grant_personal_data(
    subscription_id: str, body: PersonalDataRequest, request: Request, principal: Admin
) -> SubscriptionView:
    """Grant personal data for a stated purpose (events recorded from now on carry it)."""
    ctx = _ctx(request)
    subscription = await handlers.grant_personal_data(
        ctx, subscription_id, purpose=body.purpose, by=principal.id
    )
    return SubscriptionView(**_view(subscription, ctx.clock()))


@router.delete(
    "/subscriptions/{subscription_id}/personal-data",
    response_model=SubscriptionView,
    tags=["subscriptions"],
    responses=error_responses(401, 403, 404, 409),
)
async def revoke_personal_data(
    subscription_id: str, request: Request, _: Admin
) -> SubscriptionView:
    """Revoke the grant: events recorded from now on leave the personal fields out."""
    ctx = _ctx(request)
    subscription = await handlers.revoke_personal_data(ctx, subscription_id)
    return SubscriptionView(**_view(subscription, ctx.clock()))


@router.post(
    "/subscriptions/{subscription_id}/pause",
    response_model=SubscriptionView,
    tags=["subscriptions"],
    responses=error_responses(401, 403, 404, 409),
)
async def pause_subscription(subscription_id: str, request: Request, _: Admin) -> SubscriptionView:
    """Stop delivering; events go on being recorded and wait for the resume."""
    ctx = _ctx(request)
    return SubscriptionView(
        **_view(await handlers.pause_subscription(ctx, subscription_id), ctx.clock())
    )


@router.post(
    "/subscriptions/{subscription_id}/resume",
    response_model=SubscriptionView,
    tags=["subscriptions"],
    responses=error_responses(401, 403, 404, 409),
)
async def resume_subscription(subscription_id: str, request: Request, _: Admin) -> SubscriptionView:
    """Deliver again: what waited goes first, in order per aggregate."""
    ctx = _ctx(request)
    return SubscriptionView(
        **_view(await handlers.resume_subscription(ctx, subscription_id), ctx.clock())
    )


@router.delete(
    "/subscriptions/{subscription_id}",
    status_code=204,
    tags=["subscriptions"],
    responses=error_responses(401, 403, 404),
)
async def delete_subscription(subscription_id: str, request: Request, _: Admin) -> Response:
    """Remove a subscription and its delivery log."""
    await handlers.delete_subscription(_ctx(request), subscription_id)
    return Response(status_code=204)


@router.post(
    "/subscriptions/{subscription_id}/rotate-secret",
    response_model=SecretRotated,
    tags=["subscriptions"],
    responses=error_responses(401, 403, 404, 409, 413, 415, 422),
)
async def rotate_secret(
    subscription_id: str, request: Request, _: Admin, body: RotateSecret | None = None
) -> SecretRotated:
    """A new signing secret, shown once; the old one stays valid for the overlap."""
    subscription, secret, until = await handlers.rotate_secret(
        _ctx(request), subscription_id, overlap_s=body.overlap_s if body else None
    )
    return SecretRotated(id=subscription.id, secret=secret, previous_secret_valid_until=until)


@router.get(
    "/subscriptions/{subscription_id}/deliveries",
    response_model=list[DeliveryView],
    tags=["deliveries"],
    responses=error_responses(401, 403, 404, 422),
)
async def list_deliveries(
    subscription_id: str,
    request: Request,
    _: Admin,
    status: Annotated[DeliveryStatus | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[DeliveryView]:
    """The delivery log, newest first: attempts, status codes, latency, last error."""
    found = await handlers.list_deliveries(
        _ctx(request), subscription_id, status=status, limit=limit
    )
    return [_delivery_view(d) for d in found]


@router.get(
    "/subscriptions/{subscription_id}/deliveries/{event_id}",
    response_model=DeliveryView,
    tags=["deliveries"],
    responses=error_responses(401, 403, 404),
)
async def get_delivery(
    subscription_id: str, event_id: str, request: Request, _: Admin
) -> DeliveryView:
    """One delivery (by the CloudEvent id) with its attempts."""
    return _delivery_view(await handlers.get_delivery(_ctx(request), subscription_id, event_id))


@router.post(
    "/subscriptions/{subscription_id}/deliveries/{event_id}/replay",
    response_model=DeliveryView,
    status_code=202,
    tags=["deliveries"],
    responses=error_responses(401, 403, 404, 409),
)
async def replay_delivery(
    subscription_id: str, event_id: str, request: Request, _: Admin
) -> DeliveryView:
    """Send one delivery again, with the same webhook-id."""
    delivery = await handlers.replay_delivery(_ctx(request), subscription_id, event_id)
    return _delivery_view(delivery)


@router.post(
    "/subscriptions/{subscription_id}/replay",
    response_model=Replayed,
    status_code=202,
    tags=["deliveries"],
    responses=error_responses(401, 403, 404, 413, 415, 422),
)
async def replay_range(
    subscription_id: str, body: ReplayRange, request: Request, _: Admin
) -> Replayed:
    """Send again the deliveries recorded between two times (failed ones, or all)."""
    count = await handlers.replay_range(
        _ctx(request), subscription_id, since=body.since, until=body.until, scope=body.scope
    )
    return Replayed(replayed=count)
