"""Issue 13 B: an institution's contact person signs in through the link emailed to them.

Against the real registration and notification services (Kafka, MongoDB, the SMTP
capture): the sign-in request answers the same for anyone; the email (in the contact
person's language) carries a link that opens the institution page once; a reused,
tampered or unknown link, and an expired one (a service whose links last 2 s), all get
the same answer."""

from __future__ import annotations

import re
import secrets
from email.message import EmailMessage

import httpx
import pytest

from tests import mailcheck
from tests.e2e.test_notification_flows import api, template_of, to
from tests.stack import wait_until

pytestmark = pytest.mark.e2e

SENTENCE = {"en": "Sign in here: ", "sw": "Ingia hapa: "}


def sign_in_mail(address: str):
    return lambda m: to(address)(m) and template_of(m) == "institution_sign_in"


def link_in(message: EmailMessage, language: str) -> str:
    """The sign-in URL of the email, the same in its text and its HTML part."""
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    found = re.search(re.escape(SENTENCE[language]) + r"(\S+)", text)
    assert found, text
    url = found.group(1)
    assert f'href="{url}"' in html.replace("&amp;", "&"), html
    return url


def form_token(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


async def new_institution(base: str, admin: dict[str, str], *, language: str = "en") -> dict:
    code = f"T-{secrets.token_hex(3).upper()}"
    email = f"hr.{secrets.token_hex(4)}@example.go.tz"
    body = {
        "code": code,
        "name_sw": f"Wizara ya Majaribio {code}",
        "name_en": f"Ministry of Trials {code}",
        "kind": "ministry",
        "region": "Dodoma",
        "contacts": [{"full_name": "Neema Said", "email": email, "language": language}],
    }
    r = await api(base, "POST", "/api/v1/institutions", admin, json=body)
    assert r.status_code == 201, r.text
    return {**r.json(), "email": email}


async def ask_for_link(
    client: httpx.AsyncClient, email: str, language: str = "en"
) -> httpx.Response:
    start = await client.get(f"/institution?lang={language}")
    assert start.status_code == 200, start.text
    assert "samesite=strict" in start.headers["set-cookie"].lower()
    return await client.post(
        f"/institution?lang={language}", data={"email": email, "csrf": form_token(start.text)}
    )


async def use_link(client: httpx.AsyncClient, url: str) -> httpx.Response:
    """Open the link's page, then press its one button (what a person does)."""
    page = await client.get(url)
    if page.status_code != 200:
        return page
    action = re.search(r'<form method="post" action="([^"]+)"', page.text)
    assert action, page.text
    return await client.post(
        action.group(1).replace("&amp;", "&"), data={"csrf": form_token(page.text)}
    )


async def test_a_contact_person_signs_in_once_through_the_emailed_link(platform) -> None:
    base, admin = platform.registration.url, platform.admin_headers
    institution = await new_institution(base, admin, language="en")
    email = institution["email"]

    # The registry is public without contact persons; organisers see them.
    public = await api(base, "GET", f"/api/v1/institutions/{institution['code']}")
    assert public.status_code == 200 and email not in public.text
    listed = await api(base, "GET", "/api/v1/institutions?kind=ministry")
    assert institution["code"] in {i["code"] for i in listed.json()} and email not in listed.text
    contacts = await api(base, "GET", f"/api/v1/institutions/{institution['code']}/contacts")
    assert contacts.status_code == 401
    contacts = await api(base, "GET", f"/api/v1/institutions/{institution['code']}/contacts", admin)
    assert contacts.json()["contacts"][0]["email"] == email

    async with httpx.AsyncClient(base_url=base, timeout=15) as client:
        # The same answer for a contact person and for anyone else.
        stranger = await ask_for_link(client, f"nobody.{secrets.token_hex(3)}@example.go.tz")
        answer = await ask_for_link(client, email.upper())
        assert answer.status_code == stranger.status_code == 200
        assert answer.text == stranger.text and "If this address belongs" in answer.text
        assert answer.headers["cache-control"] == "no-store"

        (message,) = await platform.smtp.wait_for(sign_in_mail(email), timeout=30)
        mailcheck.check_email(message)
        assert "Ministry of Trials" in str(message["Subject"])
        url = link_in(message, "en")
        assert re.fullmatch(
            re.escape(base) + r"/institution/sign-in/[A-Za-z0-9_-]{48}\?lang=en", url
        ), url

        # Opening the link's page uses nothing (a mail scanner may fetch it).
        assert (await client.get(url)).status_code == 200
        signed_in = await use_link(client, url)
        assert signed_in.status_code == 303, signed_in.text
        assert signed_in.headers["location"] == "/institution/home?lang=en"
        cookie = signed_in.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie and "path=/institution" in cookie
        home = await client.get("/institution/home?lang=en")
        assert home.status_code == 200, home.text
        assert institution["name_en"] in home.text and "Signed in as Neema Said" in home.text

        # Reused, tampered, unknown: one answer, and no session from any of them.
        async with httpx.AsyncClient(base_url=base, timeout=15) as other:
            link = url.split("?")[0].rsplit("/", 1)[1]
            tampered = link[:-1] + ("A" if link[-1] != "A" else "B")
            answers = [
                await use_link(other, u)
                for u in (
                    url,
                    f"{base}/institution/sign-in/{tampered}?lang=en",
                    f"{base}/institution/sign-in/{'x' * 48}?lang=en",
                )
            ]
            posted = await other.post(url, data={"csrf": "x"})
            assert {(a.status_code, a.text) for a in [*answers, posted]} == {(404, answers[0].text)}
            assert "expired or been used" in answers[0].text
            assert (await other.get("/institution/home?lang=en")).status_code == 303

        # Signing out ends the session on this browser.
        out = await client.post(
            "/institution/sign-out?lang=en", data={"csrf": form_token(home.text)}
        )
        assert out.status_code == 303
        assert (await client.get("/institution/home?lang=en")).status_code == 303


async def test_an_expired_link_gets_the_answer_of_an_unknown_one(platform, start_service) -> None:
    # A registration service whose links last 2 seconds (the same databases and topics).
    quick = await start_service("registration", REGISTRATION_INSTITUTION_LINK_VALIDITY_S="2")
    base, admin = quick.url, platform.admin_headers
    institution = await new_institution(base, admin, language="sw")
    async with httpx.AsyncClient(base_url=base, timeout=15) as client:
        answer = await ask_for_link(client, institution["email"], "sw")
        assert answer.status_code == 200 and "Kama anwani hii" in answer.text
        (message,) = await platform.smtp.wait_for(sign_in_mail(institution["email"]), timeout=30)
        url = link_in(message, "sw")
        unknown = await use_link(client, f"{base}/institution/sign-in/{'A' * 48}?lang=sw")
        # Bounded: the link stops working once its 2 seconds are over.
        expired = await wait_until(
            lambda: _refused(client, url), timeout=30, interval=0.5, message="link still works"
        )
        assert (
            (expired.status_code, expired.text)
            == (unknown.status_code, unknown.text)
            == (
                404,
                unknown.text,
            )
        )
        assert (await client.get("/institution/home?lang=sw")).status_code == 303


async def _refused(client: httpx.AsyncClient, url: str) -> httpx.Response | None:
    """The answer to the link's page once it refuses (checking only: nothing is used)."""
    page = await client.get(url)
    return page if page.status_code == 404 else None
