"""The staff console end to end: Debian's Chromium against the real services.

registration, notification and the console run as processes on this session's Kafka,
MongoDB and SMTP capture; registration and notification trust the console's JWKS, as in
the dev stack (``deploy.embedded.console_env``). Each role's main task, as its person
would do it in a browser: an organiser approves and the participant's email arrives; an
organiser's announcement reaches 100 %; a registrar at 390 px scans the QR of the
confirmation email through Chromium's fake camera, twice; with the network cut, three
check-ins are queued and reach registration when it returns; a person without the role
is refused the page and the API call; axe finds nothing on any page.
"""

from __future__ import annotations

import contextlib
import secrets
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from io import BytesIO
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.axe import axe_violations
from tests.browser import CHROMIUM_ARGS, chromium_context, chromium_path, shared_playwright
from tests.helpers import create_event, participant
from tests.stack import ServiceHandle, release_after_last_user, wait_until

pytestmark = pytest.mark.e2e


# This module's services are tests/e2e/conftest.py's `console_stack` (shared with
# test_console_coordinators.py), with a notification of its own: its messages go to
# captures of its own, never mixed with the session notification's copies.
@pytest.fixture(scope="module")
def smtp(console_stack):
    return console_stack.smtp


@pytest.fixture(scope="module")
def sms(console_stack):
    return console_stack.sms


PASSWORD = "a long enough password 1"


@dataclass
class Stack:
    registration: ServiceHandle
    notification: ServiceHandle
    console: ServiceHandle
    admin: dict[str, str]

    async def user(self, roles: list[str]) -> str:
        username = f"u{secrets.token_hex(4)}"
        async with httpx.AsyncClient(base_url=self.console.url, timeout=10) as client:
            r = await client.post(
                "/api/v1/users",
                json={
                    "username": username,
                    "name": f"Staff {username}",
                    "roles": roles,
                    "password": PASSWORD,
                    "language": "en",
                },
                headers=self.admin,
            )
        assert r.status_code == 201, r.text
        return username

    async def register(self, event_id: str, **overrides: Any) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=self.registration.url, timeout=10) as client:
            r = await client.post(
                f"/api/v1/events/{event_id}/registrations", json=participant(**overrides)
            )
        assert r.status_code == 201, r.text
        return r.json()

    async def door_list(self, event_id: str) -> list[dict[str, Any]]:
        async with httpx.AsyncClient(base_url=self.registration.url, timeout=10) as client:
            r = await client.get(f"/api/v1/events/{event_id}/door-list", headers=self.admin)
        assert r.status_code == 200, r.text
        return r.json()["items"]


@pytest.fixture(scope="module")
async def stack(console_stack, request) -> AsyncIterator[Stack]:
    """Registration, notification and the console (tests/e2e/conftest.py's
    ``console_stack``): the services trust the console's JWKS; payments is not running,
    so the dashboard says its figures are unavailable (test_console_payments_flows.py
    shows them with payments running)."""
    yield Stack(
        console_stack.registration,
        console_stack.notification,
        console_stack.console,
        console_stack.admin,
    )
    await release_after_last_user(request, "console_stack", console_stack)


def door_event(**overrides: Any) -> dict[str, Any]:
    """An event under way today: check-in is open, and so is registration."""
    now = datetime.now(UTC)
    return {
        "starts_at": (now - timedelta(hours=1)).isoformat(),
        "ends_at": (now + timedelta(days=2)).isoformat(),
        **overrides,
    }


@contextlib.asynccontextmanager
async def browser(
    *, width: int = 1280, height: int = 800, camera: Path | None = None
) -> AsyncIterator[Any]:
    """A Playwright context in Debian's Chromium (a fake camera playing ``camera``).

    Without a camera: a new context in the session's one Chromium (tests/browser.py). A
    fake camera is a launch option, so that Chromium is launched for its test alone."""
    if camera is None:
        async with chromium_context(width=width, height=height) as context:
            yield context
        return
    pw = await shared_playwright()
    args = [
        *CHROMIUM_ARGS,
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-video-capture={camera}",
    ]
    with tempfile.TemporaryDirectory(prefix="mkutano-chromium-") as profile:
        context = await pw.chromium.launch_persistent_context(
            profile,
            executable_path=chromium_path(),
            headless=True,
            args=args,
            viewport={"width": width, "height": height},
        )
        try:
            yield context
        finally:
            await context.close()


async def no_axe_violations(page: Any) -> None:
    violations = await axe_violations(page)
    assert violations == [], (page.url, violations)


async def sign_in(page: Any, console: ServiceHandle, username: str, target: str = "") -> None:
    await page.goto(f"{console.url}/{'?next=' + target if target else ''}")
    await no_axe_violations(page)
    await page.get_by_label("Jina la mtumiaji").fill(username)
    await page.get_by_label("Nenosiri").fill(PASSWORD)
    await page.get_by_role("button", name="Ingia").click()
    await page.wait_for_load_state()


def has_ticket(message: EmailMessage) -> bool:
    return any(p.get_content_type() == "image/png" for p in message.iter_attachments())


def qr_png_of(message: EmailMessage) -> bytes:
    (png,) = [p for p in message.iter_attachments() if p.get_content_type() == "image/png"]
    return bytes(png.get_content())


