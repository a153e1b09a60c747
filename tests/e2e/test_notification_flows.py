"""Notification end to end on the session platform: events in (Kafka), emails and SMS out.

Registration notices are published straight onto ``registration.notices.v1`` as
CloudEvents (the registration service emits the same ones; catalogue events and
``PersonalDataErased`` onto ``registration.v1``); the confirmation flow also goes through the
real registration service. Absence ("nothing more was sent") is proven with a sentinel:
a later event on the same partition (same record key), whose message arriving means the
earlier ones were processed.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from shared.contracts import registration as reg
from shared.contracts import registration_notices as notices
from shared.contracts import resolutions_notices
from shared.contracts.base import IntegrationEvent
from shared.topics import NOTIFICATION, REGISTRATION, RESOLUTIONS_NOTICES, dead_letter_topic
from tests.helpers import (
    TopicReader,
    cloudevent_headers,
    create_event,
    participant,
    publish_raw,
    unique_id,
)
from tests.stack import wait_until

pytestmark = pytest.mark.e2e

# --------------------------------------------------------------------------- builders


def event_details(event_id: str | None = None, *, starts_in_s: float = 30 * 86400) -> dict:
    """An event's details as registration events carry them."""
    event_id = event_id or unique_id("ev")
    start = datetime.now(UTC) + timedelta(seconds=starts_in_s)
    return {
        "event_id": event_id,
        "code": event_id.upper()[:16],
        "title_sw": "Semina ya Serikali Mtandao",
        "title_en": "e-Government Seminar",
        "venue": "AICC",
        "city": "Arusha",
        "starts_at": start.isoformat(),
        "ends_at": (start + timedelta(days=2)).isoformat(),
    }


def contact(language: str = "sw", **overrides: Any) -> dict:
    """A participant's contact details with a unique email and phone."""
    n = uuid.uuid4().int % 10_000_000
    return {
        "full_name": "Asha Juma Mwinyi",
        "email": f"asha.{uuid.uuid4().hex[:10]}@example.go.tz",
        "phone": f"+255712{n:07d}"[:13],
        "language": language,
        "institution": "e-Government Authority",
        **overrides,
    }


NOTICE_OF: dict[type[IntegrationEvent], type[IntegrationEvent]] = {
    reg.ParticipantRegistered: notices.ParticipantRegisteredNotice,
    reg.ParticipantWaitlisted: notices.ParticipantWaitlistedNotice,
    reg.WaitlistPromoted: notices.WaitlistPromotedNotice,
    reg.RegistrationApproved: notices.RegistrationApprovedNotice,
    reg.RegistrationRejected: notices.RegistrationRejectedNotice,
    reg.RegistrationUpdated: notices.RegistrationUpdatedNotice,
    reg.RegistrationCancelled: notices.RegistrationCancelledNotice,
    reg.ParticipantCheckedIn: notices.ParticipantCheckedInNotice,
    reg.ConfirmationResendRequested: notices.ConfirmationResendRequestedNotice,
}


def registration(
    cls: type[IntegrationEvent] = reg.ParticipantRegistered,
    *,
    event: dict,
    person: dict,
    registration_id: str | None = None,
    status: str = "confirmed",
    legacy: bool = False,
    **fields: Any,
) -> IntegrationEvent:
    """A registration event of class ``cls`` (the class's own fields in ``fields``)."""
    now = datetime.now(UTC)
    registration_id = registration_id or str(uuid.uuid4())
    defaults: dict[str, Any] = {
        reg.ParticipantRegistered: {"cadre": "ict_officer", "registered_at": now},
        reg.WaitlistPromoted: {"promoted_at": now},
        reg.RegistrationCancelled: {"cancelled_at": now, "cancelled_by": "participant"},
        reg.ParticipantCheckedIn: {"checked_in_at": now, "day": now.date().isoformat()},
        reg.RegistrationUpdated: {"updated_at": now, "changed_fields": ["phone"]},
        reg.RegistrationRejected: {"rejected_at": now, "rejected_by": "org", "reason": "-"},
    }.get(cls, {})
    built = cls(
        registration_id=registration_id,
        reference=f"MK-{uuid.uuid4().hex[:4].upper()}-{uuid.uuid4().hex[:4].upper()}",
        event=event,
        participant=person,
        status=status,
        **{**defaults, **fields},
    )
    # What registration publishes for notification now: the change's private notice on
    # registration.notices.v1 (the version-1 event is retired; `legacy=True` keeps it).
    notice = NOTICE_OF.get(cls)
    return built if legacy or notice is None else notice(**built.model_dump())


