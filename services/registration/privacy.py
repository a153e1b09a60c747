"""Personal data under Tanzania's Personal Data Protection Act, 2022.

- A participant can download the personal data held about them (``export_own_data``).
- A participant can ask for erasure (``erase_registration``): an active registration
  is cancelled first (its seat goes to the waiting list), then names, contacts,
  institution, position, region and needs are replaced, and ``PersonalDataErased`` is
  published so that every service removes its own copy.
- A retention rule anonymises the registrations of events that ended more than
  ``retention_days`` ago (``apply_retention``), run by a worker and by ops on demand.

What is kept after erasure has no personal data: the status, cadre, check-in days and
the times, so attendance statistics stay right.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from services.registration import handlers
from services.registration.domain import DomainError, now
from shared.contracts.registration import PersonalDataErased
from shared.envelope import wrap
from shared.logging import get_logger
from shared.outbox import mutate
from shared.timeutil import iso
from shared.waiting import sleep_or_stop

log = get_logger("privacy")
PERSONAL_FIELDS = (
    "full_name",
    "email",
    "phone",
    "institution",
    "position",
    "region",
    "accessibility_needs",
    "accessibility_other",
    "dietary_needs",
)
INTERNAL_FIELDS = {
    "manage_token_hash",
    "idempotency_key",
    "outbox",
    "outbox_pending",
    "outbox_lease_until",
    "rev",
}


def export_own_data(doc: dict[str, Any]) -> dict[str, Any]:
    """Everything held about one participant, without internal bookkeeping."""
    data = {k: v for k, v in doc.items() if k not in INTERNAL_FIELDS and k != "_id"}
    data["id"] = doc["_id"]
    data["held_by"] = "e-Government Authority (e-GA), Mkutano registration service"
    data["purpose"] = doc.get("consent", {}).get("purpose")
    return data


def _anonymised(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "full_name": "[erased]",
        # Keeps the unique (event, email) index satisfied without any real address.
        "email": f"erased-{doc['_id']}@invalid",
        "phone": "",
        "institution": "[erased]",
        "position": "[erased]",
        "region": None,
        "accessibility_needs": [],
        "accessibility_other": None,
        "dietary_needs": None,
    }


async def erase_registration(
    ctx: handlers.Context,
    registration_id: str,
    *,
    reason: Literal["participant_request", "retention"],
) -> dict[str, Any]:
    """Cancel if active, then anonymise and publish ``PersonalDataErased`` (idempotent)."""
    doc = await ctx.store.registrations.find_one({"_id": registration_id})
    if doc is None:
        raise DomainError("registration_not_found", "No such registration.")
    if doc.get("erased_at"):
        return doc
    if doc["status"] in ("confirmed", "waitlisted", "pending_approval"):
        try:
            await handlers.cancel_registration(
                ctx,
                registration_id,
                by="participant" if reason == "participant_request" else "organiser",
                reason="personal data erased",
            )
        except DomainError as exc:  # cancelled meanwhile: go on erasing
            if not exc.code.startswith("registration_"):
                raise

    def decide(current: dict[str, Any]) -> tuple[dict[str, Any], list[Any]] | None:
        if current.get("erased_at"):
            return None
        moment = now()
        message = PersonalDataErased(
            registration_id=current["_id"],
            event_id=current["event_id"],
            reason=reason,
            erased_at=moment,
        )
        changes = {
            **_anonymised(current),
            "manage_token_hash": None,
            "consent": {**current.get("consent", {}), "withdrawn_at": iso(moment)},
            "erased_at": iso(moment),
            "erasure_reason": reason,
            "updated_at": iso(moment),
        }
        # Events already in the outbox carry the old contact details: the erasure
        # supersedes them, so only the erasure itself is left to publish.
        changes["outbox"] = []
        return changes, [wrap(message, handlers.SERVICE)]

    written = await mutate(
        ctx.store.registrations, registration_id, decide, signal=ctx.store.signal
    )
    ctx.wake_relay()
    log.info("personal_data_erased", registration_id=registration_id, reason=reason)
    return written or await ctx.store.registrations.find_one({"_id": registration_id}) or doc


async def apply_retention(ctx: handlers.Context, retention_days: int) -> int:
    """Anonymise the registrations of events that ended more than ``retention_days`` ago."""
    cutoff = now() - timedelta(days=retention_days)
    erased = 0
    # Events are few; their times carry the venue's offset, so compare parsed times.
    async for event in ctx.store.events.find({}, {"_id": 1, "ends_at": 1}):
        if _as_datetime(event["ends_at"]) >= cutoff:
            continue
        cursor = ctx.store.registrations.find(
            {"event_id": event["_id"], "erased_at": None}, {"_id": 1}
        )
        async for reg in cursor:
            await erase_registration(ctx, reg["_id"], reason="retention")
            erased += 1
    return erased


def _as_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def retention_worker(ctx: handlers.Context, retention_days: int, interval_s: float):
    """A background loop applying the retention rule every ``interval_s`` seconds."""

    async def run(stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                count = await apply_retention(ctx, retention_days)
                if count:
                    log.info("retention_applied", registrations=count)
            except Exception as exc:  # MongoDB down: try again next round
                log.warning("retention_failed", error=type(exc).__name__)
            await sleep_or_stop(stop, interval_s)

    return run
