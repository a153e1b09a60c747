"""The registration service as a process, driven over HTTP as frontends, organisers and
registrars would; results checked in the answers, the service's MongoDB, on the public
``registration.v1`` and on the private ``registration.notices.v1`` (read with plain
aiokafka)."""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from shared.topics import REGISTRATION, REGISTRATION_NOTICES
from tests.helpers import TopicReader, create_event, participant

pytestmark = pytest.mark.e2e
T = "tz.go.ega.registration."


@pytest.fixture
async def api(platform) -> AsyncIterator[httpx.AsyncClient]:
    # Idle connections dropped before the services' 5 s keep-alive (else a ReadError).
    limits = httpx.Limits(max_connections=50, max_keepalive_connections=50, keepalive_expiry=2)
    async with httpx.AsyncClient(
        base_url=platform.registration.url, timeout=30, limits=limits
    ) as client:
        yield client


@pytest.fixture
async def db(platform) -> AsyncIterator[Any]:
    client: AsyncMongoClient = AsyncMongoClient(platform.mongo.url, tz_aware=True)
    yield client[platform.registration.env["REGISTRATION_MONGO_DB"]]
    await client.close()


# The versions registration publishes now: the public events' version 2, the notices' 1.
PUBLISHED = {"registration.v1": ".v2", "registration.notices.v1": ".v1"}


def of_event(event_id: str, ce_type: str):
    """Records of one type (``…Notice`` for a notice) for one event, as published now."""
    return lambda r: (
        r.ce_type == T + ce_type + PUBLISHED[r.topic]
        and isinstance(r.value, dict)  # other tests put poison records on the topics
        and ((r.value or {}).get("event", {}).get("event_id") == event_id)
    )


PUBLIC_PARTICIPANT = {"institution", "cadre", "language", "category", "institution_code"}


async def test_200_concurrent_registrations_for_10_seats_then_one_cancellation(
    platform, api, db
) -> None:
    event = await create_event(platform.registration.url, platform.admin_headers, capacity=10)
    url = f"/api/v1/events/{event['id']}/registrations"
    answers = await asyncio.gather(*(api.post(url, json=participant()) for _ in range(200)))

    assert [a.status_code for a in answers] == [201] * 200
    bodies = [a.json() for a in answers]
    confirmed = [b for b in bodies if b["status"] == "confirmed"]
    waitlisted = [b for b in bodies if b["status"] == "waitlisted"]
    assert len(confirmed) == 10 and len(waitlisted) == 190
    assert sorted(b["waitlist_position"] for b in waitlisted) == list(range(1, 191))
    assert len({b["reference"] for b in bodies}) == 200
    stored = await db.events.find_one({"_id": event["id"]})
    assert stored["seats_taken"] == 10
    assert (
        await db.registrations.count_documents({"event_id": event["id"], "status": "confirmed"})
        == 10
    )
    assert (await api.get(f"/api/v1/events/{event['id']}")).json()["seats_left"] == 0

    # One confirmed participant cancels: exactly the first in line is promoted.
    leaving = confirmed[0]
    r = await api.post(
        f"/api/v1/registrations/{leaving['reference']}/cancel",
        headers={"X-Manage-Token": leaving["manage_token"]},
    )
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    first = next(b for b in waitlisted if b["waitlist_position"] == 1)
    assert (await db.registrations.find_one({"_id": first["id"]}))["status"] == "confirmed"
    assert (
        await db.registrations.count_documents({"event_id": event["id"], "status": "confirmed"})
        == 10
    )

    async with TopicReader(
        platform.kafka.bootstrap, [REGISTRATION, REGISTRATION_NOTICES]
    ) as reader:
        await reader.wait_for(of_event(event["id"], "ParticipantRegistered"), count=200)
        await reader.wait_for(of_event(event["id"], "ParticipantWaitlisted"), count=190)
        (cancelled,) = await reader.wait_for(of_event(event["id"], "RegistrationCancelled"))
        (promoted,) = await reader.wait_for(of_event(event["id"], "WaitlistPromoted"))
        (notice,) = await reader.wait_for(of_event(event["id"], "WaitlistPromotedNotice"))
    assert cancelled.key == leaving["id"] and cancelled.value["cancelled_by"] == "participant"
    # The public record: no ticket, no contact details; the private notice has both.
    assert promoted.key == first["id"] and "ticket" not in promoted.value
    assert set(promoted.value["participant"]) == PUBLIC_PARTICIPANT
    assert notice.key == first["id"] and notice.value["ticket"]
    assert notice.value["participant"]["email"].endswith("@example.go.tz")