async def publish(
    bootstrap: str, event: IntegrationEvent, *, ce_id: str | None = None, key: str | None = None
) -> str:
    """Publish one event as a binary-mode CloudEvent; returns its ce_id."""
    headers = cloudevent_headers(event.ce_type(), ce_id=ce_id, source="/tests/notification")
    await publish_raw(
        bootstrap,
        event.topic,
        key=key or event.aggregate_id,
        headers=headers,
        value=event.model_dump_json().encode(),
    )
    return headers["ce_id"]


def to(address: str):
    """Predicate: an email to ``address``."""
    return lambda m: str(m["To"]).lower() == address.lower()


def template_of(m: EmailMessage) -> str:
    return str(m["X-Mkutano-Template"])


async def api(
    base: str, method: str, path: str, headers: dict | None = None, **kw: Any
) -> httpx.Response:
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        return await client.request(method, path, headers=headers, **kw)


# --------------------------------------------------------------------------- tests


async def test_participants_are_told_when_the_event_moves(platform) -> None:
    """Through the real services: an organiser moves the event (new dates, new venue);
    the confirmed and the waitlisted each get one ``event_changed`` email (and SMS) in
    their language, saying what it was; a new description alone sends nothing."""
    admin, base = platform.admin_headers, platform.registration.url
    event = await create_event(base, admin, capacity=1)
    path = f"/api/v1/events/{event['id']}/registrations"
    confirmed = participant(full_name="Rehema Juma Mtei", language="sw")
    waiting = participant(full_name="Peter Paul Mushi", language="en")
    created = []
    for body in (confirmed, waiting):
        r = await api(base, "POST", path, json=body)
        assert r.status_code == 201, r.text
        created.append(r.json())
    # Their first messages: this service knows them before the event moves.
    for body in (confirmed, waiting):
        await platform.smtp.wait_for(to(body["email"]), timeout=20)

    event_path = f"/api/v1/events/{event['id']}"
    r = await api(base, "PATCH", event_path, admin, json={"description_en": "New programme"})
    assert r.status_code == 200, r.text
    starts = datetime.fromisoformat(event["starts_at"]) + timedelta(days=7)
    change = {
        "starts_at": starts.isoformat(),
        "ends_at": (starts + timedelta(days=2)).isoformat(),
        "venue": "JNICC",
        "city": "Dar es Salaam",
    }
    r = await api(base, "PATCH", event_path, admin, json=change)
    assert r.status_code == 200, r.text

    def changed(address: str):
        return lambda m: to(address)(m) and template_of(m) == "event_changed"

    (sw,) = await platform.smtp.wait_for(changed(confirmed["email"]), timeout=20)
    (en,) = await platform.smtp.wait_for(changed(waiting["email"]), timeout=20)
    assert str(sw["Subject"]).startswith("Tarehe na mahali mapya")
    assert str(en["Subject"]).startswith("New dates and venue")
    text_sw = sw.get_body(("plain",)).get_content()
    text_en = en.get_body(("plain",)).get_content()
    local = starts.astimezone(timezone(timedelta(hours=3)))
    assert f"Tarehe mpya: {local:%d/%m/%Y %H:%M}" in text_sw
    assert "Mahali papya: JNICC, Dar es Salaam, badala ya AICC, Arusha" in text_sw
    assert "New venue: JNICC, Dar es Salaam, instead of AICC, Arusha" in text_en
    assert created[0]["reference"] in text_sw and created[1]["reference"] in text_en
    # The confirmed participant's calendar entry is updated; the waitlisted has none.
    (ics,) = [p for p in sw.iter_attachments() if p.get_content_type() == "text/calendar"]
    calendar = ics.get_content()
    assert f"UID:{created[0]['id']}@mkutano.ega.go.tz" in calendar and "SEQUENCE:" in calendar
    assert "LOCATION:JNICC\\, Dar es Salaam" in calendar
    assert not list(en.iter_attachments())
    await platform.sms.wait_for(
        lambda s: created[0]["reference"] in s["text"] and "mapya" in s["text"], timeout=20
    )
    # One message each: the description change before it sent nothing.
    for body in (confirmed, waiting):
        assert len([m for m in platform.smtp.messages() if changed(body["email"])(m)]) == 1


