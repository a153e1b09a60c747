"""Registration use cases: plain functions over the store, the clock and the outbox."""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from pymongo.errors import DuplicateKeyError

from services.registration.domain import (
    DomainError,
    EventChange,
    EventSpec,
    RegistrationChange,
    RegistrationRequest,
    TicketSigner,
    apply_event_change,
    changed_fields,
    check_can_check_in,
    check_can_register,
    event_details,
    hash_token,
    new_manage_token,
    new_reference,
    new_registration_id,
    now,
    tokens_match,
)
from services.registration.store import RegistrationStore
from shared.contracts.registration import (
    ConfirmationResendRequested,
    EventCancelled,
    EventPublished,
    EventUpdated,
    ParticipantCheckedIn,
    ParticipantContact,
    ParticipantRegistered,
    ParticipantWaitlisted,
    RegistrationApproved,
    RegistrationCancelled,
    RegistrationRejected,
    RegistrationUpdated,
    WaitlistPromoted,
)
from shared.envelope import wrap
from shared.outbox import ConcurrentUpdate, mutate, new_document, save, update_spec
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
    ctx: Context, event_id: str, request: RegistrationRequest, *, idempotency_key: str | None = None
) -> Registered:
    """Register one participant: confirmed while seats last, then waitlisted in order.

    The seat is taken with a conditional atomic increment; the registration and its
    ``ParticipantRegistered`` event are one insert. The unique (event, email) index —
    not a prior lookup — guarantees one registration per email per event.
    """
    event = await ctx.store.get_event(event_id)
    if event is None:
        raise DomainError("event_not_found", "No such event.")
    moment = now()
    check_can_register(event, request.cadre, moment)
    # No lookup by email first: the unique index answers it at the insert below, and a
    # query on email costs a scan per registration on the embedded server.

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
    ticket = ctx.signer.sign(registration_id) if status == "confirmed" else None
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
            # Lets a retry whose first attempt was cut off find what it created.
            "idempotency_key": idempotency_key,
            "checkins": {},
            "created_at": iso(moment),
            # Microseconds since the epoch: the sort and paging key of organisers' lists.
            "created_us": int(moment.timestamp() * 1_000_000),
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
                # The seat goes back; someone waitlisted meanwhile gets it.
                await ctx.store.release_seat(event_id)
                await promote_waitlisted(ctx, event_id, 1)
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
        ticket = ctx.signer.sign(doc["_id"]) if doc["status"] == "confirmed" else None
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

    await mutate(ctx.store.registrations, existing["_id"], decide, signal=ctx.store.signal)
    ctx.wake_relay()


