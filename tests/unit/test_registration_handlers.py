"""Every registration use case against the in-memory store, with a fixed clock.

What is asserted is what a user or a consumer of the stream would see: the status of a
registration, the events saved with it (and their fields), the error codes.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from services.registration import demo, handlers, workers
from services.registration.domain import (
    DomainError,
    EventChange,
    EventSpec,
    LinkSigner,
    RegistrationChange,
    RegistrationRequest,
    TicketSigner,
    self_service_path,
)
from shared.topics import REGISTRATION_NOTICES
from tests.unit.fakes.registration import FakeRegistrationStore

NOW = datetime(2026, 11, 2, 7, 0, tzinfo=UTC)  # a Monday, 10:00 in Arusha


class Clock:
    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


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


_counter = iter(range(1, 1_000_000))


def spec(**overrides: Any) -> EventSpec:
    n = next(_counter)
    values: dict[str, Any] = {
        "id": f"event-{n}",
        "code": f"EV{n}",
        "title_sw": "Semina ya Serikali Mtandao",
        "title_en": "e-Government Seminar",
        "venue": "AICC",
        "city": "Arusha",
        "starts_at": NOW + timedelta(days=30),
        "ends_at": NOW + timedelta(days=32),
        "capacity": 100,
        "registration_opens_at": NOW - timedelta(days=1),
        "state": "published",
    }
    values.update(overrides)
    return EventSpec.model_validate(values)


def person(**overrides: Any) -> RegistrationRequest:
    n = next(_counter)
    body: dict[str, Any] = {
        "full_name": "Asha Juma Mwinyi",
        "email": f"asha.{n}@example.go.tz",
        "phone": f"0712{n:06d}",
        "institution": "e-Government Authority",
        "position": "ICT Officer",
        "cadre": "ict_officer",
        "language": "sw",
        "consent": {"accepted": True},
    }
    body.update(overrides)
    return RegistrationRequest.model_validate(body)


async def new_event(ctx: handlers.Context, **overrides: Any) -> str:
    return (await handlers.create_event(ctx, spec(**overrides))).id


async def register(ctx: handlers.Context, event_id: str, **overrides: Any) -> handlers.Registered:
    return await handlers.register_participant(ctx, event_id, person(**overrides))


async def status(ctx: handlers.Context, registration_id: str) -> str:
    found = await ctx.store.get_registration(registration_id)
    assert found is not None
    return found.status


async def seats(ctx: handlers.Context, event_id: str) -> int:
    event = await ctx.store.get_event(event_id)
    assert event is not None
    return event.seats_taken


async def refused(code: str, call: Any) -> DomainError:
    with pytest.raises(DomainError) as err:
        await call
    assert err.value.code == code, err.value.message
    return err.value


# -- events catalogue ------------------------------------------------------------------------


async def test_a_published_event_is_announced_and_a_draft_is_not(ctx, store) -> None:
    published = await handlers.create_event(ctx, spec(capacity=7))
    assert store.types(published.id) == ["EventPublished"]
    data = store.last("EventPublished")
    assert data["capacity"] == 7 and data["state"] == "published"
    assert data["event"]["event_id"] == published.id and data["event"]["venue"] == "AICC"
    assert ("events", published.id) in store.written
    draft = await handlers.create_event(ctx, spec(state="draft"))
    assert store.types(draft.id) == []
    assert draft.created_at == draft.updated_at == "2026-11-02T07:00:00.000000Z"


async def test_an_event_id_or_code_is_taken_once(ctx) -> None:
    first = await handlers.create_event(ctx, spec())
    await refused("event_exists", handlers.create_event(ctx, spec(id=first.id)))
    await refused("event_exists", handlers.create_event(ctx, spec(code=first.code)))


async def test_the_public_sees_published_events_not_drafts(ctx) -> None:
    later = await new_event(ctx, starts_at=NOW + timedelta(days=60), ends_at=NOW + timedelta(61))
    sooner = await new_event(ctx)
    draft = await new_event(ctx, state="draft")
    assert [e.id for e in await handlers.list_events(ctx)] == [sooner, later]
    event = await handlers.get_public_event(ctx, sooner)
    assert event.registration_open(NOW) and event.seats_left == 100
    await refused("event_not_found", handlers.get_public_event(ctx, draft))
    await refused("event_not_found", handlers.get_public_event(ctx, "no-such-event"))


async def test_publishing_a_draft_and_editing_are_announced(ctx, store) -> None:
    event_id = await new_event(ctx, state="draft")
    published = await handlers.update_event(ctx, event_id, EventChange(state="published"))
    assert published.state == "published" and store.types(event_id) == ["EventPublished"]
    await handlers.update_event(ctx, event_id, EventChange(venue="JNICC", title_en="Seminar"))
    assert store.types(event_id)[-1] == "EventUpdated"
    assert store.last("EventUpdated")["changed_fields"] == ["title_en", "venue"]
    assert store.last("EventUpdated")["event"]["venue"] == "JNICC"
    # The same values again change nothing and announce nothing.
    same = await handlers.update_event(ctx, event_id, EventChange(venue="JNICC"))
    assert same.venue == "JNICC" and len(store.types(event_id)) == 2


async def test_event_changes_are_checked(ctx) -> None:
    event_id = await new_event(ctx, capacity=2)
    await register(ctx, event_id)
    await register(ctx, event_id)
    await refused(
        "capacity_below_confirmed", handlers.update_event(ctx, event_id, EventChange(capacity=1))
    )
    await refused(
        "invalid_dates",
        handlers.update_event(ctx, event_id, EventChange(ends_at=NOW - timedelta(days=1))),
    )
    await refused(
        "invalid_dates",
        handlers.update_event(
            ctx, event_id, EventChange(registration_closes_at=NOW - timedelta(days=2))
        ),
    )
    await refused(
        "invalid_state_change", handlers.update_event(ctx, event_id, EventChange(state="draft"))
    )
    other = await handlers.create_event(ctx, spec())
    await refused(
        "event_code_taken", handlers.update_event(ctx, event_id, EventChange(code=other.code))
    )
    await refused("event_not_found", handlers.update_event(ctx, "no-such", EventChange(capacity=3)))


async def test_a_capacity_raise_promotes_the_waiting_into_the_new_seats(ctx, store) -> None:
    event_id = await new_event(ctx, capacity=1)
    people = [await register(ctx, event_id) for _ in range(4)]
    event = await handlers.update_event(ctx, event_id, EventChange(capacity=3))
    assert event.capacity == 3 and event.seats_taken == 3
    assert [await status(ctx, p.id) for p in people] == ["confirmed"] * 3 + ["waitlisted"]
    assert store.last("EventUpdated")["changed_fields"] == ["capacity"]
    assert store.types(people[1].id)[-1] == "WaitlistPromoted"


async def test_lowering_the_capacity_under_seats_taken_meanwhile_is_refused(ctx, store) -> None:
    event_id = await new_event(ctx, capacity=3)
    await register(ctx, event_id)
    taken = []

    def someone_registers(aggregate_id: str) -> None:
        if aggregate_id == event_id and not taken:  # a seat goes while the change is decided
            taken.append(True)
            store.events[event_id].seats_taken += 1

    store.before_save = someone_registers
    await refused(
        "capacity_below_confirmed", handlers.update_event(ctx, event_id, EventChange(capacity=1))
    )
    assert (await ctx.store.get_event(event_id)).capacity == 3


async def test_cancelling_an_event_cancels_every_active_registration(ctx, store) -> None:
    event_id = await new_event(ctx, capacity=1)
    people = [await register(ctx, event_id) for _ in range(2)]
    cancelled = await handlers.update_event(
        ctx, event_id, EventChange(state="cancelled", cancellation_reason="Venue unavailable")
    )
    assert cancelled.state == "cancelled"
    assert store.last("EventCancelled")["reason"] == "Venue unavailable"
    for p in people:
        assert await status(ctx, p.id) == "cancelled"
        assert store.types(p.id)[-1] == "RegistrationCancelled"
    assert store.last("RegistrationCancelled")["cancelled_by"] == "organiser"
    assert store.last("RegistrationCancelledNotice")["reason"] == "Venue unavailable"
    await refused(
        "invalid_state_change",
        handlers.update_event(ctx, event_id, EventChange(state="published")),
    )
    await refused("event_cancelled", register(ctx, event_id))


# -- registering -----------------------------------------------------------------------------


async def test_registration_is_confirmed_while_seats_last_then_waitlisted(ctx, store) -> None:
    event_id = await new_event(ctx, capacity=2)
    people = [await register(ctx, event_id) for _ in range(4)]
    assert [p.status for p in people] == ["confirmed", "confirmed", "waitlisted", "waitlisted"]
    assert [p.waitlist_position for p in people] == [None, None, 1, 2]
    assert await seats(ctx, event_id) == 2
    assert store.types(people[0].id) == ["ParticipantRegistered"]
    assert store.types(people[2].id) == ["ParticipantRegistered", "ParticipantWaitlisted"]
    assert store.notices(people[2].id) == [
        "ParticipantRegisteredNotice",
        "ParticipantWaitlistedNotice",
    ]
    first = next(m.data for m in store.outbox if m.key == people[0].id)
    assert first["status"] == "confirmed" and "ticket" not in first
    assert first["registered_at"].startswith("2026-11-02T07:00:00")
    assert first["participant"] == {
        "institution": "e-Government Authority",
        "cadre": "ict_officer",
        "language": "sw",
        "category": "ict_officer",
        "institution_code": None,
    }
    assert first["event"]["event_id"] == event_id
    notice = next(m.data for m in store.outbox if m.key == people[0].id and "ticket" in m.data)
    assert ctx.signer.verify(notice["ticket"]) == people[0].id
    assert notice["participant"]["phone"].startswith("+255")
    waiting = store.last("ParticipantWaitlisted")
    assert waiting["waitlist_position"] == 2 and waiting["status"] == "waitlisted"
    assert ("registrations", people[3].id) in store.written
    stored = await ctx.store.get_registration(people[0].id)
    assert stored.consent["notice_version"] == "2025-01"
    assert stored.consent["given_at"] == "2026-11-02T07:00:00.000000Z"
    assert stored.reference == people[0].reference and stored.token_matches(people[0].manage_token)


async def test_capacity_holds_under_concurrent_registrations(ctx) -> None:
    event_id = await new_event(ctx, capacity=10)
    results = await asyncio.gather(*(register(ctx, event_id) for _ in range(60)))
    assert sum(r.status == "confirmed" for r in results) == 10
    assert sorted(r.waitlist_position for r in results if r.waitlist_position) == list(range(1, 51))
    assert await seats(ctx, event_id) == 10 == await ctx.store.count_confirmed(event_id)


async def test_nominations_wait_for_approval_without_a_seat(ctx, store) -> None:
    event_id = await new_event(ctx, capacity=1, requires_approval=True)
    created = await register(ctx, event_id)
    assert created.status == "pending_approval" and await seats(ctx, event_id) == 0
    registered = store.last("ParticipantRegistered")
    assert registered["status"] == "pending_approval" and "ticket" not in registered
    assert store.last("ParticipantRegisteredNotice")["ticket"] is None


async def test_a_second_registration_with_the_same_email_resends_and_gives_the_seat_back(
    ctx, store
) -> None:
    event_id = await new_event(ctx, capacity=2)
    first = await register(ctx, event_id, email="baraka@example.go.tz")
    error = await refused(
        "already_registered", register(ctx, event_id, email="Baraka@example.go.tz")
    )
    assert "sent the confirmation again" in error.message
    assert await seats(ctx, event_id) == 1  # the seat the duplicate took went back
    assert store.types(first.id) == ["ParticipantRegistered"]  # nothing public changed
    assert store.notices(first.id) == [
        "ParticipantRegisteredNotice",
        "ConfirmationResendRequestedNotice",
    ]
    resend = store.last("ConfirmationResendRequestedNotice")
    assert resend["participant"]["email"] == "baraka@example.go.tz"
    assert resend["ticket"] == ctx.signer.sign(first.id)
    assert len(store.registrations) == 1


async def test_registration_rules_refuse(ctx, clock) -> None:
    await refused("event_not_found", register(ctx, "no-such-event"))
    draft = await new_event(ctx, state="draft")
    await refused("registration_closed", register(ctx, draft))
    later = await new_event(ctx, registration_opens_at=NOW + timedelta(days=1))
    await refused("registration_closed", register(ctx, later))
    closed = await new_event(ctx, registration_closes_at=NOW - timedelta(hours=1))
    await refused("registration_closed", register(ctx, closed))
    heads = await new_event(ctx, admitted_cadres=["permanent_secretary"])
    await refused("cadre_not_admitted", register(ctx, heads))
    assert (await register(ctx, heads, cadre="permanent_secretary")).status == "confirmed"
    clock.now = NOW + timedelta(days=2)
    assert (await register(ctx, later)).status == "confirmed"


async def test_an_event_that_has_ended_or_closed_its_window_is_never_open(ctx, clock) -> None:
    ended = await new_event(
        ctx, starts_at=NOW - timedelta(days=3), ends_at=NOW - timedelta(hours=1)
    )  # no registration_closes_at: the end of the event closes it
    error = await refused("event_ended", register(ctx, ended))
    assert error.message == "This event has ended."
    assert not (await handlers.get_public_event(ctx, ended)).registration_open(clock.now)
    late_window = await new_event(
        ctx,
        starts_at=NOW - timedelta(days=3),
        ends_at=NOW - timedelta(hours=1),
        registration_closes_at=NOW + timedelta(days=5),  # a window past the end
    )
    await refused("event_ended", register(ctx, late_window))
    closed = await new_event(ctx, registration_closes_at=NOW - timedelta(minutes=1))
    await refused("registration_closed", register(ctx, closed))
    assert not (await handlers.get_public_event(ctx, closed)).registration_open(clock.now)
    running = await new_event(ctx, starts_at=NOW - timedelta(hours=2))  # walk-ins welcome
    assert (await handlers.get_public_event(ctx, running)).registration_open(clock.now)
    assert (await register(ctx, running)).status == "confirmed"


async def test_an_attempt_is_admitted_only_where_it_can_succeed(ctx, store) -> None:
    """The per-email limit (``admit``) counts only attempts at an event that exists and
    takes the registration now: attempts at no event cannot lock a person out."""
    admitted: list[str] = []

    async def admit() -> None:
        admitted.append("attempt")

    async def attempt(event_id: str, **overrides: Any) -> handlers.RegistrationOutcome:
        return await handlers.register_idempotently(
            ctx, event_id, person(email="rehema@example.go.tz", **overrides), admit=admit
        )

    for _ in range(10):
        assert (await attempt("no-such-event")).error.code == "event_not_found"
    closed = await new_event(ctx, registration_closes_at=NOW - timedelta(hours=1))
    ended = await new_event(
        ctx, starts_at=NOW - timedelta(days=2), ends_at=NOW - timedelta(hours=1)
    )
    heads = await new_event(ctx, admitted_cadres=["permanent_secretary"])
    assert (await attempt(closed)).error.code == "registration_closed"
    assert (await attempt(ended)).error.code == "event_ended"
    assert (await attempt(heads)).error.code == "cadre_not_admitted"
    assert admitted == []
    open_event = await new_event(ctx)
    assert (await attempt(open_event)).registered is not None
    assert (await attempt(open_event)).error.code == "already_registered"
    assert admitted == ["attempt", "attempt"]

    async def refuse() -> None:
        raise RuntimeError("over the limit")

    before = len(store.registrations)
    with pytest.raises(RuntimeError):
        await handlers.register_idempotently(ctx, open_event, person(), "key-1", admit=refuse)
    assert len(store.registrations) == before and await seats(ctx, open_event) == 1
    assert "key-1" not in str(store.idempotency)  # the key is released for a retry


async def test_resends_are_spaced_whoever_asks(ctx, store, clock) -> None:
    """Attempts with someone's email (from any number of addresses) resend their
    confirmation at most once per ten minutes: their mailbox cannot be flooded."""
    event_id = await new_event(ctx)
    first = await register(ctx, event_id, email="neema@example.go.tz")
    for _ in range(5):
        await refused("already_registered", register(ctx, event_id, email="neema@example.go.tz"))
    assert store.notices(first.id).count("ConfirmationResendRequestedNotice") == 1
    clock.now = NOW + timedelta(minutes=9, seconds=59)
    await handlers.request_resend(ctx, event_id, "neema@example.go.tz")
    assert store.notices(first.id).count("ConfirmationResendRequestedNotice") == 1
    clock.now = NOW + timedelta(minutes=10)
    await refused("already_registered", register(ctx, event_id, email="neema@example.go.tz"))
    assert store.notices(first.id).count("ConfirmationResendRequestedNotice") == 2
    stored = await ctx.store.get_registration(first.id)
    assert stored.resend_requested_at == "2026-11-02T07:10:00.000000Z"


async def test_resend_on_request(ctx, store) -> None:
    event_id = await new_event(ctx, capacity=1)
    confirmed = await register(ctx, event_id, email="a@example.go.tz")
    waitlisted = await register(ctx, event_id, email="b@example.go.tz")
    await handlers.request_resend(ctx, event_id, "a@example.go.tz")
    resend = store.last("ConfirmationResendRequestedNotice")
    assert resend["ticket"] == ctx.signer.sign(confirmed.id)
    await handlers.request_resend(ctx, event_id, "b@example.go.tz")
    data = store.last("ConfirmationResendRequestedNotice")
    assert data["registration_id"] == waitlisted.id and data["ticket"] is None
    assert data["status"] == "waitlisted"
    before = len(store.outbox)
    await handlers.request_resend(ctx, event_id, "nobody@example.go.tz")
    assert len(store.outbox) == before


# -- the Idempotency-Key protocol ------------------------------------------------------------


async def test_without_a_key_it_is_the_plain_registration(ctx) -> None:
    event_id = await new_event(ctx)
    outcome = await handlers.register_idempotently(ctx, event_id, person())
    assert outcome.registered and outcome.registered.status == "confirmed"
    assert not outcome.replayed and outcome.error is None
    refused_ = await handlers.register_idempotently(ctx, "no-such", person())
    assert refused_.error.code == "event_not_found" and not refused_.replayed


async def test_a_retry_with_the_key_gets_the_first_answer_with_a_fresh_token(ctx, store) -> None:
    event_id = await new_event(ctx)
    body = person()
    first = await handlers.register_idempotently(ctx, event_id, body, "key-1")
    again = await handlers.register_idempotently(ctx, event_id, body, "key-1")
    assert first.registered and again.registered and again.replayed and not first.replayed
    assert (again.registered.id, again.registered.reference, again.registered.status) == (
        first.registered.id,
        first.registered.reference,
        "confirmed",
    )
    assert again.registered.manage_token != first.registered.manage_token
    assert len(store.registrations) == 1
    assert store.types(first.registered.id) == ["ParticipantRegistered"]  # nothing new
    found = await handlers.find_own_registration(
        ctx, first.registered.reference, again.registered.manage_token
    )
    assert found.id == first.registered.id
    await refused(
        "registration_not_found",
        handlers.find_own_registration(
            ctx, first.registered.reference, first.registered.manage_token
        ),
    )
    # The key is scoped to the event: another event's key of the same name is new.
    other = await new_event(ctx)
    elsewhere = await handlers.register_idempotently(ctx, other, body, "key-1")
    assert elsewhere.registered and not elsewhere.replayed


async def test_a_key_used_with_another_body_is_refused(ctx) -> None:
    event_id = await new_event(ctx)
    await handlers.register_idempotently(ctx, event_id, person(), "key-2")
    error = await refused(
        "idempotency_key_reused",
        handlers.register_idempotently(ctx, event_id, person(), "key-2"),
    )
    assert error.field == "Idempotency-Key"


async def test_a_refusal_is_the_first_answer_too(ctx) -> None:
    event_id = await new_event(ctx, admitted_cadres=["permanent_secretary"])
    body = person()
    first = await handlers.register_idempotently(ctx, event_id, body, "key-3")
    again = await handlers.register_idempotently(ctx, event_id, body, "key-3")
    assert first.error.code == again.error.code == "cadre_not_admitted"
    assert again.replayed and again.error.message == first.error.message


async def test_a_retry_while_the_first_runs_is_told_so(ctx, store) -> None:
    event_id = await new_event(ctx)
    body = person()
    key = f"{event_id}:key-4"
    fingerprint = handlers.request_fingerprint(event_id, body.model_dump(mode="json"))
    await store.claim_idempotency_key(key, fingerprint, "2026-11-02T07:00:00.000000Z")
    await refused(
        "request_in_progress", handlers.register_idempotently(ctx, event_id, body, "key-4")
    )
    assert store.registrations == {}


async def test_an_abandoned_claim_is_taken_over(ctx, store) -> None:
    event_id = await new_event(ctx)
    # 1. The first attempt stored its registration, then died before answering.
    body = person()
    first = await handlers.register_idempotently(ctx, event_id, body, "stored")
    record = store.idempotency[f"{event_id}:stored"]
    record.update(state="pending", claimed_at=record["claimed_at"] - 120)
    record.pop("outcome")
    retry = await handlers.register_idempotently(ctx, event_id, body, "stored")
    assert retry.replayed and retry.registered.id == first.registered.id
    assert store.idempotency[f"{event_id}:stored"]["state"] == "done"
    # 2. It died before storing anything: the retry registers now.
    lost = person()
    await store.claim_idempotency_key(
        f"{event_id}:lost",
        handlers.request_fingerprint(event_id, lost.model_dump(mode="json")),
        "2026-11-02T07:00:00.000000Z",
    )
    store.idempotency[f"{event_id}:lost"]["claimed_at"] -= 120
    retry = await handlers.register_idempotently(ctx, event_id, lost, "lost")
    assert retry.registered and not retry.replayed
    assert len(store.registrations) == 2


async def test_a_failure_midway_releases_the_key(ctx, store) -> None:
    event_id = await new_event(ctx)

    async def broken(_registration: Any) -> str:
        raise ConnectionError("MongoDB went away")

    store.add_registration = broken  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        await handlers.register_idempotently(ctx, event_id, person(), "key-5")
    assert f"{event_id}:key-5" not in store.idempotency


# -- waiting list, cancelling, seats ---------------------------------------------------------


async def test_a_cancellation_promotes_exactly_the_first_waitlisted(ctx, store) -> None:
    event_id = await new_event(ctx, capacity=2)
    people = [await register(ctx, event_id) for _ in range(5)]
    cancelled = await handlers.cancel_registration(ctx, people[0].id, by="participant")
    assert cancelled.status == "cancelled" and cancelled.cancelled_by == "participant"
    assert [await status(ctx, p.id) for p in people] == [
        "cancelled",
        "confirmed",
        "confirmed",
        "waitlisted",
        "waitlisted",
    ]
    promoted = store.last("WaitlistPromoted")
    assert promoted["registration_id"] == people[2].id and promoted["status"] == "confirmed"
    assert ctx.signer.verify(store.last("WaitlistPromotedNotice")["ticket"]) == people[2].id
    assert (await ctx.store.get_registration(people[2].id)).waitlist_position is None
    assert await seats(ctx, event_id) == 2
    await refused(
        "registration_cancelled",
        handlers.cancel_registration(ctx, people[0].id, by="participant"),
    )


async def test_cancelling_a_waitlisted_one_frees_no_seat(ctx) -> None:
    event_id = await new_event(ctx, capacity=1)
    people = [await register(ctx, event_id) for _ in range(3)]
    await handlers.cancel_registration(ctx, people[1].id, by="participant")
    assert [await status(ctx, p.id) for p in people] == ["confirmed", "cancelled", "waitlisted"]
    assert await seats(ctx, event_id) == 1


async def test_organisers_cancel_with_a_reason_within_their_event(ctx, store) -> None:
    event_id = await new_event(ctx)
    other = await new_event(ctx)
    created = await register(ctx, event_id)
    await refused(
        "registration_not_found",
        handlers.cancel_registration(
            ctx, created.id, by="organiser", reason="Duplicate", event_id=other
        ),
    )
    await handlers.cancel_registration(
        ctx, created.id, by="organiser", reason="Duplicate", event_id=event_id
    )
    data = store.last("RegistrationCancelled")
    assert "reason" not in data and data["cancelled_by"] == "organiser"
    assert store.last("RegistrationCancelledNotice")["reason"] == "Duplicate"
    await refused(
        "registration_not_found", handlers.cancel_registration(ctx, "nobody", by="organiser")
    )


async def test_concurrent_cancellations_promote_exactly_as_many(ctx) -> None:
    event_id = await new_event(ctx, capacity=4)
    people = [await register(ctx, event_id) for _ in range(10)]
    await asyncio.gather(
        *(handlers.cancel_registration(ctx, p.id, by="participant") for p in people[:3])
    )
    statuses = [await status(ctx, p.id) for p in people]
    assert statuses == ["cancelled"] * 3 + ["confirmed"] * 4 + ["waitlisted"] * 3
    assert await seats(ctx, event_id) == 4


async def test_a_save_that_loses_a_race_reads_again(ctx, store) -> None:
    event_id = await new_event(ctx)
    created = await register(ctx, event_id)
    raced = []

    def concurrent_writer(aggregate_id: str) -> None:
        if aggregate_id == created.id and not raced:
            raced.append(True)
            store.registrations[created.id].rev += 1  # someone else wrote first

    store.before_save = concurrent_writer
    await handlers.cancel_registration(ctx, created.id, by="participant")
    assert raced and await status(ctx, created.id) == "cancelled"
    assert store.types(created.id).count("RegistrationCancelled") == 1


async def test_reconcile_repairs_a_leaked_seat_and_fills_it(ctx, store) -> None:
    event_id = await new_event(ctx, capacity=3)
    people = [await register(ctx, event_id) for _ in range(4)]
    store.events[event_id].seats_taken += 1  # a crash between the seat and the insert
    await handlers.cancel_registration(ctx, people[0].id, by="participant")
    assert await status(ctx, people[3].id) == "waitlisted"  # the freed seat was not free
    result = await handlers.reconcile_seats(ctx, event_id, settle_s=0)
    assert result == {"seats_taken_before": 3, "recounted": 2, "seats_taken": 3, "promoted": 1}
    assert await status(ctx, people[3].id) == "confirmed"
    assert await seats(ctx, event_id) == 3 == await ctx.store.count_confirmed(event_id)
    in_order = await handlers.reconcile_seats(ctx, event_id, settle_s=0)
    assert in_order["seats_taken_before"] == in_order["recounted"] == 3
    await refused("event_not_found", handlers.reconcile_seats(ctx, "no-such", settle_s=0))


async def test_reconcile_all_repairs_every_open_event(ctx, store) -> None:
    broken = await new_event(ctx, capacity=2)
    fine = await new_event(ctx, capacity=2)
    draft = await new_event(ctx, state="draft")
    people = [await register(ctx, broken) for _ in range(2)]
    await register(ctx, fine)
    store.registrations[people[0].id].status = "cancelled"  # the seat was never released
    store.events[draft].seats_taken = 5  # drafts take no registrations: left alone
    waiting = await register(ctx, broken)
    assert waiting.status == "waitlisted"
    assert await handlers.reconcile_all(ctx) == 1
    assert await status(ctx, waiting.id) == "confirmed"
    assert await seats(ctx, broken) == 2 and await seats(ctx, fine) == 1
    assert await seats(ctx, draft) == 5


# -- approval --------------------------------------------------------------------------------


async def test_approval_confirms_or_waitlists_by_capacity(ctx, store) -> None:
    event_id = await new_event(ctx, capacity=1, requires_approval=True)
    a, b, c = [await register(ctx, event_id) for _ in range(3)]
    first = await handlers.approve_registration(ctx, a.id, by="organiser-1")
    assert first.status == "confirmed" and first.approved_by == "organiser-1"
    approved = store.last("RegistrationApprovedNotice")
    assert approved["ticket"] == ctx.signer.sign(a.id)
    assert not {"ticket", "approved_by"} & set(store.last("RegistrationApproved"))
    second = await handlers.approve_registration(ctx, b.id, by="organiser-1")
    assert second.status == "waitlisted" and second.waitlist_position == 1
    assert store.types(b.id)[-2:] == ["RegistrationApproved", "ParticipantWaitlisted"]
    assert store.last("RegistrationApprovedNotice")["ticket"] is None
    assert await seats(ctx, event_id) == 1
    third = await handlers.reject_registration(ctx, c.id, "organiser-1", "Not nominated")
    assert third.status == "rejected" and third.rejection_reason == "Not nominated"
    assert store.last("RegistrationRejectedNotice")["reason"] == "Not nominated"
    assert "reason" not in store.last("RegistrationRejected")
    await refused("not_pending_approval", handlers.approve_registration(ctx, c.id, by="o"))
    await refused("not_pending_approval", handlers.reject_registration(ctx, a.id, "o", "No"))
    await refused("registration_not_found", handlers.approve_registration(ctx, "x", by="o"))


async def test_an_approval_that_loses_a_race_gives_its_seat_back(ctx, store) -> None:
    event_id = await new_event(ctx, capacity=5, requires_approval=True)
    a = await register(ctx, event_id)
    results = await asyncio.gather(
        *(handlers.approve_registration(ctx, a.id, by="o") for _ in range(4)),
        return_exceptions=True,
    )
    assert sum(1 for r in results if not isinstance(r, Exception)) == 1
    assert all(not isinstance(r, Exception) or r.code == "not_pending_approval" for r in results)
    assert await seats(ctx, event_id) == 1


async def test_no_approval_for_a_cancelled_event(ctx, store) -> None:
    event_id = await new_event(ctx, requires_approval=True)
    a = await register(ctx, event_id)
    store.events[event_id].state = "cancelled"
    await refused("event_cancelled", handlers.approve_registration(ctx, a.id, by="o"))
    assert await seats(ctx, event_id) == 0


# -- organisers' views -----------------------------------------------------------------------


async def test_lists_pages_exports_and_statistics(ctx, clock) -> None:
    event_id = await new_event(ctx, capacity=3)
    for i in range(5):
        clock.now = NOW + timedelta(seconds=i)
        await register(
            ctx,
            event_id,
            full_name=f"Mshiriki Namba {i}",
            institution="TRA" if i % 2 else "e-GA",
            region="Arusha" if i < 2 else None,
        )
    pages, cursor = [], None
    while True:
        page = await handlers.registrations_page(ctx, event_id, {}, cursor, 2)
        if not page:
            break
        pages.append([r.full_name for r in page])
        cursor = (page[-1].created_us, page[-1].id)
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [n for p in pages for n in p] == [f"Mshiriki Namba {i}" for i in range(5)]
    hits = await handlers.registrations_page(ctx, event_id, {"q": "namba 3"}, None, 10)
    assert [r.full_name for r in hits] == ["Mshiriki Namba 3"]
    waiting = await handlers.registrations_page(ctx, event_id, {"status": "waitlisted"}, None, 9)
    assert len(waiting) == 2
    rows = [r async for r in await handlers.export_registrations(ctx, event_id, {"q": "TRA"})]
    assert [r.institution for r in rows] == ["TRA", "TRA"]
    stats = await handlers.event_statistics(ctx, event_id)
    assert stats["capacity"] == 3 and stats["seats_taken"] == 3
    assert stats["by_status"] == {"confirmed": 3, "waitlisted": 2}
    assert stats["by_institution"] == {"e-GA": 3, "TRA": 2}
    assert stats["by_region"] == {"unspecified": 3, "Arusha": 2}
    for call in (
        handlers.registrations_page(ctx, "no-such", {}, None, 2),
        handlers.export_registrations(ctx, "no-such", {}),
        handlers.event_statistics(ctx, "no-such"),
    ):
        await refused("event_not_found", call)


# -- self-service ----------------------------------------------------------------------------


async def test_participants_find_their_registration_only_with_its_token(ctx) -> None:
    event_id = await new_event(ctx)
    created = await register(ctx, event_id)
    found = await handlers.find_own_registration(
        ctx, f"  {created.reference.lower()} ", created.manage_token
    )
    assert found.id == created.id
    for reference, token in (
        (created.reference, "wrong-token"),
        ("MK-22222-22222", created.manage_token),
        (created.reference, ""),
    ):
        await refused(
            "registration_not_found", handlers.find_own_registration(ctx, reference, token)
        )


async def test_a_self_service_link_opens_its_registration_and_nobody_elses(
    ctx, store, clock
) -> None:
    event_id = await new_event(ctx)  # ends NOW + 32 days
    mine, other = await register(ctx, event_id), await register(ctx, event_id)
    link = await handlers.issue_self_service_link(ctx, mine.id)
    assert re.fullmatch(r"[A-Za-z0-9_-]{48}", link)
    assert self_service_path(link) == f"/my/{link}"
    assert (await handlers.open_self_service_link(ctx, link)).registration.id == mine.id
    assert (
        await handlers.open_self_service_link(
            ctx, await handlers.issue_self_service_link(ctx, other.id)
        )
    ).registration.id == other.id
    # Every single-character alteration opens nothing (the same refusal as unknown).
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_="
    for i in range(len(link)):
        for c in alphabet:
            if c != link[i]:
                altered = link[:i] + c + link[i + 1 :]
                await refused(
                    "registration_not_found", handlers.open_self_service_link(ctx, altered)
                )
    for wrong in ("", "x" * 48, link + "=", link[:-1], ctx.signer.sign(mine.id)):
        await refused("registration_not_found", handlers.open_self_service_link(ctx, wrong))
    # Another key (another deployment) opens nothing either.
    foreign = handlers.Context(
        store=store, signer=ctx.signer, notice_version="x", clock=clock, links=LinkSigner(b"o" * 32)
    )
    await refused("registration_not_found", handlers.open_self_service_link(foreign, link))
    # Valid until 30 days after the event ends, not a second longer.
    clock.now = NOW + timedelta(days=32 + 30) - timedelta(seconds=1)
    assert (await handlers.open_self_service_link(ctx, link)).registration.id == mine.id
    clock.now = NOW + timedelta(days=32 + 30)
    await refused("registration_not_found", handlers.open_self_service_link(ctx, link))
    # The page's sign-in (reference and token) gives a short link; an erased registration
    # opens nowhere.
    clock.now = NOW
    await refused(
        "registration_not_found",
        handlers.sign_in_self_service(ctx, mine.reference, "wrong", valid_for=timedelta(hours=1)),
    )
    short = await handlers.sign_in_self_service(
        ctx, mine.reference, mine.manage_token, valid_for=timedelta(hours=1)
    )
    assert (await handlers.open_self_service_link(ctx, short)).event.id == event_id
    clock.now = NOW + timedelta(hours=1)
    await refused("registration_not_found", handlers.open_self_service_link(ctx, short))
    clock.now = NOW
    await handlers.erase_registration(ctx, mine.id, reason="participant_request")
    await refused("registration_not_found", handlers.open_self_service_link(ctx, link))
    await refused("registration_not_found", handlers.issue_self_service_link(ctx, mine.id))
    await refused("registration_not_found", handlers.issue_self_service_link(ctx, "nobody"))


def test_form_tokens_are_tied_to_their_link() -> None:
    links = LinkSigner(b"k" * 32)
    token = links.form_token("link-a")
    assert links.form_token_matches("link-a", token)
    assert not links.form_token_matches("link-b", token)
    assert not links.form_token_matches("link-a", None)
    assert not links.form_token_matches("link-a", "ñ" * len(token))  # not ASCII: refused
    assert not LinkSigner(b"j" * 32).form_token_matches("link-a", token)


async def test_participants_update_their_own_details(ctx, store, clock) -> None:
    event_id = await new_event(ctx)
    created = await register(ctx, event_id)
    clock.now = NOW + timedelta(hours=1)
    change = RegistrationChange(phone="+255 754 000 111", language="en")
    updated = await handlers.update_own_registration(ctx, created.id, change)
    assert updated.phone == "+255754000111" and updated.language == "en"
    assert updated.updated_at == "2026-11-02T08:00:00.000000Z"
    data = store.last("RegistrationUpdated")
    assert data["changed_fields"] == ["language", "phone"]
    assert data["participant"]["language"] == "en" and data["status"] == "confirmed"
    again = await handlers.update_own_registration(ctx, created.id, change)
    assert again.phone == "+255754000111"
    assert store.types(created.id).count("RegistrationUpdated") == 1
    await handlers.cancel_registration(ctx, created.id, by="participant")
    error = await refused(
        "registration_cancelled",
        handlers.update_own_registration(ctx, created.id, RegistrationChange(position="Head")),
    )
    assert "cannot be changed" in error.message


# -- check-in --------------------------------------------------------------------------------


async def test_check_in_once_a_day_only_when_confirmed(ctx, store, clock) -> None:
    event_id = await new_event(
        ctx,
        capacity=1,
        starts_at=NOW - timedelta(hours=30),
        ends_at=NOW + timedelta(days=2),
        registration_opens_at=NOW - timedelta(days=3),
    )
    confirmed = await register(ctx, event_id)
    waitlisted = await register(ctx, event_id)
    ticket = ctx.signer.sign(confirmed.id)
    result = await handlers.check_in(ctx, ticket)
    assert result.day == "2026-11-02" and result.checked_in_at == "2026-11-02T07:00:00.000000Z"
    assert result.registration.checkins == {"2026-11-02": result.checked_in_at}
    data = store.last("ParticipantCheckedIn")
    assert data["day"] == "2026-11-02" and data["registration_id"] == confirmed.id
    error = await refused("already_checked_in", handlers.check_in(ctx, ticket))
    assert error.details == {"day": "2026-11-02", "checked_in_at": result.checked_in_at}
    clock.now = NOW + timedelta(days=1)
    assert (await handlers.check_in(ctx, ticket)).day == "2026-11-03"
    await refused("registration_waitlisted", handlers.check_in(ctx, ctx.signer.sign(waitlisted.id)))
    tampered = ticket[:30] + ("A" if ticket[30] != "A" else "B") + ticket[31:]
    await refused("invalid_ticket", handlers.check_in(ctx, tampered))
    clock.now = NOW + timedelta(days=3)
    await refused("not_an_event_day", handlers.check_in(ctx, ticket))
    store.events[event_id].state = "cancelled"
    await refused("event_cancelled", handlers.check_in(ctx, ticket))
    store.events[event_id].state = "published"
    clock.now = NOW
    await handlers.cancel_registration(ctx, waitlisted.id, by="participant")
    await handlers.cancel_registration(ctx, confirmed.id, by="participant")
    await refused("registration_cancelled", handlers.check_in(ctx, ticket))


# -- personal data ---------------------------------------------------------------------------


async def test_participants_download_what_is_held_about_them(ctx) -> None:
    event_id = await new_event(ctx)
    created = await register(ctx, event_id, full_name="Neema Mushi", region="Arusha")
    data = await handlers.export_own_data(ctx, created.id)
    assert data["id"] == created.id and data["full_name"] == "Neema Mushi"
    assert data["region"] == "Arusha" and data["status"] == "confirmed"
    assert data["held_by"].startswith("e-Government Authority")
    assert data["purpose"] == "registration and communication for this event"
    assert not {"manage_token_hash", "idempotency_key", "rev", "outbox"} & set(data)
    assert "cancelled_at" not in data  # what never happened is not listed
    await refused("registration_not_found", handlers.export_own_data(ctx, "nobody"))


async def test_erasure_cancels_frees_the_seat_and_replaces_the_data(ctx, store, clock) -> None:
    event_id = await new_event(ctx, capacity=1)
    created = await register(ctx, event_id, full_name="Neema Mushi", dietary_needs="Halal")
    waiting = await register(ctx, event_id)
    clock.now = NOW + timedelta(hours=2)
    erased = await handlers.erase_registration(ctx, created.id, reason="participant_request")
    assert erased.status == "cancelled" and erased.erased_at == "2026-11-02T09:00:00.000000Z"
    assert erased.full_name == "[erased]" and erased.email == f"erased-{created.id}@invalid"
    assert erased.phone == "" and erased.dietary_needs is None and erased.position == "[erased]"
    assert erased.consent["withdrawn_at"] == erased.erased_at and erased.cadre == "ict_officer"
    assert store.types(created.id)[-2:] == ["RegistrationCancelled", "PersonalDataErased"]
    data = store.last("PersonalDataErased")
    assert data == {
        "registration_id": created.id,
        "event_id": event_id,
        "reason": "participant_request",
        "erased_at": "2026-11-02T09:00:00Z",
    }
    assert store.last("RegistrationCancelled")["cancelled_by"] == "participant"
    assert await status(ctx, waiting.id) == "confirmed"  # the seat went on
    await refused(
        "registration_not_found",
        handlers.find_own_registration(ctx, created.reference, created.manage_token),
    )
    again = await handlers.erase_registration(ctx, created.id, reason="participant_request")
    assert again.erased_at == erased.erased_at
    assert store.types(created.id).count("PersonalDataErased") == 1
    await refused(
        "registration_not_found", handlers.erase_registration(ctx, "nobody", reason="retention")
    )


async def test_retention_erases_what_ended_long_ago_and_keeps_the_rest(ctx, store, clock) -> None:
    old_event = await new_event(
        ctx, starts_at=NOW - timedelta(days=402), ends_at=NOW - timedelta(days=400)
    )
    recent = await new_event(ctx)
    store.events[old_event].registration_opens_at = None
    clock.now = NOW - timedelta(days=403)  # they registered before it took place
    old = [await register(ctx, old_event) for _ in range(2)]
    clock.now = NOW
    kept = await register(ctx, recent)
    assert await handlers.apply_retention(ctx, 365) == 2
    for p in old:
        stored = await ctx.store.get_registration(p.id)
        assert stored.erased_at and stored.erasure_reason == "retention"
    assert store.last("PersonalDataErased")["reason"] == "retention"
    assert store.last("RegistrationCancelled")["cancelled_by"] == "organiser"
    assert not (await ctx.store.get_registration(kept.id)).erased_at
    assert await handlers.apply_retention(ctx, 365) == 0  # nothing left to erase
    assert await handlers.apply_retention(ctx, 30) == 0  # the recent event has not ended


async def test_the_retention_worker_applies_the_rule_until_stopped(ctx, store, clock) -> None:
    old_event = await new_event(
        ctx, starts_at=NOW - timedelta(days=402), ends_at=NOW - timedelta(days=400)
    )
    store.events[old_event].registration_opens_at = None
    clock.now = NOW - timedelta(days=403)
    old = await register(ctx, old_event)
    clock.now = NOW
    stop = asyncio.Event()
    list_events = store.list_events

    async def list_then_stop(state: str | None = "published") -> list[Any]:
        stop.set()  # one round, then the service stops
        return await list_events(state)

    store.list_events = list_then_stop  # type: ignore[method-assign]
    await asyncio.wait_for(
        workers.run_retention(ctx, stop, retention_days=365, interval_s=3600), timeout=2
    )
    assert (await ctx.store.get_registration(old.id)).erased_at


# -- demo seed -------------------------------------------------------------------------------


async def test_the_demo_conference_is_upcoming_open_and_seeded_once(ctx, store) -> None:
    today = date(2026, 12, 1)
    assert await demo.seed(ctx, today) == "egov-2027"
    event = await ctx.store.get_event("egov-2027")
    assert event.code == "EGOV2027" and event.capacity == 1000 and event.state == "published"
    assert event.title_en == "7th Annual e-Government Conference 2027"
    assert event.title_sw == "Mkutano wa Saba wa Mwaka wa Serikali Mtandao 2027"
    assert event.city == "Arusha" and "AICC" in event.venue
    assert event.starts_at.date() > today and event.registration_open(NOW.replace(month=12))
    assert store.types("egov-2027") == ["EventPublished"]
    assert await demo.seed(ctx, today) is None
    assert len(store.events) == 1


# -- the port ------------------------------------------------------------------------------


def test_the_mongo_store_and_the_fake_implement_the_whole_port() -> None:
    """Same methods, same parameters (the MongoDB store may add keyword-only tuning)."""
    import inspect

    from services.registration.ports import RegistrationStore
    from services.registration.store import MongoRegistrationStore

    def parameters(fn: Any) -> list[str]:
        return [
            p.name
            for p in inspect.signature(fn).parameters.values()
            if p.kind is not inspect.Parameter.KEYWORD_ONLY or p.default is inspect.Parameter.empty
        ]

    port = {
        name: parameters(member)
        for name, member in vars(RegistrationStore).items()
        if not name.startswith("_") and callable(member)
    }
    assert len(port) > 20
    for implementation in (MongoRegistrationStore, FakeRegistrationStore):
        for name, expected in port.items():
            method = getattr(implementation, name, None)
            assert method is not None, f"{implementation.__name__} lacks {name}"
            assert parameters(method) == expected, f"{implementation.__name__}.{name}"


async def test_every_notice_carries_a_link_that_opens_its_registration_only(store, clock) -> None:
    ctx = handlers.Context(
        store=store,
        signer=TicketSigner(b"k" * 32),
        notice_version="2025-01",
        clock=clock,
        public_url="https://mkutano.example.go.tz/reg",
    )
    event_id = await new_event(ctx, capacity=1)  # ends NOW + 32 days
    first, second = await register(ctx, event_id), await register(ctx, event_id)
    approval = await new_event(ctx, requires_approval=True)
    nominated = await register(ctx, approval)
    await handlers.approve_registration(ctx, nominated.id, by="organiser")
    rejected = await register(ctx, approval)
    await handlers.reject_registration(ctx, rejected.id, by="organiser", reason="Full")
    await handlers.cancel_registration(ctx, first.id, by="participant")  # promotes second
    await handlers.update_own_registration(
        ctx, second.id, RegistrationChange.model_validate({"position": "Director"})
    )
    notices = [m for m in store.outbox if m.topic == REGISTRATION_NOTICES]
    assert {m.key for m in notices} == {first.id, second.id, nominated.id, rejected.id}
    assert len(notices) >= 7
    for message in notices:
        url = message.data["self_service_url"]
        prefix = "https://mkutano.example.go.tz/reg/my/"
        assert url.startswith(prefix), url
        link = url.removeprefix(prefix)
        assert self_service_path(link) == url.removeprefix("https://mkutano.example.go.tz/reg")
        assert (await handlers.open_self_service_link(ctx, link)).registration.id == message.key
    # The public stream never carries it.
    assert all(
        "self_service_url" not in m.data for m in store.outbox if m.topic != REGISTRATION_NOTICES
    )
    # A link opens until 30 days after its event ends.
    link = store.last("WaitlistPromotedNotice")["self_service_url"].rsplit("/", 1)[1]
    clock.now = NOW + timedelta(days=32 + 30) - timedelta(seconds=1)
    assert (await handlers.open_self_service_link(ctx, link)).registration.id == second.id
    clock.now = NOW + timedelta(days=32 + 30)
    await refused("registration_not_found", handlers.open_self_service_link(ctx, link))


async def test_check_in_at_another_events_door_is_refused_and_hmac_tickets_still_work(
    ctx, store, clock
) -> None:
    window = {
        "starts_at": NOW - timedelta(hours=30),
        "ends_at": NOW + timedelta(days=2),
        "registration_opens_at": NOW - timedelta(days=3),
    }
    here = await new_event(ctx, **window)
    elsewhere = await new_event(ctx, **window)
    guest = await register(ctx, here)
    error = await refused(
        "wrong_event", handlers.check_in(ctx, ctx.signer.sign(guest.id), event_id=elsewhere)
    )
    assert error.details == {"event_id": here}
    assert store.registrations[guest.id].checkins == {}
    # A ticket of the earlier kind (HMAC, MK1) is still checked in at the right door.
    result = await handlers.check_in(ctx, ctx.signer.sign_hmac(guest.id), event_id=here)
    assert result.registration.id == guest.id
