"""The two foundation flows, end to end through the three service processes.

Driven as a frontend and another e-GA system would: HTTP in, SMTP capture and plain
aiokafka out.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from shared.topics import REGISTRATION, REGISTRATION_NOTICES, RESOLUTIONS
from tests.helpers import TopicReader, create_event, participant, unique_id

pytestmark = pytest.mark.e2e

CE_HEADERS = ("ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "content-type")


async def test_registration_produces_event_and_one_confirmation_email(platform) -> None:
    event = await create_event(platform.registration.url, platform.admin_headers, capacity=5)
    body = participant(full_name="Neema Mollel Said", language="en")
    async with httpx.AsyncClient(base_url=platform.registration.url, timeout=10) as client:
        response = await client.post(f"/api/v1/events/{event['id']}/registrations", json=body)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["status"] == "confirmed"
    assert created["reference"].startswith("MK-") and created["manage_token"]

    # Another system reads the stream with plain aiokafka and the CloudEvents headers.
    async with TopicReader(platform.kafka.bootstrap, [REGISTRATION]) as reader:
        (record,) = await reader.wait_for(
            lambda r: (
                r.key == created["id"]
                and r.ce_type == "tz.go.ega.registration.ParticipantRegistered.v2"
            )
        )
    assert all(h in record.headers for h in CE_HEADERS)
    assert record.headers["ce_specversion"] == "1.0"
    assert record.headers["content-type"] == "application/json"
    assert record.value["reference"] == created["reference"]
    assert record.value["event"]["event_id"] == event["id"]

    # The participant gets exactly one confirmation, in English, naming them and the reference.
    (mail,) = await platform.smtp.wait_for(
        lambda m: created["reference"] in str(m["Subject"]), timeout=15
    )
    assert mail["To"] == body["email"]
    assert str(mail["Subject"]).startswith("Registration confirmed")
    text = mail.get_body(("plain",)).get_content()
    assert "Neema Mollel Said" in text and created["reference"] in text
    kinds = {part.get_content_type() for part in mail.iter_attachments()}
    assert kinds == {"image/png", "text/calendar"}
    assert (
        len([m for m in platform.smtp.messages() if created["reference"] in str(m["Subject"])]) == 1
    )


async def test_resolution_update_is_published_with_status_and_progress(platform) -> None:
    headers = platform.admin_headers
    conference_id = unique_id("conf")
    async with httpx.AsyncClient(base_url=platform.resolutions.url, timeout=10) as client:
        r = await client.post(
            "/api/v1/conferences",
            headers=headers,
            json={
                "id": conference_id,
                "name_sw": "Mkutano wa majaribio",
                "name_en": "Test conference",
                "starts_on": "2025-02-11",
                "ends_on": "2025-02-13",
                "venue": "AICC, Arusha",
            },
        )
        assert r.status_code == 201, r.text
        r = await client.post(
            f"/api/v1/conferences/{conference_id}/resolutions",
            headers=headers,
            json={
                "number": 1,
                "title_sw": "Kuimarisha usalama wa mifumo",
                "title_en": "Strengthen systems security",
                "lead_institution": "e-GA",
                "target_date": "2025-12-31",
            },
        )
        assert r.status_code == 201, r.text
        resolution = r.json()
        r = await client.post(
            f"/api/v1/resolutions/{resolution['id']}/updates",
            headers={**headers, "If-Match": r.headers["ETag"]},
            json={"status": "in_progress", "progress": 40, "note": "Taasisi 20 zimekaguliwa"},
        )
        assert r.status_code == 201, r.text
        assert r.json()["progress"] == 40 and r.json()["version"] == 2

    async with TopicReader(platform.kafka.bootstrap, [RESOLUTIONS]) as reader:
        (record,) = await reader.wait_for(
            lambda r: (
                r.key == resolution["id"]
                and r.ce_type == "tz.go.ega.resolutions.ResolutionUpdated.v2"
            )
        )
    assert record.value["status"] == "in_progress"
    assert record.value["progress"] == 40
    assert record.value["previous_status"] == "not_started"
    assert record.value["note"] == "Taasisi 20 zimekaguliwa"


def decode_qr(png: bytes) -> str:
    """The text of a QR code image, as a scanner at the door reads it (zbarimg)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ticket.png"
        path.write_bytes(png)
        done = subprocess.run(
            ["zbarimg", "--quiet", "--raw", str(path)], capture_output=True, text=True, timeout=20
        )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.skipif(shutil.which("zbarimg") is None, reason="zbarimg (zbar-tools) not installed")
async def test_the_public_record_has_no_ticket_nor_contact_and_the_emailed_ticket_checks_in(
    platform,
) -> None:
    """registration.v1 is readable by other systems: no ticket, no name, email or phone.
    The notice on the private registration.notices.v1 has them, and from it notification
    sends the confirmation whose QR code checks the participant in."""
    now = datetime.now(UTC)
    event = await create_event(
        platform.registration.url,
        platform.admin_headers,
        starts_at=(now - timedelta(hours=1)).isoformat(),
        ends_at=(now + timedelta(days=1)).isoformat(),
    )
    body = participant(full_name="Zawadi Kimaro Lyimo", language="en")
    async with httpx.AsyncClient(base_url=platform.registration.url, timeout=10) as client:
        response = await client.post(f"/api/v1/events/{event['id']}/registrations", json=body)
        assert response.status_code == 201, response.text
        created = response.json()
        mine = await client.get(
            f"/api/v1/registrations/{created['reference']}",
            headers={"X-Manage-Token": created["manage_token"]},
        )
    ticket = mine.json()["ticket"]
    assert created["status"] == "confirmed" and ticket

    async with TopicReader(
        platform.kafka.bootstrap, [REGISTRATION, REGISTRATION_NOTICES]
    ) as reader:
        (public,) = await reader.wait_for(
            lambda r: r.topic == REGISTRATION and r.key == created["id"]
        )
        (notice,) = await reader.wait_for(
            lambda r: r.topic == REGISTRATION_NOTICES and r.key == created["id"]
        )
    assert public.ce_type == "tz.go.ega.registration.ParticipantRegistered.v2"
    raw = json.dumps(public.value)
    for secret in (ticket, body["full_name"], body["email"], body["phone"][-6:]):
        assert secret not in raw
    assert "ticket" not in public.value
    assert public.value["participant"] == {
        "institution": body["institution"],
        "cadre": body["cadre"],
        "language": "en",
        "category": body["cadre"],
        "institution_code": None,
    }
    assert public.value["reference"] == created["reference"]
    assert notice.ce_type == "tz.go.ega.registration.ParticipantRegisteredNotice.v1"
    assert notice.value["ticket"] == ticket
    assert notice.value["participant"]["email"] == body["email"]
    assert notice.value["participant"]["full_name"] == body["full_name"]

    (mail,) = await platform.smtp.wait_for(
        lambda m: created["reference"] in str(m["Subject"]), timeout=15
    )
    assert mail["To"] == body["email"]
    (png,) = [p for p in mail.iter_attachments() if p.get_content_type() == "image/png"]
    scanned = await asyncio.to_thread(decode_qr, png.get_content())
    assert scanned == ticket
    async with httpx.AsyncClient(base_url=platform.registration.url, timeout=10) as client:
        checkin = await client.post(
            "/api/v1/checkins", json={"ticket": scanned}, headers=platform.admin_headers
        )
    assert checkin.status_code == 201, checkin.text
