"""Every notification use case on the in-memory fakes, at a fixed time: no server.

What is asserted is what a user would see: the messages recorded (channel, template,
recipient, attachments), what the channels were given, the statuses in the delivery
log, the events on notification.v1 with their fields, and the errors' codes.
"""

from __future__ import annotations

import asyncio
import inspect
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.notification import handlers, workers
from services.notification.dispatcher import Dispatcher
from services.notification.domain import Candidate, DeliveryError, RetryPolicy
from services.notification.ports import SEND, NotificationStore
from services.notification.settings import NotificationSettings
from services.notification.store import MongoNotificationStore
from shared.consumer import BatchOptions
from shared.contracts.registration import (
    EventCancelled,
    EventDetails,
    EventPublished,
    EventUpdated,
    ParticipantContact,
    ParticipantRegistered,
    PersonalDataErased,
)
from shared.contracts.registration_notices import (
    ParticipantRegisteredNotice,
    ParticipantWaitlistedNotice,
    RegistrationUpdatedNotice,
)
from shared.contracts.resolutions import (
    FocalPerson,
    ResolutionCompleted,
    ResolutionCompletedV2,
    ResolutionCreated,
    ResolutionUpdatedV2,
)
from shared.contracts.resolutions_notices import (
    ResolutionCompletedNotice,
    ResolutionUpdatedNotice,
)
from shared.envelope import ReceivedEvent
from shared.errors import DomainError
from shared.metrics import Metrics
from shared.waiting import ScanSchedule
from tests.unit.fakes.notification import FakeEmail, FakeNotificationStore, FakeSms

NOW = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
DAY = 86400


class Clock:
    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Sleeps:
    def __init__(self) -> None:
        self.slept: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)


class Env:
    def __init__(self, *, sms: bool = True, **settings: Any) -> None:
        self.clock = Clock()
        self.store = FakeNotificationStore()
        self.email = FakeEmail()
        self.sms = FakeSms() if sms else None
        self.sleeps = Sleeps()
        self.ctx = handlers.Context(
            store=self.store,
            settings=NotificationSettings(**settings),
            email=self.email,
            sms=self.sms,
            metrics=Metrics("tests"),
            clock=self.clock,
            sleep=self.sleeps,
        )
        self.sends: list[str] = []
        self.store.signal.listen(lambda _c, doc_id: self.sends.append(doc_id), work=SEND)

    def log(self, **where: Any) -> list[Any]:
        return [
            n
            for n in self.store.notifications.values()
            if all(getattr(n, k) == v for k, v in where.items())
        ]

    def published(self, name: str) -> list[dict[str, Any]]:
        return [m.data for m in self.store.outbox if m.type.endswith(f".{name}.v1")]


@pytest.fixture
def env() -> Env:
    return Env()


DETAILS = EventDetails(
    event_id="ev-1",
    code="EGOV",
    title_sw="Mkutano",
    title_en="Conference",
    venue="AICC",
    city="Arusha",
    starts_at=NOW + timedelta(days=30),
    ends_at=NOW + timedelta(days=32),
)


def contact(n: int = 1, **kw: Any) -> ParticipantContact:
    return ParticipantContact(
        **{
            "full_name": f"Asha Juma {n}",
            "email": f"asha{n}@example.go.tz",
            "phone": f"+2557120001{n:02d}",
            "language": "en",
            "institution": "e-GA",
            **kw,
        }
    )


def received(event: Any, ce_id: str = "ce-1", at: datetime | None = NOW) -> ReceivedEvent:
    return ReceivedEvent(
        id=ce_id, source="/t", type=event.ce_type(), time=at, key=None, event=event, headers={}
    )


def registered(
    n: int = 1, status: str = "confirmed", ticket: str | None = "t.1", **kw: Any
) -> ParticipantRegisteredNotice:
    return ParticipantRegisteredNotice(
        registration_id=f"reg-{n}",
        reference=f"MK-AAAA-{n:04d}",
        event=kw.pop("event", DETAILS),
        participant=kw.pop("participant", contact(n)),
        status=status,
        cadre=kw.pop("cadre", "ict_officer"),
        ticket=ticket if status == "confirmed" else None,
        **kw,
    )


async def register(env: Env, n: int, **kw: Any) -> None:
    await handlers.record_registration_event(env.ctx, received(registered(n, **kw), f"ce-reg-{n}"))


def test_the_mongo_store_and_the_fake_implement_the_same_port() -> None:
    wanted = {
        name: inspect.signature(fn)
        for name, fn in vars(NotificationStore).items()
        if not name.startswith("_") and callable(fn)
    }
    assert len(wanted) >= 20
    for implementation in (MongoNotificationStore, FakeNotificationStore):
        for name, signature in wanted.items():
            method = getattr(implementation, name)
            assert inspect.iscoroutinefunction(inspect.unwrap(method)), (implementation, name)
            assert list(inspect.signature(method).parameters) == list(signature.parameters), (
                implementation,
                name,
            )


# --------------------------------------------------------------------------- registration events


