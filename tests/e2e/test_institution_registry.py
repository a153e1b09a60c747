"""Issue 13 B: the registry over HTTP (the real registration service): organisers load it
from a CSV file with a dry run (each row's action, every problem by row and field; a file
with problems writes nothing: 422), roles guard changes and contact persons, and the
sign-in request is rate limited without telling anything about the address."""

from __future__ import annotations

import secrets

import httpx
import pytest

from tests.e2e.test_institution_sign_in import ask_for_link, new_institution, sign_in_mail
from tests.e2e.test_notification_flows import api
from tests.stack import unique_suffix

pytestmark = pytest.mark.e2e


def registry_csv(tag: str) -> tuple[str, str]:
    good = (
        "code,name_sw,name_en,kind,region,contact_name,contact_email\n"
        f"A-{tag},Mamlaka {tag},Agency {tag},agency,Dodoma,Asha Juma,asha.{tag}@example.go.tz\n"
        f"LGA-{tag},Halmashauri {tag},Council {tag},local government authority,Mbeya,,\n"
    )
    bad = (
        "code,name_sw,name_en,kind,region,contact_name,contact_email\n"
        f"A-{tag},Mamlaka,Agency,agency,Dodoma,,\n"
        f"B {tag},Taasisi,Institution,agency,,,\n"
        f"C-{tag},,Institution,ngo,,Neema,neema-at-example\n"
    )
    return good, bad


async def test_organisers_load_the_registry_from_csv_with_a_dry_run(platform) -> None:
    base, admin = platform.registration.url, platform.admin_headers
    tag = secrets.token_hex(3).upper()
    good, bad = registry_csv(tag)
    csv_headers = {**admin, "Content-Type": "text/csv"}
    path = "/api/v1/institutions/import"

    assert (
        await api(base, "POST", path, {"Content-Type": "text/csv"}, content=good)
    ).status_code == 401
    assert (await api(base, "POST", path, admin, json={"x": 1})).status_code == 415

    checked = await api(base, "POST", f"{path}?dry_run=true", csv_headers, content=bad)
    assert checked.status_code == 200, checked.text
    report = checked.json()
    assert report["valid"] is False and report["applied"] is False
    assert {(p["row"], p["field"]) for p in report["problems"]} == {
        (3, "code"),
        (4, "name_sw"),
        (4, "kind"),
        (4, "contact_email"),
    }
    refused = await api(base, "POST", path, csv_headers, content=bad)
    assert refused.status_code == 422
    error = refused.json()["error"]
    assert error["code"] == "invalid_import"
    assert {f["field"] for f in error["fields"]} >= {"row 3: code", "row 4: contact_email"}
    assert (await api(base, "GET", f"/api/v1/institutions/A-{tag}")).status_code == 404

    dry = await api(base, "POST", f"{path}?dry_run=true", csv_headers, content=good)
    assert [(r["row"], r["action"]) for r in dry.json()["rows"]] == [(2, "create"), (3, "create")]
    assert (await api(base, "GET", f"/api/v1/institutions/A-{tag}")).status_code == 404
    done = await api(base, "POST", path, csv_headers, content=good)
    assert done.status_code == 201, done.text
    council = await api(base, "GET", f"/api/v1/institutions/LGA-{tag}")
    assert council.json()["kind"] == "local_government_authority"
    again = await api(base, "POST", f"{path}?dry_run=true", csv_headers, content=good)
    assert {r["action"] for r in again.json()["rows"]} == {"unchanged"}

    # Changes and contact persons are for organisers; erasure removes a contact person.
    patch = {"name_en": f"Agency {tag} (renamed)"}
    assert (
        await api(base, "PATCH", f"/api/v1/institutions/A-{tag}", json=patch)
    ).status_code == 401
    renamed = await api(base, "PATCH", f"/api/v1/institutions/A-{tag}", admin, json=patch)
    assert renamed.status_code == 200 and renamed.json()["name_en"].endswith("(renamed)")
    (contact,) = renamed.json()["contacts"]
    bad_patch = await api(base, "PATCH", f"/api/v1/institutions/A-{tag}", admin, json={"kind": "x"})
    assert (
        bad_patch.status_code == 422 and bad_patch.json()["error"]["fields"][0]["field"] == "kind"
    )
    erased = await api(
        base, "DELETE", f"/api/v1/institutions/A-{tag}/contacts/{contact['id']}", admin
    )
    assert erased.status_code == 204
    left = await api(base, "GET", f"/api/v1/institutions/A-{tag}/contacts", admin)
    assert left.json()["contacts"] == []


async def test_sign_in_requests_are_rate_limited_and_say_nothing(platform, start_service) -> None:
    limited = await start_service(
        "registration",
        REGISTRATION_RATE_LIMITS="true",
        REGISTRATION_RATE_INSTITUTION_SIGN_IN_PER_EMAIL_PER_HOUR="1",
        REGISTRATION_RATE_INSTITUTION_SIGN_IN_PER_ADDRESS_PER_MIN="3",
    )
    base = limited.url
    institution = await new_institution(base, platform.admin_headers)
    async with httpx.AsyncClient(base_url=base, timeout=15) as client:
        first = await ask_for_link(client, institution["email"])
        second = await ask_for_link(client, institution["email"])  # over the email's limit
        stranger = await ask_for_link(client, f"x.{secrets.token_hex(3)}@example.go.tz")
        assert first.text == second.text == stranger.text and first.status_code == 200
        over = await ask_for_link(client, institution["email"])  # the address's 4th in a minute
        assert over.status_code == 429 and "retry-after" in over.headers
    # One email only: the second request sent none.
    await platform.smtp.wait_for(sign_in_mail(institution["email"]), timeout=30)
    assert len([m for m in platform.smtp.messages() if sign_in_mail(institution["email"])(m)]) == 1


async def test_the_demo_seeds_institutions_with_a_contact_person(platform, start_service) -> None:
    demo = await start_service("registration", db_suffix=unique_suffix(), MKUTANO_SEED_DEMO="true")
    listed = await api(demo.url, "GET", "/api/v1/institutions")
    codes = {i["code"] for i in listed.json()}
    assert {"EGA", "MOF", "PO-RALG", "RS-ARUSHA", "KINONDONI-MC", "TANESCO"} <= codes
    contacts = await api(
        demo.url, "GET", "/api/v1/institutions/EGA/contacts", platform.admin_headers
    )
    assert contacts.json()["contacts"][0]["email"] == "taasisi.demo@example.go.tz"
