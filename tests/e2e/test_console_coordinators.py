"""The coordinators' pages of the console end to end (issue 17): Debian's Chromium against
the real resolutions, notification and console services on this session's Kafka, MongoDB
and SMTP capture (the services trust the console's JWKS, as in the dev stack).

A coordinator imports a CSV (the dry run's table names the bad row; the fixed file
imports), a stale edit shows the current version and changes nothing, a focal person
reports through the emailed link with a PDF, the coordinator approves it and sees it in
the report's preview in both languages and downloads the evidence through the console;
an organiser without the role is refused; axe finds nothing on any page, at 390 px too.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.timeutil import EAT, utcnow
from tests.e2e.test_console_flows import PASSWORD, browser, no_axe_violations
from tests.e2e.test_notification_flows import template_of, to
from tests.e2e.test_resolutions_focal_persons import PDF, link_in
from tests.helpers import unique_id
from tests.stack import ServiceHandle, release_after_last_user

pytestmark = pytest.mark.e2e


# This module's services are tests/e2e/conftest.py's `console_stack` (shared with
# test_console_flows.py), with a notification of its own: its messages go to captures of
# its own, never mixed with the session notification's copies.
@pytest.fixture(scope="module")
def smtp(console_stack):
    return console_stack.smtp


@pytest.fixture(scope="module")
def sms(console_stack):
    return console_stack.sms


@dataclass
class Stack:
    resolutions: ServiceHandle
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

    async def api(self, method: str, path: str, **kw: Any) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.resolutions.url, timeout=20) as client:
            return await client.request(method, path, **kw)


@pytest.fixture(scope="module")
async def stack(console_stack, request) -> AsyncIterator[Stack]:
    """Resolutions, notification and the console (tests/e2e/conftest.py's
    ``console_stack``), the services trusting the console's JWKS."""
    yield Stack(
        console_stack.resolutions,
        console_stack.notification,
        console_stack.console,
        console_stack.admin,
    )
    await release_after_last_user(request, "console_stack", console_stack)


async def sign_in(page: Any, console: ServiceHandle, username: str) -> None:
    await page.goto(f"{console.url}/?next=/coordinators")
    await page.get_by_label("Jina la mtumiaji").fill(username)
    await page.get_by_label("Nenosiri").fill(PASSWORD)
    await page.get_by_role("button", name="Ingia").click()
    await page.wait_for_url(re.compile(r"/coordinators$"))
    await page.goto(f"{console.url}/coordinators?lang=en")  # kept for the next pages


async def new_conference(stack: Stack) -> str:
    today = utcnow().astimezone(EAT).date()
    conference_id = unique_id("conf")
    r = await stack.api(
        "POST",
        "/api/v1/conferences",
        headers=stack.admin,
        json={
            "id": conference_id,
            "name_sw": "Mkutano wa Serikali Mtandao",
            "name_en": "e-Government Conference",
            "starts_on": (today - timedelta(days=300)).isoformat(),
            "ends_on": (today - timedelta(days=298)).isoformat(),
            "venue": "AICC, Arusha",
            "reporting": {"approval_required": True},
        },
    )
    assert r.status_code == 201, r.text
    return conference_id


HEADER = "number,title_sw,title_en,lead_institution,focal_person_name,focal_person_institution,focal_person_email,focal_person_language\n"  # noqa: E501