async def test_registration_sends_one_confirmation_in_swahili_with_qr_ics_and_sms(
    platform,
) -> None:
    event = await create_event(platform.registration.url, platform.admin_headers, capacity=5)
    body = participant(full_name="Baraka Mussa Kweka", language="sw")
    r = await api(
        platform.registration.url, "POST", f"/api/v1/events/{event['id']}/registrations", json=body
    )
    assert r.status_code == 201, r.text
    created = r.json()

    (mail,) = await platform.smtp.wait_for(to(body["email"]), timeout=20)
    assert str(mail["Subject"]).startswith("Usajili umethibitishwa")
    assert mail["Content-Language"] == "sw"
    text = mail.get_body(("plain",)).get_content()
    assert "Baraka Mussa Kweka" in text and created["reference"] in text and "AICC" in text
    kinds = sorted(p.get_content_type() for p in mail.iter_attachments())
    assert kinds == ["image/png", "text/calendar"]

    (sms,) = await platform.sms.wait_for(lambda s: created["reference"] in s["text"], timeout=20)
    assert sms["text"].startswith("e-GA: Usajili wako")

    # The delivery log: both sent, the SMS with its segment count; the events on the topic.
    async def log_entries() -> list[dict] | None:
        r = await api(
            platform.notification.url,
            "GET",
            "/api/v1/notifications",
            platform.admin_headers,
            params={"registration_id": created["id"]},
        )
        entries = r.json()
        return (
            entries if len(entries) == 2 and all(e["status"] == "sent" for e in entries) else None
        )

    entries = await wait_until(log_entries, timeout=10)
    by_channel = {e["channel"]: e for e in entries}
    assert by_channel["sms"]["segments"] == 1 and by_channel["email"]["attempts"] == 1
    async with TopicReader(platform.kafka.bootstrap, [NOTIFICATION]) as reader:
        sent = await reader.wait_for(
            lambda rec: (rec.value or {}).get("registration_id") == created["id"], count=2
        )
    assert {r.ce_type for r in sent} == {"tz.go.ega.notification.NotificationSent.v1"}
    assert len([m for m in platform.smtp.messages() if to(body["email"])(m)]) == 1


async def test_same_event_delivered_twice_sends_one_email(platform) -> None:
    event = event_details()
    person = contact("en")
    first = registration(event=event, person=person, ticket="t.x")
    ce_id = await publish(platform.kafka.bootstrap, first)
    await publish(platform.kafka.bootstrap, first, ce_id=ce_id)  # redelivered / duplicated
    # Sentinel on the same partition: once it is handled, the duplicate was too.
    late = registration(
        reg.RegistrationUpdated, event=event, person=person, registration_id=first.registration_id
    )
    await publish(platform.kafka.bootstrap, late)
    await platform.smtp.wait_for(lambda m: to(person["email"])(m) and template_of(m) == "updated")
    mails = [m for m in platform.smtp.messages() if to(person["email"])(m)]
    assert sorted(template_of(m) for m in mails) == ["confirmation", "updated"]


