"""Registration's side of payments (issue 14), against the fake store: a paid category's
registration is pending_payment holding its seat; paid → confirmed with the ticket;
expired → cancelled (cause unpaid), the seat to the first waiting; cancelled before
paying frees the seat too."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.registration import handlers
from services.registration.domain import TicketSigner, payment_due_by
from tests.unit.fakes.registration import FakeRegistrationStore
from tests.unit.test_registration_categories import applicant, category, new_event
from tests.unit.test_registration_handlers import Clock

pytestmark = pytest.mark.asyncio


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store() -> FakeRegistrationStore:
    return FakeRegistrationStore()


@pytest.fixture
def ctx(store: FakeRegistrationStore, clock: Clock) -> handlers.Context:
    return handlers.Context(
        store=store, signer=TicketSigner(b"k" * 32), notice_version="2025-01", clock=clock
    )


async def test_a_paid_category_holds_the_seat_until_paid(ctx, store: FakeRegistrationStore) -> None:
    event_id = await new_event(ctx, capacity=1, categories=[category("ict", fee_tzs=400_000)])
    first = await handlers.register_participant(ctx, event_id, applicant("ict"))
    second = await handlers.register_participant(
        ctx, event_id, applicant("ict", email="b@example.go.tz", phone="+255712000002")
    )
    assert (first.status, second.status) == ("pending_payment", "waitlisted")
    notice = store.last("ParticipantRegisteredNotice")
    assert store.last("ParticipantRegistered")["status"] in ("pending_payment", "waitlisted")
    held = await store.get_registration(first.id)
    assert held.amount_due_tzs == 400_000 and held.payment_due_by is not None
    assert notice is not None
    # The bill's control number is noted; paying confirms with the ticket, once.
    await handlers.note_bill(ctx, [first.id], bill_id="b1", control_number="991", status="issued")
    assert (await store.get_registration(first.id)).payment["control_number"] == "991"
    assert await handlers.registration_paid(ctx, [first.id], bill_id="b1") == 1
    assert await handlers.registration_paid(ctx, [first.id], bill_id="b1") == 0
    paid = store.last("RegistrationPaidNotice")
    assert paid["status"] == "confirmed" and paid["ticket"]


async def test_an_expired_bill_releases_the_seat_to_the_first_waiting(ctx, store) -> None:
    event_id = await new_event(ctx, capacity=1, categories=[category("ict", fee_tzs=400_000)])
    first = await handlers.register_participant(ctx, event_id, applicant("ict"))
    second = await handlers.register_participant(
        ctx, event_id, applicant("ict", email="b@example.go.tz", phone="+255712000002")
    )
    assert await handlers.bill_expired(ctx, [first.id], bill_id="b1") == 1
    assert await handlers.bill_expired(ctx, [first.id], bill_id="b1") == 0  # re-delivered
    gone = await store.get_registration(first.id)
    assert (gone.status, gone.cancellation_cause) == ("cancelled", "unpaid")
    promoted = await store.get_registration(second.id)
    assert promoted.status == "pending_payment"  # its own bill next
    assert store.last("WaitlistPromotedNotice")["amount_due_tzs"] == 400_000
    assert store.last("RegistrationCancelled")["cause"] == "unpaid"


async def test_a_free_category_is_confirmed_as_before(ctx) -> None:
    event_id = await new_event(ctx, categories=[category("guest")])
    assert (
        await handlers.register_participant(ctx, event_id, applicant("guest"))
    ).status == "confirmed"


async def test_the_bill_never_outlives_the_event_start(ctx, clock, store) -> None:
    event_id = await new_event(ctx, categories=[category("ict", fee_tzs=1_000)])
    event = await store.get_event(event_id)
    clock.now = event.starts_at - timedelta(days=2)
    await handlers.register_participant(ctx, event_id, applicant("ict"))
    assert store.last("ParticipantRegisteredNotice")["payment_due_by"] is not None
    assert payment_due_by(event, clock.now) == event.starts_at


async def test_a_replaced_bill_told_cancelled_late_leaves_the_group_bill(ctx, store) -> None:
    # payments.v1 is keyed by bill: a group bill's control number may be noted before the
    # replaced single bill's BillCancelled arrives; the nominee keeps the group bill.
    event_id = await new_event(ctx, capacity=5, categories=[category("ict", fee_tzs=400_000)])
    reg = await handlers.register_participant(ctx, event_id, applicant("ict"))
    await handlers.note_bill(ctx, [reg.id], bill_id="single", control_number="991", status="issued")
    await handlers.note_bill(ctx, [reg.id], bill_id="group", control_number="992", status="issued")
    await handlers.note_bill(ctx, [reg.id], bill_id="single", status="cancelled")
    payment = (await store.get_registration(reg.id)).payment
    assert (payment["bill_id"], payment["control_number"], payment["status"]) == (
        "group",
        "992",
        "issued",
    )
    # Its own bill told cancelled (the registration cancelled) still shows.
    await handlers.note_bill(ctx, [reg.id], bill_id="group", status="cancelled")
    assert (await store.get_registration(reg.id)).payment["status"] == "cancelled"
