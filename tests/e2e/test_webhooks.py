"""The webhooks service as a process, against the real broker, the registration service
and a real HTTP receiver on 127.0.0.1 that verifies signatures with the
``standardwebhooks`` library, as an e-GA system would.

Only 127.0.0.1 is ever contacted: the refusal of private targets is checked at
creation, with literal addresses that are refused before any connection.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from shared.topics import NOTIFICATION, PAYMENTS, REGISTRATION, RESOLUTIONS, all_topics
from tests.helpers import create_event, participant
from tests.stack import (
    ServiceFactory,
    ServiceHandle,
    consumer_group_at_end,
    unique_suffix,
    wait_until,
)

pytestmark = pytest.mark.e2e
T = "tz.go.ega.registration."
# The public streams the webhooks service reads (services/webhooks/settings.py).
STREAMS = (REGISTRATION, RESOLUTIONS, NOTIFICATION, PAYMENTS)


@dataclass
class Received:
    at: float
    headers: dict[str, str]
    body: bytes
    answered: int

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)


class Receiver:
    """An HTTP endpoint on 127.0.0.1 in a thread: answers ``status``, keeps every request."""

    def __init__(self) -> None:
        self.status = 200
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                status = receiver.status
                with receiver._lock:
                    receiver.requests.append(
                        Received(
                            time.monotonic(),
                            {k.lower(): v for k, v in self.headers.items()},
                            body,
                            status,
                        )
                    )
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def of_event(self, event_id: str) -> list[Received]:
        """Requests about one Mkutano event (conference), in arrival order."""
        with self._lock:
            found = list(self.requests)
        return [
            r for r in found if (r.event["data"].get("event") or {}).get("event_id") == event_id
        ]

    def registrations_of(self, event_id: str) -> list[Received]:
        """Requests about the registrations of one event (not the event's own news)."""
        return [r for r in self.of_event(event_id) if "registration_id" in r.event["data"]]

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


@pytest.fixture(scope="module")
async def webhooks(kafka, mongo, smtp, sms, admin_key, stack_dir) -> AsyncIterator[ServiceHandle]:
    """One webhooks service for this module, with a short retry schedule; its consumer
    group starts at the topics' ends (the session's earlier events are not this module's)."""
    group = await consumer_group_at_end(kafka.bootstrap, STREAMS, prefix="webhooks")
    factory = ServiceFactory(
        kafka=kafka, mongo=mongo, smtp=smtp, sms=sms, admin_key=admin_key,
        workdir=stack_dir / "webhooks",
    )  # fmt: skip
    try:
        handle = await factory.start(
            "webhooks",
            db_suffix=unique_suffix(),
            WEBHOOKS_CONSUMER_GROUP=group,
            WEBHOOKS_RETRY_SCHEDULE_S="[0.3, 0.3, 0.5, 0.5, 1, 1, 2, 2, 5, 5]",
            WEBHOOKS_RETRY_JITTER="0.1",
            WEBHOOKS_PAUSE_AFTER_FAILURES="8",
            WEBHOOKS_PAUSE_AFTER_FAILING_S="0",
            WEBHOOKS_HOLD_S="1",
            WEBHOOKS_SCAN_INTERVAL_S="0.5",
            WEBHOOKS_REQUEST_TIMEOUT_S="5",
        )
        await caught_up(handle, admin_key)
        yield handle
    finally:
        await factory.close()


async def caught_up(handle: ServiceHandle, admin_key: str) -> None:
    """Wait until the consumer group has its partitions and no lag: "ready" does not
    mean "caught up" (the group starts at the topics' ends, see ``webhooks``)."""
    partitions = sum(t.partitions for t in all_topics() if t.name in STREAMS)

    async def no_lag() -> bool:
        async with httpx.AsyncClient(base_url=handle.url, timeout=10) as client:
            r = await client.get(
                "/api/v1/admin/status", headers={"Authorization": f"Bearer {admin_key}"}
            )
        (group,) = r.json()["consumers"]
        rows = group["partitions"]
        return isinstance(rows, list) and len(rows) == partitions and group["lag"] == 0

    await wait_until(no_lag, timeout=180, interval=0.5, message="the webhooks consumer caught up")


@pytest.fixture
async def admin(webhooks, platform) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=webhooks.url, headers=platform.admin_headers, timeout=30
    ) as client:
        yield client
        # Each test's receiver goes with it: so do its subscriptions, or the next tests'
        # events would fail against a closed port and pause them.
        for sub in (await client.get("/api/v1/subscriptions")).json():
            await client.delete(f"/api/v1/subscriptions/{sub['id']}")


