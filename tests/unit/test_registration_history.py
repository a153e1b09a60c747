"""A registration's status history (issue 15): every status change, with who and why,
kept with the aggregate in the same write as the change; the first entry is in the
inserted document itself; erasure keeps the steps and drops reasons and the institution."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.registration import handlers
from services.registration.domain import TicketSigner, actor_of
from services.registration.store import registration_fields
from tests.unit.fakes.registration import FakeRegistrationStore
from tests.unit.test_registration_handlers import NOW, Clock, new_event, register


@pytest.fixture
def store() -> FakeRegistrationStore:
    return FakeRegistrationStore()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ctx(store: FakeRegistrationStore, clock: Clock) -> handlers.Context:
    return handlers.Context(
        store=store, signer=TicketSigner(b"k" * 32), notice_version="2025-01", clock=clock
    )


def steps(registration) -> list[tuple]:
    return [(e["action"], e["from"], e["to"], e["by"]) for e in registration.history_view()]


async def test_the_first_entry_is_in_the_inserted_document(ctx, store) -> None:
    event_id = await new_event(ctx)
    created = await register(ctx, event_id)
    stored = store.registrations[created.id]
    assert steps(stored) == [("created", None, "confirmed", "participant")]
    document = registration_fields(stored)
    assert document["history"] == [
        {
            "at": "2026-11-02T07:00:00.000000Z",
            "action": "created",
            "from": None,
            "to": "confirmed",
            "by": "participant",
        }
    ]


async def test_approve_then_check_in_in_order_with_the_staff_user(ctx, store, clock) -> None:
    event_id = await new_event(
        ctx,
        requires_approval=True,
        starts_at=NOW - timedelta(hours=1),
        ends_at=NOW + timedelta(days=2),
        registration_opens_at=NOW - timedelta(days=3),
    )
    pending = await register(ctx, event_id)
    await handlers.approve_registration(ctx, pending.id, by="jwt:staff:amina")
    clock.now = NOW + timedelta(minutes=5)
    ticket = ctx.signer.sign(pending.id)
    await handlers.check_in(ctx, ticket, by="staff:baraka")
    history = store.registrations[pending.id].history_view()
    assert [(e["action"], e["from"], e["to"], e["by"]) for e in history] == [
        ("created", None, "pending_approval", "participant"),
        ("approved", "pending_approval", "confirmed", "staff:amina"),
        ("checked_in", "confirmed", "confirmed", "staff:baraka"),
    ]
    assert history[2]["day"] == "2026-11-02" and history[2]["at"] > history[1]["at"]


async def test_rejection_and_cancellation_keep_their_reasons(ctx, store) -> None:
    event_id = await new_event(ctx, requires_approval=True)
    a = await register(ctx, event_id)
    b = await register(ctx, event_id)
    await handlers.reject_registration(ctx, a.id, "jwt:staff:amina", "Not an ICT officer")
    await handlers.cancel_registration(
        ctx, b.id, by="organiser", reason="Duplicate", actor="staff:amina"
    )
    (rejected,) = store.registrations[a.id].history_view()[1:]
    assert (rejected["action"], rejected["to"], rejected["reason"]) == (
        "rejected",
        "rejected",
        "Not an ICT officer",
    )
    (cancelled,) = store.registrations[b.id].history_view()[1:]
    assert (cancelled["from"], cancelled["to"], cancelled["by"], cancelled["reason"]) == (
        "pending_approval",
        "cancelled",
        "staff:amina",
        "Duplicate",
    )


async def test_a_cancellation_promotes_the_first_waiting_by_the_system(ctx, store) -> None:
    event_id = await new_event(ctx, capacity=1)
    first = await register(ctx, event_id)
    waiting = await register(ctx, event_id)
    await handlers.cancel_registration(ctx, first.id, by="participant")
    assert steps(store.registrations[first.id])[-1] == (
        "cancelled",
        "confirmed",
        "cancelled",
        "participant",
    )
    assert steps(store.registrations[waiting.id]) == [
        ("created", None, "waitlisted", "participant"),
        ("promoted", "waitlisted", "confirmed", "system"),
    ]


async def test_erasure_keeps_the_steps_without_reasons_or_the_institution(ctx, store) -> None:
    event_id = await new_event(ctx)
    created = await register(ctx, event_id)
    registration = store.registrations[created.id]
    registration.history = [
        *registration.history,
        {"at": "x", "action": "withdrawn", "from": "confirmed", "to": "cancelled",
         "by": "institution:MOF", "reason": "withdrawn by your institution, Wizara ya Fedha"},
    ]  # fmt: skip
    registration.erase("participant_request", NOW)
    assert [e.get("reason") for e in registration.history] == [None, None]
    assert registration.history[1]["by"] == "institution"
    assert registration.history[1]["action"] == "withdrawn"


def test_who_as_the_history_says_it() -> None:
    assert actor_of("jwt:staff:amina") == "staff:amina"
    assert actor_of("key-7") == "key-7"
    assert actor_of(None) == "system"


async def test_an_older_registration_tells_what_its_times_say(ctx, store) -> None:
    event_id = await new_event(ctx, requires_approval=True)
    pending = await register(ctx, event_id)
    await handlers.approve_registration(ctx, pending.id, by="key-1")
    old = store.registrations[pending.id]
    old.history = []  # made before the history was kept
    assert [e["action"] for e in old.history_view()] == ["created", "approved"]
