"""The webhooks domain: target policy, patterns, personal data, signing, retries."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from services.webhooks.domain import (
    Delivery,
    Subscription,
    TargetPolicy,
    check_patterns,
    new_secret,
    parse_target,
    payload_for,
    personal_paths,
    retry_delay,
)
from shared.contracts import stream_events
from shared.contracts.registration import (
    EventDetails,
    ParticipantContact,
    ParticipantRegistered,
)
from shared.contracts.resolutions import FocalPerson, ResolutionUpdated
from shared.errors import DomainError
from shared.topics import REGISTRATION, RESOLUTIONS

NOW = datetime(2026, 2, 11, 6, 0, tzinfo=UTC)
KNOWN = [c.ce_type() for t in (REGISTRATION, RESOLUTIONS) for c in stream_events(t)]


def registered() -> ParticipantRegistered:
    return ParticipantRegistered(
        registration_id="reg-1",
        reference="MK-ABC123",
        event=EventDetails(
            event_id="egov-2026",
            code="EGOV2026",
            title_sw="Mkutano",
            title_en="Conference",
            venue="AICC",
            city="Arusha",
            starts_at=NOW + timedelta(days=30),
            ends_at=NOW + timedelta(days=32),
        ),
        participant=ParticipantContact(
            full_name="Asha Juma Mwinyi",
            email="asha.juma@example.go.tz",
            phone="+255712345678",
            language="sw",
            institution="e-Government Authority",
            position="ICT Officer",
        ),
        status="confirmed",
        cadre="ict_officer",
        registered_at=NOW,
        ticket="tkt.signed.value",
    )


def subscription(**overrides) -> Subscription:
    fields = {
        "id": "sub1",
        "url": "https://hooks.example.go.tz/mkutano",
        "event_types": ["tz.go.ega.registration.*"],
        "label": "TSMS",
        "owner_email": "ict@example.go.tz",
        "secret": new_secret(b"k" * 24),
        "personal_data_purpose": None,
        "by": "admin",
        "now": NOW,
    }
    fields.update(overrides)
    return Subscription.create(**fields)


# --------------------------------------------------------------------------- targets


@pytest.mark.parametrize(
    "address",
    ["10.1.2.3", "192.168.1.10", "169.254.169.254", "172.16.0.1", "127.0.0.1", "::1",
     "fe80::1", "fd00::1", "0.0.0.0", "::ffff:10.0.0.1", "100.64.0.1"],
)  # fmt: skip
def test_internal_addresses_are_refused(address: str) -> None:
    with pytest.raises(DomainError) as err:
        TargetPolicy().check("h", [address])
    assert err.value.code == "target_not_allowed"


def test_public_addresses_pass_and_one_private_address_among_them_refuses() -> None:
    TargetPolicy().check("h", ["196.192.72.10", "2001:4860::8888"])
    with pytest.raises(DomainError):
        TargetPolicy().check("h", ["196.192.72.10", "10.0.0.7"])


def test_the_allow_list_takes_networks_and_host_names() -> None:
    TargetPolicy(("127.0.0.1/32",)).check("127.0.0.1", ["127.0.0.1"])
    TargetPolicy(("receiver.internal",)).check("receiver.internal", ["10.9.9.9"])
    with pytest.raises(DomainError):
        TargetPolicy(("127.0.0.1/32",)).check("127.0.0.2", ["127.0.0.2"])


@pytest.mark.parametrize(
    "url", ["ftp://example.go.tz/x", "not a url", "http://", "https://user:pw@example.go.tz/"]
)
def test_only_http_urls_with_a_host_and_no_credentials(url: str) -> None:
    with pytest.raises(DomainError) as err:
        parse_target(url)
    assert err.value.code == "invalid_target_url"


def test_parse_target_gives_the_default_ports() -> None:
    assert parse_target("https://Example.go.tz/hook") == ("https", "example.go.tz", 443)
    assert parse_target("http://127.0.0.1:8080/x") == ("http", "127.0.0.1", 8080)


# --------------------------------------------------------------------------- event types


def test_patterns_match_by_prefix_and_typos_are_refused() -> None:
    assert check_patterns(["tz.go.ega.registration.*", "tz.go.ega.registration.*"], KNOWN) == [
        "tz.go.ega.registration.*"
    ]
    s = subscription()
    assert s.matches("tz.go.ega.registration.ParticipantRegistered.v1")
    assert not s.matches("tz.go.ega.resolutions.ResolutionUpdated.v1")
    for bad in (["tz.go.ega.registraton.*"], ["has space"], []):
        with pytest.raises(DomainError):
            check_patterns(bad, KNOWN)


# --------------------------------------------------------------------------- personal data


def test_personal_fields_are_derived_from_the_contracts() -> None:
    paths = personal_paths(ParticipantRegistered)
    assert {
        "participant.full_name",
        "participant.email",
        "participant.phone",
        "participant.position",
        "ticket",
    } <= set(paths)
    assert "participant.language" not in paths and "registration_id" not in paths
    assert {"focal_persons[].full_name", "focal_persons[].email", "focal_persons[].phone"} <= set(
        personal_paths(ResolutionUpdated)
    )
    assert "recorded_by" in personal_paths(ResolutionUpdated)


def test_a_real_participant_registered_without_the_grant_names_nobody() -> None:
    event = registered()
    data = event.model_dump(mode="json")
    payload = payload_for(ParticipantRegistered, data, granted=False)
    text = json.dumps(payload)
    for secret in ("Asha", "asha.juma@example.go.tz", "+255712345678", "tkt.signed.value"):
        assert secret not in text
    assert payload["registration_id"] == "reg-1"
    assert payload["participant"] == {"language": "sw", "institution": "e-Government Authority"}
    assert payload["event"]["event_id"] == "egov-2026"
    assert payload_for(ParticipantRegistered, data, granted=True) == data
    assert data["participant"]["full_name"] == "Asha Juma Mwinyi", "the input is left as it was"


def test_focal_persons_contacts_are_left_out_of_each_item() -> None:
    data = {
        "focal_persons": [
            FocalPerson(full_name="Juma", institution="MoF", email="j@x.go.tz").model_dump(),
            FocalPerson(full_name="Neema", institution="PO", email="n@x.go.tz").model_dump(),
        ],
        "note": "Called Juma",
    }
    out = payload_for(ResolutionUpdated, data, granted=False)
    assert out["focal_persons"] == [
        {"institution": "MoF", "language": "sw"},
        {"institution": "PO", "language": "sw"},
    ]
    assert "note" not in out


# --------------------------------------------------------------------------- signing


def test_a_delivery_is_signed_as_the_standard_webhooks_library_verifies() -> None:
    s = subscription()
    d = Delivery.record(
        s,
        event_id="ce-1",
        event_type=ParticipantRegistered.ce_type(),
        source="/mkutano/registration",
        event_time=NOW,
        key="reg-1",
        data=registered().model_dump(mode="json"),
        event_cls=ParticipantRegistered,
        recorded_at=NOW.timestamp(),
    )
    now = datetime.now(UTC)
    headers = d.headers(s, now)
    assert headers["content-type"] == "application/cloudevents+json"
    assert headers["webhook-id"] == "ce-1"
    event = Webhook(s.secrets[0].value).verify(d.body(), headers)
    assert event["id"] == "ce-1" and event["specversion"] == "1.0"
    assert event["type"] == "tz.go.ega.registration.ParticipantRegistered.v1"
    assert event["partitionkey"] == "reg-1" and event["personaldata"] == "omitted"
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret(b"x" * 24)).verify(d.body(), headers)


def test_during_a_rotation_both_secrets_sign_and_after_it_only_the_new() -> None:
    s = subscription()
    old = s.secrets[0].value
    new = new_secret(b"n" * 24)
    until = s.rotate_secret(new, overlap_s=3600, now=NOW)
    assert until == NOW + timedelta(hours=1)
    assert s.signing_secrets(NOW + timedelta(minutes=59)) == [new, old]
    assert s.signing_secrets(NOW + timedelta(hours=1)) == [new]
    s.rotate_secret(new_secret(b"m" * 24), overlap_s=0, now=NOW)
    assert len(s.secrets) == 1


def test_a_secret_needs_enough_randomness() -> None:
    assert new_secret(b"a" * 24).startswith("whsec_")
    with pytest.raises(ValueError):
        new_secret(b"short")


# --------------------------------------------------------------------------- retries and pausing


def test_retry_delay_follows_the_schedule_with_jitter_then_stops() -> None:
    schedule = [5.0, 300.0]
    assert retry_delay(1, schedule, 0.2, 0.5) == 5.0
    assert retry_delay(1, schedule, 0.2, 0.0) == pytest.approx(4.0)
    assert retry_delay(2, schedule, 0.2, 0.999) == pytest.approx(360.0, rel=0.01)
    assert retry_delay(3, schedule, 0.2, 0.5) is None


def test_a_delivery_fails_for_good_after_the_schedule_and_a_replay_starts_it_over() -> None:
    s = subscription()
    d = Delivery.record(
        s, event_id="e", event_type="t", source="s", event_time=None, key="k", data={},
        event_cls=None, recorded_at=1.0,
    )  # fmt: skip
    args = {"error": "HTTP 500", "status_code": 500, "latency_ms": 3, "schedule": [1.0],
            "jitter": 0.0, "rand": 0.5}  # fmt: skip
    assert d.failed(now=NOW, **args) is False
    assert d.status == "pending" and d.next_attempt_at == NOW.timestamp() + 1.0
    assert d.failed(now=NOW, **args) is True
    assert d.status == "failed" and d.attempts_count == 2
    d.replay(NOW)
    assert d.status == "pending" and d.replays == 1
    assert d.failed(now=NOW, **args) is False, "a replay gets the whole schedule again"


def test_a_run_of_failures_pauses_once_and_a_success_resets_it() -> None:
    s = subscription()
    assert not s.record_failure(NOW, pause_after=3)
    s.record_success(NOW)
    assert not s.record_failure(NOW, pause_after=3)
    assert not s.record_failure(NOW, pause_after=3)
    assert s.record_failure(NOW, pause_after=3)
    assert s.status == "paused" and s.owner_notice_pending
    assert not s.record_failure(NOW, pause_after=3), "paused already: no second notice"
    s.resume(now=NOW)
    assert s.active and s.consecutive_failures == 0
    with pytest.raises(DomainError):
        s.resume(now=NOW)


def test_a_burst_of_failures_pauses_only_once_they_have_gone_on_long_enough() -> None:
    s = subscription()
    for _ in range(10):
        assert not s.record_failure(NOW, pause_after=3, failing_for_s=3600)
    assert not s.record_failure(NOW + timedelta(minutes=59), pause_after=3, failing_for_s=3600)
    assert s.record_failure(NOW + timedelta(hours=1), pause_after=3, failing_for_s=3600)
    assert s.failing_since == NOW
    s.resume(now=NOW)
    assert s.failing_since is None


def test_granting_personal_data_needs_a_purpose() -> None:
    with pytest.raises(DomainError) as err:
        subscription(personal_data_purpose="  ")
    assert err.value.code == "purpose_required"
    granted = subscription(personal_data_purpose="Issue CPD certificates")
    assert granted.personal_data is not None and granted.personal_data.granted_by == "admin"
