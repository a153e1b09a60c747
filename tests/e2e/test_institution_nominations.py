"""Issue 13 B, done when: an institution's contact person, signed in through the link
from the email in the SMTP capture, nominates 30 officers from a CSV file and each
receives exactly one confirmation, with their own manage link. Over plain HTTP (the page
works without JavaScript), against the real registration and notification services.
Then a withdrawal and a replacement, each told to the people concerned."""

from __future__ import annotations

import re
import secrets
from collections import Counter

import httpx
import pytest

from tests.e2e.test_institution_sign_in import (
    ask_for_link,
    form_token,
    link_in,
    new_institution,
    sign_in_mail,
    use_link,
)
from tests.e2e.test_notification_flows import template_of
from tests.helpers import create_event

pytestmark = pytest.mark.e2e

HEADER = "full_name,email,phone,position,category,language"


def officers(tag: str, count: int) -> list[dict[str, str]]:
    return [
        {
            "full_name": f"Afisa {n} Mwakyusa",
            "email": f"afisa{n}.{tag}@example.go.tz",
            "phone": f"0713{secrets.randbelow(900000) + 100000}",
            "position": "ICT Officer",
            "category": "ict_officer",
            "language": "en" if n % 2 else "sw",
        }
        for n in range(1, count + 1)
    ]


def as_csv(rows: list[dict[str, str]]) -> str:
    return "\n".join([HEADER, *(",".join(r[c] for c in HEADER.split(",")) for r in rows)]) + "\n"


async def upload(client: httpx.AsyncClient, event_id: str, text: str, *, dry_run: bool):
    home = await client.get(f"/institution/home?lang=en&event={event_id}")
    data = {"csrf": form_token(home.text), "event": event_id, "declaration": "yes"}
    if dry_run:
        data["dry_run"] = "yes"
    return await client.post(
        "/institution/nominations/file?lang=en",
        data=data,
        files={"file": ("officers.csv", text.encode(), "text/csv")},
    )


async def test_a_contact_person_nominates_30_officers_from_a_csv_file(platform) -> None:
    base, admin = platform.registration.url, platform.admin_headers
    event = await create_event(base, admin, capacity=200)
    institution = await new_institution(base, admin, language="en")
    tag = secrets.token_hex(3)
    rows = officers(tag, 30)
    addresses = {r["email"] for r in rows}

    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        await ask_for_link(client, institution["email"])
        (message,) = await platform.smtp.wait_for(sign_in_mail(institution["email"]), timeout=30)
        assert (await use_link(client, link_in(message, "en"))).status_code == 303

        # A file with bad rows: every problem by line and field; nobody nominated.
        bad = [*rows[:3], {**rows[3], "email": "not-an-email"}, {**rows[4], "phone": "1"}]
        bad.append({**rows[5], "email": rows[0]["email"]})
        checked = await upload(client, event["id"], as_csv(bad), dry_run=True)
        assert checked.status_code == 422, checked.text
        for line, field in ((5, "email"), (6, "phone"), (7, "email")):
            assert re.search(rf"Line {line}, Field <code>{field}</code>", checked.text), (
                line,
                field,
            )
        refused = await upload(client, event["id"], as_csv(bad), dry_run=False)
        assert refused.status_code == 422
        page = await client.get(f"/institution/home?lang=en&event={event['id']}")
        assert "has nominated nobody" in page.text

        # The clean file: a dry run, then for real.
        dry = await upload(client, event["id"], as_csv(rows), dry_run=True)
        assert dry.status_code == 200 and "30 rows would be nominated" in dry.text
        done = await upload(client, event["id"], as_csv(rows), dry_run=False)
        assert done.status_code == 201, done.text
        assert "30 officers nominated" in done.text
        assert done.text.count('data-status="confirmed"') == 30

    def confirmation(m) -> bool:
        return str(m["To"]).lower() in addresses and template_of(m) == "confirmation"

    got = await platform.smtp.wait_for(confirmation, count=30, timeout=120)
    per_address = Counter(str(m["To"]).lower() for m in got)
    assert set(per_address) == addresses and set(per_address.values()) == {1}, per_address
    links = set()
    for m in got:
        text = m.get_body(("plain",)).get_content()
        link = re.search(r"/my/([A-Za-z0-9_-]{48})", text)
        assert link, text
        links.add(link.group(1))
        language = str(m["Content-Language"])
        expected = next(r["language"] for r in rows if r["email"] == str(m["To"]).lower())
        assert language == expected
    assert len(links) == 30  # each nominee has their own manage link

    # The registrations say who nominated them (organisers' view).
    async with httpx.AsyncClient(base_url=base, timeout=30) as api:
        listed = await api.get(
            f"/api/v1/events/{event['id']}/registrations?limit=100", headers=admin
        )
    assert listed.status_code == 200
    assert len(listed.json()["items"]) == 30


async def test_a_nominee_is_withdrawn_and_another_replaced(platform) -> None:
    base, admin = platform.registration.url, platform.admin_headers
    event = await create_event(base, admin, capacity=2)
    institution = await new_institution(base, admin, language="sw")
    tag = secrets.token_hex(3)
    first, second, third = officers(tag, 3)

    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        await ask_for_link(client, institution["email"], "sw")
        (message,) = await platform.smtp.wait_for(sign_in_mail(institution["email"]), timeout=30)
        assert (await use_link(client, link_in(message, "sw"))).status_code == 303
        assert (
            await upload(client, event["id"], as_csv([first, second]), dry_run=False)
        ).status_code == 201
        home = await client.get(f"/institution/home?lang=en&event={event['id']}")
        ids = dict(re.findall(r'<li id="nominee-([0-9a-f-]{36})">\s*<h3>([^<]+)</h3>', home.text))
        by_name = {name: rid for rid, name in ids.items()}

        # Withdraw without ticking: refused, nothing changes; ticked: withdrawn.
        path = f"/institution/nominations/{by_name[first['full_name']]}/withdraw?lang=en"
        data = {"csrf": form_token(home.text), "event": event["id"]}
        assert (await client.post(path, data=data)).status_code == 422
        withdrawn = await client.post(path, data={**data, "confirm": "yes"})
        assert withdrawn.status_code == 303

        # Replace the second by a third officer: the seat stays with the institution.
        replace = await client.get(
            f"/institution/home?lang=en&event={event['id']}&replace={by_name[second['full_name']]}"
        )
        assert f"Replace: {second['full_name']}" in replace.text
        replaced = await client.post(
            "/institution/nominations?lang=en",
            data={
                **{k: v for k, v in third.items()},
                "csrf": form_token(replace.text),
                "event": event["id"],
                "replace": by_name[second["full_name"]],
                "declaration": "yes",
            },
        )
        assert replaced.status_code == 303, replaced.text
        after = await client.get(replaced.headers["location"])
        assert third["full_name"] in after.text
        assert after.text.count('data-status="cancelled"') == 2
        assert after.text.count('data-status="confirmed"') == 1

    def mail(address: str, template: str):
        return lambda m: str(m["To"]).lower() == address and template_of(m) == template

    # Each is told in their own language (the first writes in English, the second in Swahili).
    (told,) = await platform.smtp.wait_for(mail(first["email"], "cancelled"), timeout=60)
    assert "withdrawn by your institution" in told.get_body(("plain",)).get_content()
    (told,) = await platform.smtp.wait_for(mail(second["email"], "cancelled"), timeout=60)
    assert "imeondolewa na taasisi yako" in told.get_body(("plain",)).get_content()
    await platform.smtp.wait_for(mail(third["email"], "confirmation"), timeout=60)
