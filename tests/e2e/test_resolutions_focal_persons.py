"""Issue 17 end to end: focal persons report through their emailed link, evidence is
kept and guarded, and what is late is chased. Through the real resolutions and
notification services, the SMTP capture's .eml files and Debian's Chromium (axe-core,
390 px phone)."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest

from shared.timeutil import EAT, utcnow
from tests import mailcheck
from tests.axe import axe_violations
from tests.browser import chromium_page
from tests.e2e.test_notification_flows import template_of, to
from tests.helpers import unique_id
from tests.stack import unique_suffix, wait_until

pytestmark = pytest.mark.e2e

# A real (tiny) PDF: its content, not its name, makes it one.
PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
)
LINK = re.compile(r"(http://127\.0\.0\.1:\d+/report/[A-Za-z0-9_-]{59})")


def focal(language: str = "en") -> dict[str, str]:
    return {
        "full_name": "Neema Focal Person",
        "institution": "Wizara ya Afya",
        "email": f"{unique_id('focal')}@example.go.tz",
        "language": language,
    }


def mail(address: str, template: str):
    return lambda m: to(address)(m) and template_of(m) == template


def link_in(message: EmailMessage) -> str:
    """The report link of an email: the same in its text and its HTML part."""
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    found = LINK.search(text)
    assert found, text
    assert f'href="{found.group(1)}"' in html, html
    return found.group(1)


async def conference(client: httpx.AsyncClient, headers: dict, **reporting) -> str:
    today = utcnow().astimezone(EAT).date()
    conference_id = unique_id("conf")
    r = await client.post(
        "/api/v1/conferences",
        headers=headers,
        json={
            "id": conference_id,
            "name_sw": "Mkutano wa Serikali Mtandao",
            "name_en": "e-Government Conference",
            "starts_on": (today - timedelta(days=300)).isoformat(),
            "ends_on": (today - timedelta(days=298)).isoformat(),
            "venue": "AICC, Arusha",
            "reporting": reporting,
        },
    )
    assert r.status_code == 201, r.text
    return conference_id


async def resolution(
    client: httpx.AsyncClient, headers: dict, conference_id: str, number: int, person, **extra
) -> dict:
    r = await client.post(
        f"/api/v1/conferences/{conference_id}/resolutions",
        headers=headers,
        json={
            "number": number,
            "title_sw": f"Azimio la majaribio {number}",
            "title_en": f"Test resolution {number}",
            "lead_institution": "Wizara ya Afya",
            "focal_persons": [person],
            **extra,
        },
    )
    assert r.status_code == 201, r.text
    return r.json()


async def test_a_focal_person_reports_with_a_pdf_through_the_emailed_link(
    platform, tmp_path: Path
) -> None:
    admin = platform.admin_headers
    person = focal("en")
    async with httpx.AsyncClient(base_url=platform.resolutions.url, timeout=20) as client:
        conference_id = await conference(client, admin, approval_required=True)
        first = await resolution(client, admin, conference_id, 1, person)
        second = await resolution(client, admin, conference_id, 2, person)
        for number, res in ((1, first), (2, second)):
            r = await client.post(
                f"/api/v1/resolutions/{res['id']}/updates",
                headers={**admin, "If-Match": f'"{res["version"]}"'},
                json={"status": "in_progress", "progress": 10, "note": f"Kick-off {number}"},
            )
            assert r.status_code == 201, r.text

        # The focal person receives the link in the email about each resolution.
        found = await platform.smtp.wait_for(
            mail(person["email"], "resolution_updated"), count=2, timeout=60
        )
        for message in found:
            mailcheck.check_email(message)
        links = {
            ("Test resolution 1" in m.get_body(("plain",)).get_content()): link_in(m) for m in found
        }
        link, other_link = links[True], links[False]
        assert link != other_link

        # Each link opens its own resolution only; a tampered or unknown one opens nothing.
        page = await client.get(link.removeprefix(platform.resolutions.url))
        assert page.status_code == 200 and "Test resolution 1" in page.text
        assert "Test resolution 2" not in page.text
        other = await client.get(other_link.removeprefix(platform.resolutions.url))
        assert "Test resolution 2" in other.text and "Test resolution 1" not in other.text
        path = link.removeprefix(platform.resolutions.url)
        tampered = path[:-3] + ("AAA" if not path.endswith("AAA") else "BBB")
        unknown = "/report/" + "x" * 59
        answers = [await client.get(p) for p in (tampered, unknown)]
        assert [a.status_code for a in answers] == [404, 404]
        assert answers[0].text == answers[1].text

        async with chromium_page(width=390, height=844) as browser:
            await browser.goto(link)
            await browser.get_by_role("heading", name=re.compile("Test resolution 1")).wait_for()
            assert await axe_violations(browser) == [], "report page"
            width = await browser.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, width

            # A file that only claims to be a PDF is refused, named; nothing is written.
            fake = tmp_path / "minutes.pdf"
            fake.write_bytes(b"just some text, not a PDF at all\n")
            await browser.fill("#progress", "60")
            await browser.set_input_files("#files", str(fake))
            await browser.click("button[type=submit]")
            await browser.locator("#error-summary").wait_for()
            assert "minutes.pdf" in await browser.locator("#error-summary").inner_text()
            assert await axe_violations(browser) == [], "report page with errors"

            evidence = tmp_path / "ripoti-ya-utekelezaji.pdf"
            evidence.write_bytes(PDF)
            await browser.fill("#progress", "60")
            await browser.fill("#note", "Mfumo umeunganishwa na hospitali 12")
            await browser.set_input_files("#files", str(evidence))
            await browser.click("button[type=submit]")
            await browser.locator("#notice").wait_for()
            assert "approval" in await browser.locator("#notice").inner_text()
            assert await browser.locator("#pending-updates").count() == 1
            assert await axe_violations(browser) == [], "report page after sending"

        # Pending: visible to coordinators, not in the report.
        report = (
            await client.get(f"/api/v1/conferences/{conference_id}/report?format=json")
        ).json()
        assert report["resolutions"][0]["progress"] == 10
        r = await client.get(f"/api/v1/conferences/{conference_id}/pending-updates")
        assert r.status_code == 401
        r = await client.get(f"/api/v1/conferences/{conference_id}/pending-updates", headers=admin)
        (pending,) = r.json()
        assert pending["progress"] == 60 and pending["files"][0]["name"] == evidence.name
        assert pending["resolution_id"] == first["id"]

        # A stale version is 409 with the current one; the right one approves.
        approve = f"/api/v1/resolutions/{first['id']}/pending-updates/{pending['id']}/approve"
        stale = await client.post(approve, headers={**admin, "If-Match": '"1"'})
        assert stale.status_code == 409, stale.text
        current = stale.json()["error"]
        assert pending["resolution_version"] == 2
        r = await client.post(
            approve, headers={**admin, "If-Match": f'"{pending["resolution_version"]}"'}
        )
        assert r.status_code == 200, (r.text, current)

        report = (
            await client.get(f"/api/v1/conferences/{conference_id}/report?format=json")
        ).json()
        row = report["resolutions"][0]
        assert row["progress"] == 60
        assert row["latest_update_note"] == "Mfumo umeunganishwa na hospitali 12"
        assert [p["progress"] for p in row["history"]][-1] == 60
        html = (await client.get(f"/api/v1/conferences/{conference_id}/report?lang=en")).text
        assert "Mfumo umeunganishwa na hospitali 12" in html and "Scorecard" in html

        # The timeline references the file; the file is refused to an anonymous reader.
        timeline = (await client.get(f"/api/v1/resolutions/{first['id']}/timeline")).json()
        entry = timeline[-1]
        assert entry["approved_by"] and entry["submitted_by"]
        (file,) = entry["files"]
        assert file["media_type"] == "application/pdf" and file["size"] == len(PDF)
        url = f"/api/v1/resolutions/{first['id']}/evidence/{file['sha256']}"
        assert (await client.get(url)).status_code == 401
        served = await client.get(url, headers=admin)
        assert served.status_code == 200 and served.content == PDF
        assert served.headers["content-type"] == "application/pdf"
        # … to the focal person through their link, never through another resolution's.
        mine = await client.get(f"{path}/evidence/{file['sha256']}")
        assert mine.status_code == 200 and mine.content == PDF
        other_path = other_link.removeprefix(platform.resolutions.url)
        assert (await client.get(f"{other_path}/evidence/{file['sha256']}")).status_code == 404


async def test_an_overdue_resolution_is_chased_once_per_rule_and_in_the_digest(
    platform, start_service
) -> None:
    coordinator = f"{unique_id('coord')}@example.go.tz"
    service = await start_service(
        "resolutions",
        db_suffix=unique_suffix(),
        RESOLUTIONS_CHASE_INTERVAL_S="0.5",
        RESOLUTIONS_DIGEST_RECIPIENTS=coordinator,
    )
    admin = platform.admin_headers
    today = utcnow().astimezone(EAT).date()
    person = focal("sw")
    async with httpx.AsyncClient(base_url=service.url, timeout=20) as client:
        conference_id = await conference(client, admin)
        late = await resolution(
            client,
            admin,
            conference_id,
            1,
            person,
            target_date=(today - timedelta(days=10)).isoformat(),
            status="in_progress",
        )

        def overdue_for(address: str):
            def match(m: EmailMessage) -> bool:
                return mail(address, "resolution_reminder")(m) and "limepita muda" in str(
                    m["Subject"]
                )

            return match

        (reminder,) = await platform.smtp.wait_for(overdue_for(person["email"]), timeout=60)
        mailcheck.check_email(reminder)
        assert "siku 10" in reminder.get_body(("plain",)).get_content()
        assert link_in(reminder).startswith(service.url)
        (digest,) = await platform.smtp.wait_for(mail(coordinator, "resolution_digest"), timeout=60)
        text = digest.get_body(("plain",)).get_content()
        overdue_part = text.split("Yamepita muda")[1].split("Bila taarifa")[0]
        assert "Azimio la majaribio 1" in overdue_part and "siku zimepita" in overdue_part

        # Later rounds send nothing again: once a second resolution's reminder arrives,
        # rounds after the first one's have run, and the first still has one of each.
        second = focal("sw")
        await resolution(
            client,
            admin,
            conference_id,
            2,
            second,
            target_date=(today - timedelta(days=3)).isoformat(),
        )
        await platform.smtp.wait_for(overdue_for(second["email"]), timeout=60)
        await service.restart()  # a fresh process: its first round finds the keys taken
        third = focal("sw")
        await resolution(
            client,
            admin,
            conference_id,
            3,
            third,
            target_date=(today - timedelta(days=2)).isoformat(),
        )
        await platform.smtp.wait_for(overdue_for(third["email"]), timeout=60)
        mine = [m for m in platform.smtp.messages() if to(person["email"])(m)]
        assert len([m for m in mine if overdue_for(person["email"])(m)]) == 1
        rules = sorted(str(m["Subject"]) for m in mine)
        assert len(rules) == len(set(rules)), rules  # one email per rule
        assert len([m for m in platform.smtp.messages() if to(coordinator)(m)]) == 1
        assert late["id"]


async def test_the_page_refuses_bad_input_and_writes_nothing(platform) -> None:
    admin = platform.admin_headers
    person = focal("sw")
    async with httpx.AsyncClient(base_url=platform.resolutions.url, timeout=20) as client:
        conference_id = await conference(client, admin)  # no approval: updates count at once
        res = await resolution(client, admin, conference_id, 1, person)
        r = await client.post(
            f"/api/v1/resolutions/{res['id']}/updates",
            headers={**admin, "If-Match": '"1"'},
            json={"status": "in_progress", "note": "Kick-off"},
        )
        assert r.status_code == 201, r.text
        (message,) = await platform.smtp.wait_for(
            mail(person["email"], "resolution_updated"), timeout=60
        )
        path = link_in(message).removeprefix(platform.resolutions.url)
        page = await client.get(path)
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)

        async def send(files=None, **fields) -> httpx.Response:
            data = {"csrf": csrf, "lang": "en", "version": "2", **fields}
            return await client.post(path, data=data, files=files or {"files": ("", b"")})

        outside = await send(progress="150")
        assert outside.status_code == 422 and 'id="progress-error"' in outside.text
        stale = await send(progress="30", version="1")
        assert stale.status_code == 409 and "now version 2" in stale.text
        refused = await send(progress="30", files={"files": ("notes.pdf", b"not a pdf")})
        assert refused.status_code == 415 and "notes.pdf" in refused.text
        forged = await send(progress="30", csrf="forged")
        assert forged.status_code == 403
        current = (await client.get(f"/api/v1/resolutions/{res['id']}")).json()
        assert (current["version"], current["progress"]) == (2, 25)  # nothing written

        done = await send(progress="30", note="Sites surveyed", files={"files": ("r.pdf", PDF)})
        assert done.status_code == 303, done.text
        after = await client.get(done.headers["location"])
        assert "Thank you. Your update has been recorded." in after.text
        row = (await client.get(f"/api/v1/conferences/{conference_id}/report?format=json")).json()[
            "resolutions"
        ][0]
        assert (row["progress"], row["latest_update_note"]) == (30, "Sites surveyed")

        # A coordinator's update may carry files too, under the same checks.
        url = f"/api/v1/resolutions/{res['id']}/updates/with-files"
        bad = await client.post(
            url,
            headers={**admin, "If-Match": '"3"'},
            data={"progress": "40"},
            files={"files": ("plan.xlsx", b"not a spreadsheet")},
        )
        assert bad.status_code == 415 and "plan.xlsx" in bad.json()["error"]["message"]
        assert (await client.post(url, data={"progress": "40"})).status_code == 401
        ok = await client.post(
            url,
            headers={**admin, "If-Match": '"3"'},
            data={"progress": "40", "note": "Plan"},
            files={"files": ("plan.pdf", PDF)},
        )
        assert ok.status_code == 201, ok.text
        assert ok.json()["latest_update"]["files"][0]["name"] == "plan.pdf"


async def test_an_erased_focal_person_is_gone_from_resolutions_and_notification(platform) -> None:
    admin = platform.admin_headers
    person = {**focal("en"), "full_name": "Zawadi Mfuatiliaji"}
    other = focal("sw")
    async with httpx.AsyncClient(base_url=platform.resolutions.url, timeout=20) as client:
        conference_id = await conference(client, admin)
        res = await resolution(client, admin, conference_id, 1, person)
        r = await client.post(
            f"/api/v1/resolutions/{res['id']}/updates",
            headers={**admin, "If-Match": '"1"'},
            json={"status": "in_progress", "note": "Kick-off"},
        )
        assert r.status_code == 201, r.text
        (message,) = await platform.smtp.wait_for(
            mail(person["email"], "resolution_updated"), timeout=60
        )
        link = link_in(message).removeprefix(platform.resolutions.url)
        # Replaced by another focal person: the versions' history still names her.
        edited = await client.patch(
            f"/api/v1/resolutions/{res['id']}",
            headers={**admin, "If-Match": '"2"'},
            json={"focal_persons": [other]},
        )
        assert edited.status_code == 200, edited.text
        needles = [person["email"], person["full_name"]]
        assert await _holding(platform, res["id"], needles) == {"resolutions", "notification"}

        bad = await client.post("/api/v1/focal-persons/erase", headers=admin, json={"email": "x"})
        assert bad.status_code == 422 and bad.json()["error"]["fields"][0]["field"] == "email"
        anonymous = await client.post("/api/v1/focal-persons/erase", json=person)
        assert anonymous.status_code == 401
        erased = await client.post(
            "/api/v1/focal-persons/erase", headers=admin, json={"email": person["email"].upper()}
        )
        assert erased.status_code == 200, erased.text
        assert erased.json() == {"resolutions": [res["id"]]}

        async def clean() -> bool:
            return await _holding(platform, res["id"], needles) == set()

        await wait_until(clean, timeout=60, message="no copy of the focal person left")
        # Her link opens nothing now; the other focal person is kept; asking again erases
        # nothing more.
        assert (await client.get(link)).status_code == 404
        kept = (await client.get(f"/api/v1/resolutions/{res['id']}", headers=admin)).json()
        assert [p["email"] for p in kept["focal_persons"]] == [other["email"]]
        again = await client.post(
            "/api/v1/focal-persons/erase", headers=admin, json={"email": person["email"]}
        )
        assert again.json() == {"resolutions": []}


async def _holding(platform, resolution_id: str, needles: list[str]) -> set[str]:
    """Which of the two services still hold a needle: the resolution's document at
    resolutions (its focal persons, pending updates, versions and outbox are all in it),
    and notification's delivery-log entries about this resolution or to that address.
    Filtered reads only: a scan of the session's databases (GridFS evidence included)
    takes minutes."""
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient = AsyncMongoClient(
        platform.mongo.url, socketTimeoutMS=30_000, serverSelectionTimeoutMS=10_000
    )
    found: set[str] = set()

    def holds(doc: dict) -> bool:
        text = json.dumps(doc, default=str).lower()
        return any(n.lower() in text for n in needles)

    try:
        db = client[platform.resolutions.env["RESOLUTIONS_MONGO_DB"]]
        doc = await db["resolutions"].find_one({"_id": resolution_id})
        if doc is not None and holds(doc):
            found.add("resolutions")
        log = client[platform.notification.env["NOTIFICATION_MONGO_DB"]]["notifications"]
        for query in ({"resolution_id": resolution_id}, {"recipient": needles[0]}):
            if any([holds(d) async for d in log.find(query)]):
                found.add("notification")
    finally:
        await client.close()
    return found