async def test_poison_events_go_to_the_dead_letter_topic_and_consumption_goes_on(platform) -> None:
    bootstrap = platform.kafka.bootstrap
    key = str(uuid.uuid4())
    unknown = cloudevent_headers("tz.go.ega.registration.NoSuchThing.v1")
    await publish_raw(bootstrap, REGISTRATION, key=key, headers=unknown, value=b'{"x": 1}')
    invalid = cloudevent_headers(reg.ParticipantRegistered.ce_type())
    await publish_raw(
        bootstrap,
        REGISTRATION,
        key=key,
        headers=invalid,
        value=b'{"registration_id": "r-1", "status": "nonsense"}',
    )
    person = contact("en")
    await publish(bootstrap, registration(event=event_details(), person=person), key=key)

    (mail,) = await platform.smtp.wait_for(to(person["email"]), timeout=20)
    assert template_of(mail) == "confirmation"
    async with TopicReader(bootstrap, [dead_letter_topic("notification")]) as reader:
        dead = await reader.wait_for(
            lambda r: r.ce_id in (unknown["ce_id"], invalid["ce_id"]), count=2
        )
    reasons = {r.ce_id: r.headers for r in dead}
    assert reasons[unknown["ce_id"]]["dlq_reason"] == "unknown_type"
    assert reasons[invalid["ce_id"]]["dlq_reason"] == "invalid_payload"
    assert "status" in reasons[invalid["ce_id"]]["dlq_error"]
    assert reasons[invalid["ce_id"]]["dlq_original_topic"] == REGISTRATION


async def test_registration_lifecycle_messages_in_the_participants_language(platform) -> None:
    bootstrap = platform.kafka.bootstrap
    event = event_details()
    person = contact("en")
    rid = str(uuid.uuid4())
    kw = {"event": event, "person": person, "registration_id": rid}
    await publish(
        bootstrap,
        registration(
            reg.ParticipantWaitlisted,
            status="waitlisted",
            waitlist_position=2,
            waitlisted_at=datetime.now(UTC),
            **kw,
        ),
    )
    await publish(bootstrap, registration(reg.WaitlistPromoted, ticket="t.1", **kw))
    day1 = registration(reg.ParticipantCheckedIn, day="2025-02-11", **kw)
    day2 = registration(reg.ParticipantCheckedIn, day="2025-02-12", **kw)
    await publish(bootstrap, day1)
    await publish(bootstrap, day2)
    await publish(
        bootstrap,
        registration(reg.RegistrationCancelled, status="cancelled", reason="Changed plans", **kw),
    )
    mails = await platform.smtp.wait_for(
        lambda m: to(person["email"])(m) and template_of(m) == "cancelled", timeout=20
    )
    mails = [m for m in platform.smtp.messages() if to(person["email"])(m)]
    assert [template_of(m) for m in mails].count("checked_in") == 1  # thanked once, not daily
    assert sorted(template_of(m) for m in mails) == [
        "cancelled",
        "checked_in",
        "promoted",
        "waitlisted",
    ]
    subjects = {template_of(m): str(m["Subject"]) for m in mails}
    assert subjects["waitlisted"].startswith("You are on the waiting list")
    assert subjects["promoted"].startswith("A seat is yours")
    assert subjects["cancelled"].startswith("Registration cancelled")
    promoted = next(m for m in mails if template_of(m) == "promoted")
    assert {p.get_content_type() for p in promoted.iter_attachments()} == {
        "image/png",
        "text/calendar",
    }
    cancelled = next(m for m in mails if template_of(m) == "cancelled")
    assert "Changed plans" in cancelled.get_body(("plain",)).get_content()