async def test_a_coordinator_imports_edits_approves_and_previews_the_report(
    stack, smtp, tmp_path: Path
) -> None:
    conference_id = await new_conference(stack)
    coordinator = await stack.user(["coordinator"])
    email = f"{unique_id('focal')}@example.go.tz"
    bad = tmp_path / "maazimio.csv"
    bad.write_text(
        HEADER
        + f"1,Azimio la kwanza,First resolution,Wizara ya Afya,Neema Focal,Wizara ya Afya,{email},en\n"  # noqa: E501
        + "x,Azimio la pili,Second resolution,e-GA,,,,\n"
    )
    good = tmp_path / "maazimio-fixed.csv"
    good.write_text(
        HEADER
        + f"1,Azimio la kwanza,First resolution,Wizara ya Afya,Neema Focal,Wizara ya Afya,{email},en\n"  # noqa: E501
        + "2,Azimio la pili,Second resolution,e-GA,,,,\n"
    )
    base = stack.console.url
    async with browser() as context:
        page = context.pages[0]
        await sign_in(page, stack.console, coordinator)
        await no_axe_violations(page)
        await page.get_by_role("link", name="e-Government Conference").first.click()
        await page.wait_for_url(f"{base}/coordinators/conferences/{conference_id}")
        await no_axe_violations(page)

        # The dry run: a table naming the bad row; nothing is written.
        await page.goto(f"{base}/coordinators/conferences/{conference_id}/import")
        await no_axe_violations(page)
        await page.set_input_files("#file", str(bad))
        await page.get_by_role("button", name="Check the file").click()
        table = page.locator("#problems")
        await table.wait_for()
        rows = await table.locator("tbody tr").all_inner_texts()
        assert any(r.startswith("3") and "number" in r for r in rows), rows
        assert await page.get_by_role("button", name=re.compile("Import the")).count() == 0
        await no_axe_violations(page)
        listed = await stack.api("GET", f"/api/v1/conferences/{conference_id}/resolutions")
        assert listed.json() == []

        # The fixed file: a clean dry run, then the import.
        await page.set_input_files("#file", str(good))
        await page.get_by_role("button", name="Check the file").click()
        await page.locator("#dry-run").wait_for()
        assert "2 rows" in await page.locator("#dry-run").inner_text()
        await no_axe_violations(page)
        await page.get_by_role("button", name="Import the 2 resolutions").click()
        await page.wait_for_url(f"{base}/coordinators/conferences/{conference_id}")
        assert "2 resolutions imported" in await page.locator("#notice").inner_text()
        assert await page.locator("#resolutions tbody tr").count() == 2
        await no_axe_violations(page)

        # A stale edit: someone records progress after the page was read.
        await page.get_by_role("link", name="First resolution").click()
        await page.locator("#edit").wait_for()
        await no_axe_violations(page)
        rid = page.url.rsplit("/", 1)[1]
        read = (await stack.api("GET", f"/api/v1/resolutions/{rid}")).json()
        r = await stack.api(
            "POST",
            f"/api/v1/resolutions/{rid}/updates",
            headers={**stack.admin, "If-Match": f'"{read["version"]}"'},
            json={"status": "in_progress", "progress": 10, "note": "Kick-off"},
        )
        assert r.status_code == 201, r.text
        await page.fill("#title_en", "First resolution, renamed")
        answer_status: list[int] = []
        page.on("response", lambda resp: answer_status.append(resp.status))
        await page.get_by_role("button", name="Save the changes").click()
        await page.locator("#stale").wait_for()
        assert 409 in answer_status
        assert f"version {read['version'] + 1}" in await page.locator("#stale").inner_text()
        assert await page.locator("#current-version").inner_text() == str(read["version"] + 1)
        assert await page.input_value("#title_en") == "First resolution"
        now = (await stack.api("GET", f"/api/v1/resolutions/{rid}")).json()
        assert now["title_en"] == "First resolution" and now["version"] == read["version"] + 1
        await no_axe_violations(page)
        # The same edit on the current version is saved.
        await page.fill("#title_en", "First resolution, renamed")
        await page.get_by_role("button", name="Save the changes").click()
        await page.locator("#notice").wait_for()
        assert await page.input_value("#title_en") == "First resolution, renamed"

        # The focal person reports through the emailed link, with a PDF.
        message, *_ = await smtp.wait_for(
            lambda m: to(email)(m) and template_of(m) == "resolution_updated", timeout=90
        )
        link = link_in(message)
        focal = await context.new_page()
        await focal.goto(link)
        evidence = tmp_path / "ripoti.pdf"
        evidence.write_bytes(PDF)
        await focal.fill("#progress", "60")
        await focal.fill("#note", "Mfumo umeunganishwa na hospitali 12")
        await focal.set_input_files("#files", str(evidence))
        await focal.click("button[type=submit]")
        await focal.locator("#notice").wait_for()
        await focal.close()

        # The coordinator approves it; it counts in the report.
        await page.goto(f"{base}/coordinators/conferences/{conference_id}/pending")
        pending = page.locator("#pending-updates > li")
        assert await pending.count() == 1
        assert "Mfumo umeunganishwa" in await pending.inner_text()
        await no_axe_violations(page)
        await page.get_by_role("button", name="Approve").click()
        await page.locator("#notice").wait_for()
        assert "approved" in await page.locator("#notice").inner_text()
        assert await page.locator("#pending-updates").count() == 0
        await no_axe_violations(page)

        await page.goto(f"{base}/coordinators/conferences/{conference_id}/report?report=en")
        report = page.locator("#report")
        assert "Mfumo umeunganishwa na hospitali 12" in await report.inner_text()
        assert "In progress" in await report.inner_text()
        await no_axe_violations(page)
        await page.get_by_role("link", name="Ripoti kwa Kiswahili").click()
        await page.wait_for_url(re.compile(r"report=sw"))
        assert "Inaendelea" in await page.locator("#report").inner_text()
        assert await page.locator("#report").get_attribute("lang") == "sw"
        await no_axe_violations(page)

        # The evidence, downloaded through the console: no token reaches the browser.
        await page.goto(f"{base}/coordinators/resolutions/{rid}")
        link_el = page.get_by_role("link", name=re.compile("ripoti.pdf"))
        href = await link_el.get_attribute("href")
        assert href and href.startswith(f"/coordinators/resolutions/{rid}/evidence/")
        async with page.expect_download() as download_info:
            await link_el.click()
        download = await download_info.value
        saved = tmp_path / "downloaded.pdf"
        await download.save_as(saved)
        assert saved.read_bytes() == PDF  # noqa: ASYNC240 (a test's own small file)
        html = await page.content()
        assert "eyJ" not in html and "Bearer" not in html
        await no_axe_violations(page)
        # The service itself refuses the file to an anonymous reader.
        r = await stack.api("GET", href.replace("/coordinators", "/api/v1"))
        assert r.status_code == 401

        # The coordinator records progress with a file of their own; a fake PDF is
        # refused, named, and nothing is written.
        fake = tmp_path / "minutes.pdf"
        fake.write_bytes(b"not a PDF at all\n")
        before = (await stack.api("GET", f"/api/v1/resolutions/{rid}")).json()["version"]
        await page.fill("#progress", "70")
        await page.set_input_files("#files", str(fake))
        await page.get_by_role("button", name="Record progress").click()
        await page.locator("#error-summary").wait_for()
        assert "minutes.pdf" in await page.locator("#error-summary").inner_text()
        assert (await stack.api("GET", f"/api/v1/resolutions/{rid}")).json()["version"] == before
        await no_axe_violations(page)
        minutes = tmp_path / "kumbukumbu.pdf"
        minutes.write_bytes(PDF)
        await page.fill("#progress", "70")
        await page.fill("#note", "Kikao cha tathmini")
        await page.set_input_files("#files", str(minutes))
        await page.get_by_role("button", name="Record progress").click()
        await page.locator("#notice").wait_for()
        first_entry = page.locator("#timeline > li").first
        assert "kumbukumbu.pdf" in await first_entry.inner_text()
        assert "70%" in await first_entry.inner_text()

    # At 390 px: every coordinator page fits and is axe-clean.
    async with browser(width=390, height=844) as context:
        page = context.pages[0]
        await sign_in(page, stack.console, coordinator)
        for path in (
            "/coordinators",
            f"/coordinators/conferences/{conference_id}",
            f"/coordinators/conferences/{conference_id}/import",
            f"/coordinators/conferences/{conference_id}/pending",
            f"/coordinators/conferences/{conference_id}/resolutions/new",
            f"/coordinators/conferences/{conference_id}/report?lang=sw",
            f"/coordinators/resolutions/{rid}",
        ):
            answer = await page.goto(base + path)
            assert answer is not None and answer.status == 200, path
            await no_axe_violations(page)
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, (path, width)


