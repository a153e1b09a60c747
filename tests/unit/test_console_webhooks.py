"""The console's webhooks page: its form turned into the webhooks API's body, the API's
refusals beside the form's fields, the pause reasons in both languages, and what the
templates show (the secret only when given, the delivery log in East Africa Time)."""

from __future__ import annotations

from typing import Any

import pytest

from services.console import web, webhooks_pages
from services.console.domain import PAGE_ROLES, may
from services.console.labels import LABELS as CONSOLE_LABELS
from services.console.ports import Answer

EN = webhooks_pages.LABELS["en"]


def test_both_languages_have_the_same_labels() -> None:
    sw, en = webhooks_pages.LABELS["sw"], webhooks_pages.LABELS["en"]
    assert sw.keys() == en.keys()
    for key, value in en.items():
        if isinstance(value, dict):
            assert sw[key].keys() == value.keys(), key
    assert sw["streams"].keys() == set(webhooks_pages.STREAM_PATTERNS)


def test_the_page_is_for_admins_only() -> None:
    assert PAGE_ROLES["webhooks"] == ("admin",)
    assert may(frozenset({"admin"}), "webhooks")
    for role in ("organiser", "registrar", "coordinator", "auditor"):
        assert not may(frozenset({role}), "webhooks")


def test_the_form_becomes_the_subscription_body() -> None:
    body, errors = webhooks_pages.subscription_body(
        {
            "url": [" https://tsms.example.go.tz/hooks "],
            "label": ["TSMS"],
            "owner_email": ["ict@example.go.tz"],
            "streams": ["tz.go.ega.registration.*", "not.offered.*"],
            "other_types": [
                "tz.go.ega.resolutions.ResolutionAdopted.v2\n\ntz.go.ega.registration.*"
            ],
            "purpose": ["Enrol registered officers in TSMS courses"],
        },  # fmt: skip
        EN,
    )
    assert errors == []
    assert body == {
        "url": "https://tsms.example.go.tz/hooks",
        "label": "TSMS",
        "owner_email": "ict@example.go.tz",
        # Only the offered checkboxes; free text added once each.
        "event_types": ["tz.go.ega.registration.*", "tz.go.ega.resolutions.ResolutionAdopted.v2"],
        "personal_data": {"purpose": "Enrol registered officers in TSMS courses"},
    }


def test_no_purpose_asks_for_no_personal_data_and_missing_fields_are_named() -> None:
    body, errors = webhooks_pages.subscription_body({"url": ["https://x.example"]}, EN)
    assert "personal_data" not in body
    assert [e["field"] for e in errors] == ["label", "owner_email", "event_types"]
    assert {e["reason"] for e in errors} == {"required"}


def test_the_apis_refusals_go_beside_the_forms_fields() -> None:
    refused = Answer(
        422,
        {
            "error": {
                "code": "validation_failed",
                "message": "Invalid request.",
                "fields": [
                    {"field": "url", "reason": "private target"},
                    {"field": "event_types.1", "reason": "matches nothing"},
                    {"field": "personal_data.purpose", "reason": "too short"},
                    {"field": "owner_email", "reason": "not an email"},
                    {"field": "body", "reason": "odd"},
                ],
            }
        },
    )
    assert webhooks_pages.api_errors(refused) == [
        {"field": "url", "reason": "private target"},
        {"field": "event_types", "reason": "matches nothing"},
        {"field": "purpose", "reason": "too short"},
        {"field": "owner_email", "reason": "not an email"},
        {"field": "url", "reason": "odd"},
    ]
    # Without fields, the message goes beside the URL.
    message_only = Answer(422, {"error": {"code": "target_not_allowed", "message": "No."}})
    assert webhooks_pages.api_errors(message_only) == [{"field": "url", "reason": "No."}]


@pytest.mark.parametrize(
    ("reason", "sw", "en"),
    [
        ("paused by an admin", "imesitishwa na msimamizi", "paused by an admin"),
        ("20 failed attempts in a row", "majaribio 20 mfululizo yameshindwa",
         "20 failed attempts in a row"),
        ("something new", "something new", "something new"),
        (None, "", ""),
    ],
)  # fmt: skip
def test_pause_reasons_are_said_in_the_pages_language(reason: Any, sw: str, en: str) -> None:
    assert webhooks_pages.reason_text(reason, webhooks_pages.LABELS["sw"]) == sw
    assert webhooks_pages.reason_text(reason, webhooks_pages.LABELS["en"]) == en


