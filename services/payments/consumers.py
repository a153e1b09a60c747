"""Kafka subscribers of the payments service: events → use cases (idempotent).

One consumer group (``payments``) on the private ``registration.notices.v1`` (the
payer's name, phone and email, which a GePG bill needs; Kafka ACLs grant this group read
access: deploy/kafka-acls.sh, docs/operations.md) and ``registration.v1`` (for
``PersonalDataErased``). A registration notice with status ``pending_payment`` opens its
bill (one per registration: a re-delivery finds it); a cancelled registration cancels
its open bill; an institution's ``GroupBillRequested`` opens its group bill;
``InstitutionContactErased`` takes the contact person's data off its group bills. Other event types of those streams are acknowledged and ignored.
"""

from __future__ import annotations

from services.payments import handlers
from shared.contracts.registration import PersonalDataErased
from shared.contracts.registration_notices import (
    GroupBillRequested,
    InstitutionContactErased,
    ParticipantRegisteredNotice,
    RegistrationApprovedNotice,
    RegistrationCancelledNotice,
    WaitlistPromotedNotice,
)
from shared.envelope import ReceivedEvent
from shared.runtime import ServiceRuntime
from shared.topics import REGISTRATION, REGISTRATION_NOTICES


def register_consumers(runtime: ServiceRuntime, ctx: handlers.Context) -> None:
    async def open_bill(received: ReceivedEvent) -> None:
        await handlers.open_bill_for_registration(ctx, received.event)

    async def cancel_bill(received: ReceivedEvent) -> None:
        await handlers.cancel_bills_of_registration(
            ctx, received.event.registration_id, "registration_cancelled"
        )

    async def group_bill(received: ReceivedEvent) -> None:
        await handlers.group_bill_requested(ctx, received.event)

    async def erase(received: ReceivedEvent) -> None:
        await handlers.erase_personal_data(ctx, received.event.registration_id)

    async def erase_contact(received: ReceivedEvent) -> None:
        erased = received.event
        await handlers.erase_institution_contact(ctx, erased.institution_code, erased.email)

    # In batches (PAYMENTS_CONSUMER_BATCH_MAX_RECORDS, 200): deduplicated and recorded
    # once per batch.
    runtime.add_consumer(
        group_id=ctx.settings.consumer_group,
        topics=[REGISTRATION_NOTICES, REGISTRATION],
        handlers={
            ParticipantRegisteredNotice: open_bill,
            RegistrationApprovedNotice: open_bill,
            WaitlistPromotedNotice: open_bill,
            RegistrationCancelledNotice: cancel_bill,
            GroupBillRequested: group_bill,
            PersonalDataErased: erase,
            InstitutionContactErased: erase_contact,
        },
        description="Opens a bill for each registration pending payment (one group bill "
        "for an institution that asks), cancels the bill "
        "of a registration cancelled before paying, erases a payer's personal data (a "
        "participant's, or an institution contact person's on its group bills).",
    )