def request_fingerprint(event_id: str, body: dict[str, Any]) -> str:
    """Hash of a request, to tell a retry from a different request under the same key."""
    canonical = json.dumps({"event_id": event_id, "body": body}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


# -- shared pieces -------------------------------------------------------------------------


def contact_of(doc: dict[str, Any]) -> ParticipantContact:
    """The participant's contact details as the events carry them."""
    return ParticipantContact(
        full_name=doc["full_name"],
        email=doc["email"],
        phone=doc["phone"],
        language=doc["language"],
        institution=doc["institution"],
        position=doc.get("position"),
    )


def _base(doc: dict[str, Any], event: dict[str, Any], status: str) -> dict[str, Any]:
    return {
        "registration_id": doc["_id"],
        "reference": doc["reference"],
        "event": event_details(event),
        "participant": contact_of(doc),
        "status": status,
    }


async def _event_or_404(ctx: Context, event_id: str) -> dict[str, Any]:
    event = await ctx.store.get_event(event_id)
    if event is None:
        raise DomainError("event_not_found", "No such event.")
    return event


async def _registration_or_404(ctx: Context, registration_id: str) -> dict[str, Any]:
    doc = await ctx.store.get_registration(registration_id)
    if doc is None:
        raise DomainError("registration_not_found", "No such registration.")
    return doc


# -- events catalogue ------------------------------------------------------------------------


async def update_event(ctx: Context, event_id: str, change: EventChange) -> dict[str, Any]:
    """An organiser changes an event; publishing, cancelling or editing is announced.

    A raised capacity promotes waitlisted participants into the new seats. Cancelling an
    event cancels its active registrations, each with its own ``RegistrationCancelled``.
    """
    for _ in range(20):
        event = await _event_or_404(ctx, event_id)
        changes = apply_event_change(event, change)
        if not changes:
            return event
        stamp = iso(now())
        merged = {**event, **changes}
        state = merged["state"]
        common = {
            "event_id": event_id,
            "event": event_details(merged),
            "capacity": merged["capacity"],
            "state": state,
        }
        if "state" in changes and state == "published":
            message = EventPublished(**common)
        elif "state" in changes and state == "cancelled":
            message = EventCancelled(**common, reason=change.cancellation_reason)
        else:
            message = EventUpdated(**common, changed_fields=sorted(changes))
        changes["updated_at"] = stamp
        flt, update = update_spec(event, changes, [wrap(message, SERVICE)])
        # Lowering the capacity must not undercut seats taken meanwhile by new registrations.
        flt["seats_taken"] = {"$lte": merged["capacity"]}
        try:
            result = await ctx.store.events.update_one(flt, update)
        except DuplicateKeyError as exc:  # the unique index on codes decides, not a lookup
            raise DomainError(
                "event_code_taken", "Another event has this code.", field="code"
            ) from exc
        if result.matched_count == 1:
            break
    else:
        raise DomainError("concurrent_update", "The event is changing; try again.")
    ctx.wake_relay()
    if state == "cancelled" and "state" in changes:
        await _cancel_all(ctx, event_id, change.cancellation_reason)
    elif merged["capacity"] > event["capacity"]:
        await promote_waitlisted(ctx, event_id, merged["capacity"] - event["capacity"])
    return await _event_or_404(ctx, event_id)


async def _cancel_all(ctx: Context, event_id: str, reason: str | None) -> None:
    active = ctx.store.registrations.find(
        {"event_id": event_id, "status": {"$in": ["confirmed", "waitlisted", "pending_approval"]}},
        projection={"_id": 1},
    )
    ids = [doc["_id"] async for doc in active]
    for registration_id in ids:
        try:
            await cancel_registration(
                ctx, registration_id, by="organiser", reason=reason or "event cancelled"
            )
        except DomainError:
            continue  # cancelled meanwhile by the participant


# -- waiting list and seats ------------------------------------------------------------------


async def promote_waitlisted(ctx: Context, event_id: str, seats: int = 1) -> list[str]:
    """Confirm up to ``seats`` waitlisted participants, first in line first.

    Each promotion first takes a seat with the conditional ``$inc`` and then moves one
    registration from waitlisted to confirmed with a revision-checked write; a loser of a
    race re-reads the line, and a seat nobody can use is released. So two concurrent
    cancellations promote exactly two and the capacity is never exceeded.
    """
    event = await ctx.store.get_event(event_id)
    if event is None or event["state"] == "cancelled":
        return []
    promoted: list[str] = []
    while len(promoted) < seats:
        if not await ctx.store.take_seat(event_id):
            break
        doc = await _promote_first(ctx, event)
        if doc is None:
            await ctx.store.release_seat(event_id)
            break
        promoted.append(doc["_id"])
    if promoted:
        ctx.wake_relay()
    return promoted


async def _promote_first(ctx: Context, event: dict[str, Any]) -> dict[str, Any] | None:
    for _ in range(50):
        candidate = await ctx.store.first_waitlisted(event["_id"])
        if candidate is None:
            return None
        moment = now()
        ticket = ctx.signer.sign(candidate["_id"])
        message = WaitlistPromoted(
            **_base(candidate, event, "confirmed"), promoted_at=moment, ticket=ticket
        )
        try:
            return await save(
                ctx.store.registrations,
                candidate,
                {
                    "status": "confirmed",
                    "waitlist_position": None,
                    "promoted_at": iso(moment),
                    "updated_at": iso(moment),
                },
                [wrap(message, SERVICE)],
                signal=ctx.store.signal,
            )
        except ConcurrentUpdate:
            continue  # promoted or cancelled meanwhile: look at the line again
    return None


async def reconcile_seats(ctx: Context, event_id: str, settle_s: float = 0.2) -> dict[str, int]:
    """Recount the confirmed registrations and repair the event's seat counter.

    A crash between taking a seat and writing the registration (or between cancelling
    and releasing) leaves the counter wrong. The recount is compared twice, ``settle_s``
    apart, so that a registration in flight is not mistaken for a leak, and the counter
    is set with a compare-and-set. Freed seats then go to the waiting list.
    """
    for _ in range(10):
        event = await _event_or_404(ctx, event_id)
        before = int(event.get("seats_taken", 0))
        confirmed = await ctx.store.count_confirmed(event_id)
        if confirmed == before:
            break
        if settle_s:
            await asyncio.sleep(settle_s)
            again = await ctx.store.get_event(event_id)
            if again is None or again.get("seats_taken") != before:
                continue
            if await ctx.store.count_confirmed(event_id) != confirmed:
                continue
        if await ctx.store.set_seats_taken(event_id, before, confirmed):
            break
    else:
        raise DomainError("concurrent_update", "Seats keep changing; try again.")
    promoted = await promote_waitlisted(ctx, event_id, max(0, event["capacity"] - confirmed))
    return {
        "seats_taken_before": before,
        "recounted": confirmed,
        "seats_taken": confirmed + len(promoted),
        "promoted": len(promoted),
    }


async def reconcile_all(ctx: Context) -> int:
    """Reconcile every event that still takes or holds registrations (run at startup)."""
    repaired = 0
    async for event in ctx.store.events.find(
        {"state": {"$in": ["published", "closed"]}}, projection={"_id": 1}
    ):
        result = await reconcile_seats(ctx, event["_id"], settle_s=0)
        repaired += int(result["seats_taken_before"] != result["recounted"])
    return repaired


# -- cancelling ------------------------------------------------------------------------------


async def cancel_registration(
    ctx: Context,
    registration_id: str,
    *,
    by: str,
    reason: str | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    """Cancel a registration; a released seat goes to the first waitlisted participant.

    ``event_id``, when given (organisers name the event), must be the registration's.
    """
    doc = await _registration_or_404(ctx, registration_id)
    if event_id is not None and doc["event_id"] != event_id:
        raise DomainError("registration_not_found", "No such registration.")
    event = await _event_or_404(ctx, doc["event_id"])
    previous: dict[str, str] = {}

    def decide(current: dict[str, Any]) -> tuple[dict[str, Any], list[Any]]:
        if current["status"] in ("cancelled", "rejected"):
            raise DomainError(
                f"registration_{current['status']}",
                f"This registration is already {current['status']}.",
            )
        previous["status"] = current["status"]
        moment = now()
        message = RegistrationCancelled(
            **_base(current, event, "cancelled"),
            cancelled_at=moment,
            cancelled_by=by,  # type: ignore[arg-type]
            reason=reason,
        )
        changes = {
            "status": "cancelled",
            "waitlist_position": None,
            "cancelled_at": iso(moment),
            "cancelled_by": by,
            "updated_at": iso(moment),
        }
        return changes, [wrap(message, SERVICE)]

    written = await mutate(
        ctx.store.registrations, registration_id, decide, signal=ctx.store.signal
    )
    assert written is not None
    ctx.wake_relay()
    if previous.get("status") == "confirmed":
        # A crash right here leaves the counter one too high: reconcile_seats repairs it.
        await ctx.store.release_seat(doc["event_id"])
        await promote_waitlisted(ctx, doc["event_id"], 1)
    return written


# -- approval --------------------------------------------------------------------------------


async def approve_registration(ctx: Context, registration_id: str, by: str) -> dict[str, Any]:
    """Approve a nomination: confirmed while seats last, else waitlisted in order."""
    for _ in range(20):
        doc = await _registration_or_404(ctx, registration_id)
        if doc["status"] != "pending_approval":
            raise DomainError(
                "not_pending_approval", f"This registration is {doc['status']}, not pending."
            )
        event = await _event_or_404(ctx, doc["event_id"])
        if event["state"] == "cancelled":
            raise DomainError("event_cancelled", "This event has been cancelled.")
        moment = now()
        seat = await ctx.store.take_seat(event["_id"])
        if seat:
            status, position = "confirmed", None
        else:
            status, position = "waitlisted", await ctx.store.next_waitlist_position(event["_id"])
        ticket = ctx.signer.sign(doc["_id"]) if seat else None
        messages = [
            wrap(
                RegistrationApproved(
                    **_base(doc, event, status),
                    approved_at=moment,
                    approved_by=by,
                    ticket=ticket,
                    waitlist_position=position,
                ),
                SERVICE,
            )
        ]
        if position is not None:
            messages.append(
                wrap(
                    ParticipantWaitlisted(
                        **_base(doc, event, "waitlisted"),
                        waitlist_position=position,
                        waitlisted_at=moment,
                    ),
                    SERVICE,
                )
            )
        changes = {
            "status": status,
            "waitlist_position": position,
            "approved_at": iso(moment),
            "approved_by": by,
            "updated_at": iso(moment),
        }
        try:
            written = await save(
                ctx.store.registrations, doc, changes, messages, signal=ctx.store.signal
            )
        except ConcurrentUpdate:
            if seat:
                await ctx.store.release_seat(event["_id"])
            continue
        ctx.wake_relay()
        return written
    raise DomainError("concurrent_update", "The registration is changing; try again.")


async def reject_registration(
    ctx: Context, registration_id: str, by: str, reason: str
) -> dict[str, Any]:
    """Reject a nomination, with a reason the participant is told."""
    doc = await _registration_or_404(ctx, registration_id)
    event = await _event_or_404(ctx, doc["event_id"])

    def decide(current: dict[str, Any]) -> tuple[dict[str, Any], list[Any]]:
        if current["status"] != "pending_approval":
            raise DomainError(
                "not_pending_approval", f"This registration is {current['status']}, not pending."
            )
        moment = now()
        message = RegistrationRejected(
            **_base(current, event, "rejected"), rejected_at=moment, rejected_by=by, reason=reason
        )
        changes = {
            "status": "rejected",
            "rejected_at": iso(moment),
            "rejected_by": by,
            "rejection_reason": reason,
            "updated_at": iso(moment),
        }
        return changes, [wrap(message, SERVICE)]

    written = await mutate(
        ctx.store.registrations, registration_id, decide, signal=ctx.store.signal
    )
    assert written is not None
    ctx.wake_relay()
    return written


# -- self-service ----------------------------------------------------------------------------


async def find_own_registration(ctx: Context, reference: str, token: str) -> dict[str, Any]:
    """The registration for a reference and its manage token, or the one same 404.

    The same work is done whatever fails (a lookup, a hash, a constant-time compare
    against a dummy hash when the reference is unknown), so answers cannot be told apart.
    """
    doc = await ctx.store.find_by_reference(reference.strip().upper()[:32])
    presented = hash_token(token or "")
    if not tokens_match(presented, doc.get("manage_token_hash") if doc else None):
        raise DomainError(
            "registration_not_found",
            "No registration matches this reference and token.",
        )
    assert doc is not None
    return doc


async def update_own_registration(
    ctx: Context, registration_id: str, change: RegistrationChange
) -> dict[str, Any]:
    """A participant changes their phone, position, needs or language."""
    doc = await _registration_or_404(ctx, registration_id)
    event = await _event_or_404(ctx, doc["event_id"])

    def decide(current: dict[str, Any]) -> tuple[dict[str, Any], list[Any]] | None:
        if current["status"] in ("cancelled", "rejected"):
            raise DomainError(
                f"registration_{current['status']}",
                f"This registration is {current['status']} and cannot be changed.",
            )
        changes = changed_fields(current, change)
        if not changes:
            return None
        moment = now()
        updated = {**current, **changes}
        message = RegistrationUpdated(
            **_base(updated, event, current["status"]),
            changed_fields=sorted(changes),
            updated_at=moment,
        )
        return {**changes, "updated_at": iso(moment)}, [wrap(message, SERVICE)]

    written = await mutate(
        ctx.store.registrations, registration_id, decide, signal=ctx.store.signal
    )
    if written is None:
        return await _registration_or_404(ctx, registration_id)
    ctx.wake_relay()
    return written


# -- check-in --------------------------------------------------------------------------------


async def check_in(ctx: Context, ticket: str) -> dict[str, Any]:
    """Record attendance for today (venue time) from a scanned ticket."""
    registration_id = ctx.signer.verify(ticket)
    if registration_id is None:
        raise DomainError("invalid_ticket", "This ticket is not one of ours.")
    doc = await _registration_or_404(ctx, registration_id)
    event = await _event_or_404(ctx, doc["event_id"])
    recorded: dict[str, str] = {}

    def decide(current: dict[str, Any]) -> tuple[dict[str, Any], list[Any]]:
        moment = now()
        day = check_can_check_in(current, event, moment)
        recorded.update(day=day, at=iso(moment))
        message = ParticipantCheckedIn(
            **_base(current, event, current["status"]), day=day, checked_in_at=moment
        )
        checkins = {**(current.get("checkins") or {}), day: iso(moment)}
        return {"checkins": checkins, "updated_at": iso(moment)}, [wrap(message, SERVICE)]

    written = await mutate(
        ctx.store.registrations, registration_id, decide, signal=ctx.store.signal
    )
    assert written is not None
    ctx.wake_relay()
    return {"registration": written, "day": recorded["day"], "checked_in_at": recorded["at"]}
