"""Rate limits on the public registration endpoints: 429 with Retry-After, nothing stored."""

from __future__ import annotations

import httpx
import pytest

from tests.helpers import create_event, participant

pytestmark = pytest.mark.e2e


async def test_registration_is_limited_per_address_and_per_email(start_service, admin_key) -> None:
    service = await start_service(
        "registration",
        REGISTRATION_RATE_LIMITS="true",
        REGISTRATION_RATE_REGISTER_PER_ADDRESS_PER_MIN="8",
        REGISTRATION_RATE_REGISTER_PER_EMAIL_PER_HOUR="3",
        REGISTRATION_RATE_SELF_SERVICE_PER_ADDRESS_PER_MIN="5",
    )
    admin = {"Authorization": f"Bearer {admin_key}"}
    event = await create_event(service.url, admin)
    url = f"/api/v1/events/{event['id']}/registrations"
    async with httpx.AsyncClient(base_url=service.url, timeout=10) as client:
        # Per email: the 4th attempt with one address within the hour is refused, even
        # though the 2nd and 3rd were already refused as duplicates.
        same = participant()
        answers = [(await client.post(url, json=same)).status_code for _ in range(4)]
        assert answers == [201, 409, 409, 429]

        # Per client address: 8 per minute in all (4 used above).
        statuses = [(await client.post(url, json=participant())).status_code for _ in range(6)]
        assert statuses == [201, 201, 201, 201, 429, 429]
        refused = await client.post(url, json=participant())
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(refused.headers["Retry-After"]) <= 60

        # Self-service probing of references is limited too (the same 404s, then 429).
        probes = [
            (
                await client.get(
                    "/api/v1/registrations/MK-AAAAA-AAAAA", headers={"X-Manage-Token": "x"}
                )
            ).status_code
            for _ in range(6)
        ]
        assert probes == [404] * 5 + [429]

        # Nothing refused was stored: the event counts the 5 confirmed only.
        seats = (await client.get(f"/api/v1/events/{event['id']}")).json()
        assert seats["capacity"] - seats["seats_left"] == 5
