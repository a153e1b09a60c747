"""Categories, questions, nominations, walk-ins and imports, over HTTP against the services
as processes (registration, notification, the real MongoDB, Kafka and the SMTP sink): what
a frontend, an organiser and a registrar see, and the emails participants get."""

from __future__ import annotations

import asyncio
import csv
import io
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.helpers import create_event, participant

pytestmark = pytest.mark.e2e


@pytest.fixture
async def api(platform) -> AsyncIterator[httpx.AsyncClient]:
    # Idle connections are dropped before the services' own keep-alive timeout (5 s,
    # HTTP_KEEP_ALIVE_TIMEOUT_S): reusing one the server has just closed is a ReadError.
    limits = httpx.Limits(max_connections=50, max_keepalive_connections=50, keepalive_expiry=2)
    async with httpx.AsyncClient(
        base_url=platform.registration.url, timeout=60, limits=limits
    ) as client:
        yield client


async def key(api: httpx.AsyncClient, admin: dict[str, str], *roles: str) -> dict[str, str]:
    r = await api.post(
        "/api/v1/admin/api-keys", headers=admin, json={"label": "test", "roles": list(roles)}
    )
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['key']}"}


def category(code: str, **overrides: Any) -> dict[str, Any]:
    return {"code": code, "name_sw": code.title(), "name_en": code.title(), **overrides}


FIELD_VISIT = {
    "id": "field_visit",
    "type": "single_choice",
    "label_sw": "Ziara ya mafunzo",
    "label_en": "Field visit",
    "choices": [
        {"code": "ngorongoro", "label_sw": "Ngorongoro", "label_en": "Ngorongoro", "limit": 2},
        {"code": "none", "label_sw": "Hapana", "label_en": "None"},
    ],
}
QUESTIONS = [
    FIELD_VISIT,
    {
        "id": "sessions",
        "type": "multiple_choice",
        "label_sw": "Vikao",
        "label_en": "Sessions",
        "choices": [
            {"code": "ai", "label_sw": "Akili bandia", "label_en": "AI"},
            {"code": "cyber", "label_sw": "Usalama mtandaoni", "label_en": "Cyber security"},
        ],
    },
    {"id": "vegetarian", "type": "yes_no", "label_sw": "Mboga tu?", "label_en": "Vegetarian?"},
    {
        "id": "years",
        "type": "number",
        "label_sw": "Miaka kazini",
        "label_en": "Years in service",
        "min_value": 0,
        "max_value": 60,
    },
    {
        "id": "university",
        "type": "short_text",
        "label_sw": "Chuo",
        "label_en": "University",
        "required": True,
        "categories": ["student"],
    },
]


def person(code: str, **overrides: Any) -> dict[str, Any]:
    return participant(cadre=None, category=code, **overrides)


