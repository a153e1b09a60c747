"""Access controls every service shares: the audit log, the CORS allow-list, security headers."""

from __future__ import annotations

import httpx
import pytest

from tests.helpers import event_spec

pytestmark = pytest.mark.e2e


async def _key(client: httpx.AsyncClient, admin: dict[str, str], *roles: str) -> dict[str, str]:
    r = await client.post(
        "/api/v1/admin/api-keys", headers=admin, json={"label": "test", "roles": list(roles)}
    )
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['key']}"}


async def test_organiser_actions_are_audited_and_readable_by_auditors_only(platform) -> None:
    async with httpx.AsyncClient(base_url=platform.registration.url, timeout=10) as client:
        organiser = await _key(client, platform.admin_headers, "organiser")
        auditor = await _key(client, platform.admin_headers, "auditor")
        spec = event_spec()
        r = await client.post("/api/v1/events", json=spec, headers=organiser)
        assert r.status_code == 201, r.text

        # Readable by an auditor, not by an organiser.
        assert (await client.get("/api/v1/admin/audit", headers=organiser)).status_code == 403
        r = await client.get("/api/v1/admin/audit", headers=auditor)
        assert r.status_code == 200
        entries = [e for e in r.json() if e["route"] == "/api/v1/events" and e["method"] == "POST"]
        assert entries, r.json()[:5]
        entry = entries[0]
        assert entry["status"] == 201
        assert entry["actor"] != "bootstrap-admin" and "organiser" in entry["roles"]
        assert entry["at"].endswith("Z")

        # An anonymous write (a registration) is not an organiser action: not in the log.
        before = len((await client.get("/api/v1/admin/audit", headers=auditor)).json())
        body = {"full_name": "Anon", "email": "x"}  # refused, and anonymous
        await client.post(f"/api/v1/events/{spec['id']}/registrations", json=body)
        after = len((await client.get("/api/v1/admin/audit", headers=auditor)).json())
        assert after == before


async def test_refused_writes_are_audited_under_their_caller(platform) -> None:
    """A write refused for want of a role (403) is in the audit log with its status."""
    cases = [
        ("registration", "auditor", "/api/v1/events", event_spec()),
        ("resolutions", "registrar", "/api/v1/conferences", {"id": "x"}),
    ]
    for service, role, path, body in cases:
        url = platform.services[service].url
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            caller = await _key(client, platform.admin_headers, role)
            auditor = await _key(client, platform.admin_headers, "auditor")
            r = await client.post(path, json=body, headers=caller)
            assert r.status_code == 403, r.text
            me = (await client.get("/api/v1/admin/audit", headers=auditor)).json()
            refused = [
                e for e in me if e["route"] == path and e["method"] == "POST" and e["status"] == 403
            ]
            assert refused, f"{service}: no 403 in {me[:5]}"
            assert refused[0]["roles"] == [role] and refused[0]["actor"] != "bootstrap-admin"


async def test_cors_allows_only_listed_origins(start_service) -> None:
    service = await start_service(
        "resolutions", MKUTANO_CORS_ORIGINS="https://portal.ega.go.tz,https://tsms.ega.go.tz"
    )
    async with httpx.AsyncClient(base_url=service.url, timeout=10) as client:
        preflight = {
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,if-match",
        }
        ok = await client.options(
            "/api/v1/conferences", headers={"Origin": "https://portal.ega.go.tz", **preflight}
        )
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == "https://portal.ega.go.tz"
        denied = await client.options(
            "/api/v1/conferences", headers={"Origin": "https://evil.example", **preflight}
        )
        assert "access-control-allow-origin" not in denied.headers
        r = await client.get("/api/v1/conferences", headers={"Origin": "https://evil.example"})
        assert r.status_code == 200 and "access-control-allow-origin" not in r.headers


async def test_security_headers(platform) -> None:
    async with httpx.AsyncClient(base_url=platform.resolutions.url, timeout=10) as client:
        api = await client.get("/api/v1/conferences")
        assert api.headers["x-content-type-options"] == "nosniff"
        docs = await client.get("/docs")
        assert docs.status_code == 200 and docs.headers["content-type"].startswith("text/html")
        assert docs.headers["x-frame-options"] == "DENY"
        assert docs.headers["referrer-policy"] == "no-referrer"
