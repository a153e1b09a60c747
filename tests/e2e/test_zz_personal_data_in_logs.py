"""No participant's email, phone or name in any log line (PDPA 2022).

Runs the registration → notification flow once more with distinctive personal data,
then scans the logs of every service process of the session (which by now also carry
every other e2e test's traffic) for it and for anything shaped like the test domain's
addresses or Tanzanian mobile numbers.
"""

from __future__ import annotations

import re

import httpx
import pytest

from tests.helpers import create_event, participant

pytestmark = pytest.mark.e2e

TEST_EMAIL = re.compile(r"[\w.+-]+@example\.go\.tz", re.IGNORECASE)
TZ_MOBILE = re.compile(r"(?:\+?255|\b0)[67]\d{8}\b")


async def test_no_personal_data_in_any_service_log(platform) -> None:
    event = await create_event(platform.registration.url, platform.admin_headers)
    body = participant(full_name="Zuhura Kisanga Mwakyusa", phone="0767 123 987", language="sw")
    async with httpx.AsyncClient(base_url=platform.registration.url, timeout=10) as client:
        r = await client.post(f"/api/v1/events/{event['id']}/registrations", json=body)
        assert r.status_code == 201, r.text
        reference = r.json()["reference"]
        # A duplicate and a bad request exercise the error paths' logging too.
        assert (
            await client.post(f"/api/v1/events/{event['id']}/registrations", json=body)
        ).status_code == 409
        bad = {**body, "email": "zuhura@@bad", "phone": "0767123987x"}
        assert (
            await client.post(f"/api/v1/events/{event['id']}/registrations", json=bad)
        ).status_code == 422
    await platform.smtp.wait_for(lambda m: reference in str(m["Subject"]), timeout=15)

    needles = ["Zuhura", "Mwakyusa", body["email"], "767123987", "0767 123 987"]
    offenders: list[str] = []
    for name, service in platform.services.items():
        for line in service.logs().splitlines():
            if (
                any(n.lower() in line.lower() for n in needles)
                or TEST_EMAIL.search(line)
                or TZ_MOBILE.search(line)
            ):
                offenders.append(f"{name}: {line[:200]}")
    assert not offenders, "personal data in logs:\n" + "\n".join(offenders[:10])
    # The scan saw real traffic: the logs are not empty.
    assert all(len(s.logs()) > 200 for s in platform.services.values())