async def test_a_confirmation_records_an_email_with_its_ticket_and_an_sms(env: Env) -> None:
    await handlers.record_registration_event(env.ctx, received(registered(1)))
    (email,) = env.log(channel="email")
    (sms,) = env.log(channel="sms")
    assert (email.template, email.recipient, email.language) == (
        "confirmation",
        "asha1@example.go.tz",
        "en",
    )
    assert email.attachments == ["qr", "ics"] and sms.attachments == []
    assert (sms.recipient, sms.status, sms.attempts) == ("+255712000101", "pending", 0)
    assert email.cause_event_id == "ce-1" and email.event_id == "ev-1"
    assert email.cause_event_type.endswith("ParticipantRegisteredNotice.v1")
    assert email.created_at == "2026-03-02T06:00:00.000000Z"
    assert sorted(env.sends) == sorted([email.id, sms.id])  # queued for the senders
    assert env.store.participants["reg-1"]["status"] == "confirmed"


async def test_a_retired_v1_event_still_on_the_topic_is_told_as_its_notice_would_be(
    env: Env,
) -> None:
    """Records published before the notices existed carry everything themselves."""
    legacy = ParticipantRegistered(
        registration_id="reg-1",
        reference="MK-AAAA-0001",
        event=DETAILS,
        participant=contact(1),
        status="confirmed",
        cadre="ict_officer",
        registered_at=NOW,
        ticket="t.1",
    )
    await handlers.record_registration_event(env.ctx, received(legacy))
    (email,) = env.log(channel="email")
    assert email.template == "confirmation" and email.attachments == ["qr", "ics"]
    assert email.context["ticket"] == "t.1"
    assert env.store.participants["reg-1"]["ticket"] == "t.1"


def test_the_consumer_acts_on_the_notices_and_not_on_the_public_registration_events() -> None:
    """Contact details and tickets come from registration.notices.v1 only."""
    from services.notification import consumers
    from shared.contracts import stream_events
    from shared.topics import REGISTRATION, REGISTRATION_NOTICES

    tables: list[dict] = []

    class Runtime:
        def add_consumer(self, *, group_id, topics, handlers, description, **batching):
            tables.append({"group": group_id, "topics": topics, "handlers": handlers, **batching})

    consumers.register_consumers(Runtime(), Env().ctx)  # type: ignore[arg-type]
    (table,) = tables
    assert REGISTRATION_NOTICES in table["topics"] and REGISTRATION in table["topics"]
    handled = set(table["handlers"])
    assert set(stream_events(REGISTRATION_NOTICES)) <= handled
    public_registration_events = {c for c in stream_events(REGISTRATION) if c.schema_version == 2}
    assert public_registration_events and not public_registration_events & handled
    assert PersonalDataErased in handled and EventUpdated in handled
    # Batch mode (the runtime takes it from the settings): the notices in bulk; an erasure
    # or a catalogue change one by one.
    batch = BatchOptions.of(Env().ctx.settings)
    assert "batch" not in table and batch is not None and batch.max_records > 1
    assert set(stream_events(REGISTRATION_NOTICES)) & set(table["bulk_handlers"])
    assert set(table["bulk_handlers"]) <= handled
    assert PersonalDataErased not in table["bulk_handlers"]


async def test_the_same_event_twice_records_its_messages_once(env: Env) -> None:
    event = registered(1)
    await handlers.record_registration_event(env.ctx, received(event, "ce-1"))
    await handlers.record_registration_event(env.ctx, received(event, "ce-1"))
    assert len(env.store.notifications) == 2 and len(env.sends) == 2
    await handlers.record_registration_event(env.ctx, received(event, "ce-2"))
    assert len(env.store.notifications) == 4  # another event: other messages


async def test_without_an_sms_gateway_only_the_email_is_recorded() -> None:
    env = Env(sms=False)
    await handlers.record_registration_event(env.ctx, received(registered(1)))
    assert [n.channel for n in env.store.notifications.values()] == ["email"]


async def test_a_waitlisting_is_told_without_a_ticket(env: Env) -> None:
    event = ParticipantWaitlistedNotice(
        registration_id="reg-1",
        reference="MK-AAAA-0001",
        event=DETAILS,
        participant=contact(1),
        status="waitlisted",
        waitlist_position=3,
    )
    await handlers.record_registration_event(env.ctx, received(event))
    (email,) = env.log(channel="email")
    assert email.template == "waitlisted" and email.attachments == []
    assert email.context["waitlist_position"] == 3


async def test_an_older_event_than_the_projection_shows_records_nothing(env: Env) -> None:
    await handlers.record_registration_event(
        env.ctx, received(registered(1), "ce-new", at=NOW + timedelta(minutes=5))
    )
    update = RegistrationUpdatedNotice(
        registration_id="reg-1",
        reference="MK-AAAA-0001",
        event=DETAILS,
        participant=contact(1, phone="+255700000000"),
        status="confirmed",
        changed_fields=["phone"],
    )
    await handlers.record_registration_event(env.ctx, received(update, "ce-old", at=NOW))
    assert {n.template for n in env.store.notifications.values()} == {"confirmation"}
    assert env.store.participants["reg-1"]["contact"]["phone"] == "+255712000101"


async def test_a_confirmation_for_an_unknown_event_schedules_its_reminders(env: Env) -> None:
    await register(env, 1)
    known = env.store.events["ev-1"]
    assert known.state == "published" and known.details["code"] == "EGOV"
    reminders = await env.store.reminders_of("ev-1")
    assert [r.offset_s for r in reminders] == [7 * DAY, DAY]
    assert reminders[1].due_at == (NOW + timedelta(days=29)).timestamp()


