"""Kafka subscribers of the registration service (issue 14): payments.v1 → use cases.

One consumer group (``registration``, ``REGISTRATION_PAYMENTS_CONSUMER_GROUP``) on ``payments.v1``: a bill's control number and
payments are noted on its registrations (the participant's /my page shows them);
``BillPaid`` confirms them with the ticket; ``BillExpired`` cancels them (cause
``unpaid``), releasing the seat to the first waiting. Each use case is idempotent, so a
re-delivered event changes nothing.
"""

from __future__ import annotations

from services.registration import handlers
from shared.contracts.payments import (
    BillCancelled,
    BillExpired,
    BillPaid,
    ControlNumberIssued,
    PaymentReceived,
)
from shared.envelope import ReceivedEvent
from shared.runtime import ServiceRuntime
from shared.topics import PAYMENTS


def register_consumers(runtime: ServiceRuntime, ctx: handlers.Context, *, group_id: str) -> None:
    async def issued(received: ReceivedEvent) -> None:
        e = received.event
        await handlers.note_bill(
            ctx,
            e.registration_ids,
            bill_id=e.bill_id,
            control_number=e.control_number,
            amount_tzs=e.amount_tzs,
            outstanding_tzs=e.amount_tzs,
            expires_at=e.expires_at.isoformat(),
            status="issued",
        )

    async def payment(received: ReceivedEvent) -> None:
        e = received.event
        await handlers.note_bill(
            ctx,
            e.registration_ids,
            bill_id=e.bill_id,
            paid_total_tzs=e.paid_total_tzs,
            outstanding_tzs=e.outstanding_tzs,
        )

    async def paid(received: ReceivedEvent) -> None:
        e = received.event
        await handlers.registration_paid(ctx, e.registration_ids, bill_id=e.bill_id)

    async def expired(received: ReceivedEvent) -> None:
        e = received.event
        await handlers.bill_expired(ctx, e.registration_ids, bill_id=e.bill_id)

    async def cancelled(received: ReceivedEvent) -> None:
        e = received.event
        await handlers.note_bill(ctx, e.registration_ids, bill_id=e.bill_id, status="cancelled")

    runtime.add_consumer(
        group_id=group_id,
        topics=[PAYMENTS],
        handlers={
            ControlNumberIssued: issued,
            PaymentReceived: payment,
            BillPaid: paid,
            BillExpired: expired,
            BillCancelled: cancelled,
        },
        description="Confirms a pending_payment registration when its bill is paid and "
        "cancels it (seat released, first waiting promoted) when the bill expires.",
    )