async def test_an_organiser_is_refused_and_an_auditor_only_reads(stack) -> None:
    conference_id = await new_conference(stack)
    organiser = await stack.user(["organiser"])
    auditor = await stack.user(["auditor"])
    base = stack.console.url
    async with browser(width=390, height=844) as context:
        page = context.pages[0]
        await page.goto(f"{base}/?next=/coordinators")
        await page.get_by_label("Jina la mtumiaji").fill(organiser)
        await page.get_by_label("Nenosiri").fill(PASSWORD)
        await page.get_by_role("button", name="Ingia").click()
        await page.wait_for_load_state()
        for path in ("/coordinators", f"/coordinators/conferences/{conference_id}/import"):
            answer = await page.goto(base + path)
            assert answer is not None and answer.status == 403, path
            assert "coordinator" in await page.content()
            await no_axe_violations(page)
        assert await page.get_by_role("link", name="Resolutions").count() == 0

    async with browser() as context:
        page = context.pages[0]
        await sign_in(page, stack.console, auditor)
        answer = await page.goto(f"{base}/coordinators/conferences/{conference_id}")
        assert answer is not None and answer.status == 200
        assert await page.get_by_role("link", name="Import resolutions from CSV").count() == 0
        await no_axe_violations(page)
        answer = await page.goto(f"{base}/coordinators/conferences/{conference_id}/import")
        assert answer is not None and answer.status == 403