# --------------------------------------------------------------------------- erasure


async def test_erasure_leaves_a_tombstone_and_scrubs_the_log(env: Env) -> None:
    await register(env, 1)
    sent = env.log(channel="email")[0]
    env.store.notifications[sent.id].status = "sent"
    erased = PersonalDataErased(
        registration_id="reg-1", event_id="ev-1", reason="participant_request", erased_at=NOW
    )
    await handlers.erase_personal_data(env.ctx, received(erased, "ce-erase"))
    assert env.store.participants["reg-1"]["erased"] is True
    assert "contact" not in env.store.participants["reg-1"]
    email, sms = env.log(channel="email")[0], env.log(channel="sms")[0]
    assert (email.status, sms.status) == ("sent", "cancelled")  # unsent ones are not sent
    assert sms.last_error == "personal data erased"
    assert {email.recipient, sms.recipient} == {"[erased]"} and email.context == {}
    # A late event cannot bring the data back.
    await handlers.record_registration_event(env.ctx, received(registered(1), "ce-late"))
    assert len(env.store.notifications) == 2
    assert env.store.participants["reg-1"].get("contact") is None


# --------------------------------------------------------------------------- resolutions


def focal(name: str, email: str, language: str = "en") -> FocalPerson:
    return FocalPerson(full_name=name, institution="x", email=email, language=language)


RESOLUTION = {
    "resolution_id": "res-1",
    "conference_id": "egov-2026",
    "number": 4,
    "title_sw": "Azimio",
    "title_en": "Resolution",
    "status": "completed",
    "progress": 100,
    "version": 3,
}


async def test_a_completed_resolution_emails_each_focal_person_once(env: Env) -> None:
    people = [
        focal("A", "a@x.go.tz"),
        focal("B", "b@y.go.tz", "sw"),
        focal("B", "B@y.go.tz", "sw"),
    ]
    event = ResolutionCompleted(
        **RESOLUTION,
        focal_persons=people,
        previous_status="in_progress",
        previous_progress=80,
        completed_by="u",
        completed_at=NOW,
    )
    await handlers.record_resolution_event(env.ctx, received(event))
    log = sorted(env.store.notifications.values(), key=lambda n: n.recipient)
    assert [(n.recipient, n.language, n.template, n.channel) for n in log] == [
        ("a@x.go.tz", "en", "resolution_completed", "email"),
        ("b@y.go.tz", "sw", "resolution_completed", "email"),
    ]
    assert all(n.resolution_id == "res-1" and n.registration_id is None for n in log)
    created = ResolutionCreated(**RESOLUTION, focal_persons=people, created_at=NOW)
    await handlers.record_resolution_event(env.ctx, received(created, "ce-2"))
    assert len(env.store.notifications) == 2  # a new resolution is not told


async def test_the_focal_persons_are_emailed_from_the_notices_not_the_public_events(
    env: Env,
) -> None:
    people = [focal("A", "a@x.go.tz"), focal("B", "b@y.go.tz", "sw")]
    public = {**RESOLUTION, "lead_institution": "e-GA", "focal_person_count": 2}
    # The public version 2 names nobody: nothing to send (its notice does it).
    await handlers.record_resolution_event(
        env.ctx,
        received(
            ResolutionUpdatedV2(
                **public,
                previous_status="in_progress",
                previous_progress=80,
                recorded_by="u",
                updated_at=NOW,
            ),
            "ce-public-1",
        ),
    )
    await handlers.record_resolution_event(
        env.ctx, received(ResolutionCompletedV2(**public, completed_at=NOW), "ce-public-2")
    )
    assert env.store.notifications == {}
    await handlers.record_resolution_event(
        env.ctx,
        received(
            ResolutionUpdatedNotice(
                **RESOLUTION,
                focal_persons=people,
                previous_status="in_progress",
                previous_progress=80,
                note="Imekamilika",
                updated_at=NOW,
            ),
            "ce-notice-1",
        ),
    )
    await handlers.record_resolution_event(
        env.ctx,
        received(
            ResolutionCompletedNotice(**RESOLUTION, focal_persons=people, completed_at=NOW),
            "ce-notice-2",
        ),
    )
    log = sorted(env.store.notifications.values(), key=lambda n: (n.template, n.recipient))
    assert [(n.template, n.recipient, n.language) for n in log] == [
        ("resolution_completed", "a@x.go.tz", "en"),
        ("resolution_completed", "b@y.go.tz", "sw"),
        ("resolution_updated", "a@x.go.tz", "en"),
        ("resolution_updated", "b@y.go.tz", "sw"),
    ]
    assert all(n.resolution_id == "res-1" for n in log)


def test_notification_reads_the_focal_persons_notices_and_no_public_version_2() -> None:
    from services.notification import consumers
    from shared.contracts import stream_events
    from shared.contracts.resolutions_notices import FocalPersonErased
    from shared.topics import RESOLUTIONS, RESOLUTIONS_NOTICES

    acted_on = set(consumers.RESOLUTION_EVENTS)
    # Every notice is read: the messages' ones, and the erasure (its own handler).
    assert set(stream_events(RESOLUTIONS_NOTICES)) <= acted_on | {FocalPersonErased}
    assert not set(stream_events(RESOLUTIONS)) & acted_on  # version 2: no contacts
    assert all(cls.retired for cls in acted_on if cls.topic == RESOLUTIONS)