SUBSCRIPTION = {
    "id": "sub1",
    "url": "https://tsms.example.go.tz/hooks",
    "event_types": ["tz.go.ega.registration.*"],
    "label": "TSMS",
    "owner_email": "ict@example.go.tz",
    "status": "paused",
    "paused_reason": "paused by an admin",
    "personal_data": None,
    "consecutive_failures": 3,
}
DELIVERY = {
    "event_id": "ev-1",
    "event_type": "tz.go.ega.registration.ParticipantRegistered.v2",
    "status": "failed",
    "attempts_count": 8,
    "last_status_code": 503,
    "last_error": "HTTP 503",
    "next_attempt_at": None,
    "recorded_at": "2026-12-01T06:00:00Z",
}


def _render(template: str, lang: str, **context: Any) -> str:
    return web.templates.get_template(template).render(
        t=CONSOLE_LABELS[lang],
        w=webhooks_pages.LABELS[lang],
        lang=lang,
        session=None,
        nav=[],
        lang_url="/",
        csrf="tok",
        path="/webhooks",
        reason=lambda r: webhooks_pages.reason_text(r, webhooks_pages.LABELS[lang]),
        **context,
    )


@pytest.mark.parametrize("lang", ["sw", "en"])
def test_the_subscription_page_shows_the_log_in_east_africa_time(lang: str) -> None:
    shown = _render(
        "hooks_subscription.html.j2",
        lang,
        sub=SUBSCRIPTION,
        deliveries=[DELIVERY],
        secret=None,
        flash=None,
        confirm=None,
    )
    assert "2026-12-01 09:00" in shown and webhooks_pages.LABELS[lang]["time_note"] in shown
    assert "503" in shown and "HTTP 503" in shown
    assert "/webhooks/sub1/deliveries/ev-1/replay" in shown  # a failed one may be replayed
    assert "/webhooks/sub1/resume" in shown and "/webhooks/sub1/pause" not in shown
    assert webhooks_pages.LABELS[lang]["reason_admin"] in shown
    assert "secret-value" not in shown and "whsec_" not in shown
    assert 'name="confirmed"' not in shown  # delete and rotate ask first


def test_the_secret_and_the_confirmation_only_when_given() -> None:
    shown = _render(
        "hooks_subscription.html.j2",
        "en",
        sub={**SUBSCRIPTION, "status": "active", "paused_reason": None},
        deliveries=[],
        secret={"id": "sub1", "secret": "whsec_abc"},
        flash="The subscription is created.",
        confirm="delete",
    )
    assert 'value="whsec_abc"' in shown and EN["secret_warning"] in shown
    assert 'action="/webhooks/sub1/delete"' in shown and 'name="confirmed" value="yes"' in shown
    assert EN["no_deliveries"] in shown


@pytest.mark.parametrize("lang", ["sw", "en"])
def test_the_list_shows_a_refusal_beside_its_field(lang: str) -> None:
    shown = _render(
        "hooks_list.html.j2",
        lang,
        subscriptions=[SUBSCRIPTION],
        streams=webhooks_pages.STREAM_PATTERNS,
        values={"url": ["http://10.0.0.1/"], "streams": ["tz.go.ega.registration.*"]},
        errors=[{"field": "url", "reason": "private target"}],
        error_of={"url": "private target"},
        flash=None,
    )
    assert '<p class="field-error" id="url-error">private target</p>' in shown
    assert 'aria-describedby="url-error url-hint"' in shown
    assert 'value="http://10.0.0.1/"' in shown
    assert 'value="tz.go.ega.registration.*" checked' in shown
    assert webhooks_pages.LABELS[lang]["states"]["paused"] in shown


def test_the_dev_stack_compose_and_the_cluster_point_the_console_at_webhooks() -> None:
    from pathlib import Path

    import yaml

    from deploy import embedded

    ports = {"console": 8005, "registration": 8001, "webhooks": 8006}
    env = embedded.console_env(ports)
    assert env["CONSOLE_WEBHOOKS_URL"] == "http://127.0.0.1:8006"
    # Every service of the dev stack, webhooks too, trusts the console's tokens.
    dev = embedded.service_env(admin_key="k", http_ports=ports)
    assert dev["MKUTANO_JWT_JWKS_URL"] == "http://127.0.0.1:8005/.well-known/jwks.json"
    repo = Path(__file__).resolve().parents[2]
    compose = yaml.safe_load((repo / "docker-compose.yml").read_text())["services"]
    assert compose["console"]["environment"]["CONSOLE_WEBHOOKS_URL"] == "http://webhooks:8006"
    webhooks_env = compose["webhooks"]["environment"]
    assert webhooks_env["MKUTANO_JWT_JWKS_URL"] == "http://console:8005/.well-known/jwks.json"
    config = (repo / "deploy" / "k8s" / "config.yaml").read_text()
    assert "CONSOLE_WEBHOOKS_URL: http://mkutano-webhooks" in config
