"""Rate limits on the public registration endpoints: 429 with Retry-After, nothing stored.

Also what keeps per-address limits honest: X-Forwarded-For believed only from a trusted
proxy, and slow or half-open connections closed (shared/serving.py).
"""

from __future__ import annotations

import asyncio
import contextlib

import httpx
import pytest

from tests.helpers import create_event, participant
from tests.stack import unique_suffix

pytestmark = pytest.mark.e2e


async def test_focal_persons_report_links_cannot_be_swept(start_service) -> None:
    """Guessing report links: the same 404 for every unknown link, then 429 with
    Retry-After and a bilingual page, for the page, its form and its evidence files."""
    service = await start_service(
        "resolutions",
        db_suffix=unique_suffix(),
        RESOLUTIONS_RATE_LIMITS="true",
        RESOLUTIONS_RATE_REPORT_PER_ADDRESS_PER_MIN="4",
    )
    async with httpx.AsyncClient(base_url=service.url, timeout=10) as client:
        guesses = [(await client.get(f"/report/guess{n}?lang=en")).status_code for n in range(4)]
        assert guesses == [404] * 4
        refused = await client.get("/report/guess5?lang=en")
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert "Too many requests" in refused.text and 'lang="en"' in refused.text
        posted = await client.post("/report/guess6", data={"note": "x"})
        assert posted.status_code == 429 and "Maombi mengi mno" in posted.text
        evidence = await client.get("/report/guess7/evidence/" + "0" * 64)
        assert evidence.status_code == 429


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


async def test_nobody_can_lock_a_person_out_of_registering(start_service, admin_key) -> None:
    """Attempts at no event (or a closed one) do not count against an email, and the
    per-email count is per client address too: a lock-out from elsewhere cannot happen."""
    service = await start_service(
        "registration",
        db_suffix=unique_suffix(),
        FORWARDED_ALLOW_IPS="127.0.0.1",  # this test's client is the proxy of two others
        REGISTRATION_RATE_LIMITS="true",
        REGISTRATION_RATE_REGISTER_PER_EMAIL_PER_HOUR="3",
    )
    admin = {"Authorization": f"Bearer {admin_key}"}
    first = await create_event(service.url, admin)
    second = await create_event(service.url, admin)
    attacker = {"X-Forwarded-For": "203.0.113.66"}
    person = {"X-Forwarded-For": "198.51.100.7"}
    victim = participant(email=f"rehema.{unique_suffix()}@example.go.tz")
    async with httpx.AsyncClient(base_url=service.url, timeout=10) as client:

        async def post(event_id: str, headers: dict[str, str]) -> int:
            url = f"/api/v1/events/{event_id}/registrations"
            return (await client.post(url, json=victim, headers=headers)).status_code

        # Ten attempts at an event that does not exist: none of them counts.
        assert [await post("no-such-event", attacker) for _ in range(10)] == [404] * 10
        # From another address, attempts with the person's email are limited there ...
        assert [await post(first["id"], attacker) for _ in range(4)] == [201, 409, 409, 429]
        # ... and the person, from their own address, is not locked out.
        assert await post(second["id"], person) == 201


# A self-service probe of an unknown reference: limited per client address.
PROBE = "/api/v1/registrations/MK-AAAAA-AAAAA"


async def _limited(url: str, forwarded_for: list[str]) -> list[bool]:
    """For each probe (one per X-Forwarded-For value): was it refused with 429?"""
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        answers = [
            await client.get(PROBE, headers={"X-Manage-Token": "x", "X-Forwarded-For": xff})
            for xff in forwarded_for
        ]
    assert all(r.status_code in (404, 422, 429) for r in answers), [r.text for r in answers]
    return [r.status_code == 429 for r in answers]


LIMITS = {
    "REGISTRATION_RATE_LIMITS": "true",  # the test stack turns them off by default
    "REGISTRATION_RATE_SELF_SERVICE_PER_ADDRESS_PER_MIN": "3",
}
ROTATING = [f"203.0.113.{i}" for i in range(1, 7)]


async def test_forwarded_for_from_an_untrusted_peer_does_not_escape_the_per_address_limit(
    start_service,
) -> None:
    # No FORWARDED_ALLOW_IPS (the default): the TCP peer is the client, whatever it claims.
    service = await start_service("registration", db_suffix=unique_suffix(), **LIMITS)
    assert await _limited(service.url, ROTATING) == [False] * 3 + [True] * 3


async def test_a_trusted_proxy_names_each_client_in_forwarded_for(start_service) -> None:
    # This test's client is the proxy (127.0.0.1): each forwarded client has its own bucket.
    service = await start_service(
        "registration", db_suffix=unique_suffix(), FORWARDED_ALLOW_IPS="127.0.0.1", **LIMITS
    )
    assert await _limited(service.url, ROTATING) == [False] * 6
    # ... and one client behind it is still limited on its own address.
    assert await _limited(service.url, ["198.51.100.7"] * 4) == [False] * 3 + [True]


async def test_half_open_and_slow_connections_are_closed_after_the_timeouts(
    start_service,
) -> None:
    """Sockets that never finish their headers (silent, half-written or trickling a byte at
    a time) and an idle kept-alive connection are closed by the server within a bound."""
    service = await start_service(
        "registration",
        db_suffix=unique_suffix(),
        HTTP_HEADER_TIMEOUT_S="1",
        HTTP_KEEP_ALIVE_TIMEOUT_S="1",
    )
    host, port = "127.0.0.1", service.port
    opened: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def connect(first: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection(host, port)
        if first:
            writer.write(first)
            await writer.drain()
        opened.append((reader, writer))
        return reader, writer

    async def closed_by_server(reader: asyncio.StreamReader) -> bytes:
        data = b""
        while chunk := await reader.read(4096):  # b"": the server closed the connection
            data += chunk
        return data

    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """A slowloris: a byte of header every 0.2 s, bounded, until the server hangs up."""
        waiting = asyncio.ensure_future(closed_by_server(reader))
        for byte in b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200:
            if waiting.done():
                break
            with contextlib.suppress(ConnectionError):
                writer.write(bytes([byte]))
                await writer.drain()
            await asyncio.wait([waiting], timeout=0.2)
        await waiting

    partial = b"GET /health/live HTTP/1.1\r\nHost: x\r\n"  # no blank line: never complete
    try:
        silent = [await connect(b"") for _ in range(20)]
        half = [await connect(partial) for _ in range(20)]
        slow = [await connect(b"") for _ in range(5)]
        # A normal request on a kept-alive connection: answered, then closed when idle.
        keep_reader, _ = await connect(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        waits = [closed_by_server(r) for r, _ in silent + half]
        waits += [trickle(r, w) for r, w in slow]
        waits.append(closed_by_server(keep_reader))
        # Bounded: the timeouts are 1 s; a server without them never closes these.
        results = await asyncio.wait_for(asyncio.gather(*waits), 15)
        assert results[-1].startswith(b"HTTP/1.1 200"), results[-1][:200]
        # The server still serves.
        async with httpx.AsyncClient(base_url=service.url, timeout=5) as client:
            assert (await client.get("/health/live")).status_code == 200
    finally:
        for _, writer in opened:
            writer.close()