# --------------------------------------------------------------------------- catalogue events


def catalogue(cls: type, state: str = "published", **kw: Any) -> Any:
    return cls(event_id="ev-1", event=kw.pop("event", DETAILS), capacity=100, state=state, **kw)


async def test_a_published_event_is_kept_with_its_reminders(env: Env) -> None:
    await handlers.record_catalogue_event(env.ctx, received(catalogue(EventPublished)))
    assert env.store.events["ev-1"].state == "published"
    assert len(await env.store.reminders_of("ev-1")) == 2
    assert env.store.notifications == {}


async def test_moved_dates_are_told_to_everyone_who_may_still_come(env: Env) -> None:
    await handlers.record_catalogue_event(env.ctx, received(catalogue(EventPublished), "ce-pub"))
    await register(env, 1)
    await register(env, 2, status="pending_approval")
    await register(env, 3, status="rejected")
    env.store.notifications.clear()
    moved = DETAILS.model_copy(
        update={"starts_at": DETAILS.starts_at + timedelta(days=7), "ends_at": DETAILS.ends_at}
    )
    update = catalogue(EventUpdated, event=moved, changed_fields=["starts_at", "capacity"])
    await handlers.record_catalogue_event(env.ctx, received(update, "ce-upd"))
    emails = {n.registration_id: n for n in env.log(channel="email")}
    assert set(emails) == {"reg-1", "reg-2"}  # not the rejected
    assert {n.template for n in env.store.notifications.values()} == {"event_changed"}
    assert emails["reg-1"].attachments == ["ics"] and emails["reg-2"].attachments == []
    ctx1 = emails["reg-1"].context
    assert ctx1["changes"] == ["dates"]
    assert ctx1["previous"]["starts_at"].startswith("2026-04-01T06:00:00")
    assert ctx1["event"]["starts_at"].startswith("2026-04-08")
    assert ctx1["ics_sequence"] == int(NOW.timestamp())
    assert len(env.log(channel="sms")) == 2
    # The reminders follow the new start.
    pending = [r for r in await env.store.reminders_of("ev-1") if r.status == "pending"]
    assert [r.due_at for r in pending] == [
        (moved.starts_at - timedelta(days=7)).timestamp(),
        (moved.starts_at - timedelta(days=1)).timestamp(),
    ]
    # The same update redelivered records nothing twice.
    await handlers.record_catalogue_event(env.ctx, received(update, "ce-upd"))
    assert len(env.store.notifications) == 4


async def test_a_change_of_capacity_or_of_a_cancelled_event_is_not_told(env: Env) -> None:
    await register(env, 1)
    env.store.notifications.clear()
    await handlers.record_catalogue_event(
        env.ctx, received(catalogue(EventUpdated, changed_fields=["capacity"]), "ce-cap")
    )
    assert env.store.notifications == {}
    cancelled = catalogue(EventCancelled, state="cancelled", reason="postponed")
    await handlers.record_catalogue_event(env.ctx, received(cancelled, "ce-cancel"))
    assert env.store.events["ev-1"].state == "cancelled"
    assert {r.status for r in await env.store.reminders_of("ev-1")} == {"cancelled"}


# --------------------------------------------------------------------------- reminders


async def test_reminder_rules_of_an_event_replace_the_defaults(env: Env) -> None:
    await register(env, 1)
    view = await handlers.set_reminder_rules(env.ctx, "ev-1", [3 * DAY, 3600])
    assert view["source"] == "event" and view["offsets_s"] == [3 * DAY, 3600]
    assert view["event_known"] is True
    by_offset = {r["offset_s"]: r["status"] for r in view["reminders"]}
    assert by_offset == {
        7 * DAY: "cancelled",
        DAY: "cancelled",
        3 * DAY: "pending",
        3600: "pending",
    }
    back = await handlers.set_reminder_rules(env.ctx, "ev-1", None)
    assert back["source"] == "default" and back["offsets_s"] == [7 * DAY, DAY]
    off = await handlers.set_reminder_rules(env.ctx, "ev-1", [])
    assert {r["status"] for r in off["reminders"]} == {"cancelled"}


async def test_rules_for_an_event_not_heard_of_yet_wait_for_it(env: Env) -> None:
    view = await handlers.set_reminder_rules(env.ctx, "ev-1", [DAY])
    assert view["event_known"] is False and view["reminders"] == []
    await register(env, 1)  # the event's details arrive with a registration
    view = await handlers.reminder_rules_view(env.ctx, "ev-1")
    assert [(r["offset_s"], r["status"]) for r in view["reminders"]] == [(DAY, "pending")]
    assert view["reminders"][0]["due_at"] == "2026-03-31T06:00:00.000000Z"


async def test_a_reminder_that_is_past_already_is_not_created(env: Env) -> None:
    soon = DETAILS.model_copy(update={"starts_at": NOW + timedelta(days=3)})
    await handlers.record_catalogue_event(env.ctx, received(catalogue(EventPublished, event=soon)))
    assert [r.offset_s for r in await env.store.reminders_of("ev-1")] == [DAY]


