"""Kafka subscribers of the notification service: events → use cases (idempotent).

One consumer group (``notification`` by default) on ``registration.notices.v1`` and
``resolutions.notices.v1`` (the private notices: contact details, tickets),
``registration.v1`` (the events catalogue, ``PersonalDataErased``) and ``resolutions.v1``
(its retired version 1 only); every instance of the service joins it, so they share the
partitions. The public version-2 registration and resolution events are not acted on
(their notices are); the retired version-1 ones still are, for records published before
the notices existed, which are still on the topic (each change has either a version-1
event or a notice, never both).
Events of a type this service does not act on are acknowledged and ignored; an unknown
type or an invalid payload goes to ``notification.dlq`` (shared.consumer).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from services.notification import handlers
from shared.contracts.payments_notices import (
    ControlNumberNotice,
    PaymentReceiptNotice,
    PaymentReminderNotice,
)
from shared.contracts.registration import (
    ConfirmationResendRequested,
    EventCancelled,
    EventPublished,
    EventUpdated,
    ParticipantCheckedIn,
    ParticipantRegistered,
    ParticipantWaitlisted,
    PersonalDataErased,
    RegistrationApproved,
    RegistrationCancelled,
    RegistrationRejected,
    RegistrationUpdated,
    WaitlistPromoted,
)
from shared.contracts.registration_notices import (
    CertificateIssuedNotice,
    ConfirmationResendRequestedNotice,
    EvaluationInvitedNotice,
    InstitutionContactErased,
    InstitutionSignInRequested,
    ParticipantCheckedInNotice,
    ParticipantRegisteredNotice,
    ParticipantWaitlistedNotice,
    RegistrationApprovedNotice,
    RegistrationCancelledNotice,
    RegistrationPaidNotice,
    RegistrationRejectedNotice,
    RegistrationUpdatedNotice,
    WaitlistPromotedNotice,
)
from shared.contracts.resolutions import ResolutionCompleted, ResolutionUpdated
from shared.contracts.resolutions_notices import (
    CoordinatorDigestNotice,
    FocalPersonErased,
    ResolutionCompletedNotice,
    ResolutionReminderNotice,
    ResolutionUpdatedNotice,
)
from shared.envelope import ReceivedEvent
from shared.runtime import ServiceRuntime
from shared.topics import (
    PAYMENTS_NOTICES,
    REGISTRATION,
    REGISTRATION_NOTICES,
    RESOLUTIONS,
    RESOLUTIONS_NOTICES,
)

NOTICES = (
    ParticipantRegisteredNotice,
    ParticipantWaitlistedNotice,
    WaitlistPromotedNotice,
    RegistrationApprovedNotice,
    RegistrationRejectedNotice,
    RegistrationUpdatedNotice,
    RegistrationCancelledNotice,
    ParticipantCheckedInNotice,
    ConfirmationResendRequestedNotice,
    RegistrationPaidNotice,  # payments (issue 14): paid, confirmed with the ticket
)
# Certificates and evaluation (issue 16).
NOTICES = (*NOTICES, CertificateIssuedNotice, EvaluationInvitedNotice)
# Retired (registration.v1, version 1): read until the topic's retention has passed.
LEGACY_REGISTRATION_EVENTS = (
    ParticipantRegistered,
    ParticipantWaitlisted,
    WaitlistPromoted,
    RegistrationApproved,
    RegistrationRejected,
    RegistrationUpdated,
    RegistrationCancelled,
    ParticipantCheckedIn,
    ConfirmationResendRequested,
)
CATALOGUE_EVENTS = (EventPublished, EventUpdated, EventCancelled)
# The focal persons' notices; and the retired version 1 of resolutions.v1, read until the
# topic's retention has passed.
RESOLUTION_EVENTS = (
    ResolutionUpdatedNotice,
    ResolutionCompletedNotice,
    # The focal persons' reminders and the coordinators' weekly digest.
    ResolutionReminderNotice,
    CoordinatorDigestNotice,
    ResolutionUpdated,
    ResolutionCompleted,
)

# The payers' notices of payments.notices.v1 (issue 14).
PAYMENT_NOTICES = (ControlNumberNotice, PaymentReminderNotice, PaymentReceiptNotice)


def register_consumers(runtime: ServiceRuntime, ctx: handlers.Context) -> None:
    """The notification consumer group on the notices, ``registration.v1`` and
    ``resolutions.v1``."""

    def bind(fn: Callable[[handlers.Context, ReceivedEvent], Awaitable[None]]):
        async def handler(received: ReceivedEvent) -> None:
            await fn(ctx, received)

        return handler

    table: dict[type, Callable[[ReceivedEvent], Awaitable[None]]] = {}
    for cls in (*NOTICES, *LEGACY_REGISTRATION_EVENTS):
        table[cls] = bind(handlers.record_registration_event)
    for cls in CATALOGUE_EVENTS:
        table[cls] = bind(handlers.record_catalogue_event)
    for cls in RESOLUTION_EVENTS:
        table[cls] = bind(handlers.record_resolution_event)
    table[PersonalDataErased] = bind(handlers.erase_personal_data)
    # institutions (issue 13 B): a contact person's sign-in link
    table[InstitutionSignInRequested] = bind(handlers.record_institution_sign_in)
    table[InstitutionContactErased] = bind(handlers.erase_institution_contact)
    # A focal person erased at resolutions (PDPA): their address leaves the delivery log.
    table[FocalPersonErased] = bind(handlers.erase_focal_person)
    # Payments (issue 14): the payers' notices.
    for cls in PAYMENT_NOTICES:
        table[cls] = bind(handlers.record_payment_notice)
    # Group bills (issue 14): payments acts on GroupBillRequested; the contact person's
    # message (the control number) comes from payments.notices.v1, so none here.
    from shared.contracts.registration_notices import GroupBillRequested

    async def no_message(received: ReceivedEvent) -> None:
        return None

    table[GroupBillRequested] = no_message

    # Batch mode (NOTIFICATION_CONSUMER_BATCH_MAX_RECORDS > 0, the default): the
    # registration events of a batch in bulk writes.
    async def registration_events(events: list[ReceivedEvent]) -> None:
        await handlers.record_registration_events(ctx, events)

    bulk: dict[type, Callable[[list[ReceivedEvent]], Awaitable[None]]] = {
        cls: registration_events for cls in (*NOTICES, *LEGACY_REGISTRATION_EVENTS)
    }
    runtime.add_consumer(
        group_id=ctx.settings.consumer_group,
        topics=[
            REGISTRATION_NOTICES,
            RESOLUTIONS_NOTICES,
            REGISTRATION,
            RESOLUTIONS,
            PAYMENTS_NOTICES,
        ],
        handlers=table,
        bulk_handlers=bulk,
        description="Records the emails and SMS each registration and resolution event calls "
        "for; keeps the participants' contact projection and the events' reminder schedule.",
    )
