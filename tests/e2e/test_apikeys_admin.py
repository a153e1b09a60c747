"""API keys (issue 6): created, listed, revoked and rotated through the admin API.

Driven against the running registration service as an operator would, with the
bootstrap admin key; each test creates keys of its own.
"""

from __future__ import annotations

import httpx
import pytest

from tests.helpers import event_spec, unique_id

pytestmark = pytest.mark.e2e

KEYS = "/api/v1/admin/api-keys"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def create_key(client: httpx.AsyncClient, admin: dict[str, str], **body) -> dict:
    body.setdefault("label", unique_id("label"))
    r = await client.post(KEYS, json=body, headers=admin)
    assert r.status_code == 201, r.text
    return r.json()


async def test_missing_or_wrong_credentials_are_401_in_the_error_shape(platform) -> None:
    async with httpx.AsyncClient(base_url=platform.registration.url, timeout=10) as client:
        made = await create_key(client, platform.admin_headers, roles=["organiser"])
        wrong_secret = made["key"][:-4] + ("AAAA" if not made["key"].endswith("AAAA") else "BBBB")
        for headers in (
            {},
            bearer("not-a-key"),
            bearer(wrong_secret),
            {"X-API-Key": "mk_0123456789abcdef_" + "x" * 40},
        ):
            r = await client.get(KEYS, headers=headers)
            assert r.status_code == 401, (headers, r.text)
            assert r.json()["error"]["code"] == "unauthenticated"
            r = await client.post("/api/v1/events", json=event_spec(), headers=headers)
            assert r.status_code == 401


async def test_a_key_carries_its_roles_and_is_listed_without_secrets(platform) -> None:
    async with httpx.AsyncClient(base_url=platform.registration.url, timeout=10) as client:
        made = await create_key(
            client, platform.admin_headers, roles=["organiser"], label="TSMS integration"
        )
        assert made["key"].startswith(f"mk_{made['id']}_")
        assert made["roles"] == ["organiser"] and made["active"] is True

        organiser = bearer(made["key"])
        # The role it has: create an event (X-API-Key works as well as Bearer).
        r = await client.post(
            "/api/v1/events", json=event_spec(), headers={"X-API-Key": made["key"]}
        )
        assert r.status_code == 201, r.text
        # The role it lacks: the admin API.
        r = await client.get(KEYS, headers=organiser)
        assert r.status_code == 403
        assert r.json()["error"]["code"] == "forbidden"

        r = await client.get(KEYS, headers=platform.admin_headers)
        assert r.status_code == 200
        listed = {k["id"]: k for k in r.json()["items"]}
        mine = listed[made["id"]]
        assert mine["label"] == "TSMS integration" and mine["roles"] == ["organiser"]
        assert mine["last_used_at"] is not None  # it was used above
        text = r.text
        assert made["key"] not in text and "hash" not in text and '"key"' not in text


async def test_revoked_key_is_refused(platform) -> None:
    async with httpx.AsyncClient(base_url=platform.registration.url, timeout=10) as client:
        made = await create_key(client, platform.admin_headers, roles=["auditor"])
        r = await client.get("/api/v1/admin/status", headers=bearer(made["key"]))
        assert r.status_code == 200, r.text

        r = await client.post(f"{KEYS}/{made['id']}/revoke", headers=platform.admin_headers)
        assert r.status_code == 200
        assert r.json()["active"] is False and r.json()["revoked_at"]

        r = await client.get("/api/v1/admin/status", headers=bearer(made["key"]))
        assert r.status_code == 401
        # A revoked key cannot be brought back by rotation.
        r = await client.post(f"{KEYS}/{made['id']}/rotate", headers=platform.admin_headers)
        assert r.status_code == 409
        assert r.json()["error"]["code"] == "api_key_revoked"


async def test_rotated_key_refuses_its_old_secret(platform) -> None:
    async with httpx.AsyncClient(base_url=platform.registration.url, timeout=10) as client:
        made = await create_key(client, platform.admin_headers, roles=["admin"])
        r = await client.post(f"{KEYS}/{made['id']}/rotate", headers=bearer(made["key"]))
        assert r.status_code == 200, r.text
        rotated = r.json()
        assert rotated["id"] == made["id"] and rotated["key"] != made["key"]
        assert rotated["rotated_at"]

        assert (await client.get(KEYS, headers=bearer(made["key"]))).status_code == 401
        assert (await client.get(KEYS, headers=bearer(rotated["key"]))).status_code == 200


async def test_keys_belong_to_one_service(platform) -> None:
    """Services share nothing: a key made on registration is unknown to resolutions."""
    async with httpx.AsyncClient(timeout=10) as client:
        client.base_url = platform.registration.url
        made = await create_key(client, platform.admin_headers, roles=["admin"])
        r = await client.get(f"{platform.resolutions.url}{KEYS}", headers=bearer(made["key"]))
        assert r.status_code == 401


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"label": "x", "roles": ["superuser"]}, "roles"),
        ({"label": "x", "roles": []}, "roles"),
        ({"label": "", "roles": ["admin"]}, "label"),
        ({"label": "x", "roles": ["coordinator"], "scopes": ["has space"]}, "scopes"),
        ({"label": "x", "roles": ["admin"], "secret": "chosen"}, "secret"),
    ],
)
async def test_bad_key_requests_are_422_and_create_nothing(platform, body, field) -> None:
    async with httpx.AsyncClient(base_url=platform.registration.url, timeout=10) as client:
        before = (await client.get(KEYS, headers=platform.admin_headers)).json()["items"]
        r = await client.post(KEYS, json=body, headers=platform.admin_headers)
        assert r.status_code == 422, r.text
        assert field in {f["field"] for f in r.json()["error"]["fields"]}
        after = (await client.get(KEYS, headers=platform.admin_headers)).json()["items"]
        assert len(after) == len(before)
        r = await client.post(f"{KEYS}/nothex/revoke", headers=platform.admin_headers)
        assert r.status_code == 404
