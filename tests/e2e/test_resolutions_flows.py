"""Resolutions end to end: the service process over HTTP, its events on resolutions.v1
(public: no focal person's contact) and its notices on resolutions.notices.v1 (private:
the focal persons, for notification).

Driven as a coordinator's tool and another e-GA system would: HTTP in, plain aiokafka
out. Each test makes its own conference.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from shared.topics import RESOLUTIONS, RESOLUTIONS_NOTICES
from tests.helpers import TopicReader, unique_id

pytestmark = pytest.mark.e2e

UPDATED = "tz.go.ega.resolutions.ResolutionUpdated.v2"
CREATED = "tz.go.ega.resolutions.ResolutionCreated.v2"
COMPLETED = "tz.go.ega.resolutions.ResolutionCompleted.v2"
FOCAL = {
    "full_name": "Asha Juma Mwinyi",
    "institution": "Wizara ya Fedha",
    "email": "asha.juma@example.go.tz",
    "phone": "+255712000111",
    "language": "sw",
}


async def _conference(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    conference_id = unique_id("conf")
    r = await client.post(
        "/api/v1/conferences",
        headers=headers,
        json={
            "id": conference_id,
            "name_sw": "Mkutano wa Tano wa Serikali Mtandao",
            "name_en": "5th e-Government Conference",
            "starts_on": "2025-02-11",
            "ends_on": "2025-02-13",
            "venue": "AICC, Arusha",
        },
    )
    assert r.status_code == 201, r.text
    return conference_id


async def _resolution(
    client: httpx.AsyncClient, headers: dict[str, str], conference_id: str, **extra: Any
) -> httpx.Response:
    body = {
        "number": 1,
        "title_sw": "Kuunganisha mifumo ya taasisi",
        "title_en": "Integrate institutions' systems",
        "lead_institution": "e-GA",
        "target_date": "2025-12-31",
        "focal_persons": [FOCAL],
        **extra,
    }
    r = await client.post(
        f"/api/v1/conferences/{conference_id}/resolutions", headers=headers, json=body
    )
    assert r.status_code == 201, r.text
    return r


@pytest.fixture
async def client(platform) -> httpx.AsyncClient:
    async with httpx.AsyncClient(base_url=platform.resolutions.url, timeout=15) as c:
        yield c


async def test_actions_roll_up_into_the_resolution_and_each_change_is_published(
    platform, client
) -> None:
    headers = platform.admin_headers
    conference_id = await _conference(client, headers)
    r = await _resolution(client, headers, conference_id)
    rid = r.json()["id"]
    etag = r.headers["ETag"]
    # Two actions, one per institution, weights 3 and 1.
    for title, institution, weight in (("GovESB", "e-GA", 3), ("Halmashauri", "TAMISEMI", 1)):
        r = await client.post(
            f"/api/v1/resolutions/{rid}/actions",
            headers={**headers, "If-Match": etag},
            json={"title": title, "institution": institution, "weight": weight},
        )
        assert r.status_code == 201, r.text
        etag = r.headers["ETag"]
    esb, councils = r.json()["actions"]
    r = await client.patch(
        f"/api/v1/resolutions/{rid}/actions/{esb['id']}",
        headers={**headers, "If-Match": etag},
        json={"progress": 80, "note": "GovESB imeunganishwa na mifumo 24"},
    )
    assert r.status_code == 200, r.text
    # (80*3 + 0*1) / 4 = 60, and the resolution moved from not started.
    assert (r.json()["progress"], r.json()["status"]) == (60, "in_progress")
    etag = r.headers["ETag"]
    r = await client.patch(
        f"/api/v1/resolutions/{rid}/actions/{councils['id']}",
        headers={**headers, "If-Match": etag},
        json={"status": "in_progress", "progress": 50},
    )
    assert r.json()["progress"] == 73  # (240 + 50) / 4 = 72.5, half up
    etag = r.headers["ETag"]
    # A progress sent for a rolled-up resolution is refused: it is computed.
    r = await client.post(
        f"/api/v1/resolutions/{rid}/updates",
        headers={**headers, "If-Match": etag},
        json={"progress": 10},
    )
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "progress"
    # Completing every action completes the resolution.
    for action in (esb, councils):
        r = await client.patch(
            f"/api/v1/resolutions/{rid}/actions/{action['id']}",
            headers={**headers, "If-Match": etag},
            json={"status": "completed"},
        )
        assert r.status_code == 200, r.text
        etag = r.headers["ETag"]
    assert (r.json()["progress"], r.json()["status"]) == (100, "completed")

    timeline = (await client.get(f"/api/v1/resolutions/{rid}/timeline")).json()
    assert [e["progress"] for e in timeline] == [0, 0, 60, 73, 88, 100]  # (300 + 50) / 4 = 87.5
    assert timeline[2]["note"] == "GovESB imeunganishwa na mifumo 24"
    assert timeline[2]["action_id"] == esb["id"]

    async with TopicReader(platform.kafka.bootstrap, [RESOLUTIONS]) as reader:
        records = await reader.wait_for(lambda r: r.key == rid, count=8)
    types = [r.ce_type for r in records]
    assert types == [CREATED] + [UPDATED] * 6 + [COMPLETED]
    moved = records[3].value  # the GovESB progress
    assert (moved["previous_progress"], moved["progress"]) == (0, 60)
    assert (moved["previous_status"], moved["status"]) == ("not_started", "in_progress")
    assert moved["note"] == "GovESB imeunganishwa na mifumo 24"
    assert moved["action_id"] == esb["id"]
    # Who is accountable, without naming anybody (the contacts are in the notices).
    assert "focal_persons" not in moved
    assert (moved["lead_institution"], moved["focal_person_count"]) == ("e-GA", 1)
    assert records[-1].value["status"] == "completed"
    assert all(r.headers["ce_source"] for r in records)


async def test_a_stale_write_is_409_and_changes_nothing(platform, client) -> None:
    headers = platform.admin_headers
    conference_id = await _conference(client, headers)
    rid = (await _resolution(client, headers, conference_id)).json()["id"]
    read = await client.get(f"/api/v1/resolutions/{rid}")
    etag = read.headers["ETag"]
    first = await client.post(
        f"/api/v1/resolutions/{rid}/updates",
        headers={**headers, "If-Match": etag},
        json={"status": "in_progress", "progress": 30, "note": "Kazi imeanza"},
    )
    assert first.status_code == 201
    # A second coordinator read the same version before the first wrote.
    second = await client.post(
        f"/api/v1/resolutions/{rid}/updates",
        headers=headers,
        json={"status": "delayed", "progress": 5, "version": 1},
    )
    assert second.status_code == 409, second.text
    assert second.json()["error"]["code"] == "version_conflict"
    assert second.json()["error"]["details"] == {"current_version": 2}
    edit = await client.patch(
        f"/api/v1/resolutions/{rid}",
        headers={**headers, "If-Match": etag},
        json={"title_en": "Lost update"},
    )
    assert edit.status_code == 409
    unversioned = await client.post(
        f"/api/v1/resolutions/{rid}/updates", headers=headers, json={"progress": 90}
    )
    assert unversioned.status_code == 428
    now = (await client.get(f"/api/v1/resolutions/{rid}")).json()
    assert (now["status"], now["progress"], now["version"]) == ("in_progress", 30, 2)
    assert now["title_en"] == "Integrate institutions' systems"
    assert len((await client.get(f"/api/v1/resolutions/{rid}/timeline")).json()) == 1


async def test_timeline_is_append_only_and_every_change_is_a_version(platform, client) -> None:
    headers = platform.admin_headers
    conference_id = await _conference(client, headers)
    r = await _resolution(client, headers, conference_id)
    rid, etag = r.json()["id"], r.headers["ETag"]
    seen: list[dict[str, Any]] = []
    for update in (
        {"status": "in_progress", "note": "Imeanza"},
        {"progress": 45, "evidence": ["https://www.ega.go.tz/ripoti-45.pdf"]},
        {"status": "delayed", "note": "Bajeti imechelewa"},
    ):
        r = await client.post(
            f"/api/v1/resolutions/{rid}/updates",
            headers={**headers, "If-Match": etag},
            json=update,
        )
        assert r.status_code == 201, r.text
        etag = r.headers["ETag"]
        timeline = (await client.get(f"/api/v1/resolutions/{rid}/timeline")).json()
        # Earlier entries come back exactly as they were; one is added at the end.
        assert timeline[: len(seen)] == seen and len(timeline) == len(seen) + 1
        seen = timeline
    assert [(e["status"], e["progress"]) for e in seen] == [
        ("in_progress", 25),  # the status's default progress
        ("in_progress", 45),
        ("delayed", 45),  # delayed keeps the current progress
    ]
    assert seen[1]["evidence"] == ["https://www.ega.go.tz/ripoti-45.pdf"]
    r = await client.patch(
        f"/api/v1/resolutions/{rid}",
        headers={**headers, "If-Match": etag},
        json={"target_date": "2026-06-30", "supporting_institutions": ["TAMISEMI"]},
    )
    assert r.status_code == 200, r.text
    assert len((await client.get(f"/api/v1/resolutions/{rid}/timeline")).json()) == 3
    assert (await client.get(f"/api/v1/resolutions/{rid}/versions")).status_code == 401
    versions = (await client.get(f"/api/v1/resolutions/{rid}/versions", headers=headers)).json()
    assert [v["version"] for v in versions] == [1, 2, 3, 4, 5]
    assert versions[-1]["changes"] == {
        "target_date": {"from": "2025-12-31", "to": "2026-06-30"},
        "supporting_institutions": {"from": [], "to": ["TAMISEMI"]},
    }
    assert versions[2]["changes"] == {"progress": {"from": 25, "to": 45}}


async def test_bad_input_is_422_naming_the_field_and_writes_nothing(platform, client) -> None:
    headers = platform.admin_headers
    conference_id = await _conference(client, headers)
    r = await _resolution(client, headers, conference_id)
    rid, etag = r.json()["id"], r.headers["ETag"]
    write = {**headers, "If-Match": etag}
    cases = [
        ("post", f"/api/v1/resolutions/{rid}/updates", {"progress": 101}, "progress"),
        ("post", f"/api/v1/resolutions/{rid}/updates", {"status": "finished"}, "status"),
        (
            "post",
            f"/api/v1/resolutions/{rid}/actions",
            {"title": "Ndogo", "institution": "e-GA", "parent_action_id": "abc"},
            "parent_action_id",
        ),
        ("patch", f"/api/v1/resolutions/{rid}", {"target_date": "2024-12-31"}, "target_date"),
        (
            "post",
            f"/api/v1/conferences/{conference_id}/resolutions",
            {"number": 2, "title_sw": "A", "title_en": "A", "lead_institution": "e-GA",
             "target_date": "2025-01-01"},
            "target_date",
        ),
    ]  # fmt: skip
    for method, path, body, field in cases:
        r = await client.request(method.upper(), path, headers=write, json=body)
        assert r.status_code == 422, (path, body, r.text)
        assert field in [f["field"] for f in r.json()["error"]["fields"]], r.text
    now = await client.get(f"/api/v1/resolutions/{rid}")
    assert now.headers["ETag"] == etag and now.json()["actions"] == []
    listed = (await client.get(f"/api/v1/conferences/{conference_id}/resolutions")).json()
    assert [x["number"] for x in listed] == [1]


async def test_public_reads_hide_focal_persons_coordinators_see_them(platform, client) -> None:
    headers = platform.admin_headers
    conference_id = await _conference(client, headers)
    rid = (await _resolution(client, headers, conference_id)).json()["id"]
    public = await client.get(f"/api/v1/resolutions/{rid}")
    assert "focal_persons" not in public.json() and FOCAL["email"] not in public.text
    listed = await client.get(f"/api/v1/conferences/{conference_id}/resolutions")
    assert FOCAL["email"] not in listed.text
    coordinator = await client.get(f"/api/v1/resolutions/{rid}", headers=headers)
    assert coordinator.json()["focal_persons"] == [FOCAL]


async def test_focal_persons_are_emailed_when_progress_is_recorded(platform, client) -> None:
    # Through the notification service's consumer of resolutions.notices.v1 (its templates).
    headers = platform.admin_headers
    conference_id = await _conference(client, headers)
    focal = {**FOCAL, "email": f"{unique_id('focal')}@example.go.tz"}
    r = await _resolution(client, headers, conference_id, focal_persons=[focal])
    rid = r.json()["id"]
    r = await client.post(
        f"/api/v1/resolutions/{rid}/updates",
        headers={**headers, "If-Match": r.headers["ETag"]},
        json={"status": "in_progress", "progress": 40, "note": "Taasisi 20 zimeunganishwa"},
    )
    assert r.status_code == 201, r.text
    (mail,) = await platform.smtp.wait_for(lambda m: m["To"] == focal["email"], timeout=20)
    text = mail.get_body(("plain",)).get_content()
    assert focal["full_name"] in text
    assert "Taasisi 20 zimeunganishwa" in text and "40" in text


async def test_the_public_record_has_no_focal_person_contact_and_the_focal_person_is_emailed(
    platform, client
) -> None:
    headers = platform.admin_headers
    conference_id = await _conference(client, headers)
    focal = {
        **FOCAL,
        "full_name": "Neema Faraji Mrisho",
        "email": f"{unique_id('focal')}@example.go.tz",
        "phone": "+255713987654",
        "language": "en",
    }
    r = await _resolution(client, headers, conference_id, focal_persons=[focal])
    rid = r.json()["id"]
    r = await client.post(
        f"/api/v1/resolutions/{rid}/updates",
        headers={**headers, "If-Match": r.headers["ETag"]},
        json={"status": "in_progress", "progress": 55, "note": "Mifumo 12 imeunganishwa"},
    )
    assert r.status_code == 201, r.text

    async with TopicReader(platform.kafka.bootstrap, [RESOLUTIONS, RESOLUTIONS_NOTICES]) as reader:
        public = await reader.wait_for(lambda r: r.topic == RESOLUTIONS and r.key == rid, count=2)
        (notice,) = await reader.wait_for(lambda r: r.topic == RESOLUTIONS_NOTICES and r.key == rid)
    assert [p.ce_type for p in public] == [CREATED, UPDATED]
    for record in public:
        raw = json.dumps(record.value)
        for contact in (focal["full_name"], focal["email"], focal["phone"][-6:]):
            assert contact not in raw
        assert "focal_persons" not in record.value
        assert record.value["lead_institution"] == "e-GA"
        assert record.value["focal_person_count"] == 1
    assert public[1].value["progress"] == 55
    assert notice.ce_type == "tz.go.ega.resolutions.ResolutionUpdatedNotice.v1"
    assert notice.value["focal_persons"] == [focal]

    # The focal person still receives the email (notification reads the notice).
    (mail,) = await platform.smtp.wait_for(lambda m: m["To"] == focal["email"], timeout=20)
    text = mail.get_body(("plain",)).get_content()
    assert focal["full_name"] in text
    assert "Mifumo 12 imeunganishwa" in text and "55" in text


async def test_removing_an_action_recomputes_and_conference_dates_must_fit(
    platform, client
) -> None:
    headers = platform.admin_headers
    conference_id = await _conference(client, headers)
    r = await _resolution(client, headers, conference_id)
    rid, etag = r.json()["id"], r.headers["ETag"]
    for progress, weight in ((100, 1), (20, 1)):
        r = await client.post(
            f"/api/v1/resolutions/{rid}/actions",
            headers={**headers, "If-Match": etag},
            json={"title": f"Kazi {progress}", "institution": "e-GA", "progress": progress,
                  "weight": weight, "status": "in_progress"},
        )  # fmt: skip
        assert r.status_code == 201, r.text
        etag = r.headers["ETag"]
    assert r.json()["progress"] == 60
    slow = r.json()["actions"][1]
    r = await client.delete(
        f"/api/v1/resolutions/{rid}/actions/{slow['id']}", headers={**headers, "If-Match": etag}
    )
    assert r.status_code == 200, r.text
    assert (r.json()["progress"], len(r.json()["actions"])) == (100, 1)
    # Moving the conference after a resolution's target date is refused.
    r = await client.patch(
        f"/api/v1/conferences/{conference_id}", headers=headers, json={"starts_on": "2026-01-10",
                                                                       "ends_on": "2026-01-12"}
    )  # fmt: skip
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "starts_on"
    r = await client.patch(
        f"/api/v1/conferences/{conference_id}", headers=headers, json={"venue": "JNICC, Dar"}
    )
    assert r.status_code == 200 and r.json()["venue"] == "JNICC, Dar"
    assert (await client.get(f"/api/v1/conferences/{conference_id}")).json()["starts_on"] == (
        "2025-02-11"
    )