async def test_erasure_removes_the_contact_copy_and_stops_messages(platform) -> None:
    bootstrap = platform.kafka.bootstrap
    event = event_details()
    person = contact("sw")
    rid = str(uuid.uuid4())
    await publish(bootstrap, registration(event=event, person=person, registration_id=rid))
    await platform.smtp.wait_for(to(person["email"]))
    await publish(
        bootstrap,
        reg.PersonalDataErased(
            registration_id=rid,
            event_id=event["event_id"],
            reason="participant_request",
            erased_at=datetime.now(UTC),
        ),
    )
    # The erasure (registration.v1) and the notices (registration.notices.v1) are on two
    # topics, with no order between them: wait for the erasure to be applied, then a late
    # notice for the erased registration, then a sentinel on the same partition.
    mongo = AsyncMongoClient(platform.mongo.url)
    participants = mongo[platform.notification.env["NOTIFICATION_MONGO_DB"]]["participants"]
    try:
        await wait_until(
            lambda: participants.find_one({"_id": rid, "erased": True}),
            timeout=15,
            message="the erasure was not applied",
        )
    finally:
        await mongo.close()
    await publish(
        bootstrap,
        registration(reg.RegistrationUpdated, event=event, person=person, registration_id=rid),
    )
    other = contact("sw")
    await publish(bootstrap, registration(event=event, person=other), key=rid)
    await platform.smtp.wait_for(to(other["email"]))
    assert [template_of(m) for m in platform.smtp.messages() if to(person["email"])(m)] == [
        "confirmation"
    ]
    r = await api(
        platform.notification.url,
        "GET",
        "/api/v1/notifications",
        platform.admin_headers,
        params={"registration_id": rid},
    )
    (entry,) = [e for e in r.json() if e["channel"] == "email"]
    resent = await api(
        platform.notification.url,
        "POST",
        f"/api/v1/notifications/{entry['id']}/resend",
        platform.admin_headers,
    )
    assert resent.status_code == 409
    assert resent.json()["error"]["code"] == "recipient_erased"


async def test_resolution_update_emails_each_focal_person_in_their_language(platform) -> None:
    people = [
        {
            "full_name": "Juma Hassan",
            "institution": "TAMISEMI",
            "email": f"juma.{uuid.uuid4().hex[:8]}@example.go.tz",
            "language": "sw",
        },
        {
            "full_name": "Grace Mushi",
            "institution": "e-GA",
            "email": f"grace.{uuid.uuid4().hex[:8]}@example.go.tz",
            "language": "en",
        },
    ]
    # What notification reads: the notice on the private resolutions.notices.v1.
    update = resolutions_notices.ResolutionUpdatedNotice(
        resolution_id=str(uuid.uuid4()),
        conference_id="egov-2024",
        number=7,
        title_sw="Kuimarisha usalama wa mifumo",
        title_en="Strengthen systems security",
        status="in_progress",
        progress=60,
        version=3,
        focal_persons=people,
        previous_status="in_progress",
        previous_progress=40,
        note="Taasisi 30 zimekaguliwa",
        updated_at=datetime.now(UTC),
    )
    assert update.topic == RESOLUTIONS_NOTICES
    await publish(platform.kafka.bootstrap, update)
    sw = (await platform.smtp.wait_for(to(people[0]["email"])))[0]
    en = (await platform.smtp.wait_for(to(people[1]["email"])))[0]
    assert str(sw["Subject"]) == "Azimio Na. 7: maendeleo yamerekodiwa (asilimia 60)"
    assert str(en["Subject"]) == "Resolution 7: progress recorded (60%)"
    assert "Taasisi 30 zimekaguliwa" in en.get_body(("plain",)).get_content()


