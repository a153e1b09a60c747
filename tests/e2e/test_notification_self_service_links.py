"""Issue 12: every email to a participant links to their self-service page. Through the
real registration and notification services: the link in the confirmation (the SMTP
capture's .eml) opens that registration's page, a tampered one gets the 404 of an
unknown one, and a later announcement carries the link too."""

from __future__ import annotations

import re
from email.message import EmailMessage

import httpx
import pytest

from tests import mailcheck
from tests.e2e.test_notification_flows import api, template_of, to
from tests.helpers import create_event, participant

pytestmark = pytest.mark.e2e

SENTENCE = {"en": "Manage your registration: ", "sw": "Simamia usajili wako: "}


def mail(address: str, template: str):
    return lambda m: to(address)(m) and template_of(m) == template


def link_in(message: EmailMessage, language: str) -> str:
    """The self-service URL of an email, the same in its text and its HTML part."""
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    found = re.search(re.escape(SENTENCE[language]) + r"(\S+)", text)
    assert found, text
    url = found.group(1)
    assert f'href="{url}"' in html.replace("&amp;", "&"), html
    return url


async def test_notification_emails_carry_the_link_that_opens_the_registration(platform) -> None:
    base, admin = platform.registration.url, platform.admin_headers
    event = await create_event(base, admin, capacity=5)
    person = participant(language="en", cadre="ict_officer")
    r = await api(base, "POST", f"/api/v1/events/{event['id']}/registrations", json=person)
    assert r.status_code == 201, r.text
    registered = r.json()
    other = participant(language="sw", cadre="ict_officer")
    r = await api(base, "POST", f"/api/v1/events/{event['id']}/registrations", json=other)
    assert r.status_code == 201, r.text
    other_reference = r.json()["reference"]

    (message,) = await platform.smtp.wait_for(mail(person["email"], "confirmation"), timeout=30)
    mailcheck.check_email(message)
    url = link_in(message, "en")
    assert re.fullmatch(re.escape(base) + r"/my/[A-Za-z0-9_-]{48}\?lang=en", url), url
    link = url.split("?")[0].rsplit("/", 1)[1]

    async with httpx.AsyncClient(timeout=10) as client:
        page = await client.get(url)
        assert page.status_code == 200, page.text
        assert registered["reference"] in page.text and other_reference not in page.text
        tampered = link[:-1] + ("A" if link[-1] != "A" else "B")
        answers = [await client.get(f"{base}/my/{value}?lang=en") for value in (tampered, "x" * 48)]
    assert answers[0].status_code == 404 and "opens no registration" in answers[0].text
    assert {(a.status_code, a.text) for a in answers} == {(404, answers[0].text)}

    # The other participant's email has their own link, in Swahili.
    (theirs,) = await platform.smtp.wait_for(mail(other["email"], "confirmation"), timeout=30)
    their_url = link_in(theirs, "sw")
    assert their_url.endswith("?lang=sw") and link not in their_url

    # An announcement (from notification's own copy of the registration) carries it too.
    spec = {
        "event_id": event["id"],
        "subject_sw": "Mabadiliko ya ratiba",
        "subject_en": "Programme change",
        "body_sw": "Ufunguzi utaanza saa 3 asubuhi.",
        "body_en": "The opening starts at 9 am.",
    }
    r = await api(platform.notification.url, "POST", "/api/v1/announcements", admin, json=spec)
    assert r.status_code == 202, r.text
    (announced,) = await platform.smtp.wait_for(mail(person["email"], "announcement"), timeout=30)
    mailcheck.check_email(announced, automatic=False)
    assert link_in(announced, "en") == url