async def test_a_due_reminder_fires_once_for_each_confirmed_participant(env: Env) -> None:
    await register(env, 1)
    await register(env, 2, ticket=None)
    await register(env, 3, status="pending_approval")
    env.store.notifications.clear()
    assert await handlers.claim_reminder(env.ctx) is None  # nothing due yet
    env.clock.advance(23 * DAY + 1)  # 7 days before the start
    reminder = await handlers.claim_reminder(env.ctx)
    assert reminder is not None and reminder.offset_s == 7 * DAY
    assert await handlers.fire_reminder(env.ctx, reminder) == 4  # 2 people, email + sms
    emails = {n.registration_id: n for n in env.log(channel="email")}
    assert set(emails) == {"reg-1", "reg-2"}
    assert emails["reg-1"].template == "reminder"
    assert emails["reg-1"].attachments == ["qr"] and emails["reg-2"].attachments == []
    assert emails["reg-1"].context["starts_in"] == {"sw": "baada ya siku 7", "en": "in 7 days"}
    assert emails["reg-1"].cause_event_type == "reminder"
    fired = env.store.reminders[reminder.id]
    assert (fired.status, fired.notifications) == ("done", 4)
    # Retaken after a crash (or by another instance): nothing is sent twice.
    assert await handlers.fire_reminder(env.ctx, reminder) == 0
    assert await handlers.claim_reminder(env.ctx) is None


async def test_the_reminder_worker_fires_what_is_due_and_stops(env: Env) -> None:
    await register(env, 1)
    env.store.notifications.clear()
    env.clock.advance(29 * DAY + 1)  # both reminders are due
    stop = asyncio.Event()
    task = asyncio.create_task(workers.run_reminders(env.ctx, stop))
    for _ in range(200):
        await asyncio.sleep(0)
        if all(r.status == "done" for r in env.store.reminders.values()):
            break
    stop.set()
    await asyncio.wait_for(task, 5)
    assert {r.status for r in env.store.reminders.values()} == {"done"}
    assert len(env.store.notifications) == 4


# --------------------------------------------------------------------------- announcements

SPEC = {
    "event_id": "ev-1",
    "cadre": None,
    "subject_sw": "Ratiba",
    "subject_en": "Programme",
    "body_sw": "Karibuni.",
    "body_en": "Welcome.",
    "channels": ["email", "sms"],
}


async def test_an_announcement_by_sms_needs_a_gateway() -> None:
    env = Env(sms=False)
    with pytest.raises(DomainError) as refused:
        await handlers.create_announcement(env.ctx, SPEC)
    assert refused.value.code == "sms_not_configured" and refused.value.field == "channels"


async def test_an_announcement_snapshots_its_audience_and_fans_out_in_batches() -> None:
    env = Env(announcement_batch=2)
    for n in range(1, 4):
        await register(env, n)
    await register(env, 4, cadre="accountant")
    await register(env, 5, status="pending_approval")
    env.store.notifications.clear()
    fan_outs: list[str] = []
    env.store.signal.listen(lambda _c, i: fan_outs.append(i), work="fan_out")

    progress = await handlers.create_announcement(env.ctx, {**SPEC, "cadre": "ict_officer"})
    assert progress["fan_out"] == "fanning_out" and progress["status"] == "sending"
    assert progress["total"] == 6 and progress["queued"] == 0  # 3 people x 2 channels
    assert fan_outs == [progress["id"]]

    announcement = await handlers.claim_announcement(env.ctx)
    assert announcement is not None and announcement.targets == ["reg-1", "reg-2", "reg-3"]
    assert await handlers.claim_announcement(env.ctx) is None  # leased
    first = await handlers.fan_out_batch(env.ctx, announcement)
    assert (first.cursor, first.status) == (2, "fanning_out")
    assert len(env.store.notifications) == 4
    done = await handlers.fan_out_batch(env.ctx, first)
    assert (done.cursor, done.status, done.lease_until) == (3, "done", 0.0)
    log = list(env.store.notifications.values())
    assert {n.template for n in log} == {"announcement"} and len(log) == 6
    assert all(n.announcement_id == announcement.id for n in log)
    assert log[0].context["announcement"]["subject_en"] == "Programme"

    for n in log[:2]:
        env.store.notifications[n.id].status = "sent"
    env.store.notifications[log[2].id].status = "failed"
    progress = await handlers.announcement_progress(env.ctx, announcement.id)
    assert {k: progress[k] for k in ("status", "fan_out", "queued", "sent", "failed")} == {
        "status": "sending",
        "fan_out": "done",
        "queued": 6,
        "sent": 2,
        "failed": 1,
    }
    assert progress["pending"] == 3 and progress["skipped"] == 0
    assert progress["completed_at"] == "2026-03-02T06:00:00.000000Z"


async def test_an_announcement_to_nobody_is_done_at_once(env: Env) -> None:
    progress = await handlers.create_announcement(env.ctx, SPEC)
    assert (progress["fan_out"], progress["status"], progress["total"]) == ("done", "done", 0)
    assert await handlers.claim_announcement(env.ctx) is None


async def test_an_unknown_announcement_is_not_found(env: Env) -> None:
    with pytest.raises(DomainError) as refused:
        await handlers.announcement_progress(env.ctx, "nope")
    assert refused.value.code == "announcement_not_found"


