"""No secret and no contact details on a stream a third party can read.

Read from the JSON Schemas of ``shared.contracts`` (what docs/contracts/ publishes): every
event type published on a public stream (shared/topics.py ``PUBLIC_STREAMS``), nested
models included, has no field that holds a credential (a ticket, a self-service link or
token) or a way to reach or name a person (name, email, phone). What the notification
service needs of those is on the private streams ``registration.notices.v1`` and
``resolutions.notices.v1`` only.
"""

from __future__ import annotations

from typing import Any

import pytest

from shared.contracts import stream_events
from shared.contracts.base import json_schema
from shared.topics import (
    PRIVATE_STREAMS,
    PUBLIC_STREAMS,
    REGISTRATION,
    REGISTRATION_NOTICES,
    RESOLUTIONS,
    RESOLUTIONS_NOTICES,
    all_topics,
    dead_letter_topic,
)

SECRETS = {"ticket", "self_service_url", "manage_token", "manage_url", "token"}
CONTACT = {"full_name", "name", "email", "phone"}


def property_names(schema: dict[str, Any]) -> set[str]:
    """Every property name in a schema, its ``$defs`` (nested models) included."""
    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.get("properties", {}).items():
                names.add(key)
                walk(value)
            for key, value in node.items():
                if key != "properties":
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(schema)
    return names


def test_every_topic_is_public_private_or_a_dead_letter_topic() -> None:
    dead_letters = {t.name for t in all_topics() if t.name.endswith(".dlq")}
    assert {t.name for t in all_topics()} == set(PUBLIC_STREAMS) | set(
        PRIVATE_STREAMS
    ) | dead_letters
    assert not set(PUBLIC_STREAMS) & set(PRIVATE_STREAMS)
    assert dead_letter_topic("notification") in dead_letters


@pytest.mark.parametrize("topic", PUBLIC_STREAMS)
def test_no_public_event_schema_has_a_secret_or_contact_details(topic: str) -> None:
    events = stream_events(topic)
    assert events, topic
    for cls in events:
        found = property_names(json_schema(cls)) & (SECRETS | CONTACT)
        assert not found, f"{cls.ce_type()} on public {topic}: {sorted(found)}"


def test_the_public_registration_events_say_only_institution_cadre_category_and_language() -> None:
    for cls in stream_events(REGISTRATION):
        schema = json_schema(cls)
        participant = schema["properties"].get("participant")
        if participant is None:  # the catalogue events, PersonalDataErased
            continue
        target = schema["$defs"][participant["$ref"].rsplit("/", 1)[-1]]
        assert set(target["properties"]) == {
            "institution",
            "cadre",
            "language",
            "category",
            "institution_code",
        }, cls
        assert set(target["required"]) == {"institution", "cadre", "language"}, cls


def test_the_private_notices_carry_what_notification_needs() -> None:
    # The institutions' sign-in notice (issue 13 B) is about a contact person, not a
    # registration: tested on its own below.
    notices = [
        c for c in stream_events(REGISTRATION_NOTICES) if c.aggregate_field != "institution_code"
    ]
    assert (
        len(notices) == 9 + 2 + 1
    )  # + issue 16: CertificateIssued, EvaluationInvited; + issue 14: RegistrationPaidNotice
    for cls in notices:
        names = property_names(json_schema(cls))
        assert {"ticket", "self_service_url", "email", "phone", "full_name", "language"} <= names
        assert cls.aggregate_field == "registration_id"


def test_the_institution_sign_in_notice_is_private_and_carries_the_link() -> None:
    (cls,) = [
        c
        for c in stream_events(REGISTRATION_NOTICES)
        if c.event_name() == "InstitutionSignInRequested"
    ]
    assert cls.aggregate_field == "institution_code"
    names = property_names(json_schema(cls))
    assert {"sign_in_url", "email", "full_name", "language", "expires_at"} <= names


def test_the_retired_versions_are_the_ones_that_carried_tickets_and_contacts() -> None:
    retired = [c for c in stream_events(REGISTRATION, retired=True) if c.retired]
    assert len(retired) == 9
    for cls in retired:
        assert cls.schema_version == 1
        assert "email" in property_names(json_schema(cls))


def test_the_public_resolution_events_name_the_lead_institution_and_count_focal_persons() -> None:
    events = stream_events(RESOLUTIONS)
    assert {c.event_name() for c in events} == {
        "ResolutionCreated",
        "ResolutionUpdated",
        "ResolutionCompleted",
    }
    for cls in events:
        assert cls.schema_version == 2
        names = set(json_schema(cls)["properties"])
        assert {"lead_institution", "focal_person_count"} <= names
        assert "focal_persons" not in names


def test_the_focal_persons_notices_carry_their_contacts() -> None:
    notices = stream_events(RESOLUTIONS_NOTICES)
    assert {c.event_name() for c in notices} == {
        "ResolutionUpdatedNotice",
        "ResolutionCompletedNotice",
        "ResolutionReminderNotice",
        "CoordinatorDigestNotice",
        "FocalPersonErased",
    }
    for cls in notices:
        if cls.event_name() == "FocalPersonErased":
            # Private because it names the erased address (for notification to scrub).
            assert {"email", "person_key"} <= property_names(json_schema(cls))
            assert "full_name" not in property_names(json_schema(cls))
            continue
        if cls.event_name() == "CoordinatorDigestNotice":
            # To the coordinators: their addresses, and no focal person's contact.
            assert "recipients" in property_names(json_schema(cls))
            assert "full_name" not in property_names(json_schema(cls))
            assert cls.aggregate_field == "conference_id"
            continue
        assert {"full_name", "email", "phone", "language"} <= property_names(json_schema(cls))
        assert cls.aggregate_field == "resolution_id"


def test_the_retired_resolution_events_are_the_ones_that_carried_focal_persons() -> None:
    retired = [c for c in stream_events(RESOLUTIONS, retired=True) if c.retired]
    assert len(retired) == 3
    for cls in retired:
        assert cls.schema_version == 1
        assert "email" in property_names(json_schema(cls))
