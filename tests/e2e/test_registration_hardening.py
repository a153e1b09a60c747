"""Registration hardened against what an outside review found (issue 12), seen from
outside the service process: ended events and closed windows, malformed cursors."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.helpers import create_event, participant

pytestmark = pytest.mark.e2e


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


MALFORMED_CURSORS = [
    _b64(json.dumps(value).encode())
    for value in (
        [10**30, "x"],
        [2**63, "x"],
        [-1, "x"],
        [True, "x"],
        [1.5, "x"],
        [1, ""],
        [1, 2],
        ["1", "x"],
        [1],
        {"a": 1, "b": "x"},
        None,
    )
] + [_b64(b'[NaN, "x"]'), _b64(b"\xff\xfe"), _b64(b"[" * 250), "!!!!", "a", "x" * 401]


async def test_every_malformed_cursor_is_a_422_naming_the_cursor(platform) -> None:
    event = await create_event(platform.registration.url, platform.admin_headers)
    url = f"/api/v1/events/{event['id']}/registrations"
    async with httpx.AsyncClient(base_url=platform.registration.url, timeout=10) as api:
        assert (await api.post(url, json=participant())).status_code == 201
        answers = []
        for cursor in MALFORMED_CURSORS:
            r = await api.get(url, params={"cursor": cursor}, headers=platform.admin_headers)
            fields = [f["field"] for f in r.json()["error"]["fields"]] if r.is_error else []
            answers.append((r.status_code, fields))
        assert answers == [(422, ["cursor"])] * len(MALFORMED_CURSORS)
        first = await api.get(url, params={"limit": 1}, headers=platform.admin_headers)
        assert first.status_code == 200 and len(first.json()["items"]) == 1


FORM = {
    "full_name": "Baraka Mwakyusa",
    "email": "baraka.ended@example.go.tz",
    "phone": "0713 111 222",
    "institution": "TAMISEMI",
    "position": "Afisa TEHAMA",
    "cadre": "ict_officer",
    "language": "sw",
    "consent": "yes",
}


async def test_an_ended_event_or_a_closed_window_takes_no_registration(platform) -> None:
    now = datetime.now(UTC)
    ended = await create_event(
        platform.registration.url,
        platform.admin_headers,
        starts_at=(now - timedelta(days=3)).isoformat(),
        ends_at=(now - timedelta(hours=1)).isoformat(),
        registration_opens_at=(now - timedelta(days=30)).isoformat(),
    )  # no registration_closes_at: its end closes it
    window_closed = await create_event(
        platform.registration.url,
        platform.admin_headers,
        registration_closes_at=(now - timedelta(minutes=5)).isoformat(),
    )
    says = {
        ended["id"]: {
            "sw": "Tukio hili limekwisha; usajili umefungwa.",
            "en": "This event has ended; registration is closed.",
        },
        window_closed["id"]: {
            "sw": "Usajili wa tukio hili haupo wazi kwa sasa.",
            "en": "Registration for this event is not open now.",
        },
    }
    codes = {ended["id"]: "event_ended", window_closed["id"]: "registration_closed"}
    async with httpx.AsyncClient(base_url=platform.registration.url, timeout=10) as client:
        for event_id, code in codes.items():
            api = await client.post(f"/api/v1/events/{event_id}/registrations", json=participant())
            assert (api.status_code, api.json()["error"]["code"]) == (409, code)
            shown = (await client.get(f"/api/v1/events/{event_id}")).json()
            assert shown["registration_open"] is False
            for lang, text in says[event_id].items():
                page = await client.get(f"/register/{event_id}", params={"lang": lang})
                assert page.status_code == 200 and f'<html lang="{lang}">' in page.text
                assert text in page.text and "<form" not in page.text
                posted = await client.post(
                    f"/register/{event_id}", params={"lang": lang}, data=FORM
                )
                assert posted.status_code == 409
                assert text in posted.text and "<form" not in posted.text


async def test_a_line_break_or_nul_in_a_header_bound_text_is_422_and_changes_nothing(
    platform,
) -> None:
    """A title reaches every email's Subject: a line break there is refused at the API,
    naming the field, and so is a NUL in a participant's name (it reached exports raw)."""
    event = await create_event(platform.registration.url, platform.admin_headers, capacity=5)
    async with httpx.AsyncClient(base_url=platform.registration.url, timeout=15) as client:
        for title in ("Mkutano\r\nBcc: everyone@example.org", "Mkutano\u2028wa TEHAMA"):
            r = await client.patch(
                f"/api/v1/events/{event['id']}",
                json={"title_en": title},
                headers={**platform.admin_headers, "content-type": "application/merge-patch+json"},
            )
            assert r.status_code == 422, r.text
            fields = r.json()["error"]["fields"]
            assert fields[0]["field"] == "title_en" and "single line" in fields[0]["reason"]
        stored = (await client.get(f"/api/v1/events/{event['id']}")).json()
        assert stored["title_en"] == event["title_en"]
        r = await client.post(
            f"/api/v1/events/{event['id']}/registrations",
            json=participant(full_name="Rehema\x00 Mushi"),
        )
        assert r.status_code == 422
        assert r.json()["error"]["fields"][0]["field"] == "full_name"