async def test_the_announcement_worker_fans_out_what_is_created() -> None:
    env = Env(announcement_batch=1, announcement_rate_per_s=1e6)
    for n in range(1, 4):
        await register(env, n)
    env.store.notifications.clear()
    worker = workers.AnnouncementWorker(env.ctx, env.store.signal)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    progress = await handlers.create_announcement(env.ctx, {**SPEC, "channels": ["email"]})
    for _ in range(500):
        await asyncio.sleep(0)
        if env.store.announcements[progress["id"]].status == "done":
            break
    stop.set()
    await asyncio.wait_for(task, 5)
    assert env.store.announcements[progress["id"]].status == "done"
    assert len(env.log(channel="email", template="announcement")) == 3


# --------------------------------------------------------------------------- sending


async def queued(env: Env, n: int = 1) -> list[Any]:
    await register(env, n)
    return sorted(env.store.notifications.values(), key=lambda x: x.channel)


async def claim(env: Env, notification_id: str, status: str = "pending") -> Any:
    claimed = await handlers.claim(env.ctx, Candidate(notification_id, status, 0.0))
    assert claimed is not None
    return claimed


async def test_a_claimed_email_is_sent_and_its_event_recorded(env: Env) -> None:
    email, _ = await queued(env)
    claimed = await claim(env, email.id)
    assert (claimed.status, claimed.attempts) == ("sending", 1)
    assert claimed.lease_until == NOW.timestamp() + 60
    assert await handlers.claim(env.ctx, Candidate(email.id, "pending", 0.0)) is None  # taken
    assert await handlers.deliver(env.ctx, claimed) is None
    (message,) = env.email.sent
    assert message["To"] == "asha1@example.go.tz"
    assert message["Message-ID"] == f"<{email.id}@mkutano.ega.go.tz>"
    assert message["Content-Language"] == "en"
    assert {p.get_filename() for p in message.iter_attachments()} == {
        "tiketi-ticket.png",
        "mkutano.ics",
    }
    stored = env.store.notifications[email.id]
    assert (stored.status, stored.sent_at, stored.lease_until) == (
        "sent",
        "2026-03-02T06:00:00.000000Z",
        0.0,
    )
    (event,) = env.published("NotificationSent")
    assert event["notification_id"] == email.id and event["attempts"] == 1
    assert event["channel"] == "email" and event["template"] == "confirmation"
    assert event["cause_event_id"] == "ce-reg-1" and event["registration_id"] == "reg-1"
    assert event["segments"] is None


async def test_an_sms_is_sent_with_its_segments(env: Env) -> None:
    _, sms = await queued(env)
    await handlers.deliver(env.ctx, await claim(env, sms.id))
    ((to, text),) = env.sms.sent
    assert to == "+255712000101" and "MK-AAAA-0001" in text
    assert env.store.notifications[sms.id].segments >= 1
    assert (
        env.published("NotificationSent")[0]["segments"] == env.store.notifications[sms.id].segments
    )


async def test_a_transient_failure_is_retried_after_a_backoff(env: Env) -> None:
    email, _ = await queued(env)
    env.email.fail_with.append(DeliveryError("SMTP 451: try later", permanent=False))
    delay = await handlers.deliver(env.ctx, await claim(env, email.id))
    assert delay is not None and 0.5 <= delay <= 1.0  # attempt 1: between half and all of 1 s
    stored = env.store.notifications[email.id]
    assert (stored.status, stored.last_error) == ("retry", "SMTP 451: try later")
    assert stored.next_attempt_at == NOW.timestamp() + delay
    assert stored.errors == [{"at": "2026-03-02T06:00:00.000000Z", "error": "SMTP 451: try later"}]
    assert env.published("NotificationFailed") == []
    # Not due before its time, then taken again and sent.
    assert await handlers.due_notifications(env.ctx, 10) == [
        Candidate(n.id, "pending", 0.0) for n in env.log(channel="sms")
    ]
    env.clock.advance(delay)
    retried = await claim(env, email.id, status="retry")
    assert retried.attempts == 2
    await handlers.deliver(env.ctx, retried)
    assert env.store.notifications[email.id].status == "sent"
    assert env.published("NotificationSent")[0]["attempts"] == 2


async def test_a_permanent_failure_fails_at_once(env: Env) -> None:
    email, _ = await queued(env)
    env.email.fail_with.append(DeliveryError("recipient refused: [550]", permanent=True))
    assert await handlers.deliver(env.ctx, await claim(env, email.id)) is None
    assert env.store.notifications[email.id].status == "failed"
    (event,) = env.published("NotificationFailed")
    assert event["permanent"] is True and event["error"] == "recipient refused: [550]"
    assert event["attempts"] == 1 and event["failed_at"].startswith("2026-03-02T06:00:00")


async def test_after_the_last_attempt_a_notification_is_dead() -> None:
    env = Env(max_send_attempts=3)
    email, _ = await queued(env)
    env.email.fail_with.extend(RuntimeError("template broke") for _ in range(3))
    status = "pending"
    for attempt in range(1, 4):
        claimed = await claim(env, email.id, status)
        assert claimed.attempts == attempt
        delay = await handlers.deliver(env.ctx, claimed)
        env.clock.advance((delay or 0) + 0.001)
        status = "retry"
    stored = env.store.notifications[email.id]
    assert stored.status == "failed" and len(stored.errors) == 3
    (event,) = env.published("NotificationFailed")
    assert event["permanent"] is False and event["attempts"] == 3
    assert event["error"] == "RuntimeError: template broke"
    assert await handlers.due_notifications(env.ctx, 10) == [
        Candidate(n.id, "pending", 0.0) for n in env.log(channel="sms")
    ]


