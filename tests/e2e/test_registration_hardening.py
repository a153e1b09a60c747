"""Registration hardened against what an outside review found (issue 12), seen from
outside the service process: malformed cursors, ended events, ..."""

from __future__ import annotations

import base64
import json

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