async def test_categories_and_questions_are_on_the_event_and_answers_reach_the_export(
    platform, api
) -> None:
    admin = platform.admin_headers
    event = await create_event(
        platform.registration.url,
        admin,
        capacity=50,
        categories=[
            category("student", fee_tzs=20_000, quota=10),
            category("ict_officer", fee_tzs=400_000),
        ],
        questions=QUESTIONS,
    )
    shown = (await api.get(f"/api/v1/events/{event['id']}")).json()
    assert [(c["code"], c["fee_tzs"], c["seats_left"]) for c in shown["categories"]] == [
        ("student", 20_000, 10),
        ("ict_officer", 400_000, 40),
    ]
    assert shown["questions"][0]["choices"][0]["places_left"] == 2
    url = f"/api/v1/events/{event['id']}/registrations"

    answers = {"field_visit": "ngorongoro", "sessions": ["cyber", "ai"], "vegetarian": True}
    first = await api.post(url, json=person("ict_officer", answers={**answers, "years": 7}))
    assert first.status_code == 201, first.text
    student = person("student", answers={"university": "UDSM", "field_visit": "ngorongoro"})
    assert (await api.post(url, json=student)).status_code == 201

    # Bad answers: 422 naming each question and the reason; nothing registered.
    bad = await api.post(
        url,
        json=person(
            "ict_officer",
            answers={"years": "seven", "vegetarian": "maybe", "colour": "red", "sessions": ["x"]},
        ),
    )
    assert bad.status_code == 422, bad.text
    fields = {f["field"]: f["reason"] for f in bad.json()["error"]["fields"]}
    assert fields == {
        "answers.colour": "no such question",
        "answers.sessions": "'x' is not one of the choices",
        "answers.vegetarian": "must be true or false",
        "answers.years": "must be a number",
    }
    over = await api.post(url, json=person("ict_officer", answers={"years": 61}))
    assert over.json()["error"]["fields"] == [
        {"field": "answers.years", "reason": "must be at most 60"}
    ]
    missing = await api.post(url, json=person("student"))
    assert missing.json()["error"]["fields"] == [
        {"field": "answers.university", "reason": "required"}
    ]
    unknown = await api.post(url, json=person("minister"))
    assert unknown.status_code == 422
    assert unknown.json()["error"]["code"] == "unknown_category"
    assert unknown.json()["error"]["fields"][0]["field"] == "category"
    # The field visit's two places are gone: 409, naming the question.
    gone = await api.post(url, json=person("ict_officer", answers={"field_visit": "ngorongoro"}))
    assert gone.status_code == 409
    assert gone.json()["error"]["code"] == "choice_full"
    assert gone.json()["error"]["fields"][0]["field"] == "answers.field_visit"

    listed = (await api.get(url, headers=admin)).json()["items"]
    assert [i["category"] for i in listed] == ["ict_officer", "student"]
    assert listed[0]["answers"] == {
        "field_visit": "ngorongoro",
        "sessions": ["ai", "cyber"],
        "vegetarian": True,
        "years": 7,
    }
    async with api.stream("GET", url + ".csv", headers=admin) as r:
        text = "".join([chunk async for chunk in r.aiter_text()])
    rows = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))
    assert rows[0]["answers.field_visit"] == "ngorongoro"
    assert rows[0]["answers.sessions"] == "ai;cyber"
    assert rows[0]["answers.vegetarian"] == "yes"
    assert rows[0]["category"] == "ict_officer" and rows[0]["via"] == "self"
    assert rows[1]["answers.university"] == "UDSM"

    stats = (await api.get(f"/api/v1/events/{event['id']}/statistics", headers=admin)).json()
    assert stats["by_category"] == {"ict_officer": 1, "student": 1}
    assert stats["answers"]["field_visit"]["choices"] == {"ngorongoro": 2, "none": 0}
    assert stats["answers"]["field_visit"]["places_left"] == {"ngorongoro": 0}
    assert stats["answers"]["vegetarian"]["choices"] == {"yes": 1, "no": 0}
    assert stats["categories"]["student"] == {"confirmed": 1, "quota": 10, "seats_left": 9}


async def test_quotas_hold_with_200_concurrent_registrations(platform, api) -> None:
    event = await create_event(
        platform.registration.url,
        platform.admin_headers,
        capacity=60,
        categories=[category("student", quota=10), category("ps", quota=20), category("guest")],
    )
    url = f"/api/v1/events/{event['id']}/registrations"
    codes = ["student", "ps", "guest", "guest"] * 50
    results = await asyncio.gather(*(api.post(url, json=person(c)) for c in codes))
    assert all(r.status_code == 201 for r in results), [r.text for r in results][:3]
    confirmed = Counter(
        code for code, r in zip(codes, results, strict=True) if r.json()["status"] == "confirmed"
    )
    assert confirmed == {"student": 10, "ps": 20, "guest": 30}
    shown = (await api.get(f"/api/v1/events/{event['id']}")).json()
    assert shown["seats_left"] == 0
    assert [c["seats_left"] for c in shown["categories"]] == [0, 0, 0]


async def test_a_nomination_only_category_refuses_self_registration(platform, api) -> None:
    event = await create_event(
        platform.registration.url,
        platform.admin_headers,
        categories=[category("officer", requires_nomination=True), category("guest")],
    )
    url = f"/api/v1/events/{event['id']}/registrations"
    refused = await api.post(url, json=person("officer"))
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "nomination_required"
    assert refused.json()["error"]["fields"][0]["field"] == "category"
    assert (await api.post(url, json=person("guest"))).status_code == 201