async def test_an_sms_without_a_gateway_fails_permanently() -> None:
    env = Env(sms=True)
    _, sms = await queued(env)
    env.ctx.sms = None
    await handlers.deliver(env.ctx, await claim(env, sms.id))
    (event,) = env.published("NotificationFailed")
    assert event["permanent"] is True and event["error"] == "SMS gateway not configured"


async def test_the_outcome_is_written_through_a_database_outage(env: Env) -> None:
    email, _ = await queued(env)
    claimed = await claim(env, email.id)
    env.store.unavailable_for = 3
    await handlers.deliver(env.ctx, claimed)
    assert env.sleeps.slept == [0.1, 0.2, 0.4]  # backing off, not giving up
    assert env.store.notifications[email.id].status == "sent"
    assert len(env.published("NotificationSent")) == 1


async def test_an_outcome_whose_answer_was_lost_is_not_written_twice(env: Env) -> None:
    email, _ = await queued(env)
    claimed = await claim(env, email.id)
    env.store.lose_next_answer = True
    await handlers.deliver(env.ctx, claimed)
    assert env.store.notifications[email.id].status == "sent"
    assert len(env.published("NotificationSent")) == 1


async def test_an_erasure_during_the_send_keeps_both(env: Env) -> None:
    email, _ = await queued(env)
    claimed = await claim(env, email.id)
    erased = PersonalDataErased(
        registration_id="reg-1", event_id="ev-1", reason="retention", erased_at=NOW
    )
    await handlers.erase_personal_data(env.ctx, received(erased, "ce-erase"))
    await handlers.deliver(env.ctx, claimed)  # its revision moved on meanwhile
    stored = env.store.notifications[email.id]
    assert (stored.status, stored.recipient, stored.erased) == ("sent", "[erased]", True)
    assert len(env.published("NotificationSent")) == 1


def test_the_retry_policy_is_the_settings() -> None:
    env = Env(max_send_attempts=2, retry_base_s=3.0, retry_max_s=5.0)
    policy = env.ctx.retry_policy
    assert isinstance(policy, RetryPolicy) and (policy.max_attempts, policy.max_s) == (2, 5.0)


# --------------------------------------------------------------------------- the dispatcher


class Ticks:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class NoWait:
    async def acquire(self) -> None:
        return None


def dispatcher(env: Env, ticks: Ticks | None = None) -> Dispatcher:
    scans = ScanSchedule(2.0, 8.0, clock=ticks or Ticks())
    return Dispatcher(
        env.ctx, env.store.signal, limits={"email": NoWait(), "sms": NoWait()}, scans=scans
    )


async def test_the_senders_claim_what_the_signal_named_without_scanning(env: Env) -> None:
    ticks = Ticks()
    d = dispatcher(env, ticks)
    await register(env, 1)
    assert d.queued == 2
    first = await d.claim_next()
    second = await d.claim_next()
    assert {first.channel, second.channel} == {"email", "sms"}
    assert env.store.scans == 0  # by _id only
    assert await d.claim_next() is None and env.store.scans == 1  # then the safety net
    assert await d.claim_next() is None and env.store.scans == 1  # backing off


async def test_the_scan_finds_what_no_signal_named(env: Env) -> None:
    await register(env, 1)  # before the dispatcher listens: another process's work
    d = dispatcher(env)
    assert d.queued == 0
    claimed = await d.claim_next()
    assert claimed is not None and env.store.scans == 1


async def test_one_sender_scans_at_a_time_the_others_take_what_it_found(env: Env) -> None:
    await register(env, 1)  # another process's work: found by the scan only
    d = dispatcher(env)
    gate = asyncio.Event()
    scan = env.store.due

    async def slow_scan(limit: int, now: datetime) -> list:
        await gate.wait()  # a whole collection read on the embedded server
        return await scan(limit, now)

    env.store.due = slow_scan  # type: ignore[method-assign]
    senders = [asyncio.create_task(d.claim_next()) for _ in range(8)]
    for _ in range(10):
        await asyncio.sleep(0)
    gate.set()
    claimed = [n for n in await asyncio.gather(*senders) if n is not None]
    assert env.store.scans == 1 and d.scans == 1, "eight senders found the scan due"
    assert len(claimed) == 1  # the scanning sender's; the others came back empty-handed
    second = await d.claim_next()  # what the scan queued besides
    assert {claimed[0].channel, second.channel} == {"email", "sms"}
    assert env.store.scans == 1


async def test_a_failed_send_is_queued_again_when_its_backoff_is_over() -> None:
    env = Env(retry_base_s=0.0)
    d = dispatcher(env)
    await register(env, 1)
    env.email.fail_with.append(DeliveryError("SMTP 421", permanent=False))
    for _ in range(2):
        await d.deliver(await d.claim_next())
    assert env.store.notifications[env.log(channel="email")[0].id].status == "retry"
    for _ in range(100):  # the backoff (0 s here) is over
        if d.queued:
            break
        await asyncio.sleep(0)
    assert d.queued == 1
    again = await d.claim_next()
    assert again.channel == "email" and again.attempts == 2 and env.store.scans == 0
    await d.deliver(again)
    assert [m["To"] for m in env.email.sent] == ["asha1@example.go.tz"]