async def test_idempotency_key_and_duplicate_email(platform, api, db) -> None:
    event = await create_event(platform.registration.url, platform.admin_headers)
    url = f"/api/v1/events/{event['id']}/registrations"
    body = participant(email="Juma.Hassan@Example.GO.TZ", phone="+255 754 123 456")
    key = {"Idempotency-Key": "retry-1"}
    first = await api.post(url, json=body, headers=key)
    again = await api.post(url, json=body, headers=key)
    assert first.status_code == again.status_code == 201
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json()["id"] == first.json()["id"]
    other = await api.post(url, json=participant(), headers=key)
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    assert await db.registrations.count_documents({"event_id": event["id"]}) == 1
    stored = await db.registrations.find_one({"_id": first.json()["id"]})
    assert stored["email"] == "juma.hassan@example.go.tz" and stored["phone"] == "+255754123456"
    assert stored["consent"]["accepted"] and stored["consent"]["notice_version"]
    assert "manage_token" not in stored and len(stored["manage_token_hash"]) == 64

    dup = await api.post(url, json=participant(email="juma.hassan@example.go.tz"))
    assert dup.status_code == 409
    error = dup.json()["error"]
    assert error["code"] == "already_registered"
    assert "Juma" not in dup.text and first.json()["reference"] not in dup.text
    async with TopicReader(platform.kafka.bootstrap, [REGISTRATION_NOTICES]) as reader:
        (resend,) = await reader.wait_for(
            of_event(event["id"], "ConfirmationResendRequestedNotice")
        )
    assert resend.value["participant"]["email"] == "juma.hassan@example.go.tz"