async def test_announcement_reaches_confirmed_participants_of_a_cadre(platform) -> None:
    bootstrap = platform.kafka.bootstrap
    event = event_details()
    people = {
        name: contact("en" if name.endswith("en") else "sw")
        for name in ("ict_sw", "ict_en", "director_sw", "cancelled_sw")
    }
    for name, person in people.items():
        cadre = "director" if name.startswith("director") else "ict_officer"
        rid = str(uuid.uuid4())
        await publish(
            bootstrap, registration(event=event, person=person, registration_id=rid, cadre=cadre)
        )
        if name.startswith("cancelled"):
            await publish(
                bootstrap,
                registration(
                    reg.RegistrationCancelled,
                    event=event,
                    person=person,
                    registration_id=rid,
                    status="cancelled",
                ),
            )
    # Every registration is on its own partition: wait until each one was handled.
    await platform.smtp.wait_for(
        lambda m: to(people["cancelled_sw"]["email"])(m) and template_of(m) == "cancelled"
    )
    for name in ("ict_sw", "ict_en", "director_sw"):
        await platform.smtp.wait_for(to(people[name]["email"]))
    headers = platform.admin_headers
    spec = {
        "event_id": event["event_id"],
        "cadre": "ict_officer",
        "subject_sw": "Mabadiliko ya ratiba",
        "subject_en": "Programme change",
        "body_sw": "Ufunguzi utaanza saa 3 asubuhi.",
        "body_en": "The opening starts at 9 am.",
    }
    bad = await api(
        platform.notification.url,
        "POST",
        "/api/v1/announcements",
        headers,
        json={**spec, "subject_en": ""},
    )
    assert bad.status_code == 422
    assert any(f["field"].endswith("subject_en") for f in bad.json()["error"]["fields"])
    assert (
        await api(platform.notification.url, "POST", "/api/v1/announcements", json=spec)
    ).status_code == 401
    r = await api(platform.notification.url, "POST", "/api/v1/announcements", headers, json=spec)
    assert r.status_code == 202, r.text
    announcement = r.json()
    assert announcement["total"] == 2  # two confirmed ICT officers; not the cancelled one

    async def finished() -> dict | None:
        r = await api(
            platform.notification.url, "GET", f"/api/v1/announcements/{announcement['id']}", headers
        )
        body = r.json()
        return body if body["status"] == "done" else None

    progress = await wait_until(finished, timeout=15)
    assert (progress["sent"], progress["failed"], progress["pending"]) == (2, 0, 0)
    sw = (
        await platform.smtp.wait_for(
            lambda m: to(people["ict_sw"]["email"])(m) and template_of(m) == "announcement"
        )
    )[0]
    assert str(sw["Subject"]).startswith("Mabadiliko ya ratiba")
    assert "Ufunguzi utaanza saa 3 asubuhi." in sw.get_body(("plain",)).get_content()
    for name in ("director_sw", "cancelled_sw"):
        assert not [
            m
            for m in platform.smtp.messages()
            if to(people[name]["email"])(m) and template_of(m) == "announcement"
        ]
    missing = await api(platform.notification.url, "GET", "/api/v1/announcements/nope", headers)
    assert (
        missing.status_code == 404 and missing.json()["error"]["code"] == "announcement_not_found"
    )