async def subscribe(admin: httpx.AsyncClient, url: str, **extra: Any) -> dict[str, Any]:
    body = {
        "url": url,
        "event_types": [T + "*"],
        "label": "TSMS test",
        "owner_email": f"ict.{secrets.token_hex(4)}@example.go.tz",
        **extra,
    }
    r = await admin.post("/api/v1/subscriptions", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def verified(secret: str, request: Received) -> dict[str, Any]:
    """The CloudEvent, if the Standard Webhooks signature is valid (raises otherwise)."""
    return Webhook(secret).verify(request.body, request.headers)


async def test_a_registration_reaches_a_subscribed_receiver_once_with_a_valid_signature(
    platform, admin, receiver
) -> None:
    sub = await subscribe(admin, receiver.url, personal_data={"purpose": "Issue CPD hours"})
    assert sub["secret"].startswith("whsec_") and sub["status"] == "active"
    assert "secret" not in (await admin.get(f"/api/v1/subscriptions/{sub['id']}")).json()
    event = await create_event(platform.registration.url, platform.admin_headers)
    person = participant()
    async with httpx.AsyncClient(base_url=platform.registration.url, timeout=30) as reg:
        created = await reg.post(f"/api/v1/events/{event['id']}/registrations", json=person)
    assert created.status_code == 201, created.text

    (request,) = await wait_until(
        lambda: receiver.registrations_of(event["id"]), timeout=30, message="the webhook"
    )
    cloudevent = verified(sub["secret"], request)
    assert request.headers["content-type"] == "application/cloudevents+json"
    assert request.headers["webhook-id"] == cloudevent["id"]
    assert cloudevent["type"] == T + "ParticipantRegistered.v2"
    assert cloudevent["source"] == "/mkutano/registration"
    assert cloudevent["data"]["registration_id"] == created.json()["id"]
    assert cloudevent["partitionkey"] == created.json()["id"]
    # Granted: nothing is left out (the public stream carries no name, email, phone or
    # ticket at all since version 2, so a grant cannot add them).
    assert "personaldata" not in cloudevent
    assert cloudevent["data"]["participant"] == {
        "institution": person["institution"],
        "cadre": person["cadre"],
        "language": person["language"],
        "category": person["cadre"],
        "institution_code": None,
    }

    async def logged() -> dict[str, Any] | None:
        r = await admin.get(f"/api/v1/subscriptions/{sub['id']}/deliveries/{cloudevent['id']}")
        return r.json() if r.status_code == 200 and r.json()["status"] == "delivered" else None

    delivery = await wait_until(logged, timeout=10)
    assert delivery["attempts_count"] == 1 and delivery["last_status_code"] == 200
    assert delivery["attempts"][0]["latency_ms"] >= 0
    assert "data" not in delivery, "the log shows no payload"
    assert len(receiver.registrations_of(event["id"])) == 1, "once"
    metrics = (await admin.get("/metrics")).text
    assert 'mkutano_webhook_attempts_total{outcome="delivered"}' in metrics


async def test_a_subscription_without_the_grant_receives_no_names_emails_or_phones(
    platform, admin, receiver
) -> None:
    sub = await subscribe(admin, receiver.url)
    assert sub["personal_data"] is None
    event = await create_event(platform.registration.url, platform.admin_headers)
    person = participant(full_name="Neema Mussa Kileo")
    async with httpx.AsyncClient(base_url=platform.registration.url, timeout=30) as reg:
        created = await reg.post(f"/api/v1/events/{event['id']}/registrations", json=person)
    assert created.status_code == 201, created.text
    (request,) = await wait_until(lambda: receiver.registrations_of(event["id"]), timeout=30)
    cloudevent = verified(sub["secret"], request)
    assert cloudevent["personaldata"] == "omitted"
    text = request.body.decode()
    stored_phone = created.json().get("phone") or ""
    for personal in ("Neema", "Kileo", person["email"], person["phone"][-7:], stored_phone):
        if personal:
            assert personal not in text
    assert cloudevent["data"]["participant"] == {
        "language": person["language"],
        "institution": person["institution"],
        "cadre": person["cadre"],
        "category": person["cadre"],
        "institution_code": None,
    }
    assert "ticket" not in cloudevent["data"]


async def test_a_receiver_down_for_a_while_gets_every_event_after_it_returns_in_order(
    platform, admin, receiver
) -> None:
    receiver.status = 503
    # The registrations' events only: the failures stay well under the pause bound.
    sub = await subscribe(
        admin, receiver.url, event_types=[T + "Participant*", T + "Registration*"]
    )
    event = await create_event(platform.registration.url, platform.admin_headers)
    expected: dict[str, list[str]] = {}
    async with httpx.AsyncClient(base_url=platform.registration.url, timeout=30) as reg:
        for changes in (True, False):
            created = (
                await reg.post(f"/api/v1/events/{event['id']}/registrations", json=participant())
            ).json()
            ref, token = created["reference"], {"X-Manage-Token": created["manage_token"]}
            types = ["ParticipantRegistered"]
            if changes:
                r = await reg.patch(
                    f"/api/v1/registrations/{ref}", json={"position": "Director"}, headers=token
                )
                assert r.status_code == 200, r.text
                types.append("RegistrationUpdated")
            r = await reg.post(f"/api/v1/registrations/{ref}/cancel", headers=token)
            assert r.status_code == 200, r.text
            types.append("RegistrationCancelled")
            expected[created["id"]] = [T + t + ".v2" for t in types]

    # Down: the first events are refused and retried, the later ones of a key wait.
    await wait_until(
        lambda: any(r.answered == 503 for r in receiver.registrations_of(event["id"])),
        timeout=30,
        message="a failed attempt while the receiver is down",
    )
    receiver.status = 200

    def accepted() -> list[Received] | None:
        ok = [r for r in receiver.registrations_of(event["id"]) if r.answered == 200]
        ids = {r.headers["webhook-id"] for r in ok}
        return ok if len(ids) == sum(len(v) for v in expected.values()) else None

    ok = await wait_until(accepted, timeout=40, message="every event after the receiver is back")
    for request in receiver.registrations_of(event["id"]):
        verified(sub["secret"], request)
    for registration_id, types in expected.items():
        seen: list[str] = []
        for request in ok:
            ce = request.event
            if ce["data"]["registration_id"] == registration_id and ce["type"] not in seen:
                seen.append(ce["type"])
        assert seen == types, f"in order per registration: {seen}"
    log = (await admin.get(f"/api/v1/subscriptions/{sub['id']}/deliveries")).json()
    retried = [d for d in log if d["attempts_count"] > 1]
    assert retried and all(d["attempts"][0]["error"] == "HTTP 503" for d in retried)
    assert (await admin.get(f"/api/v1/subscriptions/{sub['id']}")).json()["status"] == "active"


async def test_a_receiver_failing_for_good_is_paused_and_its_owner_emailed(
    platform, admin, receiver, smtp
) -> None:
    receiver.status = 500
    sub = await subscribe(admin, receiver.url, label="Failing system")
    event = await create_event(platform.registration.url, platform.admin_headers)
    async with httpx.AsyncClient(base_url=platform.registration.url, timeout=30) as reg:
        r = await reg.post(f"/api/v1/events/{event['id']}/registrations", json=participant())
    assert r.status_code == 201, r.text

    async def paused() -> dict[str, Any] | None:
        view = (await admin.get(f"/api/v1/subscriptions/{sub['id']}")).json()
        return view if view["status"] == "paused" else None

    view = await wait_until(paused, timeout=40, message="the subscription paused")
    assert view["consecutive_failures"] >= 8 and "failed attempts" in view["paused_reason"]
    (mail,) = await smtp.wait_for(lambda m: sub["owner_email"] in str(m["To"]), timeout=20)
    assert "paused" in str(mail["Subject"]).lower() and "Failing system" in str(mail["Subject"])
    # Paused: nothing more is attempted until an admin resumes it.
    attempts = len(receiver.registrations_of(event["id"]))
    receiver.status = 200
    resumed = await admin.post(f"/api/v1/subscriptions/{sub['id']}/resume")
    assert resumed.status_code == 200 and resumed.json()["status"] == "active"
    await wait_until(
        lambda: any(r.answered == 200 for r in receiver.registrations_of(event["id"])), timeout=30
    )
    assert len(receiver.registrations_of(event["id"])) > attempts


@pytest.mark.parametrize(
    "url",
    [
        "http://10.1.2.3/hook",
        "http://192.168.1.10/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[fd00::1]/hook",
    ],
)
async def test_a_target_on_a_private_address_is_refused(admin, url: str) -> None:
    r = await admin.post(
        "/api/v1/subscriptions",
        json={
            "url": url,
            "event_types": [T + "*"],
            "label": "internal",
            "owner_email": "ict@example.go.tz",
        },
    )
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "target_not_allowed"
    assert r.json()["error"]["fields"][0]["field"] == "url"
    listed = (await admin.get("/api/v1/subscriptions")).json()
    assert url not in {s["url"] for s in listed}


async def test_the_admin_api_needs_the_admin_role(webhooks) -> None:
    async with httpx.AsyncClient(base_url=webhooks.url, timeout=10) as anonymous:
        assert (await anonymous.get("/api/v1/subscriptions")).status_code == 401


async def test_a_rotated_secret_overlaps_and_a_replay_repeats_the_webhook_id(
    platform, admin, receiver
) -> None:
    sub = await subscribe(admin, receiver.url)
    rotated = await admin.post(
        f"/api/v1/subscriptions/{sub['id']}/rotate-secret", json={"overlap_s": 600}
    )
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["secret"]
    assert new_secret != sub["secret"] and rotated.json()["previous_secret_valid_until"]
    event = await create_event(platform.registration.url, platform.admin_headers)
    async with httpx.AsyncClient(base_url=platform.registration.url, timeout=30) as reg:
        r = await reg.post(f"/api/v1/events/{event['id']}/registrations", json=participant())
    assert r.status_code == 201, r.text
    (request,) = await wait_until(lambda: receiver.registrations_of(event["id"]), timeout=30)
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    for secret in (sub["secret"], new_secret):  # a receiver holding either verifies
        verified(secret, request)

    event_id = request.headers["webhook-id"]

    async def delivered() -> bool:
        path = f"/api/v1/subscriptions/{sub['id']}/deliveries/{event_id}"
        return (await admin.get(path)).json()["status"] == "delivered"

    await wait_until(delivered, timeout=10)
    replay = await admin.post(f"/api/v1/subscriptions/{sub['id']}/deliveries/{event_id}/replay")
    assert replay.status_code == 202 and replay.json()["replays"] == 1
    again = await wait_until(
        lambda: len(receiver.registrations_of(event["id"])) == 2, timeout=20, message="replay"
    )
    assert again
    ids = [r.headers["webhook-id"] for r in receiver.registrations_of(event["id"])]
    assert ids == [event_id, event_id], "a receiver deduplicating on webhook-id skips it"


async def test_what_waits_for_a_receiver_survives_a_restart_of_the_service(
    platform, webhooks, admin, receiver
) -> None:
    receiver.status = 503
    sub = await subscribe(admin, receiver.url, event_types=[T + "ParticipantRegistered.v2"])
    event = await create_event(platform.registration.url, platform.admin_headers)
    async with httpx.AsyncClient(base_url=platform.registration.url, timeout=30) as reg:
        r = await reg.post(f"/api/v1/events/{event['id']}/registrations", json=participant())
    assert r.status_code == 201, r.text
    await wait_until(lambda: receiver.registrations_of(event["id"]), timeout=30)
    await webhooks.restart()  # SIGTERM, then started again on the same database
    receiver.status = 200
    ok = await wait_until(
        lambda: [r for r in receiver.registrations_of(event["id"]) if r.answered == 200],
        timeout=40,
        message="the delivery after the restart",
    )
    verified(sub["secret"], ok[0])
