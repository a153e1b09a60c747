"""Issue 13 B in notification: an institution's contact person's sign-in email, in their
language, with the link in the text and the HTML, once per notice (keyed on ce_id)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.notification import messages
from services.notification.domain import INSTITUTION_SIGN_IN, institution_sign_in_intents
from shared.contracts.registration_notices import (
    InstitutionContactAddress,
    InstitutionSignInRequested,
)
from shared.envelope import parse, wrap

NOW = datetime(2026, 11, 2, 7, 0, tzinfo=UTC)
URL = "https://mkutano.example.go.tz/institution/sign-in/" + "A" * 48


def notice(language: str) -> InstitutionSignInRequested:
    return InstitutionSignInRequested(
        institution_code="MOF",
        institution_name_sw="Wizara ya Fedha",
        institution_name_en="Ministry of Finance",
        contact=InstitutionContactAddress(
            contact_id="c-1", full_name="Neema Said", email="neema@mof.go.tz", language=language
        ),
        sign_in_url=f"{URL}?lang={language}",
        expires_at=NOW + timedelta(minutes=15),
        requested_at=NOW,
    )


@pytest.mark.parametrize("language", ["sw", "en"])
def test_the_sign_in_email_carries_the_link_in_the_contact_persons_language(
    language: str,
) -> None:
    message = wrap(notice(language), "registration")
    received = parse(message.headers(), message.value(), message.key.encode())
    (intent,) = institution_sign_in_intents(received)
    assert intent.channel == "email" and intent.recipient == "neema@mof.go.tz"
    assert intent.template == INSTITUTION_SIGN_IN and intent.language == language
    assert intent.key(received.id) == intent.key(received.id)  # one per notice
    subject, text, html = messages.render_email(
        INSTITUTION_SIGN_IN, language, {**intent.context, "language": language}
    )
    name = "Wizara ya Fedha" if language == "sw" else "Ministry of Finance"
    assert name in subject and "\n" not in subject
    assert f"{URL}?lang={language}" in text and f'href="{URL}?lang={language}"' in html
    assert "Neema Said" in text and "10:15" in text  # the expiry, venue time
    assert f'lang="{language}"' in html
    other = "Ministry of Finance" if language == "sw" else "Wizara ya Fedha"
    assert other not in text


async def test_an_erased_contact_persons_messages_are_scrubbed() -> None:
    from services.notification import handlers
    from shared.contracts.registration_notices import InstitutionContactErased
    from tests.unit.fakes.notification import FakeNotificationStore

    store = FakeNotificationStore()
    ctx = handlers.Context(
        store=store, settings=None, email=None, sms=None, metrics=None, clock=lambda: NOW
    )  # type: ignore[arg-type]
    sent = wrap(notice("en"), "registration")
    await handlers.record_institution_sign_in(
        ctx, parse(sent.headers(), sent.value(), sent.key.encode())
    )
    (entry,) = store.notifications.values()
    assert entry.recipient == "neema@mof.go.tz" and entry.context["sign_in_url"]
    erased = wrap(
        InstitutionContactErased(
            institution_code="MOF", contact_id="c-1", email="neema@mof.go.tz", erased_at=NOW
        ),
        "registration",
    )
    await handlers.erase_institution_contact(
        ctx, parse(erased.headers(), erased.value(), erased.key.encode())
    )
    (entry,) = store.notifications.values()
    assert entry.recipient == "[erased]" and entry.context == {}
    assert entry.status == "cancelled"