async def test_reminder_rules_api_validates_and_schedules(platform) -> None:
    event = event_details(starts_in_s=10 * 86400)
    person = contact("sw")
    bootstrap = platform.kafka.bootstrap
    await publish(bootstrap, registration(event=event, person=person))
    await platform.smtp.wait_for(to(person["email"]))
    url, headers = platform.notification.url, platform.admin_headers
    path = f"/api/v1/events/{event['event_id']}/reminder-rules"
    r = await api(url, "GET", path, headers)
    assert r.status_code == 200 and r.json()["source"] == "default"
    assert [x["offset_s"] for x in r.json()["reminders"]] == [7 * 86400, 86400]
    for body, field in [
        ({"offsets_s": [-5]}, "offsets_s"),
        ({"offsets_s": [3600, 3600]}, "offsets_s"),
        ({"offset": [1]}, "offset"),
    ]:
        bad = await api(url, "PUT", path, headers, json=body)
        assert bad.status_code == 422, bad.text
        assert any(field in f["field"] for f in bad.json()["error"]["fields"]), bad.text
    r = await api(url, "PUT", path, headers, json={"offsets_s": [3600, 2 * 86400]})
    assert r.status_code == 200, r.text
    view = r.json()
    assert view["source"] == "event" and view["offsets_s"] == [2 * 86400, 3600]
    pending = [x for x in view["reminders"] if x["status"] == "pending"]
    assert sorted(x["offset_s"] for x in pending) == [3600, 2 * 86400]
    assert {x["offset_s"] for x in view["reminders"] if x["status"] == "cancelled"} == {
        7 * 86400,
        86400,
    }
    assert (await api(url, "PUT", path, json={"offsets_s": None})).status_code == 401

    # The event moves a day later: fresh reminders at the new times, the old ones cancelled.
    moved = {
        **event,
        "starts_at": (datetime.fromisoformat(event["starts_at"]) + timedelta(days=1)).isoformat(),
    }
    await publish(
        bootstrap,
        reg.EventUpdated(event_id=event["event_id"], event=moved, capacity=10, state="published"),
    )

    async def reminders(status: str) -> list:
        view = (await api(url, "GET", path, headers)).json()
        return [x for x in view["reminders"] if x["status"] == status]

    async def rescheduled() -> bool:
        view = (await api(url, "GET", path, headers)).json()
        return len(await reminders("pending")) == 2 and len(view["reminders"]) == 6

    await wait_until(rescheduled, timeout=10)

    # Registration closes (the event still takes place) and the venue changes with it:
    # the participant is told, and the reminders stay.
    hall = {**moved, "venue": "Simba Hall"}
    await publish(
        bootstrap,
        reg.EventUpdated(
            event_id=event["event_id"],
            event=hall,
            capacity=10,
            state="closed",
            changed_fields=["state", "venue"],
        ),
    )
    (told,) = await platform.smtp.wait_for(
        lambda m: to(person["email"])(m) and template_of(m) == "event_changed", timeout=20
    )
    assert "Simba Hall" in told.get_body(("plain",)).get_content()
    assert len(await reminders("pending")) == 2

    # Then it is cancelled: no reminder is left pending.
    await publish(
        bootstrap,
        reg.EventCancelled(event_id=event["event_id"], event=hall, capacity=10, state="cancelled"),
    )

    async def all_cancelled() -> bool:
        return not await reminders("pending")

    await wait_until(all_cancelled, timeout=10)
    view = (await api(url, "GET", path, headers)).json()
    assert sorted(x["status"] for x in view["reminders"]) == ["cancelled"] * 6


async def test_resend_sends_the_same_message_again(platform) -> None:
    person = contact("en")
    first = registration(event=event_details(), person=person, ticket="t.y")
    await publish(platform.kafka.bootstrap, first)
    (mail,) = await platform.smtp.wait_for(to(person["email"]))
    notification_id = str(mail["X-Mkutano-Notification"])

    async def sent() -> bool:
        r = await api(
            platform.notification.url,
            "GET",
            "/api/v1/notifications",
            platform.admin_headers,
            params={"registration_id": first.registration_id, "channel": "email"},
        )
        return r.json()[0]["status"] == "sent"

    await wait_until(sent, timeout=10)
    r = await api(
        platform.notification.url,
        "POST",
        f"/api/v1/notifications/{notification_id}/resend",
        platform.admin_headers,
    )
    assert r.status_code == 202, r.text
    mails = await platform.smtp.wait_for(to(person["email"]), count=2)
    assert {m["Message-ID"] for m in mails} == {mail["Message-ID"]}  # receivers see one message
    r = await api(
        platform.notification.url,
        "POST",
        "/api/v1/notifications/nope/resend",
        platform.admin_headers,
    )
    assert r.status_code == 404
