"""Certificates of attendance, their verification and the evaluation (issue 16), against
the real services: registration and notification as processes, Kafka, MongoDB, the SMTP
and SMS captures, and Debian's Chromium for the verification page.

A three-day event: one participant comes on the first and third day, another on the
second, a third never. With the evaluation required, the first gets the certificate by
email only after answering it; the PDF shows the two days and their hours, and its QR
code opens a verification answer that says valid — then revoked.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, date, datetime, time, timedelta
from email.message import EmailMessage

import httpx
import pytest
from pypdf import PdfReader

from shared.timeutil import EAT
from tests.axe import axe_violations
from tests.browser import chromium_page
from tests.helpers import create_event, participant
from tests.mailcheck import decode_qr

pytestmark = pytest.mark.e2e

QUESTIONS = [
    {
        "id": "overall",
        "type": "single_choice",
        "label_sw": "Kwa ujumla tukio lilikuwaje?",
        "label_en": "How was the event overall?",
        "required": True,
        "choices": [
            {"code": "good", "label_sw": "Zuri", "label_en": "Good"},
            {"code": "fair", "label_sw": "Wastani", "label_en": "Fair"},
            {"code": "poor", "label_sw": "Baya", "label_en": "Poor"},
        ],
    },
    {"id": "again", "type": "yes_no", "label_sw": "Utahudhuria tena?", "label_en": "Again?"},
    {"id": "comment", "type": "long_text", "label_sw": "Maoni", "label_en": "Comments"},
]


def _template(message: EmailMessage) -> str:
    return str(message.get("X-Mkutano-Template", ""))


def _to(message: EmailMessage, email: str) -> bool:
    return str(message.get("To", "")).lower() == email.lower()


def _plain(message: EmailMessage) -> str:
    return message.get_body(("plain",)).get_content()  # type: ignore[union-attr]


def _url(text: str, ending: str) -> str:
    found = re.search(r"(https?://\S+" + re.escape(ending) + r")\?lang=\w\w", text)
    assert found, text
    return found.group(1)


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


async def test_certificates_follow_attendance_evaluation_and_revocation(platform) -> None:
    base = platform.registration.url
    admin = platform.admin_headers
    today = datetime.now(UTC).astimezone(EAT).date()
    days = [(today - timedelta(days=2 - i)).isoformat() for i in range(3)]

    def days_ago(n: int) -> date:
        return today - timedelta(days=n)

    event = await create_event(
        base,
        admin,
        starts_at=datetime.combine(days_ago(2), time(8), EAT).isoformat(),
        ends_at=datetime.combine(today, time(23, 59), EAT).isoformat(),
        registration_opens_at=(datetime.now(UTC) - timedelta(days=3)).isoformat(),
    )
    event_id = event["id"]
    async with httpx.AsyncClient(base_url=base, timeout=30) as api:
        r = await api.put(
            f"/api/v1/events/{event_id}/certificate-settings",
            json={"cpd_hours": {days[0]: 6, days[1]: 6, days[2]: 4}},
            headers=admin,
        )
        assert r.status_code == 200, r.text
        bad = await api.put(
            f"/api/v1/events/{event_id}/certificate-settings",
            json={"cpd_hours": {days[0]: 30}},
            headers=admin,
        )
        assert bad.status_code == 422 and bad.json()["error"]["fields"][0]["field"].startswith(
            "cpd_hours"
        )
        r = await api.put(
            f"/api/v1/events/{event_id}/evaluation",
            json={"questions": QUESTIONS, "required_for_certificate": True},
            headers=admin,
        )
        assert r.status_code == 200, r.text

        people = {
            "asha": participant(language="en", professional_registration_number="ICTC-00417"),
            "baraka": participant(full_name="Baraka Mushi"),
            "chausiku": participant(full_name="Chausiku Ali"),
        }
        tickets = {}
        for name, body in people.items():
            r = await api.post(
                f"/api/v1/events/{event_id}/registrations",
                json={k: v for k, v in body.items() if k != "created"},
            )
            assert r.status_code == 201, r.text
            mine = await api.get(
                f"/api/v1/registrations/{r.json()['reference']}",
                headers={"X-Manage-Token": r.json()["manage_token"]},
            )
            tickets[name] = mine.json()["ticket"]
            people[name]["created"] = r.json()
        for name, day in (("asha", days[0]), ("asha", days[2]), ("baraka", days[1])):
            r = await api.post(
                "/api/v1/checkins", json={"ticket": tickets[name], "day": day}, headers=admin
            )
            assert r.status_code == 201 and r.json()["day"] == day, r.text
        future = (today + timedelta(days=1)).isoformat()
        r = await api.post(
            "/api/v1/checkins", json={"ticket": tickets["baraka"], "day": future}, headers=admin
        )
        assert (r.status_code, r.json()["error"]["code"]) == (422, "future_day")

        # The event ends; the attendees are asked, and nobody's certificate goes out yet.
        ended = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
        r = await api.patch(f"/api/v1/events/{event_id}", json={"ends_at": ended}, headers=admin)
        assert r.status_code == 200, r.text
        r = await api.post(f"/api/v1/events/{event_id}/evaluation/invitations", headers=admin)
        assert r.json() == {"invited": 2}
        r = await api.post(f"/api/v1/events/{event_id}/certificates/issue", headers=admin)
        assert r.json() == {
            "issued": 0,
            "already_issued": 0,
            "awaiting_evaluation": 2,
            "not_attended": 1,
        }
        asha = people["asha"]["email"]
        (invitation,) = await platform.smtp.wait_for(
            lambda m: _to(m, asha) and _template(m) == "evaluation_invitation", timeout=60
        )
        assert "released once you answer" in _plain(invitation)
        await platform.sms.wait_for(
            lambda s: s["to"] == "+255" + people["baraka"]["phone"][1:] and "tathmini" in s["text"],
            timeout=60,
        )
        assert not [
            m for m in platform.smtp.messages() if _to(m, asha) and _template(m) == "certificate"
        ]

        # Asha answers (once) through her own link; her certificate follows by email.
        form_url = _url(_plain(invitation), "/evaluation")
        async with httpx.AsyncClient(timeout=30) as browser:
            page = await browser.get(form_url, params={"lang": "en"})
            assert page.status_code == 200 and "How was the event overall?" in page.text
            csrf = _csrf(page.text)
            missing = await browser.post(form_url, params={"lang": "en"}, data={"csrf": csrf})
            assert missing.status_code == 422 and "This question needs an answer." in missing.text
            sent = await browser.post(
                form_url,
                params={"lang": "en"},
                data={"csrf": csrf, "overall": "good", "again": "yes", "comment": "Vizuri"},
            )
            assert sent.status_code == 303, sent.text
            done = await browser.get(httpx.URL(form_url).join(sent.headers["location"]))
            assert "Your answers have been received" in done.text
            again = await browser.post(
                form_url, params={"lang": "en"}, data={"csrf": csrf, "overall": "poor"}
            )
            assert "answered this evaluation already" in again.text
        (mail,) = await platform.smtp.wait_for(
            lambda m: _to(m, asha) and _template(m) == "certificate", timeout=60
        )
        text = _plain(mail)
        assert f"Days attended: {days[0]}, {days[2]}" in text and "CPD hours: 10" in text
        async with httpx.AsyncClient(timeout=30) as browser:
            pdf = await browser.get(_url(text, "/certificate.pdf"), params={"lang": "en"})
        assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
        reader = PdfReader(io.BytesIO(pdf.content))
        shown = reader.pages[0].extract_text()
        assert "CERTIFICATE OF ATTENDANCE" in shown and people["asha"]["full_name"] in shown
        for day in (days[0], days[2]):
            assert f"({day})" in shown
        assert f"({days[1]})" not in shown
        assert re.search(r"Total CPD hours / Jumla ya saa za CPD 10\n", shown), shown
        # The QR code, as a scanner reads it, opens the verification of this certificate.
        scanned = [decode_qr(image.data) for image in reader.pages[0].images[-1:]]
        (verify_url,) = scanned
        assert verify_url.startswith(f"{base}/verify/MKC-"), verify_url
        serial = verify_url.rsplit("/", 1)[1]
        assert serial in shown
        page = await api.get(verify_url.removeprefix(base), params={"lang": "en"})
        assert page.status_code == 200 and "This certificate is valid." in page.text
        answer = (await api.get(f"/api/v1/certificates/{serial}")).json()
        assert answer == {
            "serial": serial,
            "status": "valid",
            "full_name": people["asha"]["full_name"],
            "event": {"title_sw": event["title_sw"], "title_en": event["title_en"]},
            "days": [days[0], days[2]],
        }

        # Only Asha has one: Baraka has not answered, Chausiku never came.
        listed = (await api.get(f"/api/v1/events/{event_id}/certificates", headers=admin)).json()
        assert [c["serial"] for c in listed] == [serial]
        cpd = await api.get(f"/api/v1/events/{event_id}/certificates/cpd.csv", headers=admin)
        rows = list(csv.reader(io.StringIO(cpd.text.lstrip("\ufeff"))))
        assert rows == [
            ["full_name", "professional_registration_number", "cpd_hours"],
            [people["asha"]["full_name"], "ICTC-00417", "10"],
        ]

        # The organiser's results count the answer.
        results = await api.get(f"/api/v1/events/{event_id}/evaluation/results", headers=admin)
        summary = results.json()
        assert (summary["invited"], summary["answered"], summary["response_rate"]) == (2, 1, 0.5)
        overall = next(q for q in summary["questions"] if q["id"] == "overall")
        assert [d["count"] for d in overall["distribution"]] == [1, 0, 0]
        chart = await api.get(overall["chart_url"], headers=admin)
        assert (
            chart.headers["content-type"].startswith("image/svg+xml") and "1 (100%)" in chart.text
        )
        export = await api.get(f"/api/v1/events/{event_id}/evaluation/responses.csv", headers=admin)
        assert list(csv.reader(io.StringIO(export.text.lstrip("\ufeff")))) == [
            ["overall", "again", "comment"],
            ["good", "yes", "Vizuri"],
        ]
        assert (await api.get(f"/api/v1/events/{event_id}/evaluation/results")).status_code == 401

        # A name correction: a new serial; the old one answers revoked. Then a revocation.
        r = await api.post(
            f"/api/v1/certificates/{serial}/reissue",
            json={"full_name": "Asha Juma Mwinyi-Said"},
            headers=admin,
        )
        assert r.status_code == 201, r.text
        new_serial = r.json()["serial"]
        assert new_serial != serial and r.json()["full_name"] == "Asha Juma Mwinyi-Said"
        old = (await api.get(f"/api/v1/certificates/{serial}")).json()
        assert old["status"] == "revoked"
        r = await api.post(f"/api/v1/certificates/{new_serial}/revoke", headers=admin)
        assert r.status_code == 200 and r.json()["status"] == "revoked"
        revoked = await api.get(f"/api/v1/certificates/{new_serial}")
        assert revoked.json()["status"] == "revoked"
        page = await api.get(f"/verify/{new_serial}", params={"lang": "sw"})
        assert "Cheti hiki kimebatilishwa" in page.text
        unknown = await api.get("/api/v1/certificates/MKC-22222-22222-22222-22222")
        assert unknown.status_code == 404
        # PDPA: erasure removes the name from the verification answer.
        created = people["asha"]["created"]
        r = await api.post(
            f"/api/v1/registrations/{created['reference']}/erase",
            headers={"X-Manage-Token": created["manage_token"]},
        )
        assert r.status_code == 200, r.text
        for gone in (serial, new_serial):
            erased = (await api.get(f"/api/v1/certificates/{gone}")).json()
            assert (erased["status"], erased["full_name"]) == ("revoked", None)
        page = await api.get(f"/verify/{serial}", params={"lang": "en"})
        assert "personal data erased" in page.text and "Asha" not in page.text
        audit = (await api.get("/api/v1/admin/audit", headers=admin)).json()
        routes = {(e["route"], e["params"].get("serial")) for e in audit}
        assert ("/api/v1/certificates/{serial}/revoke", new_serial) in routes
        assert ("/api/v1/certificates/{serial}/reissue", serial) in routes


async def test_verification_page_passes_axe_on_a_phone(platform, tmp_path) -> None:
    base = platform.registration.url
    admin = platform.admin_headers
    now = datetime.now(UTC)
    event = await create_event(
        base,
        admin,
        starts_at=(now - timedelta(hours=1)).isoformat(),
        ends_at=(now + timedelta(hours=2)).isoformat(),
    )
    async with httpx.AsyncClient(base_url=base, timeout=30) as api:
        r = await api.post(f"/api/v1/events/{event['id']}/registrations", json=participant())
        ref, token = r.json()["reference"], r.json()["manage_token"]
        mine = await api.get(f"/api/v1/registrations/{ref}", headers={"X-Manage-Token": token})
        r = await api.post(
            "/api/v1/checkins", json={"ticket": mine.json()["ticket"]}, headers=admin
        )
        assert r.status_code == 201, r.text
        r = await api.put(
            f"/api/v1/events/{event['id']}/evaluation", json={"questions": QUESTIONS}, headers=admin
        )
        assert r.status_code == 200, r.text
        r = await api.post(f"/api/v1/events/{event['id']}/certificates/issue", headers=admin)
        assert r.json()["issued"] == 1, r.text
        (cert,) = (
            await api.get(f"/api/v1/events/{event['id']}/certificates", headers=admin)
        ).json()
    async with chromium_page(width=390, height=844) as page:
        for lang, verdict in (
            ("sw", "Cheti hiki ni halali."),
            ("en", "This certificate is valid."),
        ):
            await page.goto(f"{base}/verify/{cert['serial']}?lang={lang}")
            assert verdict in await page.locator("#verdict").inner_text()
            assert await axe_violations(page) == [], f"verify ({lang})"
        await page.goto(f"{base}/verify/MKC-NOT-A-REAL-ONE?lang=en")
        assert "No certificate has this number" in await page.locator("#verdict").inner_text()
        assert await axe_violations(page) == [], "verify unknown"
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, width
        await page.screenshot(path=str(tmp_path / "verify-390.png"), full_page=True)
        # The participant's page links the certificate and the evaluation form.
        await page.goto(f"{base}/my?lang=en")
        await page.fill("#reference", ref)
        await page.fill("#token", token)
        await page.get_by_role("button", name="Open my registration").click()
        await page.get_by_role("heading", name="Certificate and evaluation").wait_for()
        assert await page.locator("#certificate-link").count() == 1
        assert await axe_violations(page) == [], "my page with certificate"
        await page.locator("#evaluation-link").click()
        await page.get_by_role("heading", name="Event evaluation").wait_for()
        assert await axe_violations(page) == [], "evaluation form"
        await page.get_by_role("button", name="Send my answers").click()
        await page.wait_for_load_state()
        assert await page.evaluate("document.activeElement.id") == "error-summary"
        assert await axe_violations(page) == [], "evaluation form with errors"
        await page.get_by_label("Good").check()
        await page.get_by_role("button", name="Send my answers").click()
        await page.locator("#evaluation-done").wait_for()
        assert await axe_violations(page) == [], "evaluation answered"
        await page.get_by_role("link", name="Kiswahili").click()
        await page.get_by_role("heading", name="Tathmini ya tukio").wait_for()
        assert await axe_violations(page) == [], "evaluation (sw)"
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, width


async def test_when_an_event_ends_the_worker_asks_for_the_evaluation_and_issues(
    platform, start_service
) -> None:
    """No organiser action: a registration instance of its own (its own databases, the
    after-event worker every half second) invites the attendee and issues the
    certificate once the event has ended; the platform's notification emails both."""
    from tests.stack import unique_suffix

    service = await start_service(
        "registration", db_suffix=unique_suffix(), REGISTRATION_AFTER_EVENT_INTERVAL_S="0.5"
    )
    base, admin = service.url, platform.admin_headers
    today = datetime.now(UTC).astimezone(EAT).date()
    yesterday = (today - timedelta(days=1)).isoformat()
    event = await create_event(
        base,
        admin,
        starts_at=datetime.combine(today - timedelta(days=1), time(8), EAT).isoformat(),
        ends_at=datetime.combine(today, time(23, 59), EAT).isoformat(),
        registration_opens_at=(datetime.now(UTC) - timedelta(days=2)).isoformat(),
    )
    body = participant(language="en")
    async with httpx.AsyncClient(base_url=base, timeout=30) as api:
        r = await api.put(
            f"/api/v1/events/{event['id']}/certificate-settings",
            json={"cpd_hours": {yesterday: 7.5}},
            headers=admin,
        )
        assert r.status_code == 200, r.text
        r = await api.put(
            f"/api/v1/events/{event['id']}/evaluation", json={"questions": QUESTIONS}, headers=admin
        )
        assert r.status_code == 200, r.text
        r = await api.post(f"/api/v1/events/{event['id']}/registrations", json=body)
        mine = await api.get(
            f"/api/v1/registrations/{r.json()['reference']}",
            headers={"X-Manage-Token": r.json()["manage_token"]},
        )
        r = await api.post(
            "/api/v1/checkins",
            json={"ticket": mine.json()["ticket"], "day": yesterday},
            headers=admin,
        )
        assert r.status_code == 201, r.text
        ended = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
        r = await api.patch(f"/api/v1/events/{event['id']}", json={"ends_at": ended}, headers=admin)
        assert r.status_code == 200, r.text
    email = body["email"]
    (invitation,) = await platform.smtp.wait_for(
        lambda m: _to(m, email) and _template(m) == "evaluation_invitation", timeout=60
    )
    (certificate,) = await platform.smtp.wait_for(
        lambda m: _to(m, email) and _template(m) == "certificate", timeout=60
    )
    text = _plain(certificate)
    assert f"Days attended: {yesterday}" in text and "CPD hours: 7.5" in text
    assert "released once you answer" not in _plain(invitation)  # not required here
