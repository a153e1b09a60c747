"""Object-level access on resolutions: a coordinator key scoped to conferences reaches only those."""

from __future__ import annotations

import httpx
import pytest

from tests.helpers import unique_id

pytestmark = pytest.mark.e2e


async def _conference_with_resolution(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> tuple[str, dict]:
    conference_id = unique_id("conf")
    r = await client.post(
        "/api/v1/conferences",
        headers=admin,
        json={
            "id": conference_id,
            "name_sw": "Mkutano",
            "name_en": "Conference",
            "starts_on": "2025-02-11",
            "ends_on": "2025-02-13",
            "venue": "AICC",
        },
    )
    assert r.status_code == 201, r.text
    r = await client.post(
        f"/api/v1/conferences/{conference_id}/resolutions",
        headers=admin,
        json={
            "number": 1,
            "title_sw": "Azimio",
            "title_en": "Resolution",
            "lead_institution": "e-GA",
            "focal_persons": [
                {"full_name": "Rehema Said", "institution": "e-GA", "email": "rehema@example.go.tz"}
            ],
        },
    )
    assert r.status_code == 201, r.text
    return conference_id, r.json()


async def test_scoped_coordinator_reaches_only_its_conferences(platform) -> None:
    admin = platform.admin_headers
    async with httpx.AsyncClient(base_url=platform.resolutions.url, timeout=10) as client:
        mine, my_resolution = await _conference_with_resolution(client, admin)
        theirs, their_resolution = await _conference_with_resolution(client, admin)
        r = await client.post(
            "/api/v1/admin/api-keys",
            headers=admin,
            json={
                "label": "coordinator of one conference",
                "roles": ["coordinator"],
                "scopes": [mine],
            },
        )
        assert r.status_code == 201, r.text
        scoped = {"Authorization": f"Bearer {r.json()['key']}"}

        ok = await client.post(
            f"/api/v1/resolutions/{my_resolution['id']}/updates",
            headers={**scoped, "If-Match": '"1"'},
            json={"status": "in_progress", "progress": 30},
        )
        assert ok.status_code == 201, ok.text

        denied = await client.post(
            f"/api/v1/resolutions/{their_resolution['id']}/updates",
            headers={**scoped, "If-Match": '"1"'},
            json={"status": "in_progress", "progress": 30},
        )
        assert denied.status_code == 403
        assert denied.json()["error"]["code"] == "out_of_scope"
        untouched = (await client.get(f"/api/v1/resolutions/{their_resolution['id']}")).json()
        assert untouched["version"] == 1 and untouched["progress"] == 0

        assert (
            await client.post(
                f"/api/v1/conferences/{theirs}/resolutions",
                headers=scoped,
                json={"number": 2, "title_sw": "x", "title_en": "x", "lead_institution": "e-GA"},
            )
        ).status_code == 403
        new_conference = {
            "id": unique_id("conf"),
            "name_sw": "x",
            "name_en": "x",
            "starts_on": "2026-02-10",
            "ends_on": "2026-02-12",
            "venue": "AICC",
        }
        assert (
            await client.post("/api/v1/conferences", headers=scoped, json=new_conference)
        ).status_code == 403

        # Focal persons' contact data: visible on its own conference only.
        own = (await client.get(f"/api/v1/conferences/{mine}/resolutions", headers=scoped)).json()
        other = (
            await client.get(f"/api/v1/conferences/{theirs}/resolutions", headers=scoped)
        ).json()
        assert own[0].get("focal_persons")
        assert not other[0].get("focal_persons")