async def test_a_coordinator_creates_a_conference_imports_progress_removes_an_action_and_erases(
    stack, tmp_path: Path
) -> None:
    """The rest of the coordinators' work in the browser: a new conference (the API's 422
    beside the field first), progress from CSV (dry run, then import), an action removed
    with the version check, and a focal person's PDPA erasure (confirmed first)."""
    coordinator = await stack.user(["coordinator"])
    base = stack.console.url
    conference_id = unique_id("conf")
    today = utcnow().astimezone(EAT).date()
    email = f"{unique_id('focal')}@example.go.tz"
    async with browser(width=390, height=844) as context:
        page = context.pages[0]
        await sign_in(page, stack.console, coordinator)
        await page.get_by_role("link", name="New conference").click()
        await page.wait_for_url(f"{base}/coordinators/conferences/new")
        await no_axe_violations(page)
        await page.fill("#id", conference_id)
        await page.fill("#name_sw", "Semina ya TEHAMA")
        await page.fill("#name_en", "ICT seminar")
        await page.fill("#venue", "AICC, Arusha")
        await page.fill("#starts_on", (today - timedelta(days=30)).isoformat())
        await page.fill("#ends_on", (today - timedelta(days=40)).isoformat())  # before it starts
        await page.get_by_role("button", name="Save the conference").click()
        summary = page.locator("#error-summary")
        await summary.wait_for()
        assert "Ends on" in await summary.inner_text()
        await no_axe_violations(page)
        await page.fill("#ends_on", (today - timedelta(days=28)).isoformat())
        await page.get_by_role("button", name="Save the conference").click()
        await page.wait_for_url(f"{base}/coordinators/conferences/{conference_id}")
        assert "The conference is saved" in await page.locator("#notice").inner_text()
        made = (await stack.api("GET", f"/api/v1/conferences/{conference_id}")).json()
        assert made["name_en"] == "ICT seminar" and made["venue"] == "AICC, Arusha"

        # A resolution with two actions and a focal person (through the API).
        r = await stack.api(
            "POST",
            f"/api/v1/conferences/{conference_id}/resolutions",
            headers=stack.admin,
            json={
                "number": 1,
                "title_sw": "Azimio",
                "title_en": "Resolution",
                "lead_institution": "e-GA",
                "focal_persons": [
                    {"full_name": "Rehema Focal", "institution": "e-GA", "email": email}
                ],
            },
        )
        assert r.status_code == 201, r.text
        rid = r.json()["id"]
        for n, title in enumerate(("Design", "Build"), start=1):
            a = await stack.api(
                "POST",
                f"/api/v1/resolutions/{rid}/actions",
                headers={**stack.admin, "If-Match": f'"{n}"'},
                json={"title": title, "institution": "e-GA"},
            )
            assert a.status_code == 201, a.text

        # Remove an action: the page again, one action fewer, the version moved on.
        await page.goto(f"{base}/coordinators/resolutions/{rid}")
        await page.get_by_text("Change the action: Design").click()
        await page.get_by_role("button", name="Remove this action").first.click()
        await page.locator("#notice").wait_for()
        assert "The action is removed" in await page.locator("#notice").inner_text()
        now = (await stack.api("GET", f"/api/v1/resolutions/{rid}", headers=stack.admin)).json()
        assert [a["title"] for a in now["actions"]] == ["Build"]
        await no_axe_violations(page)

        # Progress from CSV on the remaining action's resolution (it has an action, so
        # only a status or note may come; a note is enough): dry run, then the import.
        progress = tmp_path / "maendeleo.csv"
        progress.write_text("number,note\n1,Kazi imeanza\n")
        await page.goto(f"{base}/coordinators/conferences/{conference_id}/import")
        await page.get_by_label("Progress on existing resolutions").check()
        await page.set_input_files("#file", str(progress))
        await page.get_by_role("button", name="Check the file").click()
        await page.locator("#dry-run").wait_for()
        assert "1 rows" in await page.locator("#dry-run").inner_text()
        await no_axe_violations(page)
        await page.get_by_role("button", name="Import the 1 resolutions").click()
        await page.wait_for_url(f"{base}/coordinators/conferences/{conference_id}")
        assert "Progress recorded on 1 resolutions" in await page.locator("#notice").inner_text()
        timeline = (await stack.api("GET", f"/api/v1/resolutions/{rid}/timeline")).json()
        assert timeline[-1]["note"] == "Kazi imeanza"

        # The focal person's erasure: refused until confirmed, then done.
        await page.goto(f"{base}/coordinators?lang=en")
        await page.get_by_role("link", name="Erase a focal person's data").click()
        await no_axe_violations(page)
        await page.fill("#email", email)
        await page.get_by_role("button", name="Erase").click()
        assert "Confirm first" in await page.locator("#error-summary").inner_text()
        await page.get_by_label("I understand that this cannot be undone").check()
        await page.get_by_role("button", name="Erase").click()
        await page.locator("#notice").wait_for()
        assert "erased from 1 resolutions" in await page.locator("#notice").inner_text()
        await no_axe_violations(page)
        kept = (await stack.api("GET", f"/api/v1/resolutions/{rid}", headers=stack.admin)).json()
        assert kept["focal_persons"] == []