def y4m_of(png: bytes, path: Path, *, width: int = 640, height: int = 480) -> Path:
    """A Y4M video (YUV 4:2:0) of the QR code on white, for Chromium's fake camera."""
    from PIL import Image

    qr = Image.open(BytesIO(png)).convert("L")
    side = min(width, height) - 40
    qr = qr.resize((side, side), Image.NEAREST)
    frame = Image.new("L", (width, height), 255)
    frame.paste(qr, ((width - side) // 2, (height - side) // 2))
    luma = frame.tobytes()
    chroma = bytes([128]) * (width // 2 * height // 2)
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F10:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(10):
            out.write(b"FRAME\n" + luma + chroma + chroma)
    return path


async def test_an_organiser_signs_in_finds_a_registration_and_approves_it(stack, smtp) -> None:
    event = await create_event(
        stack.registration.url, stack.admin, requires_approval=True, title_en="Approval day"
    )
    person = participant(full_name="Neema Approve Kassim", language="en")
    async with httpx.AsyncClient(base_url=stack.registration.url, timeout=10) as client:
        r = await client.post(f"/api/v1/events/{event['id']}/registrations", json=person)
    assert r.status_code == 201 and r.json()["status"] == "pending_approval", r.text
    reference = r.json()["reference"]
    organiser = await stack.user(["organiser"])

    async with browser() as context:
        page = context.pages[0]
        await sign_in(page, stack.console, organiser)
        assert page.url.endswith("/events")
        await no_axe_violations(page)
        await page.goto(f"{stack.console.url}/events/{event['id']}/registrations?lang=en")
        await no_axe_violations(page)
        await page.get_by_label("Search").fill("Neema Approve")
        await page.get_by_role("button", name="Filter").click()
        await page.get_by_role("link", name="Neema Approve Kassim").click()
        assert reference in await page.content()
        await no_axe_violations(page)
        assert await page.locator("#status").inner_text() == "Awaiting approval"
        await page.get_by_role("button", name="Approve").click()
        await page.wait_for_load_state()
        assert await page.locator("#status").inner_text() == "Confirmed"
        await no_axe_violations(page)
        # The dashboard counts it.
        await page.goto(f"{stack.console.url}/events/{event['id']}")
        assert "Confirmed" in await page.content()
        await no_axe_violations(page)
    # The participant's confirmation arrives, with the ticket's QR code.
    (mail,) = await smtp.wait_for(
        lambda m: person["email"] in (m["To"] or "") and has_ticket(m), timeout=60
    )
    assert qr_png_of(mail)


async def test_an_organiser_sorts_the_whole_list_by_name_and_filters_a_category(stack) -> None:
    """Issue 15: the server sorts the whole list, so page two continues where page one
    stopped; the category filter shows that category alone; at 390 px, axe-clean."""
    categories = [
        {"code": "delegate", "name_sw": "Mjumbe", "name_en": "Delegate"},
        {"code": "speaker", "name_sw": "Mzungumzaji", "name_en": "Speaker"},
    ]
    event = await create_event(
        stack.registration.url, stack.admin, title_en="Sorting day", categories=categories
    )
    given = ["Zuhura", "amina", "Baraka", "Neema", "juma", "Asha", "elia", "Rehema", "Tumaini"]
    family = ["Mollel", "said", "Kimaro", "Mushi", "MREMA", "Ndege", "Omari"]
    names = [f"{given[(i * 4) % 9]} {family[(i * 3) % 7]} {i:02d}" for i in range(30)]
    speakers = set()
    async with httpx.AsyncClient(base_url=stack.registration.url, timeout=10) as client:
        for i, name in enumerate(names):  # registered in this (unsorted) order
            category = "speaker" if i % 4 == 0 else "delegate"
            body = participant(full_name=name, category=category, language="en")
            r = await client.post(f"/api/v1/events/{event['id']}/registrations", json=body)
            assert r.status_code == 201, r.text
            if category == "speaker":
                speakers.add(name)
    by_name = sorted(names, key=str.casefold)
    assert by_name != names  # creation order is not name order
    organiser = await stack.user(["organiser"])
    rows = "table tbody tr td:first-child a"

    async with browser(width=390, height=844) as context:
        page = context.pages[0]
        await sign_in(page, stack.console, organiser)
        await page.goto(f"{stack.console.url}/events/{event['id']}/registrations?lang=en")
        assert await page.locator(rows).all_inner_texts() == names[:25]
        await page.get_by_label("Sort by").select_option("name")
        await page.get_by_role("button", name="Filter").click()
        await page.wait_for_load_state()
        assert await page.locator(rows).all_inner_texts() == by_name[:25]
        await no_axe_violations(page)
        await page.get_by_role("link", name="Next page").click()
        await page.wait_for_load_state()
        assert await page.locator(rows).all_inner_texts() == by_name[25:]
        assert await page.get_by_label("Sort by").input_value() == "name"
        await no_axe_violations(page)
        # A name cursor with another sort (a hand-edited address) is refused, not a 500.
        edited = await page.context.new_page()
        answer = await edited.goto(page.url.replace("sort=name", "sort=status"))
        assert answer is not None and answer.status == 422
        await edited.close()
        # A category: only its people, still by name, and the export keeps the filter.
        await page.get_by_label("Category").select_option(label="Speaker")
        await page.get_by_role("button", name="Filter").click()
        await page.wait_for_load_state()
        shown = await page.locator(rows).all_inner_texts()
        assert shown == [n for n in by_name if n in speakers] and len(shown) == 8
        cells = await page.locator("table tbody tr td:nth-child(4)").all_inner_texts()
        assert set(cells) == {"Speaker"}
        export = await page.get_by_role("link", name="Download CSV").get_attribute("href")
        assert export is not None and "category=speaker" in export
        await no_axe_violations(page)
        # The same page in Swahili names the category in Swahili.
        await page.goto(page.url.replace("lang=en", "lang=sw"))
        assert set(await page.locator("table tbody tr td:nth-child(4)").all_inner_texts()) == {
            "Mzungumzaji"
        }
        await no_axe_violations(page)


async def test_an_organiser_sends_an_announcement_and_sees_it_reach_100_percent(
    stack, smtp
) -> None:
    event = await create_event(stack.registration.url, stack.admin, title_en="Announce day")
    emails = []
    for _ in range(3):
        body = participant(language="en")
        emails.append(body["email"])
        async with httpx.AsyncClient(base_url=stack.registration.url, timeout=10) as client:
            r = await client.post(f"/api/v1/events/{event['id']}/registrations", json=body)
        assert r.status_code == 201
    # notification knows the participants once it has their confirmations.
    await smtp.wait_for(lambda m: any(e in (m["To"] or "") for e in emails), count=3, timeout=60)
    organiser = await stack.user(["organiser"])
    async with browser() as context:
        page = context.pages[0]
        await sign_in(
            page, stack.console, organiser, f"/events/{event['id']}/announcements/new?lang=sw"
        )
        await no_axe_violations(page)
        await page.get_by_label("Kichwa (Kiswahili)").fill("Ratiba imebadilika")
        await page.get_by_label("Kichwa (Kiingereza)").fill("The programme has changed")
        await page.get_by_label("Ujumbe (Kiswahili)").fill("Ufunguzi utaanza saa tatu.")
        await page.get_by_label("Ujumbe (Kiingereza)").fill("The opening starts at nine.")
        await page.get_by_role("button", name="Hakiki").click()
        await page.wait_for_load_state()
        await no_axe_violations(page)
        assert "The programme has changed" in await page.content()
        await page.get_by_role("button", name="Tuma").click()
        await page.wait_for_load_state()
        await no_axe_violations(page)
        # The page refreshes itself until every message is out.
        await page.locator("#percent", has_text="100 %").wait_for(timeout=90_000)
        await no_axe_violations(page)
    await smtp.wait_for(
        lambda m: (
            "The programme has changed" in str(m["Subject"])
            or "Ratiba imebadilika" in str(m["Subject"])
        ),
        count=3,
        timeout=30,
    )


async def test_a_registrar_at_390px_scans_the_emailed_qr_and_works_offline(
    stack, smtp, tmp_path
) -> None:
    event = await create_event(stack.registration.url, stack.admin, **door_event())
    guest = participant(full_name="Baraka Scan Mushi", language="en")
    async with httpx.AsyncClient(base_url=stack.registration.url, timeout=10) as client:
        r = await client.post(f"/api/v1/events/{event['id']}/registrations", json=guest)
    assert r.status_code == 201 and r.json()["status"] == "confirmed"
    others = [
        await stack.register(event["id"], full_name=f"Offline Mgeni {n}") for n in ("A", "B", "C")
    ]
    (mail,) = await smtp.wait_for(
        lambda m: guest["email"] in (m["To"] or "") and has_ticket(m), timeout=60
    )
    camera = y4m_of(qr_png_of(mail), tmp_path / "ticket.y4m")
    registrar = await stack.user(["registrar"])

    async with browser(width=390, height=844, camera=camera) as context:
        await context.grant_permissions(["camera"], origin=stack.console.url)
        page = context.pages[0]
        await sign_in(page, stack.console, registrar, f"/events/{event['id']}/door?lang=en")
        await page.locator("#cached", has_text="4").wait_for(timeout=30_000)
        await no_axe_violations(page)
        await page.get_by_role("button", name="Start the camera").click()
        answer = page.locator("#answer")
        await answer.locator("#answer-title", has_text="Checked in").wait_for(timeout=60_000)
        assert "Baraka Scan Mushi" in await answer.inner_text()
        await no_axe_violations(page)
        await page.get_by_role("button", name="Next participant").click()
        # The same ticket again (the camera still shows it): already checked in today.
        await answer.locator("#answer-title", has_text="Already checked in today").wait_for(
            timeout=60_000
        )
        assert "Checked in at" in await answer.inner_text()
        await page.get_by_role("button", name="Next participant").click()
        await page.get_by_role("button", name="Stop the camera").click()

        # The hall's network fails: three check-ins from the kept list, queued.
        await context.set_offline(True)
        for n in ("A", "B", "C"):
            await page.get_by_label("Name, reference or phone").fill(f"Offline Mgeni {n}")
            await page.get_by_role("button", name="Search").click()
            await page.get_by_role("button", name=f"Check in: Offline Mgeni {n}").click()
            await answer.locator("#answer-title", has_text="sent when the network").wait_for()
            await page.get_by_role("button", name="Next participant").click()
        assert await page.locator("#queued").inner_text() == "3"
        assert not await page.locator("#net").is_hidden()
        checked = {p["reference"] for p in await stack.door_list(event["id"]) if p["checkins"]}
        assert checked == {r.json()["reference"]}  # nothing of the queue reached it yet
        await context.set_offline(False)

        async def all_arrived() -> bool:
            items = await stack.door_list(event["id"])
            return sum(1 for p in items if p["checkins"]) == 4

        await wait_until(all_arrived, timeout=60, interval=0.5, message="the queue was sent")
        await page.locator("#queued", has_text="0").wait_for(timeout=30_000)
    assert {o["reference"] for o in others} <= {
        p["reference"] for p in await stack.door_list(event["id"]) if p["checkins"]
    }


async def test_a_person_without_the_role_is_refused_the_page_and_the_api_call(stack) -> None:
    from services.console.app import token_issuer
    from services.console.domain import StaffSession
    from services.console.settings import ConsoleSettings

    event = await create_event(stack.registration.url, stack.admin)
    registrar = await stack.user(["registrar"])
    async with browser(width=390, height=844) as context:
        page = context.pages[0]
        await sign_in(page, stack.console, registrar)
        answer = await page.goto(f"{stack.console.url}/events/{event['id']}/registrations")
        assert answer is not None and answer.status == 403
        assert "organiser" in await page.content()
        await no_axe_violations(page)
        # The registrar's own page opens.
        answer = await page.goto(f"{stack.console.url}/events/{event['id']}/door")
        assert answer is not None and answer.status == 200
        await no_axe_violations(page)
        kept = "Object.keys(localStorage).filter(k => k.startsWith('mk.door.list.'))"
        await page.wait_for_function(f"{kept}.length === 1")
        # Signing out forgets the kept list on the device.
        await page.get_by_role("button", name="Sign out").click()  # the account's English
        await page.wait_for_url(f"{stack.console.url}/")
        assert await page.evaluate(kept) == []

    # The token the console signs for that registrar: the service refuses the
    # organisers' call and accepts the registrar's, and refuses a tampered token.
    with pytest.MonkeyPatch.context() as env:
        for name, value in stack.console.env.items():
            env.setenv(name, value)
        issuer = token_issuer(ConsoleSettings())
    now = datetime.now(UTC)
    session = StaffSession.start(
        f"staff:{registrar}", "Registrar", frozenset({"registrar"}), "en", now,
        absolute=timedelta(hours=1),
    )  # fmt: skip
    token = issuer.issue(session, now)
    async with httpx.AsyncClient(base_url=stack.registration.url, timeout=10) as client:
        auth = {"Authorization": f"Bearer {token}"}
        r = await client.get(f"/api/v1/events/{event['id']}/registrations", headers=auth)
        assert r.status_code == 403, r.text
        r = await client.get(f"/api/v1/events/{event['id']}/door-list", headers=auth)
        assert r.status_code == 200, r.text
        head, body, signature = token.split(".")
        # The first character is all significant bits; the last ones may be padding.
        tampered = ".".join([head, body, ("B" if signature[0] == "A" else "A") + signature[1:]])
        r = await client.get(
            f"/api/v1/events/{event['id']}/door-list",
            headers={"Authorization": f"Bearer {tampered}"},
        )
        assert r.status_code == 401, r.text
        # A write under the console's token is audited under the person's name.
        r = await client.post("/api/v1/checkins", json={"ticket": "MK2" + "A" * 128}, headers=auth)
        assert r.status_code == 422
        audit = await client.get(
            "/api/v1/admin/audit", params={"actor": f"jwt:staff:{registrar}"}, headers=stack.admin
        )
        assert [e["route"] for e in audit.json()] == ["/api/v1/checkins"], audit.text


async def test_mkutano_users_create_makes_an_account_that_signs_in(
    stack, admin_key, tmp_path, monkeypatch
) -> None:
    """The CLI creates the account through the console's API; the password is read from a
    file (never an argument); the person then signs in with the form."""
    import asyncio
    import re

    from deploy import cli

    secret = tmp_path / "password"
    secret.write_text(PASSWORD + "\n")
    username = f"cli{secrets.token_hex(3)}"
    monkeypatch.setenv("MKUTANO_ADMIN_KEY", admin_key)
    argv = ["users", "create", username, "--name", "Zawadi Cli", "--roles", "registrar",
            "--password-file", str(secret), "--console-url", stack.console.url]  # fmt: skip
    assert await asyncio.to_thread(cli.main, argv) == cli.EXIT_OK
    assert await asyncio.to_thread(cli.main, argv) == cli.EXIT_REFUSED  # it exists now
    async with httpx.AsyncClient(base_url=stack.console.url, timeout=10) as client:
        page = await client.get("/")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        form = {"csrf_token": token, "username": username, "password": PASSWORD, "next": "/events"}
        signed = await client.post("/sign-in", data=form)
        assert signed.status_code == 303 and signed.headers["location"] == "/events"
        cookie = signed.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie
        # Without the form's token (a cross-site post): refused, nothing signed in.
        client.cookies.clear()
        await client.get("/")
        refused = await client.post("/sign-in", data={**form, "csrf_token": "forged"})
        assert refused.status_code == 403 and "mk_console=" not in refused.headers.get(
            "set-cookie", ""
        )


async def test_an_organiser_edits_an_event_after_a_preview(stack) -> None:
    event = await create_event(stack.registration.url, stack.admin, capacity=100)
    organiser = await stack.user(["organiser"])
    async with browser(width=390, height=844) as context:
        page = context.pages[0]
        await sign_in(page, stack.console, organiser, f"/events/{event['id']}/edit?lang=en")
        await no_axe_violations(page)
        await page.get_by_label("Venue").fill("Julius Nyerere Convention Centre")
        await page.get_by_label("Capacity").fill("250")
        await page.get_by_role("button", name="Preview").click()
        await page.wait_for_load_state()
        changes = await page.locator("#changes").inner_text()
        assert "AICC" in changes and "Julius Nyerere Convention Centre" in changes
        assert "100" in changes and "250" in changes
        await no_axe_violations(page)
        # Nothing is saved before the confirmation.
        async with httpx.AsyncClient(base_url=stack.registration.url, timeout=10) as client:
            assert (await client.get(f"/api/v1/events/{event['id']}")).json()["capacity"] == 100
        await page.get_by_role("button", name="Save the changes").click()
        await page.wait_for_load_state()
        assert await page.locator("#capacity").inner_text() == "250"
        # Payments does not answer here: the dashboard still renders and says so.
        unavailable = await page.locator("#payments-unavailable").inner_text()
        assert "payment figures are unavailable" in unavailable
        await no_axe_violations(page)
    async with httpx.AsyncClient(base_url=stack.registration.url, timeout=10) as client:
        saved = (await client.get(f"/api/v1/events/{event['id']}")).json()
    assert saved["venue"] == "Julius Nyerere Convention Centre" and saved["capacity"] == 250


async def test_an_organiser_adds_a_paid_category_with_a_quota_and_a_question(stack) -> None:
    """Without JavaScript, at 390 px: the category and the question through the editor's
    preview and confirmation; a refusal of the API shown beside its field."""
    event = await create_event(stack.registration.url, stack.admin, capacity=100)
    event_id = event["id"]
    organiser = await stack.user(["organiser"])
    async with browser(width=390, height=844) as context:
        await context.route("**/*.js", lambda route: route.abort())  # no JavaScript needed
        page = context.pages[0]
        await sign_in(page, stack.console, organiser, f"/events/{event_id}/edit?lang=en")
        await page.get_by_role("link", name="Participant categories").click()
        await page.wait_for_load_state()
        await no_axe_violations(page)
        new = page.locator("fieldset").last  # the blank row adds a category
        await new.get_by_label("Code").fill("Private Sector")  # not a code: the API refuses
        await new.get_by_label("Name (Swahili)").fill("Sekta binafsi")
        await new.get_by_label("Name (English)").fill("Private sector")
        await new.get_by_label("Fee (TZS, 0 = free)").fill("150,000")
        await new.get_by_label("Reserved seats (empty = no limit)").fill("40")
        await new.get_by_label("Needs the organiser's approval").check()
        await page.get_by_role("button", name="Preview").click()
        await page.wait_for_load_state()
        changes = await page.locator("#changes").inner_text()
        assert "Private sector" in changes and "TZS 150,000" in changes and "40" in changes
        await no_axe_violations(page)
        async with httpx.AsyncClient(base_url=stack.registration.url, timeout=10) as client:
            unchanged = (await client.get(f"/api/v1/events/{event_id}")).json()
        assert [c["code"] for c in unchanged["categories"]] == [
            c["code"] for c in event["categories"]
        ]  # nothing saved before the confirmation
        await page.get_by_role("button", name="Save the changes").click()
        await page.wait_for_load_state()
        # Registration's 422 is shown beside the code of that row, and in the summary.
        row = len(event["categories"])
        code = page.locator(f"#cat-{row}-code")
        assert await code.get_attribute("aria-invalid") == "true"
        assert await page.locator(f"#cat-{row}-code-error").is_visible()
        assert await page.locator(".error-summary").is_visible()
        await no_axe_violations(page)
        await code.fill("private_sector")
        await page.get_by_role("button", name="Preview").click()
        await page.wait_for_load_state()
        await page.get_by_role("button", name="Save the changes").click()
        await page.wait_for_load_state()
        assert await page.locator("#saved").inner_text() == "The changes are saved."
        await no_axe_violations(page)

        await page.get_by_role("link", name="Custom questions").click()
        await page.wait_for_load_state()
        await no_axe_violations(page)
        q = page.locator("fieldset.stack").last
        await q.get_by_label("Question id").fill("workshop")
        await q.get_by_label("Question type").select_option("single_choice")
        await q.get_by_label("Question (Swahili)").fill("Warsha ipi?")
        await q.get_by_label("Question (English)").fill("Which workshop?")
        await q.get_by_label("Must be answered").check()
        await q.get_by_label("Private sector").check()
        await q.get_by_label("Choices, one a line").fill(
            "ai | Akili bandia | AI | 30\ncloud | Wingu | Cloud"
        )
        await page.get_by_role("button", name="Preview").click()
        await page.wait_for_load_state()
        assert "Which workshop?" in await page.locator("#changes").inner_text()
        await no_axe_violations(page)
        await page.get_by_role("button", name="Save the changes").click()
        await page.wait_for_load_state()
        await no_axe_violations(page)
        await page.goto(f"{stack.console.url}/events/{event_id}/edit/questions?lang=sw")
        assert await page.get_by_role("heading", level=1).inner_text() == "Maswali ya ziada"
        assert await page.locator("#q-0-label_sw").input_value() == "Warsha ipi?"
        await no_axe_violations(page)
    async with httpx.AsyncClient(base_url=stack.registration.url, timeout=10) as client:
        saved = (await client.get(f"/api/v1/events/{event_id}")).json()
    (private,) = [c for c in saved["categories"] if c["code"] == "private_sector"]
    assert private["fee_tzs"] == 150_000 and private["quota"] == 40
    assert private["requires_approval"] is True and private["requires_nomination"] is False
    assert len(saved["categories"]) == len(event["categories"]) + 1
    (question,) = saved["questions"]
    assert question["id"] == "workshop" and question["type"] == "single_choice"
    assert question["required"] is True and question["categories"] == ["private_sector"]
    assert [(c["code"], c["limit"]) for c in question["choices"]] == [("ai", 30), ("cloud", None)]


async def test_a_registrar_registers_a_walk_in_from_the_door_without_javascript(stack) -> None:
    event = await create_event(stack.registration.url, stack.admin, **door_event())
    registrar = await stack.user(["registrar"])
    async with browser(width=390, height=844) as context:
        page = context.pages[0]
        await page.context.route("**/static/door.js", lambda route: route.abort())  # no script
        await sign_in(page, stack.console, registrar, f"/events/{event['id']}/door?lang=en")
        await page.get_by_text("Walk-in registration").click()
        await page.get_by_label("Full name", exact=True).fill("Mwanaisha Walk In")
        await page.get_by_label("Email", exact=True).fill(
            f"walk.{secrets.token_hex(3)}@example.go.tz"
        )
        await page.get_by_label("Phone", exact=True).fill("0754 123 456")
        await page.get_by_label("Institution", exact=True).fill("Wizara ya Fedha")
        await page.get_by_label("Position", exact=True).fill("Afisa")
        await page.get_by_label("PDPA 2022").check()
        await no_axe_violations(page)
        await page.get_by_role("button", name="Register and check in").click()
        await page.wait_for_load_state()
        assert await page.locator("h1").inner_text() == "Checked in"
        assert "Mwanaisha Walk In" in await page.content()
        await no_axe_violations(page)
    (person,) = [
        p for p in await stack.door_list(event["id"]) if p["full_name"] == "Mwanaisha Walk In"
    ]
    assert person["checkins"]
    # Its history names the registrar who registered and checked them in.
    async with httpx.AsyncClient(base_url=stack.registration.url, timeout=10) as client:
        r = await client.get(f"/api/v1/registrations/{person['id']}/history", headers=stack.admin)
    assert [(e["action"], e["by"]) for e in r.json()["history"]] == [
        ("created", f"staff:{registrar}"),
        ("walk_in", f"staff:{registrar}"),
    ]


# -- issue 15's remainder: the announcement's audience, reminder rules, status history ------


async def nominate(stack: Stack, smtp: Any, event_id: str, institution: dict, count: int):
    """``count`` officers nominated by ``institution``'s contact person (signed in through
    the emailed link, on registration's institution page); their confirmations arrive."""
    from tests.e2e.test_institution_nominations import as_csv, officers, upload
    from tests.e2e.test_institution_sign_in import ask_for_link, link_in, sign_in_mail, use_link

    rows = officers(secrets.token_hex(3), count)
    async with httpx.AsyncClient(base_url=stack.registration.url, timeout=30) as client:
        await ask_for_link(client, institution["email"])
        (message,) = await smtp.wait_for(sign_in_mail(institution["email"]), timeout=60)
        assert (await use_link(client, link_in(message, "en"))).status_code == 303
        done = await upload(client, event_id, as_csv(rows), dry_run=False)
        assert done.status_code == 201, done.text
    return [r["email"] for r in rows]


async def test_an_announcement_to_one_institutions_confirmed_reaches_them_and_nobody_else(
    stack, smtp
) -> None:
    from tests.e2e.test_institution_sign_in import new_institution

    event = await create_event(stack.registration.url, stack.admin, title_en="Audience day")
    event_id = event["id"]
    chosen = await new_institution(stack.registration.url, stack.admin)
    other = await new_institution(stack.registration.url, stack.admin)
    nominees = await nominate(stack, smtp, event_id, chosen, 2)
    others = await nominate(stack, smtp, event_id, other, 1)
    self_registered = participant(language="en")["email"]
    await stack.register(event_id, email=self_registered, language="en")
    everyone = [*nominees, *others, self_registered]
    # notification knows the participants once it has their confirmations.
    await smtp.wait_for(
        lambda m: str(m["To"]).lower() in everyone and has_ticket(m), count=4, timeout=90
    )
    organiser = await stack.user(["organiser"])
    subject = f"Audience {secrets.token_hex(3)}"
    async with browser(width=390, height=844) as context:
        await context.route("**/*.js", lambda route: route.abort())  # no JavaScript needed
        page = context.pages[0]
        await sign_in(
            page, stack.console, organiser, f"/events/{event_id}/announcements/new?lang=en"
        )
        await no_axe_violations(page)
        statuses = page.locator("#statuses")
        assert await statuses.get_by_label("Confirmed").is_checked()
        assert not await statuses.get_by_label("On the waiting list").is_checked()
        await page.locator("#institution_codes").get_by_label(chosen["code"], exact=False).check()
        await page.get_by_label("Subject (Swahili)").fill(f"{subject} sw")
        await page.get_by_label("Subject (English)").fill(subject)
        await page.get_by_label("Message (Swahili)").fill("Wawakilishi wa wizara tu.")
        await page.get_by_label("Message (English)").fill("The ministry's delegates only.")
        await page.get_by_role("button", name="Preview").click()
        await page.wait_for_load_state()
        assert await page.locator("#audience-count").inner_text() == "This goes to 2 people."
        words = await page.locator("#audience-words").inner_text()
        assert "Participants who are Confirmed" in words
        assert f"from Ministry of Trials {chosen['code']}" in words
        await no_axe_violations(page)
        # In Swahili too.
        await page.goto(f"{stack.console.url}/events/{event_id}/announcements/new?lang=sw")
        await page.locator("#institution_codes").get_by_label(chosen["code"], exact=False).check()
        for label in ("Kichwa (Kiswahili)", "Kichwa (Kiingereza)"):
            await page.get_by_label(label).fill(subject)
        for label in ("Ujumbe (Kiswahili)", "Ujumbe (Kiingereza)"):
            await page.get_by_label(label).fill("Wawakilishi wa wizara tu.")
        await page.get_by_role("button", name="Hakiki").click()
        await page.wait_for_load_state()
        count = await page.locator("#audience-count").inner_text()
        assert count == "Tangazo hili litawafikia watu 2."
        await no_axe_violations(page)
        await page.get_by_role("button", name="Tuma").click()
        await page.wait_for_load_state()

        async def done() -> bool:  # no script here: the organiser reloads the page
            await page.reload()
            return await page.locator("#percent").inner_text() == "100 %"

        await wait_until(done, timeout=90, interval=1, message="the announcement at 100 %")
        await no_axe_violations(page)
    got = await smtp.wait_for(lambda m: subject in str(m["Subject"]), count=2, timeout=60)
    assert sorted(str(m["To"]).lower() for m in got) == sorted(nominees)
    # The announcement is done (100 %): nobody else got it.
    sent = sorted(str(m["To"]).lower() for m in smtp.messages() if subject in str(m["Subject"]))
    assert sent == sorted(nominees)


async def test_reminder_rules_changed_in_the_editor_are_notifications_reminders(stack) -> None:
    event = await create_event(stack.registration.url, stack.admin, title_en="Reminder day")
    event_id = event["id"]
    rules_url = f"/api/v1/events/{event_id}/reminder-rules"

    async def rules() -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=stack.notification.url, timeout=10) as client:
            r = await client.get(rules_url, headers=stack.admin)
        assert r.status_code == 200, r.text
        return r.json()

    async def known() -> bool:
        return bool((await rules())["reminders"])

    await wait_until(known, timeout=90, interval=0.5, message="notification knows the event")
    default = await rules()
    assert default["source"] == "default"
    organiser = await stack.user(["organiser"])
    async with browser(width=390, height=844) as context:
        await context.route("**/*.js", lambda route: route.abort())  # no JavaScript needed
        page = context.pages[0]
        await sign_in(page, stack.console, organiser, f"/events/{event_id}/edit?lang=en")
        # The editor's section lists the default reminders and their times.
        assert "The default reminders" in await page.locator("#reminder-rules").inner_text()
        assert await page.locator("#scheduled tbody tr").count() == len(default["reminders"])
        await no_axe_violations(page)
        await page.get_by_role("link", name="Change the reminders").click()
        await page.wait_for_load_state()
        await no_axe_violations(page)
        # 400 days: notification refuses it; its 422 stands beside the field.
        first = page.locator("fieldset.stack").first
        await first.get_by_label("Time before the start").fill("400")
        await first.get_by_label("Unit").select_option("days")
        await page.get_by_role("button", name="Preview").click()
        await page.wait_for_load_state()
        await page.get_by_role("button", name="Save the changes").click()
        await page.wait_for_load_state()
        assert await page.locator("#rem-0-amount").get_attribute("aria-invalid") == "true"
        assert await page.locator("#rem-0-amount-error").is_visible()
        await no_axe_violations(page)
        # 3 days and 2 hours, every other row removed; previewed, then saved.
        rows = page.locator("fieldset.stack")
        n = await rows.count()
        await rows.nth(0).get_by_label("Time before the start").fill("3")
        await rows.nth(0).get_by_label("Unit").select_option("days")
        for i in range(1, n - 1):
            await rows.nth(i).get_by_label("Remove").check()
        await rows.nth(n - 1).get_by_label("Time before the start").fill("2")
        await rows.nth(n - 1).get_by_label("Unit").select_option("hours")
        await page.get_by_role("button", name="Preview").click()
        await page.wait_for_load_state()
        changes = await page.locator("#changes").inner_text()
        assert "3 days before the start; 2 hours before the start" in changes
        assert (await rules())["source"] == "default"  # nothing saved before the confirmation
        await page.get_by_role("button", name="Save the changes").click()
        await page.wait_for_load_state()
        assert await page.locator("#saved").inner_text() == "The changes are saved."
        scheduled = await page.locator("#scheduled").inner_text()
        assert "3 days before the start" in scheduled and "2 hours before the start" in scheduled
        await no_axe_violations(page)
        saved = await rules()
        assert saved["source"] == "event" and saved["offsets_s"] == [3 * 86400, 2 * 3600]
        pending = sorted(r["offset_s"] for r in saved["reminders"] if r["status"] == "pending")
        assert pending == [2 * 3600, 3 * 86400]
        # Back to the defaults, after a preview.
        await page.get_by_role("button", name="Back to the default reminders").click()
        await page.wait_for_load_state()
        assert "the service's default reminders" in await page.locator("#changes").inner_text()
        await page.get_by_role("button", name="Save the changes").click()
        await page.wait_for_load_state()
        assert "The default reminders" in await page.locator("#reminder-rules").inner_text()
        await no_axe_violations(page)
    back = await rules()
    assert back["source"] == "default" and back["offsets_s"] == default["offsets_s"]


async def test_the_person_page_shows_the_status_history_with_the_staff_names(stack) -> None:
    event = await create_event(
        stack.registration.url, stack.admin, requires_approval=True, **door_event()
    )
    event_id = event["id"]
    person = participant(full_name="Rehema History Mrisho", language="en")
    async with httpx.AsyncClient(base_url=stack.registration.url, timeout=10) as client:
        r = await client.post(f"/api/v1/events/{event_id}/registrations", json=person)
    assert r.status_code == 201 and r.json()["status"] == "pending_approval", r.text
    reference, registration_id = r.json()["reference"], r.json()["id"]
    organiser = await stack.user(["organiser"])
    registrar = await stack.user(["registrar"])
    person_page = f"/events/{event_id}/registrations/{reference}?lang=en"
    async with browser(width=390, height=844) as context:
        await context.route("**/*.js", lambda route: route.abort())  # no JavaScript needed
        page = context.pages[0]
        await sign_in(page, stack.console, organiser, person_page)
        await page.get_by_role("button", name="Approve").click()
        await page.wait_for_load_state()
        assert await page.locator("#status").inner_text() == "Confirmed"
        # The registrar checks them in at the door (search, then the person's button).
        await context.clear_cookies()
        door = f"/events/{event_id}/door?lang=en"
        await sign_in(page, stack.console, registrar, door)
        await page.get_by_label("Name, reference or phone").fill("Rehema History")
        await page.get_by_role("button", name="Search").click()
        await page.wait_for_load_state()
        await page.get_by_role("button", name="Check in: Rehema History Mrisho").click()
        await page.wait_for_load_state()
        assert await page.locator("h1").inner_text() == "Checked in"
        # The organiser's page of the person: the history, in order, naming the staff.
        await context.clear_cookies()
        await sign_in(page, stack.console, organiser, person_page)
        entries = page.locator("#history li")
        assert [await entries.nth(i).get_attribute("data-action") for i in range(3)] == [
            "created",
            "approved",
            "checked_in",
        ]
        assert await entries.count() == 3
        created, approved, checked = [await entries.nth(i).inner_text() for i in range(3)]
        assert "Registered" in created and "the participant" in created
        assert "Awaiting approval → Confirmed" in approved and f"Staff {organiser}" in approved
        assert "Checked in" in checked and f"Staff {registrar}" in checked
        await no_axe_violations(page)
        # In Swahili too.
        await page.goto(f"{stack.console.url}/events/{event_id}/registrations/{reference}?lang=sw")
        assert "Iliidhinishwa" in await page.locator("#history").inner_text()
        await no_axe_violations(page)
    async with httpx.AsyncClient(base_url=stack.registration.url, timeout=10) as client:
        path = f"/api/v1/registrations/{registration_id}/history"
        history = await client.get(path, headers=stack.admin)
        assert history.status_code == 200, history.text
        assert [(e["action"], e["from"], e["to"]) for e in history.json()["history"]] == [
            ("created", None, "pending_approval"),
            ("approved", "pending_approval", "confirmed"),
            ("checked_in", "confirmed", "confirmed"),
        ]
        assert [e["by"] for e in history.json()["history"]] == [
            "participant",
            f"staff:{organiser}",
            f"staff:{registrar}",
        ]
        assert (await client.get(path)).status_code == 401
        unknown = await client.get("/api/v1/registrations/nope/history", headers=stack.admin)
        assert unknown.status_code == 404


async def test_the_door_page_reloads_while_the_console_is_unreachable(stack) -> None:
    """The door page's service worker: with the console's process stopped (no network
    to it at all) and the phone offline, a reload still shows the door page from the
    worker's copy, with the kept list; a check-in is queued and reaches registration once
    the console is back. Signing out forgets the copy."""
    import asyncio

    event = await create_event(stack.registration.url, stack.admin, **door_event())
    guest = await stack.register(event["id"], full_name="Zuhura Reload Omari")
    registrar = await stack.user(["registrar"])
    async with browser(width=390, height=844) as context:
        page = context.pages[0]
        await sign_in(page, stack.console, registrar, f"/events/{event['id']}/door?lang=en")
        await page.locator("#cached", has_text="1").wait_for(timeout=30_000)
        await page.evaluate("navigator.serviceWorker.ready.then(() => true)")
        await page.reload()  # now controlled by the worker, which keeps this copy
        await page.wait_for_function("navigator.serviceWorker.controller !== null")
        await page.wait_for_function(
            "caches.open('mk-door-v1').then(c => c.keys()).then(k => k.length >= 2)"
        )
        await stack.console.stop()
        try:
            await context.set_offline(True)
            await page.reload()
            assert await page.locator("h1").inner_text() == "Check-in at the door"
            await page.locator("#cached", has_text="1").wait_for(timeout=30_000)
            await no_axe_violations(page)
            await page.get_by_label("Name, reference or phone").fill("Zuhura Reload")
            await page.get_by_role("button", name="Search").click()
            await page.get_by_role("button", name="Check in: Zuhura Reload Omari").click()
            answer = page.locator("#answer")
            await answer.locator("#answer-title", has_text="sent when the network").wait_for()
            assert await page.locator("#queued").inner_text() == "1"
        finally:
            await asyncio.to_thread(stack.console.process.start)
        await context.set_offline(False)

        async def arrived() -> bool:
            items = await stack.door_list(event["id"])
            return any(p["reference"] == guest["reference"] and p["checkins"] for p in items)

        await wait_until(arrived, timeout=60, interval=0.5, message="the queued check-in")
        await page.goto(f"{stack.console.url}/events/{event['id']}/door?lang=en")
        await page.get_by_role("button", name="Sign out").click()
        await page.wait_for_url(f"{stack.console.url}/")
        await page.wait_for_function("caches.keys().then(k => k.length === 0)")


async def test_an_account_in_english_sees_english_from_sign_in_on(stack) -> None:
    english = await stack.user(["organiser"])  # created with language "en"
    async with browser(width=390, height=844) as context:
        page = context.pages[0]
        await sign_in(page, stack.console, english)  # the sign-in page is in Swahili
        assert page.url.endswith("/events")
        assert await page.locator("html").get_attribute("lang") == "en"
        assert await page.get_by_role("heading", level=1).inner_text() == "Events"
        # Chosen on the sign-in page, the other language is kept instead.
        await context.clear_cookies()
        await page.goto(f"{stack.console.url}/?lang=sw")
        await page.get_by_label("Jina la mtumiaji").fill(english)
        await page.get_by_label("Nenosiri").fill(PASSWORD)
        await page.get_by_role("button", name="Ingia").click()
        await page.wait_for_load_state()
        assert await page.locator("html").get_attribute("lang") == "sw"
        await no_axe_violations(page)


async def test_an_organiser_creates_an_event_as_a_draft_and_publishes_it(stack) -> None:
    """A new event through the console: the details previewed, then created as a draft
    the public cannot see; the editor's state, previewed, publishes it; a second event
    with the same id is refused beside the field. No JavaScript, 390 px, axe-clean."""
    event_id = f"semina-{secrets.token_hex(3)}"
    organiser = await stack.user(["organiser"])
    public = httpx.AsyncClient(base_url=stack.registration.url, timeout=10)
    async with public, browser(width=390, height=844) as context:
        await context.route("**/*.js", lambda route: route.abort())
        page = context.pages[0]
        await sign_in(page, stack.console, organiser, "/events?lang=en")
        await page.get_by_role("link", name="New event").click()
        await page.wait_for_load_state()
        await no_axe_violations(page)

        async def fill_in(the_id: str) -> None:
            await page.get_by_label("Event id (in its address)").fill(the_id)
            await page.get_by_label("Short event code (e.g. SEM27)").fill(the_id[-6:].upper())
            await page.get_by_label("Event title (Swahili)").fill("Semina ya TEHAMA")
            await page.get_by_label("Event title (English)").fill("ICT seminar")
            await page.get_by_label("Venue", exact=True).fill("e-GA, Mtumba")
            await page.get_by_label("City", exact=True).fill("Dodoma")
            await page.get_by_label("Starts (East Africa Time)").fill("2027-06-14T09:00")
            await page.get_by_label("Ends", exact=True).fill("2027-06-15T17:00")
            await page.get_by_label("Capacity", exact=True).fill("80")
            await page.get_by_role("button", name="Preview").click()
            await page.wait_for_load_state()

        await fill_in(event_id)
        preview = await page.locator("#preview").inner_text()
        assert "ICT seminar" in preview and "Draft (not shown to the public)" in preview
        assert (await public.get(f"/api/v1/events/{event_id}")).status_code == 404  # not yet
        await no_axe_violations(page)
        await page.get_by_role("button", name="Create the event").click()
        await page.wait_for_load_state()
        assert page.url.endswith(f"/events/{event_id}/edit")
        assert "created as a draft" in await page.locator("#saved").inner_text()
        await no_axe_violations(page)
        # A draft: the public neither finds it nor sees it listed; the console lists it.
        assert (await public.get(f"/api/v1/events/{event_id}")).status_code == 404
        listed = await public.get("/api/v1/events")
        assert event_id not in {e["id"] for e in listed.json()}
        assert (await public.get("/api/v1/events", params={"state": "draft"})).status_code == 401
        # Published through the editor: the state's change previewed, then saved.
        await page.get_by_label("Event state").select_option("published")
        await page.get_by_role("button", name="Preview").click()
        await page.wait_for_load_state()
        changes = await page.locator("#changes").inner_text()
        assert "Draft (not shown to the public)" in changes and "Published" in changes
        await page.get_by_role("button", name="Save the changes").click()
        await page.wait_for_load_state()
        shown = await public.get(f"/api/v1/events/{event_id}")
        assert shown.status_code == 200 and shown.json()["state"] == "published"
        # The same id again: refused beside the field, nothing created.
        await page.goto(f"{stack.console.url}/events/new?lang=en")
        await fill_in(event_id)
        await page.get_by_role("button", name="Create the event").click()
        await page.wait_for_load_state()
        summary = await page.get_by_role("alert").inner_text()
        assert "Event id (in its address)" in summary, summary
        await no_axe_violations(page)