async def test_bad_input_is_refused_clearly_and_changes_nothing(platform, api, db) -> None:
    event = await create_event(platform.registration.url, platform.admin_headers)
    url = f"/api/v1/events/{event['id']}/registrations"
    cases = [
        (participant(nickname="x"), "nickname", "unknown field"),
        (participant(phone="12"), "phone", None),
        (participant(phone="0712 34"), "phone", None),
        (participant(email="not-an-email"), "email", None),
        (participant(cadre="minister"), "cadre", None),
        (participant(language="fr"), "language", None),
        (participant(full_name="x" * 500), "full_name", None),
        (participant(accessibility_needs=["jetpack"]), "accessibility_needs.0", None),
        (participant(consent={"accepted": False}), "consent.accepted", None),
        ({k: v for k, v in participant().items() if k != "consent"}, "consent", "required"),
    ]
    for body, field, reason in cases:
        r = await api.post(url, json=body)
        assert r.status_code == 422, (field, r.text)
        problems = {f["field"]: f["reason"] for f in r.json()["error"]["fields"]}
        assert field in problems, (field, problems)
        if reason:
            assert problems[field] == reason
    r = await api.post(url, content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    r = await api.post(url, content=b"full_name=x", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415 and r.json()["error"]["code"] == "unsupported_media_type"
    r = await api.post(url, json=participant(dietary_needs="x" * 200_000))
    assert r.status_code == 413
    assert await db.registrations.count_documents({"event_id": event["id"]}) == 0

    now = datetime.now(UTC)
    closed = await create_event(
        platform.registration.url,
        platform.admin_headers,
        registration_closes_at=(now - timedelta(hours=1)).isoformat(),
    )
    only_ps = await create_event(
        platform.registration.url, platform.admin_headers, admitted_cadres=["permanent_secretary"]
    )
    r1 = await api.post(f"/api/v1/events/{closed['id']}/registrations", json=participant())
    r2 = await api.post(f"/api/v1/events/{only_ps['id']}/registrations", json=participant())
    r3 = await api.post("/api/v1/events/no-such-event/registrations", json=participant())
    assert (r1.status_code, r1.json()["error"]["code"]) == (409, "registration_closed")
    assert (r2.status_code, r2.json()["error"]["code"]) == (409, "cadre_not_admitted")
    assert (r3.status_code, r3.json()["error"]["code"]) == (404, "event_not_found")
    r = await api.patch(
        f"/api/v1/events/{only_ps['id']}",
        json={"state": "cancelled"},
        headers=platform.admin_headers,
    )
    assert r.status_code == 200 and r.json()["state"] == "cancelled"
    body = participant(cadre="permanent_secretary")
    r = await api.post(f"/api/v1/events/{only_ps['id']}/registrations", json=body)
    assert (r.status_code, r.json()["error"]["code"]) == (409, "event_cancelled")
    assert (await api.patch(f"/api/v1/events/{only_ps['id']}", json={})).status_code == 401


async def test_self_service_and_check_in(platform, api) -> None:
    now = datetime.now(UTC)
    event = await create_event(
        platform.registration.url,
        platform.admin_headers,
        starts_at=(now - timedelta(hours=2)).isoformat(),
        ends_at=(now + timedelta(days=2)).isoformat(),
    )
    created = (
        await api.post(f"/api/v1/events/{event['id']}/registrations", json=participant())
    ).json()
    ref, token = created["reference"], {"X-Manage-Token": created["manage_token"]}

    mine = await api.get(f"/api/v1/registrations/{ref}", headers=token)
    assert mine.status_code == 200 and mine.json()["status"] == "confirmed"
    assert mine.json()["ticket"] and "manage_token_hash" not in mine.text
    wrong = await api.get(f"/api/v1/registrations/{ref}", headers={"X-Manage-Token": "nope"})
    unknown = await api.get("/api/v1/registrations/MK-22222-22222", headers=token)
    assert wrong.status_code == unknown.status_code == 404
    assert wrong.json() == unknown.json()

    refused = await api.patch(
        f"/api/v1/registrations/{ref}", json={"email": "x@example.go.tz"}, headers=token
    )
    assert refused.status_code == 422
    assert refused.json()["error"]["fields"] == [{"field": "email", "reason": "cannot be changed"}]
    bad = await api.patch(f"/api/v1/registrations/{ref}", json={"phone": "123"}, headers=token)
    assert bad.status_code == 422 and bad.json()["error"]["fields"][0]["field"] == "phone"
    changed = await api.patch(
        f"/api/v1/registrations/{ref}",
        json={"phone": "0754 000 222", "accessibility_needs": ["wheelchair_access"]},
        headers=token,
    )
    assert changed.status_code == 200
    assert changed.json()["phone"] == "+255754000222"

    scan = {"ticket": mine.json()["ticket"]}
    registrar = platform.admin_headers
    assert (await api.post("/api/v1/checkins", json=scan)).status_code == 401
    first = await api.post("/api/v1/checkins", json=scan, headers=registrar)
    assert first.status_code == 201, first.text
    second = await api.post("/api/v1/checkins", json=scan, headers=registrar)
    assert second.status_code == 409
    assert second.json()["error"]["code"] == "already_checked_in"
    assert second.json()["error"]["details"]["checked_in_at"] == first.json()["checked_in_at"]
    forged = await api.post("/api/v1/checkins", json={"ticket": "x" * 20}, headers=registrar)
    assert forged.status_code == 422

    cancel = await api.post(f"/api/v1/registrations/{ref}/cancel", headers=token)
    assert cancel.status_code == 200
    again = await api.post(f"/api/v1/registrations/{ref}/cancel", headers=token)
    assert again.status_code == 409
    async with TopicReader(
        platform.kafka.bootstrap, [REGISTRATION, REGISTRATION_NOTICES]
    ) as reader:
        (updated,) = await reader.wait_for(of_event(event["id"], "RegistrationUpdated"))
        (changed,) = await reader.wait_for(of_event(event["id"], "RegistrationUpdatedNotice"))
        (checked,) = await reader.wait_for(of_event(event["id"], "ParticipantCheckedIn"))
    assert updated.value["changed_fields"] == ["accessibility_needs", "phone"]
    assert "+255754000222" not in str(updated.value)
    assert changed.value["participant"]["phone"] == "+255754000222"
    assert checked.value["day"] == first.json()["day"]


async def test_approval_flow_over_http(platform, api) -> None:
    event = await create_event(
        platform.registration.url, platform.admin_headers, capacity=1, requires_approval=True
    )
    url = f"/api/v1/events/{event['id']}/registrations"
    a, b = [(await api.post(url, json=participant())).json() for _ in range(2)]
    assert a["status"] == b["status"] == "pending_approval"
    admin = platform.admin_headers
    ok = await api.post(f"/api/v1/registrations/{a['id']}/approve", headers=admin)
    no = await api.post(
        f"/api/v1/registrations/{b['id']}/reject", json={"reason": "Not nominated"}, headers=admin
    )
    assert ok.json()["status"] == "confirmed" and no.json()["status"] == "rejected"
    again = await api.post(f"/api/v1/registrations/{b['id']}/approve", headers=admin)
    assert (again.status_code, again.json()["error"]["code"]) == (409, "not_pending_approval")
    async with TopicReader(
        platform.kafka.bootstrap, [REGISTRATION, REGISTRATION_NOTICES]
    ) as reader:
        (approved,) = await reader.wait_for(of_event(event["id"], "RegistrationApproved"))
        (rejected,) = await reader.wait_for(of_event(event["id"], "RegistrationRejected"))
        (told,) = await reader.wait_for(of_event(event["id"], "RegistrationApprovedNotice"))
        (refusal,) = await reader.wait_for(of_event(event["id"], "RegistrationRejectedNotice"))
    assert approved.value["status"] == "confirmed" and "ticket" not in approved.value
    assert "reason" not in rejected.value and "approved_by" not in approved.value
    assert told.value["ticket"] and refusal.value["reason"] == "Not nominated"


async def test_reconcile_endpoint_repairs_a_leaked_seat(platform, api, db) -> None:
    event = await create_event(platform.registration.url, platform.admin_headers, capacity=3)
    url = f"/api/v1/events/{event['id']}/registrations"
    statuses = [(await api.post(url, json=participant())).json()["status"] for _ in range(2)]
    assert statuses == ["confirmed", "confirmed"]
    # Crash simulation: a seat taken in Mongo, the process died before its registration.
    # (the counters a seat of a category without a quota moves)
    await db.events.update_one(
        {"_id": event["id"]},
        {"$inc": {"seats_taken": 1, "committed": 1, "category_taken.ict_officer": 1}},
    )
    late = (await api.post(url, json=participant())).json()
    assert late["status"] == "waitlisted"  # the leaked seat hurts someone

    r = await api.post(f"/api/v1/events/{event['id']}/reconcile", headers=platform.admin_headers)

    assert r.status_code == 200, r.text
    assert r.json() == {"seats_taken_before": 3, "recounted": 2, "seats_taken": 3, "promoted": 1}
    assert (await db.events.find_one({"_id": event["id"]}))["seats_taken"] == 3
    assert (await db.registrations.find_one({"_id": late["id"]}))["status"] == "confirmed"
    assert (
        await db.registrations.count_documents({"event_id": event["id"], "status": "confirmed"})
        == 3
    )
    again = await api.post(
        f"/api/v1/events/{event['id']}/reconcile", headers=platform.admin_headers
    )
    assert again.json() == {
        "seats_taken_before": 3,
        "recounted": 3,
        "seats_taken": 3,
        "promoted": 0,
    }


async def test_organiser_lists_exports_and_counts(platform, api, db) -> None:
    admin = platform.admin_headers
    event = await create_event(platform.registration.url, admin, capacity=20_000)
    url = f"/api/v1/events/{event['id']}/registrations"
    for i, region in enumerate(["Arusha", "Dodoma", "Arusha"]):
        body = participant(full_name=f"Afisa Mfano {i}", region=region, institution="TRA")
        assert (await api.post(url, json=body)).status_code == 201
    # 10,000 more, straight into the service's database (what an import would leave).
    base = int(datetime.now(UTC).timestamp() * 1_000_000)
    rows = [
        {
            "_id": str(uuid.uuid4()),  # as the service writes them
            "reference": f"MK-BULK{i:05d}-{event['id'][-6:]}",
            "event_id": event["id"],
            "status": "confirmed",
            "full_name": f"Mshiriki {i}",
            "email": f"bulk{i}@{event['id']}.example.go.tz",
            "phone": "+255712000000",
            "institution": "e-GA",
            "position": "Afisa",
            "cadre": "other_officer",
            "region": None,
            "language": "sw",
            "accessibility_needs": [],
            "checkins": {},
            "consent": {"accepted": True},
            "created_at": "2099-01-01T00:00:00.000000Z",
            "created_us": base + 1_000_000 + i,
            "updated_at": "2099-01-01T00:00:00.000000Z",
            "rev": 1,
            "outbox": [],
            "outbox_pending": False,
            "outbox_lease_until": 0.0,
        }
        for i in range(10_000)
    ]
    await db.registrations.insert_many(rows, ordered=False)

    r = await api.get(url, params={"region": "Arusha"}, headers=admin)
    assert [i["full_name"] for i in r.json()["items"]] == ["Afisa Mfano 0", "Afisa Mfano 2"]
    r = await api.get(url, params={"q": "mfano 1"}, headers=admin)
    assert [i["full_name"] for i in r.json()["items"]] == ["Afisa Mfano 1"]
    seen, cursor = [], None
    for _ in range(5):
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await api.get(url, params=params, headers=admin)).json()
        seen += [i["full_name"] for i in page["items"]]
        cursor = page["next_cursor"]
    assert seen[:4] == [f"Afisa Mfano {i}" for i in range(3)] + ["Mshiriki 0"]
    assert len(seen) == len(set(seen)) == 10
    bad = await api.get(url, params={"cursor": "garbage"}, headers=admin)
    assert bad.status_code == 422 and bad.json()["error"]["fields"][0]["field"] == "cursor"
    assert (await api.get(url)).status_code == 401

    lines = 0
    async with api.stream(
        "GET", url.replace("/registrations", "/registrations.csv"), headers=admin
    ) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        assert "content-length" not in r.headers  # streamed, not built in memory
        text = "".join([chunk async for chunk in r.aiter_text()])
    records = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    lines = len(records)
    assert lines == 1 + 3 + 10_000
    assert records[0][:3] == ["reference", "status", "full_name"]
    assert records[-1][2] == "Mshiriki 9999"

    stats = (await api.get(f"/api/v1/events/{event['id']}/statistics", headers=admin)).json()
    assert stats["by_status"] == {"confirmed": 10_003}
    assert stats["by_institution"] == {"e-GA": 10_000, "TRA": 3}
    assert stats["by_region"] == {"unspecified": 10_000, "Arusha": 2, "Dodoma": 1}
    assert stats["by_cadre"] == {"other_officer": 10_000, "ict_officer": 3}


async def test_organiser_cancels_one_registration_and_the_participant_is_told(
    platform, api
) -> None:
    event = await create_event(platform.registration.url, platform.admin_headers, capacity=1)
    url = f"/api/v1/events/{event['id']}/registrations"
    people = [participant(), participant()]
    first, second = [(await api.post(url, json=p)).json() for p in people]
    assert (first["status"], second["status"]) == ("confirmed", "waitlisted")
    admin = platform.admin_headers
    cancel = f"{url}/{first['id']}/cancel"
    reason = {"reason": "Registered twice; the other registration stands"}

    async def status_of(created: dict[str, Any]) -> str:
        own = await api.get(
            f"/api/v1/registrations/{created['reference']}",
            headers={"X-Manage-Token": created["manage_token"]},
        )
        return own.json()["status"]

    # Refused, and nothing changes: no credentials, no reason, another event's path.
    assert (await api.post(cancel, json=reason)).status_code == 401
    no_reason = await api.post(cancel, json={}, headers=admin)
    assert no_reason.status_code == 422
    assert no_reason.json()["error"]["fields"][0]["field"] == "reason"
    other = await create_event(platform.registration.url, admin)
    elsewhere = await api.post(
        f"/api/v1/events/{other['id']}/registrations/{first['id']}/cancel",
        json=reason,
        headers=admin,
    )
    assert (elsewhere.status_code, elsewhere.json()["error"]["code"]) == (
        404,
        "registration_not_found",
    )
    assert await status_of(first) == "confirmed"

    done = await api.post(cancel, json=reason, headers=admin)
    assert (done.status_code, done.json()["status"]) == (200, "cancelled")
    again = await api.post(cancel, json=reason, headers=admin)
    assert (again.status_code, again.json()["error"]["code"]) == (409, "registration_cancelled")
    assert await status_of(second) == "confirmed"  # the seat went to the one waiting

    async with TopicReader(
        platform.kafka.bootstrap, [REGISTRATION, REGISTRATION_NOTICES]
    ) as reader:
        (cancelled,) = await reader.wait_for(of_event(event["id"], "RegistrationCancelled"))
        (notice,) = await reader.wait_for(of_event(event["id"], "RegistrationCancelledNotice"))
    assert cancelled.key == first["id"] == notice.key
    # The free-text reason goes to the participant only, not to the public stream.
    assert cancelled.value["cancelled_by"] == "organiser" and "reason" not in cancelled.value
    assert (notice.value["cancelled_by"], notice.value["reason"]) == ("organiser", reason["reason"])
    email = people[0]["email"]
    (told,) = await platform.smtp.wait_for(
        lambda m: str(m["To"]).lower() == email and str(m["X-Mkutano-Template"]) == "cancelled",
        timeout=20,
    )
    assert reason["reason"] in told.get_body(("plain",)).get_content()


async def test_an_event_cannot_take_another_events_code(platform, api) -> None:
    """Found by the fuzz suite: a PATCH to a code in use answered 500."""
    admin = platform.admin_headers
    first = await create_event(platform.registration.url, admin)
    second = await create_event(platform.registration.url, admin)
    r = await api.patch(
        f"/api/v1/events/{second['id']}", json={"code": first["code"]}, headers=admin
    )
    assert r.status_code == 409, r.text
    error = r.json()["error"]
    assert error["code"] == "event_code_taken"
    assert [f["field"] for f in error["fields"]] == ["code"]
    unchanged = (await api.get(f"/api/v1/events/{second['id']}")).json()
    assert unchanged["code"] == second["code"]