async def test_a_walk_in_is_checked_in_at_once(platform, api) -> None:
    now = datetime.now(UTC)
    event = await create_event(
        platform.registration.url,
        platform.admin_headers,
        capacity=1,
        starts_at=(now - timedelta(hours=2)).isoformat(),
        ends_at=(now + timedelta(days=1)).isoformat(),
        registration_closes_at=(now - timedelta(hours=3)).isoformat(),
        registration_opens_at=(now - timedelta(days=3)).isoformat(),
    )
    registrar = await key(api, platform.admin_headers, "registrar")
    url = f"/api/v1/events/{event['id']}/walk-ins"
    body = participant()
    assert (await api.post(url, json=body)).status_code == 401
    walked = await api.post(url, json=body, headers=registrar)
    assert walked.status_code == 201, walked.text
    result = walked.json()
    assert result["status"] == "confirmed" and result["ticket"].startswith("MK2")
    # The ticket scanned again: already checked in for today.
    again = await api.post("/api/v1/checkins", json={"ticket": result["ticket"]}, headers=registrar)
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_checked_in"
    listed = (
        await api.get(f"/api/v1/events/{event['id']}/registrations", headers=platform.admin_headers)
    ).json()["items"]
    assert listed[0]["via"] == "walk_in" and list(listed[0]["checkins"]) == [result["day"]]
    full = await api.post(url, json=participant(), headers=registrar)
    assert full.status_code == 409 and full.json()["error"]["code"] == "event_full"
    # The walk-in gets the normal confirmation email, with the ticket.
    await platform.smtp.wait_for(lambda m: str(m["To"]).lower() == body["email"], timeout=60)


def registrants_csv(rows: list[dict[str, str]], header: list[str] | None = None) -> bytes:
    columns = header or ["full_name", "email", "phone", "institution", "position", "category"]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


async def test_an_organisers_import_is_all_or_nothing_and_everyone_is_notified(
    platform, api
) -> None:
    admin = platform.admin_headers
    event = await create_event(
        platform.registration.url,
        admin,
        capacity=2,
        categories=[category("student"), category("ict_officer")],
        questions=[FIELD_VISIT],
    )
    url = f"/api/v1/events/{event['id']}/registrations/import"
    csv_headers = {**admin, "Content-Type": "text/csv"}
    params = {"consent_confirmed": "true"}
    people = [person("ict_officer") for _ in range(3)]
    rows = [
        {**p, "answers.field_visit": "ngorongoro" if i < 2 else "none"}
        for i, p in enumerate(people)
    ]
    header = [
        "full_name",
        "email",
        "phone",
        "institution",
        "position",
        "category",
        "answers.field_visit",
    ]
    bad_rows = [
        *rows,
        {**person("minister"), "answers.field_visit": "none"},
        {**person("student"), "email": "not-an-email", "answers.field_visit": "nowhere"},
        {**rows[0]},
    ]
    dry = await api.post(
        url,
        content=registrants_csv(bad_rows, header),
        headers=csv_headers,
        params={**params, "dry_run": "true"},
    )
    assert dry.status_code == 200, dry.text
    report = dry.json()
    assert report["valid"] is False and report["rows"] == 6
    problems = {(p["row"], p["field"]) for p in report["problems"]}
    assert problems == {(5, "category"), (6, "email"), (6, "answers.field_visit"), (7, "email")}
    refused = await api.post(
        url, content=registrants_csv(bad_rows, header), headers=csv_headers, params=params
    )
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "import_invalid"
    assert "row 5: category" in {f["field"] for f in refused.json()["error"]["fields"]}
    listed = (await api.get(f"/api/v1/events/{event['id']}/registrations", headers=admin)).json()
    assert listed["items"] == []  # nothing written
    wrong_header = await api.post(
        url, content=b"name,mail\nA,b\n", headers=csv_headers, params={**params, "dry_run": "true"}
    )
    assert {(p["row"], p["field"]) for p in wrong_header.json()["problems"]} >= {
        (1, "name"),
        (1, "full_name"),
    }
    no_consent = await api.post(url, content=registrants_csv(rows, header), headers=csv_headers)
    assert no_consent.status_code == 422

    done = await api.post(
        url, content=registrants_csv(rows, header), headers=csv_headers, params=params
    )
    assert done.status_code == 201, done.text
    assert done.json()["imported"] == 3
    assert done.json()["by_status"] == {"confirmed": 2, "waitlisted": 1}
    items = (await api.get(f"/api/v1/events/{event['id']}/registrations", headers=admin)).json()
    assert {i["via"] for i in items["items"]} == {"import"}
    # Each one's history names who imported them (here the bootstrap admin key's holder).
    for item in items["items"]:
        history = await api.get(f"/api/v1/registrations/{item['id']}/history", headers=admin)
        assert history.json()["history"][0]["by"] == "bootstrap-admin", history.text
    # Each imported person is told as if they had registered: their own email.
    for p in people:
        await platform.smtp.wait_for(lambda m, e=p["email"]: str(m["To"]).lower() == e, timeout=60)
    again = await api.post(
        url, content=registrants_csv(rows[:1], header), headers=csv_headers, params=params
    )
    assert again.status_code == 422
    assert again.json()["error"]["fields"][0]["reason"] == "already registered for this event"
