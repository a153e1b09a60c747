"""Registration use cases: plain functions over the store, the clock and the outbox."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from pymongo.errors import DuplicateKeyError

from services.registration.domain import (
    DomainError,
    EventSpec,
    RegistrationRequest,
    TicketSigner,
    check_can_register,
    event_details,
    hash_token,
    new_manage_token,
    new_reference,
    new_registration_id,
    now,
)
from services.registration.store import RegistrationStore
from shared.contracts.registration import (
    ConfirmationResendRequested,
    EventPublished,
    ParticipantRegistered,
    ParticipantWaitlisted,
)
from shared.envelope import wrap
from shared.outbox import mutate, new_document
from shared.timeutil import iso

SERVICE = "registration"


@dataclass
class Context:
    """What the use cases need: the store, the ticket signer, a relay to wake."""

    store: RegistrationStore
    signer: TicketSigner
    notice_version: str
    wake_relay: Any = lambda: None


@dataclass(frozen=True)
class Registered:
    id: str
    reference: str
    status: str
    manage_token: str
    waitlist_position: int | None


async def create_event(ctx: Context, spec: EventSpec) -> dict[str, Any]:
    """An organiser creates an event; a published one is announced on the stream."""
    stamp = iso(now())
    fields = {
        "_id": spec.id,
        **spec.model_dump(mode="json", exclude={"id"}),
        "seats_taken": 0,
        "waitlist_seq": 0,
        "created_at": stamp,
        "updated_at": stamp,
    }
    messages = []
    if spec.state == "published":
        details = event_details(fields)
        messages.append(
            wrap(
                EventPublished(
                    event_id=spec.id, event=details, capacity=spec.capacity, state="published"
                ),
                SERVICE,
            )
        )
    try:
        await ctx.store.insert_event(new_document(fields, messages))
    except DuplicateKeyError as exc:
        raise DomainError("event_exists", "An event with this id or code exists already.") from exc
    ctx.wake_relay()
    return fields


async def register_participant(
    ctx: Context, event_id: str, request: RegistrationRequest
) -> Registered:
    """Register one participant: confirmed while seats last, then waitlisted in order.

    The seat is taken with a conditional atomic increment; the registration and its
    ``ParticipantRegistered`` event are one insert. The unique (event, email) index —
    not a prior lookup — guarantees one registration per email per event.
    """
    event = await ctx.store.get_event(event_id)
    if event is None:
        raise DomainError("event_not_found", "No such event.", status=404)
    moment = now()
    check_can_register(event, request.cadre, moment)
    if await ctx.store.find_by_email(event_id, request.email):
        await request_resend(ctx, event_id, request.email)
        raise _already_registered()

    seat_taken = False
    position: int | None = None
    if event.get("requires_approval"):
        status = "pending_approval"
    elif await ctx.store.take_seat(event_id):
        status, seat_taken = "confirmed", True
    else:
        status = "waitlisted"
        position = await ctx.store.next_waitlist_position(event_id)

    registration_id = new_registration_id()
    token = new_manage_token()
    details = event_details(event)
    ticket = ctx.signer.sign(registration_id, event_id) if status == "confirmed" else None
    for _ in range(5):  # a reference collision is astronomically rare; retry anyway
        reference = new_reference()
        fields = {
            "_id": registration_id,
            "reference": reference,
            "event_id": event_id,
            "status": status,
            "waitlist_position": position,
            "full_name": request.full_name,
            "email": request.email,
            "phone": request.phone,
            "institution": request.institution,
            "position": request.position,
            "cadre": request.cadre,
            "region": request.region,
            "accessibility_needs": request.accessibility_needs,
            "accessibility_other": request.accessibility_other,
            "dietary_needs": request.dietary_needs,
            "language": request.language,
            "consent": {
                "accepted": True,
                "given_at": iso(moment),
                "notice_version": request.consent.notice_version or ctx.notice_version,
                "purpose": "registration and communication for this event",
            },
            "manage_token_hash": hash_token(token),
            "checkins": {},
            "created_at": iso(moment),
            "updated_at": iso(moment),
        }
        message = wrap(
            ParticipantRegistered(
                registration_id=registration_id,
                reference=reference,
                event=details,
                participant=request.contact(),
                status=status,  # type: ignore[arg-type]
                cadre=request.cadre,
                registered_at=moment,
                waitlist_position=position,
                ticket=ticket,
            ),
            SERVICE,
        )
        messages = [message]
        if status == "waitlisted" and position is not None:
            messages.append(
                wrap(
                    ParticipantWaitlisted(
                        registration_id=registration_id,
                        reference=reference,
                        event=details,
                        participant=request.contact(),
                        status="waitlisted",
                        waitlist_position=position,
                        waitlisted_at=moment,
                    ),
                    SERVICE,
                )
            )
        try:
            await ctx.store.insert_registration(new_document(fields, messages))
            break
        except DuplicateKeyError as exc:
            if "reference" in str(exc):
                continue
            if seat_taken:
                await ctx.store.release_seat(event_id)
            await request_resend(ctx, event_id, request.email)
            raise _already_registered() from exc
    else:  # pragma: no cover
        raise RuntimeError("could not allocate a unique reference")
    ctx.wake_relay()
    return Registered(registration_id, reference, status, token, position)


def _already_registered() -> DomainError:
    return DomainError(
        "already_registered",
        "This email is already registered for this event. "
        "We have sent the confirmation again to the address on file.",
    )


async def request_resend(ctx: Context, event_id: str, email: str) -> None:
    """Ask notification to resend the confirmation to the registration on file."""
    existing = await ctx.store.find_by_email(event_id, email)
    if existing is None:
        return
    event = await ctx.store.get_event(event_id)
    if event is None:
        return

    def decide(doc: dict[str, Any]) -> tuple[dict[str, Any], list[Any]]:
        from shared.contracts.registration import ParticipantContact

        ticket = ctx.signer.sign(doc["_id"], event_id) if doc["status"] == "confirmed" else None
        msg = wrap(
            ConfirmationResendRequested(
                registration_id=doc["_id"],
                reference=doc["reference"],
                event=event_details(event),
                participant=ParticipantContact(
                    full_name=doc["full_name"],
                    email=doc["email"],
                    phone=doc["phone"],
                    language=doc["language"],
                    institution=doc["institution"],
                    position=doc.get("position"),
                ),
                status=doc["status"],
                requested_at=now(),
                ticket=ticket,
            ),
            SERVICE,
        )
        return {"updated_at": iso(now())}, [msg]

    await mutate(ctx.store.registrations, existing["_id"], decide)
    ctx.wake_relay()


def request_fingerprint(event_id: str, body: dict[str, Any]) -> str:
    """Hash of a request, to tell a retry from a different request under the same key."""
    canonical = json.dumps({"event_id": event_id, "body": body}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()