async def test_the_senders_deliver_until_stopped(env: Env) -> None:
    d = dispatcher(env)
    stop = asyncio.Event()
    task = asyncio.create_task(d.run(stop))
    for n in range(1, 4):
        await register(env, n)
    for _ in range(500):
        await asyncio.sleep(0)
        if len(env.email.sent) == 3 and len(env.sms.sent) == 3:
            break
    stop.set()
    await asyncio.wait_for(task, 5)
    assert len(env.email.sent) == 3 and len(env.sms.sent) == 3
    assert {n.status for n in env.store.notifications.values()} == {"sent"}
    assert len(env.published("NotificationSent")) == 6


# --------------------------------------------------------------------------- organisers


async def test_a_sent_notification_can_be_resent_and_is_queued_at_once(env: Env) -> None:
    email, _ = await queued(env)
    d = dispatcher(env)
    await handlers.deliver(env.ctx, await claim(env, email.id))
    resent = await handlers.resend(env.ctx, email.id)
    assert (resent.status, resent.attempts, resent.resend_count) == ("pending", 0, 1)
    assert env.sends[-1] == email.id and d.queued == 1
    again = await d.claim_next()
    assert again.id == email.id and again.attempts == 1
    await d.deliver(again)
    assert len(env.email.sent) == 2 and env.store.notifications[email.id].resend_count == 1


async def test_resend_refuses_what_is_underway_erased_or_unknown(env: Env) -> None:
    email, sms = await queued(env)
    with pytest.raises(DomainError) as underway:
        await handlers.resend(env.ctx, email.id)
    assert underway.value.code == "delivery_in_progress"
    with pytest.raises(DomainError) as unknown:
        await handlers.resend(env.ctx, "nope")
    assert unknown.value.code == "notification_not_found"
    erased = PersonalDataErased(
        registration_id="reg-1", event_id="ev-1", reason="participant_request", erased_at=NOW
    )
    await handlers.erase_personal_data(env.ctx, received(erased, "ce-erase"))
    with pytest.raises(DomainError) as gone:
        await handlers.resend(env.ctx, sms.id)
    assert gone.value.code == "recipient_erased"


async def test_the_delivery_log_is_filtered_newest_first(env: Env) -> None:
    await register(env, 1)
    env.clock.advance(60)
    await register(env, 2)
    log = await handlers.list_notifications(env.ctx, {"channel": "email", "status": None}, 10)
    assert [n.registration_id for n in log] == ["reg-2", "reg-1"]
    one = await handlers.list_notifications(env.ctx, {"registration_id": "reg-1"}, 10)
    assert {n.channel for n in one} == {"email", "sms"}
    assert len(await handlers.list_notifications(env.ctx, {}, 3)) == 3


# --------------------------------------------------------------------------- self-service links

LINK_1 = "http://reg.example/my/" + "a" * 48
LINK_2 = "http://reg.example/my/" + "b" * 48


async def test_the_latest_self_service_link_goes_into_every_later_message(env: Env) -> None:
    await handlers.record_catalogue_event(env.ctx, received(catalogue(EventPublished), "ce-pub"))
    await register(env, 1, self_service_url=LINK_1)
    await register(env, 2)  # a notice without a link (an old record)
    (confirmation,) = [n for n in env.log(channel="email") if n.registration_id == "reg-1"]
    assert confirmation.context["self_service_url"] == LINK_1
    assert env.store.participants["reg-1"]["self_service_url"] == LINK_1
    # A later notice brings a fresh link; one without a link keeps the last.
    update = RegistrationUpdatedNotice(
        registration_id="reg-1",
        reference="MK-AAAA-0001",
        event=DETAILS,
        participant=contact(1),
        status="confirmed",
        ticket="t.1",
        changed_fields=["position"],
        self_service_url=LINK_2,
    )
    await handlers.record_registration_event(env.ctx, received(update, "ce-upd-1", NOW))
    assert env.store.participants["reg-1"]["self_service_url"] == LINK_2
    env.store.notifications.clear()
    # Event changes, reminders and announcements carry it (and omit it where none came).
    moved = DETAILS.model_copy(update={"venue": "JNICC"})
    change = catalogue(EventUpdated, event=moved, changed_fields=["venue"])
    await handlers.record_catalogue_event(env.ctx, received(change, "ce-moved"))
    env.clock.advance(23 * DAY + 1)
    reminder = await handlers.claim_reminder(env.ctx)
    assert reminder is not None
    await handlers.fire_reminder(env.ctx, reminder)
    progress = await handlers.create_announcement(env.ctx, SPEC)
    announcement = await handlers.claim_announcement(env.ctx)
    assert announcement is not None and announcement.id == progress["id"]
    await handlers.fan_out_batch(env.ctx, announcement)
    emails = env.log(channel="email")
    assert {n.template for n in emails} == {"event_changed", "reminder", "announcement"}
    for n in emails:
        expected = LINK_2 if n.registration_id == "reg-1" else None
        assert n.context["self_service_url"] == expected, (n.template, n.registration_id)
    # An erased participant's copy keeps no link.
    erased = PersonalDataErased(
        registration_id="reg-1", event_id="ev-1", reason="participant_request", erased_at=NOW
    )
    await handlers.erase_personal_data(env.ctx, received(erased, "ce-erase"))
    assert "self_service_url" not in env.store.participants["reg-1"]
